/* What happens after planning, against a real PostgreSQL: states derived from jobs, resume
 * after a dead job, cancel, the results view's math, and the shared selections (collect
 * batches, test sample). Jobs are claimed and settled through the real queue client. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "db.h"
#include "experiments.h"
#include "pgtest.h"
#include "queue.h"
#include "runtime.h"
#include "import_check.h"
#include "sched_util.h"

static qpo_pgtest *pg;

static const char *small_config =
    "{\"tasks\": [\"tweet_emotion\"], \"settings\": [\"few_shot\"], \"seeds\": [0, 1],"
    " \"loops\": 2, \"targets\": [{\"name\": \"sim\", \"base_url\": \"http://127.0.0.1:9/v1\","
    " \"model\": \"sim-7b\"}], \"collect\": {\"batches\": 2, \"batch_size\": 4},"
    " \"test\": {\"shards\": 1}, \"baselines\": [{\"name\": \"manual\", \"prompt\": \"Go.\"}]}";

/* A database with one planned experiment of `config`; returns its id. */
static int64_t planned_experiment_of(const char *config, char *info, size_t size, PGconn **conn) {
    snprintf(info, size, "%s", qpo_pgtest_new_db(pg));
    *conn = test_connect(info);
    qpo_err err = {0};
    json_t *cfg = json_loads(config, 0, NULL);
    assert_non_null(cfg);
    int64_t exp = 0, planned = 0;
    assert_int_equal(qpo_experiment_submit(*conn, "ctl", cfg, &exp, &err), 0);
    json_decref(cfg);
    assert_int_equal(qpo_experiment_plan_next(*conn, 0, &planned, &err), 0);
    assert_int_equal(planned, exp);
    return exp;
}

static int64_t planned_experiment(char *info, size_t size, PGconn **conn) {
    return planned_experiment_of(small_config, info, size, conn);
}

static char *exp_state(PGconn *conn, int64_t exp) {
    char sql[128];
    snprintf(sql, sizeof(sql), "SELECT state FROM qpo.experiments WHERE id = %lld", (long long)exp);
    return q_str(conn, sql);
}

static void assert_exp_state(PGconn *conn, int64_t exp, const char *want) {
    char *s = exp_state(conn, exp);
    assert_string_equal(s, want);
    free(s);
}

static void refresh(PGconn *conn) {
    qpo_err err = {0};
    assert_int_equal(qpo_experiments_refresh(conn, &err), 0);
}

/* Claims the one queued job of `kind` as a worker would. */
static qpo_lease_ref claim(PGconn *conn, const char *kind) {
    const char *kinds[] = {kind};
    qpo_claimed *jobs = NULL;
    size_t n = 0;
    qpo_err err = {0};
    assert_int_equal(qpo_claim(conn, "cpu", kinds, 1, 1, "test-worker", 60, &jobs, &n, &err), 0);
    assert_int_equal(n, 1);
    qpo_lease_ref ref = {jobs[0].id, jobs[0].attempt};
    qpo_claimed_free(jobs, n);
    return ref;
}

static void test_dead_job_fails_run_and_resume_carries_on(void **state) {
    char info[1024];
    PGconn *conn;
    int64_t exp = planned_experiment(info, sizeof(info), &conn);
    assert_exp_state(conn, exp, "planned");
    qpo_err err = {0};
    qpo_lease_ref ref = claim(conn, "import-check");
    refresh(conn);
    assert_exp_state(conn, exp, "running");
    char fstate[16];
    assert_int_equal(qpo_fail(conn, "test-worker", ref, "no task items for tweet_emotion", true,
                              (qpo_backoff){10, 100}, fstate, &err),
                     0);
    assert_string_equal(fstate, "dead");
    refresh(conn);
    assert_exp_state(conn, exp, "failed");
    char *err_text = q_str(conn, "SELECT error FROM qpo.runs WHERE state = 'failed'");
    assert_non_null(strstr(err_text, "import-check job"));
    assert_non_null(strstr(err_text, "no task items for tweet_emotion"));
    free(err_text);
    /* The dead job's dependants were cancelled by the queue. */
    char sql[256];
    snprintf(sql, sizeof(sql),
             "SELECT count(*) FROM qpo.jobs WHERE run_id = (SELECT run_id FROM "
             "qpo.jobs WHERE id = %lld) AND state = 'cancelled'",
             (long long)ref.id);
    assert_true(q_int(conn, sql) > 0);

    qpo_run_result r;
    char id[24];
    snprintf(id, sizeof(id), "%lld", (long long)exp);
    const char *argv[] = {"resume", id, NULL};
    qpo_run(&r, info, NULL, argv);
    if (r.exit_code != 0)
        fail_msg("qpo resume: %s", r.err);
    assert_non_null(strstr(r.out, "resumed"));
    snprintf(sql, sizeof(sql), "SELECT state FROM qpo.jobs WHERE id = %lld", (long long)ref.id);
    char *js = q_str(conn, sql);
    assert_string_equal(js, "queued");
    free(js);
    assert_int_equal(q_int(conn, "SELECT count(*) FROM qpo.jobs WHERE state IN ('dead', "
                                 "'cancelled')"),
                     0);
    assert_int_equal(q_int(conn, "SELECT count(*) FROM qpo.runs WHERE state = 'failed'"), 0);
    char *s = exp_state(conn, exp);
    assert_true(!strcmp(s, "running") || !strcmp(s, "planned"));
    free(s);
    /* The runs go on: succeeding the check unblocks train(1). */
    ref = claim(conn, "import-check");
    bool done = false;
    json_t *results[] = {NULL};
    assert_int_equal(qpo_complete_batch(conn, "test-worker", &ref, results, 1, &done, &err), 0);
    assert_true(done);
    snprintf(sql, sizeof(sql),
             "SELECT state FROM qpo.jobs WHERE idempotency_key = 'run:' || (SELECT run_id FROM "
             "qpo.jobs WHERE id = %lld) || ':train:1'",
             (long long)ref.id);
    js = q_str(conn, sql);
    assert_string_equal(js, "queued");
    free(js);
    PQfinish(conn);
}

static void test_cancel_stops_everything_and_resume_restarts(void **state) {
    char info[1024];
    PGconn *conn;
    int64_t exp = planned_experiment(info, sizeof(info), &conn);
    qpo_lease_ref running = claim(conn, "import-check");
    char id[24];
    snprintf(id, sizeof(id), "%lld", (long long)exp);
    qpo_run_result r;
    const char *cancel[] = {"cancel", id, NULL};
    qpo_run(&r, info, NULL, cancel);
    if (r.exit_code != 0)
        fail_msg("qpo cancel: %s", r.err);
    assert_exp_state(conn, exp, "cancelled");
    assert_int_equal(q_int(conn, "SELECT count(*) FROM qpo.jobs WHERE state <> 'cancelled'"), 0);
    assert_int_equal(q_int(conn, "SELECT count(*) FROM qpo.runs WHERE state <> 'cancelled'"), 0);
    /* The worker holding a lease learns it lost the job. */
    bool held = true;
    qpo_err err = {0};
    assert_int_equal(qpo_heartbeat(conn, "test-worker", &running, 1, 60, &held, &err), 0);
    assert_false(held);
    /* The scheduler leaves a cancelled experiment alone. */
    refresh(conn);
    assert_exp_state(conn, exp, "cancelled");
    /* Cancelling again is harmless: nothing is left to cancel. */
    qpo_run(&r, info, NULL, cancel);
    assert_int_equal(r.exit_code, 0);
    const char *resume[] = {"resume", id, NULL};
    qpo_run(&r, info, NULL, resume);
    if (r.exit_code != 0)
        fail_msg("qpo resume: %s", r.err);
    assert_int_equal(q_int(conn, "SELECT count(*) FROM qpo.jobs WHERE state = 'cancelled'"), 0);
    assert_int_equal(q_int(conn, "SELECT count(*) FROM qpo.jobs WHERE state = 'queued'"), 2);
    assert_int_equal(q_int(conn, "SELECT count(*) FROM qpo.runs WHERE state = 'cancelled'"), 0);
    char *s = exp_state(conn, exp);
    assert_true(!strcmp(s, "running") || !strcmp(s, "planned"));
    free(s);
    /* Unknown experiments are a usage error. */
    const char *missing[] = {"cancel", "999", NULL};
    qpo_run(&r, info, NULL, missing);
    assert_int_equal(r.exit_code, 2);
    assert_non_null(strstr(r.err, "experiment 999 does not exist"));
    PQfinish(conn);
}

/* All jobs of the experiment succeed (set directly: the queue's rules are tested elsewhere;
 * here only the derivation matters). */
static void test_all_jobs_succeeded_is_done(void **state) {
    char info[1024];
    PGconn *conn;
    int64_t exp = planned_experiment(info, sizeof(info), &conn);
    for (int i = 0; i < 200; i++) {
        int64_t n = q_int(conn, "SELECT count(*) FROM qpo.jobs WHERE state = 'queued'");
        if (!n)
            break;
        qpo_lease_ref refs[64];
        size_t got = 0;
        qpo_claimed *jobs = NULL;
        qpo_err err = {0};
        static const char *const kinds[] = {"import-check",      "d0",     "train", "generate",
                                            "evaluate-generate", "reward", "score", "merge"};
        assert_int_equal(qpo_claim(conn, "cpu", kinds, 8, 64, "w", 60, &jobs, &got, &err), 0);
        size_t ng = 0;
        qpo_claimed *gjobs = NULL;
        assert_int_equal(
            qpo_claim(conn, "gpu", kinds, 8, 64 - (int)got, "w", 60, &gjobs, &ng, &err), 0);
        size_t k = 0;
        for (size_t j = 0; j < got; j++)
            refs[k++] = (qpo_lease_ref){jobs[j].id, jobs[j].attempt};
        for (size_t j = 0; j < ng; j++)
            refs[k++] = (qpo_lease_ref){gjobs[j].id, gjobs[j].attempt};
        qpo_claimed_free(jobs, got);
        qpo_claimed_free(gjobs, ng);
        json_t *results[64] = {0};
        bool done[64];
        assert_int_equal(qpo_complete_batch(conn, "w", refs, results, k, done, &err), 0);
        refresh(conn);
        if (q_int(conn, "SELECT count(*) FROM qpo.jobs WHERE state <> 'succeeded'") > 0) {
            char *s = exp_state(conn, exp);
            assert_string_equal(s, "running");
            free(s);
        }
    }
    assert_int_equal(q_int(conn, "SELECT count(*) FROM qpo.jobs WHERE state <> 'succeeded'"), 0);
    refresh(conn);
    assert_exp_state(conn, exp, "done");
    assert_int_equal(q_int(conn, "SELECT count(*) FROM qpo.runs WHERE state = 'done'"), 2);
    /* Every stage reports done = total in run_progress. */
    assert_int_equal(q_int(conn, "SELECT count(*) FROM qpo.run_progress WHERE succeeded <> total"),
                     0);
    /* qpo status --json says the same, per run and stage. */
    char id[24];
    snprintf(id, sizeof(id), "%lld", (long long)exp);
    qpo_run_result r;
    const char *argv[] = {"status", id, "--json", NULL};
    qpo_run(&r, info, NULL, argv);
    assert_int_equal(r.exit_code, 0);
    json_t *report = json_loads(r.out, 0, NULL);
    assert_non_null(report);
    json_t *e = json_array_get(report, 0);
    assert_string_equal(json_string_value(json_object_get(e, "state")), "done");
    json_t *runs = json_object_get(e, "runs");
    assert_int_equal(json_array_size(runs), 2);
    size_t i, k;
    json_t *run, *stage;
    int stages = 0;
    json_array_foreach(runs, i, run) {
        json_array_foreach(json_object_get(run, "stages"), k, stage) {
            assert_int_equal(json_integer_value(json_object_get(stage, "done")),
                             json_integer_value(json_object_get(stage, "total")));
            stages++;
        }
    }
    assert_int_equal(stages, 2 * 7); /* import-check train generate evalgen reward score merge */
    json_decref(report);
    const char *table[] = {"status", NULL};
    qpo_run(&r, info, NULL, table);
    assert_int_equal(r.exit_code, 0);
    assert_non_null(strstr(r.out, "reward"));
    assert_non_null(strstr(r.out, "2/2"));
    PQfinish(conn);
}

/* Known per-item accuracies: seed 0 scores 3/4 at loop 1, seed 1 scores 1/4; the view gives
 * mean 0.5 and population std 0.25; the baseline (loop 0) 1.0 and 0.5 -> 0.75 +- 0.25.
 * Paired on the items both scored (1 and 2): seed 0's differences are 0 and 0, seed 1's +0.5
 * and -0.5, so the mean is 0 and every resample's statistic is one of -0.25, 0, +0.25: the
 * 95% interval is [-0.25, +0.25]. policy_mode scores items 1 and 2 as 0, 1 (seed 0) and 0, 0
 * (seed 1): mean 0.25; QPO - policy_mode is +1, 0 on both seeds, so each seed's resampled mean
 * is 0, 0.5 or 1 and their average is 0 with probability 1/16 > 2.5%: [0, +1] around +0.5.
 * The oracle (seed 0: two source prompts, each right on one of two items -> 1.0) has one
 * seed: no spread. */
static void test_results_view_math(void **state) {
    char info[1024];
    PGconn *conn;
    int64_t exp = planned_experiment(info, sizeof(info), &conn);
    char sql[2048];
    snprintf(sql, sizeof(sql),
             "INSERT INTO qpo.eval_scores (run_id, loop, source, shard, item_id, prompt, acc, "
             "call_ids) SELECT r.id, v.loop, v.source, 0, v.item, 'p', v.acc, '{1}' "
             "FROM qpo.runs r JOIN (VALUES "
             "(0, 1, 'qpo', 1, 1.0), (0, 1, 'qpo', 2, 1.0), (0, 1, 'qpo', 3, 1.0), "
             "(0, 1, 'qpo', 4, 0.0), (1, 1, 'qpo', 1, 1.0), (1, 1, 'qpo', 2, 0.0), "
             "(1, 1, 'qpo', 3, 0.0), (1, 1, 'qpo', 4, 0.0), "
             "(0, 0, 'baseline:manual', 1, 1.0), (0, 0, 'baseline:manual', 2, 1.0), "
             "(1, 0, 'baseline:manual', 1, 0.5), (1, 0, 'baseline:manual', 2, 0.5), "
             "(0, 1, 'baseline:policy_mode', 1, 0.0), (0, 1, 'baseline:policy_mode', 2, 1.0), "
             "(1, 1, 'baseline:policy_mode', 1, 0.0), (1, 1, 'baseline:policy_mode', 2, 0.0), "
             "(0, 0, 'oracle:0', 1, 1.0), (0, 0, 'oracle:0', 2, 0.0), "
             "(0, 0, 'oracle:1', 1, 0.0), (0, 0, 'oracle:1', 2, 1.0)) "
             "AS v(seed, loop, source, item, acc) ON v.seed = r.seed "
             "WHERE r.experiment_id = %lld",
             (long long)exp);
    q_exec(conn, sql);
    snprintf(sql, sizeof(sql),
             "INSERT INTO qpo.generations (run_id, loop, purpose, batch, item_id, prompt) "
             "SELECT r.id, 1, 'test', 0, i, CASE WHEN i < 3 THEN 'a' ELSE 'b' || r.seed END "
             "FROM qpo.runs r, generate_series(1, 4) i WHERE r.experiment_id = %lld",
             (long long)exp);
    q_exec(conn, sql);
    q_exec(conn, "INSERT INTO qpo.d0_records (task, setting, target, source, query, label, prompt, "
                 "acc, avg_acc, raw_reward) VALUES ('tweet_emotion', 'few_shot', 'sim', "
                 "'authors.json', 'q', 0, 'p', 1, 1, 1)");
    qpo_err err = {0};
    PGresult *res = qpo_db_query(conn,
                                 "SELECT source, loop, seeds, mean_acc, std_acc, items_min, "
                                 "items_max, distinct_prompts FROM qpo.results "
                                 "ORDER BY loop, source",
                                 0, NULL, &err);
    assert_non_null(res);
    assert_int_equal(PQntuples(res), 4);
    assert_string_equal(PQgetvalue(res, 0, 0), "baseline:manual");
    assert_true(fabs(strtod(PQgetvalue(res, 0, 3), NULL) - 0.75) < 1e-12);
    assert_true(fabs(strtod(PQgetvalue(res, 0, 4), NULL) - 0.25) < 1e-12);
    assert_string_equal(PQgetvalue(res, 1, 0), "oracle");
    assert_true(fabs(strtod(PQgetvalue(res, 1, 3), NULL) - 1.0) < 1e-12);
    assert_true(PQgetisnull(res, 1, 4)); /* one seed: no spread, not 0 */
    assert_string_equal(PQgetvalue(res, 2, 0), "baseline:policy_mode");
    assert_true(fabs(strtod(PQgetvalue(res, 2, 3), NULL) - 0.25) < 1e-12);
    assert_string_equal(PQgetvalue(res, 3, 0), "qpo");
    assert_int_equal(qpo_db_int64(res, 3, 2), 2);
    assert_true(fabs(strtod(PQgetvalue(res, 3, 3), NULL) - 0.5) < 1e-12);
    assert_true(fabs(strtod(PQgetvalue(res, 3, 4), NULL) - 0.25) < 1e-12);
    assert_int_equal(qpo_db_int64(res, 3, 5), 4);
    assert_int_equal(qpo_db_int64(res, 3, 6), 4);
    assert_true(fabs(strtod(PQgetvalue(res, 3, 7), NULL) - 2.0) < 1e-12); /* 'a' and 'bS' */
    PQclear(res);
    char id[24];
    snprintf(id, sizeof(id), "%lld", (long long)exp);
    qpo_run_result r;
    const char *csv[] = {"results", id, "--format", "csv", NULL};
    qpo_run(&r, info, NULL, csv);
    assert_int_equal(r.exit_code, 0);
    assert_non_null(strstr(r.out, "task,setting,target,source,loop,seeds,mean_acc,std_acc,"
                                  "items_min,items_max,distinct_prompts,vs,diff,ci_low,ci_high\n"));
    assert_non_null(strstr(r.out, "tweet_emotion,few_shot,sim,qpo,1,2,0.5,0.25,4,4,2,"
                                  "baseline:manual,0,-0.25,0.25\n"));
    assert_non_null(strstr(r.out, "tweet_emotion,few_shot,sim,oracle,0,1,1,,2,2,,,,,\n"));
    assert_non_null(strstr(r.err, "qpo: warning: tweet_emotion few_shot sim loop 1: QPO - "
                                  "baseline:manual rests on 2 paired test items per seed"));
    assert_non_null(strstr(r.err, "imported from authors.json, not scored on target sim"));
    const char *table[] = {"results", id, NULL};
    qpo_run(&r, info, NULL, table);
    assert_int_equal(r.exit_code, 0);
    assert_non_null(strstr(r.out, "50.00 +- 25.00"));
    assert_non_null(strstr(r.out, "75.00 +- 25.00"));
    assert_non_null(strstr(r.out, "100.00 +- n/a"));
    assert_non_null(strstr(r.out, "+0.00 [-25.00, +25.00] vs baseline:manual"));
    assert_non_null(strstr(r.out, "warning: tweet_emotion few_shot sim loop 1"));
    const char *js[] = {"results", id, "--format", "json", NULL};
    qpo_run(&r, info, NULL, js);
    assert_int_equal(r.exit_code, 0);
    json_t *doc = json_loads(r.out, 0, NULL);
    json_t *rows = json_object_get(doc, "rows");
    assert_int_equal(json_array_size(rows), 4);
    json_t *q = json_array_get(rows, 2); /* loop 1: qpo first */
    assert_string_equal(json_string_value(json_object_get(q, "source")), "qpo");
    json_t *vs = json_object_get(q, "vs_best_baseline");
    assert_string_equal(json_string_value(json_object_get(vs, "baseline")), "baseline:manual");
    assert_true(fabs(json_real_value(json_object_get(vs, "ci_low")) + 0.25) < 1e-12);
    assert_true(fabs(json_real_value(json_object_get(vs, "ci_high")) - 0.25) < 1e-12);
    /* Every baseline of loop 1, not only the best: manual as above, then policy_mode. */
    json_t *all = json_object_get(q, "vs_baselines");
    assert_int_equal(json_array_size(all), 2);
    json_t *pm = json_array_get(all, 1);
    assert_string_equal(json_string_value(json_object_get(json_array_get(all, 0), "baseline")),
                        "baseline:manual");
    assert_string_equal(json_string_value(json_object_get(pm, "baseline")), "baseline:policy_mode");
    assert_true(fabs(json_real_value(json_object_get(pm, "diff")) - 0.5) < 1e-12);
    assert_true(fabs(json_real_value(json_object_get(pm, "ci_low"))) < 1e-12);
    assert_true(fabs(json_real_value(json_object_get(pm, "ci_high")) - 1.0) < 1e-12);
    assert_int_equal(json_integer_value(json_object_get(pm, "paired_items_min")), 2);
    assert_true(json_is_null(json_object_get(json_array_get(rows, 1), "std_acc")));
    assert_int_equal(json_array_size(json_object_get(doc, "warnings")), 2);
    json_decref(doc);
    const char *missing[] = {"results", "4242", NULL};
    qpo_run(&r, info, NULL, missing);
    assert_int_equal(r.exit_code, 2);
    assert_non_null(strstr(r.err, "experiment 4242 does not exist"));
    PQfinish(conn);
}

/* Synthetic items: 4 labels x 30 collect items and 4 x 40 test items. */
static void insert_items(PGconn *conn) {
    q_exec(conn, "INSERT INTO qpo.task_items (task, item_id, split, upstream_split, "
                 "upstream_index, query, fields, label) "
                 "SELECT 'tweet_emotion', i, CASE WHEN i < 120 THEN 'collect' ELSE 'test' END, "
                 "'train', i, 'q' || i, '{}', i % 4 FROM generate_series(0, 279) i");
}

static void test_collect_batches_are_balanced_and_fresh(void **state) {
    char info[1024];
    PGconn *conn;
    planned_experiment(info, sizeof(info), &conn);
    insert_items(conn);
    q_exec(conn, "UPDATE qpo.runs SET collect_draw = 'exhaustive'");
    /* Batches of 4 in 2 x 4 per loop, 2 loops: 16 distinct items, each batch one per label. */
    const char *run = "(SELECT min(id) FROM qpo.runs)";
    char sql[1024];
    snprintf(sql, sizeof(sql),
             "SELECT count(*), count(DISTINCT b.item_id) FROM generate_series(1, 2) l, "
             "generate_series(0, 1) bt, qpo.collect_batch(%s, l, bt) b",
             run);
    assert_int_equal(q_int(conn, sql), 16);
    snprintf(sql, sizeof(sql),
             "SELECT count(DISTINCT b.item_id) FROM generate_series(1, 2) l, "
             "generate_series(0, 1) bt, qpo.collect_batch(%s, l, bt) b",
             run);
    assert_int_equal(q_int(conn, sql), 16);
    snprintf(sql, sizeof(sql),
             "SELECT count(*) FROM (SELECT l, bt, count(DISTINCT t.label) AS labels FROM "
             "generate_series(1, 2) l, generate_series(0, 1) bt, qpo.collect_batch(%s, l, bt) b "
             "JOIN qpo.task_items t ON t.task = 'tweet_emotion' AND t.item_id = b.item_id "
             "GROUP BY l, bt) x WHERE labels = 4",
             run);
    assert_int_equal(q_int(conn, sql), 4);
    /* Deterministic: the same call gives the same items in the same order. */
    snprintf(sql, sizeof(sql),
             "SELECT string_agg(item_id::text, ',' ORDER BY pos) FROM "
             "qpo.collect_batch(%s, 2, 1)",
             run);
    char *a = q_str(conn, sql), *b = q_str(conn, sql);
    assert_string_equal(a, b);
    free(a);
    free(b);
    /* Seeds differ: the two runs (seeds 0 and 1) see different first batches. */
    a = q_str(conn, "SELECT string_agg(item_id::text, ',' ORDER BY pos) FROM "
                    "qpo.collect_batch((SELECT min(id) FROM qpo.runs), 1, 0)");
    b = q_str(conn, "SELECT string_agg(item_id::text, ',' ORDER BY pos) FROM "
                    "qpo.collect_batch((SELECT max(id) FROM qpo.runs), 1, 0)");
    assert_string_not_equal(a, b);
    free(a);
    free(b);
    /* Out of range is an error, not an empty batch. */
    qpo_err err = {0};
    assert_null(qpo_db_query(conn,
                             "SELECT * FROM qpo.collect_batch((SELECT min(id) FROM "
                             "qpo.runs), 1, 2)",
                             0, NULL, &err));
    PQfinish(conn);
}

/* A loop wanting more than the split holds (TweetEval: 374 against 10 x 100) takes each item
 * once: later batches come back short, and the next loop starts where this one ended. */
static void test_collect_batches_wrap_without_repeats(void **state) {
    char info[1024];
    PGconn *conn;
    planned_experiment(info, sizeof(info), &conn);
    insert_items(conn);
    q_exec(conn, "UPDATE qpo.runs SET collect_batches = 10, collect_batch_size = 50, "
                 "collect_draw = 'exhaustive'");
    const char *run = "(SELECT min(id) FROM qpo.runs)";
    char sql[512];
    snprintf(sql, sizeof(sql),
             "SELECT count(*) FROM generate_series(0, 9) bt, qpo.collect_batch(%s, 1, bt) b", run);
    assert_int_equal(q_int(conn, sql), 120);
    snprintf(sql, sizeof(sql),
             "SELECT count(DISTINCT b.item_id) FROM generate_series(0, 9) bt, "
             "qpo.collect_batch(%s, 1, bt) b",
             run);
    assert_int_equal(q_int(conn, sql), 120);
    snprintf(sql, sizeof(sql), "SELECT count(*) FROM qpo.collect_batch(%s, 1, 2)", run);
    assert_int_equal(q_int(conn, sql), 20);
    snprintf(sql, sizeof(sql), "SELECT count(*) FROM qpo.collect_batch(%s, 1, 3)", run);
    assert_int_equal(q_int(conn, sql), 0);
    PQfinish(conn);
}

static const char *recipe_collect_config =
    "{\"tasks\": [\"tweet_emotion\"], \"settings\": [\"zero_shot\"], \"seeds\": [0, 1],"
    " \"loops\": 2, \"targets\": [{\"name\": \"sim\", \"base_url\": \"http://127.0.0.1:9/v1\","
    " \"model\": \"sim-7b\"}]}";

static int64_t q_intf(PGconn *conn, const char *fmt, const char *arg) {
    char sql[1024];
    snprintf(sql, sizeof(sql), fmt, arg);
    return q_int(conn, sql);
}

static char *batch_items(PGconn *conn, const char *run, int loop, int batch) {
    char sql[512];
    snprintf(sql, sizeof(sql),
             "SELECT string_agg(item_id::text, ',' ORDER BY pos) FROM qpo.collect_batch(%s, %d, "
             "%d)",
             run, loop, batch);
    return q_str(conn, sql);
}

/* The authors' rule, by default: 10 independent seeded class-balanced draws of 100 per loop,
 * so a loop always scores 1000 pairs even from a split of 120 (TweetEval: 374). */
static void test_collect_draws_are_independent_by_default(void **state) {
    char info[1024];
    PGconn *conn;
    int64_t exp = planned_experiment_of(recipe_collect_config, info, sizeof(info), &conn);
    insert_items(conn);
    assert_int_equal(q_int(conn, "SELECT count(*) FROM qpo.runs WHERE collect_draw = "
                                 "'independent' AND collect_batches = 10 AND "
                                 "collect_batch_size = 100"),
                     2);
    const char *run = "(SELECT min(id) FROM qpo.runs)";
    for (int loop = 1; loop <= 2; loop++) {
        char fmt[512];
        snprintf(fmt, sizeof(fmt),
                 "SELECT count(*) FROM generate_series(0, 9) bt, qpo.collect_batch(%%s, %d, bt) b",
                 loop);
        assert_int_equal(q_intf(conn, fmt, run), 1000);
    }
    /* Each batch: 100 distinct items, 25 of each of the 4 labels. */
    assert_int_equal(q_intf(conn,
                            "SELECT count(*) FROM (SELECT l, bt, t.label, count(*) AS n, "
                            "count(DISTINCT b.item_id) AS d FROM generate_series(1, 2) l, "
                            "generate_series(0, 9) bt, qpo.collect_batch(%s, l, bt) b JOIN "
                            "qpo.task_items t ON t.task = 'tweet_emotion' AND t.item_id = "
                            "b.item_id GROUP BY l, bt, t.label) x WHERE n = 25 AND d = 25",
                            run),
                     2 * 10 * 4);
    /* Repeats across batches are allowed: 1000 draws from 120 items. */
    assert_true(q_intf(conn,
                       "SELECT count(DISTINCT b.item_id) FROM generate_series(0, 9) bt, "
                       "qpo.collect_batch(%s, 1, bt) b",
                       run) <= 120);
    /* Batches and loops differ; the same (seed, loop, batch) is the same draw, in any run. */
    char *a = batch_items(conn, run, 1, 0), *b = batch_items(conn, run, 1, 1);
    char *c = batch_items(conn, run, 2, 0), *again = batch_items(conn, run, 1, 0);
    assert_string_not_equal(a, b);
    assert_string_not_equal(a, c);
    assert_string_equal(a, again);
    char *seed1 = batch_items(conn, "(SELECT max(id) FROM qpo.runs)", 1, 0);
    assert_string_not_equal(a, seed1);
    qpo_err err = {0};
    json_t *cfg = json_loads(recipe_collect_config, 0, NULL);
    int64_t exp2 = 0, planned = 0;
    assert_int_equal(qpo_experiment_submit(conn, "again", cfg, &exp2, &err), 0);
    json_decref(cfg);
    assert_int_equal(qpo_experiment_plan_next(conn, 0, &planned, &err), 0);
    char other[128];
    snprintf(other, sizeof(other),
             "(SELECT id FROM qpo.runs WHERE experiment_id = %lld AND seed = 0)", (long long)exp2);
    char *same_seed = batch_items(conn, other, 1, 0);
    assert_true(exp2 != exp);
    assert_string_equal(a, same_seed);
    free(a), free(b), free(c), free(again), free(seed1), free(same_seed);
    /* A batch larger than the split cannot be drawn without repeats inside it: an error. */
    q_exec(conn, "UPDATE qpo.runs SET collect_batch_size = 121");
    assert_null(qpo_db_query(conn,
                             "SELECT * FROM qpo.collect_batch((SELECT min(id) FROM "
                             "qpo.runs), 1, 0)",
                             0, NULL, &err));
    assert_non_null(strstr(err.msg, "draws 121 items per batch"));
    PQfinish(conn);
}

/* qpo's earlier rule stays an option, recorded on the run. */
static void test_collect_draw_exhaustive_is_an_option(void **state) {
    char info[1024];
    PGconn *conn;
    planned_experiment_of(
        "{\"tasks\": [\"tweet_emotion\"], \"settings\": [\"zero_shot\"], \"seeds\": [0],"
        " \"loops\": 2, \"targets\": [{\"name\": \"sim\", \"base_url\": \"http://127.0.0.1:9/v1\","
        " \"model\": \"sim-7b\"}], \"collect\": {\"draw\": \"exhaustive\"}}",
        info, sizeof(info), &conn);
    insert_items(conn);
    assert_int_equal(q_int(conn, "SELECT count(*) FROM qpo.runs WHERE collect_draw = "
                                 "'exhaustive'"),
                     1);
    /* 120 items against 10 x 100: each once in loop 1. */
    assert_int_equal(q_int(conn, "SELECT count(*) FROM generate_series(0, 9) bt, "
                                 "qpo.collect_batch((SELECT min(id) FROM qpo.runs), 1, bt) b"),
                     120);
    PQfinish(conn);
}

static void test_test_sample_is_balanced_prefix(void **state) {
    char info[1024];
    PGconn *conn;
    planned_experiment(info, sizeof(info), &conn);
    insert_items(conn);
    assert_int_equal(q_int(conn, "SELECT count(*) FROM (SELECT t.label FROM "
                                 "qpo.test_sample('tweet_emotion', 0, 100) s JOIN qpo.task_items "
                                 "t ON t.task = 'tweet_emotion' AND t.item_id = s.item_id GROUP "
                                 "BY t.label HAVING count(*) = 25) x"),
                     4);
    /* n = 20 is the first 20 of n = 100, whoever asks. */
    assert_int_equal(q_int(conn, "SELECT count(*) FROM qpo.test_sample('tweet_emotion', 0, 20) a "
                                 "JOIN qpo.test_sample('tweet_emotion', 0, 100) b USING (ord, "
                                 "item_id)"),
                     20);
    assert_true(q_int(conn, "SELECT count(*) FROM qpo.test_sample('tweet_emotion', 0, 20) a JOIN "
                            "qpo.test_sample('tweet_emotion', 1, 20) b USING (ord, item_id)") < 20);
    PQfinish(conn);
}

/* Runs an in-process worker on the import-check jobs until none is left. */
static void run_import_checks(const char *info) {
    static const char *kinds[] = {"import-check"};
    qpo_worker_opts o;
    qpo_worker_opts_default(&o);
    o.conninfo = info;
    o.name = "test-checker";
    o.job_class = "cpu";
    o.kinds = kinds;
    o.nkinds = 1;
    o.concurrency = 2;
    o.poll_s = 0.05;
    o.exit_when_idle = true;
    qpo_err err = {0};
    if (qpo_worker_run(&o, &err) < 0)
        fail_msg("worker: %s", err.msg);
}

/* Planning needs no data: the run fails at its first job saying which import to run, and
 * after the import qpo resume carries on. */
static void test_missing_data_fails_first_job_then_resume(void **state) {
    char info[1024];
    PGconn *conn;
    int64_t exp = planned_experiment(info, sizeof(info), &conn);
    char *problem = q_str(conn, "SELECT qpo.run_data_problem(min(id)) FROM qpo.runs");
    assert_non_null(strstr(problem, "task tweet_emotion is not imported"));
    free(problem);
    run_import_checks(info);
    refresh(conn);
    assert_exp_state(conn, exp, "failed");
    char *error = q_str(conn, "SELECT error FROM qpo.runs ORDER BY id LIMIT 1");
    assert_non_null(strstr(error, "'qpo data import tweet_emotion FILE...'"));
    free(error);
    /* Items but no D_0: the message names import-d0 with this run's task, setting, target. */
    insert_items(conn);
    q_exec(conn, "UPDATE qpo.task_items SET split = 'train' WHERE item_id BETWEEN 100 AND 119");
    problem = q_str(conn, "SELECT qpo.run_data_problem(min(id)) FROM qpo.runs");
    assert_non_null(strstr(problem, "'qpo data import-d0 FILE --task tweet_emotion --setting "
                                    "few_shot --target sim'"));
    free(problem);
    q_exec(conn, "INSERT INTO qpo.d0_records (task, setting, target, source, query, label, prompt, "
                 "acc, avg_acc, raw_reward) VALUES ('tweet_emotion', 'few_shot', 'sim', 'test', "
                 "'q0', 0, 'p', 1, 0.5, 15)");
    assert_int_equal(q_int(conn, "SELECT count(*) FROM qpo.runs WHERE qpo.run_data_problem(id) "
                                 "IS NOT NULL"),
                     0);
    char id[24];
    snprintf(id, sizeof(id), "%lld", (long long)exp);
    qpo_run_result r;
    const char *resume[] = {"resume", id, NULL};
    qpo_run(&r, info, NULL, resume);
    assert_int_equal(r.exit_code, 0);
    run_import_checks(info);
    refresh(conn);
    assert_exp_state(conn, exp, "running");
    assert_int_equal(q_int(conn, "SELECT count(*) FROM qpo.jobs WHERE kind = 'import-check' AND "
                                 "state = 'succeeded'"),
                     2);
    assert_int_equal(q_int(conn, "SELECT count(*) FROM qpo.jobs WHERE kind = 'train' AND state = "
                                 "'queued'"),
                     2);
    PQfinish(conn);
}

/* A d0 build is shared by the seeds; when it dies, every run waiting on it fails, not only
 * the one it is filed under. */
static void test_dead_shared_d0_fails_every_seed(void **state) {
    char info[1024];
    PGconn *conn;
    char *config = NULL;
    assert_true(asprintf(&config, "%.*s, \"d0\": {\"source\": \"build\"}}",
                         (int)strlen(small_config) - 1, small_config) > 0);
    int64_t exp = planned_experiment_of(config, info, sizeof(info), &conn);
    free(config);
    assert_int_equal(q_int(conn, "SELECT count(*) FROM qpo.jobs WHERE kind = 'd0'"), 1);
    qpo_lease_ref ref = claim(conn, "d0");
    char fstate[16];
    qpo_err err = {0};
    assert_int_equal(qpo_fail(conn, "test-worker", ref, "target unreachable", true,
                              (qpo_backoff){10, 100}, fstate, &err),
                     0);
    refresh(conn);
    assert_exp_state(conn, exp, "failed");
    assert_int_equal(q_int(conn, "SELECT count(*) FROM qpo.runs WHERE state = 'failed'"), 2);
    assert_int_equal(q_int(conn, "SELECT count(*) FROM qpo.runs WHERE error LIKE '%is dead: "
                                 "target unreachable'"),
                     1);
    assert_int_equal(q_int(conn, "SELECT count(*) FROM qpo.runs WHERE error LIKE '%is cancelled%'"),
                     1);
    PQfinish(conn);
}

int main(void) {
    pg = qpo_pgtest_start();
    qpo_import_check_register_handlers();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_dead_job_fails_run_and_resume_carries_on),
        cmocka_unit_test(test_cancel_stops_everything_and_resume_restarts),
        cmocka_unit_test(test_all_jobs_succeeded_is_done),
        cmocka_unit_test(test_results_view_math),
        cmocka_unit_test(test_collect_batches_are_balanced_and_fresh),
        cmocka_unit_test(test_collect_batches_wrap_without_repeats),
        cmocka_unit_test(test_collect_draws_are_independent_by_default),
        cmocka_unit_test(test_collect_draw_exhaustive_is_an_option),
        cmocka_unit_test(test_test_sample_is_balanced_prefix),
        cmocka_unit_test(test_missing_data_fails_first_job_then_resume),
        cmocka_unit_test(test_dead_shared_d0_fails_every_seed),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    qpo_pgtest_stop(pg);
    return rc;
}
