#ifndef QPO_TEST_KINDS_H
#define QPO_TEST_KINDS_H

/* Registers sleep, fail and test-insert (test_kinds.c). */
void qpo_test_register_kinds(void);

#endif
