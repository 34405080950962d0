/* The training loop: mini-batches in a seeded order, loss, backward, clip, AdamW, StepLR. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hash.h"
#include "train_internal.h"

int qpo_records_alloc(qpo_records *r, size_t n) {
    memset(r, 0, sizeof *r);
    r->n = n;
    size_t k = n ? n : 1;
    r->query_ids = calloc(k * QPO_PGDT_QLEN, sizeof(int32_t));
    r->query_mask = calloc(k * QPO_PGDT_QLEN, sizeof(int32_t));
    r->prompt_ids = calloc(k * QPO_PGDT_PLEN, sizeof(int32_t));
    r->prompt_mask = calloc(k * QPO_PGDT_PLEN, sizeof(int32_t));
    r->reward = calloc(k, sizeof(float));
    if (r->query_ids && r->query_mask && r->prompt_ids && r->prompt_mask && r->reward)
        return 0;
    qpo_records_free(r);
    return -1;
}

void qpo_records_free(qpo_records *r) {
    free(r->query_ids);
    free(r->query_mask);
    free(r->prompt_ids);
    free(r->prompt_mask);
    free(r->reward);
    memset(r, 0, sizeof *r);
}

void qpo_train_opts_default(qpo_train_opts *o) {
    *o = (qpo_train_opts){.lr = 1e-3f,
                          .batch_size = 128,
                          .lr_step_epochs = 20,
                          .lr_gamma = 0.65f,
                          .clip = 0.25f,
                          .weight_decay = 1e-4f,
                          .beta1 = 0.9f,
                          .beta2 = 0.999f,
                          .eps = 1e-8f,
                          .lambda = 0.1f,
                          .lambda_switch = 1,
                          .dropout = 0.1f,
                          .seed = 0};
}

void qpo_trainer_shuffle(qpo_trainer *tr) {
    size_t n = tr->data->n;
    for (size_t i = 0; i < n; i++)
        tr->order[i] = (int32_t)i;
    uint64_t seed = qpo_hash2(tr->o.seed ^ 0x5eedda7aULL, (uint64_t)tr->epoch);
    for (size_t i = n - 1; i > 0; i--) {
        size_t j = (size_t)(qpo_hash2(seed, i) % (i + 1));
        int32_t t = tr->order[i];
        tr->order[i] = tr->order[j];
        tr->order[j] = t;
    }
}

qpo_trainer *qpo_trainer_new(qpo_policy *p, const qpo_train_opts *o, const qpo_records *data,
                             char *errbuf, size_t errlen) {
    if (data->n == 0 || o->batch_size < 1 || o->lr_step_epochs < 1) {
        snprintf(errbuf, errlen,
                 "training needs records (%zu), a batch size >= 1 (%d) and a "
                 "StepLR step >= 1 (%d)",
                 data->n, o->batch_size, o->lr_step_epochs);
        return NULL;
    }
    qpo_trainer *tr = calloc(1, sizeof *tr);
    if (!tr)
        goto oom;
    tr->p = p;
    tr->o = *o;
    tr->data = data;
    tr->lambda = o->lambda;
    tr->m = p->be->alloc(sizeof(float) * p->nparams);
    tr->v = p->be->alloc(sizeof(float) * p->nparams);
    tr->order = malloc(sizeof(int32_t) * data->n);
    if (!tr->m || !tr->v || !tr->order)
        goto oom;
    qpo_trainer_shuffle(tr);
    return tr;
oom:
    snprintf(errbuf, errlen, "out of memory for the optimizer state");
    qpo_trainer_free(tr);
    return NULL;
}

void qpo_trainer_free(qpo_trainer *tr) {
    if (!tr)
        return;
    tr->p->be->free(tr->m);
    tr->p->be->free(tr->v);
    free(tr->order);
    free(tr);
}

float qpo_trainer_lr(const qpo_trainer *tr) {
    return tr->o.lr * powf(tr->o.lr_gamma, (float)(tr->epoch / tr->o.lr_step_epochs));
}

qpo_step_info qpo_trainer_last_step(const qpo_trainer *tr) {
    return tr->last;
}

static int64_t batch_tokens(const qpo_batch *b) {
    int64_t n = 0;
    for (int i = 0; i < b->B * QPO_PGDT_QLEN; i++)
        n += b->query_mask[i] != 0;
    for (int i = 0; i < b->B * QPO_PGDT_PLEN; i++)
        n += b->prompt_mask[i] != 0;
    return n;
}

int64_t qpo_trainer_global_step(const qpo_trainer *tr) {
    return tr->step;
}

int qpo_trainer_epochs_done(const qpo_trainer *tr) {
    return tr->epoch;
}

typedef struct host_batch {
    int32_t *qi, *qm, *pi, *pm;
    float *r;
} host_batch;

static int gather(const qpo_records *d, const int32_t *idx, int B, host_batch *hb, qpo_batch *b) {
    hb->qi = malloc(sizeof(int32_t) * B * QPO_PGDT_QLEN);
    hb->qm = malloc(sizeof(int32_t) * B * QPO_PGDT_QLEN);
    hb->pi = malloc(sizeof(int32_t) * B * QPO_PGDT_PLEN);
    hb->pm = malloc(sizeof(int32_t) * B * QPO_PGDT_PLEN);
    hb->r = malloc(sizeof(float) * B);
    if (!hb->qi || !hb->qm || !hb->pi || !hb->pm || !hb->r)
        return -1;
    size_t Q = QPO_PGDT_QLEN * sizeof(int32_t), P = QPO_PGDT_PLEN * sizeof(int32_t);
    for (int i = 0; i < B; i++) {
        size_t k = (size_t)idx[i];
        memcpy(hb->qi + i * QPO_PGDT_QLEN, d->query_ids + k * QPO_PGDT_QLEN, Q);
        memcpy(hb->qm + i * QPO_PGDT_QLEN, d->query_mask + k * QPO_PGDT_QLEN, Q);
        memcpy(hb->pi + i * QPO_PGDT_PLEN, d->prompt_ids + k * QPO_PGDT_PLEN, P);
        memcpy(hb->pm + i * QPO_PGDT_PLEN, d->prompt_mask + k * QPO_PGDT_PLEN, P);
        hb->r[i] = d->reward[k];
    }
    *b = (qpo_batch){B, hb->qi, hb->qm, hb->pi, hb->pm, hb->r};
    return 0;
}

static void host_batch_free(host_batch *hb) {
    free(hb->qi), free(hb->qm), free(hb->pi), free(hb->pm), free(hb->r);
}

/* One sumsq serves both the clip coefficient and the logged norm: the norm is what the
 * coefficient is computed from, so the curve shows exactly what clipping saw. */
static void optimizer_update(qpo_trainer *tr) {
    qpo_policy *p = tr->p;
    double norm = sqrt(p->be->sumsq(p->grads, p->nparams)); /* as qpo_policy_clip_coef */
    float coef = (float)(tr->o.clip / (norm + 1e-6));
    if (coef > 1.0f)
        coef = 1.0f;
    tr->last.grad_norm = (float)norm;
    tr->last.lr = qpo_trainer_lr(tr);
    tr->step++;
    p->be->adamw_update(p->params, p->grads, tr->m, tr->v, p->nparams, coef, qpo_trainer_lr(tr),
                        tr->o.beta1, tr->o.beta2, tr->o.eps, tr->o.weight_decay, (int)tr->step);
}

static void advance(qpo_trainer *tr, int B) {
    tr->pos += (size_t)B;
    if (tr->pos < tr->data->n)
        return;
    tr->pos = 0;
    tr->epoch++;
    qpo_trainer_shuffle(tr);
}

int qpo_trainer_step(qpo_trainer *tr, qpo_loss *out, char *errbuf, size_t errlen) {
    size_t left = tr->data->n - tr->pos;
    int B = left < (size_t)tr->o.batch_size ? (int)left : tr->o.batch_size;
    host_batch hb = {0};
    qpo_batch b;
    if (gather(tr->data, tr->order + tr->pos, B, &hb, &b)) {
        host_batch_free(&hb);
        snprintf(errbuf, errlen, "out of memory for a batch of %d", B);
        return -1;
    }
    qpo_step_opts so = {.lambda = tr->lambda,
                        .lambda_switch = tr->o.lambda_switch,
                        .dropout = tr->o.dropout,
                        .dropout_seed = qpo_hash2(tr->o.seed, (uint64_t)tr->step)};
    tr->last = (qpo_step_info){
        .epoch = tr->epoch + 1, .lambda = tr->lambda, .batch_size = B, .tokens = batch_tokens(&b)};
    int rc = qpo_policy_forward(tr->p, &b, &so, out, errbuf, errlen);
    host_batch_free(&hb);
    if (rc)
        return -1;
    qpo_policy_backward(tr->p);
    optimizer_update(tr);
    tr->last.step = tr->step;
    tr->last.lambda = out->lambda; /* the weight this batch used (lambda_switch) */
    advance(tr, B);
    return 0;
}

int qpo_trainer_epoch(qpo_trainer *tr, qpo_loss *out, char *errbuf, size_t errlen) {
    int start = tr->epoch, n = 0;
    double s[4] = {0};
    while (tr->epoch == start) {
        qpo_loss l;
        if (qpo_trainer_step(tr, &l, errbuf, errlen))
            return -1;
        s[0] += l.ce, s[1] += l.mse, s[2] += l.loss, s[3] += l.lambda, n++;
    }
    *out = (qpo_loss){(float)(s[0] / n), (float)(s[1] / n), (float)(s[2] / n), (float)(s[3] / n)};
    return 0;
}

int qpo_trainer_run(qpo_trainer *tr, int total_epochs, const char *ckpt_path, qpo_epoch_cb cb,
                    void *ud, char *errbuf, size_t errlen) {
    while (tr->epoch < total_epochs) {
        qpo_loss mean;
        if (qpo_trainer_epoch(tr, &mean, errbuf, errlen))
            return -1;
        if (ckpt_path && qpo_trainer_save(tr, ckpt_path, errbuf, errlen))
            return -1;
        if (cb && cb(ud, tr->epoch, &mean, qpo_trainer_lr(tr))) {
            snprintf(errbuf, errlen, "stopped by the caller after epoch %d", tr->epoch);
            return -1;
        }
    }
    return 0;
}
