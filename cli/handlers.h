#ifndef QPO_CLI_HANDLERS_H
#define QPO_CLI_HANDLERS_H

/* Registers the handlers of every job kind compiled into this binary. */
void qpo_register_all_handlers(void);

#endif
