/* Token choice: greedy, or top-k then top-p with ties broken by token id. */
#include <math.h>
#include <stdlib.h>

#include "generate.h"
#include "hash.h"

typedef struct cand {
    float logit;
    int32_t id;
} cand;

static int cand_cmp(const void *a, const void *b) {
    const cand *x = a, *y = b;
    if (x->logit != y->logit)
        return x->logit > y->logit ? -1 : 1;
    return x->id < y->id ? -1 : x->id > y->id;
}

static int better(const cand *x, const cand *y) {
    return cand_cmp(x, y) < 0;
}

/* The k best candidates, sorted: a bounded insertion for small k (k = 2 in collection). */
static int top_candidates(const float *logits, int V, int k, cand *out) {
    int n = 0;
    for (int v = 0; v < V; v++) {
        cand c = {logits[v], v};
        if (n == k && !better(&c, &out[k - 1]))
            continue;
        int i = n < k ? n++ : k - 1;
        while (i > 0 && better(&c, &out[i - 1])) {
            out[i] = out[i - 1];
            i--;
        }
        out[i] = c;
    }
    return n;
}

int qpo_sample_filter(const float *logits, int V, int top_k, float top_p, int32_t *ids,
                      double *probs) {
    int k = top_k > 0 && top_k < V ? top_k : V;
    cand *c = malloc(sizeof(cand) * k);
    if (!c)
        abort();
    if (k < 64) {
        top_candidates(logits, V, k, c);
    } else {
        cand *all = malloc(sizeof(cand) * V);
        if (!all)
            abort();
        for (int v = 0; v < V; v++)
            all[v] = (cand){logits[v], v};
        qsort(all, V, sizeof(cand), cand_cmp);
        for (int i = 0; i < k; i++)
            c[i] = all[i];
        free(all);
    }
    double sum = 0.0;
    for (int i = 0; i < k; i++) {
        probs[i] = exp((double)c[i].logit - c[0].logit);
        sum += probs[i];
    }
    int kept = 0;
    double mass = 0.0;
    while (kept < k) {
        mass += probs[kept] / sum;
        ids[kept] = c[kept].id;
        kept++;
        if (top_p < 1.0f && mass >= top_p)
            break;
    }
    double kept_sum = 0.0;
    for (int i = 0; i < kept; i++)
        kept_sum += probs[i];
    for (int i = 0; i < kept; i++)
        probs[i] /= kept_sum;
    free(c);
    return kept;
}

int32_t qpo_sample_token(const float *logits, int V, const qpo_gen_opts *o, uint64_t seed,
                         int step) {
    if (o->greedy) {
        cand best;
        top_candidates(logits, V, 1, &best);
        return best.id;
    }
    int k = o->top_k > 0 && o->top_k < V ? o->top_k : V;
    int32_t *ids = malloc(sizeof(int32_t) * k);
    double *probs = malloc(sizeof(double) * k);
    if (!ids || !probs)
        abort();
    int n = qpo_sample_filter(logits, V, o->top_k, o->top_p, ids, probs);
    double u = qpo_hash_unit_f64(seed, (uint64_t)step), acc = 0.0;
    int32_t pick = ids[n - 1];
    for (int i = 0; i < n; i++) {
        acc += probs[i];
        if (u < acc) {
            pick = ids[i];
            break;
        }
    }
    free(ids);
    free(probs);
    return pick;
}
