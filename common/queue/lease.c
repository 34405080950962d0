/* The worker side of the queue: claim, complete, fail, heartbeat, release, reap. Each call is
 * one statement; the ones touching claimed jobs are fenced by (id, attempt, owner). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "db.h"
#include "pgarray.h"
#include "prepared.h"
#include "queue.h"

static void kinds_array(qpo_strbuf *b, const char *const *kinds, size_t n) {
    qpo_sb_init(b);
    qpo_arr_open(b);
    for (size_t i = 0; i < n; i++)
        qpo_arr_text(b, kinds[i]);
    qpo_arr_close(b);
}

static void refs_arrays(qpo_strbuf *ids, qpo_strbuf *attempts, const qpo_lease_ref *refs,
                        size_t n) {
    qpo_sb_init(ids);
    qpo_sb_init(attempts);
    qpo_arr_open(ids);
    qpo_arr_open(attempts);
    for (size_t i = 0; i < n; i++) {
        qpo_arr_int(ids, refs[i].id);
        qpo_arr_int(attempts, refs[i].attempt);
    }
    qpo_arr_close(ids);
    qpo_arr_close(attempts);
}

void qpo_claimed_free(qpo_claimed *jobs, size_t n) {
    if (!jobs)
        return;
    for (size_t i = 0; i < n; i++) {
        free(jobs[i].kind);
        json_decref(jobs[i].payload);
    }
    free(jobs);
}

/* Claimed jobs from rows [first..] of res whose columns start at col (id, kind, attempt,
 * max_attempts, run_id, payload). */
static void claimed_rows(PGresult *res, int first, int col, qpo_claimed **out, size_t *n) {
    int rows = PQntuples(res) - first;
    qpo_claimed *jobs = rows > 0 ? calloc((size_t)rows, sizeof(*jobs)) : NULL;
    for (int i = 0; i < rows; i++) {
        int r = first + i;
        jobs[i].id = qpo_db_int64(res, r, col);
        jobs[i].kind = strdup(PQgetvalue(res, r, col + 1));
        jobs[i].attempt = (int)qpo_db_int64(res, r, col + 2);
        jobs[i].max_attempts = (int)qpo_db_int64(res, r, col + 3);
        jobs[i].run_id = qpo_db_int64(res, r, col + 4);
        /* jsonb output is always valid JSON; an empty object stands in if memory ran out. */
        jobs[i].payload = json_loads(PQgetvalue(res, r, col + 5), 0, NULL);
        if (!jobs[i].payload)
            jobs[i].payload = json_object();
    }
    *out = jobs;
    *n = rows > 0 ? (size_t)rows : 0;
}

int qpo_claim(PGconn *conn, const char *job_class, const char *const *kinds, size_t nkinds, int max,
              const char *owner, double lease_s, qpo_claimed **out, size_t *n, qpo_err *err) {
    *out = NULL;
    *n = 0;
    qpo_strbuf k;
    kinds_array(&k, kinds, nkinds);
    char maxs[16], lease[32];
    snprintf(maxs, sizeof(maxs), "%d", max);
    snprintf(lease, sizeof(lease), "%.3f", lease_s);
    const char *params[] = {job_class, k.s, maxs, owner, lease};
    PGresult *res = qpo_queue_exec(conn, "queue_claim", 5, params, err);
    qpo_sb_free(&k);
    if (!res)
        return -1;
    claimed_rows(res, 0, 0, out, n);
    PQclear(res);
    return 0;
}

/* Marks completed[i] for each id the statement returned. */
static void mark_returned(PGresult *res, const qpo_lease_ref *refs, size_t n, bool *flags) {
    for (size_t i = 0; i < n; i++)
        flags[i] = false;
    for (int r = 0; r < PQntuples(res); r++) {
        int64_t id = qpo_db_int64(res, r, 0);
        for (size_t i = 0; i < n; i++)
            if (refs[i].id == id)
                flags[i] = true;
    }
}

/* One JSON array of the results (null where none), indexed by ordinality in SQL. */
static void results_array(qpo_strbuf *b, json_t *const *results, size_t n) {
    qpo_sb_init(b);
    qpo_sb_puts(b, "[");
    for (size_t i = 0; i < n; i++) {
        if (i)
            qpo_sb_puts(b, ",");
        char *text =
            results && results[i] ? json_dumps(results[i], JSON_COMPACT | JSON_ENCODE_ANY) : NULL;
        qpo_sb_puts(b, text ? text : "null");
        free(text);
    }
    qpo_sb_puts(b, "]");
}

int qpo_complete_batch(PGconn *conn, const char *owner, const qpo_lease_ref *refs,
                       json_t *const *results, size_t n, bool *completed, qpo_err *err) {
    qpo_strbuf ids, attempts, res_json;
    refs_arrays(&ids, &attempts, refs, n);
    results_array(&res_json, results, n);
    const char *params[] = {ids.s, attempts.s, res_json.s, owner};
    PGresult *res = qpo_queue_exec(conn, "queue_complete_batch", 4, params, err);
    qpo_sb_free(&ids);
    qpo_sb_free(&attempts);
    qpo_sb_free(&res_json);
    if (!res)
        return -1;
    mark_returned(res, refs, n, completed);
    PQclear(res);
    return 0;
}

int qpo_complete_and_claim(PGconn *conn, const char *owner, const qpo_lease_ref *refs,
                           json_t *const *results, size_t n, bool *completed, const char *job_class,
                           const char *const *kinds, size_t nkinds, int max, double lease_s,
                           qpo_claimed **out, size_t *nclaimed, qpo_err *err) {
    *out = NULL;
    *nclaimed = 0;
    qpo_strbuf ids, attempts, res_json, k;
    refs_arrays(&ids, &attempts, refs, n);
    results_array(&res_json, results, n);
    kinds_array(&k, kinds, nkinds);
    char maxs[16], lease[32];
    snprintf(maxs, sizeof(maxs), "%d", max);
    snprintf(lease, sizeof(lease), "%.3f", lease_s);
    const char *params[] = {ids.s, attempts.s, res_json.s, owner, job_class, k.s, maxs, lease};
    PGresult *res = qpo_queue_exec(conn, "queue_complete_and_claim", 8, params, err);
    qpo_sb_free(&ids);
    qpo_sb_free(&attempts);
    qpo_sb_free(&res_json);
    qpo_sb_free(&k);
    if (!res)
        return -1;
    int done = 0;
    while (done < PQntuples(res) && PQgetvalue(res, done, 0)[0] == 'd')
        done++;
    for (size_t i = 0; i < n; i++)
        completed[i] = false;
    for (int r = 0; r < done; r++) {
        int64_t id = qpo_db_int64(res, r, 1);
        for (size_t i = 0; i < n; i++)
            if (refs[i].id == id)
                completed[i] = true;
    }
    claimed_rows(res, done, 1, out, nclaimed);
    PQclear(res);
    return 0;
}

int qpo_fence_lock(PGconn *conn, const char *owner, qpo_lease_ref ref, bool *held, qpo_err *err) {
    char id[32], attempt[16];
    snprintf(id, sizeof(id), "%lld", (long long)ref.id);
    snprintf(attempt, sizeof(attempt), "%d", ref.attempt);
    const char *params[] = {id, attempt, owner};
    PGresult *res = qpo_queue_exec(conn, "queue_fence_lock", 3, params, err);
    if (!res)
        return -1;
    *held = PQntuples(res) == 1;
    PQclear(res);
    return 0;
}

int qpo_fail(PGconn *conn, const char *owner, qpo_lease_ref ref, const char *error, bool fatal,
             qpo_backoff backoff, char *new_state, qpo_err *err) {
    char id[32], attempt[16], base[32], cap[32];
    snprintf(id, sizeof(id), "%lld", (long long)ref.id);
    snprintf(attempt, sizeof(attempt), "%d", ref.attempt);
    snprintf(base, sizeof(base), "%.3f", backoff.base_ms);
    snprintf(cap, sizeof(cap), "%.3f", backoff.cap_ms);
    const char *params[] = {
        id, attempt, owner, error && *error ? error : "failed", fatal ? "t" : "f", base, cap};
    PGresult *res = qpo_queue_exec(conn, "queue_fail", 7, params, err);
    if (!res)
        return -1;
    if (new_state)
        snprintf(new_state, 16, "%s", PQntuples(res) ? PQgetvalue(res, 0, 0) : "");
    PQclear(res);
    return 0;
}

/* heartbeat and release share a shape: refs in, the ids that still held out. */
static PGresult *refs_statement(PGconn *conn, const char *stmt, const char *owner,
                                const qpo_lease_ref *refs, size_t n, const char *extra,
                                qpo_err *err) {
    qpo_strbuf ids, attempts;
    refs_arrays(&ids, &attempts, refs, n);
    const char *params[] = {ids.s, attempts.s, owner, extra};
    PGresult *res = qpo_queue_exec(conn, stmt, extra ? 4 : 3, params, err);
    qpo_sb_free(&ids);
    qpo_sb_free(&attempts);
    return res;
}

int qpo_heartbeat(PGconn *conn, const char *owner, const qpo_lease_ref *refs, size_t n,
                  double lease_s, bool *held, qpo_err *err) {
    if (n == 0)
        return 0;
    char lease[32];
    snprintf(lease, sizeof(lease), "%.3f", lease_s);
    PGresult *res = refs_statement(conn, "queue_heartbeat", owner, refs, n, lease, err);
    if (!res)
        return -1;
    mark_returned(res, refs, n, held);
    PQclear(res);
    return 0;
}

int qpo_release(PGconn *conn, const char *owner, const qpo_lease_ref *refs, size_t n,
                size_t *released, qpo_err *err) {
    if (released)
        *released = 0;
    if (n == 0)
        return 0;
    PGresult *res = refs_statement(conn, "queue_release", owner, refs, n, NULL, err);
    if (!res)
        return -1;
    if (released)
        *released = (size_t)PQntuples(res);
    PQclear(res);
    return 0;
}

int qpo_unclaim(PGconn *conn, const char *owner, const qpo_lease_ref *refs, size_t n,
                size_t *unclaimed, qpo_err *err) {
    if (unclaimed)
        *unclaimed = 0;
    if (n == 0)
        return 0;
    PGresult *res = refs_statement(conn, "queue_unclaim", owner, refs, n, NULL, err);
    if (!res)
        return -1;
    if (unclaimed)
        *unclaimed = (size_t)PQntuples(res);
    PQclear(res);
    return 0;
}

int qpo_reap(PGconn *conn, size_t *reaped, qpo_err *err) {
    PGresult *res = qpo_db_named(conn, "queue_reap", 0, NULL, err);
    if (!res)
        return -1;
    if (reaped)
        *reaped = (size_t)PQntuples(res);
    PQclear(res);
    return 0;
}

int qpo_has_unfinished(PGconn *conn, const char *job_class, const char *const *kinds, size_t nkinds,
                       bool *yes, qpo_err *err) {
    qpo_strbuf k;
    kinds_array(&k, kinds, nkinds);
    const char *params[] = {job_class, k.s};
    PGresult *res = qpo_db_named(conn, "queue_has_unfinished", 2, params, err);
    qpo_sb_free(&k);
    if (!res)
        return -1;
    *yes = strcmp(PQgetvalue(res, 0, 0), "t") == 0;
    PQclear(res);
    return 0;
}
