/* demo_policy_probe: the demo's policy step in seconds, for choosing its configuration on dev
 * data. Trains a scratch policy on a D_0 file (JSON lines {"q","p","r"}: query, prompt, raw
 * reward; e.g. exported from a demo's qpo.d0_records), and after chosen epochs writes a greedy
 * prompt at r* for each dev item and scores it with the simulator's own code (eval.h): QPO
 * accuracy, distinct prompts, the policy's most frequent prompt on every item, and D_0's best
 * single prompt (highest mean reward) on the same items. Dev items are TweetEval items the
 * simulator knows, from upstream train, that are not D_0 queries: never a test item.
 *
 * With w=W and lines that carry the prompt's avg_acc ("a"), the raw rewards are recomputed
 * with W as the avg_acc weight (qpo_reward_raw_weighted), to see what the reward asks of a
 * policy: before training it prints, per query group, which prompt holds each query's
 * top-reward record, and scores "the mode of those per group" (a perfect greedy r* = 100
 * policy over D_0's prompts) on the dev items. epochs=0 stops there.
 *
 * qnorm=1 rescales each query's rewards to 0..100 by that query's own D_0 range before
 * training, so r* = 100 means "the best D_0 logged for this query" (an experiment, not what
 * qpo's trainer does).
 *
 * usage: demo_policy_probe D0.jsonl SHARED_DIR [key=value ...]
 *   epochs=8 report=2,4,8 lr=1e-3 batch=32 lambda=0.1 switch=1 dropout=0.1 seed=0
 *   dev=300 dev_from=1500 rstar=100 vocab=d0|full layers=2 d=64 heads=4 clip=0.25 w=10 qnorm=0 */
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "eval.h"
#include "generate.h"
#include "model.h"
#include "records.h"
#include "reward_formula.h"
#include "tokenizer.h"
#include "train.h"

typedef struct probe_args {
    int epochs, batch, seed, dev, dev_from, vocab_d0, layers, d, heads, sw, qnorm;
    double lr, lambda, dropout, rstar, clip, w; /* w < 0: keep the file's rewards */
    char report[256];
} probe_args;

static void parse_args(int argc, char **argv, probe_args *a) {
    *a = (probe_args){.epochs = 8,
                      .batch = 32,
                      .seed = 0,
                      .dev = 300,
                      .dev_from = 1500,
                      .vocab_d0 = 1,
                      .layers = 2,
                      .d = 64,
                      .heads = 4,
                      .sw = 1,
                      .lr = 1e-3,
                      .lambda = 0.1,
                      .dropout = 0.1,
                      .rstar = 100,
                      .clip = 0.25,
                      .w = -1};
    snprintf(a->report, sizeof a->report, "2,4,8");
    for (int i = 3; i < argc; i++) {
        char *eq = strchr(argv[i], '=');
        if (!eq) {
            fprintf(stderr, "bad argument %s (want key=value)\n", argv[i]);
            exit(2);
        }
        *eq = 0;
        const char *k = argv[i], *v = eq + 1;
        if (!strcmp(k, "epochs"))
            a->epochs = atoi(v);
        else if (!strcmp(k, "batch"))
            a->batch = atoi(v);
        else if (!strcmp(k, "seed"))
            a->seed = atoi(v);
        else if (!strcmp(k, "dev"))
            a->dev = atoi(v);
        else if (!strcmp(k, "dev_from"))
            a->dev_from = atoi(v);
        else if (!strcmp(k, "vocab"))
            a->vocab_d0 = !strcmp(v, "d0");
        else if (!strcmp(k, "layers"))
            a->layers = atoi(v);
        else if (!strcmp(k, "d"))
            a->d = atoi(v);
        else if (!strcmp(k, "heads"))
            a->heads = atoi(v);
        else if (!strcmp(k, "switch"))
            a->sw = atoi(v);
        else if (!strcmp(k, "lr"))
            a->lr = atof(v);
        else if (!strcmp(k, "lambda"))
            a->lambda = atof(v);
        else if (!strcmp(k, "dropout"))
            a->dropout = atof(v);
        else if (!strcmp(k, "rstar"))
            a->rstar = atof(v);
        else if (!strcmp(k, "clip"))
            a->clip = atof(v);
        else if (!strcmp(k, "qnorm"))
            a->qnorm = atoi(v);
        else if (!strcmp(k, "w"))
            a->w = atof(v);
        else if (!strcmp(k, "report"))
            snprintf(a->report, sizeof a->report, "%s", v);
        else {
            fprintf(stderr, "unknown key %s\n", k);
            exit(2);
        }
    }
}

typedef struct d0_file {
    qpo_text_record *recs;
    size_t n;
    json_t *all; /* owns the strings */
} d0_file;

/* The file's raw reward was computed with the recipe's avg_acc weight; w recomputes it with
 * another through the one reward function, the gold NLL recovered from the file's reward. */
static double reweight(json_t *o, double w) {
    double r = json_number_value(json_object_get(o, "r"));
    json_t *a = json_object_get(o, "a"), *acc = json_object_get(o, "acc");
    if (w < 0)
        return r;
    if (!a || !acc) {
        fprintf(stderr, "w= needs \"a\" (the prompt's avg_acc) and \"acc\" on every line\n");
        exit(2);
    }
    double av = json_number_value(a), ac = json_number_value(acc);
    double nll = qpo_reward_raw(QPO_REWARD_ZERO_SHOT, ac, av, 0, QPO_REWARD_AVG_ACC_WEIGHT) - r;
    return qpo_reward_raw(QPO_REWARD_ZERO_SHOT, ac, av, nll, w);
}

static void load_d0(const char *path, d0_file *d, double w) {
    FILE *f = fopen(path, "r");
    if (!f) {
        perror(path);
        exit(1);
    }
    d->all = json_array();
    char line[65536];
    while (fgets(line, sizeof line, f)) {
        json_error_t e;
        json_t *o = json_loads(line, 0, &e);
        if (!o) {
            fprintf(stderr, "%s: %s\n", path, e.text);
            exit(1);
        }
        json_array_append_new(d->all, o);
    }
    fclose(f);
    d->n = json_array_size(d->all);
    d->recs = calloc(d->n, sizeof *d->recs);
    for (size_t i = 0; i < d->n; i++) {
        json_t *o = json_array_get(d->all, i);
        d->recs[i].query = json_string_value(json_object_get(o, "q"));
        d->recs[i].prompt = json_string_value(json_object_get(o, "p"));
        d->recs[i].raw_reward = reweight(o, w);
    }
}

/* Each query's rewards onto 0..100 by its own min and max (a query whose records all tie
 * gets 100). */
static void per_query_range(d0_file *d) {
    double *out = calloc(d->n, sizeof *out);
    for (size_t i = 0; i < d->n; i++) {
        double lo = 1e300, hi = -1e300;
        for (size_t j = 0; j < d->n; j++)
            if (!strcmp(d->recs[j].query, d->recs[i].query))
                lo = fmin(lo, d->recs[j].raw_reward), hi = fmax(hi, d->recs[j].raw_reward);
        out[i] = hi > lo ? 100 * (d->recs[i].raw_reward - lo) / (hi - lo) : 100;
    }
    for (size_t i = 0; i < d->n; i++)
        d->recs[i].raw_reward = out[i];
    free(out);
}

static int is_d0_query(const d0_file *d, const char *q) {
    for (size_t i = 0; i < d->n; i++)
        if (!strcmp(d->recs[i].query, q))
            return 1;
    return 0;
}

/* D_0's prompt with the highest mean raw reward (the demo's best_single rule). */
static const char *best_single(const d0_file *d) {
    const char *best = NULL;
    double best_mean = -1e300;
    for (size_t i = 0; i < d->n; i++) {
        double sum = 0;
        int k = 0;
        for (size_t j = 0; j < d->n; j++)
            if (!strcmp(d->recs[j].prompt, d->recs[i].prompt))
                sum += d->recs[j].raw_reward, k++;
        if (sum / k > best_mean)
            best_mean = sum / k, best = d->recs[i].prompt;
    }
    return best;
}

/* What a policy that knows the simulator's query groups could get from D_0: per group (the
 * four, or the two lengths when shift = 1), the prompt with the highest mean D_0 reward there,
 * scored on the dev items. A ceiling for what the policy can learn from D_0's group signal. */
static void group_ceiling(const d0_file *d, const sim_api *api, const sim_item **items, size_t nq,
                          int shift) {
    const qpo_task *task = items[0]->task;
    const char *choice[4] = {0};
    for (int g = 0; g < 4 >> shift; g++) {
        double best = -1e300;
        for (size_t i = 0; i < d->n; i++) {
            double sum = 0;
            int k = 0;
            for (size_t j = 0; j < d->n; j++)
                if (!strcmp(d->recs[j].prompt, d->recs[i].prompt) &&
                    sim_group(task, d->recs[j].query, strlen(d->recs[j].query)) >> shift == g)
                    sum += d->recs[j].raw_reward, k++;
            if (k && sum / k > best)
                best = sum / k, choice[g] = d->recs[i].prompt;
        }
    }
    unsigned char *c = calloc((size_t)(4 >> shift) * nq, 1);
    qpo_err err = {0};
    if (sim_eval_matrix(api, choice, (size_t)(4 >> shift), items, nq, c, &err))
        exit(1);
    double acc = 0;
    for (size_t i = 0; i < nq; i++)
        acc += c[(size_t)(sim_group(task, items[i]->query, strlen(items[i]->query)) >> shift) * nq +
                 i];
    printf("group ceiling (%d groups chosen on D_0): %.3f\n", 4 >> shift, acc / nq);
    free(c);
}

/* What r* = 100 asks for: per query the prompt of its top-reward record; per group the
 * mode of those (a perfect reward-conditioned greedy policy over D_0's prompts writes it for
 * the group's queries), with its share, scored by group on the dev items. */
static void top_record_policy(const d0_file *d, const sim_api *api, const sim_item **items,
                              size_t nq, const char *single) {
    const qpo_task *task = items[0]->task;
    /* best[k]: the top record of the k-th query seen (queries are few: a linear search) */
    size_t *best = calloc(d->n, sizeof *best), nb = 0;
    for (size_t i = 0; i < d->n; i++) {
        size_t k = 0;
        while (k < nb && strcmp(d->recs[best[k]].query, d->recs[i].query))
            k++;
        if (k == nb)
            best[nb++] = i;
        else if (d->recs[i].raw_reward > d->recs[best[k]].raw_reward)
            best[k] = i;
    }
    const char *choice[4] = {0};
    for (int g = 0; g < 4; g++) {
        size_t n_g = 0, top = 0, top_single = 0;
        for (size_t k = 0; k < nb; k++) {
            const char *q = d->recs[best[k]].query;
            if (sim_group(task, q, strlen(q)) != g)
                continue;
            n_g++;
            const char *p = d->recs[best[k]].prompt;
            top_single += !strcmp(p, single);
            size_t c = 0;
            for (size_t j = 0; j < nb; j++) {
                const char *qj = d->recs[best[j]].query;
                c += sim_group(task, qj, strlen(qj)) == g && !strcmp(d->recs[best[j]].prompt, p);
            }
            if (c > top)
                top = c, choice[g] = p;
        }
        printf("group %d: %zu queries, top-reward prompt's mode holds %zu (%.0f%%)%s, best single "
               "holds %zu: %.60s\n",
               g, n_g, top, n_g ? 100.0 * (double)top / (double)n_g : 0.0,
               choice[g] && !strcmp(choice[g], single) ? " = best single" : "", top_single,
               choice[g] ? choice[g] : "(none)");
        if (!choice[g])
            choice[g] = single;
    }
    unsigned char *c = calloc(4 * nq, 1);
    qpo_err err = {0};
    if (sim_eval_matrix(api, choice, 4, items, nq, c, &err))
        exit(1);
    double acc = 0;
    for (size_t i = 0; i < nq; i++)
        acc += c[(size_t)sim_group(task, items[i]->query, strlen(items[i]->query)) * nq + i];
    printf("ideal greedy r* = 100 policy (per group, the mode of the top-reward prompts): %.3f\n",
           acc / (double)nq);
    free(c), free(best);
}

/* What a policy trained on D_0's global range sees near r* = 100: the records in the top
 * of the range, the prompt most of them hold, and that prompt on the dev items. A
 * query whose rewards all sit low (a hard query) has no record there, whatever its best
 * prompt. frac: the band's share of the range. */
static void top_band(const d0_file *d, const sim_api *api, const sim_item **items, size_t nq,
                     double frac) {
    double lo = 1e300, hi = -1e300;
    for (size_t i = 0; i < d->n; i++)
        lo = fmin(lo, d->recs[i].raw_reward), hi = fmax(hi, d->recs[i].raw_reward);
    double cut = hi - frac * (hi - lo);
    size_t band = 0, top = 0;
    const char *mode = NULL;
    for (size_t i = 0; i < d->n; i++) {
        if (d->recs[i].raw_reward < cut)
            continue;
        band++;
        size_t c = 0;
        for (size_t j = 0; j < d->n; j++)
            c += d->recs[j].raw_reward >= cut && !strcmp(d->recs[j].prompt, d->recs[i].prompt);
        if (c > top)
            top = c, mode = d->recs[i].prompt;
    }
    unsigned char *c = calloc(nq, 1);
    qpo_err err = {0};
    if (!mode || sim_eval_matrix(api, &mode, 1, items, nq, c, &err))
        exit(1);
    double acc = 0;
    for (size_t i = 0; i < nq; i++)
        acc += c[i];
    printf("top %.0f%% of D_0's range: %zu records, its mode prompt holds %zu (%.0f%%), dev %.3f: "
           "%.60s\n",
           100 * frac, band, top, 100.0 * (double)top / (double)band, acc / (double)nq, mode);
    free(c);
}

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* Distinct prompts of list[0..n) into uniq (borrowed), index of each in which. */
static size_t distinct(char **list, size_t n, const char **uniq, size_t *which) {
    size_t u = 0;
    for (size_t i = 0; i < n; i++) {
        size_t k = 0;
        while (k < u && strcmp(uniq[k], list[i]))
            k++;
        if (k == u)
            uniq[u++] = list[i];
        which[i] = k;
    }
    return u;
}

static void strip(char *s) {
    size_t n = strlen(s), a = 0;
    while (n && (s[n - 1] == ' ' || s[n - 1] == '\n' || s[n - 1] == '\t'))
        s[--n] = 0;
    while (s[a] == ' ' || s[a] == '\n' || s[a] == '\t')
        a++;
    memmove(s, s + a, n - a + 1);
}

static void evaluate(qpo_policy *p, const qpo_tokenizer *tok, const sim_api *api,
                     const sim_item **items, size_t nq, const char *single, double rstar, int epoch,
                     double secs) {
    const char **queries = calloc(nq, sizeof *queries);
    uint64_t *seeds = calloc(nq, sizeof *seeds);
    char **prompts = calloc(nq, sizeof *prompts);
    for (size_t i = 0; i < nq; i++)
        queries[i] = items[i]->query;
    qpo_gen_opts o;
    qpo_gen_opts_default(&o);
    o.greedy = 1;
    o.reward = (float)rstar;
    char msg[256];
    if (qpo_generate_prompts(p, tok, &o, (int)nq, queries, seeds, prompts, msg, sizeof msg)) {
        fprintf(stderr, "generate: %s\n", msg);
        exit(1);
    }
    const char **uniq = calloc(nq + 1, sizeof *uniq);
    size_t *which = calloc(nq, sizeof *which);
    for (size_t i = 0; i < nq; i++)
        strip(prompts[i]);
    size_t u = distinct(prompts, nq, uniq, which);
    uniq[u] = single;
    unsigned char *c = calloc((u + 1) * nq, 1);
    qpo_err err = {0};
    if (sim_eval_matrix(api, uniq, u + 1, items, nq, c, &err)) {
        fprintf(stderr, "eval: %s\n", err.msg);
        exit(1);
    }
    size_t *count = calloc(u, sizeof *count), mode = 0;
    double qpo = 0, mode_acc = 0, bs = 0;
    for (size_t i = 0; i < nq; i++) {
        qpo += c[which[i] * nq + i];
        bs += c[u * nq + i];
        if (++count[which[i]] > count[mode])
            mode = which[i];
    }
    for (size_t i = 0; i < nq; i++)
        mode_acc += c[mode * nq + i];
    printf("epoch %3d  qpo %.3f  policy_mode %.3f  best_single %.3f  distinct %zu  (%.0f s)  "
           "mode: %.70s\n",
           epoch, qpo / nq, mode_acc / nq, bs / nq, u, secs, uniq[mode]);
    fflush(stdout);
    for (size_t i = 0; i < nq; i++)
        free(prompts[i]);
    free(prompts), free(queries), free(seeds), free(uniq), free(which), free(c), free(count);
}

static int wanted(const char *list, int epoch) {
    char buf[256];
    snprintf(buf, sizeof buf, "%s", list);
    for (char *t = strtok(buf, ","); t; t = strtok(NULL, ","))
        if (atoi(t) == epoch)
            return 1;
    return 0;
}

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: %s D0.jsonl SHARED_DIR [key=value ...]\n", argv[0]);
        return 2;
    }
    probe_args a;
    parse_args(argc, argv, &a);
    d0_file d = {0};
    load_d0(argv[1], &d, a.w);
    if (a.qnorm)
        per_query_range(&d);
    char dir[1024], msg[512];
    snprintf(dir, sizeof dir, "%s/gpt2_bpe", argv[2]);
    qpo_tokenizer *tok = qpo_tokenizer_load_bpe(dir, msg, sizeof msg);
    if (!tok) {
        fprintf(stderr, "%s\n", msg);
        return 1;
    }
    double lo = 1e300, hi = -1e300;
    for (size_t i = 0; i < d.n; i++)
        lo = fmin(lo, d.recs[i].raw_reward), hi = fmax(hi, d.recs[i].raw_reward);
    qpo_records rows;
    if (qpo_records_from_text(tok, qpo_tokenizer_vocab_size(tok), d.recs, d.n, lo, hi, &rows, msg,
                              sizeof msg))
        return fprintf(stderr, "%s\n", msg), 1;
    if (a.vocab_d0) {
        int32_t *ids;
        size_t n;
        qpo_records_token_ids(&rows, qpo_tokenizer_vocab_size(tok), qpo_tokenizer_eos(tok), &ids,
                              &n);
        tok = qpo_tokenizer_new_subset(tok, ids, n, msg, sizeof msg);
        free(ids);
        qpo_records_free(&rows);
        if (!tok || qpo_records_from_text(tok, qpo_tokenizer_vocab_size(tok), d.recs, d.n, lo, hi,
                                          &rows, msg, sizeof msg))
            return fprintf(stderr, "%s\n", msg), 1;
    }
    qpo_policy_config cfg;
    qpo_policy_config_named("tiny", &cfg);
    cfg.vocab = qpo_tokenizer_vocab_size(tok);
    cfg.n_layer = a.layers, cfg.d = a.d, cfg.n_head = a.heads;
    qpo_policy *p = qpo_policy_new(&cfg, qpo_backend_cpu(), msg, sizeof msg);
    if (!p)
        return fprintf(stderr, "%s\n", msg), 1;
    qpo_policy_init_random(p, (uint64_t)a.seed * 7919 + 1);
    qpo_train_opts o;
    qpo_train_opts_default(&o);
    o.lr = (float)a.lr, o.batch_size = a.batch, o.lambda = (float)a.lambda;
    o.lambda_switch = a.sw, o.dropout = (float)a.dropout, o.seed = (uint64_t)a.seed;
    o.clip = (float)a.clip;
    qpo_trainer *tr = qpo_trainer_new(p, &o, &rows, msg, sizeof msg);
    if (!tr)
        return fprintf(stderr, "%s\n", msg), 1;

    sim_data data = {0};
    qpo_err err = {0};
    if (sim_data_load_dir(&data, argv[2], &err) || sim_data_finish(&data, &err))
        return qpo_err_print(&err);
    const sim_item **items = calloc((size_t)a.dev, sizeof *items);
    size_t nq = 0, seen = 0;
    for (size_t i = 0; i < data.n_items && nq < (size_t)a.dev; i++)
        if (!strcmp(data.items[i].task->name, "tweet_emotion") && seen++ >= (size_t)a.dev_from &&
            !is_d0_query(&d, data.items[i].query))
            items[nq++] = &data.items[i];
    sim_api api = {.data = &data, .model = "qpo-sim"};
    const char *single = best_single(&d);
    if (!single)
        return fprintf(stderr, "%s: no records\n", argv[1]), 1;
    printf("records %zu, vocab %d, dev items %zu, best single: %.80s\n", d.n, cfg.vocab, nq,
           single);
    group_ceiling(&d, &api, items, nq, 0);
    group_ceiling(&d, &api, items, nq, 1);
    top_record_policy(&d, &api, items, nq, single);
    top_band(&d, &api, items, nq, 0.1);
    top_band(&d, &api, items, nq, 0.03);
    top_band(&d, &api, items, nq, 0.01);
    double t0 = now_s();
    for (int e = 1; e <= a.epochs; e++) {
        qpo_loss l;
        if (qpo_trainer_epoch(tr, &l, msg, sizeof msg))
            return fprintf(stderr, "%s\n", msg), 1;
        printf("  epoch %d loss %.4f ce %.4f mse %.2f\n", e, l.loss, l.ce, l.mse);
        if (wanted(a.report, e) || e == a.epochs)
            evaluate(p, tok, &api, items, nq, single, a.rstar, e, now_s() - t0);
    }
    return 0;
}
