/* A worker's local queue (--prefetch): jobs claimed ahead of its free threads. They keep
 * their leases while they wait (heartbeats cover them, the reaper leaves them alone), a
 * cancelled one is dropped at once (its room is claimed again), and SIGTERM hands them back as
 * if never claimed. The real qpo binary against a real PostgreSQL. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <signal.h>
#include <stdio.h>

#include "pgtest.h"
#include "qtest.h"

static qpo_pgtest *pg;

typedef struct db {
    char info[600];
    PGconn *conn;
} db;

static void fresh(db *d) {
    snprintf(d->info, sizeof(d->info), "%s", qpo_pgtest_new_db(pg));
    d->conn = qt_connect(d->info);
}

static void enqueue_sleeps(db *d, int n, int ms) {
    char sql[200];
    snprintf(sql, sizeof(sql),
             "INSERT INTO qpo.jobs (kind, payload) SELECT 'sleep', '{\"ms\": %d}' FROM "
             "generate_series(1, %d)",
             ms, n);
    qt_exec(d->conn, sql);
}

/* A worker of one thread, busy with job 1 (ms long), so jobs enqueued after it can only wait
 * in its local queue. Job 1 goes in alone first: one claim's rows come back in no order. */
static pid_t busy_worker(db *d, int ms, const char *prefetch, const char *lease) {
    enqueue_sleeps(d, 1, ms);
    pid_t w = qt_worker(d->info, "--kinds", "sleep", "--name", "w1", "--concurrency", "1",
                        "--prefetch", prefetch, "--lease", lease, "--grace", "0.5", NULL);
    assert_true(qt_wait_for(d->conn, 60, "(SELECT state = 'running' FROM qpo.jobs WHERE id = 1)"));
    return w;
}

static void test_held_jobs_keep_their_leases(void **state) {
    db d;
    fresh(&d);
    /* Lease 1.5 s; the three jobs wait behind job 1 for about 4 s. Without heartbeats their
     * leases would run out and the worker's own reaper would put them back (an attempt
     * spent, a 'lease ... expired' event). */
    pid_t w = busy_worker(&d, 4000, "3", "1.5");
    enqueue_sleeps(&d, 3, 1);
    assert_true(qt_wait_for(d.conn, 30,
                            "(SELECT count(*) FROM qpo.jobs WHERE state = 'running' AND "
                            "lease_owner = 'w1') = 4"));
    /* Held past two lease lengths, still running under their first lease. */
    assert_true(qt_wait_for(d.conn, 30,
                            "EXISTS (SELECT 1 FROM qpo.jobs WHERE id = 1 AND started_at < now() - "
                            "interval '3 s')"));
    assert_int_equal(qt_int(d.conn, "SELECT count(*) FROM qpo.jobs WHERE id > 1 AND state = "
                                    "'running' AND attempt = 1 AND lease_expires_at > now()"),
                     3);
    assert_true(
        qt_wait_for(d.conn, 30, "(SELECT count(*) FROM qpo.jobs WHERE state = 'succeeded') = 4"));
    kill(w, SIGTERM);
    assert_int_equal(qt_wait_exit(w, 30), 0);
    assert_int_equal(qt_int(d.conn, "SELECT max(attempt) FROM qpo.jobs"), 1);
    assert_int_equal(qt_int(d.conn, "SELECT count(*) FROM qpo.job_events WHERE to_state <> "
                                    "'succeeded' AND from_state = 'running'"),
                     0);
    PQfinish(d.conn);
}

static void test_cancelled_held_job_is_dropped(void **state) {
    db d;
    fresh(&d);
    pid_t w = busy_worker(&d, 600000, "1", "30");
    enqueue_sleeps(&d, 1, 1);
    assert_true(qt_wait_for(d.conn, 30,
                            "(SELECT state = 'running' AND lease_owner = 'w1' FROM qpo.jobs "
                            "WHERE id = 2)"));
    qt_exec(d.conn, "SELECT qpo.cancel_job(2, 'not needed')");
    /* Its room in the local queue is free again: a new job is claimed while job 1 still
     * runs (a kept item would fill the only place until job 1 ended, in 10 minutes). */
    enqueue_sleeps(&d, 1, 1);
    assert_true(qt_wait_for(d.conn, 30,
                            "(SELECT state = 'running' AND lease_owner = 'w1' FROM qpo.jobs "
                            "WHERE id = 3)"));
    assert_string_equal(qt_text(d.conn, "SELECT state FROM qpo.jobs WHERE id = 1"), "running");
    assert_string_equal(qt_text(d.conn, "SELECT string_agg(to_state, ' ' ORDER BY id) FROM "
                                        "qpo.job_events WHERE job_id = 2"),
                        "queued running cancelled");
    kill(w, SIGTERM);
    assert_int_equal(qt_wait_exit(w, 30), 0);
    PQfinish(d.conn);
}

static void test_sigterm_hands_back_the_local_queue(void **state) {
    db d;
    fresh(&d);
    pid_t w = busy_worker(&d, 600000, "5", "30");
    enqueue_sleeps(&d, 5, 1);
    assert_true(qt_wait_for(d.conn, 30,
                            "(SELECT count(*) FROM qpo.jobs WHERE state = 'running' AND "
                            "lease_owner = 'w1') = 6"));
    kill(w, SIGTERM);
    assert_int_equal(qt_wait_exit(w, 30), 0);
    /* Job 1 ran: released after the grace period, its attempt not counted. The others never
     * started: back as they were before the claim. */
    assert_string_equal(qt_text(d.conn, "SELECT string_agg(state || ':' || attempt || '/' || "
                                        "max_attempts, ' ' ORDER BY id) FROM qpo.jobs"),
                        "queued:1/6 queued:0/5 queued:0/5 queued:0/5 queued:0/5 queued:0/5");
    assert_int_equal(qt_int(d.conn, "SELECT count(*) FROM qpo.jobs WHERE id > 1 AND (started_at "
                                    "IS NOT NULL OR last_error IS NOT NULL)"),
                     0);
    /* A new worker takes them as first attempts. */
    qt_exec(d.conn, "SELECT qpo.cancel_job(1, 'too long for this test')");
    pid_t w2 = qt_worker(d.info, "--kinds", "sleep", "--name", "w2", "--exit-when-idle", NULL);
    assert_int_equal(qt_wait_exit(w2, 60), 0);
    assert_string_equal(qt_text(d.conn, "SELECT string_agg(state || ':' || attempt, ' ' ORDER BY "
                                        "id) FROM qpo.jobs WHERE id > 1"),
                        "succeeded:1 succeeded:1 succeeded:1 succeeded:1 succeeded:1");
    PQfinish(d.conn);
}

static void test_prefetch_must_be_a_count(void **state) {
    db d;
    fresh(&d);
    assert_int_equal(qt_wait_exit(qt_worker(d.info, "--prefetch", "-1", NULL), 30), 2);
    assert_int_equal(qt_wait_exit(qt_worker(d.info, "--local-queue", "many", NULL), 30), 2);
    PQfinish(d.conn);
}

int main(void) {
    pg = qpo_pgtest_start();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_prefetch_must_be_a_count),
        cmocka_unit_test(test_held_jobs_keep_their_leases),
        cmocka_unit_test(test_cancelled_held_job_is_dropped),
        cmocka_unit_test(test_sigterm_hands_back_the_local_queue),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    qpo_pgtest_stop(pg);
    return rc;
}
