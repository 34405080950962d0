/* Policy checkpoints in safetensors: our own files (HF GPT-2 backbone names + PGDT heads +
 * config metadata, exactly the layout pgdt_torch.py writes) and Hugging Face GPT-2 weights.
 * Every tensor is checked by name and shape before anything reaches the policy. */
#include <jansson.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model_internal.h"
#include "safetensors.h"

#define FORMAT_NAME "qpo-pgdt"

typedef enum source { SRC_POLICY, SRC_HF } source;

static int is_prefix_of(const char *prefix, const char *s) {
    return !strncmp(prefix, s, strlen(prefix));
}

static const char *strip_prefix(const char *name) {
    return is_prefix_of("transformer.", name) ? name + strlen("transformer.") : name;
}

static int ends_with(const char *s, const char *suffix) {
    size_t a = strlen(s), b = strlen(suffix);
    return a >= b && !strcmp(s + a - b, suffix);
}

/* Tensors in a Hugging Face file that the policy does not hold, on purpose: the causal-mask
 * buffers and the LM head (tied to wte). */
static int hf_ignorable(const char *name) {
    return !strcmp(name, "lm_head.weight") || ends_with(name, ".attn.bias") ||
           ends_with(name, ".attn.masked_bias");
}

static const qpo_st_tensor *find_tensor(const qpo_st_file *f, const char *name, source src) {
    const qpo_st_tensor *t = qpo_st_find(f, name);
    if (!t && src == SRC_HF) {
        char buf[96];
        snprintf(buf, sizeof buf, "transformer.%s", name);
        t = qpo_st_find(f, buf);
    }
    return t;
}

static int shape_matches(const qpo_st_tensor *t, const qpo_policy_tensor *want) {
    if (t->ndim != want->ndim)
        return 0;
    for (int d = 0; d < want->ndim; d++)
        if (t->shape[d] != want->shape[d])
            return 0;
    return 1;
}

static int check_unknown(const qpo_policy *p, const qpo_st_file *f, source src, const char *path,
                         char *errbuf, size_t errlen) {
    for (size_t i = 0; i < qpo_st_count(f); i++) {
        const char *name = qpo_st_at(f, i)->name;
        if (src == SRC_HF && hf_ignorable(name))
            continue;
        if (!qpo_policy_tensor_find(p, src == SRC_HF ? strip_prefix(name) : name)) {
            snprintf(errbuf, errlen, "%s: tensor '%s' is not part of a %d-layer policy", path, name,
                     p->cfg.n_layer);
            return -1;
        }
    }
    return 0;
}

/* A NaN or Inf weight would train and sample garbage without a word (NaN spreads through every
 * matmul it touches), so a file holding one is refused by name and element. */
static int check_finite(const float *x, size_t n, const char *path, const char *name, char *errbuf,
                        size_t errlen) {
    for (size_t i = 0; i < n; i++)
        if (!isfinite(x[i])) {
            snprintf(errbuf, errlen, "%s: tensor '%s' holds a non-finite value (%s) at element %zu",
                     path, name,
                     isnan(x[i]) ? "NaN"
                     : x[i] > 0  ? "Inf"
                                 : "-Inf",
                     i);
            return -1;
        }
    return 0;
}

static int read_tensors(qpo_policy *p, const qpo_st_file *f, source src, const char *path,
                        float *host, char *errbuf, size_t errlen) {
    for (size_t i = 0; i < p->ntensors; i++) {
        const qpo_policy_tensor *want = &p->tensors[i];
        if (src == SRC_HF &&
            (is_prefix_of("embed_", want->name) || is_prefix_of("mlp_head", want->name) ||
             is_prefix_of("predict_return", want->name)))
            continue;
        const qpo_st_tensor *t = find_tensor(f, want->name, src);
        if (!t) {
            snprintf(errbuf, errlen, "%s: tensor '%s' is missing", path, want->name);
            return -1;
        }
        if (!shape_matches(t, want)) {
            snprintf(errbuf, errlen,
                     "%s: tensor '%s' has shape [%lld%s%lld], expected [%lld, %lld]", path, t->name,
                     (long long)t->shape[0], t->ndim > 1 ? ", " : "",
                     t->ndim > 1 ? (long long)t->shape[1] : 0LL, (long long)want->shape[0],
                     (long long)(want->ndim > 1 ? want->shape[1] : 1));
            return -1;
        }
        char msg[256];
        if (qpo_st_read_f32(t, host + want->offset, want->numel, msg, sizeof msg)) {
            snprintf(errbuf, errlen, "%s: %s", path, msg);
            return -1;
        }
        if (check_finite(host + want->offset, want->numel, path, t->name, errbuf, errlen))
            return -1;
    }
    return check_unknown(p, f, src, path, errbuf, errlen);
}

/* Loads the tensors of f into p (all of them for our files; the backbone for HF files). */
static int load_into(qpo_policy *p, const qpo_st_file *f, source src, const char *path,
                     char *errbuf, size_t errlen) {
    float *host = malloc(sizeof(float) * p->nparams);
    if (!host) {
        snprintf(errbuf, errlen, "%s: out of memory", path);
        return -1;
    }
    p->be->download(host, p->params, sizeof(float) * p->nparams);
    int rc = read_tensors(p, f, src, path, host, errbuf, errlen);
    if (!rc)
        p->be->upload(p->params, host, sizeof(float) * p->nparams);
    free(host);
    return rc;
}

int qpo_policy_set_vocab_ids(qpo_policy *p, const int32_t *ids, size_t n, char *errbuf,
                             size_t errlen) {
    if (n + 2 != (size_t)p->cfg.vocab) {
        snprintf(errbuf, errlen, "%zu subset ids for a vocabulary of %d (want vocab - 2)", n,
                 p->cfg.vocab);
        return -1;
    }
    int32_t *copy = malloc(sizeof(int32_t) * (n ? n : 1));
    if (!copy) {
        snprintf(errbuf, errlen, "out of memory");
        return -1;
    }
    memcpy(copy, ids, sizeof(int32_t) * n);
    free(p->vocab_ids);
    p->vocab_ids = copy;
    p->n_vocab_ids = n;
    return 0;
}

const int32_t *qpo_policy_vocab_ids(const qpo_policy *p, size_t *n) {
    *n = p->n_vocab_ids;
    return p->vocab_ids;
}

/* "vocab_ids" metadata (a JSON array of ids) into p; absent is fine. */
static int load_vocab_ids(qpo_policy *p, const qpo_st_file *f, const char *path, char *errbuf,
                          size_t errlen) {
    const char *text = qpo_st_metadata(f, "vocab_ids");
    if (!text)
        return 0;
    json_error_t jerr;
    json_t *a = json_loads(text, 0, &jerr);
    size_t n = json_array_size(a);
    int32_t *ids = malloc(sizeof(int32_t) * (n ? n : 1));
    int rc = -1;
    if (!json_is_array(a) || !ids) {
        snprintf(errbuf, errlen, "%s: __metadata__ vocab_ids is not a JSON array of ids", path);
        goto done;
    }
    for (size_t i = 0; i < n; i++) {
        json_t *v = json_array_get(a, i);
        if (!json_is_integer(v) || json_integer_value(v) < 0 || json_integer_value(v) > INT32_MAX) {
            snprintf(errbuf, errlen, "%s: __metadata__ vocab_ids[%zu] is not a token id", path, i);
            goto done;
        }
        ids[i] = (int32_t)json_integer_value(v);
    }
    char msg[160];
    if (qpo_policy_set_vocab_ids(p, ids, n, msg, sizeof msg)) {
        snprintf(errbuf, errlen, "%s: __metadata__ vocab_ids: %s", path, msg);
        goto done;
    }
    rc = 0;
done:
    free(ids);
    json_decref(a);
    return rc;
}

static char *vocab_ids_json(const qpo_policy *p) {
    json_t *a = json_array();
    for (size_t i = 0; a && i < p->n_vocab_ids; i++)
        json_array_append_new(a, json_integer(p->vocab_ids[i]));
    char *s = a ? json_dumps(a, JSON_COMPACT) : NULL;
    json_decref(a);
    return s;
}

qpo_policy *qpo_policy_load(const char *path, const qpo_backend *be, char *errbuf, size_t errlen) {
    qpo_st_file *f = qpo_st_open(path, errbuf, errlen);
    if (!f)
        return NULL;
    qpo_policy *p = NULL;
    const char *cfg_json = qpo_st_metadata(f, "config");
    qpo_policy_config cfg;
    char msg[256];
    if (!cfg_json) {
        snprintf(errbuf, errlen,
                 "%s: no \"config\" in __metadata__: not a qpo policy checkpoint (for Hugging "
                 "Face GPT-2 weights use 'qpo policy init --from DIR')",
                 path);
    } else if (qpo_policy_config_parse(cfg_json, &cfg, msg, sizeof msg)) {
        snprintf(errbuf, errlen, "%s: %s", path, msg);
    } else if ((p = qpo_policy_new(&cfg, be, errbuf, errlen)) &&
               (load_into(p, f, SRC_POLICY, path, errbuf, errlen) ||
                load_vocab_ids(p, f, path, errbuf, errlen))) {
        qpo_policy_free(p);
        p = NULL;
    }
    qpo_st_close(f);
    return p;
}

/* n_head is not visible in the shapes, so it comes from config.json (GPT-2's 64-wide heads
 * when there is none). */
static int hf_config(const char *dir, const qpo_st_file *f, qpo_policy_config *cfg, char *errbuf,
                     size_t errlen) {
    const qpo_st_tensor *wte = find_tensor(f, "wte.weight", SRC_HF);
    const qpo_st_tensor *wpe = find_tensor(f, "wpe.weight", SRC_HF);
    if (!wte || !wpe || wte->ndim != 2 || wpe->ndim != 2) {
        snprintf(errbuf, errlen,
                 "%s/model.safetensors: no 2-d wte.weight / wpe.weight: not "
                 "GPT-2 weights",
                 dir);
        return -1;
    }
    cfg->vocab = (int)wte->shape[0];
    cfg->d = (int)wte->shape[1];
    cfg->ctx = (int)wpe->shape[0];
    cfg->reward_embed = QPO_REWARD_EMBED_UNIT; /* fresh heads: qpo's reward input */
    cfg->n_layer = 0;
    char name[64];
    for (;; cfg->n_layer++) {
        snprintf(name, sizeof name, "h.%d.ln_1.weight", cfg->n_layer);
        if (!find_tensor(f, name, SRC_HF))
            break;
    }
    cfg->n_head = cfg->d / 64 ? cfg->d / 64 : 1;
    char path[4096];
    snprintf(path, sizeof path, "%s/config.json", dir);
    json_error_t jerr;
    json_t *o = json_load_file(path, 0, &jerr);
    json_t *nh = json_object_get(o, "n_head");
    if (json_is_integer(nh))
        cfg->n_head = (int)json_integer_value(nh);
    json_decref(o);
    return qpo_policy_config_check(cfg, errbuf, errlen);
}

qpo_policy *qpo_policy_from_hf(const char *dir, const qpo_backend *be, uint64_t seed, char *errbuf,
                               size_t errlen) {
    char path[4096];
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    qpo_st_file *f = qpo_st_open(path, errbuf, errlen);
    if (!f)
        return NULL;
    qpo_policy_config cfg;
    qpo_policy *p = NULL;
    if (!hf_config(dir, f, &cfg, errbuf, errlen) &&
        (p = qpo_policy_new(&cfg, be, errbuf, errlen))) {
        qpo_policy_init_heads(p, seed);
        if (load_into(p, f, SRC_HF, path, errbuf, errlen)) {
            qpo_policy_free(p);
            p = NULL;
        }
    }
    qpo_st_close(f);
    return p;
}

static int save_flat(qpo_policy *p, const float *buf, const char *path, int with_config,
                     char *errbuf, size_t errlen) {
    float *host = malloc(sizeof(float) * p->nparams);
    qpo_st_writer *w = qpo_st_writer_new();
    int rc = -1;
    if (!host || !w) {
        snprintf(errbuf, errlen, "%s: out of memory", path);
        goto done;
    }
    p->be->download(host, buf, sizeof(float) * p->nparams);
    for (size_t i = 0; i < p->ntensors; i++) {
        const qpo_policy_tensor *t = &p->tensors[i];
        if (qpo_st_writer_add_ref(w, t->name, QPO_ST_F32, t->ndim, t->shape, host + t->offset))
            break;
    }
    if (with_config) {
        char *cfg = qpo_policy_config_json(&p->cfg);
        qpo_st_writer_metadata(w, "config", cfg);
        qpo_st_writer_metadata(w, "format", FORMAT_NAME);
        free(cfg);
        char *ids = p->vocab_ids ? vocab_ids_json(p) : NULL;
        if (ids)
            qpo_st_writer_metadata(w, "vocab_ids", ids);
        free(ids);
    }
    rc = qpo_st_writer_write(w, path, errbuf, errlen);
done:
    qpo_st_writer_free(w);
    free(host);
    return rc;
}

int qpo_policy_save(qpo_policy *p, const char *path, char *errbuf, size_t errlen) {
    return save_flat(p, p->params, path, 1, errbuf, errlen);
}

int qpo_policy_save_grads(qpo_policy *p, const char *path, char *errbuf, size_t errlen) {
    return save_flat(p, p->grads, path, 0, errbuf, errlen);
}
