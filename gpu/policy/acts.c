/* Activation buffers, sized for a batch of B sequences of 81 positions and kept between steps
 * of the same batch size. */
#include <stdlib.h>

#include "model_internal.h"

typedef struct allocator {
    const qpo_backend *be;
    int failed;
} allocator;

static void *get(allocator *al, size_t count, size_t size) {
    void *p = al->be->alloc(count * size);
    if (!p)
        al->failed = 1;
    return p;
}

#define F(n) get(&al, (n), sizeof(float))
#define I(n) get(&al, (n), sizeof(int32_t))

static void layer_acts(allocator *al_, qpo_layer_acts *L, size_t BT, size_t C, size_t probs) {
    allocator al = *al_;
    L->ln1 = F(BT * C), L->ln1_mean = F(BT), L->ln1_rstd = F(BT);
    L->qkv = F(BT * 3 * C), L->atty = F(BT * C), L->probs = F(probs), L->res2 = F(BT * C);
    L->ln2 = F(BT * C), L->ln2_mean = F(BT), L->ln2_rstd = F(BT);
    L->fch = F(BT * 4 * C), L->res3 = F(BT * C);
    al_->failed |= al.failed;
}

qpo_acts *qpo_acts_new(const qpo_policy *p, int B) {
    qpo_acts *a = calloc(1, sizeof *a);
    if (!a)
        return NULL;
    allocator al = {p->be, 0};
    size_t T = QPO_PGDT_SEQ, BT = (size_t)B * T, C = p->cfg.d, V = p->cfg.vocab;
    size_t M = (size_t)B * QPO_PGDT_PLEN;
    a->B = B;
    a->h = calloc(p->cfg.n_layer, sizeof *a->h);
    if (!a->h) {
        free(a);
        return NULL;
    }
    a->emb = F(BT * C), a->eln = F(BT * C), a->eln_mean = F(BT), a->eln_rstd = F(BT);
    a->x0 = F(BT * C);
    for (int l = 0; l < p->cfg.n_layer; l++)
        layer_acts(&al, &a->h[l], BT, C, (size_t)B * p->cfg.n_head * T * T);
    a->lnf = F(BT * C), a->lnf_mean = F(BT), a->lnf_rstd = F(BT);
    a->hp = F(M * C), a->hm = F(M * C), a->hr = F(M * C), a->logits = F(M * V);
    a->losses = F(M), a->hR = F((size_t)B * C), a->pred = F(B);
    a->key_mask = I(BT), a->qids = I((size_t)B * QPO_PGDT_QLEN), a->pids = I(M);
    a->rows = I(M), a->targets = I(M), a->rowsR = I(B), a->reward = F(B);
    a->dres = F(BT * C), a->dln = F(BT * C), a->dscratch = F(BT * C), a->dqkv = F(BT * 3 * C);
    a->datty = F(BT * C), a->dfch = F(BT * 4 * C), a->dfchg = F(BT * 4 * C);
    a->gelu = F(BT * 4 * C);
    a->demb = F(BT * C), a->dlnf = F(BT * C), a->dhp = F(M * C), a->dhm = F(M * C);
    a->dhr = F(M * C), a->dhR = F((size_t)B * C), a->dpred = F(B);
    a->scratch = F(BT * 4 * C);
    if (al.failed) {
        qpo_acts_free(p, a);
        return NULL;
    }
    return a;
}

#undef F
#undef I

void qpo_acts_free(const qpo_policy *p, qpo_acts *a) {
    if (!a)
        return;
    const qpo_backend *be = p->be;
    for (int l = 0; l < p->cfg.n_layer && a->h; l++) {
        qpo_layer_acts *L = &a->h[l];
        float *bufs[] = {L->ln1,  L->ln1_mean, L->ln1_rstd, L->qkv,      L->atty, L->probs,
                         L->res2, L->ln2,      L->ln2_mean, L->ln2_rstd, L->fch,  L->res3};
        for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++)
            be->free(bufs[i]);
    }
    void *bufs[] = {a->emb,      a->eln,      a->eln_mean, a->eln_rstd, a->x0,    a->lnf,
                    a->lnf_mean, a->lnf_rstd, a->hp,       a->hm,       a->hr,    a->logits,
                    a->losses,   a->hR,       a->pred,     a->key_mask, a->qids,  a->pids,
                    a->rows,     a->targets,  a->rowsR,    a->reward,   a->dres,  a->dln,
                    a->dscratch, a->dqkv,     a->datty,    a->dfch,     a->dfchg, a->gelu,
                    a->demb,     a->dlnf,     a->dhp,      a->dhm,      a->dhr,   a->dhR,
                    a->dpred,    a->scratch};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++)
        be->free(bufs[i]);
    free(a->h);
    free(a);
}

int qpo_acts_ensure(qpo_policy *p, int B) {
    if (p->acts && p->acts->B == B)
        return 0;
    qpo_acts_free(p, p->acts);
    free(p->host_pred);
    free(p->host_losses);
    p->acts = qpo_acts_new(p, B);
    p->host_pred = malloc(sizeof(float) * B);
    p->host_losses = malloc(sizeof(float) * B * QPO_PGDT_PLEN);
    return p->acts && p->host_pred && p->host_losses ? 0 : -1;
}
