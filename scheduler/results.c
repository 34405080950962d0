/* qpo results' numbers: the view's aggregates plus paired bootstrap intervals of QPO against
 * the best baseline of each loop, and the warnings that keep a reader from over-reading them. */
#include "results.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static uint64_t splitmix64(uint64_t *state) {
    uint64_t z = (*state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* Uniform in [0, n) without modulo bias worth measuring (Lemire's multiply). */
static size_t draw(uint64_t *state, size_t n) {
    return (size_t)(((unsigned __int128)splitmix64(state) * n) >> 64);
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int qpo_paired_bootstrap(const double *const *diffs, const size_t *n, size_t seeds, int resamples,
                         uint64_t seed, qpo_interval *out) {
    if (seeds == 0 || resamples < 1)
        return -1;
    double mean = 0;
    for (size_t s = 0; s < seeds; s++) {
        if (n[s] == 0)
            return -1;
        double sum = 0;
        for (size_t i = 0; i < n[s]; i++)
            sum += diffs[s][i];
        mean += sum / (double)n[s];
    }
    double *stats = malloc((size_t)resamples * sizeof *stats);
    if (!stats)
        return -1;
    uint64_t state = seed;
    for (int b = 0; b < resamples; b++) {
        double stat = 0;
        for (size_t s = 0; s < seeds; s++) {
            double sum = 0;
            for (size_t i = 0; i < n[s]; i++)
                sum += diffs[s][draw(&state, n[s])];
            stat += sum / (double)n[s];
        }
        stats[b] = stat / (double)seeds;
    }
    qsort(stats, (size_t)resamples, sizeof *stats, cmp_double);
    size_t lo = (size_t)floor(0.025 * resamples), hi = (size_t)ceil(0.975 * resamples) - 1;
    *out = (qpo_interval){.mean = mean / (double)seeds, .lo = stats[lo], .hi = stats[hi]};
    free(stats);
    return 0;
}

static void warn(qpo_results *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void warn(qpo_results *r, const char *fmt, ...) {
    char buf[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    r->warnings = realloc(r->warnings, (r->nwarnings + 1) * sizeof *r->warnings);
    if (!r->warnings)
        abort();
    r->warnings[r->nwarnings++] = strdup(buf);
}

static double num_or_nan(const PGresult *res, int row, int col) {
    return PQgetisnull(res, row, col) ? NAN : strtod(PQgetvalue(res, row, col), NULL);
}

/* Columns of results_of_experiment. */
enum { A_TASK, A_SETTING, A_TARGET, A_SOURCE, A_LOOP, A_SEEDS, A_MEAN, A_STD, A_MIN, A_MAX, A_DP };
/* Columns of results_item_scores. */
enum { I_TASK, I_SETTING, I_TARGET, I_SEED, I_LOOP, I_SOURCE, I_ITEM, I_ACC };

static int same_group(const qpo_result_row *a, const qpo_result_row *b) {
    return !strcmp(a->task, b->task) && !strcmp(a->setting, b->setting) &&
           !strcmp(a->target, b->target);
}

static int item_is(const PGresult *items, int i, const qpo_result_row *g, int loop,
                   const char *source) {
    return atoi(PQgetvalue(items, i, I_LOOP)) == loop &&
           !strcmp(PQgetvalue(items, i, I_SOURCE), source) &&
           !strcmp(PQgetvalue(items, i, I_TASK), g->task) &&
           !strcmp(PQgetvalue(items, i, I_SETTING), g->setting) &&
           !strcmp(PQgetvalue(items, i, I_TARGET), g->target);
}

/* The rows [*a, *b) of one (group, seed, loop, source): contiguous, by the statement's order. */
static void item_range(const PGresult *items, const qpo_result_row *g, const char *seed, int loop,
                       const char *source, int *a, int *b) {
    int n = PQntuples(items);
    *a = *b = 0;
    for (int i = 0; i < n; i++) {
        if (item_is(items, i, g, loop, source) && !strcmp(PQgetvalue(items, i, I_SEED), seed)) {
            *a = i;
            while (i < n && item_is(items, i, g, loop, source) &&
                   !strcmp(PQgetvalue(items, i, I_SEED), seed))
                i++;
            *b = i;
            return;
        }
    }
}

/* Per seed of the QPO row, QPO - baseline on the items both scored (sorted by item id). */
static int paired_diffs(const PGresult *items, const qpo_result_row *q, const qpo_result_row *base,
                        double ***diffs, size_t **n, size_t *seeds) {
    int total = PQntuples(items);
    *seeds = 0;
    *diffs = NULL;
    *n = NULL;
    for (int i = 0; i < total; i++) {
        if (!item_is(items, i, q, q->loop, "qpo"))
            continue;
        const char *seed = PQgetvalue(items, i, I_SEED);
        int qa, qb, ba, bb;
        item_range(items, q, seed, q->loop, "qpo", &qa, &qb);
        item_range(items, q, seed, base->loop, base->source, &ba, &bb);
        i = qb - 1;
        double *d = malloc((size_t)(qb - qa + 1) * sizeof *d);
        size_t k = 0;
        for (int x = qa, y = ba; x < qb && y < bb;) {
            int ix = atoi(PQgetvalue(items, x, I_ITEM)), iy = atoi(PQgetvalue(items, y, I_ITEM));
            if (ix == iy)
                d[k++] = strtod(PQgetvalue(items, x, I_ACC), NULL) -
                         strtod(PQgetvalue(items, y, I_ACC), NULL);
            x += ix <= iy;
            y += iy <= ix;
        }
        *diffs = realloc(*diffs, (*seeds + 1) * sizeof **diffs);
        *n = realloc(*n, (*seeds + 1) * sizeof **n);
        (*diffs)[*seeds] = d;
        (*n)[(*seeds)++] = k;
    }
    return 0;
}

/* A baseline a QPO row of loop t is measured against: the group's fixed and chosen baselines
 * (loop 0) and its policy_mode of loop t. */
static int is_baseline_of(const qpo_result_row *b, const qpo_result_row *q) {
    return same_group(b, q) && !strncmp(b->source, "baseline:", 9) &&
           (b->loop == 0 || b->loop == q->loop);
}

/* The best baseline: the highest mean among them. */
static const qpo_result_row *best_baseline(const qpo_results *r, const qpo_result_row *q) {
    const qpo_result_row *best = NULL;
    for (size_t i = 0; i < r->n; i++)
        if (is_baseline_of(&r->rows[i], q) && (!best || r->rows[i].mean_acc > best->mean_acc))
            best = &r->rows[i];
    return best;
}

/* QPO - base with its interval into *out; -1 when some seed has no paired item. */
static int paired_interval(const PGresult *items, const qpo_result_row *q,
                           const qpo_result_row *base, qpo_result_vs *out) {
    double **diffs;
    size_t *n, seeds;
    paired_diffs(items, q, base, &diffs, &n, &seeds);
    out->paired_min = seeds ? (long)n[0] : 0;
    for (size_t s = 0; s < seeds; s++)
        if ((long)n[s] < out->paired_min)
            out->paired_min = (long)n[s];
    int rc =
        seeds && out->paired_min > 0 &&
                qpo_paired_bootstrap((const double *const *)diffs, n, seeds,
                                     QPO_BOOTSTRAP_RESAMPLES, QPO_BOOTSTRAP_SEED, &out->diff) == 0
            ? 0
            : -1;
    for (size_t s = 0; s < seeds; s++)
        free(diffs[s]);
    free(diffs);
    free(n);
    if (rc == 0)
        out->baseline = strdup(base->source);
    return rc;
}

static void compare_all(qpo_results *r, qpo_result_row *q, const PGresult *items) {
    for (size_t i = 0; i < r->n; i++) {
        if (!is_baseline_of(&r->rows[i], q))
            continue;
        qpo_result_vs v = {0};
        if (paired_interval(items, q, &r->rows[i], &v) < 0)
            continue;
        q->vs_all = realloc(q->vs_all, (q->nvs_all + 1) * sizeof *q->vs_all);
        if (!q->vs_all)
            abort();
        q->vs_all[q->nvs_all++] = v;
    }
}

static void compare(qpo_results *r, qpo_result_row *q, const PGresult *items) {
    compare_all(r, q, items);
    const qpo_result_row *base = best_baseline(r, q);
    const qpo_result_vs *v = NULL;
    for (size_t i = 0; base && i < q->nvs_all; i++)
        if (!strcmp(q->vs_all[i].baseline, base->source))
            v = &q->vs_all[i];
    if (!v)
        return;
    q->vs = strdup(v->baseline);
    q->diff = v->diff;
    q->paired_min = v->paired_min;
    double half = (q->diff.hi - q->diff.lo) / 2;
    if (q->paired_min < QPO_RESULTS_MIN_ITEMS || half > QPO_RESULTS_MAX_HALF_WIDTH)
        warn(r,
             "%s %s %s loop %d: QPO - %s rests on %ld paired test items per seed and its "
             "95%% interval is +-%.1f points: too wide to tell a few points apart (want "
             ">= %d items and <= %.0f points)",
             q->task, q->setting, q->target, q->loop, base->source, q->paired_min, 100 * half,
             QPO_RESULTS_MIN_ITEMS, 100 * QPO_RESULTS_MAX_HALF_WIDTH);
}

static void read_row(const PGresult *agg, int i, qpo_result_row *row) {
    *row = (qpo_result_row){.task = strdup(PQgetvalue(agg, i, A_TASK)),
                            .setting = strdup(PQgetvalue(agg, i, A_SETTING)),
                            .target = strdup(PQgetvalue(agg, i, A_TARGET)),
                            .source = strdup(PQgetvalue(agg, i, A_SOURCE)),
                            .loop = atoi(PQgetvalue(agg, i, A_LOOP)),
                            .seeds = atoi(PQgetvalue(agg, i, A_SEEDS)),
                            .mean_acc = num_or_nan(agg, i, A_MEAN),
                            .std_acc = num_or_nan(agg, i, A_STD),
                            .items_min = atol(PQgetvalue(agg, i, A_MIN)),
                            .items_max = atol(PQgetvalue(agg, i, A_MAX)),
                            .distinct_prompts = num_or_nan(agg, i, A_DP)};
}

int qpo_results_build(const PGresult *agg, const PGresult *items, const PGresult *d0,
                      qpo_results *out) {
    memset(out, 0, sizeof *out);
    out->n = (size_t)PQntuples(agg);
    out->rows = calloc(out->n ? out->n : 1, sizeof *out->rows);
    for (size_t i = 0; i < out->n; i++)
        read_row(agg, (int)i, &out->rows[i]);
    for (size_t i = 0; i < out->n; i++)
        if (!strcmp(out->rows[i].source, "qpo"))
            compare(out, &out->rows[i], items);
    for (int i = 0; i < PQntuples(d0); i++)
        warn(out,
             "D_0 of %s %s %s holds records imported from %s, not scored on target %s by a d0 "
             "job: its rewards and best single prompt may come from another LLM",
             PQgetvalue(d0, i, 0), PQgetvalue(d0, i, 1), PQgetvalue(d0, i, 2), PQgetvalue(d0, i, 3),
             PQgetvalue(d0, i, 2));
    return 0;
}

void qpo_results_free(qpo_results *r) {
    for (size_t i = 0; i < r->n; i++) {
        qpo_result_row *row = &r->rows[i];
        free(row->task);
        free(row->setting);
        free(row->target);
        free(row->source);
        free(row->vs);
        for (size_t k = 0; k < row->nvs_all; k++)
            free(row->vs_all[k].baseline);
        free(row->vs_all);
    }
    free(r->rows);
    for (size_t i = 0; i < r->nwarnings; i++)
        free(r->warnings[i]);
    free(r->warnings);
    memset(r, 0, sizeof *r);
}
