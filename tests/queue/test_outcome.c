/* A job's output rows (qpo_outcome_add_rows) as the worker runtime writes them: in the
 * completing transaction, under the fence, with the row shape taken from the table. A worker
 * runs in-process with a handler of this test's own ("t-rows"), against a real PostgreSQL. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "pgtest.h"
#include "qtest.h"
#include "runtime.h"

static qpo_pgtest *pg;

/* The table the handler writes: defaults for id and made_at, an array column, and a trigger
 * that refuses one note the way the project's triggers do (message, detail, hint). */
static const char *const table_sql =
    "CREATE TABLE qpo.t_out (id bigserial PRIMARY KEY, job_id bigint NOT NULL, "
    "  note text NOT NULL, vals integer[], made_at timestamptz NOT NULL DEFAULT now());"
    "CREATE FUNCTION qpo.t_out_check() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
    "  IF NEW.note = 'refused' THEN RAISE EXCEPTION 'note % is refused', NEW.note "
    "    USING ERRCODE = 'check_violation', DETAIL = 'row of job ' || NEW.job_id, "
    "          HINT = 'write another note'; END IF; RETURN NEW; END $$;"
    "CREATE TRIGGER t_out_check BEFORE INSERT ON qpo.t_out FOR EACH ROW "
    "  EXECUTE FUNCTION qpo.t_out_check();";

/* {"note", "rows", "expected" (default rows), "ms" (sleep first), "bad_key"}: adds `rows`
 * rows of `note` to qpo.t_out. */
static qpo_job_status run_rows(const qpo_job *job, qpo_job_ctx *ctx, qpo_job_outcome *out,
                               qpo_err *err) {
    (void)ctx;
    int64_t n, expected, ms = 0;
    const char *note = qpo_payload_str(job->payload, "note", err);
    if (!note || qpo_payload_int(job->payload, "rows", &n, err))
        return QPO_JOB_FATAL;
    if (qpo_payload_int(job->payload, "expected", &expected, err))
        expected = n;
    if (qpo_payload_int(job->payload, "ms", &ms, err))
        ms = 0;
    qpo_err_clear(err);
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
    json_t *rows = json_array();
    for (int64_t i = 0; i < n; i++) {
        json_t *row = json_pack("{sI ss s[II]}", "job_id", (json_int_t)job->id, "note", note,
                                "vals", (json_int_t)i, (json_int_t)(i + 1));
        if (json_object_get(job->payload, "bad_key"))
            json_object_set_new(row, "no_such_column", json_integer(1));
        json_array_append_new(rows, row);
    }
    out->result = json_pack("{sI}", "rows", (json_int_t)n);
    qpo_outcome_add_rows(out, "qpo.t_out", rows, (long)expected);
    return QPO_JOB_OK;
}

typedef struct db {
    char info[600];
    PGconn *conn;
} db;

static void fresh(db *d) {
    snprintf(d->info, sizeof(d->info), "%s", qpo_pgtest_new_db(pg));
    d->conn = qt_connect(d->info);
    qt_exec(d->conn, table_sql);
}

typedef struct worker_run {
    qpo_worker_opts o;
    const char *kinds[1];
    pthread_t thread;
    int rc;
    qpo_err err;
} worker_run;

static void *worker_main(void *arg) {
    worker_run *w = arg;
    w->rc = qpo_worker_run(&w->o, &w->err);
    return NULL;
}

static void worker_start(worker_run *w, const db *d, double lease_s) {
    memset(w, 0, sizeof(*w));
    qpo_worker_opts_default(&w->o);
    w->kinds[0] = "t-rows";
    w->o.conninfo = d->info;
    w->o.name = "w-out";
    w->o.job_class = "cpu";
    w->o.kinds = w->kinds;
    w->o.nkinds = 1;
    w->o.concurrency = 2;
    w->o.lease_s = lease_s;
    w->o.poll_s = 0.05;
    w->o.backoff_base_ms = 10;
    w->o.backoff_cap_ms = 50;
    w->o.exit_when_idle = true;
    assert_int_equal(pthread_create(&w->thread, NULL, worker_main, w), 0);
}

static void worker_join(worker_run *w) {
    pthread_join(w->thread, NULL);
    if (w->rc != 0)
        fail_msg("worker: %s (%s)", w->err.msg, w->err.detail);
}

static void test_rows_written_once_with_table_defaults(void **state) {
    (void)state;
    db d;
    fresh(&d);
    qt_exec(d.conn, "INSERT INTO qpo.jobs (kind, payload) VALUES "
                    "('t-rows', '{\"note\": \"a\", \"rows\": 3}'), "
                    "('t-rows', '{\"note\": \"none\", \"rows\": 0}')");
    worker_run w;
    worker_start(&w, &d, 30);
    worker_join(&w);
    assert_string_equal(qt_text(d.conn, "SELECT string_agg(state, ' ' ORDER BY id) FROM qpo.jobs"),
                        "succeeded succeeded");
    assert_int_equal(qt_int(d.conn, "SELECT count(*) FROM qpo.t_out WHERE job_id = 1 AND "
                                    "note = 'a' AND made_at IS NOT NULL"),
                     3);
    assert_int_equal(qt_int(d.conn, "SELECT count(DISTINCT id) FROM qpo.t_out"), 3);
    /* A JSON array became the column's PostgreSQL array. */
    assert_string_equal(qt_text(d.conn, "SELECT string_agg(vals::text, ' ' ORDER BY vals) FROM "
                                        "qpo.t_out"),
                        "{0,1} {1,2} {2,3}");
    assert_string_equal(qt_text(d.conn, "SELECT result::text FROM qpo.jobs WHERE id = 1"),
                        "{\"rows\": 3}");
    PQfinish(d.conn);
}

static void test_lost_lease_writes_nothing(void **state) {
    (void)state;
    db d;
    fresh(&d);
    qt_exec(d.conn, "INSERT INTO qpo.jobs (kind, payload) VALUES "
                    "('t-rows', '{\"note\": \"late\", \"rows\": 2, \"ms\": 1500}')");
    worker_run w;
    worker_start(&w, &d, 60); /* heartbeats every 20 s: the worker cannot notice in time */
    assert_true(qt_wait_for(d.conn, 30, "EXISTS (SELECT 1 FROM qpo.jobs WHERE state = 'running')"));
    /* Another worker took the job over (as after a reap and a new claim). */
    qt_exec(d.conn, "UPDATE qpo.jobs SET lease_owner = 'thief' WHERE id = 1");
    worker_join(&w);
    assert_int_equal(qt_int(d.conn, "SELECT count(*) FROM qpo.t_out"), 0);
    assert_string_equal(qt_text(d.conn, "SELECT state || ' ' || lease_owner || ' ' || "
                                        "coalesce(result::text, 'no result') FROM qpo.jobs"),
                        "running thief no result");
    PQfinish(d.conn);
}

static void expect_contains(const char *text, const char *part) {
    if (!strstr(text, part))
        fail_msg("\"%s\" does not contain \"%s\"", text, part);
}

/* The experiment, target and run the refused job belongs to, so its error reaches qpo status. */
static void add_run(PGconn *conn) {
    qt_exec(conn, "INSERT INTO qpo.experiments (name, config, state, resolved_config) "
                  "VALUES ('e', '{}', 'running', '{}');"
                  "INSERT INTO qpo.targets (name, base_url, model) VALUES ('t', 'http://x', 'm');"
                  "INSERT INTO qpo.runs (experiment_id, task, setting, target, seed, loops) "
                  "VALUES (1, 'tweet_emotion', 'zero_shot', 't', 0, 1)");
}

static void test_refused_row_fails_with_what_the_server_said(void **state) {
    (void)state;
    db d;
    fresh(&d);
    add_run(d.conn);
    qt_exec(d.conn, "INSERT INTO qpo.jobs (kind, payload, max_attempts, run_id) VALUES "
                    "('t-rows', '{\"note\": \"refused\", \"rows\": 2}', 1, 1)");
    worker_run w;
    worker_start(&w, &d, 30);
    worker_join(&w);
    assert_string_equal(qt_text(d.conn, "SELECT state FROM qpo.jobs"), "dead");
    assert_int_equal(qt_int(d.conn, "SELECT count(*) FROM qpo.t_out"), 0);
    const char *last = qt_text(d.conn, "SELECT last_error FROM qpo.jobs");
    char copy[2048];
    snprintf(copy, sizeof copy, "%s", last);
    expect_contains(copy, "note refused is refused");
    expect_contains(copy, "\nDETAIL: row of job 1");
    expect_contains(copy, "\nHINT: write another note");
    expect_contains(copy, "\nSQLSTATE: 23514");
    /* The event says the same as the job. */
    assert_int_equal(qt_int(d.conn, "SELECT count(*) FROM qpo.job_events e JOIN qpo.jobs j ON "
                                    "j.id = e.job_id WHERE e.to_state = 'dead' AND "
                                    "e.error = j.last_error"),
                     1);
    /* And the run's error, which qpo status prints. */
    qt_exec(d.conn, "SELECT qpo.refresh_run_state(1)");
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "'%s' status --db '%s' 2>&1", qpo_test_binary(), d.info);
    FILE *p = popen(cmd, "r");
    assert_non_null(p);
    char out[8192];
    size_t n = fread(out, 1, sizeof out - 1, p);
    out[n] = '\0';
    assert_int_equal(pclose(p), 0);
    expect_contains(out, "note refused is refused");
    expect_contains(out, "HINT: write another note");
    PQfinish(d.conn);
}

static void test_row_count_and_unknown_columns_fail_the_job(void **state) {
    (void)state;
    db d;
    fresh(&d);
    qt_exec(d.conn, "INSERT INTO qpo.jobs (kind, payload, max_attempts) VALUES "
                    "('t-rows', '{\"note\": \"short\", \"rows\": 2, \"expected\": 3}', 1), "
                    "('t-rows', '{\"note\": \"odd\", \"rows\": 1, \"bad_key\": true}', 1)");
    worker_run w;
    worker_start(&w, &d, 30);
    worker_join(&w);
    assert_string_equal(qt_text(d.conn, "SELECT string_agg(state, ' ' ORDER BY id) FROM qpo.jobs"),
                        "dead dead");
    assert_int_equal(qt_int(d.conn, "SELECT count(*) FROM qpo.t_out"), 0);
    expect_contains(qt_text(d.conn, "SELECT last_error FROM qpo.jobs WHERE id = 1"),
                    "2 rows written, expected 3");
    char copy[2048];
    snprintf(copy, sizeof copy, "%s",
             qt_text(d.conn, "SELECT last_error FROM qpo.jobs WHERE id = 2"));
    expect_contains(copy, "name columns it does not have: no_such_column");
    expect_contains(copy, "HINT: the handler's row keys must be the table's column names");
    PQfinish(d.conn);
}

static void test_retried_job_shows_no_old_error(void **state) {
    (void)state;
    db d;
    fresh(&d);
    /* A failed attempt, then the worker claims it again and it succeeds. */
    qt_exec(d.conn, "INSERT INTO qpo.jobs (kind, payload, state, attempt, last_error) VALUES "
                    "('t-rows', '{\"note\": \"b\", \"rows\": 1}', 'failed', 1, 'timeout')");
    worker_run w;
    worker_start(&w, &d, 30);
    worker_join(&w);
    assert_string_equal(qt_text(d.conn, "SELECT state || ' ' || attempt || ' ' || "
                                        "coalesce(last_error, 'no error') FROM qpo.jobs"),
                        "succeeded 2 no error");
    PQfinish(d.conn);
}

int main(void) {
    static const qpo_handler rows = {"t-rows", "cpu", run_rows};
    qpo_handler_register(&rows);
    pg = qpo_pgtest_start();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rows_written_once_with_table_defaults),
        cmocka_unit_test(test_lost_lease_writes_nothing),
        cmocka_unit_test(test_refused_row_fails_with_what_the_server_said),
        cmocka_unit_test(test_row_count_and_unknown_columns_fail_the_job),
        cmocka_unit_test(test_retried_job_shows_no_old_error),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    qpo_pgtest_stop(pg);
    return rc;
}
