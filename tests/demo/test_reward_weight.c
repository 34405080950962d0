/* reward.avg_acc_weight from the config to the stored rewards, through the real processes:
 * `qpo demo --db` submits a small experiment with weight 0, the scheduler plans it, the cpu
 * worker's d0 job builds D_0 against qpo sim-llm and its reward jobs score loop 1's collected
 * pairs. Every stored raw reward must then be the recipe's formula without the avg_acc term
 * (10 correct - NLL of the gold label), `qpo results` and the report must say which weight the
 * runs used, D_0 of that target must refuse records of another weight (the importer's
 * default 10), and a run of the authors' weight on it is told why it cannot start.
 * Needs ../shared/data. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "demo_fixture.h"
#include "pgtest.h"
#include "sched_util.h"

static long long count(PGconn *conn, const char *sql) {
    PGresult *res = PQexec(conn, sql);
    if (PQresultStatus(res) != PGRES_TUPLES_OK)
        fail_msg("%s: %s", sql, PQerrorMessage(conn));
    long long n = atoll(PQgetvalue(res, 0, 0));
    PQclear(res);
    return n;
}

static void write_file(const char *path, const char *text) {
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static const char config[] =
    "{\"name\": \"weight-0\", \"tasks\": [\"tweet_emotion\"], \"settings\": [\"zero_shot\"],\n"
    " \"seeds\": [0], \"loops\": 2,\n"
    " \"targets\": [{\"name\": \"sim\", \"base_url\": \"http://127.0.0.1:1/v1\",\n"
    "              \"model\": \"sim-llama-2-7b-chat\"}],\n"
    " \"policy\": {\"size\": \"tiny\", \"init\": \"scratch\", \"tokenizer\": \"gpt2_bpe\",\n"
    "            \"vocab\": \"d0\"},\n"
    " \"hyper\": {\"epochs_first\": 1, \"epochs_next\": 1, \"batch_size\": 32},\n"
    " \"collect\": {\"batches\": 2, \"batch_size\": 12}, \"test\": {\"size\": 10, \"shards\": 1},\n"
    " \"d0\": {\"source\": \"build\", \"queries\": 8},\n"
    " \"reward\": {\"avg_acc_weight\": 0}}\n";

/* One released-format D_0 record for the same (task, setting, target). */
static const char released_d0[] =
    "[{\"prompt_method\": \"manual\", \"query\": \"a tweet\", \"label\": 1,"
    " \"prompt\": \"Which emotion?\", \"llama7b\": {\"zero_shot_correct\": 1,"
    " \"zero_shot_avg_acc\": 0.5, \"zero_shot_perplexities\": [2.0, 0.5, 3.0, 4.0]}}]\n";

/* The stored raw rewards against 10 correct - nll_gold, in D_0 (d0 job) and qpo.rewards
 * (reward jobs): how many rows, how many differ, and how many have avg_acc > 0 (where the
 * authors' weight would have added to the reward, so the check can fail). */
static void check_rewards(PGconn *conn) {
    long long d0 = count(conn, "SELECT count(*) FROM qpo.d0_records");
    long long d0_off =
        count(conn, "SELECT count(*) FROM qpo.d0_records WHERE avg_acc_weight <> 0 OR "
                    "abs(raw_reward - (10 * (acc > 0.5)::int - (extra->'nlls'->>label)::float8)) "
                    "> 1e-9");
    long long d0_avg = count(conn, "SELECT count(*) FROM qpo.d0_records WHERE avg_acc > 0");
    long long rw = count(conn, "SELECT count(*) FROM qpo.rewards");
    long long rw_off =
        count(conn, "SELECT count(*) FROM qpo.rewards w JOIN qpo.runs r ON r.id = w.run_id "
                    "JOIN qpo.task_items i ON i.task = r.task AND i.item_id = w.item_id "
                    "WHERE abs(w.raw_reward - (10 * w.correct::int - "
                    "w.nlls[i.label + 1])) > 1e-9");
    long long rw_avg = count(conn, "SELECT count(*) FROM qpo.rewards WHERE avg_acc > 0");
    print_message("D_0 %lld records (%lld off, %lld with avg_acc > 0); rewards %lld (%lld off, "
                  "%lld with avg_acc > 0)\n",
                  d0, d0_off, d0_avg, rw, rw_off, rw_avg);
    assert_true(d0 > 0 && d0_avg > 0);
    assert_int_equal(d0_off, 0);
    assert_int_equal(rw, 24); /* 2 batches x 12 collected pairs */
    assert_true(rw_avg > 0);
    assert_int_equal(rw_off, 0);
    assert_int_equal(count(conn, "SELECT count(*) FROM qpo.runs WHERE avg_acc_weight <> 0"), 0);
}

static void test_weight_0_reaches_the_stored_rewards(void **state) {
    (void)state;
#if defined(__SANITIZE_ADDRESS__)
    /* A whole experiment (build, train, collect, score) runs many times slower under ASan; the
     * d0 and reward jobs' code runs sanitized in tests/reward with the default weight. */
    print_message("skipped under ASan: a whole experiment does not fit the CI budget\n");
    skip();
#endif
    const char *data = qpo_test_shared_data();
    if (!data) {
        print_message("skipped: ../shared/data is absent (TweetEval, prompts, GPT-2 BPE)\n");
        skip();
    }
    qpo_pgtest *pg = qpo_pgtest_start();
    char db[600], out[] = "/tmp/qpo-weight-XXXXXX", log[128], cfg[128], d0[128];
    snprintf(db, sizeof(db), "%s", qpo_pgtest_new_db(pg));
    assert_non_null(mkdtemp(out));
    assert_int_equal(chmod(out, 0711), 0);
    snprintf(log, sizeof(log), "%s/demo.log", out);
    snprintf(cfg, sizeof(cfg), "%s/weight.json", out);
    snprintf(d0, sizeof(d0), "%s/released_d0.json", out);
    write_file(cfg, config);
    write_file(d0, released_d0);
    char *args[] = {"--db", db, "--config", cfg, "--out", out, "--data", (char *)data, NULL};
    int rc = demo_wait_exit(demo_start(args, log));
    char *text = demo_slurp(log);
    if (rc != 0)
        print_message("%s\n", text);
    assert_int_equal(rc, 0);
    /* The results name the weight, so this run is not taken for the authors' reward. */
    assert_non_null(strstr(text, "raw reward: avg_acc weight 0 "));
    free(text);

    PGconn *conn = PQconnectdb(db);
    assert_int_equal(PQstatus(conn), CONNECTION_OK);
    check_rewards(conn);
    long long before = count(conn, "SELECT count(*) FROM qpo.d0_records");
    /* qpo demo wrote the report too: its header names the weight. */
    char page[160];
    snprintf(page, sizeof(page), "%s/report/index.html", out);
    char *html = demo_slurp(page);
    if (!strstr(html, "Raw reward: avg_acc weight 0 "))
        fail_msg("%s does not name the weight", page);
    free(html);

    /* The same target's D_0 at the importer's default weight: refused, nothing written. */
    qpo_run_result r;
    const char *import[] = {"data",      "import-d0", d0,         "--task", "tweet_emotion",
                            "--setting", "zero_shot", "--target", "sim",    NULL};
    qpo_run(&r, db, NULL, import);
    assert_int_equal(r.exit_code, 2);
    if (!strstr(r.err, "avg_acc weight 0, not 10") || !strstr(r.err, d0))
        fail_msg("unexpected refusal: %s", r.err);
    assert_int_equal(count(conn, "SELECT count(*) FROM qpo.d0_records"), before);
    /* With the weight D_0 holds, the record goes in with 10 correct - nll_gold. */
    const char *import0[] = {"data",          "import-d0",        d0,          "--task",
                             "tweet_emotion", "--setting",        "zero_shot", "--target",
                             "sim",           "--avg-acc-weight", "0",         NULL};
    qpo_run(&r, db, NULL, import0);
    if (r.exit_code != 0)
        fail_msg("import with weight 0 exited %d: %s", r.exit_code, r.err);
    assert_int_equal(count(conn, "SELECT count(*) FROM qpo.d0_records WHERE query = 'a tweet' "
                                 "AND abs(raw_reward - 9.5) < 1e-9 AND avg_acc_weight = 0"),
                     1);
    /* A run asking the authors' weight of this D_0 is named as lacking its data. */
    PGresult *res = PQexec(conn, "INSERT INTO qpo.runs (experiment_id, task, setting, target, "
                                 "seed, loops) SELECT max(id), 'tweet_emotion', 'zero_shot', "
                                 "'sim', 99, 1 FROM qpo.experiments");
    if (PQresultStatus(res) != PGRES_COMMAND_OK)
        fail_msg("%s", PQerrorMessage(conn));
    PQclear(res);
    res = PQexec(conn, "SELECT qpo.run_data_problem(max(id)) FROM qpo.runs");
    if (PQresultStatus(res) != PGRES_TUPLES_OK)
        fail_msg("%s", PQerrorMessage(conn));
    if (!strstr(PQgetvalue(res, 0, 0), "reward.avg_acc_weight 0, the run asks for 10"))
        fail_msg("run_data_problem: %s", PQgetvalue(res, 0, 0));
    PQclear(res);
    PQfinish(conn);
    char cmd[160];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", out);
    assert_int_equal(system(cmd), 0);
    qpo_pgtest_stop(pg);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_weight_0_reaches_the_stored_rewards),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
