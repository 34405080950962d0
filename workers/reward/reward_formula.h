#ifndef QPO_REWARD_FORMULA_H
#define QPO_REWARD_FORMULA_H

/* The raw and normalised rewards of docs/qpo-recipe.md section 4, as plain arithmetic so every
 * component computes them the same way (reward and d0 jobs, D_0 import, tests). */

#include <stdbool.h>
#include <stddef.h>

/* Index of the smallest NLL (the prediction of label scoring); ties go to the lower index.
 * -1 when n == 0. */
int qpo_reward_argmin(const double *nlls, size_t n);

/* Classification / multiple choice, zero-shot: 10*correct + 10*avg_acc - nll_gold. */
double qpo_reward_zero_shot(bool correct, double avg_acc, double nll_gold);

/* Classification / multiple choice, few-shot: 10*(acc_q + avg_acc), acc_q the mean
 * correctness over the demonstration sets. */
double qpo_reward_few_shot(double acc_q, double avg_acc);

/* Math: 10*correct + 10*avg_acc - nll, nll the completion's mean NLL (one scale: qpo). */
double qpo_reward_math(bool correct, double avg_acc, double completion_nll);

/* (raw - min_raw) / (max_raw - min_raw) * 100 with D_0's range. A degenerate range
 * (max <= min) gives 100 for raw >= max and 0 below, so a one-record D_0 still conditions. */
double qpo_reward_normalise(double raw, double min_raw, double max_raw);

#endif
