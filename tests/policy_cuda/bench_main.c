/* policy_cuda_bench: training and sampling speed of one backend on the shapes of
 * `pgdt_torch.py bench` (B sequences of 81 positions, dropout 0.1, clip 0.25, AdamW), for
 * scripts/device-check.sh, which runs it beside the PyTorch baseline in the same session and
 * prints the ratios. One JSON line: ms/step, tokens/s, MFU (llm.c's 6N + 6 L d T FLOPs per
 * token against the device's dense peak, as pgdt_torch.py counts it), and the seconds to
 * sample --gen-queries prompts of 40 tokens (top-k 2, top-p 0.9). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "generate.h"
#include "hash.h"
#include "train.h"

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static int usage(void) {
    fprintf(stderr, "usage: policy_cuda_bench [--backend cpu|cuda|cuda-bf16|auto] "
                    "[--config tiny|gpt2] [--batch B] [--steps N] [--warmup N] "
                    "[--gen-queries N]\n");
    return 2;
}

/* Random records: query and prompt lengths and eos padding as pgdt_torch.py's make_batch. */
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

int main(int argc, char **argv) {
    const char *backend = "auto", *config = "gpt2";
    int batch = 128, steps = 20, warmup = 3, nq = 1000;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!v)
            return usage();
        if (!strcmp(a, "--backend"))
            backend = v;
        else if (!strcmp(a, "--config"))
            config = v;
        else if (!strcmp(a, "--batch"))
            batch = atoi(v);
        else if (!strcmp(a, "--steps"))
            steps = atoi(v);
        else if (!strcmp(a, "--warmup"))
            warmup = atoi(v);
        else if (!strcmp(a, "--gen-queries"))
            nq = atoi(v);
        else
            return usage();
        i++;
    }
    char err[512];
    qpo_policy_config cfg;
    const qpo_backend *be = qpo_backend_named(backend, err, sizeof err);
    if (!be || qpo_policy_config_named(config, &cfg) || batch < 1 || steps < 1 || nq < 0) {
        fprintf(stderr, "policy_cuda_bench: %s\n", be ? "bad --config/--batch/--steps" : err);
        return 2;
    }
    qpo_policy *p = qpo_policy_new(&cfg, be, err, sizeof err);
    qpo_records r = {0};
    if (!p || qpo_records_alloc(&r, (size_t)(batch > nq ? batch : nq))) {
        fprintf(stderr, "policy_cuda_bench: %s\n", p ? "out of memory" : err);
        return 1;
    }
    qpo_policy_init_random(p, 0);
    random_records(&r, cfg.vocab, 1);
    qpo_train_opts o;
    qpo_train_opts_default(&o);
    o.batch_size = batch;
    qpo_records tr_data = r;
    tr_data.n = (size_t)batch; /* one full batch per step, every step */
    qpo_trainer *tr = qpo_trainer_new(p, &o, &tr_data, err, sizeof err);
    qpo_loss l = {0};
    double t0 = 0;
    for (int s = 0; tr && s < warmup + steps; s++) {
        if (s == warmup)
            t0 = now();
        if (qpo_trainer_step(tr, &l, err, sizeof err)) {
            fprintf(stderr, "policy_cuda_bench: %s\n", err);
            return 1;
        }
    }
    if (!tr) {
        fprintf(stderr, "policy_cuda_bench: %s\n", err);
        return 1;
    }
    double dt = (now() - t0) / steps; /* the loss download each step waits for the GPU */
    qpo_trainer_free(tr);
    double gen_s = 0;
    if (nq > 0) {
        qpo_gen_opts g;
        qpo_gen_opts_default(&g);
        g.batch = nq;
        g.ignore_eos = 1;
        int32_t *out = malloc(sizeof(int32_t) * nq * QPO_PGDT_PLEN);
        int *len = malloc(sizeof(int) * nq);
        uint64_t *seeds = malloc(sizeof(uint64_t) * nq);
        for (int i = 0; i < nq; i++)
            seeds[i] = (uint64_t)i;
        /* warm-up on 8 queries (kernel loading, allocations), then the timed run */
        if (qpo_generate(p, &g, 8, r.query_ids, r.query_mask, seeds, out, len, err, sizeof err)) {
            fprintf(stderr, "policy_cuda_bench: %s\n", err);
            return 1;
        }
        double g0 = now();
        if (qpo_generate(p, &g, nq, r.query_ids, r.query_mask, seeds, out, len, err, sizeof err)) {
            fprintf(stderr, "policy_cuda_bench: %s\n", err);
            return 1;
        }
        gen_s = now() - g0;
        free(out), free(len), free(seeds);
    }
    double N = (double)qpo_policy_num_params(p), T = QPO_PGDT_SEQ;
    double flops_tok = 6.0 * N + 6.0 * cfg.n_layer * cfg.d * T;
    double toks = batch * T / dt;
    /* the dense peaks pgdt_torch.py divides by (H100/H200 SXM: bf16 989 TFLOP/s, fp32 67) */
    double peak = be->dtype == QPO_DTYPE_BF16 ? 989e12 : 67e12;
    printf("{\"impl\": \"qpo-%s\", \"device\": \"%s\", \"config\": \"%s\", \"batch\": %d, "
           "\"seq\": %d, \"params\": %.0f, \"ms_per_step\": %.3f, \"tokens_per_s\": %.1f, "
           "\"mfu\": %.4f, \"loss\": %.6f, \"gen_queries\": %d, \"gen_tokens\": %d, "
           "\"gen_seconds\": %.3f}\n",
           be->name, be->device ? be->device : "cpu", config, batch, QPO_PGDT_SEQ, N, dt * 1e3,
           toks, be->device ? flops_tok * toks / peak : 0.0, l.loss, nq, QPO_PGDT_PLEN, gen_s);
    qpo_records_free(&r);
    qpo_policy_free(p);
    return 0;
}
