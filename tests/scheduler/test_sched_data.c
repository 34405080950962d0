/* qpo data import / import-d0 through the binary, against a real PostgreSQL: every file in
 * ../shared/data with its exact row counts, the upstream formats on small files written
 * here, malformed rows (file:line, nothing written, --skip-bad), and re-imports. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "db.h"
#include "pair_reward.h"
#include "pgtest.h"
#include "reward_formula.h"
#include "sched_util.h"

static qpo_pgtest *pg;
static char tmpdir[] = "/tmp/qpo-data-XXXXXX";

static void write_file(const char *rel, const char *text) {
    char path[1024];
    snprintf(path, sizeof(path), "%s/%s", tmpdir, rel);
    /* Parent folders for aclImdb-style trees. */
    for (char *p = path + strlen(tmpdir) + 1; (p = strchr(p, '/')); p++) {
        *p = '\0';
        mkdir(path, 0755);
        *p = '/';
    }
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static char *tmp(const char *rel) {
    static char buf[8][1024];
    static int i;
    char *p = buf[i++ % 8];
    snprintf(p, 1024, "%s/%s", tmpdir, rel);
    return p;
}

static void import_ok(const char *db, const char *const *argv, qpo_run_result *r) {
    qpo_run(r, db, NULL, argv);
    if (r->exit_code != 0)
        fail_msg("qpo %s %s failed: %s", argv[0], argv[1], r->err);
}

static void assert_count(PGconn *conn, const char *sql, int64_t want) {
    int64_t got = q_int(conn, sql);
    if (got != want)
        fail_msg("%s: got %lld, want %lld", sql, (long long)got, (long long)want);
}

static void test_shared_data_exact_counts(void **state) {
    const char *shared = qpo_test_shared_data();
    if (!shared) {
        print_message("skipped: ../shared/data is absent (TweetEval, GSM8K, SVAMP, D_0)\n");
        skip();
    }
    char info[1024], a[1024], b[1024], c[1024], gsm[1024], svamp[1024], d0[1024];
    snprintf(info, sizeof(info), "%s", qpo_pgtest_new_db(pg));
    snprintf(a, sizeof(a), "%s/tweet_eval_emotion/train_text.txt", shared);
    snprintf(b, sizeof(b), "%s/tweet_eval_emotion/val_text.txt", shared);
    snprintf(c, sizeof(c), "%s/tweet_eval_emotion/test_text.txt", shared);
    snprintf(gsm, sizeof(gsm), "%s/gsm8k/train.jsonl", shared);
    snprintf(svamp, sizeof(svamp), "%s/svamp/SVAMP.json", shared);
    snprintf(d0, sizeof(d0), "%s/qpo_d0/tweet_emotion_llama7b_ocml_round1_few_shot_expert.json",
             shared);
    qpo_run_result r;
    const char *tweet[] = {"data", "import", "tweet_emotion", a, b, c, NULL};
    import_ok(info, tweet, &r);
    assert_non_null(strstr(r.out, "5052 rows read, 5052 new"));
    const char *g[] = {"data", "import", "gsm8k", gsm, NULL};
    import_ok(info, g, &r);
    const char *s[] = {"data", "import", "svamp", svamp, NULL};
    import_ok(info, s, &r);
    const char *d[] = {"data",      "import-d0", d0,         "--task",  "tweet_emotion",
                       "--setting", "few_shot",  "--target", "llama7b", NULL};
    import_ok(info, d, &r);
    assert_non_null(strstr(r.out, "8587 records read, 8587 new"));

    PGconn *conn = test_connect(info);
    const char *te = "SELECT count(*) FROM qpo.task_items WHERE task = 'tweet_emotion'";
    assert_count(conn, te, 3257 + 374 + 1421);
    assert_count(conn,
                 "SELECT count(*) FROM qpo.task_items WHERE task = 'tweet_emotion' AND "
                 "upstream_split = 'train'",
                 3257);
    /* train: 80% train / 20% dev; validation: collect; test: test. */
    assert_count(conn,
                 "SELECT count(*) FROM qpo.task_items WHERE task = 'tweet_emotion' AND "
                 "split = 'train'",
                 2605);
    assert_count(conn,
                 "SELECT count(*) FROM qpo.task_items WHERE task = 'tweet_emotion' AND "
                 "split = 'dev'",
                 652);
    assert_count(conn,
                 "SELECT count(*) FROM qpo.task_items WHERE task = 'tweet_emotion' AND "
                 "split = 'collect'",
                 374);
    assert_count(conn,
                 "SELECT count(*) FROM qpo.task_items WHERE task = 'tweet_emotion' AND "
                 "split = 'test'",
                 1421);
    assert_count(conn, "SELECT count(*) FROM qpo.task_items WHERE task = 'gsm8k'", 7473);
    /* 45% / 50% / 5% of 7473, floored cumulatively. */
    assert_count(conn,
                 "SELECT count(*) FROM qpo.task_items WHERE task = 'gsm8k' AND split = "
                 "'train'",
                 3362);
    assert_count(conn,
                 "SELECT count(*) FROM qpo.task_items WHERE task = 'gsm8k' AND split = "
                 "'collect'",
                 3737);
    assert_count(conn,
                 "SELECT count(*) FROM qpo.task_items WHERE task = 'gsm8k' AND answer = "
                 "'72' AND query LIKE 'Natalia sold clips%'",
                 1);
    assert_count(conn, "SELECT count(*) FROM qpo.task_items WHERE task = 'svamp'", 1000);
    assert_count(conn,
                 "SELECT count(*) FROM qpo.task_items WHERE task = 'svamp' AND split = "
                 "'test'",
                 300);
    assert_count(conn,
                 "SELECT count(*) FROM qpo.task_items WHERE task = 'svamp' AND split = "
                 "'collect'",
                 686);
    assert_count(conn, "SELECT count(*) FROM qpo.d0_records", 8587);
    assert_count(conn, "SELECT count(DISTINCT query) FROM qpo.d0_records", 260);
    assert_count(conn, "SELECT count(DISTINCT prompt) FROM qpo.d0_records", 151);
    /* D_0 queries are TweetEval items (the upstream text's trailing blanks are dropped). */
    assert_count(conn,
                 "SELECT count(DISTINCT d.query) FROM qpo.d0_records d JOIN "
                 "qpo.task_items t ON t.task = d.task AND t.query = d.query",
                 260);
    /* Few-shot raw reward = 10 * (acc + avg_acc); prompts lose the end-of-text marker. */
    assert_count(conn,
                 "SELECT count(*) FROM qpo.d0_records WHERE abs(raw_reward - 10 * (acc + "
                 "avg_acc)) > 1e-9 OR prompt LIKE '%<|endoftext|>'",
                 0);

    /* Re-imports change nothing. */
    import_ok(info, tweet, &r);
    assert_non_null(strstr(r.out, "0 new, 5052 already present"));
    import_ok(info, d, &r);
    assert_non_null(strstr(r.out, "0 new, 8587 already present"));
    /* The TweetEval folder is the same three files. */
    char folder[1024];
    snprintf(folder, sizeof(folder), "%s/tweet_eval_emotion", shared);
    const char *dir[] = {"data", "import", "tweet_emotion", folder, NULL};
    import_ok(info, dir, &r);
    assert_non_null(strstr(r.out, "5052 rows read, 0 new, 5052 already present"));
    assert_count(conn, te, 5052);
    assert_count(conn, "SELECT count(*) FROM qpo.d0_records", 8587);
    PQfinish(conn);
}

static void test_native_formats(void **state) {
    char info[1024];
    snprintf(info, sizeof(info), "%s", qpo_pgtest_new_db(pg));
    /* AG News CSV: no header, 1-based class, quoted fields with commas, quotes, newlines. */
    write_file("ag/train.csv", "\"3\",\"Wall St.\",\"Bears, \"\"short\"\" sellers\"\n"
                               "\"2\",\"Cup\",\"A final\nin two lines\"\n"
                               "\"1\",\"Vote\",\"World news\"\n");
    write_file("cosmos/train.csv", "id,context,question,answer0,answer1,answer2,answer3,label\n"
                                   "a1,\"I went out.\",Why?,x,y,z,w,2\n");
    write_file("boolq/train.jsonl",
               "{\"question\": \"is it\", \"title\": \"t\", \"answer\": false, "
               "\"passage\": \"p\"}\n\n"
               "{\"question\": \"is it not\", \"answer\": true, \"passage\": "
               "\"p2\"}\n");
    write_file("hs/validation.jsonl",
               "{\"ind\": 4, \"activity_label\": \"Surfing\", \"ctx_a\": \"A man\", \"ctx_b\": "
               "\"rides\", \"ctx\": \"A man rides\", \"endings\": [\"a\", \"b\", \"c\", \"d\"], "
               "\"label\": \"3\"}\n");
    write_file("aclImdb/train/neg/10_2.txt", "bad film");
    write_file("aclImdb/train/neg/2_1.txt", "awful");
    write_file("aclImdb/train/pos/0_9.txt", "great");
    write_file("aclImdb/test/pos/0_10.txt", "superb");
    write_file("hf_tweets_test.jsonl", "{\"text\": \"so happy\", \"label\": 1}\n");
    qpo_run_result r;
    const char *ag[] = {"data", "import", "ag_news", tmp("ag/train.csv"), NULL};
    import_ok(info, ag, &r);
    const char *co[] = {"data", "import", "cosmos_qa", tmp("cosmos/train.csv"), NULL};
    import_ok(info, co, &r);
    const char *bq[] = {"data", "import", "boolq", tmp("boolq/train.jsonl"), NULL};
    import_ok(info, bq, &r);
    const char *hs[] = {"data", "import", "hellaswag", tmp("hs/validation.jsonl"), NULL};
    import_ok(info, hs, &r);
    const char *im[] = {"data", "import", "imdb", tmp("aclImdb"), NULL};
    import_ok(info, im, &r);
    const char *tw[] = {"data", "import", "tweet_emotion", tmp("hf_tweets_test.jsonl"), NULL};
    import_ok(info, tw, &r);

    PGconn *conn = test_connect(info);
    assert_count(conn,
                 "SELECT count(*) FROM qpo.task_items WHERE task = 'ag_news' AND label = 2 "
                 "AND fields->>'text' = 'Wall St. Bears, \"short\" sellers'",
                 1);
    assert_count(conn,
                 "SELECT count(*) FROM qpo.task_items WHERE task = 'ag_news' AND label = 1 "
                 "AND fields->>'text' = E'Cup A final\\nin two lines'",
                 1);
    assert_count(conn,
                 "SELECT count(*) FROM qpo.task_items WHERE task = 'cosmos_qa' AND label = "
                 "2 AND fields->'choices' = '[\"x\", \"y\", \"z\", \"w\"]'",
                 1);
    /* BoolQ: gold True is label 0. */
    assert_count(conn,
                 "SELECT count(*) FROM qpo.task_items WHERE task = 'boolq' AND "
                 "((fields->>'question' = 'is it' AND label = 1) OR (fields->>'question' = "
                 "'is it not' AND label = 0))",
                 2);
    assert_count(conn,
                 "SELECT count(*) FROM qpo.task_items WHERE task = 'hellaswag' AND label = "
                 "3 AND split = 'test' AND fields->>'ctx' = 'A man rides'",
                 1);
    /* aclImdb: neg then pos, by id; test goes to test. */
    assert_count(conn, "SELECT count(*) FROM qpo.task_items WHERE task = 'imdb'", 4);
    assert_count(conn,
                 "SELECT count(*) FROM qpo.task_items WHERE task = 'imdb' AND "
                 "upstream_split = 'train' AND ((upstream_index = 0 AND query = 'awful' AND "
                 "label = 0) OR (upstream_index = 2 AND query = 'great' AND label = 1))",
                 2);
    assert_count(conn,
                 "SELECT count(*) FROM qpo.task_items WHERE task = 'imdb' AND split = "
                 "'test' AND label = 1",
                 1);
    assert_count(conn,
                 "SELECT count(*) FROM qpo.task_items WHERE task = 'tweet_emotion' AND "
                 "split = 'test' AND label = 1",
                 1);
    PQfinish(conn);
}

static void test_malformed_rows(void **state) {
    char info[1024];
    snprintf(info, sizeof(info), "%s", qpo_pgtest_new_db(pg));
    write_file("bad/train.jsonl", "{\"question\": \"q1\", \"answer\": \"x #### 4\"}\n"
                                  "{\"question\": \"q2\", \"answer\": \"no marker\"}\n"
                                  "{\"question\": \"q3\", \"answer\": \"#### 1,234\"}\n"
                                  "not json\n");
    qpo_run_result r;
    const char *argv[] = {"data", "import", "gsm8k", tmp("bad/train.jsonl"), NULL};
    qpo_run(&r, info, NULL, argv);
    assert_int_equal(r.exit_code, 2);
    char where[1100];
    snprintf(where, sizeof(where), "%s:2", tmp("bad/train.jsonl"));
    if (!strstr(r.err, where))
        fail_msg("expected %s in: %s", where, r.err);
    PGconn *conn = test_connect(info);
    assert_count(conn, "SELECT count(*) FROM qpo.task_items", 0);
    const char *skip[] = {"data", "import", "gsm8k", tmp("bad/train.jsonl"), "--skip-bad", NULL};
    import_ok(info, skip, &r);
    assert_non_null(strstr(r.out, "2 rows read, 2 new, 0 already present, 2 malformed skipped"));
    assert_count(conn, "SELECT count(*) FROM qpo.task_items WHERE answer IN ('4', '1234')", 2);
    /* Labels out of range, and a wrong label mapping, are refused. */
    write_file("bad/ag_test.csv", "\"1\",\"a\",\"b\"\n\"9\",\"c\",\"d\"\n");
    const char *ag[] = {"data", "import", "ag_news", tmp("bad/ag_test.csv"), NULL};
    qpo_run(&r, info, NULL, ag);
    assert_int_equal(r.exit_code, 2);
    assert_non_null(strstr(r.err, "ag_test.csv:2"));
    assert_non_null(strstr(r.err, "out of range"));
    write_file("tw/mapping.txt", "0\tjoy\n1\tanger\n");
    write_file("tw/train_text.txt", "hi\n");
    write_file("tw/train_labels.txt", "0\n");
    const char *tw[] = {"data", "import", "tweet_emotion", tmp("tw/train_text.txt"), NULL};
    qpo_run(&r, info, NULL, tw);
    assert_int_equal(r.exit_code, 2);
    assert_non_null(strstr(r.err, "mapping.txt: label 0 is \"joy\""));
    /* A split qpo cannot use, and a name that tells no split. */
    write_file("hs/test.jsonl", "{}\n");
    const char *hs[] = {"data",     "import", "tweet_emotion",    tmp("hs/test.jsonl"),
                        "--format", "jsonl",  "--upstream-split", "sideways",
                        NULL};
    qpo_run(&r, info, NULL, hs);
    assert_int_equal(r.exit_code, 2);
    write_file("x/data.jsonl", "{\"text\": \"a\", \"label\": 0}\n");
    const char *noname[] = {"data", "import", "tweet_emotion", tmp("x/data.jsonl"), NULL};
    qpo_run(&r, info, NULL, noname);
    assert_int_equal(r.exit_code, 2);
    assert_non_null(strstr(r.err, "--upstream-split"));
    const char *named[] = {
        "data",       "import", "tweet_emotion", tmp("x/data.jsonl"), "--upstream-split",
        "validation", NULL};
    import_ok(info, named, &r);
    assert_count(conn,
                 "SELECT count(*) FROM qpo.task_items WHERE task = 'tweet_emotion' AND "
                 "split = 'collect'",
                 1);
    /* Another version of an imported file is refused, and nothing of it written. */
    write_file("x/data.jsonl", "{\"text\": \"changed\", \"label\": 0}\n{\"text\": \"b\", "
                               "\"label\": 1}\n");
    qpo_run(&r, info, NULL, named);
    assert_int_equal(r.exit_code, 2);
    assert_non_null(strstr(r.err, "differ from the ones already imported"));
    assert_count(conn, "SELECT count(*) FROM qpo.task_items WHERE task = 'tweet_emotion'", 1);
    /* The refusal used to blame runs that did not exist and lock the task for good: with no
     * run on the task it says so and --replace swaps the split's items. */
    assert_non_null(strstr(r.err, "no run uses the items of tweet_emotion yet: pass --replace"));
    const char *replace[] = {"data",
                             "import",
                             "tweet_emotion",
                             tmp("x/data.jsonl"),
                             "--upstream-split",
                             "validation",
                             "--replace",
                             NULL};
    import_ok(info, replace, &r);
    assert_non_null(strstr(r.out, "tweet_emotion: 1 rows replaced"));
    assert_count(conn,
                 "SELECT count(*) FROM qpo.task_items WHERE task = 'tweet_emotion' AND "
                 "query LIKE '%changed%'",
                 1);
    assert_count(conn, "SELECT count(*) FROM qpo.task_items WHERE task = 'tweet_emotion'", 2);
    /* Once a run (of any state) uses the task, neither path changes its items. */
    assert_count(conn,
                 "WITH t AS (INSERT INTO qpo.targets (name, base_url, model) VALUES ('t', "
                 "'http://127.0.0.1:9', 'm') RETURNING 1), e AS (INSERT INTO qpo.experiments "
                 "(name, config, state) VALUES ('e', '{}', 'cancelled') RETURNING id) "
                 "SELECT count(*) FROM t, e",
                 1);
    assert_count(conn,
                 "WITH r AS (INSERT INTO qpo.runs (experiment_id, task, setting, target, seed, "
                 "loops, state) SELECT id, 'tweet_emotion', 'zero_shot', 't', 0, 1, 'cancelled' "
                 "FROM qpo.experiments RETURNING 1) SELECT count(*) FROM r",
                 1);
    write_file("x/data.jsonl", "{\"text\": \"third\", \"label\": 0}\n");
    qpo_run(&r, info, NULL, replace);
    assert_int_equal(r.exit_code, 2);
    assert_non_null(strstr(r.err, "--replace refused: runs use the items of tweet_emotion"));
    assert_non_null(strstr(r.err, "1 run(s) use the items of tweet_emotion (first: run "));
    qpo_run(&r, info, NULL, named);
    assert_int_equal(r.exit_code, 2);
    assert_non_null(strstr(r.err, "so qpo never overwrites them"));
    assert_count(conn, "SELECT count(*) FROM qpo.task_items WHERE query = 'third'", 0);
    PQfinish(conn);
}

/* GSM8K's gold "#### 1e999" matched the number pattern as "1" and was stored as a wrong gold;
 * a SVAMP answer that reads back as another number is refused the same way. */
static void test_golds_that_do_not_round_trip(void **state) {
    char info[1024];
    snprintf(info, sizeof(info), "%s", qpo_pgtest_new_db(pg));
    write_file("gold/train.jsonl", "{\"question\": \"q1\", \"answer\": \"x #### 4\"}\n"
                                   "{\"question\": \"q2\", \"answer\": \"x #### 1e999\"}\n");
    qpo_run_result r;
    const char *gsm[] = {"data", "import", "gsm8k", tmp("gold/train.jsonl"), NULL};
    qpo_run(&r, info, NULL, gsm);
    assert_int_equal(r.exit_code, 2);
    char where[1100];
    snprintf(where, sizeof(where), "%s:2: GSM8K gold \"1e999\" is not a plain decimal number",
             tmp("gold/train.jsonl"));
    if (!strstr(r.err, where))
        fail_msg("expected %s in: %s", where, r.err);
    write_file("gold/svamp.json", "[{\"Body\": \"b\", \"Question\": \"q\", \"Answer\": 2.5},"
                                  " {\"Body\": \"b\", \"Question\": \"q\", \"Answer\": 1e-9}]");
    const char *sv[] = {"data", "import", "svamp", tmp("gold/svamp.json"), NULL};
    qpo_run(&r, info, NULL, sv);
    assert_int_equal(r.exit_code, 2);
    assert_non_null(strstr(r.err, "element 1"));
    assert_non_null(strstr(r.err, "would be stored as \"0\", another number"));
    write_file("gold/svamp.json",
               "[{\"Body\": \"b\", \"Question\": \"q\", \"Answer\": \"12 apples\"}]");
    qpo_run(&r, info, NULL, sv);
    assert_int_equal(r.exit_code, 2);
    assert_non_null(strstr(r.err, "not a finite number"));
    PGconn *conn = test_connect(info);
    assert_count(conn, "SELECT count(*) FROM qpo.task_items", 0);
    PQfinish(conn);
}

/* /dev/zero or a file with one huge line used to grow getline()'s buffer without bound: each
 * line reader stops at QPO_MAX_LINE_BYTES with the file and line, and writes nothing. */
static void test_endless_lines_refused(void **state) {
    char info[1024];
    snprintf(info, sizeof(info), "%s", qpo_pgtest_new_db(pg));
    qpo_run_result r;
    const char *zero[] = {"data",  "import",           "gsm8k", "/dev/zero", "--format",
                          "jsonl", "--upstream-split", "train", NULL};
    qpo_run(&r, info, NULL, zero);
    assert_int_equal(r.exit_code, 2);
    assert_non_null(strstr(r.err, "/dev/zero:1: a line longer than 1048576 bytes"));
    char *huge = malloc(2u << 20);
    memset(huge, 'x', (2u << 20) - 2);
    memcpy(huge, "\"1\",\"a\",\"", 9);
    huge[(2u << 20) - 2] = '\n';
    huge[(2u << 20) - 1] = '\0';
    write_file("huge/ag_train.csv", huge);
    write_file("huge/train_text.txt", huge);
    write_file("huge/train_labels.txt", "0\n");
    free(huge);
    const char *csv[] = {"data", "import", "ag_news", tmp("huge/ag_train.csv"), NULL};
    qpo_run(&r, info, NULL, csv);
    assert_int_equal(r.exit_code, 2);
    assert_non_null(strstr(r.err, "ag_train.csv:1: a line longer than 1048576 bytes"));
    const char *tw[] = {"data", "import", "tweet_emotion", tmp("huge/train_text.txt"), NULL};
    qpo_run(&r, info, NULL, tw);
    assert_int_equal(r.exit_code, 2);
    assert_non_null(strstr(r.err, "train_text.txt:1: a line longer than 1048576 bytes"));
    PGconn *conn = test_connect(info);
    assert_count(conn, "SELECT count(*) FROM qpo.task_items", 0);
    PQfinish(conn);
}

static void test_d0_malformed_record(void **state) {
    char info[1024];
    snprintf(info, sizeof(info), "%s", qpo_pgtest_new_db(pg));
    write_file("d0.json",
               "[{\"prompt_method\": \"m\", \"query\": \"q\", \"label\": 1, \"prompt\": "
               "\"Be calm.<|endoftext|>\", \"llama7b\": {\"zero_shot_correct\": 1, "
               "\"zero_shot_avg_acc\": 0.5, \"zero_shot_perplexities\": [2.0, 0.5, 3.0, 4.0]}},"
               " {\"query\": \"q2\", \"label\": 7, \"prompt\": \"x\", \"llama7b\": {}}]");
    qpo_run_result r;
    const char *argv[] = {"data",      "import-d0", tmp("d0.json"), "--task", "tweet_emotion",
                          "--setting", "zero_shot", "--target",     "sim",    NULL};
    qpo_run(&r, info, NULL, argv);
    assert_int_equal(r.exit_code, 2);
    assert_non_null(strstr(r.err, "record 1"));
    PGconn *conn = test_connect(info);
    assert_count(conn, "SELECT count(*) FROM qpo.d0_records", 0);
    const char *skip[] = {"data",      "import-d0", tmp("d0.json"), "--task", "tweet_emotion",
                          "--setting", "zero_shot", "--target",     "sim",    "--skip-bad",
                          NULL};
    import_ok(info, skip, &r);
    /* Zero-shot: 10 * correct + 10 * avg_acc - nll of the gold label (0.5). */
    assert_count(conn,
                 "SELECT count(*) FROM qpo.d0_records WHERE prompt = 'Be calm.' AND "
                 "abs(raw_reward - 14.5) < 1e-9 AND acc = 1 AND avg_acc = 0.5",
                 1);
    PQfinish(conn);
}

static void assert_close(double got, double want, const char *what) {
    if (!(fabs(got - want) <= 1e-9))
        fail_msg("%s = %.17g, expected %.17g", what, got, want);
}

/* Imports one zero-shot D_0 record of `task` and checks that the raw reward stored equals
 * what the reward jobs compute for the same scored item (qpo_pair_raw_reward) and `want`. */
static void assert_import_matches_jobs(const char *info, const char *task, const char *json,
                                       qpo_score_item *item, double want) {
    write_file("d0_half.json", json);
    const char *argv[] = {"data",      "import-d0", tmp("d0_half.json"), "--task", task,
                          "--setting", "zero_shot", "--target",          "sim",    NULL};
    qpo_run_result r;
    import_ok(info, argv, &r);
    PGconn *conn = test_connect(info);
    char sql[256];
    snprintf(sql, sizeof(sql), "SELECT raw_reward FROM qpo.d0_records WHERE task = '%s'", task);
    PGresult *res = PQexec(conn, sql);
    assert_int_equal(PQntuples(res), 1);
    double imported = atof(PQgetvalue(res, 0, 0));
    PQclear(res);
    PQfinish(conn);
    qpo_scoring s = {.task = qpo_task_find(task), .n_sets = 1, .items = item, .n_items = 1};
    assert_close(imported, qpo_pair_raw_reward(&s, item, 0.25, QPO_REWARD_AVG_ACC_WEIGHT), task);
    assert_close(imported, want, task);
}

/* At acc = 0.5 exactly, the importer and the reward jobs' path (qpo_pair_raw_reward) give the
 * same raw reward: 0.5 is not correct (strictly above is), so only 10 * avg_acc - nll remains. */
static void test_d0_import_agrees_with_reward_path_at_half(void **state) {
    char info[1024];
    snprintf(info, sizeof(info), "%s", qpo_pgtest_new_db(pg));
    double nlls[] = {2.0, 0.5, 3.0, 4.0};
    qpo_score_item label_item = {.label = 1, .nlls = nlls, .acc = 0.5};
    assert_import_matches_jobs(info, "tweet_emotion",
                               "[{\"query\": \"q\", \"label\": 1, \"prompt\": \"Be calm.\", "
                               "\"llama7b\": {\"zero_shot_correct\": 0.5, \"zero_shot_avg_acc\": "
                               "0.25, \"zero_shot_perplexities\": [2.0, 0.5, 3.0, 4.0]}}]",
                               &label_item, 2.5 - 0.5);
    qpo_score_item math_item = {.label = -1, .acc = 0.5, .completion_nll = 0.75};
    assert_import_matches_jobs(info, "svamp",
                               "[{\"query\": \"q\", \"gt_answer\": 3, \"prompt\": \"Think.\", "
                               "\"llama7b\": {\"zero_shot_correct\": 0.5, \"zero_shot_avg_acc\": "
                               "0.25, \"zero_shot_perplexity\": 0.75}}]",
                               &math_item, 2.5 - 0.75);
}

int main(void) {
    assert_non_null(mkdtemp(tmpdir));
    pg = qpo_pgtest_start();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_shared_data_exact_counts),
        cmocka_unit_test(test_native_formats),
        cmocka_unit_test(test_malformed_rows),
        cmocka_unit_test(test_endless_lines_refused),
        cmocka_unit_test(test_golds_that_do_not_round_trip),
        cmocka_unit_test(test_d0_malformed_record),
        cmocka_unit_test(test_d0_import_agrees_with_reward_path_at_half),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    qpo_pgtest_stop(pg);
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", tmpdir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", tmpdir);
    return rc;
}
