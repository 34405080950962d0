/* Handler threads. Each waits for a claimed job, runs its handler, and hands the outcome back
 * to the main thread. A job whose handler added output rows (qpo_outcome_add_rows) is completed
 * here, on the thread's own connection, so a slow commit never stalls heartbeats. */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "db.h"
#include "log.h"
#include "worker_internal.h"

PGconn *qpo_job_conn(qpo_job_ctx *ctx) {
    if (ctx->conn && !qpo_db_conn_lost(ctx->conn))
        return ctx->conn;
    PQfinish(ctx->conn);
    qpo_err err = {0};
    ctx->conn = qpo_db_connect(ctx->w->o.conninfo, ctx->w->app_name, &err);
    if (!ctx->conn)
        qpo_warn("worker %s: job connection: %s", ctx->w->o.name, err.msg);
    return ctx->conn;
}

bool qpo_job_should_stop(qpo_job_ctx *ctx) {
    return ctx->it && atomic_load(&ctx->it->stop);
}

const char *qpo_job_worker_name(qpo_job_ctx *ctx) {
    return ctx->w->o.name;
}

void item_free(item *it) {
    if (!it)
        return;
    free(it->c.kind);
    json_decref(it->c.payload);
    json_decref(it->out.result);
    qpo_outcome_free_output(&it->out);
    free(it);
}

static void nap_ms(long ms) {
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

enum completion { COMPLETED, COMPLETION_FAILED, COMPLETION_CONN_LOST };

/* One try of the completing transaction: fence, the handler's rows, the result. A row the
 * table refuses fails the attempt with what the server said (it->err). */
static enum completion complete_once(qpo_job_ctx *ctx, item *it, PGconn *conn) {
    worker *w = ctx->w;
    qpo_err err = {0};
    qpo_lease_ref ref = {it->c.id, it->c.attempt};
    bool held = false, completed = false;
    json_t *results[] = {it->out.result};
    if (qpo_db_begin(conn, &err) < 0 || qpo_fence_lock(conn, w->o.name, ref, &held, &err) < 0)
        goto failed;
    if (!held) {
        qpo_db_rollback(conn);
        qpo_info("worker %s: lease lost before completion; output dropped", w->o.name);
        return COMPLETED;
    }
    if (qpo_outcome_write(conn, &it->job, &it->out, &err) < 0)
        goto failed;
    if (qpo_complete_batch(conn, w->o.name, &ref, results, 1, &completed, &err) < 0 ||
        qpo_db_commit(conn, &err) < 0)
        goto failed;
    if (completed)
        counters_succeeded(it);
    return COMPLETED;
failed:
    if (qpo_db_conn_lost(conn))
        return COMPLETION_CONN_LOST;
    qpo_db_rollback(conn);
    it->err = err;
    qpo_err_prefix(&it->err, "completing job %lld", (long long)it->c.id);
    return COMPLETION_FAILED;
}

/* Retries across lost connections: the fence makes a retry after an unacknowledged commit
 * harmless (it finds the job no longer running and writes nothing). */
static void complete_with_output(qpo_job_ctx *ctx, item *it) {
    long delay = 100;
    for (int tries = 0; tries < 60; tries++) {
        PGconn *conn = qpo_job_conn(ctx);
        enum completion r = conn ? complete_once(ctx, it, conn) : COMPLETION_CONN_LOST;
        if (r == COMPLETED) {
            it->settled = true;
            return;
        }
        if (r == COMPLETION_FAILED) {
            it->status = QPO_JOB_RETRY; /* the main thread fails the attempt */
            return;
        }
        if (atomic_load(&ctx->w->shutting_down) || atomic_load(&it->stop))
            break;
        nap_ms(delay);
        delay = delay < 2000 ? delay * 2 : 2000;
    }
    /* Never reached the database: the lease expires and the reaper retries the job. */
    qpo_warn("worker %s: gave up completing the job (database unreachable)", ctx->w->o.name);
    it->settled = true;
}

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void run_item(qpo_job_ctx *ctx, item *it) {
    ctx->it = it;
    /* Every line this thread writes until the job is settled names it. */
    qpo_log_set_job(it->c.id, it->c.run_id, it->c.attempt);
    double started = now_s();
    qpo_debug("worker %s: running a %s job", ctx->w->o.name, it->c.kind);
    const qpo_handler *h = qpo_handler_find(it->c.kind);
    if (!h) {
        qpo_err_set(&it->err, QPO_EXIT_RUNTIME, "no handler registered for kind '%s'", it->c.kind);
        it->status = QPO_JOB_FATAL;
    } else {
        it->status = h->run(&it->job, ctx, &it->out, &it->err);
    }
    counters_ran(it, now_s() - started);
    /* A handler must leave its connection outside a transaction; a broken one cannot. */
    if (ctx->conn && PQtransactionStatus(ctx->conn) != PQTRANS_IDLE) {
        qpo_warn("worker %s: %s handler left a transaction open; rolled back", ctx->w->o.name,
                 it->c.kind);
        qpo_db_rollback(ctx->conn);
    }
    if (it->status == QPO_JOB_OK && qpo_outcome_has_output(&it->out) && !atomic_load(&it->stop))
        complete_with_output(ctx, it);
    qpo_outcome_free_output(&it->out);
    qpo_log_set_job(0, 0, 0);
    ctx->it = NULL;
}

static void *slot_main(void *arg) {
    qpo_job_ctx *ctx = arg;
    worker *w = ctx->w;
    for (;;) {
        pthread_mutex_lock(&w->mu);
        w->idle_threads++;
        while (!w->todo_head && !w->quit)
            pthread_cond_wait(&w->cv, &w->mu);
        w->idle_threads--;
        item *it = w->todo_head;
        if (!it) {
            pthread_mutex_unlock(&w->mu);
            break;
        }
        w->todo_head = it->next;
        if (!w->todo_head)
            w->todo_tail = NULL;
        pthread_mutex_unlock(&w->mu);

        run_item(ctx, it);

        pthread_mutex_lock(&w->mu);
        it->next = w->done_head;
        w->done_head = it;
        pthread_mutex_unlock(&w->mu);
        event_active(w->done_ev, EV_READ, 0);
    }
    PQfinish(ctx->conn);
    ctx->conn = NULL;
    return NULL;
}

int slots_start(worker *w, qpo_err *err) {
    int n = w->o.concurrency;
    w->threads = calloc((size_t)n, sizeof(pthread_t));
    w->ctxs = calloc((size_t)n, sizeof(qpo_job_ctx));
    if (!w->threads || !w->ctxs)
        return qpo_err_set(err, QPO_EXIT_RUNTIME, "out of memory");
    for (int i = 0; i < n; i++) {
        w->ctxs[i].w = w;
        if (pthread_create(&w->threads[i], NULL, slot_main, &w->ctxs[i]) != 0) {
            w->o.concurrency = i;
            return qpo_err_set(err, QPO_EXIT_RUNTIME, "cannot start handler thread %d", i);
        }
    }
    return 0;
}

void slots_dispatch(worker *w, item *it) {
    pthread_mutex_lock(&w->mu);
    it->next = NULL;
    if (w->todo_tail)
        w->todo_tail->next = it;
    else
        w->todo_head = it;
    w->todo_tail = it;
    pthread_cond_signal(&w->cv);
    pthread_mutex_unlock(&w->mu);
}

item *slots_take_unstarted(worker *w, enum take which) {
    item *taken = NULL;
    pthread_mutex_lock(&w->mu);
    item **link = &w->todo_head;
    w->todo_tail = NULL;
    int spared = which == TAKE_WAITING ? w->idle_threads : 0;
    while (*link) {
        item *it = *link;
        bool keep = which == TAKE_STOPPED ? !atomic_load(&it->stop) : spared-- > 0;
        if (keep) {
            w->todo_tail = it;
            link = &it->next;
            continue;
        }
        *link = it->next;
        it->next = taken;
        taken = it;
    }
    pthread_mutex_unlock(&w->mu);
    return taken;
}

bool slots_stop(worker *w, double wait_s) {
    pthread_mutex_lock(&w->mu);
    w->quit = true;
    pthread_cond_broadcast(&w->cv);
    pthread_mutex_unlock(&w->mu);
    struct timespec deadline;
    clock_gettime(CLOCK_REALTIME, &deadline);
    deadline.tv_sec += (time_t)wait_s + 1;
    bool all = true;
    for (int i = 0; i < w->o.concurrency; i++) {
        if (pthread_timedjoin_np(w->threads[i], NULL, &deadline) != 0) {
            all = false;
            qpo_warn("worker %s: a %s handler did not stop in time; leaving it", w->o.name,
                     w->ctxs[i].it ? w->ctxs[i].it->c.kind : "job");
        }
    }
    return all;
}
