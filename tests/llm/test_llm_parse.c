/* The client's pure parts: bodies shaped as vLLM's and OpenAI's documentation shows them
 * (echoed completions, chat with logprobs), the continuation NLL on hand-computed cases, every
 * kind of bad body, status classes, Retry-After, backoff, the API key and target config. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "llm.h"
#include "llm_parse.h"

/* OpenAI legacy completions (davinci-002), echo: true, logprobs: 1, max_tokens: 1. The first
 * token has no logprob (nothing before it); the last is the one generated token. */
static const char *const openai_echo =
    "{\"id\":\"cmpl-7QmVI15qgYVllxK0FtxVGG6ywfzaq\",\"object\":\"text_completion\","
    "\"created\":1686648036,\"model\":\"davinci-002\",\"choices\":[{\"text\":"
    "\"Tweet: so sad\\nEmotion: Sadness\\n\\n\",\"index\":0,\"logprobs\":{"
    "\"tokens\":[\"Tweet\",\":\",\" so\",\" sad\",\"\\n\",\"Em\",\"otion\",\":\",\" Sad\","
    "\"ness\",\"\\n\\n\"],"
    "\"token_logprobs\":[null,-3.1,-6.2,-4.4,-1.9,-5.0,-0.01,-0.3,-2.5,-0.5,-0.8],"
    "\"top_logprobs\":[null,{\":\":-3.1},{\" I\":-2.2},{\" sad\":-4.4},{\"\\n\":-1.9},"
    "{\"Em\":-5.0},{\"otion\":-0.01},{\":\":-0.3},{\" Sad\":-2.5},{\"ness\":-0.5},"
    "{\"\\n\\n\":-0.8}],"
    "\"text_offset\":[0,5,6,9,13,14,16,21,22,26,30]},\"finish_reason\":\"length\"}],"
    "\"usage\":{\"prompt_tokens\":10,\"completion_tokens\":1,\"total_tokens\":11}}";

/* vLLM /v1/completions with echo for a Llama tokenizer: the BOS "<s>" is echoed with a null
 * logprob and counted into text_offset (offsets are running sums of decoded token lengths). */
static const char *const vllm_echo_bos =
    "{\"id\":\"cmpl-3f2a9c1e0b7d4e6f\",\"object\":\"text_completion\",\"created\":1718000000,"
    "\"model\":\"meta-llama/Llama-2-7b-hf\",\"choices\":[{\"index\":0,\"text\":"
    "\"Review: great film\\nSentiment: Positive\\n\",\"logprobs\":{"
    "\"text_offset\":[0,3,9,10,16,21,22,26,31,32,36,41],"
    "\"token_logprobs\":[null,-8.0,-1.2,-7.5,-3.0,-2.0,-4.0,-0.1,-0.05,-1.0,-0.2,-1.3],"
    "\"tokens\":[\"<s>\",\"Review\",\":\",\" great\",\" film\",\"\\n\",\"Sent\",\"iment\",\":\","
    "\" Pos\",\"itive\",\"\\n\"],"
    "\"top_logprobs\":[null,{\"Review\":-8.0},{\":\":-1.2},{\" great\":-7.5},{\" film\":-3.0},"
    "{\"\\n\":-2.0},{\"Sent\":-4.0},{\"iment\":-0.1},{\":\":-0.05},{\" Pos\":-1.0},"
    "{\"itive\":-0.2},{\"\\n\":-1.3}]},"
    "\"finish_reason\":\"length\",\"stop_reason\":null,\"prompt_logprobs\":null}],"
    "\"usage\":{\"prompt_tokens\":11,\"total_tokens\":12,\"completion_tokens\":1,"
    "\"prompt_tokens_details\":null}}";

/* vLLM, no BOS, a non-ASCII context: offsets count code points ("è" is two bytes). */
static const char *const vllm_echo_utf8 =
    "{\"id\":\"cmpl-a1\",\"object\":\"text_completion\",\"created\":1718000001,"
    "\"model\":\"Qwen/Qwen2-7B\",\"choices\":[{\"index\":0,\"text\":"
    "\"Tweet: tr\\u00e8s bien\\nEmotion: Joy!\",\"logprobs\":{"
    "\"text_offset\":[0,5,6,9,11,16,17,24,25,29],"
    "\"token_logprobs\":[null,-2.0,-3.0,-1.0,-2.5,-0.4,-3.3,-0.2,-0.7,-2.2],"
    "\"tokens\":[\"Tweet\",\":\",\" tr\",\"\\u00e8s\",\" bien\",\"\\n\",\"Emotion\",\":\","
    "\" Joy\",\"!\"],"
    "\"top_logprobs\":[null,{\":\":-2.0},{\" tr\":-3.0},{\"\\u00e8s\":-1.0},{\" bien\":-2.5},"
    "{\"\\n\":-0.4},{\"Emotion\":-3.3},{\":\":-0.2},{\" Joy\":-0.7},{\"!\":-2.2}]},"
    "\"finish_reason\":\"length\",\"stop_reason\":null,\"prompt_logprobs\":null}],"
    "\"usage\":{\"prompt_tokens\":9,\"total_tokens\":10,\"completion_tokens\":1}}";

/* OpenAI chat completion with logprobs: true (choices[0].logprobs.content[]). */
static const char *const openai_chat =
    "{\"id\":\"chatcmpl-9x\",\"object\":\"chat.completion\",\"created\":1702685778,"
    "\"model\":\"gpt-4o-mini-2024-07-18\",\"choices\":[{\"index\":0,\"message\":{\"role\":"
    "\"assistant\",\"content\":\"Final Answer: 12\",\"refusal\":null},\"logprobs\":{"
    "\"content\":[{\"token\":\"Final\",\"logprob\":-0.1,\"bytes\":[70,105,110,97,108],"
    "\"top_logprobs\":[]},{\"token\":\" Answer\",\"logprob\":-0.2,\"bytes\":[32,65,110,115,"
    "119,101,114],\"top_logprobs\":[]},{\"token\":\":\",\"logprob\":-0.3,\"bytes\":[58],"
    "\"top_logprobs\":[]},{\"token\":\" 12\",\"logprob\":-0.6,\"bytes\":[32,49,50],"
    "\"top_logprobs\":[]}],\"refusal\":null},\"finish_reason\":\"stop\"}],"
    "\"usage\":{\"prompt_tokens\":40,\"completion_tokens\":4,\"total_tokens\":44},"
    "\"system_fingerprint\":\"fp_6b68a8204b\"}";

/* vLLM chat completion with logprobs: same content[] shape, extra message fields. */
static const char *const vllm_chat =
    "{\"id\":\"chatcmpl-b2\",\"object\":\"chat.completion\",\"created\":1718000002,"
    "\"model\":\"meta-llama/Meta-Llama-3-8B-Instruct\",\"choices\":[{\"index\":0,\"message\":"
    "{\"role\":\"assistant\",\"reasoning_content\":null,\"content\":\"5\",\"tool_calls\":[]},"
    "\"logprobs\":{\"content\":[{\"token\":\"5\",\"logprob\":-0.0625,\"bytes\":[53],"
    "\"top_logprobs\":[{\"token\":\"5\",\"logprob\":-0.0625,\"bytes\":[53]}]}]},"
    "\"finish_reason\":\"stop\",\"stop_reason\":null}],"
    "\"usage\":{\"prompt_tokens\":30,\"total_tokens\":31,\"completion_tokens\":1}}";

static qpo_llm_parsed p;

static qpo_llm_status score(const char *body, const char *context, const char *cont) {
    char prompt[512];
    snprintf(prompt, sizeof prompt, "%s%s", context, cont);
    return qpo_llm_parse_completion(body, strlen(body), prompt, qpo_llm_utf8_len(context),
                                    qpo_llm_utf8_len(prompt), &p);
}

static void test_openai_echo(void **state) {
    assert_int_equal(score(openai_echo, "Tweet: so sad\nEmotion:", " Sadness"), QPO_LLM_OK);
    assert_int_equal(p.ntokens, 2);
    assert_string_equal(p.tokens[0], " Sad");
    assert_string_equal(p.tokens[1], "ness");
    assert_float_equal(p.logprobs[0], -2.5, 1e-12);
    assert_float_equal(p.mean_nll, 1.5, 1e-12); /* (2.5 + 0.5) / 2; "\n\n" is generated */
    assert_string_equal(p.text, "\n\n");
    assert_int_equal(p.prompt_tokens, 10);
    assert_int_equal(p.completion_tokens, 1);
    qpo_llm_parsed_free(&p);
    /* The whole sentence after "Tweet:" as continuation: tokens " so" .. "ness". */
    assert_int_equal(score(openai_echo, "Tweet:", " so sad\nEmotion: Sadness"), QPO_LLM_OK);
    assert_int_equal(p.ntokens, 8);
    assert_float_equal(p.mean_nll, (6.2 + 4.4 + 1.9 + 5.0 + 0.01 + 0.3 + 2.5 + 0.5) / 8, 1e-12);
    qpo_llm_parsed_free(&p);
}

static void test_vllm_echo_bos(void **state) {
    assert_int_equal(score(vllm_echo_bos, "Review: great film\nSentiment:", " Positive"),
                     QPO_LLM_OK);
    assert_int_equal(p.ntokens, 2);
    assert_string_equal(p.tokens[0], " Pos");
    assert_string_equal(p.tokens[1], "itive");
    assert_float_equal(p.mean_nll, 0.6, 1e-12); /* (1.0 + 0.2) / 2 */
    qpo_llm_parsed_free(&p);
}

static void test_vllm_echo_utf8_offsets(void **state) {
    assert_int_equal(score(vllm_echo_utf8, "Tweet: tr\xc3\xa8s bien\nEmotion:", " Joy"),
                     QPO_LLM_OK);
    assert_int_equal(p.ntokens, 1);
    assert_string_equal(p.tokens[0], " Joy");
    assert_float_equal(p.mean_nll, 0.7, 1e-12);
    assert_string_equal(p.text, "!");
    qpo_llm_parsed_free(&p);
}

static void test_empty_context_first_null(void **state) {
    const char *body = "{\"choices\":[{\"text\":\"Hello world.\",\"logprobs\":{\"tokens\":"
                       "[\"Hello\",\" world\",\".\"],\"token_logprobs\":[null,-2.0,-1.0],"
                       "\"text_offset\":[0,5,11]}}]}";
    assert_int_equal(score(body, "", "Hello world"), QPO_LLM_OK);
    assert_int_equal(p.ntokens, 2);
    assert_true(isnan(p.logprobs[0]));
    assert_float_equal(p.mean_nll, 2.0, 1e-12); /* the null first token carries no evidence */
    assert_int_equal(p.prompt_tokens, -1);      /* no usage object */
    qpo_llm_parsed_free(&p);
}

static void test_echo_ignored_is_span_error(void **state) {
    /* A server that accepts echo but returns logprobs for the generated token only. */
    const char *body = "{\"choices\":[{\"text\":\"\\n\",\"logprobs\":{\"tokens\":[\"\\n\"],"
                       "\"token_logprobs\":[-0.3],\"text_offset\":[30]}}]}";
    assert_int_equal(score(body, "Tweet: so sad\nEmotion:", " Sadness"), QPO_LLM_ERR_SPAN);
    assert_non_null(strstr(p.error, "echo"));
    assert_int_equal(p.ntokens, 0);
    qpo_llm_parsed_free(&p);
}

static void expect_completion_error(const char *body, qpo_llm_status want) {
    qpo_llm_status got = score(body, "Tweet: so sad\nEmotion:", " Sadness");
    if (got != want)
        fail_msg("body %.60s: want %s, got %s (%s)", body, qpo_llm_status_name(want),
                 qpo_llm_status_name(got), p.error);
    assert_true(p.error[0] != 0);
    assert_null(p.tokens);
    qpo_llm_parsed_free(&p);
}

static void test_bad_completion_bodies(void **state) {
    char truncated[4096];
    snprintf(truncated, sizeof truncated, "%.*s", (int)strlen(openai_echo) / 2, openai_echo);
    expect_completion_error("", QPO_LLM_ERR_MALFORMED);
    expect_completion_error("<html><body><h1>502 Bad Gateway</h1></body></html>",
                            QPO_LLM_ERR_MALFORMED);
    expect_completion_error(truncated, QPO_LLM_ERR_MALFORMED);
    expect_completion_error("[1,2,3]", QPO_LLM_ERR_SHAPE);
    expect_completion_error("{\"choices\":[]}", QPO_LLM_ERR_SHAPE);
    expect_completion_error("{\"choices\":\"none\"}", QPO_LLM_ERR_SHAPE);
    expect_completion_error("{\"choices\":[42]}", QPO_LLM_ERR_SHAPE);
    expect_completion_error("{\"object\":\"error\",\"message\":\"bad\"}", QPO_LLM_ERR_SHAPE);
    expect_completion_error("{\"choices\":[{\"text\":\"x\",\"logprobs\":null}]}",
                            QPO_LLM_ERR_NO_LOGPROBS);
    expect_completion_error("{\"choices\":[{\"text\":\"x\"}]}", QPO_LLM_ERR_NO_LOGPROBS);
    /* qpo sim-llm's malformed variants: wrong types are shape errors (retried). */
    expect_completion_error(
        "{\"choices\":[{\"index\":0,\"text\":42,\"finish_reason\":\"length\"}]}",
        QPO_LLM_ERR_SHAPE);
    expect_completion_error("{\"choices\":[{\"text\":\"x\",\"logprobs\":{\"tokens\":[\"x\"],"
                            "\"token_logprobs\":[\"-1.0\"],\"text_offset\":\"0\"}}]}",
                            QPO_LLM_ERR_SHAPE);
    expect_completion_error("{\"choices\":[{\"text\":\"x\",\"logprobs\":{\"tokens\":[\"a\"]}}]}",
                            QPO_LLM_ERR_NO_LOGPROBS);
    expect_completion_error(
        "{\"choices\":[{\"text\":\"x\",\"logprobs\":{\"tokens\":\"a\",\"token_logprobs\":"
        "[-1],\"text_offset\":[0]}}]}",
        QPO_LLM_ERR_SHAPE);
    expect_completion_error("{\"choices\":[{\"text\":\"x\",\"logprobs\":{\"tokens\":[\"a\",\"b\"],"
                            "\"token_logprobs\":[-1],\"text_offset\":[0,1]}}]}",
                            QPO_LLM_ERR_SHAPE);
    expect_completion_error(
        "{\"choices\":[{\"text\":\"x\",\"logprobs\":{\"tokens\":[\"Tweet\",\" x\"],"
        "\"token_logprobs\":[null,\"-1\"],\"text_offset\":[0,22]}}]}",
        QPO_LLM_ERR_SHAPE);
    expect_completion_error(
        "{\"choices\":[{\"text\":\"x\",\"logprobs\":{\"tokens\":[\"Tweet\",\" x\"],"
        "\"token_logprobs\":[null,-1],\"text_offset\":[0,22.5]}}]}",
        QPO_LLM_ERR_SHAPE);
    expect_completion_error(
        "{\"choices\":[{\"text\":\"x\",\"logprobs\":{\"tokens\":[\"Tweet\",\" x\"],"
        "\"token_logprobs\":[null,-1],\"text_offset\":[0,-4]}}]}",
        QPO_LLM_ERR_SHAPE);
    /* A null logprob inside the continuation (not the first token) cannot be scored. */
    expect_completion_error(
        "{\"choices\":[{\"text\":\"x\",\"logprobs\":{\"tokens\":[\"Tweet\",\" Sad\"],"
        "\"token_logprobs\":[null,null],\"text_offset\":[0,22]}}]}",
        QPO_LLM_ERR_NO_LOGPROBS);
}

static void test_chat_fixtures(void **state) {
    assert_int_equal(qpo_llm_parse_chat(openai_chat, strlen(openai_chat), &p), QPO_LLM_OK);
    assert_int_equal(p.ntokens, 4);
    assert_string_equal(p.tokens[3], " 12");
    assert_float_equal(p.mean_nll, 0.3, 1e-12); /* (0.1 + 0.2 + 0.3 + 0.6) / 4 */
    assert_string_equal(p.text, "Final Answer: 12");
    assert_int_equal(p.completion_tokens, 4);
    qpo_llm_parsed_free(&p);
    assert_int_equal(qpo_llm_parse_chat(vllm_chat, strlen(vllm_chat), &p), QPO_LLM_OK);
    assert_int_equal(p.ntokens, 1);
    assert_float_equal(p.mean_nll, 0.0625, 1e-12);
    assert_string_equal(p.text, "5");
    qpo_llm_parsed_free(&p);
}

static void expect_chat_error(const char *body, qpo_llm_status want) {
    qpo_llm_status got = qpo_llm_parse_chat(body, strlen(body), &p);
    if (got != want)
        fail_msg("body %.60s: want %s, got %s (%s)", body, qpo_llm_status_name(want),
                 qpo_llm_status_name(got), p.error);
    assert_null(p.tokens);
    assert_null(p.text);
    qpo_llm_parsed_free(&p);
}

static void test_bad_chat_bodies(void **state) {
    expect_chat_error("{\"choices\":[{\"message\":{\"content\":\"5\"},\"logprobs\":null}]}",
                      QPO_LLM_ERR_NO_LOGPROBS);
    expect_chat_error("{\"choices\":[{\"message\":{\"content\":\"5\"}}]}", QPO_LLM_ERR_NO_LOGPROBS);
    expect_chat_error("{\"choices\":[{\"message\":{\"content\":\"5\"},\"logprobs\":{\"content\":"
                      "[]}}]}",
                      QPO_LLM_ERR_NO_LOGPROBS);
    expect_chat_error("{\"choices\":[{\"message\":{\"content\":\"\"},\"logprobs\":{\"content\":"
                      "[]}}]}",
                      QPO_LLM_ERR_SHAPE);
    expect_chat_error("{\"choices\":[{\"message\":{\"content\":null},\"logprobs\":{\"content\":"
                      "[{\"token\":\"5\",\"logprob\":-1}]}}]}",
                      QPO_LLM_ERR_SHAPE);
    expect_chat_error("{\"choices\":[{\"message\":{\"content\":\"5\"},\"logprobs\":{\"content\":"
                      "[{\"token\":\"5\",\"logprob\":\"-1\"}]}}]}",
                      QPO_LLM_ERR_SHAPE);
    expect_chat_error("{\"choices\":[{\"message\":{\"content\":\"5\"},\"logprobs\":{\"content\":"
                      "{\"token\":\"5\"}}}]}",
                      QPO_LLM_ERR_SHAPE);
    expect_chat_error("{\"id\":\"x\"}", QPO_LLM_ERR_SHAPE);
    expect_chat_error("{\"choices\":[{\"message\":{\"content\":\"5\"},\"logprobs\":{\"cont",
                      QPO_LLM_ERR_MALFORMED);
}

static void test_http_classes_and_retry_policy(void **state) {
    assert_int_equal(qpo_llm_classify_http(200), QPO_LLM_OK);
    assert_int_equal(qpo_llm_classify_http(429), QPO_LLM_ERR_RATE_LIMITED);
    assert_int_equal(qpo_llm_classify_http(408), QPO_LLM_ERR_SERVER);
    assert_int_equal(qpo_llm_classify_http(409), QPO_LLM_ERR_SERVER);
    assert_int_equal(qpo_llm_classify_http(500), QPO_LLM_ERR_SERVER);
    assert_int_equal(qpo_llm_classify_http(503), QPO_LLM_ERR_SERVER);
    assert_int_equal(qpo_llm_classify_http(400), QPO_LLM_ERR_CLIENT);
    assert_int_equal(qpo_llm_classify_http(401), QPO_LLM_ERR_CLIENT);
    assert_int_equal(qpo_llm_classify_http(404), QPO_LLM_ERR_CLIENT);
    const qpo_llm_status retry[] = {
        QPO_LLM_ERR_CONNECT, QPO_LLM_ERR_TIMEOUT,   QPO_LLM_ERR_DROPPED, QPO_LLM_ERR_RATE_LIMITED,
        QPO_LLM_ERR_SERVER,  QPO_LLM_ERR_MALFORMED, QPO_LLM_ERR_SHAPE};
    const qpo_llm_status final[] = {
        QPO_LLM_OK,       QPO_LLM_ERR_CLIENT,    QPO_LLM_ERR_NO_LOGPROBS,
        QPO_LLM_ERR_SPAN, QPO_LLM_ERR_CANCELLED, QPO_LLM_ERR_INTERNAL};
    for (size_t i = 0; i < sizeof retry / sizeof retry[0]; i++)
        assert_true(qpo_llm_status_retryable(retry[i]));
    for (size_t i = 0; i < sizeof final / sizeof final[0]; i++)
        assert_false(qpo_llm_status_retryable(final[i]));
    assert_string_equal(qpo_llm_status_name(QPO_LLM_ERR_RATE_LIMITED), "rate_limited");
    assert_string_equal(qpo_llm_status_name((qpo_llm_status)99), "unknown");
}

static void test_retry_after(void **state) {
    time_t now = 1445412470; /* Wed, 21 Oct 2015 07:27:50 GMT */
    assert_int_equal(qpo_llm_parse_retry_after("3", now), 3000);
    assert_int_equal(qpo_llm_parse_retry_after(" 1.5", now), 1500);
    assert_int_equal(qpo_llm_parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now), 10000);
    assert_int_equal(qpo_llm_parse_retry_after("Wed, 21 Oct 2015 07:27:00 GMT", now), 0);
    assert_int_equal(qpo_llm_parse_retry_after("soon", now), -1);
    assert_int_equal(qpo_llm_parse_retry_after("3 seconds", now), -1);
    assert_int_equal(qpo_llm_parse_retry_after(NULL, now), -1);
}

static void test_backoff(void **state) {
    /* Full jitter: uniform below base * 2^(retry-1), capped. */
    assert_int_equal(qpo_llm_backoff_ms(1, 100, 1000, -1, 0.0), 0);
    assert_int_equal(qpo_llm_backoff_ms(1, 100, 1000, -1, 0.5), 50);
    assert_int_equal(qpo_llm_backoff_ms(3, 100, 1000, -1, 0.5), 200);
    assert_int_equal(qpo_llm_backoff_ms(20, 100, 1000, -1, 0.5), 500);
    /* Retry-After wins, with up to 10% more, capped at max(10x the max backoff, 60 s). */
    assert_int_equal(qpo_llm_backoff_ms(1, 100, 1000, 2000, 0.0), 2000);
    assert_int_equal(qpo_llm_backoff_ms(1, 100, 1000, 2000, 0.5), 2100);
    assert_int_equal(qpo_llm_backoff_ms(1, 100, 1000, 3600000, 0.0), 60000);
    assert_int_equal(qpo_llm_backoff_ms(1, 100, 30000, 3600000, 0.0), 300000);
}

static void test_api_key_sources(void **state) {
    qpo_err err = {0};
    char *key = NULL;
    setenv("QPO_TEST_KEY", "  sk-from-env\n", 1);
    assert_int_equal(qpo_llm_resolve_api_key("QPO_TEST_KEY", NULL, &key, &err), 0);
    assert_string_equal(key, "sk-from-env");
    qpo_llm_free_secret(key);
    setenv("QPO_TEST_KEY", "", 1);
    assert_int_equal(qpo_llm_resolve_api_key("QPO_TEST_KEY", NULL, &key, &err), -1);
    assert_int_equal(err.code, QPO_EXIT_USAGE);
    assert_non_null(strstr(err.detail, "QPO_TEST_KEY"));
    char path[] = "/tmp/qpo_llm_key_XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, " sk-file-SECRET \nsecond line\n", 29), 29);
    close(fd);
    qpo_err_clear(&err);
    assert_int_equal(qpo_llm_resolve_api_key(NULL, path, &key, &err), 0);
    assert_string_equal(key, "sk-file-SECRET");
    qpo_llm_free_secret(key);
    unlink(path);
    assert_int_equal(qpo_llm_resolve_api_key(NULL, path, &key, &err), -1);
    assert_non_null(strstr(err.detail, path));
    assert_null(strstr(err.msg, "SECRET"));
    assert_int_equal(qpo_llm_resolve_api_key(NULL, NULL, &key, &err), 0);
    assert_null(key);
}

static void test_target_from_json(void **state) {
    qpo_err err = {0};
    qpo_llm_target t;
    char *key = NULL;
    setenv("QPO_TEST_KEY2", "sk-2", 1);
    json_t *cfg = json_pack("{s:s, s:i, s:f, s:i, s:i, s:i}", "api_key_env", "QPO_TEST_KEY2",
                            "max_inflight", 32, "requests_per_s", 5.5, "tokens_per_min", 90000,
                            "timeout_ms", 1000, "retry_budget", 0);
    assert_int_equal(qpo_llm_target_from_json("vllm", "http://h:8000", "m", cfg, &t, &key, &err),
                     0);
    assert_string_equal(t.api_key, "sk-2");
    assert_int_equal(t.max_inflight, 32);
    assert_float_equal(t.requests_per_s, 5.5, 1e-12);
    assert_float_equal(t.tokens_per_min, 90000, 1e-12);
    assert_int_equal(t.timeout_ms, 1000);
    assert_int_equal(t.retry_budget, -1); /* 0 retries asked: none, not the default */
    qpo_llm_free_secret(key);
    json_decref(cfg);
    cfg = json_pack("{s:s}", "api_key", "sk-inline");
    assert_int_equal(qpo_llm_target_from_json("x", "http://h", "m", cfg, &t, &key, &err), -1);
    assert_non_null(strstr(err.msg, "api_key"));
    json_decref(cfg);
    cfg = json_pack("{s:s}", "max_inflight", "many");
    assert_int_equal(qpo_llm_target_from_json("x", "http://h", "m", cfg, &t, &key, &err), -1);
    assert_int_equal(err.code, QPO_EXIT_USAGE);
    json_decref(cfg);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_openai_echo),
        cmocka_unit_test(test_vllm_echo_bos),
        cmocka_unit_test(test_vllm_echo_utf8_offsets),
        cmocka_unit_test(test_empty_context_first_null),
        cmocka_unit_test(test_echo_ignored_is_span_error),
        cmocka_unit_test(test_bad_completion_bodies),
        cmocka_unit_test(test_chat_fixtures),
        cmocka_unit_test(test_bad_chat_bodies),
        cmocka_unit_test(test_http_classes_and_retry_policy),
        cmocka_unit_test(test_retry_after),
        cmocka_unit_test(test_backoff),
        cmocka_unit_test(test_api_key_sources),
        cmocka_unit_test(test_target_from_json),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
