#ifndef QPO_SCHED_CONTROL_H
#define QPO_SCHED_CONTROL_H

/* Stopping and resuming a whole experiment, each in one transaction. */

#include <libpq-fe.h>
#include <stddef.h>
#include <stdint.h>

#include "error.h"

/* Cancels every unfinished job of the experiment (running ones are told to stop), marks its
 * unfinished runs and itself cancelled. *cancelled counts the jobs cancelled directly. */
int qpo_experiment_cancel(PGconn *conn, int64_t exp, size_t *cancelled, qpo_err *err);

/* Gives dead and failed jobs (and, after a cancel, cancelled ones) fresh attempts; finished
 * work is kept. Runs and the experiment go back to planned and follow their jobs again. */
int qpo_experiment_resume(PGconn *conn, int64_t exp, size_t *retried, qpo_err *err);

#endif
