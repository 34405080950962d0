/* See eval.h. */
#include "eval.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model.h"
#include "tokens.h"

/* Mean NLL of the tokens at text_offset >= ctx_cp, as the recipe's label scoring reads it. */
static int continuation_nll(const sim_reply *r, size_t ctx_cp, double *nll, qpo_err *err) {
    json_t *j = json_loadb(r->body, r->len, 0, NULL);
    json_t *lp = json_object_get(json_array_get(json_object_get(j, "choices"), 0), "logprobs");
    json_t *offs = json_object_get(lp, "text_offset"), *lps = json_object_get(lp, "token_logprobs");
    double sum = 0;
    int n = 0;
    for (size_t i = 0; i < json_array_size(offs); i++)
        if ((size_t)json_integer_value(json_array_get(offs, i)) >= ctx_cp) {
            sum -= json_number_value(json_array_get(lps, i));
            n++;
        }
    json_decref(j);
    if (r->status != 200 || n == 0)
        return qpo_err_set(err, QPO_EXIT_RUNTIME, "sim response without continuation tokens");
    *nll = sum / n;
    return 0;
}

static int post(const sim_api *api, const char *path, json_t *body, sim_reply *r) {
    char *s = json_dumps(body, JSON_COMPACT);
    json_decref(body);
    sim_api_handle(api, "POST", path, NULL, s, strlen(s), r);
    free(s);
    return 0;
}

static int label_correct(const sim_api *api, const char *prompt, const sim_item *it, int *ok,
                         qpo_err *err) {
    double best = 1e300;
    int pred = -1;
    for (int k = 0; k < it->task->n_labels; k++) {
        size_t ctx_len;
        char *text =
            qpo_task_render_scoring(it->task, prompt, NULL, 0, it->fields, k, &ctx_len, err);
        if (!text)
            return -1;
        sim_reply r;
        post(api, "/v1/completions",
             json_pack("{s:s,s:s,s:b,s:i,s:i,s:f}", "model", api->model, "prompt", text, "echo", 1,
                       "logprobs", 1, "max_tokens", 1, "temperature", 0.0),
             &r);
        double nll = 0;
        int rc = continuation_nll(&r, sim_codepoints(text, ctx_len), &nll, err);
        sim_reply_free(&r);
        free(text);
        if (rc)
            return -1;
        if (nll < best) {
            best = nll;
            pred = k;
        }
    }
    *ok = pred == it->label;
    return 0;
}

static int math_correct(const sim_api *api, const char *prompt, const sim_item *it, int *ok,
                        qpo_err *err) {
    char *user =
        qpo_math_user_message(json_string_value(json_object_get(it->fields, "question")), prompt);
    sim_reply r;
    post(api, "/v1/chat/completions",
         json_pack("{s:s,s:[{s:s,s:s},{s:s,s:s}],s:f,s:b}", "model", api->model, "messages", "role",
                   "system", "content", QPO_MATH_SYSTEM_MESSAGE, "role", "user", "content", user,
                   "temperature", 0.0, "logprobs", 1),
         &r);
    free(user);
    json_t *j = json_loadb(r.body, r.len, 0, NULL);
    const char *text = json_string_value(json_object_get(
        json_object_get(json_array_get(json_object_get(j, "choices"), 0), "message"), "content"));
    char answer[QPO_MATH_ANSWER_MAX];
    int rc = 0;
    if (!text)
        rc = qpo_err_set(err, QPO_EXIT_RUNTIME, "sim chat response without content");
    else
        *ok = qpo_math_extract_answer(text, answer) == 0 && qpo_math_is_correct(answer, it->answer);
    json_decref(j);
    sim_reply_free(&r);
    return rc;
}

int sim_eval_matrix(const sim_api *api, const char *const *prompts, size_t n_prompts,
                    const sim_item *const *items, size_t n_items, unsigned char *correct,
                    qpo_err *err) {
    for (size_t p = 0; p < n_prompts; p++)
        for (size_t q = 0; q < n_items; q++) {
            int ok = 0;
            int rc = items[q]->task->type == QPO_TASK_MATH
                         ? math_correct(api, prompts[p], items[q], &ok, err)
                         : label_correct(api, prompts[p], items[q], &ok, err);
            if (rc)
                return -1;
            correct[p * n_items + q] = (unsigned char)ok;
        }
    return 0;
}

#define N_GROUPS 4

/* The prompt with most right answers among items of `group` (-1: all) with index parity
 * `parity` (-1: all). */
static size_t best_prompt(const unsigned char *c, size_t np, const int *groups, size_t nq,
                          int group, int parity) {
    size_t best = 0;
    long best_n = -1;
    for (size_t p = 0; p < np; p++) {
        long n = 0;
        for (size_t q = 0; q < nq; q++)
            if ((group < 0 || groups[q] == group) && (parity < 0 || (int)(q % 2) == parity))
                n += c[p * nq + q];
        if (n > best_n) {
            best_n = n;
            best = p;
        }
    }
    return best;
}

void sim_eval_summarize(const unsigned char *c, size_t np, const sim_item *const *items, size_t nq,
                        sim_eval_summary *out) {
    memset(out, 0, sizeof(*out));
    if (!np || !nq)
        return;
    int *groups = malloc(nq * sizeof(int));
    for (size_t q = 0; q < nq; q++)
        groups[q] = sim_group(items[q]->task, items[q]->query, strlen(items[q]->query));
    long total = 0, oracle = 0;
    for (size_t q = 0; q < nq; q++) {
        int any = 0;
        for (size_t p = 0; p < np; p++) {
            total += c[p * nq + q];
            any |= c[p * nq + q];
        }
        oracle += any;
    }
    out->mean_prompt = (double)total / (double)(np * nq);
    out->oracle = (double)oracle / (double)nq;
    out->best_prompt = best_prompt(c, np, groups, nq, -1, -1);
    long n = 0;
    for (size_t q = 0; q < nq; q++)
        n += c[out->best_prompt * nq + q];
    out->best_single = (double)n / (double)nq;

    size_t winners[N_GROUPS], single = best_prompt(c, np, groups, nq, -1, 0);
    for (int g = 0; g < N_GROUPS; g++) {
        winners[g] = best_prompt(c, np, groups, nq, g, 0);
        int seen = 0;
        for (int h = 0; h < g; h++)
            seen |= winners[h] == winners[g];
        out->distinct_group_winners += !seen;
    }
    long held = 0, by_group = 0, by_single = 0;
    for (size_t q = 1; q < nq; q += 2) {
        held++;
        by_group += c[winners[groups[q]] * nq + q];
        by_single += c[single * nq + q];
    }
    out->heldout_group_policy = held ? (double)by_group / (double)held : 0;
    out->heldout_best_single = held ? (double)by_single / (double)held : 0;
    free(groups);
}
