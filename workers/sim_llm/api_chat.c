/* POST /v1/chat/completions: the math answer "... Final Answer: N" with logprobs. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "api_internal.h"
#include "parse.h"
#include "simhash.h"
#include "tokens.h"

#define MESSAGE_OVERHEAD_TOKENS 4 /* role and separators, per message */
#define REPLY_PRIMING_TOKENS 2

static const char *const ALTERNATIVES[] = {" the", " is",  ",",   ".",   " a",    " of",  " to",
                                           "\n",   " and", " we", " it", " that", " in",  " for",
                                           " so",  " 1",   " 2",  " 0",  " be",   " this"};
#define N_ALTERNATIVES (sizeof(ALTERNATIVES) / sizeof(ALTERNATIVES[0]))

/* The text of a message's content: a string, or the text parts of an array. Returns 0, or -1
 * with a 400 in out. buf receives a malloc'd copy when parts are joined. */
static int content_text(const json_t *m, size_t idx, const char **text, size_t *len, char **buf,
                        sim_reply *out) {
    const json_t *c = json_object_get(m, "content");
    *buf = NULL;
    if (json_is_string(c)) {
        *text = json_string_value(c);
        *len = json_string_length(c);
        return 0;
    }
    if (json_is_array(c)) {
        size_t total = 0, i;
        const json_t *part;
        json_array_foreach(c, i, part) total += json_string_length(json_object_get(part, "text"));
        char *b = malloc(total + 1);
        if (!b)
            return -1;
        size_t at = 0;
        json_array_foreach(c, i, part) {
            const json_t *t = json_object_get(part, "text");
            if (json_is_string(t)) {
                memcpy(b + at, json_string_value(t), json_string_length(t));
                at += json_string_length(t);
            }
        }
        b[at] = '\0';
        *text = *buf = b;
        *len = at;
        return 0;
    }
    if (json_is_null(c)) {
        *text = "";
        *len = 0;
        return 0;
    }
    sim_api_error(out, 400, "invalid_request_error", "messages", "invalid_type",
                  "messages[%zu].content must be a string or an array of content parts", idx);
    return -1;
}

/* Finds the last user message and counts prompt tokens. */
static int read_messages(const json_t *req, char **user, size_t *user_len, size_t *ptoks,
                         sim_reply *out) {
    const json_t *msgs = json_object_get(req, "messages"), *m;
    size_t i;
    if (!json_is_array(msgs) || json_array_size(msgs) == 0) {
        sim_api_error(out, 400, "invalid_request_error", "messages", "missing_required_parameter",
                      "'messages' must be a non-empty array");
        return -1;
    }
    *user = NULL;
    *ptoks = REPLY_PRIMING_TOKENS;
    json_array_foreach(msgs, i, m) {
        const char *role = json_string_value(json_object_get(m, "role"));
        if (!role || (strcmp(role, "system") && strcmp(role, "user") && strcmp(role, "assistant") &&
                      strcmp(role, "developer") && strcmp(role, "tool"))) {
            free(*user);
            sim_api_error(out, 400, "invalid_request_error", "messages", "invalid_value",
                          "messages[%zu].role must be one of system, developer, user, "
                          "assistant, tool",
                          i);
            return -1;
        }
        const char *text;
        size_t len;
        char *buf;
        if (content_text(m, i, &text, &len, &buf, out)) {
            free(*user);
            return -1;
        }
        *ptoks += MESSAGE_OVERHEAD_TOKENS + sim_count_tokens(text, len);
        if (!strcmp(role, "user")) {
            free(*user);
            *user = buf ? buf : strndup(text, len);
            *user_len = len;
        } else {
            free(buf);
        }
    }
    if (!*user) {
        sim_api_error(out, 400, "invalid_request_error", "messages", "missing_required_parameter",
                      "'messages' must include a user message");
        return -1;
    }
    return 0;
}

static json_t *bytes_of(const char *s, size_t n) {
    json_t *a = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(a, json_integer((unsigned char)s[i]));
    return a;
}

static json_t *token_entry(const char *s, size_t n, double lp, long long top, uint64_t answer_hash,
                           size_t i) {
    json_t *tops = json_array();
    if (top > 0)
        json_array_append_new(tops, json_pack("{s:s%,s:f,s:o}", "token", s, n, "logprob", lp,
                                              "bytes", bytes_of(s, n)));
    /* Alternatives below the chosen token: greedy decoding picked the most likely one. */
    for (long long j = 1, a = (long long)(sim_mix(answer_hash, i) % N_ALTERNATIVES); j < top;
         a = (a + 1) % (long long)N_ALTERNATIVES) {
        const char *alt = ALTERNATIVES[a];
        if (strlen(alt) == n && !memcmp(alt, s, n))
            continue;
        double alp = lp - 1.5 - 0.8 * (double)j;
        json_array_append_new(tops, json_pack("{s:s,s:f,s:o}", "token", alt, "logprob", alp,
                                              "bytes", bytes_of(alt, strlen(alt))));
        j++;
    }
    return json_pack("{s:s%,s:f,s:o,s:o}", "token", s, n, "logprob", lp, "bytes", bytes_of(s, n),
                     "top_logprobs", tops);
}

int sim_chat(const sim_api *api, const json_t *req, const sim_common_params *cp, json_t **resp,
             sim_reply *out) {
    long long top, max_tokens, max_completion;
    const json_t *lp_j = json_object_get(req, "logprobs");
    if (lp_j && !json_is_boolean(lp_j) && !json_is_null(lp_j)) {
        sim_api_error(out, 400, "invalid_request_error", "logprobs", "invalid_type",
                      "'logprobs' must be a boolean");
        return -1;
    }
    int want_lp = json_is_true(lp_j);
    if (sim_int_param(req, "top_logprobs", 0, 20, 0, &top, out) ||
        sim_int_param(req, "max_tokens", 1, 1 << 20, 1 << 20, &max_tokens, out) ||
        sim_int_param(req, "max_completion_tokens", 1, 1 << 20, max_tokens, &max_completion, out))
        return -1;
    if (top > 0 && !want_lp) {
        sim_api_error(out, 400, "invalid_request_error", "top_logprobs", "invalid_value",
                      "'top_logprobs' requires 'logprobs' to be true");
        return -1;
    }
    char *user;
    size_t user_len, ptoks;
    if (read_messages(req, &user, &user_len, &ptoks, out))
        return -1;
    sim_math_req mr;
    sim_parse_math(api->data, user, user_len, &mr);
    mr.pair.temperature = cp->temperature;
    mr.pair.seed = cp->seed;
    sim_math math;
    sim_math_answer(&mr.pair, mr.item ? mr.item->answer : NULL, &math);
    free(user);

    sim_tokens toks = {0};
    if (sim_tokenize(math.text, strlen(math.text), 0, 0, &toks)) {
        sim_api_error(out, 500, "server_error", NULL, NULL, "out of memory");
        return -1;
    }
    size_t n = toks.n < (size_t)max_completion ? toks.n : (size_t)max_completion, bytes = 0;
    uint64_t ah = sim_hash(math.text, strlen(math.text), 0xA5);
    json_t *content = want_lp ? json_array() : NULL;
    for (size_t i = 0; i < n; i++) {
        bytes += toks.v[i].len;
        if (content)
            json_array_append_new(
                content, token_entry(math.text + toks.v[i].start, toks.v[i].len,
                                     sim_math_token_logprob(math.confidence, ah, i), top, ah, i));
    }
    const char *finish = n == toks.n ? "stop" : "length";
    sim_tokens_free(&toks);
    char id[48];
    sim_response_id("chatcmpl-", req, id);
    json_t *logprobs =
        content ? json_pack("{s:o,s:n}", "content", content, "refusal") : json_null();
    *resp = json_pack("{s:s,s:s,s:I,s:s,s:[{s:i,s:{s:s,s:s%,s:n},s:o,s:s}],s:{s:I,s:I,s:I}}", "id",
                      id, "object", "chat.completion", "created", (json_int_t)time(NULL), "model",
                      api->model, "choices", "index", 0, "message", "role", "assistant", "content",
                      math.text, bytes, "refusal", "logprobs", logprobs, "finish_reason", finish,
                      "usage", "prompt_tokens", (json_int_t)ptoks, "completion_tokens",
                      (json_int_t)n, "total_tokens", (json_int_t)(ptoks + n));
    return 0;
}
