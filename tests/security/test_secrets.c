/* A target's API key must never be written down: reward jobs run with the key set
 * (api_key_env) against `qpo sim-llm --api-key`, which answers only requests carrying it, so
 * the job succeeding proves the key was sent; then every row of every qpo table (each row as
 * text: all its columns, JSON included) and every line the worker and `qpo status` printed is
 * searched for it. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pgtest.h"
#include "sched_util.h"
#include "sim_fixture.h"

#define SECRET "sk-qpo-SECRET-7d41c9"
#define KEY_VAR "QPO_TEST_SECRET_KEY"

static qpo_pgtest *pg;

/* Rows of any qpo table whose text holds needle, with the first table that does. */
static long long rows_holding(PGconn *conn, const char *needle, char *where, size_t n) {
    PGresult *tables = PQexec(conn, "SELECT tablename FROM pg_tables WHERE schemaname = 'qpo' "
                                    "ORDER BY tablename");
    assert_int_equal(PQresultStatus(tables), PGRES_TUPLES_OK);
    assert_true(PQntuples(tables) >= 15);
    long long total = 0;
    for (int i = 0; i < PQntuples(tables); i++) {
        char sql[512];
        snprintf(sql, sizeof sql, "SELECT count(*) FROM qpo.%s t WHERE strpos(t::text, $1) > 0",
                 PQgetvalue(tables, i, 0));
        const char *params[] = {needle};
        PGresult *res = PQexecParams(conn, sql, 1, NULL, params, NULL, NULL, 0);
        assert_int_equal(PQresultStatus(res), PGRES_TUPLES_OK);
        long long c = atoll(PQgetvalue(res, 0, 0));
        if (c && !total)
            snprintf(where, n, "%s", PQgetvalue(tables, i, 0));
        total += c;
        PQclear(res);
    }
    PQclear(tables);
    return total;
}

static void test_api_key_reaches_no_table_and_no_log(void **state) {
    (void)state;
    const char *data = qpo_test_shared_data();
    if (!data) {
        fprintf(stderr, "skipped: ../shared/data is absent (TweetEval needed)\n");
        skip();
    }
    char *conninfo = NULL;
    int64_t job_id = 0;
    PGconn *conn = reward_db_setup(pg, data, "zero_shot", 8, &conninfo, &job_id);
    sim_proc sim = {0};
    sim_start(&sim, conninfo, "--api-key " SECRET);
    reward_db_set_target(conn, sim.base_url, "{\"api_key_env\": \"" KEY_VAR "\"}");
    setenv(KEY_VAR, SECRET, 1);
    qpo_run_result r;
    const char *worker[] = {"worker",       "--class", "cpu",      "--kinds",
                            "reward",       "--name",  "w-secret", "--exit-when-idle",
                            "--backoff-ms", "10,100",  NULL};
    qpo_run(&r, conninfo, NULL, worker);
    unsetenv(KEY_VAR);
    if (r.exit_code != 0)
        fail_msg("worker exited %d: %s", r.exit_code, r.err);
    char sql[160];
    snprintf(sql, sizeof sql, "SELECT state FROM qpo.jobs WHERE id = %lld", (long long)job_id);
    char *st = db_scalar(conn, sql);
    if (strcmp(st, "succeeded"))
        fail_msg("the reward job is %s (the simulator requires the key): %s", st, r.err);
    free(st);
    assert_true(db_count(conn, "SELECT count(*) FROM qpo.llm_calls WHERE status = 'ok'") > 0);
    const char *status[] = {"status", NULL};
    qpo_run_result s;
    qpo_run(&s, conninfo, NULL, status);
    assert_int_equal(s.exit_code, 0);

    char where[128] = "";
    /* The search finds what is there (the variable's name is stored, by design)... */
    assert_true(rows_holding(conn, KEY_VAR, where, sizeof where) > 0);
    assert_string_equal(where, "targets");
    /* ...and the key is nowhere. */
    long long leaks = rows_holding(conn, SECRET, where, sizeof where);
    if (leaks)
        fail_msg("the API key is stored in %lld row(s), first in qpo.%s", leaks, where);
    assert_true(strstr(r.err, "w-secret") != NULL); /* the log was captured */
    assert_null(strstr(r.out, SECRET));
    assert_null(strstr(r.err, SECRET));
    assert_null(strstr(s.out, SECRET));
    assert_null(strstr(s.err, SECRET));
    sim_stop(&sim);
    PQfinish(conn);
    free(conninfo);
}

static int setup(void **state) {
    (void)state;
    pg = qpo_pgtest_start();
    return 0;
}

static int teardown(void **state) {
    (void)state;
    fixture_kill_children();
    qpo_pgtest_stop(pg);
    return 0;
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_api_key_reaches_no_table_and_no_log),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
