#ifndef QPO_TRAIN_METRICS_H
#define QPO_TRAIN_METRICS_H

/* Training curves into qpo.train_metrics while a train job runs: steps are buffered and
 * autocommitted in batches on the job's connection (telemetry, not the job's result, so it is
 * written outside the completing transaction and survives a failed attempt). */

#include <libpq-fe.h>
#include <stdint.h>

#include "train.h"

#define QPO_TRAIN_METRICS_BATCH 32 /* steps per INSERT: one round trip per 32 steps */

typedef struct qpo_train_metric {
    qpo_step_info info;
    qpo_loss loss;
    double seconds; /* the step's wall time; <= 0: tokens/s unknown */
} qpo_train_metric;

typedef struct qpo_train_metrics {
    PGconn *conn;
    int64_t run, job;
    int loop, attempt;
    int n;
    qpo_train_metric rows[QPO_TRAIN_METRICS_BATCH];
} qpo_train_metrics;

/* Starts logging (run, loop) for an attempt whose trainer has taken start_step steps: the
 * loop's rows past start_step are deleted (they belong to an earlier attempt's trajectory). A
 * failure is logged and training goes on: a curve is worth less than the loop. */
void qpo_train_metrics_begin(qpo_train_metrics *m, PGconn *conn, int64_t run, int loop, int64_t job,
                             int attempt, int64_t start_step);
/* Buffers one step; writes the buffer when it is full. */
void qpo_train_metrics_add(qpo_train_metrics *m, const qpo_step_info *info, const qpo_loss *loss,
                           double seconds);
/* Writes what is buffered (at the end of each epoch and before returning). */
void qpo_train_metrics_flush(qpo_train_metrics *m);

#endif
