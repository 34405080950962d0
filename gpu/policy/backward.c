/* The backward pass, mirror of model.c: head gradients first, then the blocks in reverse,
 * then the embeddings. Activation gradients accumulate (backend contract), so each scratch
 * buffer is zeroed before it is written. */
#include <stdlib.h>

#include "model_internal.h"

static void block_backward(qpo_policy *p, qpo_acts *a, int l, const float *xin, int B, int T) {
    const qpo_backend *be = p->be;
    const qpo_layer_w *w = &p->w.h[l];
    qpo_layer_w *g = &p->g.h[l];
    qpo_layer_acts *L = &a->h[l];
    const qpo_step_opts *o = &p->last;
    int C = p->cfg.d, N = B * T;
    size_t NC = (size_t)N * C;
    /* MLP branch: a->dres holds d res3 */
    be->zero(a->dscratch, sizeof(float) * NC);
    be->accumulate(a->dscratch, a->dres, NC);
    be->dropout_backward(a->dscratch, NC, qpo_model_dropout(o, 3 + 3 * (uint64_t)l));
    be->gelu_forward(a->gelu, L->fch, NC * 4); /* recomputed: cheaper than 4C floats/layer */
    be->zero(a->dfchg, sizeof(float) * NC * 4);
    be->matmul_backward(a->dfchg, g->fcprojw, g->fcprojb, a->dscratch, a->gelu, w->fcprojw, N,
                        4 * C, C, 1);
    be->zero(a->dfch, sizeof(float) * NC * 4);
    be->gelu_backward(a->dfch, L->fch, a->dfchg, NC * 4);
    be->zero(a->dln, sizeof(float) * NC);
    be->matmul_backward(a->dln, g->fcw, g->fcb, a->dfch, L->ln2, w->fcw, N, C, 4 * C, 1);
    be->layernorm_backward(a->dres, g->ln2w, g->ln2b, a->dln, L->res2, w->ln2w, L->ln2_mean,
                           L->ln2_rstd, N, C);
    /* attention branch: a->dres now holds d res2 */
    be->zero(a->dscratch, sizeof(float) * NC);
    be->accumulate(a->dscratch, a->dres, NC);
    be->dropout_backward(a->dscratch, NC, qpo_model_dropout(o, 2 + 3 * (uint64_t)l));
    be->zero(a->datty, sizeof(float) * NC);
    be->matmul_backward(a->datty, g->projw, g->projb, a->dscratch, L->atty, w->projw, N, C, C, 1);
    be->zero(a->dqkv, sizeof(float) * NC * 3);
    be->attention_backward(a->dqkv, a->datty, L->qkv, L->probs, a->key_mask, B, T, C, p->cfg.n_head,
                           qpo_model_dropout(o, 1 + 3 * (uint64_t)l));
    be->zero(a->dln, sizeof(float) * NC);
    be->matmul_backward(a->dln, g->qkvw, g->qkvb, a->dqkv, L->ln1, w->qkvw, N, C, 3 * C, 1);
    be->layernorm_backward(a->dres, g->ln1w, g->ln1b, a->dln, xin, w->ln1w, L->ln1_mean,
                           L->ln1_rstd, N, C);
}

/* Into a->dlnf: the prompt head (dlogits already in a->logits) and the return head. */
static void heads_backward(qpo_policy *p, qpo_acts *a, int B) {
    const qpo_backend *be = p->be;
    int C = p->cfg.d, M = a->M;
    size_t MC = (size_t)M * C;
    be->zero(a->dlnf, sizeof(float) * B * QPO_PGDT_SEQ * C);
    be->zero(a->dhr, sizeof(float) * MC);
    be->matmul_backward(a->dhr, p->g.wte, NULL, a->logits, a->hr, p->w.wte, M, C, p->cfg.vocab, 0);
    be->zero(a->dhm, sizeof(float) * MC);
    be->relu_backward(a->dhm, a->hr, a->dhr, MC);
    be->zero(a->dhp, sizeof(float) * MC);
    be->matmul_backward(a->dhp, p->g.mlpw, p->g.mlpb, a->dhm, a->hp, p->w.mlpw, M, C, C, 0);
    be->gather_rows_backward(a->dlnf, a->dhp, a->rows, M, C);
    be->zero(a->dhR, sizeof(float) * B * C);
    be->matmul_backward(a->dhR, p->g.prw, p->g.prb, a->dpred, a->hR, p->w.prw, B, C, 1, 0);
    be->gather_rows_backward(a->dlnf, a->dhR, a->rowsR, B, C);
}

static void embed_backward(qpo_policy *p, qpo_acts *a, int B) {
    const qpo_backend *be = p->be;
    int T = QPO_PGDT_SEQ, C = p->cfg.d, N = B * T;
    be->dropout_backward(a->dres, (size_t)N * C, qpo_model_dropout(&p->last, 0));
    be->position_backward(p->g.wpe, a->dres, B, T, 0, C);
    be->zero(a->demb, sizeof(float) * N * C);
    be->layernorm_backward(a->demb, p->g.elnw, p->g.elnb, a->dres, a->emb, p->w.elnw, a->eln_mean,
                           a->eln_rstd, N, C);
    be->pgdt_embed_backward(p->g.wte, p->g.seg, p->g.retw, p->g.retb, a->demb, a->qids, a->pids,
                            a->reward, B, QPO_PGDT_QLEN, QPO_PGDT_PLEN, C);
}

void qpo_policy_backward(qpo_policy *p) {
    const qpo_backend *be = p->be;
    qpo_acts *a = p->acts;
    if (!a || a->M == 0)
        abort(); /* a caller bug: backward needs a successful qpo_policy_forward first */
    int B = a->B, T = QPO_PGDT_SEQ, C = p->cfg.d, nl = p->cfg.n_layer;
    be->zero(p->grads, sizeof(float) * p->nparams);
    heads_backward(p, a, B);
    be->zero(a->dres, sizeof(float) * B * T * C);
    be->layernorm_backward(a->dres, p->g.lnfw, p->g.lnfb, a->dlnf, a->h[nl - 1].res3, p->w.lnfw,
                           a->lnf_mean, a->lnf_rstd, B * T, C);
    for (int l = nl - 1; l >= 0; l--)
        block_backward(p, a, l, l ? a->h[l - 1].res3 : a->x0, B, T);
    embed_backward(p, a, B);
}
