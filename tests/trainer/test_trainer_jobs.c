/* The trainer jobs in this process against a real PostgreSQL and real checkpoint files: each
 * handler's outputs for a hand-built run, determinism across databases, resume after a stop,
 * merge's filter and de-duplication, and the errors users get for missing inputs. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "metrics.h"
#include "db.h"
#include "pgtest.h"
#include "policy.h"
#include "safetensors.h"
#include "trainer_fixture.h"
#include "trainer_internal.h"

static qpo_pgtest *pg;

static void run_ok(tfx *f, tfx_job_fn fn, const char *kind, int loop, json_t **result) {
    char payload[256];
    tfx_payload(f, kind, loop, payload, sizeof payload);
    qpo_err err = {0};
    qpo_job_status st = tfx_run(f, fn, payload, 0, result, &err);
    if (st != QPO_JOB_OK) {
        qpo_err_print(&err);
        fail_msg("%s loop %d: status %d", kind, loop, (int)st);
    }
}

static char *checkpoint_sha(tfx *f, int loop) {
    char sql[160];
    snprintf(sql, sizeof sql,
             "SELECT sha256 FROM qpo.checkpoints WHERE run_id = %lld AND loop = %d",
             (long long)f->run_id, loop);
    return db_str(f->conn, sql);
}

static char *generations_text(tfx *f) {
    return db_str(f->conn, "SELECT string_agg(purpose || ':' || loop || ':' || batch || ':' || "
                           "item_id || ':' || prompt, E'\\n' ORDER BY purpose, loop, item_id) "
                           "FROM qpo.generations");
}

/* The loop's training curve, one line per logged step: what two trainings must agree on. */
static char *curve_text(tfx *f, int loop) {
    char sql[320];
    snprintf(sql, sizeof sql,
             "SELECT string_agg(step || ':' || epoch || ':' || loss || ':' || ce || ':' || mse "
             "|| ':' || grad_norm || ':' || lr, E'\\n' ORDER BY step) FROM qpo.train_metrics "
             "WHERE run_id = %lld AND loop = %d",
             (long long)f->run_id, loop);
    return db_str(f->conn, sql);
}

/* 40 records in batches of 16 are 3 steps an epoch: 6 rows for 2 epochs, each sane, and
 * each epoch's mean loss the one its checkpoint recorded. */
static void check_curve_of_first_train(tfx *f) {
    assert_int_equal(db_ll(f->conn, "SELECT count(*) FROM qpo.train_metrics"), 6);
    assert_int_equal(db_ll(f->conn,
                           "SELECT count(*) FROM qpo.train_metrics WHERE loop = 1 AND "
                           "step BETWEEN 1 AND 6 AND epoch = (step + 2) / 3 AND "
                           "batch_size = CASE step % 3 WHEN 0 THEN 8 ELSE 16 END AND "
                           "lr::real = 0.001::real AND lambda::real IN (0.1, 0.5) AND ce > 0 AND "
                           "mse >= 0 AND grad_norm > 0 AND tokens_per_s > 0 AND "
                           "abs(loss - (ce + lambda * mse)) < 1e-4 * (1 + loss)"),
                     6);
    assert_int_equal(db_ll(f->conn, "SELECT count(*) FROM qpo.checkpoints c, LATERAL (SELECT "
                                    "avg(loss) m FROM qpo.train_metrics t WHERE t.run_id = "
                                    "c.run_id AND t.loop = c.loop AND t.epoch = c.epochs) x "
                                    "WHERE abs(x.m - c.final_loss) < 1e-6 * (1 + x.m)"),
                     1);
}

/* A sample of this process's metrics (common/metrics.h); -1 when absent. */
static double metric(const char *name) {
    char *text = qpo_metrics_render(), want[128];
    snprintf(want, sizeof want, "\n%s ", name);
    const char *at = text ? strstr(text, want) : NULL;
    double v = at ? strtod(at + strlen(want), NULL) : -1;
    free(text);
    return v;
}

static void test_train_then_generate(void **state) {
    (void)state;
    tfx f;
    tfx_setup(&f, qpo_pgtest_new_db(pg), NULL);
    json_t *res = NULL;
    run_ok(&f, qpo_trainer_job_train, "train", 1, &res);
    assert_int_equal(json_integer_value(json_object_get(res, "epochs")), 2);
    assert_int_equal(json_integer_value(json_object_get(res, "records")), 40);
    assert_int_equal(json_integer_value(json_object_get(res, "resumed_from_epoch")), 0);
    json_decref(res);
    check_curve_of_first_train(&f);
    /* The first training of this process: its steps, as --metrics-listen would serve them. */
    assert_true(metric("qpo_train_steps_total") == 6);
    assert_true(metric("qpo_train_loss") > 0);
    assert_true(metric("qpo_train_tokens_per_second") > 0);

    /* The row names a file whose bytes hash to the recorded sha256 and load as the tiny
     * policy with the byte tokenizer's vocabulary. */
    assert_int_equal(db_ll(f.conn, "SELECT count(*) FROM qpo.checkpoints WHERE loop = 1 AND "
                                   "epochs = 2 AND records = 40 AND final_loss > 0 AND "
                                   "training->>'lr' = '0.001' AND config->>'vocab' = '257'"),
                     1);
    char *path = db_str(f.conn, "SELECT path FROM qpo.checkpoints WHERE loop = 1");
    char *sha = checkpoint_sha(&f, 1);
    char want_prefix[PATH_MAX];
    snprintf(want_prefix, sizeof want_prefix, "%s/run-%lld/loop-1/policy.safetensors", f.ckpt_root,
             (long long)f.run_id);
    assert_string_equal(path, want_prefix);
    char got[65];
    int64_t bytes;
    qpo_err err = {0};
    assert_int_equal(qpo_sha256_file(path, got, &bytes, &err), 0);
    assert_string_equal(got, sha);
    char msg[256];
    qpo_policy *p = qpo_policy_load(path, qpo_backend_cpu(), msg, sizeof msg);
    assert_non_null(p);
    assert_int_equal(qpo_policy_config_of(p)->vocab, 257);
    assert_int_equal(qpo_policy_config_of(p)->n_layer, 2);
    qpo_policy_free(p);
    free(path);
    free(sha);

    run_ok(&f, qpo_trainer_job_generate, "generate", 1, NULL);
    /* One collect prompt per item the scheduler's selection names, in its batch. */
    assert_int_equal(db_ll(f.conn, "SELECT count(*) FROM qpo.generations WHERE purpose = "
                                   "'collect' AND loop = 1"),
                     10);
    assert_int_equal(db_ll(f.conn, "SELECT count(*) FROM (SELECT b.batch, s.item_id FROM "
                                   "generate_series(0, 1) b(batch), LATERAL qpo.collect_batch(1, "
                                   "1, b.batch) s EXCEPT SELECT batch, item_id FROM "
                                   "qpo.generations WHERE purpose = 'collect') x"),
                     0);
    run_ok(&f, qpo_trainer_job_evaluate_generate, "evaluate-generate", 1, NULL);
    assert_int_equal(db_ll(f.conn, "SELECT count(*) FROM qpo.generations WHERE purpose = 'test'"),
                     6);
    assert_int_equal(db_ll(f.conn, "SELECT count(*) FROM (SELECT item_id FROM "
                                   "qpo.test_sample('tweet_emotion', 0, 6) EXCEPT SELECT item_id "
                                   "FROM qpo.generations WHERE purpose = 'test') x"),
                     0);
    /* Prompts are text, never the stop token's literal text, stripped as the authors'. */
    assert_int_equal(db_ll(f.conn, "SELECT count(*) FROM qpo.generations WHERE prompt LIKE "
                                   "'%<|endoftext|>%' OR length(prompt) > 40 OR prompt ~ "
                                   "'^\\s|\\s$'"),
                     0);
    tfx_teardown(&f);
}

/* Same seed, another database and folder: the same weights and prompts; another seed:
 * other weights. A stopped-then-resumed train ends on the calm run's bytes. */
static void test_determinism_and_resume(void **state) {
    (void)state;
    tfx a, b, c;
    tfx_opts three = {.epochs_first = 3, .with_d0 = 1};
    tfx_setup(&a, qpo_pgtest_new_db(pg), &three);
    run_ok(&a, qpo_trainer_job_train, "train", 1, NULL);
    run_ok(&a, qpo_trainer_job_generate, "generate", 1, NULL);
    run_ok(&a, qpo_trainer_job_evaluate_generate, "evaluate-generate", 1, NULL);

    tfx_setup(&b, qpo_pgtest_new_db(pg), &three);
    char payload[256];
    tfx_payload(&b, "train", 1, payload, sizeof payload);
    qpo_err err = {0};
    json_t *res = NULL;
    assert_int_equal(tfx_run(&b, qpo_trainer_job_train, payload, 1, NULL, &err), QPO_JOB_CANCELLED);
    assert_int_equal(db_ll(b.conn, "SELECT count(*) FROM qpo.checkpoints"), 0);
    assert_int_equal(tfx_run(&b, qpo_trainer_job_train, payload, 1, NULL, &err), QPO_JOB_CANCELLED);
    assert_int_equal(tfx_run(&b, qpo_trainer_job_train, payload, 0, &res, &err), QPO_JOB_OK);
    assert_int_equal(json_integer_value(json_object_get(res, "resumed_from_epoch")), 2);
    json_decref(res);
    run_ok(&b, qpo_trainer_job_generate, "generate", 1, NULL);
    run_ok(&b, qpo_trainer_job_evaluate_generate, "evaluate-generate", 1, NULL);

    char *sa = checkpoint_sha(&a, 1), *sb = checkpoint_sha(&b, 1);
    assert_string_equal(sa, sb);
    char *ga = generations_text(&a), *gb = generations_text(&b);
    assert_string_equal(ga, gb);
    /* Three attempts logged one curve: every step once, the same values as the calm run. */
    char *ca = curve_text(&a, 1), *cb = curve_text(&b, 1);
    assert_int_equal(db_ll(b.conn, "SELECT count(*) FROM qpo.train_metrics"), 9);
    assert_string_equal(ca, cb);
    free(ca), free(cb);

    tfx_opts other = {.seed = 1, .epochs_first = 3, .with_d0 = 1};
    tfx_setup(&c, qpo_pgtest_new_db(pg), &other);
    run_ok(&c, qpo_trainer_job_train, "train", 1, NULL);
    char *sc = checkpoint_sha(&c, 1);
    assert_string_not_equal(sa, sc);
    free(sa), free(sb), free(sc), free(ga), free(gb);
    tfx_teardown(&a);
    tfx_teardown(&b);
    tfx_teardown(&c);
}

/* An epoch saved from other data (D_0 grew between attempts) is not resumed from: the loop
 * starts over and ends where a calm run on the new data ends. */
static void test_changed_data_starts_over(void **state) {
    (void)state;
    static const char *extra = "INSERT INTO qpo.d0_records (task, setting, target, source, "
                               "query, prompt, acc, avg_acc, raw_reward) VALUES "
                               "('tweet_emotion', 'few_shot', 'sim', 'late', 'a late tweet', "
                               "'Late prompt.<|endoftext|>', 1, 1, 7)";
    tfx f, calm;
    tfx_setup(&f, qpo_pgtest_new_db(pg), NULL);
    char payload[256];
    tfx_payload(&f, "train", 1, payload, sizeof payload);
    qpo_err err = {0};
    assert_int_equal(tfx_run(&f, qpo_trainer_job_train, payload, 1, NULL, &err), QPO_JOB_CANCELLED);
    db_ok(f.conn, extra);
    json_t *res = NULL;
    assert_int_equal(tfx_run(&f, qpo_trainer_job_train, payload, 0, &res, &err), QPO_JOB_OK);
    assert_int_equal(json_integer_value(json_object_get(res, "resumed_from_epoch")), 0);
    assert_int_equal(json_integer_value(json_object_get(res, "records")), 41);
    json_decref(res);

    tfx_setup(&calm, qpo_pgtest_new_db(pg), NULL);
    db_ok(calm.conn, extra);
    run_ok(&calm, qpo_trainer_job_train, "train", 1, NULL);
    char *a = checkpoint_sha(&f, 1), *b = checkpoint_sha(&calm, 1);
    assert_string_equal(a, b);
    free(a), free(b);
    /* The start-over replaced the first attempt's curve instead of keeping its first epoch. */
    char *ca = curve_text(&f, 1), *cc = curve_text(&calm, 1);
    assert_string_equal(ca, cc);
    free(ca), free(cc);
    tfx_teardown(&f);
    tfx_teardown(&calm);
}

static void insert_reward(tfx *f, int loop, int item, const char *query, const char *prompt,
                          double raw) {
    char sql[1024];
    snprintf(sql, sizeof sql,
             "INSERT INTO qpo.rewards (run_id, loop, batch, item_id, query, prompt, acc_q, "
             "avg_acc, raw_reward, norm_reward, d0_min_raw, d0_max_raw, call_ids) VALUES (%lld, "
             "%d, 0, %d, '%s', '%s', 0.5, 0.5, %g, 0, 2, 12, '{1}')",
             (long long)f->run_id, loop, item, query, prompt, raw);
    db_ok(f->conn, sql);
}

static void test_merge_filter_dedup_and_loop2(void **state) {
    (void)state;
    tfx f;
    tfx_setup(&f, qpo_pgtest_new_db(pg), NULL);
    /* D_0's raw rewards span [2, 12]. */
    assert_int_equal(db_ll(&*f.conn, "SELECT min(raw_reward) FROM qpo.d0_records"), 2);
    db_ok(f.conn, "INSERT INTO qpo.run_records (run_id, loop, item_id, query, prompt, "
                  "raw_reward) VALUES (1, 1, 99, 'q earlier', 'p earlier', 9)");
    insert_reward(&f, 1, 1, "q below", "p", 1.5);       /* under the minimum */
    insert_reward(&f, 1, 2, "q equal", "p", 2.0);       /* not above it */
    insert_reward(&f, 1, 3, "q good", "p good", 7.0);   /* kept */
    insert_reward(&f, 1, 5, "q twice", "p twice", 8.0); /* kept: lowest item id */
    insert_reward(&f, 1, 4, "q twice", "p twice", 8.0);
    insert_reward(&f, 1, 6, "so happy about day 0", "Classify the tweet.", 9.0); /* in D_0 */
    insert_reward(&f, 1, 7, "q earlier", "p earlier", 9.0);                      /* in D already */
    insert_reward(&f, 2, 8, "q other loop", "p", 9.0);                           /* not this loop */
    json_t *res = NULL;
    run_ok(&f, qpo_trainer_job_merge, "merge", 1, &res);
    assert_int_equal(json_integer_value(json_object_get(res, "rewards")), 7);
    assert_int_equal(json_integer_value(json_object_get(res, "above_d0_min")), 5);
    assert_int_equal(json_integer_value(json_object_get(res, "kept")), 2);
    json_decref(res);
    char *kept = db_str(f.conn, "SELECT string_agg(item_id || ':' || query || ':' || raw_reward, "
                                "',' ORDER BY item_id) FROM qpo.run_records WHERE loop = 1 AND "
                                "item_id <> 99");
    assert_string_equal(kept, "3:q good:7,4:q twice:8");
    free(kept);
    /* A second merge of the same loop adds nothing. */
    run_ok(&f, qpo_trainer_job_merge, "merge", 1, &res);
    assert_int_equal(json_integer_value(json_object_get(res, "kept")), 0);
    json_decref(res);

    /* Loop 2 fine-tunes loop 1's weights on D_0 + the 3 merged records, at lr_next. */
    run_ok(&f, qpo_trainer_job_train, "train", 1, NULL);
    run_ok(&f, qpo_trainer_job_train, "train", 2, &res);
    assert_int_equal(json_integer_value(json_object_get(res, "records")), 43);
    assert_int_equal(json_integer_value(json_object_get(res, "run_records")), 3);
    assert_int_equal(json_integer_value(json_object_get(res, "epochs")), 2);
    json_decref(res);
    assert_int_equal(db_ll(f.conn, "SELECT count(*) FROM qpo.checkpoints WHERE loop = 2 AND "
                                   "training->>'lr' = '0.0001' AND training->>'init' = "
                                   "'previous loop'"),
                     1);
    tfx_teardown(&f);
}

/* policy.vocab "d0": loop 1's policy spans only the bytes its training rows hold (plus unk
 * and eos), its checkpoint names them, and every later job speaks that vocabulary: generate
 * writes only D_0's bytes, and loop 2 fine-tunes loop 1's weights on the same ids. */
static void test_vocab_d0_is_the_training_tokens(void **state) {
    (void)state;
    tfx f;
    tfx_opts o = {.with_d0 = 1, .vocab = "d0"};
    tfx_setup(&f, qpo_pgtest_new_db(pg), &o);
    run_ok(&f, qpo_trainer_job_train, "train", 1, NULL);
    /* The distinct bytes of D_0's queries and prompts, the stop text left out. */
    long long bytes = db_ll(f.conn, "SELECT count(DISTINCT c) FROM (SELECT regexp_split_to_table("
                                    "replace(query || prompt, '<|endoftext|>', ''), '') c FROM "
                                    "qpo.d0_records) x");
    assert_true(bytes > 10 && bytes < 60);
    char want[32];
    snprintf(want, sizeof want, "%lld", bytes + 2);
    char *vocab = db_str(f.conn, "SELECT config->>'vocab' FROM qpo.checkpoints WHERE loop = 1");
    assert_string_equal(vocab, want);
    free(vocab);
    char *path = db_str(f.conn, "SELECT path FROM qpo.checkpoints WHERE loop = 1");
    char msg[256];
    qpo_policy *p = qpo_policy_load(path, qpo_backend_cpu(), msg, sizeof msg);
    assert_non_null(p);
    size_t n = 0;
    const int32_t *ids = qpo_policy_vocab_ids(p, &n);
    assert_non_null(ids);
    assert_int_equal(n, (size_t)bytes);
    for (size_t i = 1; i < n; i++) /* byte ids, ascending: the byte itself */
        assert_true(ids[i - 1] < ids[i] && ids[i] < 256);
    qpo_policy_free(p);
    free(path);

    run_ok(&f, qpo_trainer_job_generate, "generate", 1, NULL);
    run_ok(&f, qpo_trainer_job_evaluate_generate, "evaluate-generate", 1, NULL);
    assert_int_equal(db_ll(f.conn, "SELECT count(*) FROM qpo.generations"), 16);
    /* Only bytes D_0 holds: the subset cannot write any other. */
    assert_true(db_ll(f.conn, "SELECT sum(length(prompt)) FROM qpo.generations") > 16);
    assert_int_equal(db_ll(f.conn, "SELECT count(*) FROM (SELECT regexp_split_to_table(prompt, "
                                   "'') c FROM qpo.generations) g WHERE c <> '' AND c NOT IN "
                                   "(SELECT regexp_split_to_table(query || prompt, '') FROM "
                                   "qpo.d0_records)"),
                     0);
    json_t *res = NULL;
    run_ok(&f, qpo_trainer_job_train, "train", 2, &res);
    json_decref(res);
    vocab = db_str(f.conn, "SELECT config->>'vocab' FROM qpo.checkpoints WHERE loop = 2");
    assert_string_equal(vocab, want);
    free(vocab);
    tfx_teardown(&f);
}

static void expect_fatal(tfx *f, tfx_job_fn fn, const char *kind, int loop, const char *needle) {
    char payload[256];
    tfx_payload(f, kind, loop, payload, sizeof payload);
    qpo_err err = {0};
    qpo_job_status st = tfx_run(f, fn, payload, 0, NULL, &err);
    char all[2200];
    snprintf(all, sizeof all, "%s | %s | %s", err.msg, err.detail, err.hint);
    if (st != QPO_JOB_FATAL || !strstr(all, needle))
        fail_msg("%s: status %d, error \"%s\"; expected FATAL naming \"%s\"", kind, (int)st, all,
                 needle);
}

static void test_errors_name_the_fix(void **state) {
    (void)state;
    tfx f;
    tfx_opts no_d0 = {.with_d0 = 0};
    tfx_setup(&f, qpo_pgtest_new_db(pg), &no_d0);
    expect_fatal(&f, qpo_trainer_job_train, "train", 1, "qpo data import-d0");
    expect_fatal(&f, qpo_trainer_job_merge, "merge", 1, "qpo data import-d0");
    /* generate before any train: no checkpoint recorded. */
    expect_fatal(&f, qpo_trainer_job_generate, "generate", 1, "has no checkpoint for loop 1");
    expect_fatal(&f, qpo_trainer_job_train, "train", 3, "outside run");
    tfx_teardown(&f);

    tfx_opts bad_tok = {.tokenizer = "/nonexistent/gpt2", .with_d0 = 1};
    tfx_setup(&f, qpo_pgtest_new_db(pg), &bad_tok);
    expect_fatal(&f, qpo_trainer_job_train, "train", 1, "/nonexistent/gpt2 does not exist");
    tfx_teardown(&f);

    tfx_opts bpe = {.tokenizer = "gpt2_bpe", .with_d0 = 1};
    tfx_setup(&f, qpo_pgtest_new_db(pg), &bpe);
    char *saved = getenv("QPO_BPE_DIR") ? strdup(getenv("QPO_BPE_DIR")) : NULL;
    unsetenv("QPO_BPE_DIR");
    expect_fatal(&f, qpo_trainer_job_train, "train", 1, "QPO_BPE_DIR");
    if (saved)
        setenv("QPO_BPE_DIR", saved, 1);
    free(saved);
    tfx_teardown(&f);

    /* A checkpoint changed on disk, then one that is gone. */
    tfx_setup(&f, qpo_pgtest_new_db(pg), NULL);
    run_ok(&f, qpo_trainer_job_train, "train", 1, NULL);
    char *path = db_str(f.conn, "SELECT path FROM qpo.checkpoints WHERE loop = 1");
    FILE *fp = fopen(path, "r+b");
    assert_non_null(fp);
    fseek(fp, 4000, SEEK_SET);
    int c = fgetc(fp);
    fseek(fp, 4000, SEEK_SET);
    fputc(c ^ 0x5a, fp);
    fclose(fp);
    expect_fatal(&f, qpo_trainer_job_generate, "generate", 1, "does not match its recorded sha256");
    expect_fatal(&f, qpo_trainer_job_train, "train", 2, "restore");
    assert_int_equal(unlink(path), 0);
    expect_fatal(&f, qpo_trainer_job_evaluate_generate, "evaluate-generate", 1, path);
    assert_int_equal(db_ll(f.conn, "SELECT count(*) FROM qpo.generations"), 0);
    free(path);
    /* A payload whose collect shape is not the run's. */
    qpo_err err = {0};
    assert_int_equal(tfx_run(&f, qpo_trainer_job_generate,
                             "{\"run_id\": 1, \"loop\": 1, \"batches\": 3, \"batch_size\": 5}", 0,
                             NULL, &err),
                     QPO_JOB_FATAL);
    assert_int_equal(tfx_run(&f, qpo_trainer_job_evaluate_generate,
                             "{\"run_id\": 1, \"loop\": 1, \"test_size\": 7}", 0, NULL, &err),
                     QPO_JOB_FATAL);
    assert_non_null(strstr(err.msg, "test_size 7"));
    tfx_teardown(&f);
}

/* Decoded byte-level prompts may cut a character in half or hold NUL; PostgreSQL text must get
 * neither. */
static void test_prompt_text_is_valid_utf8(void **state) {
    (void)state;
    static const struct {
        const char *in;
        size_t len;
        const char *out;
    } cases[] = {
        {"plain", 5, "plain"},
        {"caf\xc3\xa9", 5, "caf\xc3\xa9"},
        {"cut \xe2\x82", 6, "cut \xef\xbf\xbd\xef\xbf\xbd"},
        {"a\0b", 3, "ab"},
        {"\xc0\xaf", 2, "\xef\xbf\xbd\xef\xbf\xbd"},                 /* overlong '/' */
        {"\xed\xa0\x80", 3, "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd"}, /* surrogate */
        {"\xf0\x9f\x98\x80!", 5, "\xf0\x9f\x98\x80!"},
        {"\xff", 1, "\xef\xbf\xbd"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *got = qpo_text_clean_utf8(cases[i].in, cases[i].len);
        assert_string_equal(got, cases[i].out);
        free(got);
    }
}

/* A GPT-2-shaped Hugging Face folder (config.json + model.safetensors, "transformer."-prefixed
 * backbone, the causal-mask buffer and the tied LM head, as HF writes them) with n_layer
 * layers over the byte tokenizer's 257 tokens: the layer count tells which folder was read. */
static void write_hf_gpt2(const char *dir, int n_layer) {
    char cmd[1100], err[256], path[1200];
    snprintf(cmd, sizeof cmd, "mkdir -p '%s'", dir);
    assert_int_equal(system(cmd), 0);
    qpo_policy_config cfg = {.n_layer = n_layer, .n_head = 2, .d = 32, .vocab = 257, .ctx = 96};
    qpo_policy *p = qpo_policy_new(&cfg, qpo_backend_cpu(), err, sizeof err);
    assert_non_null(p);
    qpo_policy_init_random(p, (uint64_t)n_layer);
    qpo_st_writer *w = qpo_st_writer_new();
    const float *x = qpo_policy_params(p);
    for (size_t i = 0; i < qpo_policy_num_tensors(p); i++) {
        const qpo_policy_tensor *t = qpo_policy_tensor_at(p, i);
        if (!strncmp(t->name, "embed_", 6) || !strncmp(t->name, "mlp_head", 8) ||
            !strncmp(t->name, "predict_return", 14))
            continue; /* the PGDT heads are not GPT-2's */
        char name[128];
        snprintf(name, sizeof name, "transformer.%s", t->name);
        assert_int_equal(qpo_st_writer_add(w, name, QPO_ST_F32, t->ndim, t->shape, x + t->offset),
                         0);
    }
    const qpo_policy_tensor *wte = qpo_policy_tensor_find(p, "wte.weight");
    assert_int_equal(
        qpo_st_writer_add(w, "lm_head.weight", QPO_ST_F32, 2, wte->shape, x + wte->offset), 0);
    int64_t bshape[4] = {1, 1, 96, 96};
    uint8_t *mask = calloc(96 * 96, 1);
    assert_int_equal(qpo_st_writer_add(w, "transformer.h.0.attn.bias", QPO_ST_U8, 4, bshape, mask),
                     0);
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    assert_int_equal(qpo_st_writer_write(w, path, err, sizeof err), 0);
    qpo_st_writer_free(w);
    free(mask);
    qpo_policy_free(p);
    snprintf(path, sizeof path, "%s/config.json", dir);
    FILE *f = fopen(path, "w");
    fprintf(f,
            "{\"model_type\": \"gpt2\", \"n_head\": 2, \"n_layer\": %d, \"n_embd\": 32, "
            "\"n_positions\": 96, \"vocab_size\": 257}\n",
            n_layer);
    fclose(f);
}

static long long checkpoint_layers(tfx *f) {
    return db_ll(f->conn, "SELECT (config->>'n_layer')::int FROM qpo.checkpoints WHERE loop = 1");
}

/* "init": "pretrained" finds GPT-2 in policy.weights, else $QPO_GPT2_DIR, else the Hugging Face
 * cache ($HF_HOME/hub/models--gpt2/snapshots/<rev>/), and fails naming all three when none has
 * the files. The folder's shape is the policy's. */
static void test_pretrained_init_search_order(void **state) {
    (void)state;
    char root[] = "/tmp/qpo-gpt2-XXXXXX";
    assert_non_null(mkdtemp(root));
    char hf_home[64], snap[160], env_dir[64], given[64];
    snprintf(hf_home, sizeof hf_home, "%s/hf", root);
    snprintf(snap, sizeof snap,
             "%s/hub/models--gpt2/snapshots/607a30d783dfa663caf39e06633721c8d4cfcd7e", hf_home);
    snprintf(env_dir, sizeof env_dir, "%s/env", root);
    snprintf(given, sizeof given, "%s/given", root);
    char *saved_env = getenv("QPO_GPT2_DIR") ? strdup(getenv("QPO_GPT2_DIR")) : NULL;
    char *saved_hf = getenv("HF_HOME") ? strdup(getenv("HF_HOME")) : NULL;
    unsetenv("QPO_GPT2_DIR");
    setenv("HF_HOME", hf_home, 1);

    tfx f;
    tfx_setup(&f, qpo_pgtest_new_db(pg), NULL);
    db_ok(f.conn, "UPDATE qpo.experiments SET resolved_config = jsonb_set(resolved_config, "
                  "'{policy,init}', '\"pretrained\"')");
    /* Nowhere: one error naming the three places. */
    expect_fatal(&f, qpo_trainer_job_train, "train", 1, "no pretrained GPT-2 weights");
    expect_fatal(&f, qpo_trainer_job_train, "train", 1, "policy.weights (not set)");
    expect_fatal(&f, qpo_trainer_job_train, "train", 1, "$QPO_GPT2_DIR (not set)");
    expect_fatal(&f, qpo_trainer_job_train, "train", 1, "/hf/hub/models--gpt2/snapshots/*/");
    /* A snapshot without its weights file does not count. */
    write_hf_gpt2(snap, 3);
    char weights[256];
    snprintf(weights, sizeof weights, "%s/model.safetensors", snap);
    char moved[300];
    snprintf(moved, sizeof moved, "%s.away", weights);
    assert_int_equal(rename(weights, moved), 0);
    expect_fatal(&f, qpo_trainer_job_train, "train", 1, "none complete");
    assert_int_equal(rename(moved, weights), 0);
    /* The cache. */
    run_ok(&f, qpo_trainer_job_train, "train", 1, NULL);
    assert_int_equal(checkpoint_layers(&f), 3);
    assert_int_equal(db_ll(f.conn, "SELECT count(*) FROM qpo.checkpoints WHERE training->>'init' "
                                   "= 'pretrained'"),
                     1);
    tfx_teardown(&f);

    /* $QPO_GPT2_DIR before the cache. */
    write_hf_gpt2(env_dir, 1);
    setenv("QPO_GPT2_DIR", env_dir, 1);
    tfx_setup(&f, qpo_pgtest_new_db(pg), NULL);
    db_ok(f.conn, "UPDATE qpo.experiments SET resolved_config = jsonb_set(resolved_config, "
                  "'{policy,init}', '\"pretrained\"')");
    run_ok(&f, qpo_trainer_job_train, "train", 1, NULL);
    assert_int_equal(checkpoint_layers(&f), 1);
    tfx_teardown(&f);

    /* policy.weights before both; a given folder without the files is an error, not a
     * fall-through to the others. */
    char sql[512];
    snprintf(sql, sizeof sql,
             "UPDATE qpo.experiments SET resolved_config = jsonb_set(jsonb_set(resolved_config, "
             "'{policy,init}', '\"pretrained\"'), '{policy,weights}', '\"%s\"')",
             given);
    tfx_setup(&f, qpo_pgtest_new_db(pg), NULL);
    db_ok(f.conn, sql);
    expect_fatal(&f, qpo_trainer_job_train, "train", 1, "no such folder");
    write_hf_gpt2(given, 4);
    run_ok(&f, qpo_trainer_job_train, "train", 1, NULL);
    assert_int_equal(checkpoint_layers(&f), 4);
    tfx_teardown(&f);

    if (saved_env)
        setenv("QPO_GPT2_DIR", saved_env, 1);
    else
        unsetenv("QPO_GPT2_DIR");
    if (saved_hf)
        setenv("HF_HOME", saved_hf, 1);
    else
        unsetenv("HF_HOME");
    free(saved_env);
    free(saved_hf);
    tfx_rm_rf(root);
}

/* The authors strip() every decoded prompt: " Classify.\n" and "Classify." are one prompt. */
static void test_prompt_text_is_stripped(void **state) {
    (void)state;
    static const struct {
        const char *in, *out;
    } cases[] = {
        {" Classify the tweet.\n", "Classify the tweet."},
        {"\t\r\x0b\x0c\x1c in  side \x1f", "in  side"},
        {"\xc2\xa0nbsp\xe3\x80\x80", "nbsp"}, /* U+00A0, U+3000 */
        {"\xe2\x80\x83"
         "em\xe2\x80\xa8",
         "em"},                          /* U+2003, U+2028 */
        {"caf\xc3\xa9 ", "caf\xc3\xa9"}, /* a non-space multi-byte character stays */
        {"   ", ""},
        {"", ""},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char buf[64];
        snprintf(buf, sizeof buf, "%s", cases[i].in);
        qpo_text_strip(buf);
        assert_string_equal(buf, cases[i].out);
    }
}

/* The newest epoch folder's held-out CE and sha256 (after a run stopped after that epoch). */
static double epoch_heldout(const tfx *f, int epoch, char sha[65]) {
    char dir[PATH_MAX];
    snprintf(dir, sizeof dir, "%s/run-%lld/loop-1", f->ckpt_root, (long long)f->run_id);
    qpo_epoch_info info;
    assert_int_equal(qpo_ckpt_epoch_read(dir, epoch, &info), 0);
    snprintf(sha, 65, "%s", info.sha256);
    return info.heldout_ce;
}

/* A constructed case where held-out CE turns up before training ends (a learning rate of 0.05
 * on 24 queries: held-out CE 3.26, 3.13, 5.94, 28.7 by epoch): the loop publishes the epoch
 * with the lowest held-out CE, read epoch by epoch from runs stopped after each, not the last.
 * The held-out queries are whole queries (5 records each) and never trained on. */
static void test_heldout_selects_best_epoch(void **state) {
    (void)state;
    enum { EPOCHS = 4 };
    tfx f;
    tfx_opts o = {.epochs_first = EPOCHS,
                  .d0_queries = 24,
                  .with_d0 = 1,
                  .select = "heldout",
                  .heldout = 0.25,
                  .lr_first = 0.05};
    tfx_setup(&f, qpo_pgtest_new_db(pg), &o);
    char payload[256], shas[EPOCHS + 1][65];
    tfx_payload(&f, "train", 1, payload, sizeof payload);
    double ce[EPOCHS + 1];
    int best = 0;
    json_t *res = NULL;
    for (int e = 1; e <= EPOCHS; e++) {
        qpo_err err = {0};
        qpo_job_status st = tfx_run(&f, qpo_trainer_job_train, payload, 1, &res, &err);
        assert_int_equal(st, e < EPOCHS ? QPO_JOB_CANCELLED : QPO_JOB_OK);
        ce[e] = epoch_heldout(&f, e, shas[e]);
        assert_true(ce[e] > 0);
        if (!best || ce[e] < ce[best])
            best = e;
    }
    assert_true(best < EPOCHS); /* the constructed case: the last epoch is not the best */
    assert_int_equal(json_integer_value(json_object_get(res, "epochs")), best);
    assert_int_equal(json_integer_value(json_object_get(res, "epochs_trained")), EPOCHS);
    assert_string_equal(json_string_value(json_object_get(res, "select")), "heldout");
    long long held = json_integer_value(json_object_get(res, "heldout_records"));
    long long trained = json_integer_value(json_object_get(res, "records"));
    assert_true(held > 0 && held % 5 == 0 && held + trained == 24 * 5);
    assert_true(fabs(json_real_value(json_object_get(res, "heldout_ce")) - ce[best]) < 1e-9);
    char *sha = checkpoint_sha(&f, 1);
    assert_string_equal(sha, shas[best]);
    free(sha);
    assert_int_equal(db_ll(f.conn, "SELECT epochs FROM qpo.checkpoints"), best);
    json_decref(res);
    tfx_teardown(&f);

    /* "last": nothing held out, the last epoch published. */
    o.select = "last";
    tfx_setup(&f, qpo_pgtest_new_db(pg), &o);
    run_ok(&f, qpo_trainer_job_train, "train", 1, &res);
    assert_int_equal(json_integer_value(json_object_get(res, "epochs")), EPOCHS);
    assert_int_equal(json_integer_value(json_object_get(res, "heldout_records")), 0);
    assert_int_equal(json_integer_value(json_object_get(res, "records")), 24 * 5);
    json_decref(res);
    tfx_teardown(&f);
}

int main(void) {
    pg = qpo_pgtest_start();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_prompt_text_is_valid_utf8),
        cmocka_unit_test(test_prompt_text_is_stripped),
        cmocka_unit_test(test_train_then_generate),
        cmocka_unit_test(test_determinism_and_resume),
        cmocka_unit_test(test_heldout_selects_best_epoch),
        cmocka_unit_test(test_changed_data_starts_over),
        cmocka_unit_test(test_merge_filter_dedup_and_loop2),
        cmocka_unit_test(test_errors_name_the_fix),
        cmocka_unit_test(test_pretrained_init_search_order),
        cmocka_unit_test(test_vocab_d0_is_the_training_tokens),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    qpo_pgtest_stop(pg);
    return rc;
}
