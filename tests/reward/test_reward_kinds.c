/* Every task type and job kind against `qpo sim-llm`, in this process: few-shot label scoring
 * (5 demonstration sets), math (chat + answer extraction), score jobs (baseline and the
 * policy's test prompts, 10 sets in few-shot; prompts chosen from D_0 and the generations)
 * and d0 (InstructEval prompts). Each result is
 * recomputed in SQL from the stored components and the recorded requests. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "db.h"
#include "pgtest.h"
#include "reward_jobs.h"
#include "sim_fixture.h"
#include "tasks.h"

static qpo_pgtest *pg;

typedef qpo_job_status (*job_fn)(const qpo_reward_env *, const json_t *, qpo_job_outcome *,
                                 qpo_err *);

/* Runs one job in this process and completes it like the runtime (commit hook in one
 * transaction). Returns its result, failing the test unless it succeeded. */
static json_t *run_job(const char *conninfo, job_fn fn, const char *payload_text) {
    qpo_err err = {0};
    PGconn *conn = qpo_db_connect(conninfo, "test_reward_kinds", &err);
    assert_non_null(conn);
    json_error_t jerr;
    json_t *payload = json_loads(payload_text, 0, &jerr);
    assert_non_null(payload);
    qpo_reward_env env = {.conn = conn, .worker = "in-process"};
    qpo_job_outcome out = {0};
    qpo_job_status st = fn(&env, payload, &out, &err);
    if (st != QPO_JOB_OK) {
        qpo_err_print(&err);
        fail_msg("job %s ended with status %d", payload_text, (int)st);
    }
    qpo_job job = {.kind = "test", .attempt = 1, .payload = payload};
    assert_int_equal(qpo_db_begin(conn, &err), 0);
    if (qpo_outcome_write(conn, &job, &out, &err) != 0) {
        qpo_err_print(&err);
        fail_msg("writing the job's rows failed");
    }
    assert_int_equal(qpo_db_commit(conn, &err), 0);
    qpo_outcome_free_output(&out);
    json_decref(payload);
    PQfinish(conn);
    return out.result;
}

static void run_job_expect_fatal(const char *conninfo, job_fn fn, const char *payload_text,
                                 const char *msg_part) {
    qpo_err err = {0};
    PGconn *conn = qpo_db_connect(conninfo, "test_reward_kinds", &err);
    json_error_t jerr;
    json_t *payload = json_loads(payload_text, 0, &jerr);
    qpo_reward_env env = {.conn = conn, .worker = "in-process"};
    qpo_job_outcome out = {0};
    assert_int_equal(fn(&env, payload, &out, &err), QPO_JOB_FATAL);
    if (!strstr(err.msg, msg_part)) {
        fail_msg("error \"%s\" does not mention \"%s\"", err.msg, msg_part);
    }
    assert_false(qpo_outcome_has_output(&out));
    json_decref(payload);
    PQfinish(conn);
}

static PGconn *base_db(char **conninfo, const char *task, const char *setting) {
    *conninfo = strdup(qpo_pgtest_new_db(pg));
    qpo_err err = {0};
    PGconn *conn = qpo_db_connect(*conninfo, "test_reward_kinds", &err);
    assert_non_null(conn);
    char sql[1024];
    snprintf(
        sql, sizeof sql,
        "INSERT INTO qpo.targets (name, base_url, model) VALUES ('sim', 'http://x', 'qpo-sim');"
        "INSERT INTO qpo.experiments (id, name, config) VALUES (1, 'e', '{}');"
        "INSERT INTO qpo.runs (id, experiment_id, task, setting, target, seed, loops, "
        "test_size) VALUES (1, 1, '%s', '%s', 'sim', 0, 4, 40);"
        "INSERT INTO qpo.d0_records (task, setting, target, source, query, label, answer, "
        "prompt, acc, avg_acc, raw_reward) VALUES "
        "('%s', '%s', 'sim', 'test', 'a', NULL, '1', 'p', 0, 0, -5), "
        "('%s', '%s', 'sim', 'test', 'b', NULL, '2', 'p', 1, 1, 25)",
        task, setting, task, setting, task, setting);
    db_exec_ok(conn, sql);
    return conn;
}

static void add_tweets(PGconn *conn, const char *data, const char *file, const char *split,
                       int first_id, int n) {
    char sql[2048];
    /* pg_read_file would need superuser paths; the client reads the files instead. */
    char tp[4096], lp[4096];
    snprintf(tp, sizeof tp, "%s/tweet_eval_emotion/%s_text.txt", data, file);
    snprintf(lp, sizeof lp, "%s/tweet_eval_emotion/%s_labels.txt", data, file);
    FILE *ft = fopen(tp, "r"), *fl = fopen(lp, "r");
    assert_non_null(ft);
    assert_non_null(fl);
    char text[4096], label[16];
    for (int i = 0; i < n && fgets(text, sizeof text, ft) && fgets(label, sizeof label, fl); i++) {
        text[strcspn(text, "\r\n")] = '\0';
        json_t *fields = json_pack("{s:s}", "text", text);
        char *fj = json_dumps(fields, JSON_COMPACT);
        snprintf(sql, sizeof sql, "%d", first_id + i);
        char idx[16], lab[16];
        snprintf(idx, sizeof idx, "%d", i);
        snprintf(lab, sizeof lab, "%d", atoi(label));
        const char *p[7] = {sql, split, file, idx, text, fj, lab};
        qpo_err err = {0};
        PGresult *res = qpo_db_query(
            conn,
            "INSERT INTO qpo.task_items (task, item_id, split, upstream_split, upstream_index, "
            "query, fields, label) SELECT task, $1::int, $2, $3, $4::int, $5, $6::jsonb, "
            "$7::int FROM qpo.runs WHERE id = 1",
            7, p, &err);
        assert_non_null(res);
        PQclear(res);
        free(fj);
        json_decref(fields);
    }
    fclose(ft);
    fclose(fl);
}

static void test_few_shot_reward_uses_five_demo_sets(void **state) {
    (void)state;
    const char *data = shared_data_or_skip();
    char *info;
    PGconn *conn = base_db(&info, "tweet_emotion", "few_shot");
    add_tweets(conn, data, "val", "collect", 0, 20);
    add_tweets(conn, data, "train", "train", 1000, 50);
    db_exec_ok(conn, "INSERT INTO qpo.generations (run_id, loop, purpose, batch, item_id, prompt) "
                     "SELECT 1, 2, 'collect', 3, i, CASE WHEN i % 2 = 0 THEN 'Classify the "
                     "tweet.' ELSE 'Which emotion best describes the tweet?' END "
                     "FROM generate_series(0, 19) i");
    sim_proc sim = {0};
    sim_serve(&sim, conn, info, "", "{}");
    json_t *result = run_job(info, qpo_reward_job_reward, "{\"run_id\":1,\"loop\":2,\"batch\":3}");
    assert_int_equal(json_integer_value(json_object_get(result, "requests")), 20 * 5 * 4);
    json_decref(result);

    assert_int_equal(db_count(conn, "SELECT count(*) FROM qpo.rewards WHERE loop = 2 AND "
                                    "batch = 3 AND array_length(nlls, 1) = 5 AND "
                                    "array_length(nlls, 2) = 4 AND cardinality(call_ids) = 20 "
                                    "AND correct IS NULL AND prediction IS NULL"),
                     20);
    /* acc_q = share of sets whose argmin NLL is the gold; raw = 10 (acc_q + batch mean). */
    assert_int_equal(
        db_count(conn,
                 "WITH per_set AS (SELECT r.item_id, s, (SELECT k - 1 FROM generate_subscripts("
                 "r.nlls, 2) k ORDER BY r.nlls[s][k], k LIMIT 1) AS pred FROM qpo.rewards r, "
                 "generate_subscripts(r.nlls, 1) s), acc AS (SELECT p.item_id, "
                 "avg((p.pred = i.label)::int) a, array_agg(p.pred ORDER BY p.s) preds "
                 "FROM per_set p JOIN qpo.task_items i ON i.task = 'tweet_emotion' AND "
                 "i.item_id = p.item_id GROUP BY p.item_id) "
                 "SELECT count(*) FROM qpo.rewards r JOIN acc USING (item_id) WHERE "
                 "abs(r.acc_q - acc.a) > 1e-9 OR r.predictions <> acc.preds OR "
                 "abs(r.avg_acc - (SELECT avg(a) FROM acc)) > 1e-9 OR "
                 "abs(r.raw_reward - 10 * (r.acc_q + r.avg_acc)) > 1e-9"),
        0);
    /* Each scored text holds 6 demonstrations then the test example, the recipe's layout. */
    assert_int_equal(db_count(conn, "SELECT count(*) FROM qpo.llm_calls WHERE NOT cache_hit AND "
                                    "status = 'ok' AND (length(request) - length(replace(request, "
                                    "'\\nEmotion: ', ''))) / length('\\nEmotion: ') <> 7"),
                     0);

    /* At test, few-shot accuracy is over 10 demonstration sets, the first 5 shared with
     * collection (so their calls are reused when the prompt and item repeat). */
    add_tweets(conn, data, "test", "test", 5000, 60);
    json_t *score = run_job(info, qpo_reward_job_score,
                            "{\"run_id\":1,\"loop\":0,\"shard\":0,\"shards\":1,\"source\":"
                            "\"baseline:manual\",\"prompt\":\"Classify the tweet.\"}");
    assert_int_equal(json_integer_value(json_object_get(score, "requests")), 40 * 10 * 4);
    json_decref(score);
    assert_int_equal(db_count(conn, "SELECT count(*) FROM qpo.eval_scores WHERE "
                                    "array_length(nlls, 1) = 10 AND cardinality(predictions) = 10 "
                                    "AND acc * 10 = (SELECT count(*) FROM qpo.task_items i, "
                                    "unnest(predictions) p WHERE i.task = 'tweet_emotion' AND "
                                    "i.item_id = eval_scores.item_id AND p = i.label)"),
                     40);
    sim_stop(&sim);
    PQfinish(conn);
    free(info);
}

static void add_gsm8k(PGconn *conn, const char *data, const char *split, int n) {
    char path[4096];
    snprintf(path, sizeof path, "%s/gsm8k/train.jsonl", data);
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    char *line = NULL;
    size_t cap = 0;
    for (int i = 0; i < n && getline(&line, &cap, f) > 0; i++) {
        json_error_t jerr;
        json_t *row = json_loads(line, 0, &jerr);
        char gold[QPO_MATH_ANSWER_MAX];
        qpo_err err = {0};
        assert_int_equal(
            qpo_math_gold_gsm8k(json_string_value(json_object_get(row, "answer")), gold, &err), 0);
        const char *q = json_string_value(json_object_get(row, "question"));
        json_t *fields = json_pack("{s:s}", "question", q);
        char *fj = json_dumps(fields, JSON_COMPACT);
        char id[16];
        snprintf(id, sizeof id, "%d", i);
        const char *p[6] = {id, q, fj, gold, id, split};
        PGresult *res = qpo_db_query(
            conn,
            "INSERT INTO qpo.task_items (task, item_id, split, upstream_split, upstream_index, "
            "query, fields, answer) VALUES ('gsm8k', $1::int, $6, 'train', $5::int, $2, "
            "$3::jsonb, $4)",
            6, p, &err);
        assert_non_null(res);
        PQclear(res);
        free(fj);
        json_decref(fields);
        json_decref(row);
    }
    free(line);
    fclose(f);
}

static void test_math_reward_extracts_and_scores_the_completion(void **state) {
    (void)state;
    const char *data = shared_data_or_skip();
    char *info;
    PGconn *conn = base_db(&info, "gsm8k", "zero_shot");
    add_gsm8k(conn, data, "collect", 40);
    db_exec_ok(conn, "INSERT INTO qpo.generations (run_id, loop, purpose, batch, item_id, prompt) "
                     "SELECT 1, 1, 'collect', 0, i, (ARRAY['Let''s think step by step: ', "
                     "'The answer is:'])[1 + i % 2] FROM generate_series(0, 39) i");
    sim_proc sim = {0};
    sim_serve(&sim, conn, info, "", "{}");
    json_t *result = run_job(info, qpo_reward_job_reward, "{\"run_id\":1,\"loop\":1,\"batch\":0}");
    json_decref(result);
    sim_stop(&sim);

    assert_int_equal(db_count(conn, "SELECT count(*) FROM qpo.rewards WHERE completion_nll IS "
                                    "NOT NULL AND nlls IS NULL AND cardinality(call_ids) = 1"),
                     40);
    /* Recompute extraction and correctness with this process's extractor. */
    qpo_err err = {0};
    PGresult *res = qpo_db_query(conn,
                                 "SELECT r.completion, r.prediction, r.correct, i.answer, "
                                 "r.raw_reward, r.avg_acc, r.completion_nll FROM qpo.rewards r "
                                 "JOIN qpo.task_items i ON i.task = 'gsm8k' AND "
                                 "i.item_id = r.item_id",
                                 0, NULL, &err);
    assert_non_null(res);
    int right = 0;
    for (int r = 0; r < PQntuples(res); r++) {
        char got[QPO_MATH_ANSWER_MAX];
        qpo_math_extract_answer(PQgetvalue(res, r, 0), got);
        assert_string_equal(got, PQgetvalue(res, r, 1));
        bool correct = qpo_math_is_correct(got, PQgetvalue(res, r, 3));
        assert_int_equal(correct, strcmp(PQgetvalue(res, r, 2), "t") == 0);
        right += correct;
        double raw =
            10.0 * correct + 10.0 * atof(PQgetvalue(res, r, 5)) - atof(PQgetvalue(res, r, 6));
        assert_true(fabs(raw - atof(PQgetvalue(res, r, 4))) < 1e-9);
    }
    assert_true(fabs(atof(PQgetvalue(res, 0, 5)) - right / 40.0) < 1e-12);
    PQclear(res);
    /* The recipe's messages went out: system rule, then question + "\n" + prompt. */
    assert_int_equal(db_count(conn, "SELECT count(*) FROM qpo.llm_calls WHERE request::jsonb "
                                    "#>> '{messages,0,content}' LIKE 'The final answer should be "
                                    "expressed as a single number%' AND request::jsonb #>> "
                                    "'{messages,1,content}' LIKE '%\nLet''s think step by step: "
                                    "' AND (request::jsonb ->> 'temperature')::float = 0"),
                     20);
    PQfinish(conn);
    free(info);
}

static void test_score_jobs_baseline_and_policy_prompts(void **state) {
    (void)state;
    const char *data = shared_data_or_skip();
    char *info;
    PGconn *conn = base_db(&info, "tweet_emotion", "zero_shot");
    add_tweets(conn, data, "val", "test", 0, 120);
    db_exec_ok(conn, "INSERT INTO qpo.generations (run_id, loop, purpose, batch, item_id, prompt) "
                     "SELECT 1, 1, 'test', 0, s.item_id, 'Classify the tweet.' "
                     "FROM qpo.test_sample('tweet_emotion', 0, 40) s");
    sim_proc sim = {0};
    sim_serve(&sim, conn, info, "", "{}");
    const char *base = "{\"run_id\":1,\"loop\":0,\"shard\":%d,\"shards\":2,\"source\":"
                       "\"baseline:manual\",\"prompt\":\"Classify the tweet.\"}";
    double acc_sum = 0;
    for (int shard = 0; shard < 2; shard++) {
        char payload[256];
        snprintf(payload, sizeof payload, base, shard);
        json_t *r = run_job(info, qpo_reward_job_score, payload);
        acc_sum += json_real_value(json_object_get(r, "accuracy")) * 20;
        json_decref(r);
    }
    /* The policy's prompts are the same text here: every call is a cache hit. */
    json_t *r = run_job(info, qpo_reward_job_score,
                        "{\"run_id\":1,\"loop\":1,\"shard\":1,\"shards\":2,\"source\":\"qpo\"}");
    assert_int_equal(json_integer_value(json_object_get(r, "cache_hits")), 20 * 4);
    assert_true(json_real_value(json_object_get(r, "cache_hit_rate")) == 1.0);
    json_decref(r);
    sim_stop(&sim);

    assert_int_equal(db_count(conn, "SELECT count(*) FROM qpo.eval_scores WHERE loop = 0"), 40);
    /* Shards split the test sample by ord % shards, with nothing missing or repeated. */
    assert_int_equal(db_count(conn, "SELECT count(*) FROM qpo.eval_scores e JOIN "
                                    "qpo.test_sample('tweet_emotion', 0, 40) s USING (item_id) "
                                    "WHERE e.loop = 0 AND s.ord % 2 = e.shard"),
                     40);
    char *sum = db_scalar(conn, "SELECT sum(acc) FROM qpo.eval_scores WHERE loop = 0");
    assert_true(fabs(atof(sum) - acc_sum) < 1e-9);
    free(sum);
    assert_int_equal(db_count(conn, "SELECT count(*) FROM qpo.eval_scores e JOIN "
                                    "qpo.task_items i ON i.task = 'tweet_emotion' AND "
                                    "i.item_id = e.item_id WHERE e.acc <> "
                                    "(e.prediction::int = i.label)::int"),
                     0);
    /* Loop 1's shard agrees with the baseline on the same items and prompt. */
    assert_int_equal(db_count(conn, "SELECT count(*) FROM qpo.eval_scores a JOIN "
                                    "qpo.eval_scores b USING (item_id) WHERE a.loop = 1 AND "
                                    "b.loop = 0 AND a.acc = b.acc AND a.nlls = b.nlls"),
                     20);
    run_job_expect_fatal(info, qpo_reward_job_score,
                         "{\"run_id\":1,\"loop\":0,\"shard\":2,\"shards\":2,\"source\":\"qpo\"}",
                         "out of range");
    run_job_expect_fatal(info, qpo_reward_job_score,
                         "{\"run_id\":1,\"loop\":0,\"shard\":0,\"shards\":2,\"source\":"
                         "\"baseline:x\"}",
                         "prompt");
    run_job_expect_fatal(info, qpo_reward_job_reward, "{\"run_id\":9,\"loop\":1,\"batch\":0}",
                         "no run 9");
    /* An empty baseline prompt is InstructEval's no_instruction: scored, not refused. */
    sim_serve(&sim, conn, info, "", "{}");
    json_decref(run_job(info, qpo_reward_job_score,
                        "{\"run_id\":1,\"loop\":0,\"shard\":0,\"shards\":2,\"source\":"
                        "\"baseline:no_instruction\",\"prompt\":\"\"}"));
    sim_stop(&sim);
    assert_int_equal(db_count(conn, "SELECT count(*) FROM qpo.eval_scores "
                                    "WHERE source = 'baseline:no_instruction' AND prompt = ''"),
                     20);
    PQfinish(conn);
    free(info);
}

/* Prompts chosen when the job runs: D_0's best single source prompt, the policy's most
 * frequent test prompt, and every source prompt for the oracle (ranked as in D_0). */
static void test_score_jobs_chosen_prompts(void **state) {
    (void)state;
    const char *data = shared_data_or_skip();
    char *info;
    PGconn *conn = base_db(&info, "tweet_emotion", "zero_shot");
    add_tweets(conn, data, "val", "test", 0, 120);
    /* D_0 means: 'Tweet emotion?' 30, 'Feeling:' 20, 'p' 10 (base_db), 'Say it.' -1. */
    db_exec_ok(conn,
               "INSERT INTO qpo.d0_records (task, setting, target, source, query, label, "
               "prompt, acc, avg_acc, raw_reward) VALUES "
               "('tweet_emotion', 'zero_shot', 'sim', 't', 'a', 0, 'Tweet emotion?', 1, 1, 30),"
               "('tweet_emotion', 'zero_shot', 'sim', 't', 'b', 0, 'Tweet emotion?', 1, 1, 30),"
               "('tweet_emotion', 'zero_shot', 'sim', 't', 'a', 0, 'Feeling:', 1, 1, 20),"
               "('tweet_emotion', 'zero_shot', 'sim', 't', 'a', 0, 'Say it.', 0, 0, -1)");
    /* The policy wrote 'Mostly this.' for 25 of 40 test items and 'Else.' for 15. */
    db_exec_ok(conn,
               "INSERT INTO qpo.generations (run_id, loop, purpose, batch, item_id, prompt) "
               "SELECT 1, 1, 'test', 0, s.item_id, CASE WHEN s.ord < 25 THEN "
               "'Mostly this.' ELSE 'Else.' END FROM qpo.test_sample('tweet_emotion', 0, 40) s");
    sim_proc sim = {0};
    sim_serve(&sim, conn, info, "", "{}");
    json_t *r = run_job(info, qpo_reward_job_score,
                        "{\"run_id\":1,\"loop\":0,\"shard\":0,\"shards\":2,\"source\":"
                        "\"baseline:best_single\",\"select\":\"best_single\"}");
    assert_string_equal(json_string_value(json_object_get(r, "prompt")), "Tweet emotion?");
    json_decref(r);
    r = run_job(info, qpo_reward_job_score,
                "{\"run_id\":1,\"loop\":1,\"shard\":0,\"shards\":2,\"source\":"
                "\"baseline:policy_mode\",\"select\":\"policy_mode\"}");
    assert_string_equal(json_string_value(json_object_get(r, "prompt")), "Mostly this.");
    json_decref(r);
    for (int shard = 0; shard < 2; shard++) {
        char payload[256];
        snprintf(payload, sizeof payload,
                 "{\"run_id\":1,\"loop\":0,\"shard\":%d,\"shards\":2,\"source\":"
                 "\"oracle\",\"select\":\"oracle\"}",
                 shard);
        r = run_job(info, qpo_reward_job_score, payload);
        assert_int_equal(json_integer_value(json_object_get(r, "prompts")), 4);
        json_decref(r);
    }
    run_job_expect_fatal(info, qpo_reward_job_score,
                         "{\"run_id\":1,\"loop\":2,\"shard\":0,\"shards\":2,\"source\":"
                         "\"baseline:policy_mode\",\"select\":\"policy_mode\"}",
                         "no test prompt");
    run_job_expect_fatal(info, qpo_reward_job_score,
                         "{\"run_id\":1,\"loop\":0,\"shard\":0,\"shards\":2,\"source\":"
                         "\"oracle\",\"select\":\"everything\"}",
                         "select");
    sim_stop(&sim);
    assert_int_equal(db_count(conn, "SELECT count(*) FROM qpo.eval_scores WHERE source = "
                                    "'baseline:best_single' AND prompt = 'Tweet emotion?'"),
                     20);
    assert_int_equal(db_count(conn, "SELECT count(*) FROM qpo.eval_scores WHERE loop = 1 AND "
                                    "source = 'baseline:policy_mode' AND prompt = 'Mostly this.'"),
                     20);
    /* The oracle scores every source prompt on every test item, K by D_0's rank. */
    assert_int_equal(db_count(conn, "SELECT count(*) FROM qpo.eval_scores WHERE source LIKE "
                                    "'oracle:%'"),
                     4 * 40);
    assert_int_equal(db_count(conn, "SELECT count(*) FROM qpo.eval_scores WHERE "
                                    "(source, prompt) IN (('oracle:0', 'Tweet emotion?'), "
                                    "('oracle:1', 'Feeling:'), ('oracle:2', 'p'), "
                                    "('oracle:3', 'Say it.'))"),
                     4 * 40);
    /* The best single prompt agrees with its oracle rows; the oracle per item is the best. */
    assert_int_equal(db_count(conn, "SELECT count(*) FROM qpo.eval_scores a JOIN "
                                    "qpo.eval_scores b USING (item_id) WHERE a.source = "
                                    "'baseline:best_single' AND b.source = 'oracle:0' AND "
                                    "a.acc = b.acc"),
                     20);
    assert_int_equal(db_count(conn, "SELECT count(*) FROM qpo.item_scores o WHERE o.source = "
                                    "'oracle' AND o.prompts = 4 AND o.acc = (SELECT max(acc) "
                                    "FROM qpo.eval_scores e WHERE e.item_id = o.item_id AND "
                                    "e.source LIKE 'oracle:%')"),
                     40);
    PQfinish(conn);
    free(info);
}

static void test_d0_job_scores_instructeval_prompts(void **state) {
    (void)state;
    const char *data = shared_data_or_skip();
    char *info;
    PGconn *conn = base_db(&info, "tweet_emotion", "zero_shot");
    db_exec_ok(conn, "DELETE FROM qpo.d0_records");
    add_tweets(conn, data, "train", "train", 0, 200);
    sim_proc sim = {0};
    sim_serve(&sim, conn, info, "", "{}");
    char payload[4096];
    snprintf(payload, sizeof payload,
             "{\"task\":\"tweet_emotion\",\"setting\":\"zero_shot\",\"target\":\"sim\","
             "\"queries\":8,\"seed\":3,\"collections\":[\"instructeval/manual\",\"instructeval/"
             "no_instruction\"],"
             "\"prompts_dir\":\"%s/prompts\"}",
             data);
    json_t *r = run_job(info, qpo_reward_job_d0, payload);
    long long prompts = json_integer_value(json_object_get(r, "prompts"));
    assert_true(prompts >= 2);
    assert_int_equal(json_integer_value(json_object_get(r, "records")), prompts * 8);
    json_decref(r);
    sim_stop(&sim);

    assert_int_equal(db_count(conn, "SELECT count(*) FROM qpo.d0_records"), prompts * 8);
    assert_int_equal(db_count(conn, "SELECT count(DISTINCT prompt_method) FROM qpo.d0_records"), 2);
    /* The query sample is the seeded train order's first 8. */
    assert_int_equal(db_count(conn, "SELECT count(DISTINCT d.query) FROM qpo.d0_records d JOIN "
                                    "qpo.seeded_order('tweet_emotion', 'train', 3, 'd0') o ON "
                                    "o.ord < 8 JOIN qpo.task_items i ON i.task = "
                                    "'tweet_emotion' AND i.item_id = o.item_id AND "
                                    "i.query = d.query"),
                     8);
    /* avg_acc is the prompt's accuracy over the sample; raw follows the zero-shot formula. */
    assert_int_equal(db_count(conn, "SELECT count(*) FROM qpo.d0_records d WHERE abs(d.avg_acc "
                                    "- (SELECT avg(acc) FROM qpo.d0_records e WHERE e.prompt = "
                                    "d.prompt)) > 1e-9 OR abs(d.raw_reward - (10 * d.acc + 10 * "
                                    "d.avg_acc - (d.extra->'nlls'->>d.label)::float)) > 1e-9"),
                     0);
    run_job_expect_fatal(info, qpo_reward_job_d0,
                         "{\"task\":\"tweet_emotion\",\"setting\":\"zero_shot\",\"target\":"
                         "\"sim\",\"queries\":8,\"seed\":3,\"collections\":[\"instructeval/"
                         "nope\"],\"prompts_dir\":\"/nonexistent\"}",
                         "cannot read source prompts");
    /* A folder name without the config's prefix is refused, not looked up. */
    run_job_expect_fatal(info, qpo_reward_job_d0,
                         "{\"task\":\"tweet_emotion\",\"setting\":\"zero_shot\",\"target\":"
                         "\"sim\",\"queries\":8,\"seed\":3,\"collections\":[\"manual\"],"
                         "\"prompts_dir\":\"/nonexistent\"}",
                         "bad collection name \"manual\"");
    PQfinish(conn);
    free(info);
}

/* Stops at the first stop check that finds an answered call recorded: mid-batch however fast
 * or slow the calls are (a fixed number of checks let the batch finish first under valgrind). */
static bool stop_once_answered(void *arg) {
    return db_count(arg, "SELECT count(*) FROM qpo.llm_calls WHERE status = 'ok'") > 0;
}

static void test_cancelled_job_writes_nothing_but_its_calls(void **state) {
    (void)state;
    const char *data = shared_data_or_skip();
    char *info;
    int64_t job_id;
    PGconn *conn = reward_db_setup(pg, data, "zero_shot", 200, &info, &job_id);
    /* Calls slowed with the tests' time scale, so the batch still runs at the stop. */
    char latency[48];
    snprintf(latency, sizeof latency, "--latency-ms %.0f", 1000 * qpo_test_seconds(0.02));
    sim_proc sim = {0};
    sim_serve(&sim, conn, info, latency, "{\"max_inflight\": 4}");
    qpo_err err = {0};
    PGconn *probe = qpo_db_connect(info, "stop-probe", &err);
    assert_non_null(probe);
    qpo_reward_env env = {.conn = conn,
                          .job_id = job_id,
                          .job_attempt = 1,
                          .worker = "w",
                          .should_stop = stop_once_answered,
                          .stop_arg = probe};
    json_t *payload = json_pack("{s:i,s:i,s:i}", "run_id", 1, "loop", 1, "batch", 0);
    qpo_job_outcome out = {0};
    assert_int_equal(qpo_reward_job_reward(&env, payload, &out, &err), QPO_JOB_CANCELLED);
    PQfinish(probe);
    assert_false(qpo_outcome_has_output(&out));
    assert_null(out.result);
    sim_stop(&sim);
    assert_int_equal(db_count(conn, "SELECT count(*) FROM qpo.rewards"), 0);
    long long ok = db_count(conn, "SELECT count(*) FROM qpo.llm_calls WHERE status = 'ok'");
    assert_true(ok > 0 && ok < 800);
    /* Requests on the wire when it stopped (if any, at that instant) are recorded as
     * cancelled attempts, each saying so; none is left unrecorded as "ok". */
    assert_int_equal(db_count(conn, "SELECT count(*) FROM qpo.llm_calls WHERE status = "
                                    "'cancelled' AND (error = '' OR will_retry)"),
                     0);
    json_decref(payload);
    PQfinish(conn);
    free(info);
}

typedef struct saboteur {
    PGconn *admin;
    int victim;
    bool fired;
} saboteur;

/* At the first stop check, kills the job connection's server process. */
static bool terminate_job_backend(void *arg) {
    saboteur *sb = arg;
    if (!sb->fired) {
        sb->fired = true;
        char sql[96];
        snprintf(sql, sizeof sql, "SELECT pg_terminate_backend(%d)", sb->victim);
        free(db_scalar(sb->admin, sql));
    }
    return false;
}

static void test_lost_database_stops_paying_and_retries(void **state) {
    (void)state;
    const char *data = shared_data_or_skip();
    char *info;
    int64_t job_id;
    PGconn *conn = reward_db_setup(pg, data, "zero_shot", 200, &info, &job_id);
    sim_proc sim = {0};
    sim_serve(&sim, conn, info, "--latency-ms 20", "{\"max_inflight\": 4}");
    qpo_err err = {0};
    PGconn *job_conn = qpo_db_connect(info, "victim", &err);
    assert_non_null(job_conn);
    saboteur sb = {.admin = conn, .victim = PQbackendPID(job_conn)};
    qpo_reward_env env = {.conn = job_conn,
                          .job_id = job_id,
                          .job_attempt = 1,
                          .worker = "w",
                          .should_stop = terminate_job_backend,
                          .stop_arg = &sb};
    json_t *payload = json_pack("{s:i,s:i,s:i}", "run_id", 1, "loop", 1, "batch", 0);
    qpo_job_outcome out = {0};
    assert_int_equal(qpo_reward_job_reward(&env, payload, &out, &err), QPO_JOB_RETRY);
    assert_non_null(strstr(err.msg, "qpo.llm_calls"));
    assert_false(qpo_outcome_has_output(&out));
    PQfinish(job_conn);
    long long recorded = db_count(conn, "SELECT count(*) FROM qpo.llm_calls WHERE status = 'ok'");
    assert_true(recorded < 800);

    /* The retry, on a working connection, completes and reuses what was recorded. */
    reward_db_set_target(conn, sim.base_url, "{\"max_inflight\": 64}");
    char pl[64];
    snprintf(pl, sizeof pl, "{\"run_id\":1,\"loop\":1,\"batch\":0}");
    json_t *r = run_job(info, qpo_reward_job_reward, pl);
    assert_int_equal(json_integer_value(json_object_get(r, "cache_hits")), recorded);
    json_decref(r);
    sim_stop(&sim);
    assert_int_equal(db_count(conn, "SELECT count(*) FROM qpo.rewards"), 200);
    assert_int_equal(db_count(conn, "SELECT count(DISTINCT request_hash) FROM qpo.llm_calls "
                                    "WHERE status = 'ok' AND NOT cache_hit"),
                     800);
    assert_int_equal(db_count(conn, "SELECT count(*) FROM qpo.llm_calls "
                                    "WHERE status = 'ok' AND NOT cache_hit"),
                     800);
    json_decref(payload);
    PQfinish(conn);
    free(info);
}

/* Few-shot D_0 keeps only pairs with acc >= 0.7, but each prompt's avg_acc is over every
 * sampled query, kept or not. Math D_0 comes from Prompt-OIRL's training prompts. */
static void test_d0_few_shot_filter_and_math_prompts(void **state) {
    (void)state;
    const char *data = shared_data_or_skip();
    char *info;
    PGconn *conn = base_db(&info, "tweet_emotion", "few_shot");
    db_exec_ok(conn, "DELETE FROM qpo.d0_records");
    add_tweets(conn, data, "train", "train", 0, 100);
    sim_proc sim = {0};
    sim_serve(&sim, conn, info, "", "{}");
    char payload[4096];
    snprintf(payload, sizeof payload,
             "{\"task\":\"tweet_emotion\",\"setting\":\"few_shot\",\"target\":\"sim\","
             "\"queries\":10,\"seed\":1,\"collections\":[\"instructeval/"
             "manual\"],\"prompts_dir\":\"%s/prompts\"}",
             data);
    json_t *r = run_job(info, qpo_reward_job_d0, payload);
    long long prompts = json_integer_value(json_object_get(r, "prompts"));
    long long records = json_integer_value(json_object_get(r, "records"));
    json_decref(r);
    fprintf(stderr, "few-shot d0: %lld of %lld pairs kept\n", records, prompts * 10);
    assert_int_equal(db_count(conn, "SELECT count(*) FROM qpo.d0_records"), records);
    assert_int_equal(db_count(conn, "SELECT count(*) FROM qpo.d0_records WHERE acc < 0.7 OR "
                                    "abs(raw_reward - 10 * (acc + avg_acc)) > 1e-9 OR "
                                    "jsonb_array_length(extra->'nlls') <> 5"),
                     0);
    /* avg_acc * 10 = kept accuracy + dropped accuracy, each dropped pair below 0.7 (<= 0.6). */
    assert_int_equal(db_count(conn, "SELECT count(*) FROM (SELECT prompt, max(avg_acc) * 10 "
                                    "AS total, sum(acc) AS kept, count(*) AS n FROM "
                                    "qpo.d0_records GROUP BY prompt) p WHERE total < kept - 1e-9 "
                                    "OR total > kept + 0.6 * (10 - n) + 1e-9"),
                     0);
    PQfinish(conn);
    free(info);

    conn = base_db(&info, "gsm8k", "zero_shot");
    db_exec_ok(conn, "DELETE FROM qpo.d0_records");
    add_gsm8k(conn, data, "train", 30);
    reward_db_set_target(conn, sim.base_url, "{}");
    snprintf(payload, sizeof payload,
             "{\"task\":\"gsm8k\",\"setting\":\"zero_shot\",\"target\":\"sim\",\"queries\":5,"
             "\"seed\":0,\"collections\":[\"prompt_oirl\"],\"prompts_dir\":\"%s/prompts\"}",
             data);
    r = run_job(info, qpo_reward_job_d0, payload);
    assert_int_equal(json_integer_value(json_object_get(r, "records")), 6 * 5);
    json_decref(r);
    sim_stop(&sim);
    assert_int_equal(db_count(conn, "SELECT count(*) FROM qpo.d0_records WHERE prompt_method "
                                    "LIKE 'prompt_oirl/%' AND answer IS NOT NULL AND abs("
                                    "raw_reward - (10 * acc + 10 * avg_acc - (extra->>"
                                    "'completion_nll')::float)) < 1e-9"),
                     30);
    PQfinish(conn);
    free(info);
}

static void test_item_without_usable_gold_is_refused(void **state) {
    (void)state;
    char *info;
    PGconn *conn = base_db(&info, "tweet_emotion", "zero_shot");
    db_exec_ok(conn, "INSERT INTO qpo.task_items (task, item_id, split, upstream_split, "
                     "upstream_index, query, fields, label) VALUES ('tweet_emotion', 1, "
                     "'collect', 'x', 1, 'q', '{\"text\": \"q\"}', 9);"
                     "INSERT INTO qpo.generations (run_id, loop, purpose, batch, item_id, prompt) "
                     "VALUES (1, 1, 'collect', 0, 1, 'p')");
    run_job_expect_fatal(info, qpo_reward_job_reward, "{\"run_id\":1,\"loop\":1,\"batch\":0}",
                         "no usable gold answer");
    assert_int_equal(db_count(conn, "SELECT count(*) FROM qpo.llm_calls"), 0);
    PQfinish(conn);
    free(info);
}

int main(void) {
    pg = qpo_pgtest_start();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_few_shot_reward_uses_five_demo_sets),
        cmocka_unit_test(test_math_reward_extracts_and_scores_the_completion),
        cmocka_unit_test(test_score_jobs_baseline_and_policy_prompts),
        cmocka_unit_test(test_score_jobs_chosen_prompts),
        cmocka_unit_test(test_d0_job_scores_instructeval_prompts),
        cmocka_unit_test(test_d0_few_shot_filter_and_math_prompts),
        cmocka_unit_test(test_cancelled_job_writes_nothing_but_its_calls),
        cmocka_unit_test(test_lost_database_stops_paying_and_retries),
        cmocka_unit_test(test_item_without_usable_gold_is_refused),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    fixture_kill_children();
    qpo_pgtest_stop(pg);
    return rc;
}
