/* Batched generation with a KV cache: a prefill over [R, q_1..q_40] with the training
 * forward, then one position per step through the same ops on B rows. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "generate.h"
#include "model_internal.h"

#define PREFIX (1 + QPO_PGDT_QLEN)

void qpo_gen_opts_default(qpo_gen_opts *o) {
    *o = (qpo_gen_opts){
        .greedy = 0, .top_k = 2, .top_p = 0.9f, .reward = 100.0f, .max_new = 40, .batch = 64};
}

typedef struct gen_state {
    qpo_policy *p;
    int B, Tmax;
    float *kc, *vc; /* [L][B,Tmax,C] */
    int32_t *mask;  /* [B,Tmax] */
    float *logits;  /* [B,V] host */
    float *dlogits; /* [B,V] backend */
    int32_t *ids;   /* [B] backend */
} gen_state;

static float *kcache(gen_state *g, int l) {
    return g->kc + (size_t)l * g->B * g->Tmax * g->p->cfg.d;
}

static float *vcache(gen_state *g, int l) {
    return g->vc + (size_t)l * g->B * g->Tmax * g->p->cfg.d;
}

/* Head on rows of a->lnf: relu(mlp_head(h)) @ wte^T into host logits [B,V]. */
static void head_logits(gen_state *g, const int32_t *rows_host) {
    qpo_policy *p = g->p;
    qpo_acts *a = p->acts;
    const qpo_backend *be = p->be;
    int B = g->B, C = p->cfg.d;
    be->upload(a->rows, rows_host, sizeof(int32_t) * B);
    be->gather_rows(a->hp, a->lnf, a->rows, B, C);
    be->matmul_rows_forward(a->hm, a->hp, p->w.mlpw, p->w.mlpb, B, C, C, 0);
    be->relu_forward(a->hr, a->hm, (size_t)B * C);
    be->matmul_rows_forward(g->dlogits, a->hr, p->w.wte, NULL, B, C, p->cfg.vocab, 0);
    be->download(g->logits, g->dlogits, sizeof(float) * B * p->cfg.vocab);
}

static void prefill(gen_state *g, const int32_t *qids, const int32_t *qmask, float reward) {
    qpo_policy *p = g->p;
    qpo_acts *a = p->acts;
    const qpo_backend *be = p->be;
    int B = g->B, C = p->cfg.d, Q = QPO_PGDT_QLEN;
    qpo_step_opts eval = {0};
    int32_t *mask = malloc(sizeof(int32_t) * B * g->Tmax), *rows = malloc(sizeof(int32_t) * B);
    float *rw = malloc(sizeof(float) * B);
    if (!mask || !rows || !rw)
        abort();
    for (int b = 0; b < B; b++) {
        for (int t = 0; t < g->Tmax; t++)
            mask[b * g->Tmax + t] = t == 0 || t >= PREFIX || qmask[b * Q + t - 1] != 0;
        rows[b] = b * PREFIX + PREFIX - 1;
        rw[b] = qpo_policy_reward_input(&p->cfg, reward);
    }
    be->upload(g->mask, mask, sizeof(int32_t) * B * g->Tmax);
    /* the prefill's own [B,41] mask sits in a->key_mask */
    for (int b = 0; b < B; b++)
        memmove(mask + b * PREFIX, mask + b * g->Tmax, sizeof(int32_t) * PREFIX);
    be->upload(a->key_mask, mask, sizeof(int32_t) * B * PREFIX);
    be->upload(a->qids, qids, sizeof(int32_t) * B * Q);
    be->upload(a->reward, rw, sizeof(float) * B);
    be->pgdt_embed_forward(a->emb, a->qids, NULL, a->reward, p->w.wte, p->w.seg, p->w.retw,
                           p->w.retb, B, Q, 0, C);
    be->layernorm_forward(a->eln, a->eln_mean, a->eln_rstd, a->emb, p->w.elnw, p->w.elnb,
                          B * PREFIX, C);
    be->position_forward(a->x0, a->eln, p->w.wpe, B, PREFIX, 0, C);
    qpo_model_blocks_forward(p, a, B, PREFIX, a->key_mask, &eval);
    for (int l = 0; l < p->cfg.n_layer; l++)
        be->kv_store(kcache(g, l), vcache(g, l), a->h[l].qkv, B, PREFIX, 0, g->Tmax, C);
    head_logits(g, rows);
    free(mask), free(rows), free(rw);
}

static void decode_layer(gen_state *g, int l, const float *xin, int pos) {
    qpo_policy *p = g->p;
    qpo_acts *a = p->acts;
    const qpo_backend *be = p->be;
    const qpo_layer_w *w = &p->w.h[l];
    qpo_layer_acts *L = &a->h[l];
    int B = g->B, C = p->cfg.d;
    size_t BC = (size_t)B * C;
    be->layernorm_forward(L->ln1, L->ln1_mean, L->ln1_rstd, xin, w->ln1w, w->ln1b, B, C);
    be->matmul_rows_forward(L->qkv, L->ln1, w->qkvw, w->qkvb, B, C, 3 * C, 1);
    be->kv_store(kcache(g, l), vcache(g, l), L->qkv, B, 1, pos, g->Tmax, C);
    be->attention_decode(L->atty, L->qkv, kcache(g, l), vcache(g, l), g->mask, B, pos + 1, g->Tmax,
                         C, p->cfg.n_head);
    be->matmul_rows_forward(a->scratch, L->atty, w->projw, w->projb, B, C, C, 1);
    be->residual_forward(L->res2, xin, a->scratch, BC);
    be->layernorm_forward(L->ln2, L->ln2_mean, L->ln2_rstd, L->res2, w->ln2w, w->ln2b, B, C);
    be->matmul_rows_forward(L->fch, L->ln2, w->fcw, w->fcb, B, C, 4 * C, 1);
    be->gelu_forward(a->gelu, L->fch, BC * 4);
    be->matmul_rows_forward(a->scratch, a->gelu, w->fcprojw, w->fcprojb, B, 4 * C, C, 1);
    be->residual_forward(L->res3, L->res2, a->scratch, BC);
}

/* Feeds the tokens ids [B] at position pos; leaves the next logits in g->logits. */
static void decode_step(gen_state *g, const int32_t *ids, int pos) {
    qpo_policy *p = g->p;
    qpo_acts *a = p->acts;
    const qpo_backend *be = p->be;
    int B = g->B, C = p->cfg.d;
    be->upload(g->ids, ids, sizeof(int32_t) * B);
    be->gather_rows(a->emb, p->w.wte, g->ids, B, C);
    be->position_forward(a->emb, a->emb, p->w.seg, B, 1, 2, C); /* + seg[2] (prompt) */
    be->layernorm_forward(a->eln, a->eln_mean, a->eln_rstd, a->emb, p->w.elnw, p->w.elnb, B, C);
    be->position_forward(a->x0, a->eln, p->w.wpe, B, 1, pos, C);
    const float *x = a->x0;
    for (int l = 0; l < p->cfg.n_layer; l++) {
        decode_layer(g, l, x, pos);
        x = a->h[l].res3;
    }
    be->layernorm_forward(a->lnf, a->lnf_mean, a->lnf_rstd, x, p->w.lnfw, p->w.lnfb, B, C);
    int32_t *rows = malloc(sizeof(int32_t) * B);
    if (!rows)
        abort();
    for (int b = 0; b < B; b++)
        rows[b] = b;
    head_logits(g, rows);
    free(rows);
}

static int gen_state_init(gen_state *g, qpo_policy *p, int B) {
    const qpo_backend *be = p->be;
    size_t C = p->cfg.d, L = p->cfg.n_layer;
    memset(g, 0, sizeof *g);
    g->p = p, g->B = B, g->Tmax = QPO_PGDT_SEQ;
    g->kc = be->alloc(sizeof(float) * L * B * g->Tmax * C);
    g->vc = be->alloc(sizeof(float) * L * B * g->Tmax * C);
    g->mask = be->alloc(sizeof(int32_t) * B * g->Tmax);
    g->dlogits = be->alloc(sizeof(float) * B * p->cfg.vocab);
    g->ids = be->alloc(sizeof(int32_t) * B);
    g->logits = malloc(sizeof(float) * B * p->cfg.vocab);
    return g->kc && g->vc && g->mask && g->dlogits && g->ids && g->logits ? 0 : -1;
}

static void gen_state_free(gen_state *g) {
    const qpo_backend *be = g->p->be;
    be->free(g->kc), be->free(g->vc), be->free(g->mask), be->free(g->dlogits);
    be->free(g->ids);
    free(g->logits);
}

/* B queries: ids/mask [B,40] -> out [B,40], len [B]. */
static void generate_chunk(gen_state *g, const qpo_gen_opts *o, const int32_t *qids,
                           const int32_t *qmask, const uint64_t *seeds, int32_t *out, int *len) {
    int B = g->B, V = g->p->cfg.vocab, eos = V - 1;
    int32_t *cur = malloc(sizeof(int32_t) * B);
    if (!cur)
        abort();
    prefill(g, qids, qmask, o->reward);
    int live = B;
    for (int b = 0; b < B; b++)
        len[b] = 0;
    for (int s = 0; s < o->max_new && live > 0; s++) {
        if (s > 0)
            decode_step(g, cur, PREFIX + s - 1);
        for (int b = 0; b < B; b++) {
            if (s > 0 &&
                (len[b] < s || (out[b * QPO_PGDT_PLEN + s - 1] == eos && !o->ignore_eos))) {
                cur[b] = eos; /* finished rows ride along; their tokens are not kept */
                continue;
            }
            cur[b] = qpo_sample_token(g->logits + (size_t)b * V, V, o, seeds[b], s);
            out[b * QPO_PGDT_PLEN + s] = cur[b];
            len[b] = s + 1;
            if (cur[b] == eos && !o->ignore_eos)
                live--;
        }
    }
    free(cur);
}

int qpo_generate(qpo_policy *p, const qpo_gen_opts *o, int n, const int32_t *query_ids,
                 const int32_t *query_mask, const uint64_t *seeds, int32_t *out_ids, int *out_len,
                 char *errbuf, size_t errlen) {
    if (o->max_new < 1 || o->max_new > QPO_PGDT_PLEN) {
        snprintf(errbuf, errlen, "max_new %d outside 1..%d", o->max_new, QPO_PGDT_PLEN);
        return -1;
    }
    for (int i = 0; i < n * QPO_PGDT_QLEN; i++)
        if (query_ids[i] < 0 || query_ids[i] >= p->cfg.vocab) {
            snprintf(errbuf, errlen, "query %d: token id %d outside the vocabulary (%d)",
                     i / QPO_PGDT_QLEN, query_ids[i], p->cfg.vocab);
            return -1;
        }
    for (int i = 0; i < n * QPO_PGDT_PLEN; i++)
        out_ids[i] = p->cfg.vocab - 1;
    int chunk = o->batch > 0 ? o->batch : 64;
    for (int i0 = 0; i0 < n; i0 += chunk) {
        int B = n - i0 < chunk ? n - i0 : chunk;
        gen_state g = {.p = p};
        if (qpo_acts_ensure(p, B) || gen_state_init(&g, p, B)) {
            gen_state_free(&g);
            snprintf(errbuf, errlen, "out of memory generating for %d queries", B);
            return -1;
        }
        size_t off = (size_t)i0 * QPO_PGDT_QLEN;
        generate_chunk(&g, o, query_ids + off, query_mask + off, seeds + i0, out_ids + off,
                       out_len + i0);
        gen_state_free(&g);
    }
    return 0;
}
