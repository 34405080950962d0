/* The roles of sql/migrations/0070_roles.sql on a real cluster: data imported, an experiment
 * submitted, planned, cancelled and resumed by a login role of qpo_scheduler, its import-check
 * job claimed and finished by a `qpo worker` logged in as a qpo_worker, its status read by a
 * qpo_reader; then what each of them is refused (SQLSTATE 42501), the audit tables append-only
 * even for their owner, and job_events rows bound to real jobs. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "pg_cluster.h"
#include "pgtest.h"
#include "sched_util.h"

static qpo_pgtest *pg;
static char db[1024], as_sched[1100], as_worker[1100], as_reader[1100];
static char dir[] = "/tmp/qpo-roles-XXXXXX";

static const char *path_in(const char *name) {
    static char p[4][256];
    static int i;
    char *s = p[i++ % 4];
    snprintf(s, 256, "%s/%s", dir, name);
    return s;
}

static void write_file(const char *name, const char *text) {
    FILE *f = fopen(path_in(name), "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static void run_ok(const char *conninfo, const char *const *argv, qpo_run_result *r) {
    qpo_run(r, conninfo, NULL, argv);
    if (r->exit_code != 0)
        fail_msg("qpo %s as %s: exit %d: %s", argv[0], conninfo + strlen(db), r->exit_code, r->err);
}

/* Runs sql on a connection as the role; returns the SQLSTATE ("" on success). */
static const char *sqlstate_of(PGconn *conn, const char *sql) {
    static char state[8];
    PGresult *res = PQexec(conn, sql);
    ExecStatusType st = PQresultStatus(res);
    const char *s = PQresultErrorField(res, PG_DIAG_SQLSTATE);
    snprintf(state, sizeof state, "%s",
             st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK ? ""
             : s                                             ? s
                                                             : "?");
    PQclear(res);
    return state;
}

static void refused(PGconn *conn, const char *sql) {
    const char *state = sqlstate_of(conn, sql);
    if (strcmp(state, "42501"))
        fail_msg("expected 42501 (insufficient privilege) for %s as %s, got \"%s\"", sql,
                 PQuser(conn), state);
}

static void allowed(PGconn *conn, const char *sql) {
    const char *state = sqlstate_of(conn, sql);
    if (*state)
        fail_msg("%s as %s failed with %s: %s", sql, PQuser(conn), state, PQerrorMessage(conn));
}

static int setup(void **state) {
    (void)state;
    assert_non_null(mkdtemp(dir));
    assert_int_equal(chmod(dir, 0755), 0); /* as root the cluster runs as postgres */
    pg = qpo_pgtest_start();
    snprintf(db, sizeof db, "%s", qpo_pgtest_new_db(pg));
    PGconn *admin = test_connect(db);
    /* As a deployment would: login roles granted the group roles the migrations made. */
    q_exec(admin, "CREATE ROLE sched_login LOGIN IN ROLE qpo_scheduler");
    q_exec(admin, "CREATE ROLE worker_login LOGIN IN ROLE qpo_worker");
    q_exec(admin, "CREATE ROLE reader_login LOGIN IN ROLE qpo_reader");
    q_exec(admin, "CREATE ROLE admin_login LOGIN IN ROLE qpo_admin");
    PQfinish(admin);
    snprintf(as_sched, sizeof as_sched, "%s user=sched_login", db);
    snprintf(as_worker, sizeof as_worker, "%s user=worker_login", db);
    snprintf(as_reader, sizeof as_reader, "%s user=reader_login", db);
    return 0;
}

static int teardown(void **state) {
    (void)state;
    qpo_pgtest_stop(pg);
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    return system(cmd) == 0 ? 0 : -1;
}

static void import_data(void) {
    char train[8192] = "", test[4096] = "";
    for (int i = 0; i < 80; i++)
        snprintf(train + strlen(train), sizeof train - strlen(train),
                 "{\"text\": \"tweet %d\", \"label\": %d}\n", i, i % 4);
    for (int i = 0; i < 20; i++)
        snprintf(test + strlen(test), sizeof test - strlen(test),
                 "{\"text\": \"test tweet %d\", \"label\": %d}\n", i, i % 4);
    write_file("train.jsonl", train);
    write_file("val.jsonl", test);
    write_file("test.jsonl", test);
    write_file("d0.json", "[{\"prompt_method\": \"m\", \"query\": \"q\", \"label\": 1, "
                          "\"prompt\": \"Be calm.<|endoftext|>\", \"llama7b\": "
                          "{\"zero_shot_correct\": 1, \"zero_shot_avg_acc\": 0.5, "
                          "\"zero_shot_perplexities\": [2.0, 0.5, 3.0, 4.0]}}]");
    qpo_run_result r;
    const char *items[] = {"data",
                           "import",
                           "tweet_emotion",
                           path_in("train.jsonl"),
                           path_in("val.jsonl"),
                           path_in("test.jsonl"),
                           NULL};
    run_ok(as_sched, items, &r);
    const char *d0[] = {"data",      "import-d0", path_in("d0.json"), "--task", "tweet_emotion",
                        "--setting", "zero_shot", "--target",         "sim",    NULL};
    run_ok(as_sched, d0, &r);
}

static long long submit_and_plan(void) {
    write_file("exp.json",
               "{\"tasks\": [\"tweet_emotion\"], \"settings\": [\"zero_shot\"], \"seeds\": [0],"
               " \"loops\": 1, \"targets\": [{\"name\": \"sim\", \"base_url\": "
               "\"http://127.0.0.1:9/v1\", \"model\": \"m\"}], \"policy\": {\"size\": \"tiny\","
               " \"tokenizer\": \"bytes\"}, \"test\": {\"shards\": 1}}");
    qpo_run_result r;
    const char *submit[] = {"submit", path_in("exp.json"), NULL};
    run_ok(as_sched, submit, &r);
    long long exp = strtoll(r.out, NULL, 10);
    assert_true(exp > 0);
    const char *once[] = {"scheduler", "--once", NULL};
    run_ok(as_sched, once, &r);
    return exp;
}

/* A cpu worker as worker_login runs the import-check job to success and exits when idle. */
static void run_worker(PGconn *admin) {
    const char *argv[] = {"worker",           "--class", "cpu", "--kinds", "import-check",
                          "--exit-when-idle", "--name",  "w1",  NULL};
    qpo_run_result r;
    run_ok(as_worker, argv, &r);
    char *why = q_str(admin, "SELECT state || ': ' || coalesce(last_error, '') FROM qpo.jobs "
                             "WHERE kind = 'import-check'");
    if (strncmp(why, "succeeded", 9))
        fail_msg("import-check: %s\nworker: %s", why, r.err);
    free(why);
    /* Its events were written by the triggers although the worker may not insert any. */
    assert_int_equal(q_int(admin, "SELECT count(*) FROM qpo.job_events e JOIN qpo.jobs j ON "
                                  "j.id = e.job_id WHERE j.kind = 'import-check' AND e.worker = "
                                  "'w1' AND e.to_state = 'succeeded'"),
                     1);
}

static void test_components_run_as_their_roles(void **state) {
    (void)state;
    PGconn *admin = test_connect(db);
    import_data();
    long long exp = submit_and_plan();
    assert_true(q_int(admin, "SELECT count(*) FROM qpo.jobs") > 1);
    run_worker(admin);
    char id[32];
    snprintf(id, sizeof id, "%lld", exp);
    qpo_run_result r;
    const char *once[] = {"scheduler", "--once", NULL};
    run_ok(as_sched, once, &r);
    const char *cancel[] = {"cancel", id, NULL};
    run_ok(as_sched, cancel, &r);
    const char *resume[] = {"resume", id, NULL};
    run_ok(as_sched, resume, &r);
    const char *status[] = {"status", id, NULL};
    run_ok(as_reader, status, &r);
    assert_non_null(strstr(r.out, "tweet_emotion"));
    /* A reader cannot submit. */
    const char *submit[] = {"submit", path_in("exp.json"), NULL};
    qpo_run(&r, as_reader, NULL, submit);
    assert_int_equal(r.exit_code, 1);
    assert_non_null(strstr(r.err, "42501"));
    PQfinish(admin);
}

static PGconn *connect_as(const char *conninfo) {
    return test_connect(conninfo);
}

static void test_what_each_role_is_refused(void **state) {
    (void)state;
    PGconn *w = connect_as(as_worker), *s = connect_as(as_sched), *rd = connect_as(as_reader);
    /* The worker: no change to history or audit, no forged event, no DDL, no planning. */
    refused(w, "UPDATE qpo.job_events SET error = 'x'");
    refused(w, "DELETE FROM qpo.job_events");
    refused(w, "INSERT INTO qpo.job_events (job_id, to_state, attempt) SELECT min(id), 'dead', 1 "
               "FROM qpo.jobs");
    refused(w, "UPDATE qpo.llm_calls SET status = 'ok'");
    refused(w, "DELETE FROM qpo.rewards");
    refused(w, "DELETE FROM qpo.eval_scores");
    refused(w, "TRUNCATE qpo.llm_calls");
    refused(w, "UPDATE qpo.experiments SET state = 'done'");
    refused(w, "INSERT INTO qpo.runs (experiment_id, task, setting, target, seed, loops) SELECT "
               "id, 'svamp', 'zero_shot', 'sim', 9, 1 FROM qpo.experiments");
    refused(w, "DELETE FROM qpo.task_items");
    refused(w, "CREATE TABLE qpo.evil (x int)");
    refused(w, "DROP TABLE qpo.rewards");
    refused(w, "ALTER TABLE qpo.jobs DISABLE TRIGGER ALL");
    allowed(w, "SELECT count(*) FROM qpo.task_items");
    /* The scheduler: no results or calls of its own, no history, no DDL. */
    refused(s, "INSERT INTO qpo.llm_calls (target, endpoint, model, request_hash, cacheable, "
               "request, status, attempt) VALUES ('sim', '/v1/completions', 'm', repeat('a', 64), "
               "true, '{}', 'ok', 1)");
    refused(s, "UPDATE qpo.rewards SET raw_reward = 0");
    refused(s, "UPDATE qpo.job_events SET error = 'x'");
    refused(s, "CREATE TABLE qpo.evil (x int)");
    allowed(s, "SELECT count(*) FROM qpo.llm_calls");
    /* The reader: reads everything, writes nothing. */
    allowed(rd, "SELECT count(*) FROM qpo.job_events");
    allowed(rd, "SELECT * FROM qpo.results");
    refused(rd, "INSERT INTO qpo.experiments (name, config) VALUES ('x', '{}')");
    refused(rd, "UPDATE qpo.jobs SET priority = 1");
    refused(rd, "DELETE FROM qpo.llm_calls");
    PQfinish(w), PQfinish(s), PQfinish(rd);
}

/* The owner has every privilege, so the audit tables' triggers refuse it too (job_events with
 * 42501, the reward audit with 23001 restrict_violation), and an event must name a job that
 * exists. */
static void test_owner_bypass_and_event_key(void **state) {
    (void)state;
    char as_admin[1100];
    snprintf(as_admin, sizeof as_admin, "%s user=admin_login", db);
    PGconn *su0 = test_connect(db);
    q_exec(su0, "INSERT INTO qpo.llm_calls (target, endpoint, model, request_hash, cacheable, "
                "request, status, attempt) VALUES ('sim', '/v1/completions', 'm', repeat('a', "
                "64), true, '{}', 'server', 1)");
    PQfinish(su0);
    PGconn *a = connect_as(as_admin);
    allowed(a, "SET ROLE qpo_admin");
    refused(a, "UPDATE qpo.job_events SET error = 'x'");
    assert_string_equal(sqlstate_of(a, "DELETE FROM qpo.llm_calls"), "23001");
    assert_string_equal(sqlstate_of(a, "UPDATE qpo.llm_calls SET error = ''"), "23001");
    assert_string_equal(sqlstate_of(a, "TRUNCATE qpo.rewards"), "23001");
    PQfinish(a);
    PGconn *su = test_connect(db);
    assert_string_equal(sqlstate_of(su, "INSERT INTO qpo.job_events (job_id, to_state, attempt) "
                                        "VALUES (999999, 'queued', 0)"),
                        "23503");
    char *owner = q_str(su, "SELECT tableowner FROM pg_tables WHERE schemaname = 'qpo' AND "
                            "tablename = 'llm_calls'");
    assert_string_equal(owner, "qpo_admin");
    free(owner);
    assert_int_equal(q_int(su, "SELECT count(*) FROM pg_roles WHERE rolname IN ('qpo_admin', "
                               "'qpo_scheduler', 'qpo_worker', 'qpo_reader') AND NOT rolcanlogin"),
                     4);
    PQfinish(su);
}

/* Roles are cluster-wide and created by whichever migration runs first: two databases of a
 * fresh cluster migrated at once race on CREATE ROLE, and both must succeed. */
static void test_two_migrations_at_once_on_a_fresh_cluster(void **state) {
    (void)state;
    char cdir[300];
    snprintf(cdir, sizeof cdir, "%s/cluster", dir);
    qpo_err err = {0};
    qpo_pg_cluster *c = qpo_pg_cluster_start(cdir, &err);
    if (!c)
        fail_msg("cluster: %s", err.msg);
    PGconn *admin = test_connect(qpo_pg_cluster_conninfo(c));
    q_exec(admin, "CREATE DATABASE m1");
    q_exec(admin, "CREATE DATABASE m2");
    assert_int_equal(q_int(admin, "SELECT count(*) FROM pg_roles WHERE rolname LIKE 'qpo\\_%'"), 0);
    char c1[600], c2[600];
    qpo_pg_cluster_conninfo_db(c, "m1", c1, sizeof c1);
    qpo_pg_cluster_conninfo_db(c, "m2", c2, sizeof c2);
    const char *argv[] = {"db", "migrate", NULL};
    int a = qpo_spawn(c1, NULL, argv), b = qpo_spawn(c2, NULL, argv);
    qpo_run_result ra, rb;
    qpo_wait(a, &ra);
    qpo_wait(b, &rb);
    assert_int_equal(ra.exit_code, 0);
    assert_int_equal(rb.exit_code, 0);
    assert_int_equal(q_int(admin, "SELECT count(*) FROM pg_roles WHERE rolname LIKE 'qpo\\_%'"), 4);
    PQfinish(admin);
    PGconn *m2 = test_connect(c2);
    char *owner = q_str(m2, "SELECT nspowner::regrole::text FROM pg_namespace WHERE nspname = "
                            "'qpo'");
    assert_string_equal(owner, "qpo_admin");
    free(owner);
    PQfinish(m2);
    qpo_pg_cluster_stop(c, true);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_components_run_as_their_roles),
        cmocka_unit_test(test_what_each_role_is_refused),
        cmocka_unit_test(test_owner_bypass_and_event_key),
        cmocka_unit_test(test_two_migrations_at_once_on_a_fresh_cluster),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
