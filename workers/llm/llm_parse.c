/* Response bodies to tokens and NLLs; statuses and Retry-After to retry decisions. Every
 * unexpected shape ends in a classified status with a message, never a crash: servers behind
 * proxies return HTML, cut bodies short, or leave out the logprobs they do not support. */
#include "llm_parse.h"

#include <curl/curl.h>
#include <jansson.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A message cut to fit may end inside a multi-byte character: drop that partial character,
 * so what reaches qpo.llm_calls is valid UTF-8. */
static void utf8_cut_partial(char *s) {
    size_t len = strlen(s), i = len;
    while (i > 0 && ((unsigned char)s[i - 1] & 0xC0) == 0x80)
        i--; /* continuation bytes */
    if (i == 0 || (unsigned char)s[i - 1] < 0xC0)
        return; /* ends on ASCII or on continuation bytes of nothing we can check */
    unsigned char lead = (unsigned char)s[i - 1];
    size_t need = lead >= 0xF0 ? 4 : lead >= 0xE0 ? 3 : 2;
    if (len - (i - 1) < need)
        s[i - 1] = '\0';
}

static qpo_llm_status fail(qpo_llm_parsed *p, qpo_llm_status s, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static qpo_llm_status fail(qpo_llm_parsed *p, qpo_llm_status s, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(p->error, sizeof p->error, fmt, ap);
    va_end(ap);
    if (n >= (int)sizeof p->error)
        utf8_cut_partial(p->error);
    for (size_t i = 0; i < p->ntokens; i++)
        free(p->tokens[i]);
    free(p->tokens);
    free(p->logprobs);
    free(p->text);
    p->tokens = NULL;
    p->logprobs = NULL;
    p->text = NULL;
    p->ntokens = 0;
    p->status = s;
    return s;
}

static void parsed_init(qpo_llm_parsed *p) {
    memset(p, 0, sizeof *p);
    p->prompt_tokens = -1;
    p->completion_tokens = -1;
    p->mean_nll = NAN;
}

void qpo_llm_parsed_free(qpo_llm_parsed *p) {
    if (!p)
        return;
    for (size_t i = 0; i < p->ntokens; i++)
        free(p->tokens[i]);
    free(p->tokens);
    free(p->logprobs);
    free(p->text);
    parsed_init(p);
}

size_t qpo_llm_utf8_len(const char *s) {
    size_t n = 0;
    for (const unsigned char *u = (const unsigned char *)s; *u; u++)
        if ((*u & 0xC0) != 0x80)
            n++;
    return n;
}

static void read_usage(const json_t *root, qpo_llm_parsed *p) {
    const json_t *usage = json_object_get(root, "usage");
    const json_t *pt = json_object_get(usage, "prompt_tokens");
    const json_t *ct = json_object_get(usage, "completion_tokens");
    if (json_is_integer(pt))
        p->prompt_tokens = (int)json_integer_value(pt);
    if (json_is_integer(ct))
        p->completion_tokens = (int)json_integer_value(ct);
}

/* The first bytes of a body for a message: it holds len bytes (no terminating NUL), and what
 * is not printable ASCII becomes '?', so the message stays valid UTF-8 for qpo.llm_calls
 * (a cut multi-byte character or a binary body would make the audit row unwritable). */
static const char *preview(const char *body, size_t len, char *out, size_t outlen) {
    size_t n = len < outlen - 1 ? len : outlen - 1;
    for (size_t i = 0; i < n; i++)
        out[i] = body[i] >= 0x20 && body[i] < 0x7f ? body[i] : '?';
    out[n] = '\0';
    return out;
}

/* The body as JSON with a non-empty choices array; else the class and message in p. */
static json_t *load_choice0(const char *body, size_t len, qpo_llm_parsed *p, json_t **root) {
    json_error_t jerr;
    *root = NULL;
    if (!body || len == 0) {
        fail(p, QPO_LLM_ERR_MALFORMED, "empty response body");
        return NULL;
    }
    *root = json_loadb(body, len, 0, &jerr);
    if (!*root) {
        /* jansson quotes the offending bytes in its message: they need the same care. */
        char start[41], why[sizeof jerr.text];
        fail(p, QPO_LLM_ERR_MALFORMED, "response is not JSON (%s at byte %d): starts \"%s\"",
             preview(jerr.text, strlen(jerr.text), why, sizeof why), jerr.position,
             preview(body, len, start, sizeof start));
        return NULL;
    }
    if (!json_is_object(*root)) {
        fail(p, QPO_LLM_ERR_SHAPE, "response is JSON but not an object");
        return NULL;
    }
    const json_t *choices = json_object_get(*root, "choices");
    if (!json_is_array(choices) || json_array_size(choices) == 0) {
        const json_t *e = json_object_get(*root, "error");
        const char *msg = json_string_value(json_object_get(e, "message"));
        fail(p, QPO_LLM_ERR_SHAPE, "response has no choices%s%s", msg ? ": " : "", msg ? msg : "");
        return NULL;
    }
    json_t *c0 = json_array_get(choices, 0);
    if (!json_is_object(c0)) {
        fail(p, QPO_LLM_ERR_SHAPE, "choices[0] is not an object");
        return NULL;
    }
    read_usage(*root, p);
    return c0;
}

static int push_token(qpo_llm_parsed *p, const char *tok, double lp) {
    p->tokens[p->ntokens] = strdup(tok);
    if (!p->tokens[p->ntokens])
        return -1;
    p->logprobs[p->ntokens++] = lp;
    return 0;
}

static int alloc_tokens(qpo_llm_parsed *p, size_t n) {
    p->tokens = calloc(n ? n : 1, sizeof *p->tokens);
    p->logprobs = calloc(n ? n : 1, sizeof *p->logprobs);
    return p->tokens && p->logprobs ? 0 : -1;
}

static double mean_nll(const double *lp, size_t n) {
    double s = 0;
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        if (isnan(lp[i]))
            continue;
        s += lp[i];
        k++;
    }
    return k ? -s / (double)k : NAN;
}

/* Appends the generated tail (offsets at or past span_end) to p->text. */
static int append_text(qpo_llm_parsed *p, const char *tok) {
    size_t old = p->text ? strlen(p->text) : 0, add = strlen(tok);
    char *t = realloc(p->text, old + add + 1);
    if (!t)
        return -1;
    memcpy(t + old, tok, add + 1);
    p->text = t;
    return 0;
}

/* vLLM builds text_offset by adding up the decoded tokens' lengths, so a BOS token that is not
 * part of the prompt ("<s>", "<|begin_of_text|>") shifts every offset by its length. Such a
 * first token is recognised by not being a prefix of the prompt while the second offset is
 * its length; the shift is then taken back. */
static size_t bos_shift(const json_t *tokens, const json_t *offs, const char *prompt) {
    const char *t0 = json_string_value(json_array_get(tokens, 0));
    const json_t *o0 = json_array_get(offs, 0), *o1 = json_array_get(offs, 1);
    if (!prompt || !t0 || !*t0 || !json_is_integer(o0) || !json_is_integer(o1) ||
        json_integer_value(o0) != 0 || !strncmp(prompt, t0, strlen(t0)))
        return 0;
    size_t len = qpo_llm_utf8_len(t0);
    return json_integer_value(o1) == (json_int_t)len ? len : 0;
}

static qpo_llm_status walk_echo(qpo_llm_parsed *p, const json_t *tokens, const json_t *lps,
                                const json_t *offs, const char *prompt, size_t span_start,
                                size_t span_end) {
    size_t n = json_array_size(tokens);
    size_t shift = n >= 2 ? bos_shift(tokens, offs, prompt) : 0;
    if (alloc_tokens(p, n) < 0)
        return fail(p, QPO_LLM_ERR_INTERNAL, "out of memory");
    for (size_t i = shift ? 1 : 0; i < n; i++) {
        const json_t *tok = json_array_get(tokens, i), *lp = json_array_get(lps, i),
                     *off = json_array_get(offs, i);
        if (!json_is_string(tok) || !json_is_integer(off) ||
            !(json_is_number(lp) || json_is_null(lp)))
            return fail(p, QPO_LLM_ERR_SHAPE,
                        "logprobs entry %zu: want tokens string, text_offset integer, "
                        "token_logprobs number or null",
                        i);
        json_int_t o = json_integer_value(off) - (json_int_t)shift;
        if (o < 0)
            return fail(p, QPO_LLM_ERR_SHAPE, "text_offset[%zu] = %lld is negative", i,
                        (long long)o);
        if ((size_t)o >= span_end) {
            if (append_text(p, json_string_value(tok)) < 0)
                return fail(p, QPO_LLM_ERR_INTERNAL, "out of memory");
            continue;
        }
        if ((size_t)o < span_start)
            continue;
        if (json_is_null(lp) && i != 0)
            return fail(p, QPO_LLM_ERR_NO_LOGPROBS,
                        "token_logprobs[%zu] is null inside the continuation", i);
        double v = json_is_null(lp) ? NAN : json_number_value(lp);
        if (push_token(p, json_string_value(tok), v) < 0)
            return fail(p, QPO_LLM_ERR_INTERNAL, "out of memory");
    }
    p->mean_nll = mean_nll(p->logprobs, p->ntokens);
    if (p->ntokens == 0 || isnan(p->mean_nll))
        return fail(p, QPO_LLM_ERR_SPAN,
                    "no echoed token with a logprob starts in the continuation's offsets "
                    "[%zu, %zu) of %zu tokens: does the server honour \"echo\"?",
                    span_start, span_end, n);
    if (!p->text)
        p->text = strdup("");
    p->status = QPO_LLM_OK;
    return QPO_LLM_OK;
}

qpo_llm_status qpo_llm_parse_completion(const char *body, size_t len, const char *prompt,
                                        size_t span_start, size_t span_end, qpo_llm_parsed *p) {
    parsed_init(p);
    json_t *root;
    json_t *c0 = load_choice0(body, len, p, &root);
    qpo_llm_status s = p->status;
    if (c0) {
        const json_t *lp = json_object_get(c0, "logprobs");
        const json_t *tokens = json_object_get(lp, "tokens");
        const json_t *lps = json_object_get(lp, "token_logprobs");
        const json_t *offs = json_object_get(lp, "text_offset");
        /* A body whose text is not even a string is broken, not a server without logprobs:
         * the first is worth a retry, the second is not. */
        if (!json_is_string(json_object_get(c0, "text")))
            s = fail(p, QPO_LLM_ERR_SHAPE, "choices[0].text is missing or not a string");
        else if (!lp || json_is_null(lp))
            s = fail(p, QPO_LLM_ERR_NO_LOGPROBS, "choices[0].logprobs is missing or null");
        else if (!json_is_object(lp))
            s = fail(p, QPO_LLM_ERR_SHAPE, "choices[0].logprobs is not an object");
        else if (!tokens || !lps || !offs)
            s = fail(p, QPO_LLM_ERR_NO_LOGPROBS,
                     "choices[0].logprobs lacks tokens, token_logprobs or text_offset");
        else if (!json_is_array(tokens) || !json_is_array(lps) || !json_is_array(offs))
            s = fail(p, QPO_LLM_ERR_SHAPE, "logprobs fields are not arrays");
        else if (json_array_size(tokens) != json_array_size(lps) ||
                 json_array_size(tokens) != json_array_size(offs))
            s = fail(p, QPO_LLM_ERR_SHAPE,
                     "logprobs arrays differ in length: %zu tokens, %zu logprobs, %zu offsets",
                     json_array_size(tokens), json_array_size(lps), json_array_size(offs));
        else
            s = walk_echo(p, tokens, lps, offs, prompt, span_start, span_end);
    }
    json_decref(root);
    return s;
}

static qpo_llm_status walk_chat(qpo_llm_parsed *p, const json_t *content) {
    size_t n = json_array_size(content);
    if (alloc_tokens(p, n) < 0)
        return fail(p, QPO_LLM_ERR_INTERNAL, "out of memory");
    for (size_t i = 0; i < n; i++) {
        const json_t *e = json_array_get(content, i);
        const json_t *tok = json_object_get(e, "token"), *lp = json_object_get(e, "logprob");
        if (!json_is_string(tok) || !json_is_number(lp))
            return fail(p, QPO_LLM_ERR_SHAPE,
                        "logprobs.content[%zu]: want token string and logprob number", i);
        if (push_token(p, json_string_value(tok), json_number_value(lp)) < 0)
            return fail(p, QPO_LLM_ERR_INTERNAL, "out of memory");
    }
    p->mean_nll = mean_nll(p->logprobs, p->ntokens);
    p->status = QPO_LLM_OK;
    return QPO_LLM_OK;
}

qpo_llm_status qpo_llm_parse_chat(const char *body, size_t len, qpo_llm_parsed *p) {
    char start[41];
    parsed_init(p);
    json_t *root;
    json_t *c0 = load_choice0(body, len, p, &root);
    qpo_llm_status s = p->status;
    if (c0) {
        const json_t *text = json_object_get(json_object_get(c0, "message"), "content");
        const json_t *lp = json_object_get(c0, "logprobs");
        const json_t *content = json_object_get(lp, "content");
        if (!json_is_string(text))
            s = fail(p, QPO_LLM_ERR_SHAPE, "choices[0].message.content is not a string");
        else if (!lp || json_is_null(lp) || !content || json_is_null(content))
            s = fail(p, QPO_LLM_ERR_NO_LOGPROBS, "choices[0].logprobs.content is missing or null");
        else if (!json_is_array(content))
            s = fail(p, QPO_LLM_ERR_SHAPE, "choices[0].logprobs.content is not an array");
        else if (json_array_size(content) == 0)
            s = fail(p, json_string_length(text) ? QPO_LLM_ERR_NO_LOGPROBS : QPO_LLM_ERR_SHAPE,
                     "choices[0].logprobs.content is empty (completion \"%s\")",
                     preview(json_string_value(text) ? json_string_value(text) : "",
                             json_string_length(text), start, sizeof start));
        else if ((s = walk_chat(p, content)) == QPO_LLM_OK &&
                 !(p->text = strdup(json_string_value(text))))
            s = fail(p, QPO_LLM_ERR_INTERNAL, "out of memory");
    }
    json_decref(root);
    return s;
}

qpo_llm_status qpo_llm_classify_http(long status) {
    if (status >= 200 && status < 300)
        return QPO_LLM_OK;
    if (status == 429)
        return QPO_LLM_ERR_RATE_LIMITED;
    if (status == 408 || status == 409 || status >= 500)
        return QPO_LLM_ERR_SERVER;
    return QPO_LLM_ERR_CLIENT;
}

long qpo_llm_parse_retry_after(const char *value, time_t now) {
    if (!value)
        return -1;
    while (*value == ' ' || *value == '\t')
        value++;
    if (*value >= '0' && *value <= '9') {
        char *end;
        double secs = strtod(value, &end);
        while (*end == ' ' || *end == '\t' || *end == '\r' || *end == '\n')
            end++;
        if (*end || secs > 86400.0 * 365)
            return -1;
        return (long)(secs * 1000.0);
    }
    time_t when = curl_getdate(value, NULL);
    if (when == -1)
        return -1;
    return when <= now ? 0 : (long)(when - now) * 1000L;
}

long qpo_llm_backoff_ms(int retry, int base_ms, int max_ms, long retry_after_ms, double rnd) {
    if (retry_after_ms >= 0) {
        long cap = 10L * max_ms > 60000 ? 10L * max_ms : 60000;
        long d = retry_after_ms + (long)(rnd * 0.1 * (double)retry_after_ms);
        return d > cap ? cap : d;
    }
    double ceiling = (double)base_ms;
    for (int i = 1; i < retry && ceiling < max_ms; i++)
        ceiling *= 2;
    if (ceiling > max_ms)
        ceiling = max_ms;
    return (long)(rnd * ceiling);
}
