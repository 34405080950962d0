/* qpo bench policy: training and generation throughput of a backend on the shapes
 * pgdt_torch.py bench uses (B sequences of 81 positions; a random batch; dropout 0.1; clip; AdamW),
 * so that bench/policy_vs_torch.sh can print the ratio of the two measured in one run. */
#include <getopt.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cmd_internal.h"
#include "commands.h"
#include "generate.h"
#include "hash.h"
#include "train.h"

typedef struct bench_args {
    const char *config, *backend;
    long batch, steps, warmup, gen_queries;
    int json;
} bench_args;

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static void usage(FILE *f) {
    fprintf(f, "usage: qpo bench policy --config tiny|gpt2 --batch B [--steps N] [--warmup N]\n"
               "                        [--gen-queries N] [--json]\n"
               "                        [--backend cpu|cuda|cuda-bf16|auto]\n\n"
               "Training tokens/s (B x 81 positions per step: forward, backward, clip, AdamW,\n"
               "dropout 0.1), ms/step and, on a GPU, MFU (6N + 6 L d T FLOPs per token against\n"
               "the dense peak pgdt_torch.py uses); generation tokens/s and seconds (N queries,\n"
               "40 tokens, top-k 2, top-p 0.9). Default backend: cpu. bench/policy_vs_torch.sh\n"
               "runs it beside pgdt_torch.py bench; scripts/device-check.sh on a GPU.\n");
}

static int parse(int argc, char **argv, bench_args *a, qpo_err *err) {
    static const struct option opts[] = {{"config", required_argument, 0, 'c'},
                                         {"batch", required_argument, 0, 'b'},
                                         {"steps", required_argument, 0, 's'},
                                         {"warmup", required_argument, 0, 'w'},
                                         {"gen-queries", required_argument, 0, 'g'},
                                         {"json", no_argument, 0, 'j'},
                                         {"backend", required_argument, 0, 'B'},
                                         {"help", no_argument, 0, 'h'},
                                         {0, 0, 0, 0}};
    *a = (bench_args){.config = "tiny",
                      .backend = "cpu",
                      .batch = 16,
                      .steps = 10,
                      .warmup = 2,
                      .gen_queries = -1};
    optind = 0;
    for (int c; (c = getopt_long(argc, argv, "", opts, NULL)) != -1;) {
        int rc = 0;
        if (c == 'c')
            a->config = optarg;
        else if (c == 'b')
            rc = qpo_policy_cmd_int("--batch", optarg, 1, 4096, &a->batch, err);
        else if (c == 's')
            rc = qpo_policy_cmd_int("--steps", optarg, 1, 100000, &a->steps, err);
        else if (c == 'w')
            rc = qpo_policy_cmd_int("--warmup", optarg, 0, 1000, &a->warmup, err);
        else if (c == 'g')
            rc = qpo_policy_cmd_int("--gen-queries", optarg, 0, 100000, &a->gen_queries, err);
        else if (c == 'j')
            a->json = 1;
        else if (c == 'B')
            a->backend = optarg;
        else if (c == 'h')
            return 1;
        else
            rc = qpo_err_set(err, QPO_EXIT_USAGE, "bad option (see qpo bench policy --help)");
        if (rc)
            return -1;
    }
    if (a->gen_queries < 0)
        a->gen_queries = a->batch;
    return 0;
}

/* Random records shaped like pgdt_torch.py's make_batch. */
static void random_records(qpo_records *r, int vocab, uint64_t seed) {
    int eos = vocab - 1;
    for (size_t b = 0; b < r->n; b++) {
        int ql = 5 + (int)(qpo_hash2(seed, 4 * b) % 36),
            pl = 3 + (int)(qpo_hash2(seed, 4 * b + 1) % 38);
        for (int t = 0; t < QPO_PGDT_QLEN; t++) {
            size_t i = b * QPO_PGDT_QLEN + t;
            r->query_mask[i] = t < ql;
            r->query_ids[i] = t < ql ? (int32_t)(qpo_hash2(seed + 1, i) % eos) : eos;
            r->prompt_mask[i] = t < pl;
            r->prompt_ids[i] = t < pl - 1 ? (int32_t)(qpo_hash2(seed + 2, i) % eos) : eos;
        }
        r->reward[b] = 100.0f * qpo_hash_unit(seed + 3, b);
    }
}

static int bench_train(qpo_policy *p, const bench_args *a, qpo_records *r, double *tps, double *ms,
                       float *loss, qpo_err *err) {
    qpo_train_opts o;
    qpo_train_opts_default(&o);
    o.batch_size = (int)a->batch;
    char msg[512];
    qpo_trainer *tr = qpo_trainer_new(p, &o, r, msg, sizeof msg);
    if (!tr)
        return qpo_err_set(err, QPO_EXIT_RUNTIME, "%s", msg);
    qpo_loss l = {0};
    int rc = 0;
    double t0 = 0;
    for (long s = 0; !rc && s < a->warmup + a->steps; s++) {
        if (s == a->warmup)
            t0 = now();
        rc = qpo_trainer_step(tr, &l, msg, sizeof msg);
    }
    double dt = (now() - t0) / a->steps;
    qpo_trainer_free(tr);
    if (rc)
        return qpo_err_set(err, QPO_EXIT_RUNTIME, "%s", msg);
    *ms = dt * 1e3, *tps = a->batch * QPO_PGDT_SEQ / dt, *loss = l.loss;
    return 0;
}

static int bench_generate(qpo_policy *p, const bench_args *a, const qpo_records *r, double *tps,
                          double *secs, qpo_err *err) {
    int n = (int)a->gen_queries;
    if (n == 0)
        return *tps = 0, *secs = 0, 0;
    qpo_gen_opts g;
    qpo_gen_opts_default(&g);
    g.batch = n;
    g.ignore_eos = 1; /* 40 tokens each, as pgdt_torch.py gen's min_new_tokens */
    int32_t *qi = malloc(sizeof(int32_t) * n * QPO_PGDT_QLEN),
            *out = malloc(sizeof(int32_t) * n * QPO_PGDT_PLEN);
    int32_t *qm = malloc(sizeof(int32_t) * n * QPO_PGDT_QLEN);
    int *len = malloc(sizeof(int) * n);
    uint64_t *seeds = malloc(sizeof(uint64_t) * n);
    for (int i = 0; i < n; i++) {
        size_t k = (size_t)(i % r->n) * QPO_PGDT_QLEN;
        memcpy(qi + (size_t)i * QPO_PGDT_QLEN, r->query_ids + k, sizeof(int32_t) * QPO_PGDT_QLEN);
        memcpy(qm + (size_t)i * QPO_PGDT_QLEN, r->query_mask + k, sizeof(int32_t) * QPO_PGDT_QLEN);
        seeds[i] = (uint64_t)i;
    }
    char msg[512];
    double t0 = now();
    int rc = qpo_generate(p, &g, n, qi, qm, seeds, out, len, msg, sizeof msg);
    *secs = now() - t0;
    long toks = 0;
    for (int i = 0; i < n; i++)
        toks += len[i];
    *tps = toks / *secs;
    free(qi), free(qm), free(out), free(len), free(seeds);
    return rc ? qpo_err_set(err, QPO_EXIT_RUNTIME, "%s", msg) : 0;
}

/* Model FLOPs utilisation as pgdt_torch.py counts it: llm.c's 6N + 6 L d T per token against
 * the dense H100/H200 peak (bf16 989 TFLOP/s, fp32 67); 0 on the CPU. */
static double mfu(qpo_policy *p, double tokens_per_s) {
    const qpo_backend *be = qpo_policy_backend(p);
    const qpo_policy_config *c = qpo_policy_config_of(p);
    if (!be->device)
        return 0.0;
    double per_tok =
        6.0 * (double)qpo_policy_num_params(p) + 6.0 * c->n_layer * c->d * (double)QPO_PGDT_SEQ;
    return per_tok * tokens_per_s / (be->dtype == QPO_DTYPE_BF16 ? 989e12 : 67e12);
}

static void report(const bench_args *a, qpo_policy *p, double ttps, double ms, float loss,
                   double gtps, double gsecs) {
    const qpo_backend *be = qpo_policy_backend(p);
    if (a->json)
        printf("{\"impl\": \"qpo-%s\", \"device\": \"%s\", \"config\": \"%s\", \"batch\": %ld, "
               "\"seq\": %d, \"params\": %zu, \"threads\": %d, \"ms_per_step\": %.3f, "
               "\"tokens_per_s\": %.1f, \"mfu\": %.4f, \"loss\": %.6f, \"gen_queries\": %ld, "
               "\"gen_seconds\": %.3f, \"gen_tokens_per_s\": %.1f}\n",
               be->name, be->device ? be->device : "cpu", a->config, a->batch, QPO_PGDT_SEQ,
               qpo_policy_num_params(p), omp_get_max_threads(), ms, ttps, mfu(p, ttps), loss,
               a->gen_queries, gsecs, gtps);
    else
        printf("qpo %s%s%s, %s, batch %ld: training %.1f tokens/s (%.1f ms/step), generation "
               "%.1f tokens/s\n",
               be->name, be->device ? " on " : "", be->device ? be->device : "", a->config,
               a->batch, ttps, ms, gtps);
}

int qpo_cmd_bench_policy(int argc, char **argv) {
    bench_args a;
    qpo_err err = {0};
    int rc = parse(argc, argv, &a, &err);
    if (rc > 0) {
        usage(stdout);
        return QPO_EXIT_OK;
    }
    qpo_policy_config cfg;
    if (!rc && qpo_policy_config_named(a.config, &cfg))
        rc =
            qpo_err_set(&err, QPO_EXIT_USAGE, "--config: unknown size '%s' (tiny, gpt2)", a.config);
    if (rc)
        return qpo_err_print(&err);
    char msg[512];
    const qpo_backend *be = qpo_backend_named(a.backend, msg, sizeof msg);
    if (!be) {
        qpo_err_set(&err, QPO_EXIT_USAGE, "--backend %s: %s", a.backend, msg);
        return qpo_err_print(&err);
    }
    qpo_policy *p = qpo_policy_new(&cfg, be, msg, sizeof msg);
    qpo_records r = {0};
    if (!p || qpo_records_alloc(&r, (size_t)a.batch)) {
        qpo_policy_free(p);
        qpo_err_set(&err, QPO_EXIT_RUNTIME, "%s", p ? "out of memory" : msg);
        return qpo_err_print(&err);
    }
    qpo_policy_init_random(p, 0);
    random_records(&r, cfg.vocab, 1);
    double ttps = 0, ms = 0, gtps = 0, gsecs = 0;
    float loss = 0;
    rc = bench_train(p, &a, &r, &ttps, &ms, &loss, &err) ||
         bench_generate(p, &a, &r, &gtps, &gsecs, &err);
    if (!rc)
        report(&a, p, ttps, ms, loss, gtps, gsecs);
    qpo_records_free(&r);
    qpo_policy_free(p);
    return rc ? qpo_err_print(&err) : QPO_EXIT_OK;
}
