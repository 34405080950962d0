/* The queue's rules against a real PostgreSQL, through the client API and plain SQL: defaults,
 * the state machine and its events, idempotency, dependencies, retries with backoff, fencing,
 * cancellation and release. No worker process: each test drives the transitions itself. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <string.h>

#include "db.h"
#include "pgtest.h"
#include "qtest.h"
#include "queue.h"

static qpo_pgtest *pg;

static PGconn *fresh(void) {
    return qt_connect(qpo_pgtest_new_db(pg));
}

static int64_t enqueue(PGconn *conn, const char *kind, const char *payload) {
    qpo_enqueue_opts o = {.kind = kind, .payload_json = payload};
    int64_t id = 0;
    bool existed = true;
    qpo_err err = {0};
    assert_int_equal(qpo_enqueue(conn, &o, &id, &existed, &err), 0);
    assert_false(existed);
    return id;
}

static qpo_lease_ref claim_one(PGconn *conn, const char *kind, const char *owner, double lease) {
    const char *kinds[] = {kind};
    qpo_claimed *jobs = NULL;
    size_t n = 0;
    qpo_err err = {0};
    assert_int_equal(qpo_claim(conn, "cpu", kinds, 1, 1, owner, lease, &jobs, &n, &err), 0);
    assert_int_equal(n, 1);
    qpo_lease_ref ref = {jobs[0].id, jobs[0].attempt};
    qpo_claimed_free(jobs, n);
    return ref;
}

static bool complete(PGconn *conn, const char *owner, qpo_lease_ref ref) {
    bool done = false;
    qpo_err err = {0};
    json_t *result = json_pack("{si}", "ok", 1);
    assert_int_equal(qpo_complete_batch(conn, owner, &ref, &result, 1, &done, &err), 0);
    json_decref(result);
    return done;
}

static const char *state_of(PGconn *conn, int64_t id) {
    return qt_text(conn, "SELECT state FROM qpo.jobs WHERE id = %lld", (long long)id);
}

/* The events of a job, as "from>to" joined by spaces. */
static const char *history(PGconn *conn, int64_t id) {
    return qt_text(conn,
                   "SELECT string_agg(coalesce(from_state, '-') || '>' || to_state, ' ' ORDER BY "
                   "id) FROM qpo.job_events WHERE job_id = %lld",
                   (long long)id);
}

static void test_plain_insert_gets_defaults_and_one_notification(void **state) {
    PGconn *conn = fresh();
    char info[600]; /* the listener, on the same database */
    snprintf(info, sizeof(info), "host=%s port=%s user=postgres dbname=%s", PQhost(conn),
             PQport(conn), PQdb(conn));
    PGconn *listener = qt_connect(info);
    qt_exec(listener, "LISTEN qpo_jobs");
    qt_exec(conn, "INSERT INTO qpo.jobs (kind, payload) VALUES ('noop', '{}')");
    qt_exec(conn, "INSERT INTO qpo.jobs (kind) VALUES ('train'), ('not-registered')");
    assert_string_equal(qt_text(conn, "SELECT string_agg(kind || ':' || class || ':' || "
                                      "max_attempts || ':' || state, ' ' ORDER BY id) FROM "
                                      "qpo.jobs"),
                        "noop:cpu:5:queued train:gpu:5:queued not-registered:cpu:5:queued");
    assert_int_equal(qt_int(conn, "SELECT count(*) FROM qpo.job_events WHERE from_state IS NULL "
                                  "AND to_state = 'queued'"),
                     3);
    /* Drain, then one 10k-row statement: one notification, not ten thousand. */
    PQconsumeInput(listener);
    for (PGnotify *n; (n = PQnotifies(listener));)
        PQfreemem(n);
    qt_exec(conn, "INSERT INTO qpo.jobs (kind) SELECT 'noop' FROM generate_series(1, 10000)");
    qt_exec(listener, "SELECT 1"); /* a round trip, so the notification has arrived */
    PQconsumeInput(listener);
    int notes = 0;
    for (PGnotify *n; (n = PQnotifies(listener)); notes++)
        PQfreemem(n);
    assert_int_equal(notes, 1);
    PQfinish(listener);
    PQfinish(conn);
}

static void test_schema_refuses_impossible_states(void **state) {
    PGconn *conn = fresh();
    int64_t id = enqueue(conn, "noop", NULL);
    const char *bad[] = {
        "UPDATE qpo.jobs SET state = 'running' WHERE id = %lld",   /* no lease */
        "UPDATE qpo.jobs SET result = '{}' WHERE id = %lld",       /* not succeeded */
        "UPDATE qpo.jobs SET state = 'succeeded' WHERE id = %lld", /* no finished_at */
        "UPDATE qpo.jobs SET state = 'nonsense' WHERE id = %lld",
        "UPDATE qpo.jobs SET attempt = 9 WHERE id = %lld",     /* > max_attempts */
        "UPDATE qpo.jobs SET payload = '[1]' WHERE id = %lld", /* not an object */
        "INSERT INTO qpo.jobs (kind, class) VALUES ('noop', 'tpu') RETURNING %lld",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char sql[256];
        snprintf(sql, sizeof(sql), bad[i], (long long)id);
        PGresult *res = PQexec(conn, sql);
        assert_int_equal(PQresultStatus(res), PGRES_FATAL_ERROR);
        assert_string_equal(PQresultErrorField(res, PG_DIAG_SQLSTATE), "23514");
        PQclear(res);
    }
    PQfinish(conn);
}

static void test_job_events_are_append_only(void **state) {
    PGconn *conn = fresh();
    enqueue(conn, "noop", NULL);
    const char *refused[] = {"UPDATE qpo.job_events SET to_state = 'dead'",
                             "DELETE FROM qpo.job_events", "TRUNCATE qpo.job_events"};
    for (size_t i = 0; i < 3; i++) {
        PGresult *res = PQexec(conn, refused[i]);
        assert_int_equal(PQresultStatus(res), PGRES_FATAL_ERROR);
        assert_non_null(strstr(PQresultErrorMessage(res), "append-only"));
        PQclear(res);
    }
    assert_int_equal(qt_int(conn, "SELECT count(*) FROM qpo.job_events"), 1);
    PQfinish(conn);
}

static void test_claim_complete_and_history(void **state) {
    PGconn *conn = fresh();
    int64_t low = enqueue(conn, "noop", NULL);
    qpo_enqueue_opts hi = {.kind = "noop", .priority = 5};
    int64_t high = 0;
    qpo_err err = {0};
    assert_int_equal(qpo_enqueue(conn, &hi, &high, NULL, &err), 0);
    qpo_lease_ref first = claim_one(conn, "noop", "w1", 30);
    assert_int_equal(first.id, high); /* highest priority first */
    assert_int_equal(first.attempt, 1);
    assert_string_equal(
        qt_text(conn, "SELECT lease_owner FROM qpo.jobs WHERE id = %lld", (long long)high), "w1");
    assert_true(complete(conn, "w1", first));
    assert_false(complete(conn, "w1", first)); /* a result is written once */
    assert_string_equal(state_of(conn, high), "succeeded");
    assert_string_equal(
        qt_text(conn, "SELECT result::text FROM qpo.jobs WHERE id = %lld", (long long)high),
        "{\"ok\": 1}");
    assert_string_equal(history(conn, high), "->queued queued>running running>succeeded");
    assert_string_equal(state_of(conn, low), "queued");
    /* A kind not asked for is not claimed. */
    const char *other[] = {"sleep"};
    qpo_claimed *jobs = NULL;
    size_t n = 9;
    assert_int_equal(qpo_claim(conn, "cpu", other, 1, 10, "w1", 30, &jobs, &n, &err), 0);
    assert_int_equal(n, 0);
    PQfinish(conn);
}

static void test_idempotent_enqueue(void **state) {
    PGconn *conn = fresh();
    qpo_enqueue_opts o = {.kind = "noop", .idempotency_key = "run-1/train/0"};
    int64_t a = 0, b = 0;
    bool existed = true;
    qpo_err err = {0};
    assert_int_equal(qpo_enqueue(conn, &o, &a, &existed, &err), 0);
    assert_false(existed);
    o.payload_json = "{\"different\": true}";
    assert_int_equal(qpo_enqueue(conn, &o, &b, &existed, &err), 0);
    assert_true(existed);
    assert_int_equal(a, b);
    /* In one batch: a new key twice, an old key, and no key. */
    qpo_enqueue_opts batch[] = {{.kind = "noop", .idempotency_key = "k2"},
                                {.kind = "noop", .idempotency_key = "k2"},
                                {.kind = "noop", .idempotency_key = "run-1/train/0"},
                                {.kind = "noop"}};
    int64_t ids[4];
    bool ex[4];
    assert_int_equal(qpo_enqueue_batch_ex(conn, batch, 4, ids, ex, &err), 0);
    assert_int_equal(ids[0], ids[1]);
    assert_int_equal(ids[2], a);
    assert_false(ex[0]);
    assert_true(ex[1]);
    assert_true(ex[2]);
    assert_false(ex[3]);
    assert_int_equal(qt_int(conn, "SELECT count(*) FROM qpo.jobs"), 3);
    /* A bad payload is named and nothing of the batch is written. */
    qpo_enqueue_opts bad[] = {{.kind = "noop"}, {.kind = "noop", .payload_json = "[1,2]"}};
    assert_int_equal(qpo_enqueue_batch(conn, bad, 2, ids, &err), -1);
    assert_int_equal(err.code, QPO_EXIT_USAGE);
    assert_non_null(strstr(err.detail, "job 1 of the batch"));
    assert_int_equal(qt_int(conn, "SELECT count(*) FROM qpo.jobs"), 3);
    PQfinish(conn);
}

static void test_dependencies_unblock_and_cancel(void **state) {
    PGconn *conn = fresh();
    qpo_err err = {0};
    int64_t a = enqueue(conn, "noop", NULL), b = enqueue(conn, "noop", NULL);
    int64_t ab[] = {a, b};
    qpo_enqueue_opts child = {.kind = "noop", .parents = ab, .nparents = 2};
    int64_t c = 0, d = 0;
    assert_int_equal(qpo_enqueue(conn, &child, &c, NULL, &err), 0);
    qpo_enqueue_opts grandchild = {.kind = "noop", .parents = &c, .nparents = 1};
    assert_int_equal(qpo_enqueue(conn, &grandchild, &d, NULL, &err), 0);
    assert_string_equal(state_of(conn, c), "blocked");
    assert_string_equal(state_of(conn, d), "blocked");
    /* One parent done: still blocked. */
    qpo_lease_ref ra = claim_one(conn, "noop", "w", 30);
    assert_int_equal(ra.id, a);
    assert_true(complete(conn, "w", ra));
    assert_string_equal(state_of(conn, c), "blocked");
    /* The other parent dies: the child and its child are cancelled, naming the parent. */
    qpo_lease_ref rb = claim_one(conn, "noop", "w", 30);
    char st[16];
    qpo_backoff bo = {10, 100};
    assert_int_equal(qpo_fail(conn, "w", rb, "broken input", true, bo, st, &err), 0);
    assert_string_equal(st, "dead");
    assert_string_equal(state_of(conn, c), "cancelled");
    assert_string_equal(state_of(conn, d), "cancelled");
    char want[64];
    snprintf(want, sizeof(want), "parent job %lld is dead", (long long)b);
    assert_string_equal(
        qt_text(conn, "SELECT last_error FROM qpo.jobs WHERE id = %lld", (long long)c), want);
    /* Retrying the dead parent puts its descendants back to blocked, then to work. */
    assert_int_equal(qpo_job_retry(conn, b, &err), 0);
    assert_string_equal(state_of(conn, b), "queued");
    assert_string_equal(state_of(conn, c), "blocked");
    assert_string_equal(state_of(conn, d), "blocked");
    rb = claim_one(conn, "noop", "w", 30);
    assert_int_equal(rb.id, b);
    assert_int_equal(rb.attempt, 2); /* the fencing token keeps growing */
    assert_true(complete(conn, "w", rb));
    assert_string_equal(state_of(conn, c), "queued");
    assert_true(complete(conn, "w", claim_one(conn, "noop", "w", 30)));
    assert_string_equal(state_of(conn, d), "queued");
    /* A parent that does not exist is refused, and nothing is written. */
    int64_t ghost = 999999;
    qpo_enqueue_opts orphan = {.kind = "noop", .parents = &ghost, .nparents = 1};
    int64_t before = qt_int(conn, "SELECT count(*) FROM qpo.jobs");
    assert_int_equal(qpo_enqueue(conn, &orphan, &c, NULL, &err), -1);
    assert_non_null(strstr(err.msg, "parent job 999999 does not exist"));
    assert_int_equal(qt_int(conn, "SELECT count(*) FROM qpo.jobs"), before);
    PQfinish(conn);
}

static void test_retries_back_off_then_die(void **state) {
    PGconn *conn = fresh();
    qpo_err err = {0};
    qpo_enqueue_opts o = {.kind = "fail", .max_attempts = 3};
    int64_t id = 0;
    assert_int_equal(qpo_enqueue(conn, &o, &id, NULL, &err), 0);
    qpo_backoff bo = {60000, 100000}; /* 1 min base: far beyond the test's own duration */
    for (int attempt = 1; attempt <= 3; attempt++) {
        qt_exec(conn, "UPDATE qpo.jobs SET run_after = now() WHERE state = 'failed'");
        qpo_lease_ref ref = claim_one(conn, "fail", "w", 30);
        assert_int_equal(ref.attempt, attempt);
        char st[16];
        assert_int_equal(qpo_fail(conn, "w", ref, "boom", false, bo, st, &err), 0);
        assert_string_equal(st, attempt < 3 ? "failed" : "dead");
        if (attempt < 3) {
            /* Equal jitter: between half and all of min(cap, base * 2^(attempt-1)). */
            double full = attempt == 1 ? 60.0 : 100.0;
            double delay = (double)qt_int(conn,
                                          "SELECT (extract(epoch FROM run_after - now()) "
                                          "* 1000)::bigint FROM qpo.jobs WHERE id = %lld",
                                          (long long)id) /
                           1000.0;
            assert_true(delay >= full / 2 - 1 && delay <= full + 1);
            /* Not claimable before run_after. */
            const char *kinds[] = {"fail"};
            qpo_claimed *jobs = NULL;
            size_t n = 9;
            assert_int_equal(qpo_claim(conn, "cpu", kinds, 1, 1, "w", 30, &jobs, &n, &err), 0);
            assert_int_equal(n, 0);
        }
    }
    assert_string_equal(history(conn, id), "->queued queued>running running>failed "
                                           "failed>running running>failed failed>running "
                                           "running>dead");
    assert_int_equal(qt_int(conn,
                            "SELECT count(*) FROM qpo.job_events WHERE job_id = %lld AND "
                            "error = 'boom'",
                            (long long)id),
                     3);
    /* The cap holds for large attempts. */
    assert_true(qt_int(conn, "SELECT (extract(epoch FROM qpo.retry_delay(40, 1000, 5000)) * "
                             "1000)::bigint") <= 5000);
    PQfinish(conn);
}

static void test_fencing_after_lease_expiry(void **state) {
    PGconn *conn = fresh();
    qpo_err err = {0};
    int64_t id = enqueue(conn, "noop", NULL);
    qpo_lease_ref slow = claim_one(conn, "noop", "slow", 30);
    /* The slow worker's lease runs out (moved into the past rather than waited for). */
    qt_exec(conn, "UPDATE qpo.jobs SET lease_expires_at = now() - interval '1 s'");
    size_t reaped = 0;
    assert_int_equal(qpo_reap(conn, &reaped, &err), 0);
    assert_int_equal(reaped, 1);
    assert_string_equal(state_of(conn, id), "queued");
    qpo_lease_ref fast = claim_one(conn, "noop", "fast", 30);
    assert_int_equal(fast.attempt, 2);
    /* The slow worker wakes up: heartbeat, completion and failure all find the fence shut. */
    bool held = true;
    assert_int_equal(qpo_heartbeat(conn, "slow", &slow, 1, 30, &held, &err), 0);
    assert_false(held);
    assert_false(complete(conn, "slow", slow));
    char st[16] = "x";
    qpo_backoff bo = {10, 100};
    assert_int_equal(qpo_fail(conn, "slow", slow, "late", false, bo, st, &err), 0);
    assert_string_equal(st, "");
    /* Same attempt, other owner: refused too. */
    assert_false(complete(conn, "slow", fast));
    assert_true(complete(conn, "fast", fast));
    assert_string_equal(state_of(conn, id), "succeeded");
    assert_string_equal(history(conn, id), "->queued queued>running running>queued "
                                           "queued>running running>succeeded");
    assert_non_null(strstr(qt_text(conn,
                                   "SELECT error FROM qpo.job_events WHERE job_id = %lld "
                                   "AND from_state = 'running' AND to_state = 'queued'",
                                   (long long)id),
                           "lease of slow expired"));
    /* With its attempts spent, an expired job is dead. */
    qpo_enqueue_opts once = {.kind = "noop", .max_attempts = 1};
    int64_t one = 0;
    assert_int_equal(qpo_enqueue(conn, &once, &one, NULL, &err), 0);
    claim_one(conn, "noop", "slow", 30);
    qt_exec(conn, "UPDATE qpo.jobs SET lease_expires_at = now() - interval '1 s' WHERE state = "
                  "'running'");
    assert_int_equal(qpo_reap(conn, &reaped, &err), 0);
    assert_string_equal(state_of(conn, one), "dead");
    PQfinish(conn);
}

static void test_cancel_and_release(void **state) {
    PGconn *conn = fresh();
    qpo_err err = {0};
    int64_t queued = enqueue(conn, "noop", NULL);
    assert_int_equal(qpo_job_cancel(conn, queued, "not needed", &err), 0);
    assert_string_equal(state_of(conn, queued), "cancelled");
    assert_int_equal(qpo_job_cancel(conn, queued, "again", &err), -1);
    assert_non_null(strstr(err.msg, "it is cancelled"));
    assert_int_equal(qpo_job_cancel(conn, 424242, "x", &err), -1);
    assert_non_null(strstr(err.msg, "does not exist"));
    /* A running job: cancelled at once; its worker's heartbeat and completion find it gone. */
    int64_t running = enqueue(conn, "noop", NULL);
    qpo_lease_ref ref = claim_one(conn, "noop", "w", 30);
    assert_int_equal(ref.id, running);
    assert_int_equal(qpo_job_cancel(conn, running, "operator", &err), 0);
    bool held = true;
    assert_int_equal(qpo_heartbeat(conn, "w", &ref, 1, 30, &held, &err), 0);
    assert_false(held);
    assert_false(complete(conn, "w", ref));
    assert_string_equal(state_of(conn, running), "cancelled");
    /* Release at shutdown: back to queued and the attempt is not counted. */
    int64_t rel = enqueue(conn, "noop", NULL);
    qpo_lease_ref r = claim_one(conn, "noop", "w", 30);
    assert_int_equal(r.id, rel);
    size_t released = 0;
    assert_int_equal(qpo_release(conn, "w", &r, 1, &released, &err), 0);
    assert_int_equal(released, 1);
    assert_string_equal(qt_text(conn,
                                "SELECT state || ' ' || (max_attempts - attempt) FROM "
                                "qpo.jobs WHERE id = %lld",
                                (long long)rel),
                        "queued 5");
    qpo_lease_ref again = claim_one(conn, "noop", "w", 30);
    assert_true(complete(conn, "w", again));
    /* Unclaim (a local queue given back): fenced like the rest, then as before the claim. */
    int64_t unc = enqueue(conn, "noop", NULL);
    qpo_lease_ref u = claim_one(conn, "noop", "w", 30);
    assert_int_equal(u.id, unc);
    size_t back = 9;
    qpo_lease_ref stale = {u.id, u.attempt + 1};
    assert_int_equal(qpo_unclaim(conn, "w", &stale, 1, &back, &err), 0);
    assert_int_equal(back, 0);
    assert_int_equal(qpo_unclaim(conn, "other", &u, 1, &back, &err), 0);
    assert_int_equal(back, 0);
    assert_int_equal(qpo_unclaim(conn, "w", &u, 1, &back, &err), 0);
    assert_int_equal(back, 1);
    assert_string_equal(qt_text(conn,
                                "SELECT state || ' ' || attempt || '/' || max_attempts || ' ' || "
                                "(started_at IS NULL) FROM qpo.jobs WHERE id = %lld",
                                (long long)unc),
                        "queued 0/5 true");
    assert_true(complete(conn, "w", claim_one(conn, "noop", "w", 30)));
    /* Succeeded jobs cannot be cancelled or retried. */
    assert_int_equal(qpo_job_retry(conn, rel, &err), -1);
    assert_non_null(strstr(err.msg, "it is succeeded"));
    PQfinish(conn);
}

static void test_complete_and_claim_in_one_statement(void **state) {
    PGconn *conn = fresh();
    qpo_err err = {0};
    for (int i = 0; i < 5; i++)
        enqueue(conn, "noop", NULL);
    qpo_lease_ref mine = claim_one(conn, "noop", "w", 30);
    qpo_lease_ref stale = claim_one(conn, "noop", "w", 30);
    stale.attempt = 7; /* a claim that is not the current one */
    qpo_lease_ref refs[] = {mine, stale};
    json_t *results[] = {json_pack("{si}", "n", 1), NULL};
    bool done[2];
    const char *kinds[] = {"noop"};
    qpo_claimed *jobs = NULL;
    size_t n = 0;
    assert_int_equal(qpo_complete_and_claim(conn, "w", refs, results, 2, done, "cpu", kinds, 1, 2,
                                            30, &jobs, &n, &err),
                     0);
    json_decref(results[0]);
    assert_true(done[0]);
    assert_false(done[1]);
    assert_int_equal(n, 2);
    assert_int_equal(jobs[0].attempt, 1);
    assert_string_equal(jobs[0].kind, "noop");
    assert_true(json_is_object(jobs[0].payload));
    qpo_claimed_free(jobs, n);
    assert_string_equal(qt_text(conn, "SELECT string_agg(state, ' ' ORDER BY id) FROM qpo.jobs"),
                        "succeeded running running running queued");
    assert_int_equal(qt_int(conn, "SELECT count(*) FROM qpo.job_events WHERE to_state = "
                                  "'running'"),
                     4);
    assert_int_equal(qt_int(conn, "SELECT count(*) FROM qpo.job_events WHERE to_state = "
                                  "'succeeded'"),
                     1);
    PQfinish(conn);
}

int main(void) {
    pg = qpo_pgtest_start();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_plain_insert_gets_defaults_and_one_notification),
        cmocka_unit_test(test_schema_refuses_impossible_states),
        cmocka_unit_test(test_job_events_are_append_only),
        cmocka_unit_test(test_claim_complete_and_history),
        cmocka_unit_test(test_complete_and_claim_in_one_statement),
        cmocka_unit_test(test_idempotent_enqueue),
        cmocka_unit_test(test_dependencies_unblock_and_cancel),
        cmocka_unit_test(test_retries_back_off_then_die),
        cmocka_unit_test(test_fencing_after_lease_expiry),
        cmocka_unit_test(test_cancel_and_release),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    qpo_pgtest_stop(pg);
    return rc;
}
