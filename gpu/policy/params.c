/* The parameter table: every tensor's Hugging Face name, shape and place in one flat buffer
 * (parameters, gradients and AdamW moments share the layout), and its initialisation. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hash.h"
#include "model_internal.h"

typedef struct table_builder {
    qpo_policy *p;
    size_t cap;
} table_builder;

static void add(table_builder *tb, const char *name, int64_t d0, int64_t d1) {
    qpo_policy *p = tb->p;
    size_t i = p->ntensors++;
    snprintf(p->names[i], sizeof p->names[i], "%s", name);
    qpo_policy_tensor *t = &p->tensors[i];
    t->name = p->names[i];
    t->ndim = d1 ? 2 : 1;
    t->shape[0] = d0;
    t->shape[1] = d1;
    t->numel = (size_t)d0 * (size_t)(d1 ? d1 : 1);
    t->offset = p->nparams;
    p->nparams += t->numel;
}

static void add_layer(table_builder *tb, int l, int64_t C) {
    static const struct {
        const char *name;
        int rows, cols; /* multiples of C; cols 0 = vector */
    } parts[] = {
        {"ln_1.weight", 1, 0},      {"ln_1.bias", 1, 0},          {"attn.c_attn.weight", 1, 3},
        {"attn.c_attn.bias", 3, 0}, {"attn.c_proj.weight", 1, 1}, {"attn.c_proj.bias", 1, 0},
        {"ln_2.weight", 1, 0},      {"ln_2.bias", 1, 0},          {"mlp.c_fc.weight", 1, 4},
        {"mlp.c_fc.bias", 4, 0},    {"mlp.c_proj.weight", 4, 1},  {"mlp.c_proj.bias", 1, 0},
    };
    for (size_t i = 0; i < sizeof parts / sizeof parts[0]; i++) {
        char name[64];
        snprintf(name, sizeof name, "h.%d.%s", l, parts[i].name);
        add(tb, name, parts[i].rows * C, parts[i].cols * C);
    }
}

int qpo_params_build(qpo_policy *p) {
    const qpo_policy_config *c = &p->cfg;
    size_t cap = 16 + 12 * (size_t)c->n_layer;
    p->tensors = calloc(cap, sizeof *p->tensors);
    p->names = calloc(cap, sizeof *p->names);
    if (!p->tensors || !p->names)
        return -1;
    table_builder tb = {p, cap};
    int64_t C = c->d;
    add(&tb, "wte.weight", c->vocab, C);
    add(&tb, "wpe.weight", c->ctx, C);
    for (int l = 0; l < c->n_layer; l++)
        add_layer(&tb, l, C);
    add(&tb, "ln_f.weight", C, 0);
    add(&tb, "ln_f.bias", C, 0);
    add(&tb, "embed_component.weight", 3, C);
    add(&tb, "embed_return.weight", C, 1);
    add(&tb, "embed_return.bias", C, 0);
    add(&tb, "embed_ln.weight", C, 0);
    add(&tb, "embed_ln.bias", C, 0);
    add(&tb, "mlp_head.weight", C, C);
    add(&tb, "mlp_head.bias", C, 0);
    add(&tb, "predict_return.weight", 1, C);
    add(&tb, "predict_return.bias", 1, 0);
    return 0;
}

void qpo_params_bind(const qpo_policy *p, float *base, qpo_weights *w) {
    const qpo_policy_tensor *t = p->tensors;
    float **top_first[] = {&w->wte, &w->wpe};
    size_t i = 0;
    for (; i < 2; i++)
        *top_first[i] = base + t[i].offset;
    for (int l = 0; l < p->cfg.n_layer; l++) {
        qpo_layer_w *L = &w->h[l];
        float **f[] = {&L->ln1w, &L->ln1b, &L->qkvw, &L->qkvb, &L->projw,   &L->projb,
                       &L->ln2w, &L->ln2b, &L->fcw,  &L->fcb,  &L->fcprojw, &L->fcprojb};
        for (size_t k = 0; k < 12; k++, i++)
            *f[k] = base + t[i].offset;
    }
    float **rest[] = {&w->lnfw, &w->lnfb, &w->seg,  &w->retw, &w->retb, &w->elnw,
                      &w->elnb, &w->mlpw, &w->mlpb, &w->prw,  &w->prb};
    for (size_t k = 0; k < sizeof rest / sizeof rest[0]; k++, i++)
        *rest[k] = base + t[i].offset;
}

/* Standard normals from the counter hash (Box-Muller), so init is reproducible anywhere. */
static float normal(uint64_t seed, uint64_t i) {
    double u1 = qpo_hash_unit_f64(seed, 2 * i), u2 = qpo_hash_unit_f64(seed, 2 * i + 1);
    return (float)(sqrt(-2.0 * log(1.0 - u1)) * cos(6.283185307179586 * u2));
}

static void fill_normal(float *x, size_t n, float mean, float std, uint64_t seed) {
    for (size_t i = 0; i < n; i++)
        x[i] = mean + std * normal(seed, i);
}

static void fill_uniform(float *x, size_t n, float bound, uint64_t seed) {
    for (size_t i = 0; i < n; i++)
        x[i] = (float)((2.0 * qpo_hash_unit_f64(seed, i) - 1.0) * bound);
}

static void fill_const(float *x, size_t n, float v) {
    for (size_t i = 0; i < n; i++)
        x[i] = v;
}

static int ends_with(const char *s, const char *suffix) {
    size_t a = strlen(s), b = strlen(suffix);
    return a >= b && !strcmp(s + a - b, suffix);
}

static int is_head(const char *name) {
    return !strncmp(name, "embed_", 6) || !strncmp(name, "mlp_head", 8) ||
           !strncmp(name, "predict_return", 14);
}

/* torch defaults: Embedding N(0,1), LayerNorm 1/0, Linear U(+-1/sqrt(fan_in)). */
static void init_head_tensor(const qpo_policy *p, const qpo_policy_tensor *t, float *x,
                             uint64_t seed) {
    int C = p->cfg.d;
    if (!strcmp(t->name, "embed_component.weight"))
        fill_normal(x, t->numel, 0.0f, 1.0f, seed);
    else if (!strncmp(t->name, "embed_ln", 8))
        fill_const(x, t->numel, ends_with(t->name, "weight") ? 1.0f : 0.0f);
    else if (!strncmp(t->name, "embed_return", 12))
        fill_uniform(x, t->numel, 1.0f, seed);
    else
        fill_uniform(x, t->numel, 1.0f / sqrtf((float)C), seed);
}

static void init_backbone_tensor(const qpo_policy *p, const qpo_policy_tensor *t, float *x,
                                 uint64_t seed) {
    int is_ln = strstr(t->name, "ln_") != NULL;
    if (is_ln)
        fill_const(x, t->numel, ends_with(t->name, "weight") ? 1.0f : 0.0f);
    else if (ends_with(t->name, "bias"))
        fill_const(x, t->numel, 0.0f);
    else if (ends_with(t->name, "c_proj.weight"))
        fill_normal(x, t->numel, 0.0f, 0.02f / sqrtf(2.0f * p->cfg.n_layer), seed);
    else
        fill_normal(x, t->numel, 0.0f, !strcmp(t->name, "wpe.weight") ? 0.01f : 0.02f, seed);
}

static void init_tensors(qpo_policy *p, uint64_t seed, int heads_only) {
    size_t n = p->nparams;
    float *host = malloc(sizeof(float) * n);
    if (!host)
        abort();
    p->be->download(host, p->params, sizeof(float) * n);
    for (size_t i = 0; i < p->ntensors; i++) {
        const qpo_policy_tensor *t = &p->tensors[i];
        float *x = host + t->offset;
        uint64_t s = qpo_hash2(seed, i);
        if (is_head(t->name))
            init_head_tensor(p, t, x, s);
        else if (!heads_only)
            init_backbone_tensor(p, t, x, s);
    }
    p->be->upload(p->params, host, sizeof(float) * n);
    free(host);
}

void qpo_policy_init_random(qpo_policy *p, uint64_t seed) {
    init_tensors(p, seed, 0);
}

void qpo_policy_init_heads(qpo_policy *p, uint64_t seed) {
    init_tensors(p, seed, 1);
}

size_t qpo_policy_num_tensors(const qpo_policy *p) {
    return p->ntensors;
}

size_t qpo_policy_num_params(const qpo_policy *p) {
    return p->nparams;
}

const qpo_policy_tensor *qpo_policy_tensor_at(const qpo_policy *p, size_t i) {
    return i < p->ntensors ? &p->tensors[i] : NULL;
}

const qpo_policy_tensor *qpo_policy_tensor_find(const qpo_policy *p, const char *name) {
    for (size_t i = 0; i < p->ntensors; i++)
        if (!strcmp(p->tensors[i].name, name))
            return &p->tensors[i];
    return NULL;
}
