/* The composition root for job handlers: every component that runs jobs registers its kinds
 * here, so the worker runtime knows none of them by name. */
#include "handlers.h"

#ifdef QPO_HAVE_QUEUE
void qpo_runtime_register_builtin_handlers(void);
#endif
#ifdef QPO_HAVE_REWARD
void qpo_reward_register_handlers(void);
#endif
#ifdef QPO_HAVE_IMPORT_CHECK
void qpo_import_check_register_handlers(void);
#endif
#ifdef QPO_HAVE_TRAINER
void qpo_trainer_register_handlers(void);
#endif
#ifdef QPO_HAVE_TEST_KINDS /* only in qpo-test, the tests' build of the binary (tests/kinds) */
void qpo_test_register_kinds(void);
#endif

void qpo_register_all_handlers(void) {
#ifdef QPO_HAVE_QUEUE
    qpo_runtime_register_builtin_handlers();
#endif
#ifdef QPO_HAVE_REWARD
    qpo_reward_register_handlers();
#endif
#ifdef QPO_HAVE_IMPORT_CHECK
    qpo_import_check_register_handlers();
#endif
#ifdef QPO_HAVE_TRAINER
    qpo_trainer_register_handlers();
#endif
#ifdef QPO_HAVE_TEST_KINDS
    qpo_test_register_kinds();
#endif
}
