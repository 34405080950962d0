#ifndef QPO_IMPORT_CHECK_H
#define QPO_IMPORT_CHECK_H

/* The import-check job kind (library qpo_import_check), registered by the composition root
 * (cli/handlers.c). */
void qpo_import_check_register_handlers(void);

#endif
