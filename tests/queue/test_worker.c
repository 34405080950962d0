/* The worker runtime as users run it: `qpo worker` processes of the real binary against a
 * real PostgreSQL. Built-in kinds, retries through the runtime, cancelling a running job,
 * SIGTERM drain and release, and surviving a server restart. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

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

static void test_builtin_kinds_and_retries(void **state) {
    db d;
    fresh(&d);
    qt_exec(d.conn, "INSERT INTO qpo.jobs (kind, payload) VALUES ('noop', '{}'), "
                    "('sleep', '{\"ms\": 50}'), ('fail', '{\"times\": 2}'), "
                    "('fail', '{\"times\": 1, \"fatal\": true}'), ('sleep', '{\"ms\": \"x\"}')");
    pid_t w = qt_worker(d.info, "--class", "cpu", "--kinds", "noop,sleep,fail", "--name", "w1",
                        "--concurrency", "3", "--exit-when-idle", "--poll", "0.05", "--backoff-ms",
                        "20,100", NULL);
    assert_int_equal(qt_wait_exit(w, 60), 0);
    assert_string_equal(qt_text(d.conn, "SELECT string_agg(kind || ':' || state || ':' || "
                                        "attempt, ' ' ORDER BY id) FROM qpo.jobs"),
                        "noop:succeeded:1 sleep:succeeded:1 fail:succeeded:3 fail:dead:1 "
                        "sleep:dead:1");
    assert_string_equal(qt_text(d.conn, "SELECT result::text FROM qpo.jobs WHERE id = 2"),
                        "{\"slept_ms\": 50}");
    assert_non_null(strstr(qt_text(d.conn, "SELECT last_error FROM qpo.jobs WHERE id = 5"),
                           "\"ms\" must be a non-negative integer"));
    /* job_events agrees with the final states: the last event of each job is its state. */
    assert_int_equal(qt_int(d.conn, "SELECT count(*) FROM qpo.jobs j WHERE j.state <> (SELECT "
                                    "to_state FROM qpo.job_events e WHERE e.job_id = j.id "
                                    "ORDER BY id DESC LIMIT 1)"),
                     0);
    PQfinish(d.conn);
}

static void test_bad_usage_exits_2(void **state) {
    db d;
    fresh(&d);
    assert_int_equal(qt_wait_exit(qt_worker(d.info, "--class", "tpu", "--name", "x", NULL), 30), 2);
    assert_int_equal(qt_wait_exit(qt_worker(d.info, "--kinds", "no-such-kind", NULL), 30), 2);
    assert_int_equal(qt_wait_exit(qt_worker(d.info, "--concurrency", "0", NULL), 30), 2);
    /* --backend: gpu class only, and a name the policy knows */
    assert_int_equal(
        qt_wait_exit(qt_worker(d.info, "--class", "cpu", "--backend", "cpu", NULL), 30), 2);
    assert_int_equal(
        qt_wait_exit(qt_worker(d.info, "--class", "gpu", "--backend", "tpu", NULL), 30), 2);
    assert_int_equal(qt_wait_exit(qt_worker(d.info, "--class", "gpu", "--backend", "cpu",
                                            "--exit-when-idle", "--poll", "0.05", NULL),
                                  30),
                     0);
    PQfinish(d.conn);
}

static void test_cancel_running_job(void **state) {
    db d;
    fresh(&d);
    qt_exec(d.conn, "INSERT INTO qpo.jobs (kind, payload) VALUES ('sleep', '{\"ms\": 600000}')");
    pid_t w = qt_worker(d.info, "--kinds", "sleep", "--name", "w1", "--lease", "60", NULL);
    assert_true(qt_wait_for(d.conn, 60, "EXISTS (SELECT 1 FROM qpo.jobs WHERE state = 'running')"));
    qt_exec(d.conn, "SELECT qpo.cancel_job(1, 'operator changed their mind')");
    /* The handler hears of it (NOTIFY qpo_cancel, early heartbeat) and stops: with a 600 s
     * job and a 30 s grace period, exiting within 20 s shows it did. */
    kill(w, SIGTERM);
    assert_int_equal(qt_wait_exit(w, 20), 0);
    assert_string_equal(qt_text(d.conn, "SELECT state || ': ' || last_error FROM qpo.jobs"),
                        "cancelled: operator changed their mind");
    assert_string_equal(qt_text(d.conn, "SELECT string_agg(to_state, ' ' ORDER BY id) FROM "
                                        "qpo.job_events"),
                        "queued running cancelled");
    PQfinish(d.conn);
}

static void test_sigterm_drains_then_releases(void **state) {
    db d;
    fresh(&d);
    /* A short job finishes within the grace period; a long one is given back unspent. */
    qt_exec(d.conn, "INSERT INTO qpo.jobs (kind, payload) VALUES ('sleep', '{\"ms\": 300}'), "
                    "('sleep', '{\"ms\": 600000}')");
    pid_t w = qt_worker(d.info, "--kinds", "sleep", "--name", "w1", "--concurrency", "2", "--grace",
                        "1.5", NULL);
    assert_true(qt_wait_for(d.conn, 60,
                            "(SELECT count(*) FROM qpo.jobs WHERE state = "
                            "'running') = 2"));
    kill(w, SIGTERM);
    assert_int_equal(qt_wait_exit(w, 30), 0);
    assert_string_equal(qt_text(d.conn, "SELECT string_agg(state || ':' || attempt || '/' || "
                                        "max_attempts, ' ' ORDER BY id) FROM qpo.jobs"),
                        "succeeded:1/5 queued:1/6");
    assert_non_null(strstr(qt_text(d.conn, "SELECT error FROM qpo.job_events WHERE job_id = 2 "
                                           "ORDER BY id DESC LIMIT 1"),
                           "released by w1"));
    PQfinish(d.conn);
}

static void test_worker_survives_server_restart(void **state) {
    db d;
    fresh(&d);
    pid_t w = qt_worker(d.info, "--kinds", "noop,sleep", "--name", "w1", "--concurrency", "2",
                        "--poll", "0.2", NULL);
    qt_exec(d.conn, "INSERT INTO qpo.jobs (kind) SELECT 'noop' FROM generate_series(1, 50)");
    assert_true(qt_wait_for(d.conn, 60,
                            "(SELECT count(*) FROM qpo.jobs WHERE state = "
                            "'succeeded') = 50"));
    qt_exec(d.conn, "INSERT INTO qpo.jobs (kind, payload) VALUES ('sleep', '{\"ms\": 1500}')");
    assert_true(qt_wait_for(d.conn, 60, "EXISTS (SELECT 1 FROM qpo.jobs WHERE state = 'running')"));
    qpo_pgtest_restart(pg); /* drops every connection, the worker's and ours */
    PQfinish(d.conn);
    d.conn = qt_connect(d.info);
    qt_exec(d.conn, "INSERT INTO qpo.jobs (kind) SELECT 'noop' FROM generate_series(1, 50)");
    /* The sleep job completes on the reconnected thread connection and the new jobs run. */
    assert_true(qt_wait_for(d.conn, 60,
                            "(SELECT count(*) FROM qpo.jobs WHERE state = "
                            "'succeeded') = 101"));
    kill(w, SIGTERM);
    assert_int_equal(qt_wait_exit(w, 30), 0);
    assert_int_equal(qt_int(d.conn, "SELECT max(attempt) FROM qpo.jobs"), 1);
    PQfinish(d.conn);
}

/* Runs `qpo ARGS --db info`; returns the exit code and the first line of stdout. */
static int qpo_cli(const char *info, char *line, size_t n, const char *args) {
    char cmd[1400];
    snprintf(cmd, sizeof(cmd), "'%s' %s --db '%s' 2>/dev/null", qpo_test_binary(), args, info);
    FILE *p = popen(cmd, "r");
    assert_non_null(p);
    line[0] = '\0';
    if (!fgets(line, (int)n, p))
        line[0] = '\0';
    line[strcspn(line, "\n")] = '\0';
    char rest[256];
    while (fgets(rest, sizeof(rest), p))
        ;
    int status = pclose(p);
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

static void test_jobs_cli(void **state) {
    db d;
    fresh(&d);
    char out[256];
    assert_int_equal(qpo_cli(d.info, out, sizeof(out), "jobs enqueue noop --key only-once"), 0);
    assert_string_equal(out, "1");
    assert_int_equal(qpo_cli(d.info, out, sizeof(out), "jobs enqueue noop --key only-once"), 0);
    assert_string_equal(out, "1 (existing job with this key)");
    assert_int_equal(qpo_cli(d.info, out, sizeof(out),
                             "jobs enqueue sleep --payload '{\"ms\": 1}' --after 1 --priority 3"),
                     0);
    long long child = atoll(out); /* ids are not dense: a conflicting key used one up */
    assert_true(child > 1);
    assert_string_equal(qt_text(d.conn,
                                "SELECT state || ' ' || priority FROM qpo.jobs WHERE id "
                                "= %lld",
                                child),
                        "blocked 3");
    assert_int_equal(qpo_cli(d.info, out, sizeof(out), "jobs cancel 1 --reason 'no longer needed'"),
                     0);
    assert_string_equal(qt_text(d.conn,
                                "SELECT state || ': ' || last_error FROM qpo.jobs WHERE "
                                "id = %lld",
                                child),
                        "cancelled: parent job 1 is cancelled");
    assert_int_equal(qpo_cli(d.info, out, sizeof(out), "jobs cancel 1"), 2);
    assert_int_equal(qpo_cli(d.info, out, sizeof(out), "jobs retry 1"), 0);
    assert_string_equal(qt_text(d.conn, "SELECT string_agg(state, ' ' ORDER BY id) FROM qpo.jobs"),
                        "queued blocked");
    char show[64], want[64];
    snprintf(show, sizeof(show), "jobs show %lld", child);
    snprintf(want, sizeof(want), "id                %lld", child);
    assert_int_equal(qpo_cli(d.info, out, sizeof(out), show), 0);
    assert_string_equal(out, want);
    assert_int_equal(qpo_cli(d.info, out, sizeof(out), "jobs show 99"), 2);
    assert_int_equal(qpo_cli(d.info, out, sizeof(out), "jobs list --state blocked"), 0);
    assert_int_equal(qpo_cli(d.info, out, sizeof(out), "jobs enqueue noop --payload '[1]'"), 2);
    assert_int_equal(qpo_cli(d.info, out, sizeof(out), "jobs enqueue noop --after x"), 2);
    assert_int_equal(qpo_cli(d.info, out, sizeof(out), "jobs frobnicate 1"), 2);
    assert_int_equal(qt_int(d.conn, "SELECT count(*) FROM qpo.jobs"), 2);
    PQfinish(d.conn);
}

/* Runs `qpo ARGS --db info`; returns the exit code, stderr in err (first n-1 bytes). */
static int qpo_cli_stderr(const char *info, char *err, size_t n, const char *args) {
    char cmd[1400];
    snprintf(cmd, sizeof(cmd), "'%s' %s --db '%s' 2>&1 >/dev/null", qpo_test_binary(), args, info);
    FILE *p = popen(cmd, "r");
    assert_non_null(p);
    size_t got = fread(err, 1, n - 1, p);
    err[got] = '\0';
    int status = pclose(p);
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

/* Each used to be accepted: an unknown kind queued forever, atoi's 0 for "abc", a wrapped
 * large number, and --max-attempts 0 silently becoming the kind's default. */
static void test_jobs_enqueue_refuses_bad_input(void **state) {
    db d;
    fresh(&d);
    static const struct {
        const char *args, *want;
    } cases[] = {
        {"jobs enqueue no-such-kind", "unknown job kind 'no-such-kind'"},
        {"jobs enqueue noop --priority abc", "--priority must be an integer"},
        {"jobs enqueue noop --priority 3x", "not '3x'"},
        {"jobs enqueue noop --priority 99999999999999999999", "--priority must be an integer"},
        {"jobs enqueue noop --priority 4294967296", "not '4294967296'"},
        {"jobs enqueue noop --max-attempts 0", "--max-attempts must be an integer in 1.."},
        {"jobs enqueue noop --max-attempts -3", "--max-attempts must be"},
        {"jobs enqueue noop --count 4294967297", "--count must be an integer"},
        {"jobs list --limit abc", "--limit must be an integer"},
        /* used to print SQLSTATE 23503 with no words */
        {"jobs enqueue noop --after 999999", "--after names no such job: 999999"},
    };
    char err[2048];
    for (size_t i = 0; i < sizeof(cases) / sizeof(*cases); i++) {
        int rc = qpo_cli_stderr(d.info, err, sizeof(err), cases[i].args);
        if (rc != 2 || !strstr(err, cases[i].want))
            fail_msg("%s: exit %d, stderr: %s", cases[i].args, rc, err);
    }
    assert_int_equal(qt_int(d.conn, "SELECT count(*) FROM qpo.jobs"), 0);
    assert_int_equal(qpo_cli_stderr(d.info, err, sizeof(err),
                                    "jobs enqueue noop --priority -7 --max-attempts 2"),
                     0);
    assert_string_equal(qt_text(d.conn, "SELECT priority || ' ' || max_attempts FROM qpo.jobs"),
                        "-7 2");
    PQfinish(d.conn);
}

int main(void) {
    pg = qpo_pgtest_start();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_builtin_kinds_and_retries),
        cmocka_unit_test(test_bad_usage_exits_2),
        cmocka_unit_test(test_jobs_cli),
        cmocka_unit_test(test_jobs_enqueue_refuses_bad_input),
        cmocka_unit_test(test_cancel_running_job),
        cmocka_unit_test(test_sigterm_drains_then_releases),
        cmocka_unit_test(test_worker_survives_server_restart),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    qpo_pgtest_stop(pg);
    return rc;
}
