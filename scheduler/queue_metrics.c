#include "queue_metrics.h"

#include <stdlib.h>

#include "db.h"
#include "log.h"
#include "metrics.h"

static qpo_metric depth =
    QPO_GAUGE("qpo_queue_jobs", "Unfinished jobs in the queue, by state.", "state", NULL);
static qpo_metric read_errors =
    QPO_COUNTER("qpo_queue_read_errors_total",
                "Scrapes that could not read the queue depth from PostgreSQL.", NULL, NULL);

void qpo_queue_metrics_collect(void *arg) {
    qpo_queue_metrics *q = arg;
    qpo_err err = {0};
    if (q->conn && qpo_db_conn_lost(q->conn)) {
        PQfinish(q->conn);
        q->conn = NULL;
    }
    if (!q->conn)
        q->conn = qpo_db_connect(q->conninfo, "qpo scheduler metrics", &err);
    PGresult *res = q->conn ? qpo_db_named(q->conn, "metrics_queue_depth", 0, NULL, &err) : NULL;
    if (!res) {
        qpo_metric_add(&read_errors, 1, NULL, NULL);
        qpo_warn("scheduler: metrics: cannot read the queue depth: %s", err.msg);
        return;
    }
    for (int i = 0; i < PQntuples(res); i++)
        qpo_metric_set(&depth, (double)qpo_db_int64(res, i, 1), PQgetvalue(res, i, 0), NULL);
    PQclear(res);
}

void qpo_queue_metrics_close(qpo_queue_metrics *q) {
    PQfinish(q->conn);
    q->conn = NULL;
}
