/* The sim in-process: its tokenizer, reading rendered requests back, the model's logprobs as
 * the API reports them, math answers, unknown queries, error shapes and the fault schedule.
 * No data files needed: items are added by hand. */
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

#include "api.h"
#include "faults.h"
#include "model.h"
#include "parse.h"
#include "tokens.h"

static sim_data data;
static sim_api api = {.data = &data, .model = "qpo-sim"};

static void add(const char *task, json_t *fields, int label, const char *answer) {
    qpo_err err = {0};
    assert_int_equal(sim_data_add(&data, qpo_task_find(task), fields, label, answer, &err), 0);
}

static int setup(void **state) {
    add("tweet_emotion", json_pack("{s:s}", "text", "so  sad\ttoday, nothing works"), 3, NULL);
    add("tweet_emotion", json_pack("{s:s}", "text", "grr why is the bus late again"), 0, NULL);
    add("tweet_emotion", json_pack("{s:s}", "text", "café ☕ with friends, lovely"), 1, NULL);
    add("boolq",
        json_pack("{s:s,s:s}", "passage", "Water boils at 100 C at sea level.", "question",
                  "does water boil at 100 c"),
        0, NULL);
    add("hellaswag",
        json_pack("{s:s,s:s,s:[ssss]}", "activity_label", "Cooking", "ctx",
                  "A man cracks eggs into a bowl. He", "choices", "whisks them.", "sings loudly.",
                  "paints the bowl.", "flies away."),
        0, NULL);
    add("gsm8k", json_pack("{s:s}", "question", "Tom has 3 apples and buys 4 more. How many?"), -1,
        "7");
    qpo_err err = {0};
    assert_int_equal(sim_data_finish(&data, &err), 0);
    return 0;
}

static int teardown(void **state) {
    sim_data_free(&data);
    return 0;
}

static void test_tokens_and_codepoint_offsets(void **state) {
    const char *t = "Tweet: café ☕\nEmotion: Joy  ";
    sim_tokens toks = {0};
    assert_int_equal(sim_tokenize(t, strlen(t), 0, 0, &toks), 0);
    const char *want[] = {"Tweet", ":", " café", " ☕", "\n", "Emotion", ":", " Joy", "  "};
    const unsigned cps[] = {0, 5, 6, 11, 13, 14, 21, 22, 26};
    assert_int_equal(toks.n, 9);
    for (size_t i = 0; i < toks.n; i++) {
        assert_int_equal(toks.v[i].len, strlen(want[i]));
        assert_memory_equal(t + toks.v[i].start, want[i], strlen(want[i]));
        assert_int_equal(toks.v[i].cp_offset, cps[i]);
    }
    sim_tokens_free(&toks);
    /* Long words split into 12-byte pieces, never inside a UTF-8 character. */
    const char *w = " aaaaaaaaaaaé";
    assert_int_equal(sim_tokenize(w, strlen(w), 0, 0, &toks), 0);
    assert_int_equal(toks.n, 1);
    assert_int_equal(toks.v[0].len, strlen(w));
    sim_tokens_free(&toks);
    assert_int_equal(sim_count_tokens("abcdefghijklmnopq", 17), 2);
}

static char *render(const char *task, int item, const char *instruction, int n_demos, int k,
                    size_t *ctx_len) {
    qpo_err err = {0};
    qpo_task_example demos[2] = {{data.items[1].fields, 0}, {data.items[0].fields, 3}};
    char *text = qpo_task_render_scoring(qpo_task_find(task), instruction, demos, n_demos,
                                         data.items[item].fields, k, ctx_len, &err);
    assert_non_null(text);
    return text;
}

static void test_parse_finds_item_prompt_and_demos(void **state) {
    const char *instructions[] = {"Classify the tweet.", "", "Two paragraphs.\n\nOf instruction."};
    for (int i = 0; i < 3; i++)
        for (int n_demos = 0; n_demos <= 2; n_demos++) {
            size_t ctx_len;
            char *text = render("tweet_emotion", 2, instructions[i], n_demos, 2, &ctx_len);
            sim_label_req r = {0};
            assert_int_equal(sim_parse_label(&data, text, strlen(text), &r), 0);
            assert_ptr_equal(r.item, &data.items[2]);
            assert_int_equal(r.ctx_len, ctx_len);
            assert_int_equal(r.k, 2);
            assert_int_equal(r.gold, 1);
            assert_int_equal(r.pair.n_demos, n_demos);
            assert_int_equal(r.pair.prompt_len, strlen(instructions[i]));
            assert_memory_equal(r.pair.prompt, instructions[i], r.pair.prompt_len);
            free(text);
        }
    /* A two-field task and a multiple-choice task whose verbalizers are the item's choices. */
    size_t ctx_len;
    char *text = render("boolq", 3, "Answer the question.", 0, 1, &ctx_len);
    sim_label_req r = {0};
    assert_int_equal(sim_parse_label(&data, text, strlen(text), &r), 0);
    assert_ptr_equal(r.item, &data.items[3]);
    assert_int_equal(r.k, 1);
    free(text);
    text = render("hellaswag", 4, "Pick the ending.", 0, 2, &ctx_len);
    memset(&r, 0, sizeof(r));
    assert_int_equal(sim_parse_label(&data, text, strlen(text), &r), 0);
    assert_ptr_equal(r.item, &data.items[4]);
    assert_int_equal(r.n_labels, 4);
    assert_int_equal(r.k, 2);
    free(text);
}

/* Few-shot: each demonstration set is its own draw of the noise, so acc_q over 5 sets (the
 * recipe's few-shot reward) takes values between 0 and 1, not only the ends. */
static void test_demonstration_sets_vary_the_answer(void **state) {
    qpo_err err = {0};
    const qpo_task *task = qpo_task_find("tweet_emotion");
    int varied = 0;
    for (int p = 0; p < 20 && !varied; p++) {
        char instruction[64];
        snprintf(instruction, sizeof(instruction), "Instruction %d: name the emotion.", p);
        int first = -1;
        for (int set = 0; set < 5; set++) {
            qpo_task_example demos[2] = {{data.items[set % 2].fields, set % 2 ? 0 : 3},
                                         {data.items[(set + 1) % 2].fields, set % 2 ? 3 : 0}};
            size_t ctx_len;
            char *text = qpo_task_render_scoring(task, instruction, demos, 1 + set / 3,
                                                 data.items[2].fields, 0, &ctx_len, &err);
            assert_non_null(text);
            sim_label_req r = {0};
            assert_int_equal(sim_parse_label(&data, text, strlen(text), &r), 0);
            assert_int_equal(r.pair.n_demos, 1 + set / 3);
            double L[4];
            sim_label_logprobs(&r.pair, r.gold, r.n_labels, r.verbalizers, L);
            int best = 0;
            for (int k = 1; k < 4; k++)
                best = L[k] > L[best] ? k : best;
            varied |= first >= 0 && best != first;
            first = first < 0 ? best : first;
            free(text);
        }
    }
    assert_true(varied);
}

static void test_unknown_texts(void **state) {
    const char *t = "Classify the tweet.\n\nTweet: never seen before\nEmotion: Joy";
    sim_label_req r = {0};
    assert_int_equal(sim_parse_label(&data, t, strlen(t), &r), 0);
    assert_null(r.item);
    assert_ptr_equal(r.task, qpo_task_find("tweet_emotion"));
    assert_true(r.gold >= 0 && r.gold < 4);
    assert_int_equal(r.k, 1);
    memset(&r, 0, sizeof(r));
    assert_int_equal(sim_parse_label(&data, "just some text", 14, &r), -1);
}

static json_t *call(const char *path, json_t *req, int want_status) {
    char *s = json_dumps(req, JSON_COMPACT);
    json_decref(req);
    sim_reply rep;
    sim_api_handle(&api, "POST", path, NULL, s, strlen(s), &rep);
    free(s);
    assert_int_equal(rep.status, want_status);
    json_t *j = json_loadb(rep.body, rep.len, 0, NULL);
    assert_non_null(j);
    sim_reply_free(&rep);
    return j;
}

static json_t *score(const char *text, int logprobs) {
    return call("/v1/completions",
                json_pack("{s:s,s:s,s:b,s:i,s:i,s:f}", "model", "qpo-sim", "prompt", text, "echo",
                          1, "logprobs", logprobs, "max_tokens", 1, "temperature", 0.0),
                200);
}

/* The mean logprob the API reports for the continuation is the model's label logprob, and
 * the model's label distribution is a proper one (mass 0.7 on the labels). */
static void test_echo_logprobs_carry_the_model(void **state) {
    double total = 0, model[4];
    for (int k = 0; k < 4; k++) {
        size_t ctx_len;
        char *text = render("tweet_emotion", 2, "Which emotion, anger or joy?", 0, k, &ctx_len);
        sim_label_req r = {0};
        assert_int_equal(sim_parse_label(&data, text, strlen(text), &r), 0);
        r.pair.temperature = 0;
        sim_label_logprobs(&r.pair, r.gold, r.n_labels, r.verbalizers, model);
        json_t *j = score(text, 1);
        json_t *lp = json_object_get(json_array_get(json_object_get(j, "choices"), 0), "logprobs");
        json_t *offs = json_object_get(lp, "text_offset"),
               *lps = json_object_get(lp, "token_logprobs");
        double sum = 0;
        int n = 0;
        size_t ctx_cp = sim_codepoints(text, ctx_len), end_cp = sim_codepoints(text, strlen(text));
        for (size_t i = 0; i < json_array_size(offs); i++) {
            size_t off = (size_t)json_integer_value(json_array_get(offs, i));
            if (off >= ctx_cp && off < end_cp) {
                sum += json_number_value(json_array_get(lps, i));
                n++;
            }
        }
        assert_true(n >= 1);
        assert_float_equal(sum / n, model[k], 1e-5);
        total += exp(model[k]);
        json_t *again = score(text, 1);
        assert_true(json_equal(json_object_get(j, "choices"), json_object_get(again, "choices")));
        json_decref(again);
        json_decref(j);
        free(text);
    }
    assert_float_equal(total, 0.7, 1e-9);
}

static void test_generation_and_top_logprobs(void **state) {
    const char *ctx = "Classify the tweet.\n\nTweet: grr why is the bus late again\nEmotion:";
    json_t *j = call("/v1/completions",
                     json_pack("{s:s,s:s,s:i,s:f,s:i}", "model", "qpo-sim", "prompt", ctx,
                               "max_tokens", 3, "temperature", 0.0, "logprobs", 3),
                     200);
    json_t *c = json_array_get(json_object_get(j, "choices"), 0);
    const char *text = json_string_value(json_object_get(c, "text"));
    assert_true(!strcmp(text, " Anger\n\n") || !strcmp(text, " Joy\n\n") ||
                !strcmp(text, " Optimism\n\n") || !strcmp(text, " Sadness\n\n"));
    assert_string_equal(json_string_value(json_object_get(c, "finish_reason")), "stop");
    json_t *tops = json_object_get(json_object_get(c, "logprobs"), "top_logprobs");
    assert_int_equal(json_object_size(json_array_get(tops, 0)), 3);
    json_t *usage = json_object_get(j, "usage");
    assert_int_equal(json_integer_value(json_object_get(usage, "completion_tokens")), 3);
    json_decref(j);
}

static json_t *chat(const char *user, double temperature, long long seed) {
    return call("/v1/chat/completions",
                json_pack("{s:s,s:[{s:s,s:s},{s:s,s:s}],s:f,s:I,s:b}", "model", "qpo-sim",
                          "messages", "role", "system", "content", QPO_MATH_SYSTEM_MESSAGE, "role",
                          "user", "content", user, "temperature", temperature, "seed",
                          (json_int_t)seed, "logprobs", 1),
                200);
}

static const char *content_of(json_t *j) {
    return json_string_value(json_object_get(
        json_object_get(json_array_get(json_object_get(j, "choices"), 0), "message"), "content"));
}

/* Across many prompts the math answer is the gold for some and a slip for others, always
 * "Final Answer: N", and the answer's NLL is lower when it is right. The prompts share no
 * word: skill follows words, so prompts differing in one number would mostly agree. */
static void test_math_answers(void **state) {
    int right = 0, wrong = 0;
    double nll_right = 0, nll_wrong = 0;
    for (int p = 0; p < 40; p++) {
        char prompt[64];
        snprintf(prompt, sizeof(prompt), "Think%d it%d through%d.", p, p, p);
        char *user = qpo_math_user_message(
            json_string_value(json_object_get(data.items[5].fields, "question")), prompt);
        json_t *j = chat(user, 0, 0);
        free(user);
        char answer[QPO_MATH_ANSWER_MAX];
        assert_int_equal(qpo_math_extract_answer(content_of(j), answer), 0);
        assert_non_null(strstr(content_of(j), "\nFinal Answer: "));
        json_t *toks = json_object_get(
            json_object_get(json_array_get(json_object_get(j, "choices"), 0), "logprobs"),
            "content");
        double nll = 0;
        for (size_t i = 0; i < json_array_size(toks); i++)
            nll -= json_number_value(json_object_get(json_array_get(toks, i), "logprob"));
        nll /= (double)json_array_size(toks);
        if (qpo_math_is_correct(answer, "7")) {
            right++;
            nll_right += nll;
        } else {
            wrong++;
            nll_wrong += nll;
        }
        json_decref(j);
    }
    assert_true(right > 0 && wrong > 0);
    assert_true(nll_right / right < nll_wrong / wrong);
}

static void test_temperature_uses_the_seed(void **state) {
    const char *user = "Tom has 3 apples and buys 4 more. How many?\nSolve it.";
    int differs = 0;
    json_t *base = chat(user, 0, 0);
    for (int s = 1; s <= 30 && !differs; s++) {
        json_t *a = chat(user, 1.0, s), *b = chat(user, 1.0, s);
        assert_string_equal(content_of(a), content_of(b));
        differs = strcmp(content_of(a), content_of(base)) != 0;
        json_decref(a);
        json_decref(b);
    }
    assert_true(differs);
    json_decref(base);
}

static void expect_error(const char *method, const char *path, const char *body, int status,
                         const char *param) {
    sim_reply rep;
    sim_api_handle(&api, method, path, NULL, body, strlen(body), &rep);
    assert_int_equal(rep.status, status);
    json_t *j = json_loadb(rep.body, rep.len, 0, NULL);
    json_t *e = json_object_get(j, "error");
    assert_true(json_is_string(json_object_get(e, "message")));
    assert_true(json_is_string(json_object_get(e, "type")));
    if (param)
        assert_string_equal(json_string_value(json_object_get(e, "param")), param);
    json_decref(j);
    sim_reply_free(&rep);
}

static void test_errors_are_openai_shaped(void **state) {
    expect_error("POST", "/v1/completions", "{not json", 400, NULL);
    expect_error("POST", "/v1/completions", "{\"model\":\"other\",\"prompt\":\"x\"}", 404, "model");
    expect_error("POST", "/v1/completions", "{\"model\":\"qpo-sim\"}", 400, "prompt");
    expect_error("POST", "/v1/completions", "{\"model\":\"qpo-sim\",\"prompt\":[1,2]}", 400,
                 "prompt");
    expect_error("POST", "/v1/completions", "{\"model\":\"qpo-sim\",\"prompt\":\"x\",\"n\":2}", 400,
                 "n");
    expect_error("POST", "/v1/completions",
                 "{\"model\":\"qpo-sim\",\"prompt\":\"x\",\"stream\":true}", 400, "stream");
    expect_error("POST", "/v1/completions",
                 "{\"model\":\"qpo-sim\",\"prompt\":\"x\",\"temperature\":3}", 400, "temperature");
    expect_error("POST", "/v1/chat/completions",
                 "{\"model\":\"qpo-sim\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],"
                 "\"top_logprobs\":2}",
                 400, "top_logprobs");
    expect_error("POST", "/v1/chat/completions",
                 "{\"model\":\"qpo-sim\",\"messages\":[{\"role\":\"system\",\"content\":\"x\"}]}",
                 400, "messages");
    expect_error("GET", "/v1/completions", "", 405, NULL);
    expect_error("POST", "/v2/other", "", 404, NULL);
    sim_api keyed = api;
    keyed.api_key = "sk-right";
    sim_reply rep;
    sim_api_handle(&keyed, "GET", "/v1/models", "Bearer sk-wrong", "", 0, &rep);
    assert_int_equal(rep.status, 401);
    sim_reply_free(&rep);
    sim_api_handle(&keyed, "GET", "/v1/models", "Bearer sk-right", "", 0, &rep);
    assert_int_equal(rep.status, 200);
    sim_reply_free(&rep);
}

static void test_malformed_bodies_are_json_of_the_wrong_shape(void **state) {
    for (unsigned v = 0; v < 3; v++) {
        const char *paths[] = {"/v1/completions", "/v1/chat/completions"};
        for (int p = 0; p < 2; p++) {
            sim_reply rep;
            sim_api_malformed(paths[p], v, &rep);
            json_t *j = json_loadb(rep.body, rep.len, 0, NULL);
            assert_non_null(j);
            json_t *c0 = json_array_get(json_object_get(j, "choices"), 0);
            int valid =
                p == 0 ? json_is_string(json_object_get(c0, "text")) &&
                             json_is_array(
                                 json_object_get(json_object_get(c0, "logprobs"), "text_offset"))
                       : json_is_array(json_object_get(json_object_get(c0, "logprobs"), "content"));
            assert_false(valid);
            json_decref(j);
            sim_reply_free(&rep);
        }
    }
}

static void test_fault_schedule(void **state) {
    sim_faults f = {.drop_rate = 0.05,
                    .fail_rate = 0.3,
                    .truncate_rate = 0.1,
                    .malformed_rate = 0.15,
                    .fail_status = {503},
                    .n_fail_status = 1,
                    .seed = 42};
    qpo_err err = {0};
    assert_int_equal(sim_faults_check(&f, &err), 0);
    int count[5] = {0};
    enum { N = 20000 };
    for (uint64_t i = 0; i < N; i++) {
        unsigned v;
        count[sim_fault_for(&f, i, &v)]++;
    }
    const double rate[5] = {0.4, 0.05, 0.3, 0.1, 0.15};
    for (int k = 0; k < 5; k++)
        assert_true(fabs((double)count[k] / N - rate[k]) < 0.015);
    f.fail_rate = 0.8;
    assert_int_equal(sim_faults_check(&f, &err), -1);
    assert_int_equal(err.code, QPO_EXIT_USAGE);
    f.fail_rate = 0.1;
    f.fail_status[0] = 502;
    assert_int_equal(sim_faults_check(&f, &err), -1);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_tokens_and_codepoint_offsets),
        cmocka_unit_test(test_parse_finds_item_prompt_and_demos),
        cmocka_unit_test(test_demonstration_sets_vary_the_answer),
        cmocka_unit_test(test_unknown_texts),
        cmocka_unit_test(test_echo_logprobs_carry_the_model),
        cmocka_unit_test(test_generation_and_top_logprobs),
        cmocka_unit_test(test_math_answers),
        cmocka_unit_test(test_temperature_uses_the_seed),
        cmocka_unit_test(test_errors_are_openai_shaped),
        cmocka_unit_test(test_malformed_bodies_are_json_of_the_wrong_shape),
        cmocka_unit_test(test_fault_schedule),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
