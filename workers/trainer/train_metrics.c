/* Buffered, autocommitted training curves (train_metrics.h). The batch travels as ten
 * parallel array literals, so a flush is one statement whatever its size. */
#include "metrics.h"
#include "train_metrics.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>

#include "db.h"
#include "log.h"

enum { COLS = 10 };

typedef struct col {
    char *text;
    size_t len;
    FILE *f;
} col;

/* Array literal "{v1,v2,...}" of one column: values are numbers, so no quoting is needed
 * (PostgreSQL reads nan and inf as float8). */
static void put(col *c, int first, const char *fmt, double v) {
    fputc(first ? '{' : ',', c->f);
    fprintf(c->f, fmt, v);
}

static int write_batch(qpo_train_metrics *m, qpo_err *err) {
    col cols[COLS] = {0};
    for (int k = 0; k < COLS; k++)
        if (!(cols[k].f = open_memstream(&cols[k].text, &cols[k].len))) {
            for (int j = 0; j < k; j++)
                fclose(cols[j].f), free(cols[j].text);
            return qpo_err_set(err, QPO_EXIT_RUNTIME, "out of memory for training metrics");
        }
    for (int i = 0; i < m->n; i++) {
        const qpo_train_metric *r = &m->rows[i];
        double tps = r->seconds > 0 ? (double)r->info.tokens / r->seconds : -1;
        put(&cols[0], !i, "%.0f", (double)r->info.step);
        put(&cols[1], !i, "%.0f", r->info.epoch);
        put(&cols[2], !i, "%.9g", r->loss.loss);
        put(&cols[3], !i, "%.9g", r->loss.ce);
        put(&cols[4], !i, "%.9g", r->loss.mse);
        put(&cols[5], !i, "%.9g", r->info.lambda);
        put(&cols[6], !i, "%.9g", r->info.lr);
        put(&cols[7], !i, "%.9g", r->info.grad_norm);
        put(&cols[8], !i, "%.0f", r->info.batch_size);
        if (tps < 0)
            fputs(i ? ",NULL" : "{NULL", cols[9].f);
        else
            put(&cols[9], !i, "%.6g", tps);
    }
    for (int k = 0; k < COLS; k++) {
        fputc('}', cols[k].f);
        fclose(cols[k].f);
    }
    char run[24], loop[16], job[24], attempt[16];
    snprintf(run, sizeof run, "%" PRId64, m->run);
    snprintf(loop, sizeof loop, "%d", m->loop);
    snprintf(job, sizeof job, "%" PRId64, m->job);
    snprintf(attempt, sizeof attempt, "%d", m->attempt);
    const char *params[14] = {run, loop};
    for (int k = 0; k < COLS; k++)
        params[2 + k] = cols[k].text;
    params[12] = m->job > 0 ? job : NULL;
    params[13] = m->attempt > 0 ? attempt : NULL;
    PGresult *res = qpo_db_named(m->conn, "trainer_metrics_insert", 14, params, err);
    for (int k = 0; k < COLS; k++)
        free(cols[k].text);
    if (!res)
        return -1;
    PQclear(res);
    return 0;
}

void qpo_train_metrics_begin(qpo_train_metrics *m, PGconn *conn, int64_t run, int loop, int64_t job,
                             int attempt, int64_t start_step) {
    *m =
        (qpo_train_metrics){.conn = conn, .run = run, .job = job, .loop = loop, .attempt = attempt};
    char r[24], l[16], s[24];
    snprintf(r, sizeof r, "%" PRId64, run);
    snprintf(l, sizeof l, "%d", loop);
    snprintf(s, sizeof s, "%" PRId64, start_step);
    const char *params[] = {r, l, s};
    qpo_err err = {0};
    PGresult *res = qpo_db_named(conn, "trainer_metrics_truncate", 3, params, &err);
    if (!res)
        qpo_warn("train metrics: cannot clear run %" PRId64 " loop %d past step %" PRId64 ": %s %s",
                 run, loop, start_step, err.msg, err.detail);
    PQclear(res);
}

void qpo_train_metrics_flush(qpo_train_metrics *m) {
    if (m->n == 0)
        return;
    qpo_err err = {0};
    if (write_batch(m, &err))
        qpo_warn("train metrics: %d steps of run %" PRId64 " loop %d not logged: %s %s", m->n,
                 m->run, m->loop, err.msg, err.detail);
    m->n = 0;
}

static qpo_metric loss_now =
    QPO_GAUGE("qpo_train_loss",
              "Training loss (CE + lambda MSE) of the latest step on this worker.", NULL, NULL);
static qpo_metric tps_now = QPO_GAUGE("qpo_train_tokens_per_second",
                                      "Tokens per second of the latest training step.", NULL, NULL);
static qpo_metric steps =
    QPO_COUNTER("qpo_train_steps_total", "Training steps taken on this worker.", NULL, NULL);
static qpo_metric step_tokens =
    QPO_COUNTER("qpo_train_tokens_total", "Tokens trained on by this worker.", NULL, NULL);

void qpo_train_metrics_add(qpo_train_metrics *m, const qpo_step_info *info, const qpo_loss *loss,
                           double seconds) {
    qpo_metric_set(&loss_now, loss->loss, NULL, NULL);
    if (seconds > 0)
        qpo_metric_set(&tps_now, (double)info->tokens / seconds, NULL, NULL);
    qpo_metric_add(&steps, 1, NULL, NULL);
    qpo_metric_add(&step_tokens, (double)info->tokens, NULL, NULL);
    m->rows[m->n++] = (qpo_train_metric){*info, *loss, seconds};
    if (m->n == QPO_TRAIN_METRICS_BATCH)
        qpo_train_metrics_flush(m);
}
