/* qpo offline-eval: how well a policy trained on part of a released D_0 writes prompts for the
 * queries it never saw, judged only by rewards D_0 logged (no target LLM, no database). For
 * each held-out query the policy writes a prompt greedily at r*; it is covered when D_0 logged
 * that exact (query, prompt) pair, and its lift is that logged reward minus the mean of all
 * the query's logged rewards: 0 in expectation for a D_0 prompt drawn at random. */
#include <getopt.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cmd_internal.h"
#include "commands.h"
#include "generate.h"
#include "hash.h"
#include "offline_eval.h"
#include "tokenizer.h"

typedef struct oe_args {
    const char *d0, *bpe, *config, *task, *setting, *model_key;
    double holdout, lr, reward, lambda; /* lambda < 0: the recipe's 0.1 and switch */
    long seed, epochs, batch, boot;
    int json;
} oe_args;

typedef struct oe_result {
    size_t held, covered, distinct;
    double mean_written, mean_all, lift, lo, hi, best_lift, single_coverage;
    float loss;
} oe_result;

static void usage(FILE *f) {
    fprintf(f,
            "usage: qpo offline-eval --d0 FILE --holdout FRAC --seed S [--config tiny|gpt2]\n"
            "       [--epochs N] [--batch N] [--lr LR] [--lambda L] [--reward R] [--task T]\n"
            "       [--setting S]\n"
            "       [--model-key K] [--tokenizer DIR] [--json]\n\n"
            "Trains a policy from scratch on the queries of a released D_0 file not held out,\n"
            "writes one prompt per held-out query (greedy at r* = R, default 100) and scores\n"
            "it with the rewards D_0 logged: coverage (share of held-out queries whose written\n"
            "prompt D_0 logged for that query) and lift (its logged reward minus the mean of\n"
            "the query's logged rewards; a random D_0 prompt scores 0), with a 95%% bootstrap\n"
            "interval. No database or LLM needed.\n"
            "  --task/--setting  default tweet_emotion, and few_shot when the file name says so\n"
            "  --tokenizer DIR   GPT-2 BPE files (or $QPO_BPE_DIR)\n"
            "  --epochs 4, --batch 128, --lr 1e-3 (the recipe's loop-1 rate), --config tiny\n"
            "  --lambda L        the return loss's weight, fixed (default: the recipe's 0.1\n"
            "                    with the authors' per-batch switch)\n");
}

static int parse_opt(int c, oe_args *a, qpo_err *err) {
    switch (c) {
    case 'd':
        a->d0 = optarg;
        return 0;
    case 'B':
        a->bpe = optarg;
        return 0;
    case 'c':
        a->config = optarg;
        return 0;
    case 't':
        a->task = optarg;
        return 0;
    case 'S':
        a->setting = optarg;
        return 0;
    case 'm':
        a->model_key = optarg;
        return 0;
    case 'j':
        a->json = 1;
        return 0;
    case 'o':
        return qpo_policy_cmd_float("--holdout", optarg, &a->holdout, err);
    case 'l':
        return qpo_policy_cmd_float("--lr", optarg, &a->lr, err);
    case 'r':
        return qpo_policy_cmd_float("--reward", optarg, &a->reward, err);
    case 'L':
        if (qpo_policy_cmd_float("--lambda", optarg, &a->lambda, err))
            return -1;
        return a->lambda < 0 ? qpo_err_set(err, QPO_EXIT_USAGE, "--lambda: %s is below 0", optarg)
                             : 0;
    case 's':
        return qpo_policy_cmd_int("--seed", optarg, 0, 1L << 62, &a->seed, err);
    case 'e':
        return qpo_policy_cmd_int("--epochs", optarg, 0, 100000, &a->epochs, err);
    case 'b':
        return qpo_policy_cmd_int("--batch", optarg, 1, 65536, &a->batch, err);
    default:
        return qpo_err_set(err, QPO_EXIT_USAGE, "bad option (see qpo offline-eval --help)");
    }
}

static int parse(int argc, char **argv, oe_args *a, qpo_err *err) {
    static const struct option opts[] = {{"d0", required_argument, 0, 'd'},
                                         {"tokenizer", required_argument, 0, 'B'},
                                         {"bpe", required_argument, 0, 'B'},
                                         {"config", required_argument, 0, 'c'},
                                         {"task", required_argument, 0, 't'},
                                         {"setting", required_argument, 0, 'S'},
                                         {"model-key", required_argument, 0, 'm'},
                                         {"json", no_argument, 0, 'j'},
                                         {"holdout", required_argument, 0, 'o'},
                                         {"lr", required_argument, 0, 'l'},
                                         {"reward", required_argument, 0, 'r'},
                                         {"lambda", required_argument, 0, 'L'},
                                         {"seed", required_argument, 0, 's'},
                                         {"epochs", required_argument, 0, 'e'},
                                         {"batch", required_argument, 0, 'b'},
                                         {"help", no_argument, 0, 'h'},
                                         {0, 0, 0, 0}};
    *a = (oe_args){.config = "tiny",
                   .task = "tweet_emotion",
                   .holdout = -1,
                   .lr = 1e-3,
                   .reward = 100,
                   .lambda = -1,
                   .seed = -1,
                   .epochs = 4,
                   .batch = 128,
                   .boot = 2000};
    a->bpe = getenv("QPO_BPE_DIR");
    optind = 1;
    int c;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        if (c == 'h') {
            usage(stdout);
            return 1;
        }
        if (parse_opt(c, a, err))
            return -1;
    }
    if (optind < argc)
        return qpo_err_set(err, QPO_EXIT_USAGE, "unexpected argument '%s'", argv[optind]);
    if (!a->d0 || a->holdout < 0 || a->seed < 0)
        return qpo_err_set(err, QPO_EXIT_USAGE, "--d0, --holdout and --seed are required");
    if (!a->bpe)
        return qpo_err_set(err, QPO_EXIT_USAGE,
                           "no tokenizer: pass --tokenizer DIR (GPT-2 "
                           "BPE files) or set QPO_BPE_DIR");
    if (!a->setting)
        a->setting = strstr(a->d0, "few_shot") ? "few_shot" : "zero_shot";
    return 0;
}

/* The training rows: every record of a query not held out, r_norm over their range. */
static int train_rows(const oe_d0 *d, const qpo_tokenizer *tok, qpo_records *out, qpo_err *err) {
    qpo_text_record *recs = malloc(sizeof *recs * d->n);
    if (!recs)
        return qpo_err_set(err, QPO_EXIT_RUNTIME, "out of memory");
    size_t n = 0;
    double lo = 0, hi = 0;
    for (size_t i = 0; i < d->n; i++) {
        if (d->held_out[d->query_of[i]])
            continue;
        double r = d->recs[i].raw_reward;
        lo = n == 0 || r < lo ? r : lo;
        hi = n == 0 || r > hi ? r : hi;
        recs[n++] = d->recs[i];
    }
    char msg[512];
    int rc = qpo_records_from_text(tok, qpo_tokenizer_vocab_size(tok), recs, n, lo, hi, out, msg,
                                   sizeof msg);
    free(recs);
    if (rc)
        return qpo_err_set(err, QPO_EXIT_USAGE, "%s: %s", "training rows", msg);
    return 0;
}

static qpo_policy *train(const oe_args *a, const qpo_records *rows, int vocab, float *loss,
                         qpo_err *err) {
    qpo_policy_config cfg;
    char msg[512];
    if (qpo_policy_config_named(a->config, &cfg)) {
        qpo_err_set(err, QPO_EXIT_USAGE, "--config: unknown policy size \"%s\"", a->config);
        return NULL;
    }
    cfg.vocab = vocab;
    qpo_policy *p = qpo_policy_new(&cfg, qpo_backend_cpu(), msg, sizeof msg);
    if (!p) {
        qpo_err_set(err, QPO_EXIT_RUNTIME, "%s", msg);
        return NULL;
    }
    qpo_policy_init_random(p, qpo_hash2((uint64_t)a->seed, 1));
    qpo_train_opts o;
    qpo_train_opts_default(&o);
    o.lr = (float)a->lr;
    o.batch_size = (int)a->batch;
    o.seed = qpo_hash2((uint64_t)a->seed, 2);
    if (a->lambda >= 0) {
        o.lambda = (float)a->lambda;
        o.lambda_switch = 0;
    }
    qpo_trainer *tr = qpo_trainer_new(p, &o, rows, msg, sizeof msg);
    int rc = tr ? 0 : -1;
    qpo_loss l = {0};
    for (long e = 0; !rc && e < a->epochs; e++) {
        rc = qpo_trainer_epoch(tr, &l, msg, sizeof msg);
        if (!rc && (!a->json || getenv("QPO_VERBOSE")))
            fprintf(stderr, "epoch %ld: loss %.4f (ce %.4f, mse %.2f)\n", e + 1, l.loss, l.ce,
                    l.mse);
    }
    qpo_trainer_free(tr);
    if (rc) {
        qpo_err_set(err, QPO_EXIT_RUNTIME, "training: %s", msg);
        qpo_policy_free(p);
        return NULL;
    }
    *loss = l.loss;
    return p;
}

/* Greedy prompts at r* for the held-out queries hq[0..nh), as dense ids [nh,40]. */
static int write_prompts(qpo_policy *p, const oe_d0 *d, const qpo_tokenizer *tok, const oe_vocab *v,
                         const oe_args *a, const size_t *hq, size_t nh, int32_t *out,
                         qpo_err *err) {
    int32_t *ids = malloc(sizeof(int32_t) * nh * QPO_PGDT_QLEN);
    int32_t *mask = malloc(sizeof(int32_t) * nh * QPO_PGDT_QLEN);
    int *len = malloc(sizeof(int) * nh);
    uint64_t *seeds = calloc(nh, sizeof *seeds);
    int rc = ids && mask && len && seeds ? 0 : -1;
    for (size_t i = 0; rc == 0 && i < nh; i++)
        rc = qpo_encode_query(tok, d->queries[hq[i]], ids + i * QPO_PGDT_QLEN,
                              mask + i * QPO_PGDT_QLEN);
    char msg[512] = "out of memory";
    if (rc == 0) {
        oe_vocab_map(v, ids, nh * QPO_PGDT_QLEN);
        qpo_gen_opts g;
        qpo_gen_opts_default(&g);
        g.greedy = 1;
        g.reward = (float)a->reward;
        rc = qpo_generate(p, &g, (int)nh, ids, mask, seeds, out, len, msg, sizeof msg);
    }
    free(ids), free(mask), free(len), free(seeds);
    return rc ? qpo_err_set(err, QPO_EXIT_RUNTIME, "writing prompts: %s", msg) : 0;
}

/* Logged reward of the written row for query q (mean over matching records, NAN when D_0
 * has none), the mean over all the query's records, and its best. */
static double logged(const oe_d0 *d, const qpo_tokenizer *tok, const oe_vocab *v, size_t q,
                     const int32_t *row, double *all_mean, double *best) {
    double sum = 0, msum = 0, n = 0, m = 0;
    int32_t ids[QPO_PGDT_PLEN], mask[QPO_PGDT_PLEN];
    *best = -HUGE_VAL;
    for (size_t i = 0; i < d->n; i++) {
        if (d->query_of[i] != q)
            continue;
        double r = d->recs[i].raw_reward;
        sum += r, n++;
        *best = r > *best ? r : *best;
        qpo_encode_prompt(tok, d->recs[i].prompt, ids, mask);
        oe_vocab_map(v, ids, QPO_PGDT_PLEN);
        if (!memcmp(ids, row, sizeof ids))
            msum += r, m++;
    }
    *all_mean = sum / n;
    return m ? msum / m : NAN;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Percentile interval of the mean of x[0..n) over resamples drawn by a counter hash. */
static void bootstrap(const double *x, size_t n, long reps, uint64_t seed, double *lo, double *hi) {
    double *means = malloc(sizeof(double) * (size_t)reps);
    if (!means || n == 0) {
        *lo = *hi = NAN;
        free(means);
        return;
    }
    for (long r = 0; r < reps; r++) {
        double s = 0;
        for (size_t k = 0; k < n; k++)
            s += x[qpo_hash2(seed, (uint64_t)r * n + k) % n];
        means[r] = s / (double)n;
    }
    qsort(means, (size_t)reps, sizeof(double), cmp_double);
    *lo = means[(size_t)(0.025 * (double)(reps - 1))];
    *hi = means[(size_t)(0.975 * (double)(reps - 1))];
    free(means);
}

static size_t distinct_rows(const int32_t *rows, size_t n) {
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        size_t j = 0;
        while (j < i && memcmp(rows + j * QPO_PGDT_PLEN, rows + i * QPO_PGDT_PLEN,
                               sizeof(int32_t) * QPO_PGDT_PLEN))
            j++;
        k += j == i;
    }
    return k;
}

static const oe_d0 *sort_d0; /* qsort has no context argument */

static int by_prompt_query(const void *a, const void *b) {
    size_t i = *(const size_t *)a, j = *(const size_t *)b;
    int c = strcmp(sort_d0->recs[i].prompt, sort_d0->recs[j].prompt);
    if (c)
        return c;
    return (sort_d0->query_of[i] > sort_d0->query_of[j]) -
           (sort_d0->query_of[i] < sort_d0->query_of[j]);
}

/* The coverage a policy writing one fixed prompt would get at best: the largest share of
 * held-out queries for which D_0 logged the same prompt. */
static double best_single_coverage(const oe_d0 *d, size_t nh) {
    size_t *idx = malloc(sizeof(size_t) * d->n), m = 0, best = 0, run = 0;
    if (!idx || nh == 0) {
        free(idx);
        return NAN;
    }
    for (size_t i = 0; i < d->n; i++)
        if (d->held_out[d->query_of[i]])
            idx[m++] = i;
    sort_d0 = d;
    qsort(idx, m, sizeof *idx, by_prompt_query);
    for (size_t k = 0; k < m; k++) {
        int same_prompt = k > 0 && !strcmp(d->recs[idx[k]].prompt, d->recs[idx[k - 1]].prompt);
        if (!same_prompt)
            run = 0;
        if (!same_prompt || d->query_of[idx[k]] != d->query_of[idx[k - 1]])
            run++;
        best = run > best ? run : best;
    }
    free(idx);
    return (double)best / (double)nh;
}

static void score(const oe_d0 *d, const qpo_tokenizer *tok, const oe_vocab *v, const oe_args *a,
                  const size_t *hq, size_t nh, const int32_t *out, oe_result *res) {
    double *diff = malloc(sizeof(double) * nh), sw = 0, sa = 0, sb = 0;
    size_t c = 0;
    for (size_t i = 0; i < nh; i++) {
        double all, best, w = logged(d, tok, v, hq[i], out + i * QPO_PGDT_PLEN, &all, &best);
        sb += best - all;
        if (isnan(w))
            continue;
        diff[c++] = w - all;
        sw += w, sa += all;
    }
    res->held = nh, res->covered = c, res->distinct = distinct_rows(out, nh);
    res->mean_written = c ? sw / (double)c : NAN;
    res->mean_all = c ? sa / (double)c : NAN;
    res->lift = c ? res->mean_written - res->mean_all : NAN;
    res->best_lift = sb / (double)nh;
    res->single_coverage = best_single_coverage(d, nh);
    bootstrap(diff, c, a->boot, qpo_hash2((uint64_t)a->seed, 3), &res->lo, &res->hi);
    free(diff);
}

/* JSON has no NaN: statistics of nothing (no covered query) are null. */
static json_t *real(double x) {
    return isfinite(x) ? json_real(x) : json_null();
}

static void print_result(const oe_args *a, const oe_d0 *d, size_t ntrain, int vocab,
                         const oe_result *r, double secs) {
    double cov = (double)r->covered / (double)r->held;
    if (!a->json) {
        printf("held-out queries %zu (of %zu), trained on %zu records, %ld epochs\n", r->held,
               d->nq, ntrain, a->epochs);
        printf("coverage %.3f (%zu written prompts logged by D_0; %zu distinct prompts; one "
               "fixed prompt covers at most %.3f)\n",
               cov, r->covered, r->distinct, r->single_coverage);
        printf("lift %+.4f [95%% CI %+.4f, %+.4f]: written %.4f vs all D_0 prompts %.4f\n", r->lift,
               r->lo, r->hi, r->mean_written, r->mean_all);
        printf("chance: a random D_0 prompt of the same query has lift 0; the best has %+.4f\n",
               r->best_lift);
        return;
    }
    json_t *o = json_object();
    json_object_set_new(o, "coverage", real(cov));
    json_object_set_new(o, "lift", real(r->lift));
    json_object_set_new(o, "lift_ci95", json_pack("[o,o]", real(r->lo), real(r->hi)));
    json_object_set_new(o, "mean_reward_written", real(r->mean_written));
    json_object_set_new(o, "mean_reward_all", real(r->mean_all));
    json_object_set_new(o, "chance_lift", json_real(0.0));
    json_object_set_new(o, "chance",
                        json_string("a D_0 prompt drawn at random for the same "
                                    "query: lift 0 by construction"));
    json_object_set_new(o, "best_prompt_lift", real(r->best_lift));
    json_object_set_new(o, "best_single_prompt_coverage", real(r->single_coverage));
    json_object_set_new(o, "n_heldout", json_integer((json_int_t)r->held));
    json_object_set_new(o, "n_covered", json_integer((json_int_t)r->covered));
    json_object_set_new(o, "distinct_written", json_integer((json_int_t)r->distinct));
    json_object_set_new(o, "n_queries", json_integer((json_int_t)d->nq));
    json_object_set_new(o, "n_records", json_integer((json_int_t)d->n));
    json_object_set_new(o, "n_train_records", json_integer((json_int_t)ntrain));
    json_object_set_new(o, "seed", json_integer((json_int_t)a->seed));
    json_object_set_new(o, "holdout", json_real(a->holdout));
    json_object_set_new(o, "reward", json_real(a->reward));
    json_object_set_new(o, "epochs", json_integer((json_int_t)a->epochs));
    json_object_set_new(o, "lr", json_real(a->lr));
    json_object_set_new(o, "batch", json_integer((json_int_t)a->batch));
    json_object_set_new(o, "lambda", a->lambda >= 0 ? json_real(a->lambda) : json_string("recipe"));
    json_object_set_new(o, "config", json_string(a->config));
    json_object_set_new(o, "vocab", json_integer(vocab));
    json_object_set_new(o, "final_loss", real((double)r->loss));
    json_object_set_new(o, "reward_unit", json_string("raw reward (docs/qpo-recipe.md section 4)"));
    json_object_set_new(o, "seconds", real(secs));
    char *s = json_dumps(o, JSON_REAL_PRECISION(6));
    puts(s);
    free(s);
    json_decref(o);
}

static int run(const oe_args *a, qpo_err *err) {
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    oe_d0 d;
    oe_vocab v = {0};
    qpo_records rows = {0};
    qpo_policy *p = NULL;
    size_t *hq = NULL, nh = 0;
    int32_t *out = NULL;
    oe_result res = {0};
    char msg[512];
    qpo_tokenizer *tok = NULL;
    int rc = oe_d0_load(&d, a->d0, a->task, a->setting, a->model_key, err);
    if (rc == 0 && !(tok = qpo_tokenizer_load_bpe(a->bpe, msg, sizeof msg)))
        rc = qpo_err_set(err, QPO_EXIT_USAGE, "--tokenizer %s: %s", a->bpe, msg);
    if (rc == 0)
        rc = oe_d0_split(&d, a->holdout, (uint64_t)a->seed, err);
    if (rc == 0)
        rc = train_rows(&d, tok, &rows, err);
    if (rc == 0 &&
        oe_vocab_build(&v, &rows, qpo_tokenizer_vocab_size(tok), qpo_tokenizer_eos(tok)) == 0) {
        oe_vocab_map(&v, rows.query_ids, rows.n * QPO_PGDT_QLEN);
        oe_vocab_map(&v, rows.prompt_ids, rows.n * QPO_PGDT_PLEN);
    } else if (rc == 0)
        rc = qpo_err_set(err, QPO_EXIT_RUNTIME, "out of memory");
    if (rc == 0 && !(p = train(a, &rows, v.size, &res.loss, err)))
        rc = -1;
    if (rc == 0) {
        hq = malloc(sizeof *hq * d.nq);
        for (size_t q = 0; hq && q < d.nq; q++)
            if (d.held_out[q])
                hq[nh++] = q;
        out = malloc(sizeof(int32_t) * QPO_PGDT_PLEN * (nh ? nh : 1));
        rc = hq && out ? write_prompts(p, &d, tok, &v, a, hq, nh, out, err)
                       : qpo_err_set(err, QPO_EXIT_RUNTIME, "out of memory");
    }
    if (rc == 0) {
        score(&d, tok, &v, a, hq, nh, out, &res);
        clock_gettime(CLOCK_MONOTONIC, &t1);
        print_result(a, &d, rows.n, v.size, &res,
                     (double)(t1.tv_sec - t0.tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0.tv_nsec));
    }
    free(hq), free(out);
    qpo_policy_free(p);
    qpo_records_free(&rows);
    oe_vocab_free(&v);
    oe_d0_free(&d);
    qpo_tokenizer_free(tok);
    return rc;
}

int qpo_cmd_offline_eval(int argc, char **argv) {
    qpo_err err;
    qpo_err_clear(&err);
    oe_args a;
    int rc = parse(argc, argv, &a, &err);
    if (rc > 0)
        return QPO_EXIT_OK;
    if (rc == 0)
        rc = run(&a, &err);
    if (rc) {
        if (err.code == QPO_EXIT_USAGE && !a.d0)
            usage(stderr);
        return qpo_err_print(&err);
    }
    return QPO_EXIT_OK;
}
