/* The run a job belongs to, its hyper-parameters, backend, tokenizer and policy shape. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "db.h"
#include "hyper.h"
#include "trainer_internal.h"

static const json_t *section(const json_t *cfg, const char *name) {
    const json_t *s = json_object_get(cfg, name);
    return json_is_object(s) ? s : NULL;
}

static int get_int(const json_t *s, const char *key, int def) {
    const json_t *v = json_object_get(s, key);
    return json_is_integer(v) ? (int)json_integer_value(v) : def;
}

static double get_real(const json_t *s, const char *key, double def) {
    const json_t *v = json_object_get(s, key);
    return json_is_number(v) ? json_number_value(v) : def;
}

static void get_str(const json_t *s, const char *key, const char *def, char *out, size_t len) {
    const json_t *v = json_object_get(s, key);
    snprintf(out, len, "%s", json_is_string(v) ? json_string_value(v) : def);
}

_Static_assert(QPO_RECIPE_MAX_TOKENS == QPO_PGDT_QLEN && QPO_RECIPE_MAX_TOKENS == QPO_PGDT_PLEN,
               "the recipe's token counts are the policy's shape");

/* A config the scheduler checked has every field; the fallbacks are the same table's. */
static int hyper_int(const json_t *h, const char *key) {
    return get_int(h, key, (int)qpo_hyper_default(key));
}

static double hyper_real(const json_t *h, const char *key) {
    return get_real(h, key, qpo_hyper_default(key));
}

static void read_config(const json_t *cfg, qpo_trun *r) {
    const json_t *p = section(cfg, "policy"), *h = section(cfg, "hyper");
    get_str(p, "size", "gpt2", r->size, sizeof r->size);
    get_str(p, "init", "scratch", r->init, sizeof r->init);
    get_str(p, "tokenizer", "gpt2_bpe", r->tokenizer, sizeof r->tokenizer);
    get_str(p, "weights", "", r->weights, sizeof r->weights);
    char vocab[16];
    get_str(p, "vocab", "tokenizer", vocab, sizeof vocab);
    r->vocab_d0 = !strcmp(vocab, "d0");
    r->batch_size = hyper_int(h, "batch_size");
    r->epochs_first = hyper_int(h, "epochs_first");
    r->epochs_next = hyper_int(h, "epochs_next");
    r->lr_step_epochs = hyper_int(h, "lr_step_epochs");
    const json_t *sw = json_object_get(h, "lambda_switch");
    r->lambda_switch = json_is_boolean(sw) ? json_is_true(sw) : QPO_HYPER_LAMBDA_SWITCH_DEFAULT;
    r->top_k = hyper_int(h, "top_k");
    r->max_query_tokens = hyper_int(h, "max_query_tokens");
    r->max_prompt_tokens = hyper_int(h, "max_prompt_tokens");
    r->lr_first = hyper_real(h, "lr_first");
    r->lr_next = hyper_real(h, "lr_next");
    r->weight_decay = hyper_real(h, "weight_decay");
    r->lr_gamma = hyper_real(h, "lr_gamma");
    r->grad_clip = hyper_real(h, "grad_clip");
    r->lambda = hyper_real(h, "lambda");
    r->dropout = hyper_real(h, "dropout");
    r->top_p = hyper_real(h, "top_p");
    r->r_star = hyper_real(h, "r_star");
    char select[16];
    get_str(h, "select", "heldout", select, sizeof select);
    r->heldout = strcmp(select, "last") ? hyper_real(h, "heldout") : 0;
}

static int check_shape(const qpo_trun *r, qpo_err *err) {
    if (r->max_query_tokens != QPO_PGDT_QLEN || r->max_prompt_tokens != QPO_PGDT_PLEN) {
        qpo_err_set(err, QPO_EXIT_USAGE,
                    "run %" PRId64 ": the policy reads %d query and %d prompt tokens", r->id,
                    QPO_PGDT_QLEN, QPO_PGDT_PLEN);
        qpo_err_detail(err, "hyper.max_query_tokens = %d, hyper.max_prompt_tokens = %d",
                       r->max_query_tokens, r->max_prompt_tokens);
        qpo_err_hint(err, "leave both at %d in the experiment config", QPO_RECIPE_MAX_TOKENS);
        return -1;
    }
    if (r->batch_size < 1 || r->epochs_first < 1 || r->epochs_next < 1 || r->lr_step_epochs < 1) {
        qpo_err_set(err, QPO_EXIT_USAGE, "run %" PRId64 ": hyper-parameters out of range", r->id);
        qpo_err_detail(err, "batch_size %d, epochs_first %d, epochs_next %d, lr_step_epochs %d",
                       r->batch_size, r->epochs_first, r->epochs_next, r->lr_step_epochs);
        return -1;
    }
    return 0;
}

static int trun_load(PGconn *conn, int64_t run_id, qpo_trun *r, qpo_err *err) {
    char id[24];
    snprintf(id, sizeof id, "%" PRId64, run_id);
    const char *params[1] = {id};
    PGresult *res = qpo_db_named(conn, "trainer_run_info", 1, params, err);
    if (!res)
        return -1;
    if (PQntuples(res) != 1) {
        PQclear(res);
        qpo_err_set(err, QPO_EXIT_USAGE, "no run %" PRId64, run_id);
        qpo_err_hint(err, "the job's payload names a run that qpo.runs does not hold");
        return -1;
    }
    memset(r, 0, sizeof *r);
    r->id = run_id;
    snprintf(r->task, sizeof r->task, "%s", PQgetvalue(res, 0, 0));
    snprintf(r->setting, sizeof r->setting, "%s", PQgetvalue(res, 0, 1));
    snprintf(r->target, sizeof r->target, "%s", PQgetvalue(res, 0, 2));
    r->seed = atoi(PQgetvalue(res, 0, 3));
    r->loops = atoi(PQgetvalue(res, 0, 4));
    r->collect_batches = atoi(PQgetvalue(res, 0, 5));
    r->collect_batch_size = atoi(PQgetvalue(res, 0, 6));
    r->test_size = atoi(PQgetvalue(res, 0, 7));
    json_error_t jerr;
    json_t *cfg =
        PQgetisnull(res, 0, 8) ? json_object() : json_loads(PQgetvalue(res, 0, 8), 0, &jerr);
    PQclear(res);
    if (!cfg) {
        qpo_err_set(err, QPO_EXIT_USAGE, "run %" PRId64 ": unreadable resolved config", run_id);
        qpo_err_detail(err, "%s", jerr.text);
        return -1;
    }
    read_config(cfg, r);
    json_decref(cfg);
    return check_shape(r, err);
}

int qpo_trun_from_payload(PGconn *conn, const json_t *payload, qpo_trun *run, int *loop,
                          qpo_err *err) {
    int64_t run_id, t;
    if (qpo_payload_int(payload, "run_id", &run_id, err) ||
        qpo_payload_int(payload, "loop", &t, err) || trun_load(conn, run_id, run, err))
        return -1;
    if (t < 1 || t > run->loops) {
        qpo_err_set(err, QPO_EXIT_USAGE,
                    "job payload loop %" PRId64 " is outside run %" PRId64 "'s loops 1..%d", t,
                    run_id, run->loops);
        return -1;
    }
    *loop = (int)t;
    return 0;
}

/* Chosen once, before the worker claims anything (qpo_trainer_select_backend); the CPU when
 * nothing chose (tests that call the jobs directly). */
static const qpo_backend *chosen_backend;

int qpo_trainer_select_backend(const char *name, char *device, size_t len, qpo_err *err) {
    char msg[256];
    const qpo_backend *be = qpo_backend_named(name, msg, sizeof msg);
    if (!be) {
        qpo_err_set(err, QPO_EXIT_USAGE, "--backend %s: %s", name, msg);
        if (!strcmp(name, "cuda") || !strcmp(name, "cuda-bf16"))
            qpo_err_hint(err, "--backend auto uses the CPU where no CUDA device is visible");
        return -1;
    }
    chosen_backend = be;
    snprintf(device, len, "%s%s%s", be->name, be->device ? ": " : "", be->device ? be->device : "");
    return 0;
}

const qpo_backend *qpo_trainer_backend(void) {
    return chosen_backend ? chosen_backend : qpo_backend_cpu();
}

static int is_dir(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

qpo_tokenizer *qpo_trainer_tokenizer(const qpo_trun *run, qpo_err *err) {
    if (!strcmp(run->tokenizer, "bytes"))
        return qpo_tokenizer_new_bytes();
    const char *dir = run->tokenizer;
    if (!strcmp(run->tokenizer, "gpt2_bpe")) {
        dir = getenv("QPO_BPE_DIR");
        if (!dir || !*dir) {
            qpo_err_set(err, QPO_EXIT_USAGE,
                        "run %" PRId64 " uses the GPT-2 tokenizer, but "
                        "QPO_BPE_DIR is not set for this worker",
                        run->id);
            qpo_err_hint(err, "start the gpu worker with QPO_BPE_DIR=DIR holding encoder.json "
                              "and vocab.bpe (e.g. shared/data/gpt2_bpe), then 'qpo resume'");
            return NULL;
        }
    }
    if (!is_dir(dir)) {
        qpo_err_set(err, QPO_EXIT_USAGE, "tokenizer directory %s does not exist", dir);
        qpo_err_detail(err, "run %" PRId64 ": policy.tokenizer = \"%s\"", run->id, run->tokenizer);
        qpo_err_hint(err, "point QPO_BPE_DIR (or policy.tokenizer) at a folder holding "
                          "encoder.json + vocab.bpe, then 'qpo resume'");
        return NULL;
    }
    char msg[512];
    qpo_tokenizer *tok = qpo_tokenizer_load_bpe(dir, msg, sizeof msg);
    if (!tok) {
        qpo_err_set(err, QPO_EXIT_USAGE, "cannot load the tokenizer in %s", dir);
        qpo_err_detail(err, "%s", msg);
    }
    return tok;
}

int qpo_trainer_policy_config(const qpo_trun *run, const qpo_tokenizer *tok, qpo_policy_config *cfg,
                              qpo_err *err) {
    if (qpo_policy_config_named(run->size, cfg) < 0) {
        qpo_err_set(err, QPO_EXIT_USAGE, "run %" PRId64 ": unknown policy size \"%s\"", run->id,
                    run->size);
        qpo_err_hint(err, "policy.size is tiny or gpt2");
        return -1;
    }
    cfg->vocab = qpo_tokenizer_vocab_size(tok);
    return 0;
}

int qpo_trainer_adopt_vocab(const qpo_policy *p, qpo_tokenizer **tok, qpo_err *err) {
    size_t n, have_n;
    const int32_t *ids = qpo_policy_vocab_ids(p, &n);
    const int32_t *have = qpo_tokenizer_subset_ids(*tok, &have_n);
    if (!ids)
        return 0;
    if (have) {
        if (have_n == n && !memcmp(have, ids, n * sizeof *ids))
            return 0;
        return qpo_err_set(err, QPO_EXIT_USAGE,
                           "the policy's subset vocabulary (%zu tokens) is not the one in use "
                           "(%zu tokens)",
                           n, have_n);
    }
    char msg[256];
    *tok = qpo_tokenizer_new_subset(*tok, ids, n, msg, sizeof msg);
    if (!*tok) {
        qpo_err_set(err, QPO_EXIT_USAGE,
                    "the policy's subset vocabulary does not fit its tokenizer");
        qpo_err_detail(err, "%s", msg);
        return -1;
    }
    return 0;
}

uint64_t qpo_trainer_seed(uint64_t a, uint64_t b) {
    uint64_t z = a * 0x9e3779b97f4a7c15ULL + b + 0x632be59bd9b4e019ULL;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

qpo_job_status qpo_trainer_fail(const qpo_err *err) {
    return err->code == QPO_EXIT_USAGE ? QPO_JOB_FATAL : QPO_JOB_RETRY;
}
