/* Crash safety: 2000 test-insert jobs (each writes one row in its completing transaction),
 * 4 worker processes with 2 s leases, one of them SIGKILLed every ~0.3 s and restarted under
 * a new name, for a bounded storm; then the survivors finish the queue. Every job must end
 * succeeded with exactly one row, and job_events must tell the same story as the final
 * states.
 *
 * The jobs get 1000 attempts, not the kind's 5: every kill spends an attempt of each job the
 * victim held, and under ASan on a loaded 2-core machine a worker can be killed several times
 * in a row before finishing anything, so with 5 a job could honestly go dead. That is the
 * queue doing its job (tests/queue cover dead jobs); here it would hide what this test is
 * about, a row lost or written twice. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "pgtest.h"
#include "qtest.h"

#define JOBS 2000
#define WORKERS 4
#define STORM_ROUNDS 200 /* ~60 s of kills at most */

static qpo_pgtest *pg;

static char names[WORKERS][32];

static pid_t start_worker(const char *info, int slot, int generation) {
    snprintf(names[slot], sizeof(names[slot]), "k%d-%d", slot, generation);
    /* A small local queue: its jobs are killed with the worker too. Each SIGKILL spends an
     * attempt of every job the worker held, so a large one would spend the 5 attempts of
     * many jobs in this storm of kills (as graphile-worker's local queue would). */
    return qt_worker(info, "--kinds", "test-insert", "--name", names[slot], "--concurrency", "4",
                     "--prefetch", "4", "--lease", "2", "--poll", "0.2", NULL);
}

static void nap_ms(long ms) {
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static void test_sigkill_loses_nothing_and_duplicates_nothing(void **state) {
    char info[600];
    snprintf(info, sizeof(info), "%s", qpo_pgtest_new_db(pg));
    PGconn *conn = qt_connect(info);
    qt_exec(conn, "CREATE TABLE kill_rows (job_id bigint NOT NULL, attempt int NOT NULL, "
                  "worker text NOT NULL)");
    qt_exec(conn, "INSERT INTO qpo.jobs (kind, max_attempts, payload) SELECT "
                  "'test-insert', 1000, '{\"table\": \"kill_rows\", \"ms\": 20}' "
                  "FROM generate_series(1, 2000)");
    pid_t pids[WORKERS];
    int generation[WORKERS] = {0};
    for (int i = 0; i < WORKERS; i++)
        pids[i] = start_worker(info, i, 0);
    int kills = 0;
    for (int round = 0; round < STORM_ROUNDS; round++) {
        nap_ms(300);
        if (qt_int(conn, "SELECT count(*) FROM qpo.jobs WHERE state = 'succeeded'") == JOBS)
            break;
        int victim = round % WORKERS;
        kill(pids[victim], SIGKILL);
        assert_int_equal(qt_wait_exit(pids[victim], 30), 128 + SIGKILL);
        kills++;
        pids[victim] = start_worker(info, victim, ++generation[victim]);
    }
    /* The storm is over: the survivors finish what is left, retries after backoff included. */
    if (!qt_wait_for(conn, 240, "(SELECT count(*) FROM qpo.jobs WHERE state = 'succeeded') = %d",
                     JOBS))
        fail_msg("not all jobs succeeded after the storm: %s",
                 qt_text(conn, "SELECT string_agg(state || ' ' || n, ', ') FROM (SELECT state, "
                               "count(*) AS n FROM qpo.jobs GROUP BY state) s"));
    /* A worker started in the last round may not handle SIGTERM yet: its main connection,
     * named after it, is opened after its signal handlers are installed. */
    assert_true(qt_wait_for(conn, 60,
                            "(SELECT count(DISTINCT application_name) FROM pg_stat_activity "
                            "WHERE application_name IN ('qpo worker %s', 'qpo worker %s', "
                            "'qpo worker %s', 'qpo worker %s')) = 4",
                            names[0], names[1], names[2], names[3]));
    for (int i = 0; i < WORKERS; i++) {
        kill(pids[i], SIGTERM);
        assert_int_equal(qt_wait_exit(pids[i], 60), 0);
    }
    print_message("%d SIGKILLs; %lld jobs needed more than one attempt\n", kills,
                  (long long)qt_int(conn, "SELECT count(*) FROM qpo.jobs WHERE attempt > 1"));
    assert_true(kills >= 3);
    assert_int_equal(qt_int(conn, "SELECT count(*) FROM qpo.jobs WHERE state = 'succeeded'"), JOBS);
    assert_int_equal(qt_int(conn, "SELECT count(*) FROM kill_rows"), JOBS);
    assert_int_equal(qt_int(conn, "SELECT count(DISTINCT job_id) FROM kill_rows"), JOBS);
    /* Each row was written by the attempt that succeeded, under its own lease. */
    assert_int_equal(qt_int(conn, "SELECT count(*) FROM kill_rows r JOIN qpo.job_events e ON "
                                  "e.job_id = r.job_id AND e.to_state = 'succeeded' AND "
                                  "e.attempt = r.attempt AND e.worker = r.worker"),
                     JOBS);
    /* job_events: one succeeded event per job, the last one; each event starts where the
     * previous one ended. */
    assert_int_equal(qt_int(conn, "SELECT count(*) FROM qpo.job_events WHERE to_state = "
                                  "'succeeded'"),
                     JOBS);
    assert_int_equal(qt_int(conn, "SELECT count(*) FROM qpo.jobs j WHERE j.state <> (SELECT "
                                  "to_state FROM qpo.job_events e WHERE e.job_id = j.id ORDER "
                                  "BY id DESC LIMIT 1)"),
                     0);
    assert_int_equal(qt_int(conn, "SELECT count(*) FROM (SELECT from_state, lag(to_state) OVER "
                                  "(PARTITION BY job_id ORDER BY id) AS prev FROM "
                                  "qpo.job_events) e WHERE from_state IS DISTINCT FROM prev"),
                     0);
    /* Every attempt that did not succeed was returned by the reaper (a lease expiry). */
    assert_int_equal(qt_int(conn, "SELECT count(*) FROM qpo.job_events WHERE from_state = "
                                  "'running' AND to_state <> 'succeeded' AND (to_state <> "
                                  "'queued' OR error NOT LIKE 'lease of %% expired%%')"),
                     0);
    PQfinish(conn);
}

int main(void) {
    pg = qpo_pgtest_start();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sigkill_loses_nothing_and_duplicates_nothing),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    qpo_pgtest_stop(pg);
    return rc;
}
