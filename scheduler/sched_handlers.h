#ifndef QPO_SCHED_HANDLERS_H
#define QPO_SCHED_HANDLERS_H

/* The scheduler's one job kind, import-check (library qpo_scheduler_handlers), registered by
 * the composition root (cli/handlers.c). */
void qpo_scheduler_register_handlers(void);

#endif
