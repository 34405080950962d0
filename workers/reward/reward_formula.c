/* Reward arithmetic (docs/qpo-recipe.md section 4). See reward_formula.h. */
#include "reward_formula.h"

int qpo_reward_argmin(const double *nlls, size_t n) {
    int best = n ? 0 : -1;
    for (size_t i = 1; i < n; i++) {
        if (nlls[i] < nlls[best]) {
            best = (int)i;
        }
    }
    return best;
}

double qpo_reward_zero_shot(bool correct, double avg_acc, double nll_gold) {
    return 10.0 * (correct ? 1.0 : 0.0) + 10.0 * avg_acc - nll_gold;
}

double qpo_reward_few_shot(double acc_q, double avg_acc) {
    return 10.0 * (acc_q + avg_acc);
}

double qpo_reward_math(bool correct, double avg_acc, double completion_nll) {
    return 10.0 * (correct ? 1.0 : 0.0) + 10.0 * avg_acc - completion_nll;
}

double qpo_reward_normalise(double raw, double min_raw, double max_raw) {
    if (!(max_raw > min_raw)) {
        return raw >= max_raw ? 100.0 : 0.0;
    }
    return (raw - min_raw) / (max_raw - min_raw) * 100.0;
}
