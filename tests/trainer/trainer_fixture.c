/* See trainer_fixture.h. */
#include "trainer_fixture.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#define _XOPEN_SOURCE_EXTENDED 1
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "db.h"

void db_ok(PGconn *conn, const char *sql) {
    qpo_err err = {0};
    if (qpo_db_exec(conn, sql, &err) != 0) {
        qpo_err_print(&err);
        fail_msg("SQL failed: %.300s", sql);
    }
}

char *db_str(PGconn *conn, const char *sql) {
    qpo_err err = {0};
    PGresult *res = qpo_db_query(conn, sql, 0, NULL, &err);
    if (!res) {
        qpo_err_print(&err);
        fail_msg("SQL failed: %.300s", sql);
    }
    char *v =
        strdup(PQntuples(res) == 0 || PQgetisnull(res, 0, 0) ? "NULL" : PQgetvalue(res, 0, 0));
    PQclear(res);
    return v;
}

long long db_ll(PGconn *conn, const char *sql) {
    char *v = db_str(conn, sql);
    long long n = atoll(v);
    free(v);
    return n;
}

static const char *const words[] = {"happy", "angry", "sad",  "hopeful", "tired",
                                    "great", "awful", "calm", "bright",  "grim"};

/* Items 0..29 collect, 100..111 test; queries read like short tweets. */
static void insert_items(PGconn *conn) {
    char sql[512];
    for (int i = 0; i < 42; i++) {
        int id = i < 30 ? i : 100 + (i - 30);
        const char *split = i < 30 ? "collect" : "test";
        snprintf(sql, sizeof sql,
                 "INSERT INTO qpo.task_items (task, item_id, split, upstream_split, "
                 "upstream_index, query, fields, label) VALUES ('tweet_emotion', %d, '%s', "
                 "'fixture', %d, 'so %s about day %d', '{\"text\": \"t\"}', %d)",
                 id, split, id, words[i % 10], i, i % 4);
        db_ok(conn, sql);
    }
}

static const char *const prompts[] = {"Classify the tweet.<|endoftext|>",
                                      "What emotion is this?<|endoftext|>",
                                      "Label the feeling.<|endoftext|>", "<|endoftext|>",
                                      "Read the tweet and name its emotion.<|endoftext|>"};

static void insert_d0(PGconn *conn, int queries) {
    char sql[512];
    for (int q = 0; q < queries; q++) {
        for (int p = 0; p < 5; p++) {
            double raw = 2.0 + ((q * 7 + p * 3) % 11);
            snprintf(sql, sizeof sql,
                     "INSERT INTO qpo.d0_records (task, setting, target, source, query, label, "
                     "prompt, acc, avg_acc, raw_reward) VALUES ('tweet_emotion', 'few_shot', "
                     "'sim', 'fixture', 'so %s about day %d', %d, '%s', 0.5, 0.5, %g)",
                     words[q % 10], q, q % 4, prompts[p], raw);
            db_ok(conn, sql);
        }
    }
}

void tfx_setup(tfx *f, const char *conninfo, const tfx_opts *opts) {
    tfx_opts o = {
        .seed = 0, .epochs_first = 2, .d0_queries = 8, .tokenizer = "bytes", .with_d0 = 1};
    if (opts) {
        o.seed = opts->seed;
        o.epochs_first = opts->epochs_first ? opts->epochs_first : 2;
        o.d0_queries = opts->d0_queries ? opts->d0_queries : 8;
        o.tokenizer = opts->tokenizer ? opts->tokenizer : "bytes";
        o.with_d0 = opts->with_d0;
        o.select = opts->select;
        o.heldout = opts->heldout;
        o.lr_first = opts->lr_first;
        o.vocab = opts->vocab;
    }
    char policy_extra[64] = "";
    if (o.vocab)
        snprintf(policy_extra, sizeof policy_extra, ", \"vocab\": \"%s\"", o.vocab);
    char extra[128] = "";
    if (o.select)
        snprintf(extra, sizeof extra, ", \"select\": \"%s\"", o.select);
    if (o.heldout > 0)
        snprintf(extra + strlen(extra), sizeof extra - strlen(extra), ", \"heldout\": %g",
                 o.heldout);
    memset(f, 0, sizeof *f);
    snprintf(f->conninfo, sizeof f->conninfo, "%s", conninfo);
    qpo_err err = {0};
    f->conn = qpo_db_connect(conninfo, "test_trainer", &err);
    assert_non_null(f->conn);
    char cfg[1024], sql[2048];
    snprintf(cfg, sizeof cfg,
             "{\"policy\": {\"size\": \"tiny\", \"init\": \"scratch\", \"tokenizer\": \"%s\"%s}, "
             "\"hyper\": {\"batch_size\": 16, \"epochs_first\": %d, \"epochs_next\": 2, "
             "\"lr_first\": %g, \"lr_next\": 0.0001, \"lr_step_epochs\": 20, "
             "\"lr_gamma\": 0.65, \"grad_clip\": 0.25, \"lambda\": 0.1, \"dropout\": 0.1, "
             "\"weight_decay\": 0.0001, \"lambda_switch\": false, \"top_k\": 2, \"top_p\": 0.9, "
             "\"r_star\": 100, \"max_query_tokens\": 40, \"max_prompt_tokens\": 40%s}}",
             o.tokenizer, policy_extra, o.epochs_first, o.lr_first > 0 ? o.lr_first : 0.001, extra);
    snprintf(sql, sizeof sql,
             "INSERT INTO qpo.experiments (name, config, state, resolved_config) VALUES "
             "('trainer-test', '{}', 'planned', '%s');"
             "INSERT INTO qpo.targets (name, base_url, model) VALUES ('sim', "
             "'http://127.0.0.1:9/v1', 'sim-model');"
             "INSERT INTO qpo.runs (experiment_id, task, setting, target, seed, loops, "
             "collect_batches, collect_batch_size, test_size) VALUES (1, 'tweet_emotion', "
             "'few_shot', 'sim', %d, 2, 2, 5, 6);",
             cfg, o.seed);
    db_ok(f->conn, sql);
    f->run_id = db_ll(f->conn, "SELECT max(id) FROM qpo.runs");
    insert_items(f->conn);
    if (o.with_d0)
        insert_d0(f->conn, o.d0_queries);
    snprintf(f->ckpt_root, sizeof f->ckpt_root, "/tmp/qpo-trainer-test-XXXXXX");
    assert_non_null(mkdtemp(f->ckpt_root));
}

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
    (void)st, (void)flag, (void)ftw;
    return remove(path);
}

void tfx_rm_rf(const char *path) {
    nftw(path, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

static int counted_files;
static bool counting_scratch;

static int count_one(const char *path, const struct stat *sb, int type, struct FTW *ftw) {
    (void)sb, (void)ftw;
    if (type == FTW_F && (counting_scratch || !strstr(path, "/.tmp-")))
        counted_files++;
    return 0;
}

int tfx_count_files(const char *root, bool with_scratch) {
    counted_files = 0;
    counting_scratch = with_scratch;
    nftw(root, count_one, 16, FTW_PHYS);
    return counted_files;
}

void tfx_teardown(tfx *f) {
    PQfinish(f->conn);
    tfx_rm_rf(f->ckpt_root);
}

void tfx_payload(const tfx *f, const char *kind, int loop, char *out, size_t len) {
    if (!strcmp(kind, "generate"))
        snprintf(out, len, "{\"run_id\": %lld, \"loop\": %d, \"batches\": 2, \"batch_size\": 5}",
                 (long long)f->run_id, loop);
    else if (!strcmp(kind, "evaluate-generate"))
        snprintf(out, len, "{\"run_id\": %lld, \"loop\": %d, \"test_size\": 6}",
                 (long long)f->run_id, loop);
    else
        snprintf(out, len, "{\"run_id\": %lld, \"loop\": %d}", (long long)f->run_id, loop);
}

qpo_job_status tfx_run(tfx *f, tfx_job_fn fn, const char *payload_json, int stop_after_epochs,
                       json_t **result, qpo_err *err) {
    json_error_t jerr;
    json_t *payload = json_loads(payload_json, 0, &jerr);
    assert_non_null(payload);
    qpo_trainer_env env = {.conn = f->conn,
                           .job_id = 0,
                           .job_attempt = 1,
                           .checkpoint_root = f->ckpt_root,
                           .artifacts = f->artifacts ? f->artifacts : "dir",
                           .stop_after_epochs = stop_after_epochs};
    qpo_job_outcome out = {0};
    qpo_err_clear(err);
    qpo_job_status st = fn(&env, payload, &out, err);
    if (st == QPO_JOB_OK && qpo_outcome_has_output(&out)) {
        qpo_job job = {.id = 0, .kind = "test", .attempt = 1, .payload = payload};
        assert_int_equal(qpo_db_begin(f->conn, err), 0);
        if (qpo_outcome_write(f->conn, &job, &out, err) != 0) {
            qpo_err_print(err);
            qpo_db_rollback(f->conn);
            fail_msg("writing the job's rows failed");
        }
        assert_int_equal(qpo_db_commit(f->conn, err), 0);
    }
    qpo_outcome_free_output(&out);
    if (result)
        *result = out.result;
    else
        json_decref(out.result);
    json_decref(payload);
    return st;
}
