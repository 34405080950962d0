/* Experiment config validation (no database): defaults, every refusal naming its field, the
 * shipped example configs, and the plan's shape for a shared D_0 build. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "plan.h"

static const char *base_config =
    "{\"tasks\": [\"tweet_emotion\"], \"settings\": [\"few_shot\"], \"seeds\": [0, 1],"
    " \"targets\": [{\"name\": \"t1\", \"base_url\": \"http://127.0.0.1:1/v1\","
    " \"model\": \"m\", \"api_key_env\": \"KEY\"}]}";

/* The base config with one top-level key replaced (value is JSON text). */
static json_t *with(const char *key, const char *value) {
    json_t *cfg = json_loads(base_config, 0, NULL);
    assert_non_null(cfg);
    if (key) {
        json_t *v = json_loads(value, JSON_DECODE_ANY, NULL);
        assert_non_null(v);
        json_object_set_new(cfg, key, v);
    }
    return cfg;
}

static void expect_error(const char *key, const char *value, const char *message) {
    json_t *cfg = with(key, value);
    qpo_err err = {0};
    json_t *r = qpo_config_resolve(cfg, &err);
    if (r)
        fail_msg("%s = %s was accepted", key, value);
    assert_int_equal(err.code, QPO_EXIT_USAGE);
    if (!strstr(err.msg, message))
        fail_msg("expected \"%s\" in \"%s\"", message, err.msg);
    json_decref(cfg);
}

static double real_at(const json_t *r, const char *section, const char *key) {
    return json_number_value(json_object_get(json_object_get(r, section), key));
}

static void test_defaults_are_the_recipe(void **state) {
    json_t *cfg = with(NULL, NULL);
    qpo_err err = {0};
    json_t *r = qpo_config_resolve(cfg, &err);
    assert_non_null(r);
    assert_int_equal(json_integer_value(json_object_get(r, "loops")), 4);
    assert_true(real_at(r, "hyper", "lr_first") == 1e-3);
    assert_true(real_at(r, "hyper", "lr_next") == 1e-4);
    assert_int_equal((int)real_at(r, "hyper", "epochs_first"), 100);
    assert_int_equal((int)real_at(r, "hyper", "epochs_next"), 20);
    assert_int_equal((int)real_at(r, "hyper", "batch_size"), 128);
    assert_true(real_at(r, "hyper", "lambda") == 0.1);
    /* The authors' per-batch MSE weight (docs/recipe.md) is on unless turned off. */
    assert_true(json_is_true(json_object_get(json_object_get(r, "hyper"), "lambda_switch")));
    assert_true(real_at(r, "hyper", "lr_gamma") == 0.65);
    assert_true(real_at(r, "hyper", "grad_clip") == 0.25);
    assert_true(real_at(r, "hyper", "top_p") == 0.9);
    assert_int_equal((int)real_at(r, "hyper", "top_k"), 2);
    assert_string_equal(json_string_value(json_object_get(json_object_get(r, "hyper"), "select")),
                        "heldout");
    assert_true(real_at(r, "hyper", "heldout") == 0.1);
    assert_true(json_is_false(json_object_get(r, "oracle")));
    /* The authors' reward: 10 on the prompt's avg_acc. */
    assert_true(real_at(r, "reward", "avg_acc_weight") == 10);
    assert_int_equal((int)real_at(r, "collect", "batches"), 10);
    assert_int_equal((int)real_at(r, "collect", "batch_size"), 100);
    assert_string_equal(json_string_value(json_object_get(json_object_get(r, "collect"), "draw")),
                        "independent");
    assert_int_equal((int)real_at(r, "test", "size"), 100);
    assert_int_equal((int)real_at(r, "test", "math_size"), 200);
    assert_string_equal(json_string_value(json_object_get(json_object_get(r, "d0"), "source")),
                        "import");
    assert_string_equal(json_string_value(json_object_get(json_object_get(r, "policy"), "init")),
                        "scratch");
    json_t *t = json_array_get(json_object_get(r, "targets"), 0);
    assert_string_equal(json_string_value(json_object_get(t, "api_key_env")), "KEY");
    assert_int_equal(json_integer_value(json_object_get(t, "max_inflight")), 8);
    json_decref(r);
    json_decref(cfg);
}

/* A chosen weight, 0 included (the falsy value a default must not replace), is kept. */
static void test_reward_weight_is_kept(void **state) {
    (void)state;
    const char *values[] = {"0", "2.5", "100"};
    double want[] = {0, 2.5, 100};
    for (int i = 0; i < 3; i++) {
        char text[64];
        snprintf(text, sizeof text, "{\"avg_acc_weight\": %s}", values[i]);
        json_t *cfg = with("reward", text);
        qpo_err err = {0};
        json_t *r = qpo_config_resolve(cfg, &err);
        if (!r)
            fail_msg("%s refused: %s", text, err.msg);
        assert_true(real_at(r, "reward", "avg_acc_weight") == want[i]);
        json_decref(r);
        json_decref(cfg);
    }
}

static void test_refusals_name_the_field(void **state) {
    expect_error("tasks", "[\"gsm8k\", \"tweet\"]", "tasks[1]: unknown task \"tweet\"; known: ");
    expect_error("tasks", "[\"gsm8k\", \"tweet\"]", "tweet_emotion");
    expect_error("tasks", "[]", "tasks: must be a non-empty list");
    expect_error("tasks", "[\"svamp\", \"svamp\"]", "tasks[1]: \"svamp\" is listed twice");
    expect_error("settings", "[\"one_shot\"]", "settings[0]: unknown setting \"one_shot\"");
    expect_error("seeds", "[0, -1]", "seeds[1]: must be an integer >= 0");
    expect_error("seeds", "[3, 3]", "seeds[1]: 3 is listed twice (first at seeds[0])");
    expect_error("loops", "0", "loops: must be an integer in [1, 100]");
    expect_error("targets", "[{\"name\": \"a\", \"base_url\": \"ftp://x\", \"model\": \"m\"}]",
                 "targets[0].base_url: \"ftp://x\" must start with http:// or https://");
    expect_error("targets",
                 "[{\"name\": \"a\", \"base_url\": \"http://x\", \"model\": \"m\", \"api_key\": "
                 "\"sk-1\"}]",
                 "targets[0].api_key: keys are never stored");
    expect_error("targets", "[{\"name\": \"a b\", \"base_url\": \"http://x\", \"model\": \"m\"}]",
                 "targets[0].name");
    expect_error("targets", "[{\"name\": \"a\", \"base_url\": \"http://x\"}]",
                 "targets[0].model: missing");
    expect_error("targets",
                 "[{\"name\": \"a\", \"base_url\": \"http://x\", \"model\": \"m\", "
                 "\"max_inflight\": 0}]",
                 "targets[0].max_inflight: must be an integer in [1, 4096]");
    expect_error("targets",
                 "[{\"name\": \"a\", \"base_url\": \"http://x\", \"model\": \"m\", "
                 "\"max_response_bytes\": 10}]",
                 "targets[0].max_response_bytes: must be an integer in [1024, 1073741824]");
    expect_error("targets",
                 "[{\"name\": \"a\", \"base_url\": \"https://x\", \"model\": \"m\", "
                 "\"ca_file\": \"\"}]",
                 "targets[0].ca_file: must be a non-empty string");
    expect_error("hyper", "{\"lr_frist\": 0.1}", "hyper.lr_frist: unknown key; known: ");
    expect_error("hyper", "{\"top_p\": 1.5}", "hyper.top_p: must be a number in [0, 1]");
    expect_error("policy", "{\"size\": \"huge\"}", "policy.size: unknown size \"huge\"");
    expect_error("policy", "{\"vocab\": \"tweets\"}", "policy.vocab: unknown \"tweets\"");
    /* GPT-2's pretrained rows are the point of "pretrained": no subset of them. */
    expect_error("policy", "{\"init\": \"pretrained\", \"vocab\": \"d0\"}",
                 "policy.vocab: \"d0\" needs \"init\": \"scratch\"");
    expect_error("policy", "{\"init\": \"scratch\", \"weights\": \"/models/gpt2\"}",
                 "policy.weights: only read with \"init\": \"pretrained\"");
    expect_error("policy", "{\"init\": \"pretrained\", \"weights\": \"\"}",
                 "policy.weights: must be a non-empty string");
    expect_error("d0", "{\"source\": \"magic\"}", "d0.source: unknown source \"magic\"");
    expect_error("d0", "{\"source\": \"build\", \"collections\": [\"mine\"]}",
                 "d0.collections[0]: unknown collection");
    /* The folder is low_perplexity_prompts/<model>: the bare name has no file behind it. */
    expect_error("d0",
                 "{\"source\": \"build\", \"collections\": [\"instructeval/low_perplexity\"]}",
                 "d0.collections[0]: unknown collection");
    expect_error("d0",
                 "{\"source\": \"build\", \"collections\": "
                 "[\"instructeval/low_perplexity_prompts/gpt5\"]}",
                 "d0.collections[0]: unknown collection");
    expect_error("collect", "{\"draw\": \"random\"}",
                 "collect.draw: unknown rule \"random\"; known: independent, exhaustive");
    expect_error("baselines",
                 "[{\"name\": \"a\", \"prompt\": \"x\"}, {\"name\": \"a\", "
                 "\"prompt\": \"y\"}]",
                 "baselines[1].name: \"a\" is listed twice");
    expect_error("baselines", "[{\"name\": \"best_single\", \"prompt\": \"x\"}]",
                 "baselines[0].name: \"best_single\" is chosen by qpo itself");
    expect_error("hyper", "{\"select\": \"best\"}",
                 "hyper.select: unknown \"best\"; known: heldout, last");
    expect_error("hyper", "{\"heldout\": 0}",
                 "hyper.heldout: must be above 0 when hyper.select is \"heldout\"");
    expect_error("oracle", "1", "oracle: must be true or false");
    expect_error("reward", "{\"avg_acc_weight\": -1}",
                 "reward.avg_acc_weight: must be a number in [0, 100]");
    expect_error("reward", "{\"avg_acc_weight\": 101}",
                 "reward.avg_acc_weight: must be a number in [0, 100]");
    expect_error("reward", "{\"avg_acc_weight\": \"0\"}",
                 "reward.avg_acc_weight: must be a number in [0, 100]");
    expect_error("reward", "{\"avg_acc\": 0}",
                 "reward.avg_acc: unknown key; known: avg_acc_weight");
    expect_error("reward", "[0]", "reward: must be an object");
    expect_error("test", "{\"shards\": 0}", "test.shards: must be an integer in [1, 1000]");
    expect_error("colect", "{}", "colect: unknown key; known: ");
}

static void test_shipped_examples_are_valid(void **state) {
    DIR *d = opendir(QPO_SOURCE_DIR "/config/experiments");
    assert_non_null(d);
    struct dirent *e;
    int n = 0;
    while ((e = readdir(d))) {
        if (!strstr(e->d_name, ".json"))
            continue;
        char path[1024];
        snprintf(path, sizeof(path), "%s/config/experiments/%s", QPO_SOURCE_DIR, e->d_name);
        qpo_err err = {0};
        json_t *cfg = qpo_config_load_file(path, &err);
        json_t *r = cfg ? qpo_config_resolve(cfg, &err) : NULL;
        if (!r)
            fail_msg("%s: %s", e->d_name, err.msg);
        /* The paper configs start where the authors start, and say so. */
        const char *init = json_string_value(json_object_get(json_object_get(r, "policy"), "init"));
        const char *desc = json_string_value(json_object_get(r, "description"));
        if (strcmp(e->d_name, "demo.json") &&
            (strcmp(init, "pretrained") || !desc || !strstr(desc, "pretrained GPT-2")))
            fail_msg("%s: a paper config starts from pretrained GPT-2 and says so", e->d_name);
        json_decref(r);
        json_decref(cfg);
        n++;
    }
    closedir(d);
    assert_true(n >= 9); /* one per paper task and the demo */
}

/* bench/qpo_vs_best_single.sh submits these through qpo demo: a config error would surface
 * only minutes into a benchmark run. */
static void test_bench_configs_are_valid(void **state) {
    static const char *const cases[] = {"tweet_zero", "tweet_few", "svamp", "gsm8k"};
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        char path[1024];
        snprintf(path, sizeof(path), "%s/bench/configs/%s.json", QPO_SOURCE_DIR, cases[i]);
        qpo_err err = {0};
        json_t *cfg = qpo_config_load_file(path, &err);
        json_t *r = cfg ? qpo_config_resolve(cfg, &err) : NULL;
        if (!r)
            fail_msg("%s: %s", path, err.msg);
        assert_true(json_is_true(json_object_get(r, "oracle")));
        json_decref(r);
        json_decref(cfg);
    }
}

static void test_unparsable_file_names_line(void **state) {
    char path[] = "/tmp/qpo-cfg-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    FILE *f = fdopen(fd, "w");
    fputs("{\n  \"tasks\": [\"svamp\"],\n  \"seeds\": [0,]\n}\n", f);
    fclose(f);
    qpo_err err = {0};
    assert_null(qpo_config_load_file(path, &err));
    assert_int_equal(err.code, QPO_EXIT_USAGE);
    char where[64];
    snprintf(where, sizeof(where), "%s:3:", path);
    assert_non_null(strstr(err.msg, where));
    unlink(path);
}

/* A built D_0 is shared by the seeds of (task, setting, target): one d0 job, both runs'
 * first train depending on it, and NLP tasks get InstructEval's collections only. */
static void test_d0_build_is_shared_by_seeds(void **state) {
    json_t *cfg = with("d0", "{\"source\": \"build\", \"collections\": [\"instructeval/manual\","
                             " \"prompt_oirl\"]}");
    qpo_err err = {0};
    json_t *r = qpo_config_resolve(cfg, &err);
    assert_non_null(r);
    qpo_plan_run runs[] = {{11, "tweet_emotion", "few_shot", "t1", 0},
                           {12, "tweet_emotion", "few_shot", "t1", 1}};
    qpo_plan plan = {0};
    assert_int_equal(qpo_plan_build(5, r, runs, 2, &plan, &err), 0);
    size_t d0 = plan.n, nd0 = 0;
    for (size_t i = 0; i < plan.n; i++)
        if (!strcmp(plan.jobs[i].kind, "d0")) {
            d0 = i;
            nd0++;
        }
    assert_int_equal(nd0, 1);
    assert_string_equal(plan.jobs[d0].key, "exp:5:d0:tweet_emotion:few_shot:t1");
    json_t *cols = json_object_get(plan.jobs[d0].payload, "collections");
    assert_int_equal(json_array_size(cols), 1);
    assert_string_equal(json_string_value(json_array_get(cols, 0)), "instructeval/manual");
    int trains_on_d0 = 0;
    for (size_t i = 0; i < plan.n; i++)
        if (!strcmp(plan.jobs[i].kind, "train") && plan.jobs[i].nparents == 1 &&
            plan.jobs[i].parents[0] == d0)
            trains_on_d0++;
    assert_int_equal(trains_on_d0, 2);
    qpo_plan_free(&plan);
    json_decref(r);
    json_decref(cfg);
}

/* n seeds 0..n-1, then `dup` again when dup >= 0. */
static json_t *seeds(size_t n, long long dup) {
    json_t *a = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(a, json_integer((json_int_t)i));
    if (dup >= 0)
        json_array_append_new(a, json_integer(dup));
    return a;
}

static const char *resolve_error(json_t *cfg, qpo_err *err) {
    json_t *r = qpo_config_resolve(cfg, err);
    if (r)
        fail_msg("accepted");
    assert_int_equal(err->code, QPO_EXIT_USAGE);
    return err->msg;
}

/* 20,000 seeds used to be planned into 595k jobs and 100k seeds hung qpo submit in a
 * quadratic duplicate check: the lists are bounded by limits the config can raise, and the
 * duplicate checks are linear (100k seeds with the limit raised answer at once). */
static void test_limits_bound_the_lists(void **state) {
    json_t *cfg = with(NULL, NULL);
    qpo_err err = {0};
    json_object_set_new(cfg, "seeds", seeds(100000, -1));
    assert_string_equal(resolve_error(cfg, &err), "seeds: 100000 seeds is more than "
                                                  "limits.max_seeds (1000); raise it in the "
                                                  "config if meant");
    json_object_set_new(cfg, "limits",
                        json_pack("{sisi}", "max_seeds", 200000, "max_runs", 200000));
    json_object_set_new(cfg, "seeds", seeds(100000, 99998));
    assert_string_equal(resolve_error(cfg, &err),
                        "seeds[100000]: 99998 is listed twice (first at seeds[99998])");
    json_object_set_new(cfg, "seeds", seeds(100000, -1));
    json_t *r = qpo_config_resolve(cfg, &err);
    assert_non_null(r);
    assert_int_equal(json_array_size(json_object_get(r, "seeds")), 100000);
    json_decref(r);
    json_decref(cfg);

    cfg = with("tasks", "[\"svamp\", \"gsm8k\"]");
    json_object_set_new(cfg, "settings", json_pack("[ss]", "zero_shot", "few_shot"));
    json_object_set_new(cfg, "seeds", seeds(300, -1));
    assert_string_equal(resolve_error(cfg, &err),
                        "tasks x settings x seeds x targets: 1200 runs is more than "
                        "limits.max_runs (1000); raise it in the config if meant");
    json_object_set_new(cfg, "limits", json_pack("{si}", "max_runs", 1200));
    r = qpo_config_resolve(cfg, &err);
    assert_non_null(r);
    assert_int_equal(json_integer_value(json_object_get(json_object_get(r, "limits"), "max_runs")),
                     1200);
    assert_int_equal(json_integer_value(json_object_get(json_object_get(r, "limits"), "max_seeds")),
                     QPO_LIMIT_SEEDS);
    json_decref(r);
    json_decref(cfg);

    cfg = with(NULL, NULL);
    json_t *b = json_array();
    for (int i = 0; i <= QPO_LIMIT_BASELINES; i++) {
        char name[16];
        snprintf(name, sizeof name, "b%d", i);
        json_array_append_new(b, json_pack("{ssss}", "name", name, "prompt", ""));
    }
    json_object_set_new(cfg, "baselines", b);
    assert_non_null(strstr(resolve_error(cfg, &err), "baselines: 101 baselines is more than "
                                                     "limits.max_baselines (100)"));
    json_decref(cfg);
    expect_error("limits", "{\"max_jobs\": 5}", "limits.max_jobs: unknown key; known: ");
    expect_error("limits", "{\"max_seeds\": 0}", "limits.max_seeds: must be an integer in");
}

static char *temp_file(const char *text, size_t pad) {
    char *path = strdup("/tmp/qpo-cfg-XXXXXX");
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    FILE *f = fdopen(fd, "w");
    fputs(text, f);
    for (size_t i = 0; i < pad; i++)
        fputc(' ', f);
    fclose(f);
    return path;
}

/* A config file is refused unparsed past QPO_CONFIG_MAX_BYTES (a flag raises it), and a
 * device that never ends (/dev/zero) stops at the same cap. */
static void test_config_size_is_bounded(void **state) {
    char *path = temp_file(base_config, (size_t)QPO_CONFIG_MAX_BYTES);
    qpo_err err = {0};
    assert_null(qpo_config_load_file(path, &err));
    assert_int_equal(err.code, QPO_EXIT_USAGE);
    char want[256];
    snprintf(want, sizeof want, "%s: the config file is larger than %lld bytes", path,
             QPO_CONFIG_MAX_BYTES);
    assert_string_equal(err.msg, want);
    assert_non_null(strstr(err.hint, "--max-config-bytes"));
    json_t *cfg = qpo_config_load_file_max(path, 2 * QPO_CONFIG_MAX_BYTES, &err);
    assert_non_null(cfg);
    json_decref(cfg);
    unlink(path);
    free(path);
    qpo_err zero = {0};
    assert_null(qpo_config_load_file_max("/dev/zero", 4096, &zero));
    assert_int_equal(zero.code, QPO_EXIT_USAGE);
    assert_non_null(strstr(zero.msg, "/dev/zero"));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults_are_the_recipe),
        cmocka_unit_test(test_reward_weight_is_kept),
        cmocka_unit_test(test_refusals_name_the_field),
        cmocka_unit_test(test_shipped_examples_are_valid),
        cmocka_unit_test(test_bench_configs_are_valid),
        cmocka_unit_test(test_unparsable_file_names_line),
        cmocka_unit_test(test_d0_build_is_shared_by_seeds),
        cmocka_unit_test(test_limits_bound_the_lists),
        cmocka_unit_test(test_config_size_is_bounded),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
