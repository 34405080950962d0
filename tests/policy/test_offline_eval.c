/* `qpo offline-eval` as a user runs it: bad input named by file and record (exit 2, before any
 * training), and a small seeded run on the authors' TweetEval D_0 whose numbers must agree
 * with each other and with the file (skipped without ../shared/data). */
#include <jansson.h>
#include <math.h>
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include <cmocka.h>

#include "fixture.h"
#include "pgtest.h"

#define D0_FILE "qpo_d0/tweet_emotion_llama7b_ocml_round1_few_shot_expert.json"

static char *dir;

/* Runs `qpo offline-eval ARGS`; exit code, stdout and stderr (static buffers). */
static int offline_eval(const char *args, char **out, char **err) {
    char cmd[4096];
    snprintf(cmd, sizeof cmd, "OMP_WAIT_POLICY=passive '%s' offline-eval %s > '%s/out' 2> '%s/err'",
             qpo_test_binary(), args, dir, dir);
    int st = system(cmd);
    static char bo[1 << 16], be[1 << 16];
    char *bufs[2] = {bo, be};
    const char *names[2] = {"out", "err"};
    for (int i = 0; i < 2; i++) {
        char path[1024];
        snprintf(path, sizeof path, "%s/%s", dir, names[i]);
        FILE *f = fopen(path, "r");
        size_t n = f ? fread(bufs[i], 1, (1 << 16) - 1, f) : 0;
        bufs[i][n] = 0;
        if (f)
            fclose(f);
    }
    *out = bo, *err = be;
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static void test_missing_file(void **state) {
    (void)state;
    char args[2048], *out, *err;
    snprintf(args, sizeof args, "--d0 '%s/absent.json' --holdout 0.2 --seed 0 --tokenizer '%s'",
             dir, dir);
    assert_int_equal(offline_eval(args, &out, &err), 2);
    assert_non_null(strstr(err, "absent.json"));
    assert_string_equal(out, "");
}

static void test_bad_record(void **state) {
    (void)state;
    char path[1024], args[2048], *out, *err;
    snprintf(path, sizeof path, "%s/bad_d0.json", dir);
    FILE *f = fopen(path, "w");
    fputs("[{\"query\": \"q\", \"label\": 1, \"prompt\": \"p\", \"llama7b\": "
          "{\"few_shot_accuracy\": 1, \"few_shot_avg_acc\": 0.5}},\n"
          " {\"query\": 5, \"label\": 1, \"prompt\": \"p\", \"llama7b\": {}}]\n",
          f);
    fclose(f);
    snprintf(args, sizeof args,
             "--d0 '%s' --setting few_shot --holdout 0.5 --seed 0 --tokenizer '%s'", path, dir);
    assert_int_equal(offline_eval(args, &out, &err), 2);
    assert_non_null(strstr(err, "bad_d0.json: record 1"));
    assert_non_null(strstr(err, "\"query\""));
    assert_int_equal(offline_eval("--d0 x.json --seed 0", &out, &err), 2); /* no --holdout */
    assert_non_null(strstr(err, "--holdout"));
    /* A negative weight would silently mean "the recipe's": refused by name. */
    assert_int_equal(offline_eval("--d0 x.json --holdout 0.2 --seed 0 --lambda -1", &out, &err), 2);
    assert_non_null(strstr(err, "--lambda: -1 is below 0"));
}

static double num(json_t *o, const char *key) {
    json_t *v = json_object_get(o, key);
    if (!json_is_number(v))
        fail_msg("offline-eval JSON has no number \"%s\"", key);
    return json_number_value(v);
}

/* Trains on a tenth of the queries for one epoch: fast, and enough to check the bookkeeping
 * against the file (260 queries, 8587 records) and the statistics against each other. */
static void test_shared_d0(void **state) {
    (void)state;
    const char *data = qpo_test_shared_data();
    if (!data) {
        print_message("skipped: ../shared/data is absent (QPO_SHARED_DIR)\n");
        skip();
    }
    char args[4096], *out, *err;
    snprintf(args, sizeof args,
             "--d0 '%s/" D0_FILE "' --holdout 0.9 --seed 1 --epochs 1 --batch 64 --lambda 0.001 "
             "--tokenizer '%s/gpt2_bpe' --json",
             data, data);
    int rc = offline_eval(args, &out, &err);
    if (rc)
        fail_msg("exit %d: %s", rc, err);
    json_error_t jerr;
    json_t *o = json_loads(out, 0, &jerr);
    if (!o)
        fail_msg("not JSON (%s): %s", jerr.text, out);
    assert_int_equal((int)num(o, "n_queries"), 260);
    assert_int_equal((int)num(o, "n_records"), 8587);
    assert_int_equal((int)num(o, "n_heldout"), 234);
    assert_true(fabs(num(o, "lambda") - 0.001) < 1e-9); /* the fixed weight it trained with */
    double cov = num(o, "coverage"), n = num(o, "n_heldout"), c = num(o, "n_covered");
    assert_true(cov >= 0 && cov <= 1);
    assert_true(fabs(cov * n - c) < 1e-6);
    assert_true(num(o, "chance_lift") == 0.0);
    assert_true(num(o, "best_prompt_lift") > 0); /* D_0's rewards differ within a query */
    /* no prompt was logged for even half the queries: coverage 0.5 needs query-dependent
     * prompts */
    double single = num(o, "best_single_prompt_coverage");
    assert_true(single > 0.1 && single < 0.4);
    if (c > 0) {
        double lift = num(o, "lift");
        assert_true(fabs(lift - (num(o, "mean_reward_written") - num(o, "mean_reward_all"))) <
                    1e-5);
        json_t *ci = json_object_get(o, "lift_ci95");
        assert_true(json_real_value(json_array_get(ci, 0)) <= lift + 1e-9);
        assert_true(json_real_value(json_array_get(ci, 1)) >= lift - 1e-9);
    }
    print_message("offline-eval, 1 epoch on 26 queries: %s", out);
    json_decref(o);
}

static int setup(void **state) {
    (void)state;
    dir = temp_dir();
    return 0;
}

static int teardown(void **state) {
    (void)state;
    char cmd[1200];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    int rc = system(cmd);
    free(dir);
    return rc != 0;
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_missing_file),
        cmocka_unit_test(test_bad_record),
        cmocka_unit_test(test_shared_d0),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
