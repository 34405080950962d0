/* Enqueueing: one statement per batch (arrays in, ids out), dependencies in a second one,
 * both in the caller's transaction or in one of our own. */
#include <stdlib.h>
#include <string.h>

#include "db.h"
#include "pgarray.h"
#include "prepared.h"
#include "queue.h"

typedef struct batch_params {
    qpo_strbuf kinds, payloads, priorities, attempts, keys, run_ids, run_after, blocked;
} batch_params;

static void params_init(batch_params *p) {
    qpo_strbuf *all[] = {&p->kinds, &p->payloads, &p->priorities, &p->attempts,
                         &p->keys,  &p->run_ids,  &p->run_after,  &p->blocked};
    for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++) {
        qpo_sb_init(all[i]);
        if (all[i] != &p->payloads)
            qpo_arr_open(all[i]);
    }
    qpo_sb_puts(&p->payloads, "[");
}

static void params_free(batch_params *p) {
    qpo_strbuf *all[] = {&p->kinds, &p->payloads, &p->priorities, &p->attempts,
                         &p->keys,  &p->run_ids,  &p->run_after,  &p->blocked};
    for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++)
        qpo_sb_free(all[i]);
}

/* A payload must be a JSON object: checked here so a bad one is named by its index instead of
 * failing the whole statement with a bare cast error. */
static int check_payload(const char *payload, size_t i, qpo_err *err) {
    json_error_t jerr;
    json_t *v = json_loads(payload, JSON_DECODE_ANY, &jerr);
    bool ok = v && json_is_object(v);
    json_decref(v);
    if (ok)
        return 0;
    qpo_err_set(err, QPO_EXIT_USAGE, "job payload is not a JSON object");
    qpo_err_detail(err, "job %zu of the batch: %s", i,
                   v ? "valid JSON but not an object" : jerr.text);
    qpo_err_hint(err, "payloads are objects, e.g. {\"ms\": 100}");
    return -1;
}

static int add_row(batch_params *p, const qpo_enqueue_opts *o, size_t i, qpo_err *err) {
    if (!o->kind || !*o->kind)
        return qpo_err_set(err, QPO_EXIT_USAGE, "job %zu of the batch has no kind", i);
    const char *payload = o->payload_json ? o->payload_json : "{}";
    if (check_payload(payload, i, err) < 0)
        return -1;
    qpo_arr_text(&p->kinds, o->kind);
    if (i)
        qpo_sb_puts(&p->payloads, ",");
    qpo_sb_puts(&p->payloads, payload);
    qpo_arr_int(&p->priorities, o->priority);
    if (o->max_attempts > 0)
        qpo_arr_int(&p->attempts, o->max_attempts);
    else
        qpo_arr_null(&p->attempts);
    qpo_arr_text(&p->keys, o->idempotency_key);
    if (o->run_id)
        qpo_arr_int(&p->run_ids, o->run_id);
    else
        qpo_arr_null(&p->run_ids);
    qpo_arr_text(&p->run_after, o->run_after);
    qpo_arr_bool(&p->blocked, o->nparents > 0);
    return 0;
}

static void params_close(batch_params *p) {
    qpo_strbuf *arrays[] = {&p->kinds,   &p->priorities, &p->attempts, &p->keys,
                            &p->run_ids, &p->run_after,  &p->blocked};
    for (size_t i = 0; i < sizeof(arrays) / sizeof(arrays[0]); i++)
        qpo_arr_close(arrays[i]);
    qpo_sb_puts(&p->payloads, "]");
}

/* A key inserted by a concurrent transaction (or earlier in this batch) is invisible to the
 * batch statement's snapshot: a second statement sees it. */
static int lookup_key(PGconn *conn, const char *key, int64_t *id, qpo_err *err) {
    const char *params[] = {key};
    PGresult *res = qpo_db_named(conn, "queue_job_by_key", 1, params, err);
    if (!res)
        return -1;
    int rc = 0;
    if (PQntuples(res) == 1)
        *id = qpo_db_int64(res, 0, 0);
    else
        rc = qpo_err_set(err, QPO_EXIT_RUNTIME, "idempotency key '%s' vanished while enqueueing",
                         key);
    PQclear(res);
    return rc;
}

static int insert_jobs(PGconn *conn, const qpo_enqueue_opts *opts, size_t n, int64_t *ids,
                       bool *existed, qpo_err *err) {
    batch_params p;
    params_init(&p);
    for (size_t i = 0; i < n; i++)
        if (add_row(&p, &opts[i], i, err) < 0) {
            params_free(&p);
            return -1;
        }
    params_close(&p);
    const char *params[] = {p.kinds.s, p.payloads.s, p.priorities.s, p.attempts.s,
                            p.keys.s,  p.run_ids.s,  p.run_after.s,  p.blocked.s};
    PGresult *res = qpo_queue_exec(conn, "queue_enqueue_batch", 8, params, err);
    params_free(&p);
    if (!res)
        return -1;
    int rc = 0;
    for (size_t i = 0; i < n && rc == 0; i++) {
        existed[i] = strcmp(PQgetvalue(res, (int)i, 1), "t") != 0;
        if (!PQgetisnull(res, (int)i, 0))
            ids[i] = qpo_db_int64(res, (int)i, 0);
        else
            rc = lookup_key(conn, opts[i].idempotency_key, &ids[i], err);
    }
    PQclear(res);
    return rc;
}

static int add_deps(PGconn *conn, const qpo_enqueue_opts *opts, size_t n, const int64_t *ids,
                    const bool *existed, qpo_err *err) {
    qpo_strbuf children, parents;
    qpo_sb_init(&children);
    qpo_sb_init(&parents);
    qpo_arr_open(&children);
    qpo_arr_open(&parents);
    size_t edges = 0;
    for (size_t i = 0; i < n; i++) {
        if (existed[i])
            continue;
        for (size_t k = 0; k < opts[i].nparents; k++, edges++) {
            qpo_arr_int(&children, ids[i]);
            qpo_arr_int(&parents, opts[i].parents[k]);
        }
    }
    qpo_arr_close(&children);
    qpo_arr_close(&parents);
    int rc = 0;
    if (edges) {
        const char *params[] = {children.s, parents.s};
        PGresult *res = qpo_db_named(conn, "queue_add_deps", 2, params, err);
        rc = res ? 0 : -1;
        PQclear(res);
    }
    qpo_sb_free(&children);
    qpo_sb_free(&parents);
    return rc;
}

int qpo_enqueue_batch_ex(PGconn *conn, const qpo_enqueue_opts *opts, size_t n, int64_t *ids,
                         bool *existed, qpo_err *err) {
    if (n == 0)
        return 0;
    bool *seen = existed ? existed : calloc(n, sizeof(bool));
    if (!seen)
        return qpo_err_set(err, QPO_EXIT_RUNTIME, "out of memory");
    bool own_tx = PQtransactionStatus(conn) == PQTRANS_IDLE;
    int rc = own_tx ? qpo_db_begin(conn, err) : 0;
    if (rc == 0)
        rc = insert_jobs(conn, opts, n, ids, seen, err);
    if (rc == 0)
        rc = add_deps(conn, opts, n, ids, seen, err);
    if (own_tx) {
        if (rc == 0)
            rc = qpo_db_commit(conn, err);
        else
            qpo_db_rollback(conn);
    }
    if (!existed)
        free(seen);
    if (rc < 0)
        qpo_err_prefix(err, "enqueueing %zu job%s", n, n == 1 ? "" : "s");
    return rc;
}

int qpo_enqueue_batch(PGconn *conn, const qpo_enqueue_opts *opts, size_t n, int64_t *ids,
                      qpo_err *err) {
    return qpo_enqueue_batch_ex(conn, opts, n, ids, NULL, err);
}

int qpo_enqueue(PGconn *conn, const qpo_enqueue_opts *opts, int64_t *job_id, bool *existed,
                qpo_err *err) {
    bool seen = false;
    int rc = qpo_enqueue_batch_ex(conn, opts, 1, job_id, &seen, err);
    if (existed)
        *existed = seen;
    return rc;
}

/* cancel and retry return the state the job was in; they refuse the states they cannot act
 * on with a clear error. */
static int job_op(PGconn *conn, const char *stmt, int64_t job_id, const char *reason,
                  const char *const *allowed, const char *verb, qpo_err *err) {
    char id[32];
    snprintf(id, sizeof(id), "%lld", (long long)job_id);
    const char *params[] = {id, reason};
    PGresult *res = qpo_db_named(conn, stmt, reason ? 2 : 1, params, err);
    if (!res) {
        if (qpo_db_err_sqlstate_is(err, "P0002")) {
            qpo_err_set(err, QPO_EXIT_USAGE, "job %lld does not exist", (long long)job_id);
            qpo_err_hint(err, "'qpo jobs list' shows the jobs");
        }
        return -1;
    }
    const char *prior = PQgetvalue(res, 0, 0);
    bool ok = false;
    for (const char *const *a = allowed; *a; a++)
        ok = ok || !strcmp(*a, prior);
    if (!ok) {
        qpo_err_set(err, QPO_EXIT_USAGE, "cannot %s job %lld: it is %s", verb, (long long)job_id,
                    prior);
        qpo_err_hint(err, "'qpo jobs show %lld' shows its history", (long long)job_id);
    }
    PQclear(res);
    return ok ? 0 : -1;
}

int qpo_job_cancel(PGconn *conn, int64_t job_id, const char *reason, qpo_err *err) {
    static const char *const allowed[] = {"blocked", "queued", "running", "failed", NULL};
    return job_op(conn, "queue_cancel", job_id, reason ? reason : "cancelled", allowed, "cancel",
                  err);
}

int qpo_job_retry(PGconn *conn, int64_t job_id, qpo_err *err) {
    static const char *const allowed[] = {"failed", "dead", "cancelled", NULL};
    return job_op(conn, "queue_retry", job_id, NULL, allowed, "retry", err);
}
