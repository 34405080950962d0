/* The training-state file beside a policy checkpoint (PATH.state, safetensors): AdamW moments,
 * the data order, and a JSON "trainer" metadata entry with the counters, schedule position,
 * options and a checksum of the weights it belongs to. */
#include <inttypes.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "safetensors.h"
#include "train_internal.h"

uint64_t qpo_trainer_weights_checksum(qpo_trainer *tr) {
    qpo_policy *p = tr->p;
    size_t bytes = sizeof(float) * p->nparams;
    unsigned char *host = malloc(bytes);
    if (!host)
        abort();
    p->be->download(host, p->params, bytes);
    uint64_t h = 0xcbf29ce484222325ULL;
    for (size_t i = 0; i < bytes; i++)
        h = (h ^ host[i]) * 0x100000001b3ULL;
    free(host);
    return h;
}

static char *state_meta(qpo_trainer *tr) {
    char sum[32], seed[32];
    snprintf(sum, sizeof sum, "%016" PRIx64, qpo_trainer_weights_checksum(tr));
    snprintf(seed, sizeof seed, "%" PRIu64, tr->o.seed);
    json_t *o = json_pack("{s:I, s:i, s:I, s:I, s:f, s:f, s:i, s:f, s:i, s:f, s:s, s:s}", "step",
                          (json_int_t)tr->step, "epoch", tr->epoch, "pos", (json_int_t)tr->pos,
                          "records", (json_int_t)tr->data->n, "lr", (double)tr->o.lr, "lr_gamma",
                          (double)tr->o.lr_gamma, "lr_step_epochs", tr->o.lr_step_epochs, "lambda",
                          (double)tr->lambda, "batch_size", tr->o.batch_size, "dropout",
                          (double)tr->o.dropout, "seed", seed, "weights_fnv1a", sum);
    char *s = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    return s;
}

int qpo_trainer_save(qpo_trainer *tr, const char *path, char *errbuf, size_t errlen) {
    if (qpo_policy_save(tr->p, path, errbuf, errlen))
        return -1;
    qpo_policy *p = tr->p;
    size_t n = p->nparams;
    float *m = malloc(sizeof(float) * n), *v = malloc(sizeof(float) * n);
    qpo_st_writer *w = qpo_st_writer_new();
    char *meta = state_meta(tr);
    char spath[4096];
    snprintf(spath, sizeof spath, "%s.state", path);
    int rc = -1;
    if (m && v && w && meta) {
        p->be->download(m, tr->m, sizeof(float) * n);
        p->be->download(v, tr->v, sizeof(float) * n);
        int64_t sn[1] = {(int64_t)n}, so[1] = {(int64_t)tr->data->n};
        qpo_st_writer_add_ref(w, "adamw.exp_avg", QPO_ST_F32, 1, sn, m);
        qpo_st_writer_add_ref(w, "adamw.exp_avg_sq", QPO_ST_F32, 1, sn, v);
        qpo_st_writer_add_ref(w, "data.order", QPO_ST_I32, 1, so, tr->order);
        qpo_st_writer_metadata(w, "trainer", meta);
        rc = qpo_st_writer_write(w, spath, errbuf, errlen);
    } else {
        snprintf(errbuf, errlen, "%s: out of memory", spath);
    }
    qpo_st_writer_free(w);
    free(meta), free(m), free(v);
    return rc;
}

typedef struct state_view {
    json_int_t step, epoch, pos, records, batch_size, lr_step_epochs;
    double lr, lr_gamma, lambda, dropout;
    char seed[32], sum[32];
} state_view;

static int parse_meta(const char *json, state_view *s, const char *path, char *errbuf,
                      size_t errlen) {
    json_error_t jerr;
    json_t *o = json_loads(json ? json : "", 0, &jerr);
    const char *seed = NULL, *sum = NULL;
    int rc = json_unpack_ex(o, &jerr, 0,
                            "{s:I, s:I, s:I, s:I, s:F, s:F, s:I, s:F, s:I, s:F, "
                            "s:s, s:s}",
                            "step", &s->step, "epoch", &s->epoch, "pos", &s->pos, "records",
                            &s->records, "lr", &s->lr, "lr_gamma", &s->lr_gamma, "lr_step_epochs",
                            &s->lr_step_epochs, "lambda", &s->lambda, "batch_size", &s->batch_size,
                            "dropout", &s->dropout, "seed", &seed, "weights_fnv1a", &sum);
    if (rc) {
        snprintf(errbuf, errlen, "%s: bad or missing \"trainer\" metadata: %s", path, jerr.text);
        json_decref(o);
        return -1;
    }
    snprintf(s->seed, sizeof s->seed, "%s", seed);
    snprintf(s->sum, sizeof s->sum, "%s", sum);
    json_decref(o);
    return 0;
}

static int check_matches(qpo_trainer *tr, const state_view *s, const char *path, char *errbuf,
                         size_t errlen) {
    char seed[32], sum[32];
    snprintf(seed, sizeof seed, "%" PRIu64, tr->o.seed);
    snprintf(sum, sizeof sum, "%016" PRIx64, qpo_trainer_weights_checksum(tr));
    const char *what = NULL;
    if ((size_t)s->records != tr->data->n)
        what = "the number of records";
    else if (strcmp(s->seed, seed) || s->batch_size != tr->o.batch_size ||
             (float)s->lr != tr->o.lr || (float)s->lr_gamma != tr->o.lr_gamma ||
             s->lr_step_epochs != tr->o.lr_step_epochs || (float)s->dropout != tr->o.dropout)
        what = "the training options (seed, batch size, lr, schedule, dropout)";
    else if (strcmp(s->sum, sum))
        what = "the weights (the policy file is not the one saved with this state)";
    else if (s->pos < 0 || (size_t)s->pos >= tr->data->n || s->step < 0 || s->epoch < 0)
        what = "a valid position";
    if (what) {
        snprintf(errbuf, errlen, "%s: training state does not match %s", path, what);
        return -1;
    }
    return 0;
}

static int read_tensor(const qpo_st_file *f, const char *name, qpo_st_dtype dt, size_t n,
                       const char *path, char *errbuf, size_t errlen) {
    const qpo_st_tensor *t = qpo_st_find(f, name);
    if (!t || t->dtype != dt || t->ndim != 1 || (size_t)t->shape[0] != n) {
        snprintf(errbuf, errlen, "%s: tensor '%s' missing or not of %zu elements", path, name, n);
        return -1;
    }
    return 0;
}

/* A non-finite moment would make the next AdamW step write NaN into every weight it touches. */
static int moments_finite(const qpo_st_file *f, const char *name, size_t n, const char *path,
                          char *errbuf, size_t errlen) {
    const float *x = qpo_st_find(f, name)->data;
    for (size_t i = 0; i < n; i++)
        if (!isfinite(x[i])) {
            snprintf(errbuf, errlen, "%s: tensor '%s' holds a non-finite value at element %zu",
                     path, name, i);
            return -1;
        }
    return 0;
}

static int restore(qpo_trainer *tr, const qpo_st_file *f, const state_view *s, const char *path,
                   char *errbuf, size_t errlen) {
    qpo_policy *p = tr->p;
    size_t n = p->nparams;
    if (read_tensor(f, "adamw.exp_avg", QPO_ST_F32, n, path, errbuf, errlen) ||
        read_tensor(f, "adamw.exp_avg_sq", QPO_ST_F32, n, path, errbuf, errlen) ||
        read_tensor(f, "data.order", QPO_ST_I32, tr->data->n, path, errbuf, errlen) ||
        moments_finite(f, "adamw.exp_avg", n, path, errbuf, errlen) ||
        moments_finite(f, "adamw.exp_avg_sq", n, path, errbuf, errlen))
        return -1;
    const int32_t *order = qpo_st_find(f, "data.order")->data;
    char *seen = calloc(tr->data->n, 1);
    for (size_t i = 0; seen && i < tr->data->n; i++) {
        if (order[i] < 0 || (size_t)order[i] >= tr->data->n || seen[order[i]]++) {
            free(seen);
            snprintf(errbuf, errlen, "%s: data.order is not a permutation", path);
            return -1;
        }
    }
    free(seen);
    p->be->upload(tr->m, qpo_st_find(f, "adamw.exp_avg")->data, sizeof(float) * n);
    p->be->upload(tr->v, qpo_st_find(f, "adamw.exp_avg_sq")->data, sizeof(float) * n);
    memcpy(tr->order, order, sizeof(int32_t) * tr->data->n);
    tr->step = s->step, tr->epoch = (int)s->epoch, tr->pos = (size_t)s->pos;
    tr->lambda = (float)s->lambda;
    return 0;
}

int qpo_trainer_load_state(qpo_trainer *tr, const char *path, char *errbuf, size_t errlen) {
    char spath[4096];
    snprintf(spath, sizeof spath, "%s.state", path);
    qpo_st_file *f = qpo_st_open(spath, errbuf, errlen);
    if (!f)
        return -1;
    state_view s;
    int rc = parse_meta(qpo_st_metadata(f, "trainer"), &s, spath, errbuf, errlen);
    if (!rc)
        rc = check_matches(tr, &s, spath, errbuf, errlen);
    if (!rc)
        rc = restore(tr, f, &s, spath, errbuf, errlen);
    qpo_st_close(f);
    return rc;
}
