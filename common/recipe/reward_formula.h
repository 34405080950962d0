#ifndef QPO_REWARD_FORMULA_H
#define QPO_REWARD_FORMULA_H

/* The raw and normalised rewards of docs/qpo-recipe.md section 4, as plain arithmetic so every
 * component computes them the same way (reward and d0 jobs, D_0 import, tests). */

#include <stdbool.h>
#include <stddef.h>

/* The recipe's weight on correctness. */
#define QPO_REWARD_SCALE 10.0
/* The recipe's (the authors') weight on the prompt's mean accuracy, and the range an
 * experiment may choose instead (config "reward.avg_acc_weight"). avg_acc is a property of the
 * prompt, not of the (query, prompt) pair: at the authors' 10 it can outweigh every per-query
 * signal, so the top of a query's rewards goes to the prompt best on average (docs/recipe.md,
 * "the avg_acc weight"). */
#define QPO_REWARD_AVG_ACC_WEIGHT 10.0
#define QPO_REWARD_AVG_ACC_WEIGHT_MAX 100.0
/* An item counts as correct when its accuracy is strictly above this (zero-shot and math:
 * acc is 0 or 1 from one answer; an imported D_0 may carry a fraction). */
#define QPO_REWARD_CORRECT_ABOVE 0.5

typedef enum qpo_reward_kind {
    QPO_REWARD_ZERO_SHOT, /* classification / multiple choice, no demonstrations */
    QPO_REWARD_FEW_SHOT,  /* classification / multiple choice over demonstration sets */
    QPO_REWARD_MATH,      /* one chat completion, any setting */
} qpo_reward_kind;

/* Whether an item's accuracy makes it correct (QPO_REWARD_CORRECT_ABOVE). */
bool qpo_reward_correct(double acc);

/* The raw reward of one (query, prompt) pair, the one function the reward and d0 jobs and the
 * D_0 importer call: acc is the item's accuracy (acc_q for few-shot), avg_acc the prompt's
 * mean accuracy, nll the gold verbalizer's NLL (zero-shot) or the completion's mean NLL
 * (math); few-shot ignores nll; w the weight on avg_acc (the recipe's is
 * QPO_REWARD_AVG_ACC_WEIGHT = 10). With correct = qpo_reward_correct(acc):
 *   zero-shot  10*correct + w*avg_acc - nll_gold
 *   few-shot   10*acc_q + w*avg_acc, acc_q the mean correctness over the demonstration sets
 *   math       10*correct + w*avg_acc - nll (one scale: qpo) */
double qpo_reward_raw(qpo_reward_kind kind, double acc, double avg_acc, double nll, double w);

/* Index of the smallest NLL (the prediction of label scoring); ties go to the lower index.
 * -1 when n == 0. */
int qpo_reward_argmin(const double *nlls, size_t n);

/* (raw - min_raw) / (max_raw - min_raw) * 100 with D_0's range. A degenerate range
 * (max <= min) gives 100 for raw >= max and 0 below, so a one-record D_0 still conditions. */
double qpo_reward_normalise(double raw, double min_raw, double max_raw);

#endif
