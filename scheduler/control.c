/* qpo cancel / qpo resume on the queue's cancel and retry, one job at a time so each step
 * sees the cascade of the one before. */
#include "control.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "db.h"
#include "queue.h"

/* Locks the experiment; *state gets its state. A missing experiment is a usage error. */
static int lock_experiment(PGconn *conn, const char *id, char *state, size_t size, qpo_err *err) {
    const char *p[] = {id};
    PGresult *res = qpo_db_named(conn, "exp_lock", 1, p, err);
    if (!res)
        return -1;
    int found = PQntuples(res) == 1;
    if (found)
        snprintf(state, size, "%s", PQgetvalue(res, 0, 0));
    PQclear(res);
    if (!found) {
        qpo_err_set(err, QPO_EXIT_USAGE, "experiment %s does not exist", id);
        qpo_err_hint(err, "'qpo status' lists the experiments");
        return -1;
    }
    return 0;
}

/* The next job picked by a named query ($1 experiment, optional $2), 0 when none. */
static int next_job(PGconn *conn, const char *stmt, int nparams, const char *const *params,
                    int64_t *job, qpo_err *err) {
    PGresult *res = qpo_db_named(conn, stmt, nparams, params, err);
    if (!res)
        return -1;
    *job = PQntuples(res) ? qpo_db_int64(res, 0, 0) : 0;
    PQclear(res);
    return 0;
}

static size_t job_count(PGconn *conn, const char *id, qpo_err *err) {
    const char *p[] = {id};
    PGresult *res = qpo_db_named(conn, "exp_count_jobs", 1, p, err);
    size_t n = res ? (size_t)qpo_db_int64(res, 0, 0) : 0;
    PQclear(res);
    return n;
}

static int finish(PGconn *conn, int rc, qpo_err *err) {
    if (rc == 0 && qpo_db_commit(conn, err) == 0)
        return 0;
    qpo_db_rollback(conn);
    return -1;
}

int qpo_experiment_cancel(PGconn *conn, int64_t exp, size_t *cancelled, qpo_err *err) {
    char id[24], state[32];
    snprintf(id, sizeof(id), "%" PRId64, exp);
    *cancelled = 0;
    if (qpo_db_begin(conn, err) < 0)
        return -1;
    int rc = lock_experiment(conn, id, state, sizeof(state), err);
    if (rc == 0 && (!strcmp(state, "invalid") || !strcmp(state, "done"))) {
        qpo_err_set(err, QPO_EXIT_USAGE, "experiment %s is %s: nothing to cancel", id, state);
        rc = -1;
    }
    /* Bounded: each pass finishes at least one job. */
    size_t limit = rc == 0 ? job_count(conn, id, err) + 1 : 0;
    for (size_t i = 0; rc == 0 && i < limit; i++) {
        int64_t job = 0;
        const char *p[] = {id};
        if ((rc = next_job(conn, "exp_next_unfinished_job", 1, p, &job, err)) < 0 || !job)
            break;
        rc = qpo_job_cancel(conn, job, "experiment cancelled (qpo cancel)", err);
        *cancelled += rc == 0;
    }
    if (rc == 0) {
        const char *p[] = {id};
        PGresult *res = qpo_db_named(conn, "exp_cancel_rows", 1, p, err);
        rc = res ? 0 : -1;
        PQclear(res);
    }
    return finish(conn, rc, err);
}

int qpo_experiment_resume(PGconn *conn, int64_t exp, size_t *retried, qpo_err *err) {
    char id[24], state[32];
    snprintf(id, sizeof(id), "%" PRId64, exp);
    *retried = 0;
    if (qpo_db_begin(conn, err) < 0)
        return -1;
    int rc = lock_experiment(conn, id, state, sizeof(state), err);
    if (rc == 0 && !strcmp(state, "invalid")) {
        qpo_err_set(err, QPO_EXIT_USAGE, "experiment %s is invalid: nothing to resume", id);
        qpo_err_hint(err, "fix the config and submit it again");
        rc = -1;
    }
    const char *with_cancelled = !strcmp(state, "cancelled") ? "true" : "false";
    size_t limit = rc == 0 ? job_count(conn, id, err) + 1 : 0;
    for (size_t i = 0; rc == 0 && i < limit; i++) {
        int64_t job = 0;
        const char *p[] = {id, with_cancelled};
        if ((rc = next_job(conn, "exp_next_retryable_job", 2, p, &job, err)) < 0 || !job)
            break;
        rc = qpo_job_retry(conn, job, err);
        *retried += rc == 0;
    }
    PGresult *res = NULL;
    const char *p[] = {id};
    if (rc == 0 && !(res = qpo_db_named(conn, "exp_uncancel_rows", 1, p, err)))
        rc = -1;
    PQclear(res);
    res = NULL;
    if (rc == 0 && !(res = qpo_db_named(conn, "exp_refresh", 1, p, err)))
        rc = -1;
    PQclear(res);
    return finish(conn, rc, err);
}
