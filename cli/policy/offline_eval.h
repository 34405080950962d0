#ifndef QPO_CLI_OFFLINE_EVAL_H
#define QPO_CLI_OFFLINE_EVAL_H

/* `qpo offline-eval`: a released D_0 split by query into training and held-out parts, the
 * policy trained on the first and judged on the second by the rewards D_0 logged. */

#include <stddef.h>
#include <stdint.h>

#include "error.h"
#include "records.h"

/* D_0 as text records; query_of[i] indexes the distinct query texts. */
typedef struct oe_d0 {
    size_t n, nq;
    qpo_text_record *recs; /* strings owned here */
    size_t *query_of;
    char **queries;
    int *held_out; /* [nq] */
} oe_d0;

/* Reads FILE with the importer's parsing and raw-reward rule; errors name file and record. */
int oe_d0_load(oe_d0 *d, const char *file, const char *task, const char *setting,
               const char *model_key, qpo_err *err);
/* Marks round(frac * nq) queries (at least 1, at most nq - 1) held out, chosen by a hash of
 * (seed, query text), so the split does not depend on record order. */
int oe_d0_split(oe_d0 *d, double frac, uint64_t seed, qpo_err *err);
void oe_d0_free(oe_d0 *d);

/* A dense vocabulary of the tokens the training rows use: training on D_0 alone never needs
 * the other GPT-2 ids, and the prompt head's matmul shrinks with them. eos stays last; a
 * held-out token never seen in training maps to unk. */
typedef struct oe_vocab {
    int32_t *to_dense; /* [gpt2 vocab] -> dense id, -1 unseen */
    int32_t size, unk, eos, src_eos;
} oe_vocab;

int oe_vocab_build(oe_vocab *v, const qpo_records *train, int32_t src_vocab, int32_t src_eos);
void oe_vocab_map(const oe_vocab *v, int32_t *ids, size_t n);
void oe_vocab_free(oe_vocab *v);

#endif
