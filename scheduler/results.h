#ifndef QPO_SCHED_RESULTS_H
#define QPO_SCHED_RESULTS_H

/* What `qpo results` shows: the aggregates of the view qpo.results, and for each loop's QPO
 * row its paired difference against the best baseline of that loop (and against each of the
 * loop's baselines), with a seeded 95% bootstrap interval over the same test items, plus
 * warnings where the numbers cannot carry a conclusion. */

#include <libpq-fe.h>
#include <stddef.h>
#include <stdint.h>

#define QPO_BOOTSTRAP_RESAMPLES 2000
#define QPO_BOOTSTRAP_SEED 20250101u
/* Below this many paired items per seed, or above this half-width, a difference of a few
 * points is not a finding. */
#define QPO_RESULTS_MIN_ITEMS 100
#define QPO_RESULTS_MAX_HALF_WIDTH 0.05

typedef struct qpo_interval {
    double mean, lo, hi;
} qpo_interval;

/* The paired bootstrap, pooled over seeds: diffs[s][i] is (QPO - baseline) on item i of seed
 * s's test sample. The statistic is the mean over seeds of each seed's mean difference; each
 * resample draws every seed's items again with replacement, inside that seed (items of
 * different seeds are different test samples), and the interval is the 2.5% and 97.5%
 * percentiles of `resamples` statistics drawn from `seed`. Returns -1 when a seed has no
 * items or resamples < 1. */
int qpo_paired_bootstrap(const double *const *diffs, const size_t *n, size_t seeds, int resamples,
                         uint64_t seed, qpo_interval *out);

/* A QPO row against one baseline: QPO - baseline, paired over the same items. */
typedef struct qpo_result_vs {
    char *baseline;
    qpo_interval diff;
    long paired_min; /* the fewest paired items of a seed */
} qpo_result_vs;

typedef struct qpo_result_row {
    char *task, *setting, *target, *source;
    int loop, seeds;
    double mean_acc, std_acc; /* std_acc: NaN for one seed (unknown, not 0) */
    long items_min, items_max;
    double distinct_prompts; /* qpo rows: distinct greedy test prompts, mean over seeds; NaN */
    /* qpo rows with a baseline: QPO - vs, paired over items; vs NULL otherwise */
    char *vs;
    qpo_interval diff;
    long paired_min; /* the fewest paired items of a seed */
    /* qpo rows: the same against every baseline of the loop whose items pair on every seed
     * (fixed ones, best_single, policy_mode), so a reader can quote QPO - best_single even
     * when policy_mode is the best baseline */
    qpo_result_vs *vs_all;
    size_t nvs_all;
} qpo_result_row;

typedef struct qpo_results {
    qpo_result_row *rows;
    size_t n;
    char **warnings;
    size_t nwarnings;
} qpo_results;

/* agg: the statement results_of_experiment; items: results_item_scores; d0: results_d0_provenance
 * (named in sql/queries/scheduler.sql). */
int qpo_results_build(const PGresult *agg, const PGresult *items, const PGresult *d0,
                      qpo_results *out);
void qpo_results_free(qpo_results *r);

#endif
