#ifndef QPO_POLICY_GENERATE_H
#define QPO_POLICY_GENERATE_H

/* Prompt generation (recipe section 3): feed [R = r*, query], then decode up to 40 prompt
 * tokens with a KV cache, batched. Greedy, or top-k then top-p sampling. qpo's rules: stop at
 * the first eos, pad keys of the query masked as in training. Each query draws its random
 * numbers from its own seed, so a query gets the same prompt whatever batch it is decoded in. */

#include <stdint.h>

#include "policy.h"

typedef struct qpo_gen_opts {
    int greedy;     /* argmax, ties to the lowest token id */
    int top_k;      /* 2 for collection; <= 0: no top-k */
    float top_p;    /* 0.9 for collection; >= 1: no top-p */
    float reward;   /* r*, already normalised (100) */
    int max_new;    /* at most 40 */
    int batch;      /* queries decoded together (memory bound); <= 0: 64 */
    int ignore_eos; /* benchmarks only: always decode max_new tokens */
} qpo_gen_opts;

void qpo_gen_opts_default(qpo_gen_opts *o); /* top-k 2, top-p 0.9, r* 100, 40 tokens */

/* n queries ([n,40] ids and masks, right-padded with eos); seeds [n]. out_ids [n,40] gets the
 * prompt tokens (the final eos included when the model produced it), padded with eos;
 * out_len [n] their counts. */
int qpo_generate(qpo_policy *p, const qpo_gen_opts *o, int n, const int32_t *query_ids,
                 const int32_t *query_mask, const uint64_t *seeds, int32_t *out_ids, int *out_len,
                 char *errbuf, size_t errlen);

/* The sampling rule on one row of logits: keeps the top_k largest (ties: lower id first), then
 * the smallest prefix whose probability mass reaches top_p (the crossing token kept). Writes
 * the kept ids, best first, and their renormalised probabilities; returns how many. */
int qpo_sample_filter(const float *logits, int V, int top_k, float top_p, int32_t *ids,
                      double *probs);
/* One token: greedy, or a draw from qpo_sample_filter's set with u = hash(seed, step). */
int32_t qpo_sample_token(const float *logits, int V, const qpo_gen_opts *o, uint64_t seed,
                         int step);

#endif
