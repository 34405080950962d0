#ifndef QPO_SCHED_QUEUE_METRICS_H
#define QPO_SCHED_QUEUE_METRICS_H

/* The queue's depth for `qpo scheduler --metrics-listen`: a metrics collector
 * (common/metrics.h) that reads the unfinished jobs per state at scrape time, on its own
 * connection, so nothing is read while nobody scrapes and the planning loop never waits. */

#include <libpq-fe.h>

typedef struct qpo_queue_metrics {
    const char *conninfo;
    PGconn *conn; /* the serving thread's; opened at the first scrape, reopened when lost */
} qpo_queue_metrics;

/* The collector: arg is a qpo_queue_metrics. A failed read keeps the last values and sets
 * qpo_queue_read_errors_total. */
void qpo_queue_metrics_collect(void *arg);
/* After qpo_metrics_stop(): closes the connection. */
void qpo_queue_metrics_close(qpo_queue_metrics *q);

#endif
