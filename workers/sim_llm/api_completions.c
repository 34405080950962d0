/* POST /v1/completions: label scoring with echo + logprobs + text_offset, and generation. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "api_internal.h"
#include "parse.h"
#include "simhash.h"
#include "tokens.h"

#define TAIL_LOGPROB -0.05 /* tokens after a verbalizer's first: nearly certain */
#define NEWLINE_LOGPROB -0.1
#define OFF_LABEL_LOGPROB -4.6 /* log 0.01: a continuation that is no label */

static const char *const FILLERS[] = {" the", ",", " and", ".", "\n", " a", " to", " of"};
#define N_FILLERS (sizeof(FILLERS) / sizeof(FILLERS[0]))
#define MAX_TOP 5

/* What one prompt string becomes. */
typedef struct completion {
    const char *prompt;
    size_t plen;
    sim_label_req r;
    int parsed;
    double L[QPO_TASK_MAX_LABELS];
    int best;         /* argmax label, -1 if none */
    double cont_mean; /* mean logprob of the echoed continuation */
    char gen[256];    /* generated text (before max_tokens) */
    size_t gen_label; /* bytes of gen that are " verbalizer" */
    sim_tokens toks;  /* prompt tokens then generated tokens */
    size_t n_prompt, n_gen;
} completion;

/* A verbalizer's tokens share its mean logprob: the first carries the decision, the rest are
 * nearly certain, so their mean is exactly `mean` (unless clamped at 0). */
static double spread(double mean, size_t j, size_t n) {
    if (n <= 1)
        return mean;
    if (j > 0)
        return TAIL_LOGPROB;
    double first = (double)n * mean - (double)(n - 1) * TAIL_LOGPROB;
    return first > -1e-3 ? -1e-3 : first;
}

static void decide(const sim_api *api, completion *c, const sim_common_params *cp) {
    c->parsed = sim_parse_label(api->data, c->prompt, c->plen, &c->r) == 0;
    c->best = -1;
    c->r.pair.temperature = cp->temperature;
    c->r.pair.seed = cp->seed;
    const char *generic = " I am a simulated model and do not know this text.\n\n";
    snprintf(c->gen, sizeof(c->gen), "%s", generic);
    if (!c->parsed)
        return;
    if (c->r.n_labels > 0) {
        sim_label_logprobs(&c->r.pair, c->r.gold, c->r.n_labels, c->r.verbalizers, c->L);
        c->best = 0;
        for (int k = 1; k < c->r.n_labels; k++)
            if (c->L[k] > c->L[c->best])
                c->best = k;
    }
    if (c->r.cont_len > 0) {
        snprintf(c->gen, sizeof(c->gen), "\n\n");
        if (c->r.k >= 0)
            c->cont_mean = c->L[c->r.k];
        else if (c->r.n_labels == 0) /* unknown multiple-choice item: no candidates known */
            c->cont_mean = -(0.3 + 3 * sim_unit(sim_hash(c->prompt, c->plen, c->r.pair.query_key)));
        else
            c->cont_mean = OFF_LABEL_LOGPROB;
    } else if (c->best >= 0) {
        snprintf(c->gen, sizeof(c->gen), " %s\n\n", c->r.verbalizers[c->best]);
        c->gen_label = 1 + strlen(c->r.verbalizers[c->best]);
    }
}

static int tokenize_all(completion *c, long long max_tokens) {
    if (sim_tokenize(c->prompt, c->plen, 0, 0, &c->toks))
        return -1;
    c->n_prompt = c->toks.n;
    uint32_t cp = (uint32_t)sim_codepoints(c->prompt, c->plen);
    if (sim_tokenize(c->gen, strlen(c->gen), (uint32_t)c->plen, cp, &c->toks))
        return -1;
    c->n_gen = c->toks.n - c->n_prompt;
    if ((long long)c->n_gen > max_tokens)
        c->n_gen = (size_t)max_tokens;
    return 0;
}

static const char *tok_text(const completion *c, size_t i) {
    uint32_t s = c->toks.v[i].start;
    return s < c->plen ? c->prompt + s : c->gen + (s - c->plen);
}

/* Count of tokens starting in [from, to) bytes (of the whole text) and index of the first. */
static size_t span_tokens(const completion *c, size_t from, size_t to, size_t *first) {
    size_t n = 0;
    for (size_t i = 0; i < c->toks.n; i++)
        if (c->toks.v[i].start >= from && c->toks.v[i].start < to && n++ == 0)
            *first = i;
    return n;
}

static double token_logprob(const completion *c, size_t i) {
    const sim_token *t = &c->toks.v[i];
    size_t first = 0;
    if (c->parsed && c->r.cont_len > 0 && i < c->n_prompt && t->start >= c->r.ctx_len) {
        size_t n = span_tokens(c, c->r.ctx_len, c->plen, &first);
        return spread(c->cont_mean, i - first, n);
    }
    if (i >= c->n_prompt && c->gen_label && t->start < c->plen + c->gen_label) {
        size_t n = span_tokens(c, c->plen, c->plen + c->gen_label, &first);
        return spread(c->L[c->best], i - first, n);
    }
    const char *s = tok_text(c, i);
    if (*s == '\n')
        return NEWLINE_LOGPROB;
    const char *prev = i > 0 ? tok_text(c, i - 1) : "";
    return sim_context_logprob(s, t->len, prev, i > 0 ? c->toks.v[i - 1].len : 0);
}

/* The first token of " verbalizer", for the top_logprobs of a label position. */
static void first_token_of(const char *verbalizer, char out[64]) {
    char buf[256];
    snprintf(buf, sizeof(buf), " %s", verbalizer);
    sim_tokens t = {0};
    if (sim_tokenize(buf, strlen(buf), 0, 0, &t) == 0 && t.n)
        snprintf(out, 64, "%.*s", (int)t.v[0].len, buf);
    else
        out[0] = '\0';
    sim_tokens_free(&t);
}

static json_t *top_entry(const completion *c, size_t i, double lp, long long want) {
    json_t *top = json_object();
    const sim_token *t = &c->toks.v[i];
    char key[64];
    snprintf(key, sizeof(key), "%.*s", (int)(t->len < 63 ? t->len : 63), tok_text(c, i));
    json_object_set_new(top, key, json_real(lp));
    double floor = lp;
    /* At a label position the top alternative is the label the model prefers. */
    int label_start = c->parsed && c->r.cont_len > 0 && t->start == c->r.ctx_len && c->best >= 0 &&
                      c->best != c->r.k;
    if (label_start && (long long)json_object_size(top) < want) {
        char alt[64];
        first_token_of(c->r.verbalizers[c->best], alt);
        size_t n = 0, first = 0;
        n = span_tokens(c, c->r.ctx_len, c->plen, &first);
        double alt_lp = spread(c->L[c->best], 0, n);
        if (*alt && !json_object_get(top, alt))
            json_object_set_new(top, alt, json_real(alt_lp));
        floor = alt_lp < floor ? alt_lp : floor;
    }
    for (size_t f = 0; f < N_FILLERS && (long long)json_object_size(top) < want; f++)
        if (!json_object_get(top, FILLERS[f]))
            json_object_set_new(top, FILLERS[f], json_real(floor - 0.7 * (double)(f + 1)));
    return top;
}

static json_t *logprobs_json(const completion *c, int echo, long long want) {
    json_t *tokens = json_array(), *lps = json_array(), *tops = json_array(), *offs = json_array();
    size_t from = echo ? 0 : c->n_prompt, to = c->n_prompt + c->n_gen;
    for (size_t i = from; i < to; i++) {
        const sim_token *t = &c->toks.v[i];
        json_array_append_new(tokens, json_stringn_nocheck(tok_text(c, i), t->len));
        json_array_append_new(offs, json_integer(t->cp_offset));
        if (i == 0) { /* the first token has no context to be predicted from */
            json_array_append_new(lps, json_null());
            json_array_append_new(tops, json_null());
            continue;
        }
        double lp = token_logprob(c, i);
        json_array_append_new(lps, json_real(lp));
        json_array_append_new(tops, top_entry(c, i, lp, want));
    }
    return json_pack("{s:o,s:o,s:o,s:o}", "tokens", tokens, "token_logprobs", lps, "top_logprobs",
                     tops, "text_offset", offs);
}

static json_t *choice_json(const completion *c, int index, int echo, long long logprobs) {
    size_t gen_bytes = 0;
    for (size_t i = c->n_prompt; i < c->n_prompt + c->n_gen; i++)
        gen_bytes += c->toks.v[i].len;
    size_t all_gen = c->toks.n - c->n_prompt;
    size_t len = (echo ? c->plen : 0) + gen_bytes;
    char *text = malloc(len + 1);
    if (!text)
        return NULL;
    if (echo)
        memcpy(text, c->prompt, c->plen);
    memcpy(text + (echo ? c->plen : 0), c->gen, gen_bytes);
    json_t *choice = json_pack("{s:i,s:s%,s:o,s:s}", "index", index, "text", text, len, "logprobs",
                               logprobs >= 0 ? logprobs_json(c, echo, logprobs) : json_null(),
                               "finish_reason", c->n_gen == all_gen ? "stop" : "length");
    free(text);
    return choice;
}

static int prompts_of(const json_t *req, const json_t **list, size_t *n, sim_reply *out) {
    const json_t *p = json_object_get(req, "prompt");
    if (json_is_string(p)) {
        *list = p;
        *n = 1;
        return 0;
    }
    if (json_is_array(p) && json_array_size(p) > 0) {
        size_t i;
        const json_t *v;
        json_array_foreach(p, i, v) if (!json_is_string(v)) {
            sim_api_error(out, 400, "invalid_request_error", "prompt", "unsupported_value",
                          "prompt[%zu]: this simulated model takes prompts as strings, not "
                          "token ids",
                          i);
            return -1;
        }
        *list = p;
        *n = json_array_size(p);
        return 0;
    }
    sim_api_error(out, 400, "invalid_request_error", "prompt", "missing_required_parameter",
                  "'prompt' must be a string or a non-empty array of strings");
    return -1;
}

int sim_completions(const sim_api *api, const json_t *req, const sim_common_params *cp,
                    json_t **resp, sim_reply *out) {
    const json_t *list;
    size_t n;
    long long max_tokens, logprobs;
    const json_t *echo_j = json_object_get(req, "echo");
    if (prompts_of(req, &list, &n, out) ||
        sim_int_param(req, "max_tokens", 0, 4096, 16, &max_tokens, out) ||
        sim_int_param(req, "logprobs", 0, MAX_TOP, -1, &logprobs, out))
        return -1;
    if (echo_j && !json_is_boolean(echo_j) && !json_is_null(echo_j)) {
        sim_api_error(out, 400, "invalid_request_error", "echo", "invalid_type",
                      "'echo' must be a boolean");
        return -1;
    }
    int echo = json_is_true(echo_j);
    json_t *choices = json_array();
    size_t prompt_tokens = 0, completion_tokens = 0;
    for (size_t i = 0; i < n; i++) {
        const json_t *p = json_is_string(list) ? list : json_array_get(list, i);
        completion c = {.prompt = json_string_value(p), .plen = json_string_length(p)};
        decide(api, &c, cp);
        json_t *choice =
            tokenize_all(&c, max_tokens) ? NULL : choice_json(&c, (int)i, echo, logprobs);
        prompt_tokens += c.n_prompt;
        completion_tokens += c.n_gen;
        sim_tokens_free(&c.toks);
        if (!choice) {
            json_decref(choices);
            sim_api_error(out, 500, "server_error", NULL, NULL, "out of memory");
            return -1;
        }
        json_array_append_new(choices, choice);
    }
    char id[48];
    sim_response_id("cmpl-", req, id);
    *resp = json_pack("{s:s,s:s,s:I,s:s,s:o,s:{s:I,s:I,s:I}}", "id", id, "object",
                      "text_completion", "created", (json_int_t)time(NULL), "model", api->model,
                      "choices", choices, "usage", "prompt_tokens", (json_int_t)prompt_tokens,
                      "completion_tokens", (json_int_t)completion_tokens, "total_tokens",
                      (json_int_t)(prompt_tokens + completion_tokens));
    return 0;
}
