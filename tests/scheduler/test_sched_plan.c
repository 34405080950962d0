/* Submitting and planning against a real PostgreSQL, through the qpo binary: submit by CLI
 * and by SQL (with its NOTIFY), invalid configs, the exact DAG of a 2-task x 2-seed x
 * 3-loop experiment, a scheduler killed mid-plan, and two schedulers at once. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/select.h>
#include <unistd.h>

#include "config.h"
#include "db.h"
#include "pgtest.h"
#include "plan.h"
#include "sched_util.h"

static qpo_pgtest *pg;

/* 2 tasks x 1 setting x 1 target x 2 seeds, 3 loops, 10 batches, 2 shards, 1 baseline, the
 * oracle on. */
static const char *dag_config =
    "{\"tasks\": [\"tweet_emotion\", \"gsm8k\"], \"settings\": [\"zero_shot\"],"
    " \"seeds\": [0, 1], \"loops\": 3,"
    " \"targets\": [{\"name\": \"sim\", \"base_url\": \"http://127.0.0.1:9/v1\","
    " \"model\": \"sim-7b\", \"max_inflight\": 4}],"
    " \"test\": {\"shards\": 2},"
    " \"baselines\": [{\"name\": \"manual\", \"prompt\": \"Answer it.\"}], \"oracle\": true}";

#define JOBS_PER_RUN                                                                               \
    49 /* 1 + 3 train + 3 evalgen + 6 score + 6 policy_mode + 2 generate + 20 reward + 2 merge     \
          + 2 baseline + 2 best_single + 2 oracle */

static char *write_temp(const char *text) {
    char *path = strdup("/tmp/qpo-exp-XXXXXX");
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
    return path;
}

static int64_t submit_cli(const char *db, const char *config, const char *name) {
    char *path = write_temp(config);
    qpo_run_result r;
    const char *argv[] = {"submit", path, "--name", name, NULL};
    qpo_run(&r, db, NULL, argv);
    unlink(path);
    free(path);
    if (r.exit_code != 0)
        fail_msg("qpo submit failed: %s", r.err);
    return strtoll(r.out, NULL, 10);
}

static void run_scheduler_once(const char *db, const char *env, qpo_run_result *r) {
    const char *argv[] = {"scheduler", "--once", NULL};
    qpo_run(r, db, env, argv);
}

/* ---- the expected DAG, written out independently of scheduler/plan.c ---- */

typedef struct expect {
    json_t *jobs;  /* key -> {"kind", "class", "payload"} */
    json_t *edges; /* "child <- parent" strings */
} expect;

static void want_job(expect *e, const char *key, const char *kind, const char *cls, json_t *payload,
                     const char *parent, ...) {
    json_object_set_new(e->jobs, key,
                        json_pack("{ss ss so}", "kind", kind, "class", cls, "payload", payload));
    va_list ap;
    va_start(ap, parent);
    for (const char *p = parent; p; p = va_arg(ap, const char *)) {
        char edge[512];
        snprintf(edge, sizeof(edge), "%s <- %s", key, p);
        json_array_append_new(e->edges, json_string(edge));
    }
    va_end(ap);
}

static void expect_run(expect *e, long long run, const char *task) {
    char k[128], p[128], d0[128];
    snprintf(d0, sizeof(d0), "run:%lld:import-check", run);
    want_job(e, d0, "import-check", "cpu",
             json_pack("{sI ss ss ss}", "run_id", run, "task", task, "setting", "zero_shot",
                       "target", "sim"),
             NULL);
    int test_size = strcmp(task, "gsm8k") ? 100 : 200;
    for (int t = 1; t <= 3; t++) {
        char train[128], eg[128], gen[128], merge[128];
        snprintf(train, sizeof(train), "run:%lld:train:%d", run, t);
        snprintf(p, sizeof(p), "run:%lld:merge:%d", run, t - 1);
        want_job(e, train, "train", "gpu", json_pack("{sI si}", "run_id", run, "loop", t),
                 t == 1 ? d0 : p, NULL);
        snprintf(eg, sizeof(eg), "run:%lld:evaluate-generate:%d", run, t);
        want_job(e, eg, "evaluate-generate", "gpu",
                 json_pack("{sI si si}", "run_id", run, "loop", t, "test_size", test_size), train,
                 NULL);
        for (int s = 0; s < 2; s++) {
            snprintf(k, sizeof(k), "run:%lld:score:%d:%d", run, t, s);
            want_job(e, k, "score", "cpu",
                     json_pack("{sI si si si ss}", "run_id", run, "loop", t, "shard", s, "shards",
                               2, "source", "qpo"),
                     eg, NULL);
            snprintf(k, sizeof(k), "run:%lld:score:%d:baseline:policy_mode:%d", run, t, s);
            want_job(e, k, "score", "cpu",
                     json_pack("{sI si si si ss ss}", "run_id", run, "loop", t, "shard", s,
                               "shards", 2, "source", "baseline:policy_mode", "select",
                               "policy_mode"),
                     eg, NULL);
        }
        if (t == 3)
            continue;
        snprintf(gen, sizeof(gen), "run:%lld:generate:%d", run, t);
        want_job(
            e, gen, "generate", "gpu",
            json_pack("{sI si si si}", "run_id", run, "loop", t, "batches", 10, "batch_size", 100),
            train, NULL);
        snprintf(merge, sizeof(merge), "run:%lld:merge:%d", run, t);
        want_job(e, merge, "merge", "cpu", json_pack("{sI si}", "run_id", run, "loop", t), NULL);
        for (int b = 0; b < 10; b++) {
            snprintf(k, sizeof(k), "run:%lld:reward:%d:%d", run, t, b);
            want_job(e, k, "reward", "cpu",
                     json_pack("{sI si si}", "run_id", run, "loop", t, "batch", b), gen, NULL);
            char edge[512];
            snprintf(edge, sizeof(edge), "%s <- %s", merge, k);
            json_array_append_new(e->edges, json_string(edge));
        }
    }
    for (int s = 0; s < 2; s++) {
        snprintf(k, sizeof(k), "run:%lld:score:0:baseline:manual:%d", run, s);
        want_job(e, k, "score", "cpu",
                 json_pack("{sI si si si ss ss}", "run_id", run, "loop", 0, "shard", s, "shards", 2,
                           "source", "baseline:manual", "prompt", "Answer it."),
                 d0, NULL);
        snprintf(k, sizeof(k), "run:%lld:score:0:baseline:best_single:%d", run, s);
        want_job(e, k, "score", "cpu",
                 json_pack("{sI si si si ss ss}", "run_id", run, "loop", 0, "shard", s, "shards", 2,
                           "source", "baseline:best_single", "select", "best_single"),
                 d0, NULL);
        snprintf(k, sizeof(k), "run:%lld:score:0:oracle:%d", run, s);
        want_job(e, k, "score", "cpu",
                 json_pack("{sI si si si ss ss}", "run_id", run, "loop", 0, "shard", s, "shards", 2,
                           "source", "oracle", "select", "oracle"),
                 d0, NULL);
    }
}

static int cmp_str(const void *a, const void *b) {
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Sorted edge strings of a JSON array, joined by newlines. */
static char *joined_sorted(json_t *arr) {
    size_t n = json_array_size(arr), len = 1;
    const char **v = calloc(n ? n : 1, sizeof(*v));
    for (size_t i = 0; i < n; i++) {
        v[i] = json_string_value(json_array_get(arr, i));
        len += strlen(v[i]) + 1;
    }
    qsort(v, n, sizeof(*v), cmp_str);
    char *out = calloc(1, len);
    for (size_t i = 0; i < n; i++) {
        strcat(out, v[i]);
        strcat(out, "\n");
    }
    free(v);
    return out;
}

/* Checks the experiment's jobs and edges against the expected DAG, exactly. */
static void check_dag(PGconn *conn, int64_t exp) {
    char sql[1024];
    snprintf(sql, sizeof(sql),
             "SELECT r.id, r.task FROM qpo.runs r WHERE experiment_id = %lld ORDER BY r.id",
             (long long)exp);
    qpo_err err = {0};
    PGresult *runs = qpo_db_query(conn, sql, 0, NULL, &err);
    assert_non_null(runs);
    assert_int_equal(PQntuples(runs), 4);
    expect e = {json_object(), json_array()};
    for (int i = 0; i < 4; i++)
        expect_run(&e, qpo_db_int64(runs, i, 0), PQgetvalue(runs, i, 1));
    /* Runs in config order: tasks, then seeds. */
    assert_string_equal(PQgetvalue(runs, 0, 1), "tweet_emotion");
    assert_string_equal(PQgetvalue(runs, 2, 1), "gsm8k");
    PQclear(runs);

    snprintf(sql, sizeof(sql),
             "SELECT j.idempotency_key, j.kind, j.class, j.payload::text, j.state, j.run_id"
             " FROM qpo.jobs j JOIN qpo.runs r ON r.id = j.run_id WHERE r.experiment_id = %lld",
             (long long)exp);
    PGresult *jobs = qpo_db_query(conn, sql, 0, NULL, &err);
    assert_non_null(jobs);
    assert_int_equal(PQntuples(jobs), 4 * JOBS_PER_RUN);
    assert_int_equal(json_object_size(e.jobs), 4 * JOBS_PER_RUN);
    for (int i = 0; i < PQntuples(jobs); i++) {
        const char *key = PQgetvalue(jobs, i, 0);
        json_t *want = json_object_get(e.jobs, key);
        if (!want)
            fail_msg("unexpected job %s", key);
        assert_string_equal(PQgetvalue(jobs, i, 1),
                            json_string_value(json_object_get(want, "kind")));
        assert_string_equal(PQgetvalue(jobs, i, 2),
                            json_string_value(json_object_get(want, "class")));
        json_t *payload = json_loads(PQgetvalue(jobs, i, 3), 0, NULL);
        if (!json_equal(payload, json_object_get(want, "payload")))
            fail_msg("payload of %s: %s", key, PQgetvalue(jobs, i, 3));
        json_decref(payload);
        /* Only jobs without parents may run at once. */
        int root = !strcmp(PQgetvalue(jobs, i, 1), "import-check");
        assert_string_equal(PQgetvalue(jobs, i, 4), root ? "queued" : "blocked");
    }
    PQclear(jobs);

    snprintf(sql, sizeof(sql),
             "SELECT c.idempotency_key || ' <- ' || p.idempotency_key FROM qpo.job_deps d"
             " JOIN qpo.jobs c ON c.id = d.child_id JOIN qpo.jobs p ON p.id = d.parent_id"
             " JOIN qpo.runs r ON r.id = c.run_id WHERE r.experiment_id = %lld",
             (long long)exp);
    PGresult *edges = qpo_db_query(conn, sql, 0, NULL, &err);
    assert_non_null(edges);
    json_t *got = json_array();
    for (int i = 0; i < PQntuples(edges); i++)
        json_array_append_new(got, json_string(PQgetvalue(edges, i, 0)));
    PQclear(edges);
    char *a = joined_sorted(got), *b = joined_sorted(e.edges);
    assert_string_equal(a, b);
    free(a);
    free(b);
    json_decref(got);
    json_decref(e.jobs);
    json_decref(e.edges);
}

static void test_submit_by_cli_and_plan_exact_dag(void **state) {
    const char *db = qpo_pgtest_new_db(pg);
    char info[1024];
    snprintf(info, sizeof(info), "%s", db);
    int64_t exp = submit_cli(info, dag_config, "dag");
    assert_true(exp > 0);
    PGconn *conn = test_connect(info);
    char sql[256];
    snprintf(sql, sizeof(sql), "SELECT state || ' ' || name FROM qpo.experiments WHERE id = %lld",
             (long long)exp);
    char *s = q_str(conn, sql);
    assert_string_equal(s, "submitted dag");
    free(s);
    qpo_run_result r;
    run_scheduler_once(info, NULL, &r);
    assert_int_equal(r.exit_code, 0);
    s = q_str(conn, sql);
    assert_string_equal(s, "planned dag");
    free(s);
    check_dag(conn, exp);
    /* The resolved config is stored for the workers. */
    snprintf(
        sql, sizeof(sql),
        "SELECT resolved_config #>> '{hyper,epochs_first}' FROM qpo.experiments WHERE id = %lld",
        (long long)exp);
    s = q_str(conn, sql);
    assert_string_equal(s, "100");
    free(s);
    assert_int_equal(q_int(conn, "SELECT count(*) FROM qpo.targets WHERE name = 'sim' AND "
                                 "config->>'max_inflight' = '4'"),
                     1);
    /* A second pass plans nothing more. */
    run_scheduler_once(info, NULL, &r);
    assert_int_equal(r.exit_code, 0);
    assert_int_equal(q_int(conn, "SELECT count(*) FROM qpo.jobs"), 4 * JOBS_PER_RUN);
    PQfinish(conn);
}

static void test_submit_by_sql_notifies_and_plans(void **state) {
    char info[1024];
    snprintf(info, sizeof(info), "%s", qpo_pgtest_new_db(pg));
    PGconn *listener = test_connect(info);
    q_exec(listener, "LISTEN qpo_experiments");
    PGconn *conn = test_connect(info);
    char *sql = NULL;
    assert_true(asprintf(&sql,
                         "INSERT INTO qpo.experiments (name, config) VALUES ('by-sql', '%s') "
                         "RETURNING id",
                         dag_config) > 0);
    int64_t exp = q_int(conn, sql);
    free(sql);
    /* The notification carries the new id. */
    PGnotify *n = NULL;
    for (double end = qpo_test_deadline(5); !n && qpo_test_before(end);) {
        int fd = PQsocket(listener);
        fd_set set;
        FD_ZERO(&set);
        FD_SET(fd, &set);
        struct timeval tv = {0, 100000};
        select(fd + 1, &set, NULL, NULL, &tv);
        PQconsumeInput(listener);
        n = PQnotifies(listener);
    }
    assert_non_null(n);
    assert_string_equal(n->relname, "qpo_experiments");
    assert_int_equal(strtoll(n->extra, NULL, 10), exp);
    PQfreemem(n);
    qpo_run_result r;
    run_scheduler_once(info, NULL, &r);
    assert_int_equal(r.exit_code, 0);
    check_dag(conn, exp);
    PQfinish(listener);
    PQfinish(conn);
}

static void test_invalid_config_by_cli_writes_nothing(void **state) {
    char info[1024];
    snprintf(info, sizeof(info), "%s", qpo_pgtest_new_db(pg));
    char *path = write_temp("{\"tasks\": [\"gsm8k\", \"tweet\"], \"settings\": [\"zero_shot\"],"
                            " \"seeds\": [0], \"targets\": []}");
    qpo_run_result r;
    const char *argv[] = {"submit", path, NULL};
    qpo_run(&r, info, NULL, argv);
    assert_int_equal(r.exit_code, 2);
    assert_non_null(strstr(r.err, "tasks[1]: unknown task \"tweet\"; known: "));
    unlink(path);
    free(path);
    /* jansson's "-1:-1" position for a file it cannot open used to reach the user */
    const char *missing[] = {"submit", "/nonexistent/missing.json", NULL};
    qpo_run(&r, info, NULL, missing);
    assert_int_equal(r.exit_code, 2);
    assert_non_null(strstr(r.err, "/nonexistent/missing.json: cannot read the config file"));
    assert_null(strstr(r.err, "-1"));
    PGconn *conn = test_connect(info);
    assert_int_equal(q_int(conn, "SELECT count(*) FROM qpo.experiments"), 0);
    PQfinish(conn);
}

/* `--name ""` used to reach the database and print a raw CHECK violation with the whole row
 * (the config included); it is refused by name now, and any CHECK violation that does reach
 * a command names its constraint and table instead of the row. A file over
 * --max-config-bytes is refused unread. */
static void test_empty_name_and_big_file_refused(void **state) {
    char info[1024];
    snprintf(info, sizeof(info), "%s", qpo_pgtest_new_db(pg));
    char *path = write_temp(dag_config);
    qpo_run_result r;
    const char *argv[] = {"submit", path, "--name", "", NULL};
    qpo_run(&r, info, NULL, argv);
    assert_int_equal(r.exit_code, 2);
    assert_non_null(strstr(r.err, "qpo: error: --name: must not be empty"));
    assert_null(strstr(r.err, "Failing row"));
    const char *small[] = {"submit", path, "--max-config-bytes", "100", NULL};
    qpo_run(&r, info, NULL, small);
    assert_int_equal(r.exit_code, 2);
    assert_non_null(strstr(r.err, "the config file is larger than 100 bytes"));
    const char *nonsense[] = {"submit", path, "--max-config-bytes", "lots", NULL};
    qpo_run(&r, info, NULL, nonsense);
    assert_int_equal(r.exit_code, 2);
    unlink(path);
    free(path);
    PGconn *conn = test_connect(info);
    assert_int_equal(q_int(conn, "SELECT count(*) FROM qpo.experiments"), 0);
    qpo_err err = {0};
    const char *params[] = {"", "{\"seeds\": [1], \"secret\": \"in-the-row\"}"};
    assert_null(qpo_db_query(conn, "INSERT INTO qpo.experiments (name, config) VALUES ($1, $2)", 2,
                             params, &err));
    assert_string_equal(err.sqlstate, "23514");
    assert_string_equal(err.detail, "constraint experiments_name_check of table experiments");
    assert_null(strstr(err.msg, "in-the-row"));
    PQfinish(conn);
}

/* A password in a target URL used to be stored in qpo.targets and printed back. */
static void test_credentials_in_target_url_are_refused(void **state) {
    char info[1024];
    snprintf(info, sizeof(info), "%s", qpo_pgtest_new_db(pg));
    static const char *const urls[] = {"http://alice:s3cret-pw@127.0.0.1:9/v1",
                                       "https://s3cret-pw@example.org"};
    for (int i = 0; i < 2; i++) {
        char cfg[512];
        snprintf(cfg, sizeof(cfg),
                 "{\"tasks\": [\"gsm8k\"], \"settings\": [\"zero_shot\"], \"seeds\": [0], "
                 "\"targets\": [{\"name\": \"t\", \"base_url\": \"%s\", \"model\": \"m\"}]}",
                 urls[i]);
        char *path = write_temp(cfg);
        qpo_run_result r;
        const char *argv[] = {"submit", path, NULL};
        qpo_run(&r, info, NULL, argv);
        unlink(path);
        free(path);
        assert_int_equal(r.exit_code, 2);
        assert_non_null(strstr(r.err, "targets[0].base_url: must not hold credentials"));
        assert_null(strstr(r.err, "s3cret-pw"));
        assert_null(strstr(r.out, "s3cret-pw"));
    }
    PGconn *conn = test_connect(info);
    assert_int_equal(q_int(conn, "SELECT count(*) FROM qpo.experiments"), 0);
    assert_int_equal(q_int(conn, "SELECT count(*) FROM qpo.targets"), 0);
    PQfinish(conn);
}

/* Pretrained weights live on the gpu workers: a submitting machine without them gets a
 * warning naming where they are looked for, and the experiment is submitted all the same. */
static void test_pretrained_without_weights_warns_at_submit(void **state) {
    char info[1024];
    snprintf(info, sizeof(info), "%s", qpo_pgtest_new_db(pg));
    char *path = write_temp("{\"tasks\": [\"svamp\"], \"settings\": [\"zero_shot\"],"
                            " \"seeds\": [0], \"targets\": [{\"name\": \"sim\", \"base_url\":"
                            " \"http://127.0.0.1:9/v1\", \"model\": \"m\"}],"
                            " \"policy\": {\"init\": \"pretrained\"}}");
    char *saved = getenv("QPO_GPT2_DIR") ? strdup(getenv("QPO_GPT2_DIR")) : NULL;
    unsetenv("QPO_GPT2_DIR");
    qpo_run_result r;
    const char *argv[] = {"submit", path, NULL};
    qpo_run(&r, info, "HF_HOME=/nonexistent/hf", argv);
    if (saved)
        setenv("QPO_GPT2_DIR", saved, 1);
    free(saved);
    assert_int_equal(r.exit_code, 0);
    assert_non_null(strstr(r.err, "qpo: warning: policy.init \"pretrained\": no pretrained GPT-2"));
    assert_non_null(strstr(r.err, "policy.weights (not set)"));
    assert_non_null(strstr(r.err, "$QPO_GPT2_DIR (not set)"));
    assert_non_null(strstr(r.err, "/nonexistent/hf/hub/models--gpt2/snapshots/*/"));
    unlink(path);
    free(path);
    PGconn *conn = test_connect(info);
    assert_int_equal(q_int(conn, "SELECT count(*) FROM qpo.experiments"), 1);
    PQfinish(conn);
}

static void test_invalid_config_by_sql_is_marked_invalid(void **state) {
    char info[1024];
    snprintf(info, sizeof(info), "%s", qpo_pgtest_new_db(pg));
    PGconn *conn = test_connect(info);
    int64_t bad =
        q_int(conn, "INSERT INTO qpo.experiments (name, config) VALUES ('bad', '{\"tasks\": "
                    "[\"svamp\"], \"settings\": [\"zero_shot\"], \"seeds\": [0], \"targets\": "
                    "[{\"name\": \"x\", \"base_url\": \"http://h\", \"model\": \"m\", "
                    "\"api_key\": \"sk-secret\"}]}') RETURNING id");
    qpo_run_result r;
    run_scheduler_once(info, NULL, &r);
    assert_int_equal(r.exit_code, 0);
    char sql[256];
    snprintf(sql, sizeof(sql), "SELECT state || ': ' || error FROM qpo.experiments WHERE id = %lld",
             (long long)bad);
    char *s = q_str(conn, sql);
    assert_string_equal(s, "invalid: targets[0].api_key: keys are never stored in the database");
    free(s);
    assert_int_equal(q_int(conn, "SELECT count(*) FROM qpo.runs"), 0);
    assert_int_equal(q_int(conn, "SELECT count(*) FROM qpo.jobs"), 0);
    assert_int_equal(q_int(conn, "SELECT count(*) FROM qpo.targets"), 0);
    PQfinish(conn);
}

/* A clash with an existing target is found only at planning: the experiment is invalid and
 * the transaction that already wrote runs is rolled back. */
static void test_target_clash_rolls_back(void **state) {
    char info[1024];
    snprintf(info, sizeof(info), "%s", qpo_pgtest_new_db(pg));
    PGconn *conn = test_connect(info);
    q_exec(conn, "INSERT INTO qpo.targets (name, base_url, model) VALUES ('sim', "
                 "'http://other:1/v1', 'other-model')");
    int64_t exp = submit_cli(info, dag_config, "clash");
    qpo_run_result r;
    run_scheduler_once(info, NULL, &r);
    assert_int_equal(r.exit_code, 0);
    char sql[256];
    snprintf(sql, sizeof(sql), "SELECT state || ': ' || error FROM qpo.experiments WHERE id = %lld",
             (long long)exp);
    char *s = q_str(conn, sql);
    assert_non_null(strstr(s, "invalid: targets[0]: target \"sim\" already exists"));
    free(s);
    assert_int_equal(q_int(conn, "SELECT count(*) FROM qpo.runs"), 0);
    assert_int_equal(q_int(conn, "SELECT count(*) FROM qpo.jobs"), 0);
    PQfinish(conn);
}

static void test_killed_mid_plan_then_restarted(void **state) {
    char info[1024];
    snprintf(info, sizeof(info), "%s", qpo_pgtest_new_db(pg));
    int64_t exp = submit_cli(info, dag_config, "crash");
    qpo_run_result r;
    run_scheduler_once(info, "QPO_SCHEDULER_FAULT_AFTER_JOBS=20", &r);
    assert_int_equal(r.signal, SIGKILL);
    PGconn *conn = test_connect(info);
    char sql[256];
    snprintf(sql, sizeof(sql), "SELECT state FROM qpo.experiments WHERE id = %lld", (long long)exp);
    char *s = q_str(conn, sql);
    assert_string_equal(s, "submitted");
    free(s);
    assert_int_equal(q_int(conn, "SELECT count(*) FROM qpo.runs"), 0);
    assert_int_equal(q_int(conn, "SELECT count(*) FROM qpo.jobs"), 0);
    assert_int_equal(q_int(conn, "SELECT count(*) FROM qpo.job_deps"), 0);
    assert_int_equal(q_int(conn, "SELECT count(*) FROM qpo.targets"), 0);
    run_scheduler_once(info, NULL, &r);
    assert_int_equal(r.exit_code, 0);
    s = q_str(conn, sql);
    assert_string_equal(s, "planned");
    free(s);
    check_dag(conn, exp);
    PQfinish(conn);
}

static void test_two_schedulers_double_nothing(void **state) {
    char info[1024];
    snprintf(info, sizeof(info), "%s", qpo_pgtest_new_db(pg));
    int64_t exps[4];
    for (int i = 0; i < 4; i++)
        exps[i] = submit_cli(info, dag_config, "pair");
    const char *argv[] = {"scheduler", "--once", NULL};
    int a = qpo_spawn(info, NULL, argv), b = qpo_spawn(info, NULL, argv);
    qpo_run_result ra, rb;
    qpo_wait(a, &ra);
    qpo_wait(b, &rb);
    assert_int_equal(ra.exit_code, 0);
    assert_int_equal(rb.exit_code, 0);
    PGconn *conn = test_connect(info);
    assert_int_equal(q_int(conn, "SELECT count(*) FROM qpo.experiments WHERE state = 'planned'"),
                     4);
    assert_int_equal(q_int(conn, "SELECT count(*) FROM qpo.runs"), 16);
    assert_int_equal(q_int(conn, "SELECT count(*) FROM qpo.jobs"), 16 * JOBS_PER_RUN);
    for (int i = 0; i < 4; i++)
        check_dag(conn, exps[i]);
    PQfinish(conn);
}

/* Writing the same plan again (a scheduler that lost its commit acknowledgement and
 * retries) creates nothing: every key is already there. */
static void test_enqueue_is_idempotent(void **state) {
    char info[1024];
    snprintf(info, sizeof(info), "%s", qpo_pgtest_new_db(pg));
    int64_t exp = submit_cli(info, dag_config, "again");
    qpo_run_result r;
    run_scheduler_once(info, NULL, &r);
    PGconn *conn = test_connect(info);
    qpo_err err = {0};
    json_t *cfg = json_loads(dag_config, 0, NULL);
    json_t *resolved = qpo_config_resolve(cfg, &err);
    assert_non_null(resolved);
    char sql[256];
    snprintf(sql, sizeof(sql),
             "SELECT id, task FROM qpo.runs WHERE experiment_id = %lld ORDER BY id",
             (long long)exp);
    PGresult *res = qpo_db_query(conn, sql, 0, NULL, &err);
    assert_non_null(res);
    qpo_plan_run runs[4];
    for (int i = 0; i < 4; i++)
        runs[i] = (qpo_plan_run){qpo_db_int64(res, i, 0), PQgetvalue(res, i, 1), "zero_shot", "sim",
                                 i % 2};
    qpo_plan plan = {0};
    assert_int_equal(qpo_plan_build(exp, resolved, runs, 4, &plan, &err), 0);
    size_t created = 99;
    assert_int_equal(qpo_db_begin(conn, &err), 0);
    assert_int_equal(qpo_plan_enqueue(conn, &plan, 0, &created, &err), 0);
    assert_int_equal(qpo_db_commit(conn, &err), 0);
    assert_int_equal(created, 0);
    assert_int_equal(q_int(conn, "SELECT count(*) FROM qpo.jobs"), 4 * JOBS_PER_RUN);
    qpo_plan_free(&plan);
    PQclear(res);
    json_decref(resolved);
    json_decref(cfg);
    check_dag(conn, exp);
    PQfinish(conn);
}

/* Polls until `sql` returns want (bounded: a hung scheduler fails the test, it does not
 * time it). */
static int wait_for(const char *info, const char *sql, int64_t want) {
    for (double end = qpo_test_deadline(30); qpo_test_before(end);) {
        qpo_err err = {0};
        PGconn *conn = qpo_db_connect(info, "test", &err);
        int64_t got = -1;
        if (conn) {
            PGresult *res = qpo_db_query(conn, sql, 0, NULL, &err);
            if (res && PQntuples(res) == 1)
                got = qpo_db_int64(res, 0, 0);
            PQclear(res);
        }
        PQfinish(conn);
        if (got == want)
            return 1;
        usleep(50000);
    }
    return 0;
}

/* A long-running scheduler plans what arrives, survives a server restart, and stops
 * cleanly on SIGTERM. */
static void test_scheduler_daemon_survives_restart(void **state) {
    char info[1024];
    snprintf(info, sizeof(info), "%s", qpo_pgtest_new_db(pg));
    const char *argv[] = {"scheduler", "--poll-ms", "200", NULL};
    int pid = qpo_spawn(info, NULL, argv);
    submit_cli(info, dag_config, "first");
    assert_true(wait_for(info, "SELECT count(*) FROM qpo.experiments WHERE state = 'planned'", 1));
    qpo_pgtest_restart(pg);
    submit_cli(info, dag_config, "after-restart");
    assert_true(wait_for(info, "SELECT count(*) FROM qpo.experiments WHERE state = 'planned'", 2));
    kill(pid, SIGTERM);
    qpo_run_result r;
    qpo_wait(pid, &r);
    assert_int_equal(r.exit_code, 0);
    PGconn *conn = test_connect(info);
    assert_int_equal(q_int(conn, "SELECT count(*) FROM qpo.jobs"), 8 * JOBS_PER_RUN);
    PQfinish(conn);
}

int main(void) {
    pg = qpo_pgtest_start();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_submit_by_cli_and_plan_exact_dag),
        cmocka_unit_test(test_submit_by_sql_notifies_and_plans),
        cmocka_unit_test(test_invalid_config_by_cli_writes_nothing),
        cmocka_unit_test(test_empty_name_and_big_file_refused),
        cmocka_unit_test(test_credentials_in_target_url_are_refused),
        cmocka_unit_test(test_pretrained_without_weights_warns_at_submit),
        cmocka_unit_test(test_invalid_config_by_sql_is_marked_invalid),
        cmocka_unit_test(test_target_clash_rolls_back),
        cmocka_unit_test(test_killed_mid_plan_then_restarted),
        cmocka_unit_test(test_two_schedulers_double_nothing),
        cmocka_unit_test(test_enqueue_is_idempotent),
        cmocka_unit_test(test_scheduler_daemon_survives_restart),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    qpo_pgtest_stop(pg);
    return rc;
}
