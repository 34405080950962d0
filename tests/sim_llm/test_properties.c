/* The prompt-sensitivity properties of issue 4, measured on real data as qpo's reward workers
 * would see them (requests rendered by tasks.h, answers read back from the API's JSON):
 *   (a) different prompts are best for different queries: several prompts win a query group;
 *   (b) the best prompt is predictable from the query text: prompts chosen per group on half
 *       the items beat the best single prompt on the other half;
 *   (c) the best single prompt is at least 10 points below the per-query oracle.
 * TweetEval emotion (validation split) with InstructEval's prompts; GSM8K and SVAMP with
 * Prompt-OIRL's. Skips when ../shared/data is absent. The figures go to docs/sim-llm.md. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "eval.h"
#include "pgtest.h"
#include "source_prompts.h"

static sim_data data;
static char prompts_dir[600];

static int setup(void **state) {
    const char *shared = qpo_test_shared_data();
    if (!shared)
        return 0;
    qpo_err err = {0};
    if (sim_data_load_dir(&data, shared, &err) || sim_data_finish(&data, &err))
        return qpo_err_print(&err);
    snprintf(prompts_dir, sizeof(prompts_dir), "%s/prompts", shared);
    return 0;
}

static int teardown(void **state) {
    sim_data_free(&data);
    return 0;
}

/* Items of task in load order, from the first-th on. */
static size_t pick_items(const char *task, size_t first, size_t count, const sim_item **out) {
    size_t n = 0, seen = 0;
    for (size_t i = 0; i < data.n_items && n < count; i++)
        if (!strcmp(data.items[i].task->name, task) && seen++ >= first)
            out[n++] = &data.items[i];
    return n;
}

static void measure(const char *task, const char *const *collections, size_t first, size_t count) {
    if (!qpo_test_shared_data()) {
        print_message(
            "SKIP: ../shared/data is absent: prompt-sensitivity properties not measured\n");
        skip();
    }
    qpo_source_prompt *list = NULL;
    size_t np = 0;
    qpo_err err = {0};
    for (int c = 0; collections[c]; c++)
        if (qpo_source_prompts_load(prompts_dir, collections[c], task, &list, &np, &err))
            fail_msg("loading prompts: %s (%s)", err.msg, err.detail);
    const char **prompts = calloc(np, sizeof(*prompts));
    for (size_t i = 0; i < np; i++)
        prompts[i] = list[i].text;
    const sim_item **items = calloc(count, sizeof(*items));
    size_t nq = pick_items(task, first, count, items);
    assert_int_equal(nq, count);
    unsigned char *correct = calloc(np * nq, 1);
    sim_api api = {.data = &data, .model = "qpo-sim"};
    if (sim_eval_matrix(&api, prompts, np, items, nq, correct, &err))
        fail_msg("%s: %s", task, err.msg);
    sim_eval_summary s;
    sim_eval_summarize(correct, np, items, nq, &s);
    printf("%s: %zu items x %zu prompts: mean prompt %.3f, best single %.3f (\"%.60s\"), "
           "oracle %.3f; held-out: group policy %.3f vs best single %.3f; %d group winners\n",
           task, nq, np, s.mean_prompt, s.best_single, prompts[s.best_prompt], s.oracle,
           s.heldout_group_policy, s.heldout_best_single, s.distinct_group_winners);
    assert_true(s.distinct_group_winners >= 2);                          /* (a) */
    assert_true(s.heldout_group_policy >= s.heldout_best_single + 0.05); /* (b) */
    assert_true(s.oracle >= s.best_single + 0.10);                       /* (c) */
    assert_true(s.mean_prompt > 0.2 && s.mean_prompt < 0.8); /* neither trivial nor hopeless */
    free(correct);
    free(items);
    free(prompts);
    qpo_source_prompts_free(list, np);
}

static void test_tweet_emotion(void **state) {
    const char *collections[] = {"instructeval/ape",
                                 "instructeval/chat_gpt_prompts",
                                 "instructeval/generic_instruction",
                                 "instructeval/manual",
                                 "instructeval/no_instruction",
                                 "instructeval/rlprompt",
                                 "instructeval/low_perplexity_prompts/llama7b",
                                 NULL};
    /* The loader reads train (3257 tweets) then validation (374). */
    measure("tweet_emotion", collections, 3257, 374);
}

static void test_gsm8k(void **state) {
    const char *collections[] = {"prompt_oirl", NULL};
    measure("gsm8k", collections, 0, 300);
}

static void test_svamp(void **state) {
    const char *collections[] = {"prompt_oirl", NULL};
    measure("svamp", collections, 0, 300);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_tweet_emotion),
        cmocka_unit_test(test_gsm8k),
        cmocka_unit_test(test_svamp),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
