/* GPT-2 + PGDT forward and backward, written as calls to the backend's ops so the same code
 * drives the CPU and CUDA backends. Shapes: B sequences, T = 81 positions, C = d. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hash.h"
#include "model_internal.h"

qpo_policy *qpo_policy_new(const qpo_policy_config *cfg, const qpo_backend *be, char *errbuf,
                           size_t errlen) {
    if (qpo_policy_config_check(cfg, errbuf, errlen))
        return NULL;
    qpo_policy *p = calloc(1, sizeof *p);
    if (!p)
        goto oom;
    p->cfg = *cfg;
    p->be = be;
    p->w.h = calloc(cfg->n_layer, sizeof *p->w.h);
    p->g.h = calloc(cfg->n_layer, sizeof *p->g.h);
    if (!p->w.h || !p->g.h || qpo_params_build(p))
        goto oom;
    p->params = be->alloc(sizeof(float) * p->nparams);
    p->grads = be->alloc(sizeof(float) * p->nparams);
    if (!p->params || !p->grads)
        goto oom;
    qpo_params_bind(p, p->params, &p->w);
    qpo_params_bind(p, p->grads, &p->g);
    return p;
oom:
    snprintf(errbuf, errlen, "out of memory allocating a policy (%d layers, d %d, vocab %d)",
             cfg->n_layer, cfg->d, cfg->vocab);
    qpo_policy_free(p);
    return NULL;
}

void qpo_policy_free(qpo_policy *p) {
    if (!p)
        return;
    qpo_acts_free(p, p->acts);
    if (p->be) {
        p->be->free(p->params);
        p->be->free(p->grads);
    }
    free(p->w.h);
    free(p->g.h);
    free(p->tensors);
    free(p->names);
    free(p->vocab_ids);
    free(p->host_pred);
    free(p->host_losses);
    free(p);
}

const qpo_policy_config *qpo_policy_config_of(const qpo_policy *p) {
    return &p->cfg;
}

const qpo_backend *qpo_policy_backend(const qpo_policy *p) {
    return p->be;
}

float *qpo_policy_params(qpo_policy *p) {
    return p->params;
}

float *qpo_policy_grads(qpo_policy *p) {
    return p->grads;
}

int qpo_batch_check(const qpo_batch *b, int vocab, char *errbuf, size_t errlen) {
    if (b->B < 1) {
        snprintf(errbuf, errlen, "batch is empty");
        return -1;
    }
    for (int i = 0; i < b->B * QPO_PGDT_QLEN; i++) {
        int32_t q = b->query_ids[i], pr = b->prompt_ids[i];
        if (q < 0 || q >= vocab || pr < 0 || pr >= vocab) {
            snprintf(errbuf, errlen, "batch row %d: token id %d outside the vocabulary (%d)",
                     i / QPO_PGDT_QLEN, (q < 0 || q >= vocab) ? q : pr, vocab);
            return -1;
        }
    }
    return 0;
}

/* Sites: 0 = embeddings, then 3 per layer (attention probs, attention out, MLP out). */
qpo_dropout qpo_model_dropout(const qpo_step_opts *o, uint64_t site) {
    qpo_dropout d = {o->dropout, qpo_hash2(o->dropout_seed, site)};
    return d;
}

static void block_forward(qpo_policy *p, qpo_acts *a, int l, const float *xin, int B, int T,
                          const int32_t *key_mask, const qpo_step_opts *o) {
    const qpo_backend *be = p->be;
    const qpo_layer_w *w = &p->w.h[l];
    qpo_layer_acts *L = &a->h[l];
    int C = p->cfg.d, N = B * T;
    size_t NC = (size_t)N * C;
    be->layernorm_forward(L->ln1, L->ln1_mean, L->ln1_rstd, xin, w->ln1w, w->ln1b, N, C);
    be->matmul_forward(L->qkv, L->ln1, w->qkvw, w->qkvb, N, C, 3 * C, 1);
    be->attention_forward(L->atty, L->probs, L->qkv, key_mask, B, T, C, p->cfg.n_head,
                          qpo_model_dropout(o, 1 + 3 * (uint64_t)l));
    be->matmul_forward(a->scratch, L->atty, w->projw, w->projb, N, C, C, 1);
    be->dropout_forward(a->scratch, NC, qpo_model_dropout(o, 2 + 3 * (uint64_t)l));
    be->residual_forward(L->res2, xin, a->scratch, NC);
    be->layernorm_forward(L->ln2, L->ln2_mean, L->ln2_rstd, L->res2, w->ln2w, w->ln2b, N, C);
    be->matmul_forward(L->fch, L->ln2, w->fcw, w->fcb, N, C, 4 * C, 1);
    be->gelu_forward(a->gelu, L->fch, NC * 4);
    be->matmul_forward(a->scratch, a->gelu, w->fcprojw, w->fcprojb, N, 4 * C, C, 1);
    be->dropout_forward(a->scratch, NC, qpo_model_dropout(o, 3 + 3 * (uint64_t)l));
    be->residual_forward(L->res3, L->res2, a->scratch, NC);
}

void qpo_model_blocks_forward(qpo_policy *p, qpo_acts *a, int B, int T, const int32_t *key_mask,
                              const qpo_step_opts *o) {
    const float *x = a->x0;
    for (int l = 0; l < p->cfg.n_layer; l++) {
        block_forward(p, a, l, x, B, T, key_mask, o);
        x = a->h[l].res3;
    }
    p->be->layernorm_forward(a->lnf, a->lnf_mean, a->lnf_rstd, x, p->w.lnfw, p->w.lnfb, B * T,
                             p->cfg.d);
}

/* embed_return sees the config's reward input; the return head's target stays r_norm. */
static void upload_reward_input(qpo_policy *p, qpo_acts *a, const qpo_batch *b) {
    float *r = malloc(sizeof(float) * b->B);
    if (!r)
        abort();
    for (int i = 0; i < b->B; i++)
        r[i] = qpo_policy_reward_input(&p->cfg, b->reward[i]);
    p->be->upload(a->reward, r, sizeof(float) * b->B);
    free(r);
}

/* Uploads ids, masks and rewards; builds the key mask and the rows that carry a target. */
static void upload_batch(qpo_policy *p, qpo_acts *a, const qpo_batch *b) {
    const qpo_backend *be = p->be;
    int B = b->B, T = QPO_PGDT_SEQ, Q = QPO_PGDT_QLEN, P = QPO_PGDT_PLEN;
    int32_t *mask = malloc(sizeof(int32_t) * B * T), *rows = malloc(sizeof(int32_t) * B * P);
    int32_t *tg = malloc(sizeof(int32_t) * B * P), *rowsR = malloc(sizeof(int32_t) * B);
    if (!mask || !rows || !tg || !rowsR)
        abort();
    int M = 0;
    for (int i = 0; i < B; i++) {
        mask[i * T] = 1;
        for (int t = 0; t < Q; t++)
            mask[i * T + 1 + t] = b->query_mask[i * Q + t] != 0;
        for (int t = 0; t < P; t++) {
            mask[i * T + 1 + Q + t] = b->prompt_mask[i * P + t] != 0;
            if (b->prompt_mask[i * P + t]) {
                rows[M] = i * T + Q + t; /* last query slot predicts the first prompt token */
                tg[M++] = b->prompt_ids[i * P + t];
            }
        }
        rowsR[i] = i * T;
    }
    a->M = M;
    be->upload(a->key_mask, mask, sizeof(int32_t) * B * T);
    be->upload(a->rows, rows, sizeof(int32_t) * M);
    be->upload(a->targets, tg, sizeof(int32_t) * M);
    be->upload(a->rowsR, rowsR, sizeof(int32_t) * B);
    be->upload(a->qids, b->query_ids, sizeof(int32_t) * B * Q);
    be->upload(a->pids, b->prompt_ids, sizeof(int32_t) * B * P);
    upload_reward_input(p, a, b);
    free(mask), free(rows), free(tg), free(rowsR);
}

static void embed_forward(qpo_policy *p, qpo_acts *a, int B, const qpo_step_opts *o) {
    const qpo_backend *be = p->be;
    int T = QPO_PGDT_SEQ, C = p->cfg.d;
    be->pgdt_embed_forward(a->emb, a->qids, a->pids, a->reward, p->w.wte, p->w.seg, p->w.retw,
                           p->w.retb, B, QPO_PGDT_QLEN, QPO_PGDT_PLEN, C);
    be->layernorm_forward(a->eln, a->eln_mean, a->eln_rstd, a->emb, p->w.elnw, p->w.elnb, B * T, C);
    be->position_forward(a->x0, a->eln, p->w.wpe, B, T, 0, C);
    be->dropout_forward(a->x0, (size_t)B * T * C, qpo_model_dropout(o, 0));
}

/* Prompt head on rows (M of them): relu(mlp_head(h)) @ wte^T. */
static void prompt_head_forward(qpo_policy *p, qpo_acts *a, int M) {
    const qpo_backend *be = p->be;
    int C = p->cfg.d;
    be->gather_rows(a->hp, a->lnf, a->rows, M, C);
    be->matmul_forward(a->hm, a->hp, p->w.mlpw, p->w.mlpb, M, C, C, 0);
    be->relu_forward(a->hr, a->hm, (size_t)M * C);
    be->matmul_forward(a->logits, a->hr, p->w.wte, NULL, M, C, p->cfg.vocab, 0);
}

/* MSE of the return head on h_R, and the step's MSE weight (*lambda); leaves
 * d(lambda * MSE)/d pred in a->dpred for backward. */
static float return_head_mse(qpo_policy *p, qpo_acts *a, const qpo_batch *b, const qpo_step_opts *o,
                             float *lambda) {
    const qpo_backend *be = p->be;
    int B = b->B, C = p->cfg.d;
    be->gather_rows(a->hR, a->lnf, a->rowsR, B, C);
    be->matmul_forward(a->pred, a->hR, p->w.prw, p->w.prb, B, C, 1, 0);
    be->download(p->host_pred, a->pred, sizeof(float) * B);
    double s = 0.0;
    for (int i = 0; i < B; i++) {
        double d = (double)p->host_pred[i] - b->reward[i];
        s += d * d;
        p->host_pred[i] = (float)d;
    }
    float mse = (float)(s / B);
    *lambda = o->lambda_switch && mse < QPO_LAMBDA_SWITCH_MSE ? QPO_LAMBDA_SWITCHED : o->lambda;
    for (int i = 0; i < B; i++)
        p->host_pred[i] = (float)(*lambda * 2.0 * p->host_pred[i] / B);
    be->upload(a->dpred, p->host_pred, sizeof(float) * B);
    return mse;
}

int qpo_policy_forward(qpo_policy *p, const qpo_batch *b, const qpo_step_opts *o, qpo_loss *out,
                       char *errbuf, size_t errlen) {
    if (qpo_batch_check(b, p->cfg.vocab, errbuf, errlen))
        return -1;
    if (qpo_acts_ensure(p, b->B)) {
        snprintf(errbuf, errlen, "out of memory for activations of a batch of %d", b->B);
        return -1;
    }
    qpo_acts *a = p->acts;
    upload_batch(p, a, b);
    if (a->M == 0) {
        snprintf(errbuf, errlen, "batch has no prompt token with mask 1");
        return -1;
    }
    embed_forward(p, a, b->B, o);
    qpo_model_blocks_forward(p, a, b->B, QPO_PGDT_SEQ, a->key_mask, o);
    prompt_head_forward(p, a, a->M);
    p->be->crossentropy_fused(a->logits, a->losses, a->targets, a->M, p->cfg.vocab, 1.0f / a->M);
    p->be->download(p->host_losses, a->losses, sizeof(float) * a->M);
    double ce = 0.0;
    for (int i = 0; i < a->M; i++)
        ce += p->host_losses[i];
    out->ce = (float)(ce / a->M);
    out->mse = return_head_mse(p, a, b, o, &out->lambda);
    out->loss = out->ce + out->lambda * out->mse;
    p->last = *o;
    return 0;
}

int qpo_policy_logits(qpo_policy *p, const qpo_batch *b, float *out, char *errbuf, size_t errlen) {
    if (qpo_batch_check(b, p->cfg.vocab, errbuf, errlen))
        return -1;
    if (qpo_acts_ensure(p, b->B)) {
        snprintf(errbuf, errlen, "out of memory for activations of a batch of %d", b->B);
        return -1;
    }
    qpo_acts *a = p->acts;
    qpo_step_opts eval = {0};
    upload_batch(p, a, b);
    embed_forward(p, a, b->B, &eval);
    qpo_model_blocks_forward(p, a, b->B, QPO_PGDT_SEQ, a->key_mask, &eval);
    int M = b->B * QPO_PGDT_PLEN;
    int32_t *rows = malloc(sizeof(int32_t) * M);
    if (!rows)
        abort();
    for (int i = 0; i < M; i++)
        rows[i] = (i / QPO_PGDT_PLEN) * QPO_PGDT_SEQ + QPO_PGDT_QLEN + i % QPO_PGDT_PLEN;
    p->be->upload(a->rows, rows, sizeof(int32_t) * M);
    free(rows);
    prompt_head_forward(p, a, M);
    p->be->download(out, a->logits, sizeof(float) * M * p->cfg.vocab);
    a->M = 0; /* the rows no longer match a loss: backward needs a fresh forward */
    return 0;
}
