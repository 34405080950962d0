#ifndef QPO_POLICY_MODEL_INTERNAL_H
#define QPO_POLICY_MODEL_INTERNAL_H

/* The policy's insides, shared by model.c, params.c, checkpoint.c, generate.c and train.c. */

#include "policy.h"

typedef struct qpo_layer_w {
    float *ln1w, *ln1b, *qkvw, *qkvb, *projw, *projb, *ln2w, *ln2b, *fcw, *fcb, *fcprojw, *fcprojb;
} qpo_layer_w;

/* Pointers into a flat buffer (parameters or gradients). */
typedef struct qpo_weights {
    float *wte, *wpe, *lnfw, *lnfb, *seg, *retw, *retb, *elnw, *elnb, *mlpw, *mlpb, *prw, *prb;
    qpo_layer_w *h; /* [n_layer] */
} qpo_weights;

typedef struct qpo_layer_acts {
    float *ln1, *ln1_mean, *ln1_rstd, *qkv, *atty, *probs, *res2, *ln2, *ln2_mean, *ln2_rstd, *fch,
        *res3;
} qpo_layer_acts;

/* Activations for a batch of B sequences of T = 81 positions, and backward scratch. */
typedef struct qpo_acts {
    int B, M; /* M: prompt rows with a target, filled per forward */
    float *emb, *eln, *eln_mean, *eln_rstd, *x0;
    qpo_layer_acts *h;
    float *lnf, *lnf_mean, *lnf_rstd;
    float *hp, *hm, *hr, *logits, *losses, *hR, *pred;
    int32_t *key_mask, *qids, *pids, *rows, *targets, *rowsR;
    float *reward;
    /* backward */
    float *dres, *dln, *dscratch, *dqkv, *datty, *dfch, *dfchg, *demb, *dlnf, *dhp, *dhm, *dhr,
        *dhR, *dpred;
    float *scratch;
    float *gelu; /* GELU(fch) of the layer at hand: recomputed in backward, not kept per layer */
} qpo_acts;

struct qpo_policy {
    qpo_policy_config cfg;
    const qpo_backend *be;
    qpo_policy_tensor *tensors;
    char (*names)[64];
    size_t ntensors, nparams;
    float *params, *grads;
    qpo_weights w, g;
    qpo_acts *acts;
    /* the last forward, for backward */
    qpo_step_opts last;
    float *host_pred, *host_losses; /* [B], [B*40] */
    int32_t *vocab_ids;             /* base ids of a subset vocabulary (policy.h), or NULL */
    size_t n_vocab_ids;
};

int qpo_params_build(qpo_policy *p);
void qpo_params_bind(const qpo_policy *p, float *base, qpo_weights *out);
qpo_acts *qpo_acts_new(const qpo_policy *p, int B);
void qpo_acts_free(const qpo_policy *p, qpo_acts *a);
int qpo_acts_ensure(qpo_policy *p, int B);

/* model.c pieces shared with generate.c: the transformer blocks over a->x0 [B,T,C] (already
 * position-encoded), leaving ln_f's output in a->lnf. key_mask [B,T]. */
void qpo_model_blocks_forward(qpo_policy *p, qpo_acts *a, int B, int T, const int32_t *key_mask,
                              const qpo_step_opts *o);
/* The dropout of call site `site` in the step whose seed is o->dropout_seed. */
qpo_dropout qpo_model_dropout(const qpo_step_opts *o, uint64_t site);

#endif
