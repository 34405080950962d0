/* D_0 for `qpo offline-eval`: records through the importer's own parsing, a seeded split by
 * query, and the dense vocabulary the training rows need. */
#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "hash.h"
#include "import.h"
#include "reward_formula.h"
#include "offline_eval.h"

static uint64_t fnv1a(const char *s) {
    uint64_t h = 0xcbf29ce484222325ULL;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 0x100000001b3ULL;
    return h;
}

typedef struct keyed {
    const char *text;
    uint64_t key;
    size_t i;
} keyed;

static int by_text(const void *a, const void *b) {
    const keyed *x = a, *y = b;
    int c = strcmp(x->text, y->text);
    return c ? c : (x->i > y->i) - (x->i < y->i);
}

static int by_key(const void *a, const void *b) {
    const keyed *x = a, *y = b;
    if (x->key != y->key)
        return x->key < y->key ? -1 : 1;
    return strcmp(x->text, y->text);
}

/* Distinct query texts, in sorted order, and each record's index among them. */
static int index_queries(oe_d0 *d) {
    keyed *k = malloc(sizeof *k * d->n);
    d->query_of = malloc(sizeof *d->query_of * d->n);
    d->queries = malloc(sizeof *d->queries * d->n);
    if (!k || !d->query_of || !d->queries) {
        free(k);
        return -1;
    }
    for (size_t i = 0; i < d->n; i++)
        k[i] = (keyed){d->recs[i].query, 0, i};
    qsort(k, d->n, sizeof *k, by_text);
    for (size_t i = 0; i < d->n; i++) {
        if (i == 0 || strcmp(k[i].text, k[i - 1].text))
            d->queries[d->nq++] = (char *)k[i].text;
        d->query_of[k[i].i] = d->nq - 1;
    }
    free(k);
    return 0;
}

static int take_record(oe_d0 *d, const qpo_d0_import *imp, const json_t *rec, size_t i,
                       qpo_err *err) {
    json_t *row = qpo_d0_record(imp, rec, err);
    if (!row) {
        qpo_err_prefix(err, "%s: record %zu", imp->file, i);
        return -1;
    }
    qpo_text_record *r = &d->recs[d->n];
    r->query = strdup(json_string_value(json_object_get(row, "query")));
    r->prompt = strdup(json_string_value(json_object_get(row, "prompt")));
    r->raw_reward = json_real_value(json_object_get(row, "raw_reward"));
    json_decref(row);
    if (!r->query || !r->prompt)
        return qpo_err_set(err, QPO_EXIT_RUNTIME, "out of memory reading %s", imp->file);
    d->n++;
    return 0;
}

int oe_d0_load(oe_d0 *d, const char *file, const char *task, const char *setting,
               const char *model_key, qpo_err *err) {
    memset(d, 0, sizeof *d);
    qpo_d0_import imp = {.file = file,
                         .task = task,
                         .setting = setting,
                         .target = "",
                         .model_key = model_key,
                         .avg_acc_weight =
                             QPO_REWARD_AVG_ACC_WEIGHT}; /* the released D_0's reward */
    json_t *all = qpo_d0_load(file, err);
    if (!all)
        return -1;
    int rc = 0;
    if (json_array_size(all) == 0)
        rc = qpo_err_set(err, QPO_EXIT_USAGE, "%s: no records", file);
    else if (!(d->recs = calloc(json_array_size(all), sizeof *d->recs)))
        rc = qpo_err_set(err, QPO_EXIT_RUNTIME, "out of memory reading %s", file);
    for (size_t i = 0; rc == 0 && i < json_array_size(all); i++)
        rc = take_record(d, &imp, json_array_get(all, i), i, err);
    json_decref(all);
    if (rc == 0 && index_queries(d))
        rc = qpo_err_set(err, QPO_EXIT_RUNTIME, "out of memory reading %s", file);
    if (rc == 0 && d->nq < 2)
        rc = qpo_err_set(err, QPO_EXIT_USAGE,
                         "%s: %zu distinct quer%s; holding some out needs "
                         "at least 2",
                         file, d->nq, d->nq == 1 ? "y" : "ies");
    return rc;
}

int oe_d0_split(oe_d0 *d, double frac, uint64_t seed, qpo_err *err) {
    if (!(frac > 0 && frac < 1))
        return qpo_err_set(err, QPO_EXIT_USAGE, "--holdout: %g is not in (0, 1)", frac);
    keyed *k = malloc(sizeof *k * d->nq);
    d->held_out = calloc(d->nq, sizeof *d->held_out);
    if (!k || !d->held_out) {
        free(k);
        return qpo_err_set(err, QPO_EXIT_RUNTIME, "out of memory");
    }
    for (size_t q = 0; q < d->nq; q++)
        k[q] = (keyed){d->queries[q], qpo_hash2(seed, fnv1a(d->queries[q])), q};
    qsort(k, d->nq, sizeof *k, by_key);
    size_t n = (size_t)llround(frac * (double)d->nq);
    n = n < 1 ? 1 : n > d->nq - 1 ? d->nq - 1 : n;
    for (size_t i = 0; i < n; i++)
        d->held_out[k[i].i] = 1;
    free(k);
    return 0;
}

void oe_d0_free(oe_d0 *d) {
    for (size_t i = 0; i < d->n; i++) {
        free((char *)d->recs[i].query);
        free((char *)d->recs[i].prompt);
    }
    free(d->recs);
    free(d->query_of);
    free(d->queries);
    free(d->held_out);
    memset(d, 0, sizeof *d);
}

static void mark(int32_t *seen, const int32_t *ids, size_t n, int32_t eos) {
    for (size_t i = 0; i < n; i++)
        if (ids[i] != eos)
            seen[ids[i]] = 1;
}

int oe_vocab_build(oe_vocab *v, const qpo_records *train, int32_t src_vocab, int32_t src_eos) {
    memset(v, 0, sizeof *v);
    v->to_dense = calloc((size_t)src_vocab, sizeof *v->to_dense);
    if (!v->to_dense)
        return -1;
    size_t n = train->n * QPO_PGDT_QLEN;
    mark(v->to_dense, train->query_ids, n, src_eos);
    mark(v->to_dense, train->prompt_ids, train->n * QPO_PGDT_PLEN, src_eos);
    int32_t next = 0;
    for (int32_t id = 0; id < src_vocab; id++)
        v->to_dense[id] = v->to_dense[id] ? next++ : -1;
    v->unk = next;
    v->eos = next + 1;
    v->size = next + 2;
    v->src_eos = src_eos;
    v->to_dense[src_eos] = v->eos;
    return 0;
}

void oe_vocab_map(const oe_vocab *v, int32_t *ids, size_t n) {
    for (size_t i = 0; i < n; i++)
        ids[i] = v->to_dense[ids[i]] < 0 ? v->unk : v->to_dense[ids[i]];
}

void oe_vocab_free(oe_vocab *v) {
    free(v->to_dense);
    memset(v, 0, sizeof *v);
}
