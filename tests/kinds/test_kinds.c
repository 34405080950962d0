/* Job kinds for tests only, linked into the test build of the binary (qpo-test), never into
 * qpo:
 *   sleep        {"ms": N}: sleeps N ms, stopping early when cancelled
 *   fail         {"times": N, "fatal": bool}: fails its first N attempts (fatal: dead at once)
 *   test-insert  {"table": NAME, "ms": N}: after N ms, inserts (job_id, attempt, worker) into
 *                table NAME in the completing transaction; the table is the caller's (tests
 *                create it). NAME must be a plain lower-case identifier and is quoted. */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "db.h"
#include "handler.h"
#include "runtime.h"
#include "test_kinds.h"

static int payload_int(const qpo_job *job, const char *field, long long *v, qpo_err *err) {
    json_t *f = json_object_get(job->payload, field);
    if (!f) {
        *v = 0;
        return 0;
    }
    if (!json_is_integer(f) || json_integer_value(f) < 0) {
        qpo_err_set(err, QPO_EXIT_USAGE, "bad payload of %s job %lld", job->kind,
                    (long long)job->id);
        qpo_err_detail(err, "field \"%s\" must be a non-negative integer", field);
        return -1;
    }
    *v = json_integer_value(f);
    return 0;
}

/* Sleeps in short steps so a cancellation is seen within 10 ms. */
static bool sleep_ms(qpo_job_ctx *ctx, long long ms) {
    for (long long left = ms; left > 0; left -= 10) {
        if (qpo_job_should_stop(ctx))
            return false;
        long long step = left < 10 ? left : 10;
        struct timespec ts = {step / 1000, (step % 1000) * 1000000L};
        nanosleep(&ts, NULL);
    }
    return !qpo_job_should_stop(ctx);
}

static qpo_job_status run_sleep(const qpo_job *job, qpo_job_ctx *ctx, qpo_job_outcome *out,
                                qpo_err *err) {
    long long ms;
    if (payload_int(job, "ms", &ms, err) < 0)
        return QPO_JOB_FATAL;
    if (!sleep_ms(ctx, ms))
        return QPO_JOB_CANCELLED;
    out->result = json_pack("{sI}", "slept_ms", (json_int_t)ms);
    return QPO_JOB_OK;
}

static qpo_job_status run_fail(const qpo_job *job, qpo_job_ctx *ctx, qpo_job_outcome *out,
                               qpo_err *err) {
    long long times;
    if (payload_int(job, "times", &times, err) < 0)
        return QPO_JOB_FATAL;
    if (job->attempt > times)
        return QPO_JOB_OK;
    qpo_err_set(err, QPO_EXIT_RUNTIME, "failing attempt %d of the first %lld on purpose",
                job->attempt, times);
    return json_is_true(json_object_get(job->payload, "fatal")) ? QPO_JOB_FATAL : QPO_JOB_RETRY;
}

static bool plain_identifier(const char *s) {
    if (!s || !*s || strlen(s) > 63 || !(islower((unsigned char)*s) || *s == '_'))
        return false;
    for (const char *p = s; *p; p++)
        if (!(islower((unsigned char)*p) || isdigit((unsigned char)*p) || *p == '_'))
            return false;
    return true;
}

static int insert_row(PGconn *conn, const qpo_job *job, void *arg, qpo_err *err) {
    const char *worker = arg;
    const char *table = json_string_value(json_object_get(job->payload, "table"));
    char *quoted = PQescapeIdentifier(conn, table, strlen(table));
    if (!quoted)
        return qpo_err_set(err, QPO_EXIT_RUNTIME, "quoting table name: %s", PQerrorMessage(conn));
    char sql[256], id[32], attempt[16];
    snprintf(sql, sizeof(sql), "INSERT INTO %s (job_id, attempt, worker) VALUES ($1, $2, $3)",
             quoted);
    PQfreemem(quoted);
    snprintf(id, sizeof(id), "%lld", (long long)job->id);
    snprintf(attempt, sizeof(attempt), "%d", job->attempt);
    const char *params[] = {id, attempt, worker};
    PGresult *res = qpo_db_query(conn, sql, 3, params, err);
    PQclear(res);
    return res ? 0 : -1;
}

static qpo_job_status run_test_insert(const qpo_job *job, qpo_job_ctx *ctx, qpo_job_outcome *out,
                                      qpo_err *err) {
    const char *table = json_string_value(json_object_get(job->payload, "table"));
    if (!plain_identifier(table)) {
        qpo_err_set(err, QPO_EXIT_USAGE, "bad payload of test-insert job %lld", (long long)job->id);
        qpo_err_detail(err, "field \"table\" must match [a-z_][a-z0-9_]* (63 chars at most)");
        return QPO_JOB_FATAL;
    }
    long long ms;
    if (payload_int(job, "ms", &ms, err) < 0)
        return QPO_JOB_FATAL;
    if (!sleep_ms(ctx, ms))
        return QPO_JOB_CANCELLED;
    out->commit = insert_row;
    out->commit_arg = strdup(qpo_job_worker_name(ctx));
    out->free_arg = free;
    return QPO_JOB_OK;
}

void qpo_test_register_kinds(void) {
    static const qpo_handler kinds[] = {
        {"sleep", "cpu", run_sleep},
        {"fail", "cpu", run_fail},
        {"test-insert", "cpu", run_test_insert},
    };
    for (size_t i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++)
        qpo_handler_register(&kinds[i]);
}
