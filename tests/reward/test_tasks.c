/* Task rendering, math answers and reward formulas against the recipe's own examples and
 * hand-computed values (docs/qpo-recipe.md sections 4-5), and the math extractor against every
 * gold answer of the shared GSM8K and SVAMP files. */
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

#include "pgtest.h"
#include "reward_formula.h"
#include "tasks.h"

/* cmocka's float assert is single precision; rewards are compared in double. */
#define assert_double_equal(a, b, eps) assert_near((a), (b), (eps), #a)
static void assert_near(double got, double want, double eps, const char *what) {
    if (!(fabs(got - want) <= eps)) {
        fail_msg("%s = %.17g, expected %.17g", what, got, want);
    }
}

static json_t *text_item(const char *text) {
    return json_pack("{s:s}", "text", text);
}

static void test_tweet_eval_rendering_is_the_recipes(void **state) {
    (void)state;
    const qpo_task *t = qpo_task_find("tweet_emotion");
    assert_non_null(t);
    json_t *d1 = text_item("so sad"), *d2 = text_item("grr"), *q = text_item("I am happy");
    qpo_task_example demos[] = {{d1, 3}, {d2, 0}};
    qpo_err err = {0};
    size_t ctx_len = 0;

    char *few = qpo_task_render_scoring(t, "Classify the tweet.", demos, 2, q, 1, &ctx_len, &err);
    assert_non_null(few);
    assert_string_equal(few, "Classify the tweet.\n\nTweet: so sad\nEmotion: Sadness\n\nTweet: "
                             "grr\nEmotion: Anger\n\nTweet: I am happy\nEmotion: Joy");
    assert_string_equal(few + ctx_len, " Joy");
    assert_memory_equal(few + ctx_len - 8, "Emotion:", 8);

    char *zero = qpo_task_render_scoring(t, "Classify the tweet.", NULL, 0, q, 1, &ctx_len, &err);
    assert_string_equal(zero, "Classify the tweet.\n\nTweet: I am happy\nEmotion: Joy");
    char *context = qpo_task_render_context(t, "Classify the tweet.", NULL, 0, q, &err);
    assert_string_equal(context, "Classify the tweet.\n\nTweet: I am happy\nEmotion:");
    assert_int_equal(ctx_len, strlen(context));

    /* InstructEval's no_instruction collection: no leading blank paragraph. */
    char *bare = qpo_task_render_context(t, "", demos, 1, q, &err);
    assert_string_equal(bare, "Tweet: so sad\nEmotion: Sadness\n\nTweet: I am happy\nEmotion:");

    char *block = qpo_task_render_block(t, d2, "Anger", &err);
    assert_string_equal(block, "Tweet: grr\nEmotion: Anger");
    assert_non_null(strstr(few, block));

    free(few), free(zero), free(context), free(bare), free(block);
    json_decref(d1), json_decref(d2), json_decref(q);
}

static void test_two_field_and_multiple_choice_templates(void **state) {
    (void)state;
    qpo_err err = {0};
    const qpo_task *boolq = qpo_task_find("boolq");
    json_t *b = json_pack("{s:s,s:s}", "passage", "Water boils at 100 C.", "question",
                          "does water boil at 100 c");
    char *s = qpo_task_render_context(boolq, "Answer the question.", NULL, 0, b, &err);
    assert_string_equal(s, "Answer the question.\n\nPassage: Water boils at 100 C.\nQuestion: "
                           "does water boil at 100 c\nAnswer:");
    free(s);
    assert_string_equal(qpo_task_verbalizer(boolq, b, 0, &err), "True");
    s = qpo_task_query_text(boolq, b, &err);
    assert_string_equal(s, "[Question]: does water boil at 100 c [Passage]: Water boils at 100 C.");
    free(s);

    const qpo_task *hs = qpo_task_find("hellaswag");
    json_t *h = json_pack("{s:s,s:s,s:[s,s,s,s]}", "activity_label", "Baking", "ctx",
                          "She puts the tray in the oven", "choices", "and waits.", "and sings.",
                          "and leaves.", "and eats it.");
    size_t ctx_len;
    s = qpo_task_render_scoring(hs, "Pick the ending.", NULL, 0, h, 2, &ctx_len, &err);
    assert_string_equal(s, "Pick the ending.\n\nSentence: She puts the tray in the oven\nAnswer: "
                           "and leaves.");
    assert_string_equal(s + ctx_len, " and leaves.");
    free(s);
    s = qpo_task_query_text(hs, h, &err);
    assert_string_equal(s, "[Activity_Label]: Baking [Context]: She puts the tray in the oven");
    free(s);

    /* A multiple-choice item without its choices is a clear error, not a crash. */
    json_t *broken = json_pack("{s:s,s:s}", "activity_label", "x", "ctx", "y");
    assert_null(qpo_task_verbalizer(hs, broken, 0, &err));
    assert_true(qpo_err_is_set(&err));
    qpo_err_clear(&err);
    assert_null(qpo_task_verbalizer(boolq, b, 2, &err));
    qpo_err_clear(&err);
    assert_null(qpo_task_render_block(boolq, broken, NULL, &err));
    assert_non_null(strstr(err.detail, "passage"));
    json_decref(b), json_decref(h), json_decref(broken);

    size_t n;
    const qpo_task *all = qpo_task_all(&n);
    assert_int_equal(n, 8);
    int math = 0;
    for (size_t i = 0; i < n; i++) {
        math += all[i].type == QPO_TASK_MATH;
    }
    assert_int_equal(math, 2);
    assert_null(qpo_task_find("anli"));
}

/* The authors' cut (their sample_instances): words are text.split(" "), so every space starts a
 * word, empty ones too; more than 100 keeps the first 100 and appends "...". */
static void test_cut_to_100_words(void **state) {
    (void)state;
    char buf[2000] = "", want[2000] = "";
    for (int i = 0; i < 120; i++) {
        char w[16];
        snprintf(w, sizeof w, "%sw%d", i ? " " : "", i);
        strcat(buf, w);
        if (i < 100) {
            strcat(want, w);
        }
    }
    strcat(want, "...");
    char *cut = qpo_task_cut_words(buf, 100);
    assert_string_equal(cut, want);
    free(cut);
    /* 99 words and one double space: 100 words for Python, kept byte for byte. */
    char kept[2000];
    snprintf(kept, sizeof kept, "%s", buf);
    *strstr(kept, " w99 ") = '\0';
    char *at = strstr(kept, " w5 ");
    memmove(at + 1, at, strlen(at) + 1);
    cut = qpo_task_cut_words(kept, 100);
    assert_string_equal(cut, kept);
    free(cut);
    /* One more word makes 101: it goes, and the mark follows w98. */
    size_t before = strlen(kept);
    strcat(kept, " w99");
    cut = qpo_task_cut_words(kept, 100);
    assert_int_equal(strlen(cut), before + 3);
    assert_string_equal(cut + strlen(cut) - 6, "w98...");
    free(cut);
    /* Tabs and newlines are not separators for split(" "). */
    cut = qpo_task_cut_words("  kept  as\tit is ", 100);
    assert_string_equal(cut, "  kept  as\tit is ");
    free(cut);
}

static void test_demo_sets_are_seeded_and_distinct(void **state) {
    (void)state;
    size_t a[6], b[6], c[6];
    assert_int_equal(qpo_task_demo_indices(0, NULL, 0, 3257, 6, a), 0);
    assert_int_equal(qpo_task_demo_indices(0, NULL, 0, 3257, 6, b), 0);
    assert_int_equal(qpo_task_demo_indices(1, NULL, 0, 3257, 6, c), 0);
    assert_memory_equal(a, b, sizeof a);
    assert_memory_not_equal(a, c, sizeof a);
    for (int i = 0; i < 6; i++) {
        assert_true(a[i] < 3257);
        for (int j = 0; j < i; j++) {
            assert_true(a[i] != a[j]);
        }
    }
    assert_int_equal(qpo_task_demo_indices(0, NULL, 0, 5, 6, a), -1);
}

/* Like the authors' sample_instances: 6 demonstrations over 4 labels are 1, 1, 2, 2 (the extra
 * ones go to the last labels), whatever the labels' shares of the train split; seeded. */
static void test_demo_sets_are_class_balanced(void **state) {
    (void)state;
    enum { N = 400 };
    int labels[N];
    for (int i = 0; i < N; i++) {
        labels[i] = i < 300 ? 0 : 1 + i % 3; /* label 0 is 75% of the split */
    }
    for (uint64_t set = 0; set < 10; set++) {
        size_t a[6], b[6];
        assert_int_equal(qpo_task_demo_indices(set, labels, 4, N, 6, a), 0);
        assert_int_equal(qpo_task_demo_indices(set, labels, 4, N, 6, b), 0);
        assert_memory_equal(a, b, sizeof a);
        int count[4] = {0};
        for (int i = 0; i < 6; i++) {
            assert_true(a[i] < N);
            count[labels[a[i]]]++;
            for (int j = 0; j < i; j++) {
                assert_true(a[i] != a[j]);
            }
        }
        assert_int_equal(count[0], 1);
        assert_int_equal(count[1], 1);
        assert_int_equal(count[2], 2);
        assert_int_equal(count[3], 2);
    }
    /* A label with fewer items than its share: refused, not filled from other labels. */
    int few[8] = {0, 0, 0, 0, 0, 0, 1, 2};
    size_t out[6];
    assert_int_equal(qpo_task_demo_indices(0, few, 4, 8, 6, out), -1);
}

static void test_math_extraction_rules(void **state) {
    (void)state;
    char out[QPO_MATH_ANSWER_MAX];
    assert_int_equal(qpo_math_extract_answer("so 3 then Final Answer: 1,234.", out), 0);
    assert_string_equal(out, "1234");
    qpo_math_extract_answer("Final Answer: 12.00", out);
    assert_string_equal(out, "12");
    qpo_math_extract_answer("Final Answer: -7.50 dollars", out);
    assert_string_equal(out, "-7.50");
    qpo_math_extract_answer("it is 5-3 = 2", out);
    assert_string_equal(out, "2");
    qpo_math_extract_answer("from -3 to -4", out);
    assert_string_equal(out, "-4");
    assert_int_equal(qpo_math_extract_answer("no number here.", out), -1);
    assert_string_equal(out, "");

    assert_true(qpo_math_is_correct("7.5", "7.50"));
    assert_true(qpo_math_is_correct("18", "18"));
    assert_false(qpo_math_is_correct("", "0"));
    assert_false(qpo_math_is_correct("17", "18"));

    qpo_err err = {0};
    assert_int_equal(qpo_math_gold_gsm8k("48/2 = 24\n#### 1,072", out, &err), 0);
    assert_string_equal(out, "1072");
    assert_int_equal(qpo_math_gold_gsm8k("no marker 12", out, &err), -1);
    assert_true(qpo_err_is_set(&err));
    qpo_math_gold_number(51.0, out);
    assert_string_equal(out, "51");
    qpo_math_gold_number(0.5, out);
    assert_string_equal(out, "0.5");

    char *user = qpo_math_user_message("What is 2+2?", "Let's think step by step: ");
    assert_string_equal(user, "What is 2+2?\nLet's think step by step: ");
    free(user);
    assert_string_equal(QPO_MATH_SYSTEM_MESSAGE, "The final answer should be expressed as a "
                                                 "single number, prefixed by 'Final Answer: '.");
}

/* Every GSM8K solution ends with "#### gold": the extractor, run on the full solution as if it
 * were a model's completion, must read exactly the gold. */
static void test_extractor_reads_every_gsm8k_gold(void **state) {
    (void)state;
    const char *data = qpo_test_shared_data();
    if (!data) {
        skip(); /* ../shared/data absent: nothing to read the golds from */
    }
    char path[4096];
    snprintf(path, sizeof path, "%s/gsm8k/train.jsonl", data);
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    char *line = NULL;
    size_t cap = 0;
    int n = 0;
    while (getline(&line, &cap, f) > 0) {
        json_error_t jerr;
        json_t *row = json_loads(line, 0, &jerr);
        assert_non_null(row);
        const char *answer = json_string_value(json_object_get(row, "answer"));
        char gold[QPO_MATH_ANSWER_MAX], got[QPO_MATH_ANSWER_MAX];
        qpo_err err = {0};
        assert_int_equal(qpo_math_gold_gsm8k(answer, gold, &err), 0);
        /* The gold as written after the marker, commas removed, must be a plain number. */
        const char *marker = strstr(answer, "#### ") + 5;
        char written[QPO_MATH_ANSWER_MAX] = "";
        size_t j = 0;
        for (const char *p = marker; *p && *p != '\n' && j + 1 < sizeof written; p++) {
            if (*p != ',') {
                written[j++] = *p;
            }
        }
        written[j] = '\0';
        assert_true(qpo_math_is_correct(gold, written));
        assert_int_equal(qpo_math_extract_answer(answer, got), 0);
        if (strcmp(got, gold) != 0) {
            fail_msg("GSM8K line %d: extracted %s, gold %s", n + 1, got, gold);
        }
        assert_true(qpo_math_is_correct(got, gold));
        json_decref(row);
        n++;
    }
    free(line);
    fclose(f);
    assert_int_equal(n, 7473);
}

/* SVAMP's gold is a float; a model writing it out ("Final Answer: 51.0", or as our normal
 * form) must be read as correct, and a neighbour as wrong. */
static void test_extractor_reads_every_svamp_gold(void **state) {
    (void)state;
    const char *data = qpo_test_shared_data();
    if (!data) {
        skip(); /* ../shared/data absent */
    }
    char path[4096];
    snprintf(path, sizeof path, "%s/svamp/SVAMP.json", data);
    json_error_t jerr;
    json_t *all = json_load_file(path, 0, &jerr);
    assert_non_null(all);
    assert_int_equal(json_array_size(all), 1000);
    size_t i;
    json_t *row;
    json_array_foreach(all, i, row) {
        double answer = json_number_value(json_object_get(row, "Answer"));
        char gold[QPO_MATH_ANSWER_MAX], got[QPO_MATH_ANSWER_MAX], text[160];
        qpo_math_gold_number(answer, gold);
        snprintf(text, sizeof text, "Step 1: 3 + 4 = 7.\nFinal Answer: %s.", gold);
        assert_int_equal(qpo_math_extract_answer(text, got), 0);
        assert_string_equal(got, gold);
        assert_true(qpo_math_is_correct(got, gold));
        snprintf(text, sizeof text, "Final Answer: %.1f", answer);
        qpo_math_extract_answer(text, got);
        if (!qpo_math_is_correct(got, gold)) {
            fail_msg("SVAMP %s: %s read as %s, gold %s",
                     json_string_value(json_object_get(row, "ID")), text, got, gold);
        }
        snprintf(text, sizeof text, "Final Answer: %s", gold);
        char off_by_one[QPO_MATH_ANSWER_MAX];
        qpo_math_gold_number(answer + 1, off_by_one);
        assert_false(qpo_math_is_correct(off_by_one, gold));
    }
    json_decref(all);
}

static void test_reward_formulas_by_hand(void **state) {
    (void)state;
    /* Zero-shot tweet_emotion, gold Joy (1): nlls 2.0 1.25 3.0 2.5 -> prediction 1, correct;
     * batch accuracy 0.62 -> 10 + 6.2 - 1.25 = 14.95. */
    double nlls[] = {2.0, 1.25, 3.0, 2.5};
    assert_int_equal(qpo_reward_argmin(nlls, 4), 1);
    assert_double_equal(
        qpo_reward_raw(QPO_REWARD_ZERO_SHOT, 1, 0.62, nlls[1], QPO_REWARD_AVG_ACC_WEIGHT), 14.95,
        1e-12);
    /* Same item, gold Sadness (3): wrong, 0 + 6.2 - 2.5 = 3.7. */
    assert_double_equal(
        qpo_reward_raw(QPO_REWARD_ZERO_SHOT, 0, 0.62, nlls[3], QPO_REWARD_AVG_ACC_WEIGHT), 3.7,
        1e-12);
    /* Ties go to the lower label index. */
    double tie[] = {0.5, 0.5};
    assert_int_equal(qpo_reward_argmin(tie, 2), 0);
    assert_int_equal(qpo_reward_argmin(tie, 0), -1);
    /* Few-shot: 3 of 5 sets right, batch accuracy 0.48 -> 10 * (0.6 + 0.48) = 10.8. */
    assert_double_equal(
        qpo_reward_raw(QPO_REWARD_FEW_SHOT, 3.0 / 5.0, 0.48, 99, QPO_REWARD_AVG_ACC_WEIGHT), 10.8,
        1e-12);
    /* Math: correct, batch accuracy 0.35, completion NLL 0.42 -> 10 + 3.5 - 0.42 = 13.08. */
    assert_double_equal(qpo_reward_raw(QPO_REWARD_MATH, 1, 0.35, 0.42, QPO_REWARD_AVG_ACC_WEIGHT),
                        13.08, 1e-12);
    assert_double_equal(qpo_reward_raw(QPO_REWARD_MATH, 0, 0.35, 0.42, QPO_REWARD_AVG_ACC_WEIGHT),
                        3.08, 1e-12);
    /* reward.avg_acc_weight w replaces the 10 on avg_acc only: w = 0 leaves the per-query
     * terms (10 - 1.25; 10 * 0.6; 10 - 0.42), w = 2.5 adds 2.5 * avg_acc to them. */
    assert_double_equal(qpo_reward_raw(QPO_REWARD_ZERO_SHOT, 1, 0.62, nlls[1], 0), 8.75, 1e-12);
    assert_double_equal(qpo_reward_raw(QPO_REWARD_ZERO_SHOT, 0, 0.62, nlls[3], 2.5), -0.95, 1e-12);
    assert_double_equal(qpo_reward_raw(QPO_REWARD_FEW_SHOT, 3.0 / 5.0, 0.48, 99, 0), 6.0, 1e-12);
    assert_double_equal(qpo_reward_raw(QPO_REWARD_MATH, 1, 0.35, 0.42, 0), 9.58, 1e-12);
    assert_double_equal(qpo_reward_raw(QPO_REWARD_MATH, 1, 0.35, 0.42, 100), 44.58, 1e-12);
    /* Normalised with D_0's range [-2, 18]: 13.08 -> 75.4. */
    assert_double_equal(qpo_reward_normalise(13.08, -2.0, 18.0), 75.4, 1e-12);
    assert_double_equal(qpo_reward_normalise(-2.0, -2.0, 18.0), 0.0, 1e-12);
    assert_double_equal(qpo_reward_normalise(5.0, 5.0, 5.0), 100.0, 1e-12);
    assert_double_equal(qpo_reward_normalise(4.0, 5.0, 5.0), 0.0, 1e-12);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_tweet_eval_rendering_is_the_recipes),
        cmocka_unit_test(test_two_field_and_multiple_choice_templates),
        cmocka_unit_test(test_cut_to_100_words),
        cmocka_unit_test(test_demo_sets_are_seeded_and_distinct),
        cmocka_unit_test(test_demo_sets_are_class_balanced),
        cmocka_unit_test(test_math_extraction_rules),
        cmocka_unit_test(test_extractor_reads_every_gsm8k_gold),
        cmocka_unit_test(test_extractor_reads_every_svamp_gold),
        cmocka_unit_test(test_reward_formulas_by_hand),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
