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

bool qpo_reward_correct(double acc) {
    return acc > QPO_REWARD_CORRECT_ABOVE;
}

double qpo_reward_raw(qpo_reward_kind kind, double acc, double avg_acc, double nll, double w) {
    if (kind == QPO_REWARD_FEW_SHOT)
        return QPO_REWARD_SCALE * acc + w * avg_acc;
    /* Zero-shot and math differ only in which NLL the caller passes. */
    return QPO_REWARD_SCALE * (qpo_reward_correct(acc) ? 1.0 : 0.0) + w * avg_acc - nll;
}

double qpo_reward_normalise(double raw, double min_raw, double max_raw) {
    if (!(max_raw > min_raw)) {
        return raw >= max_raw ? 100.0 : 0.0;
    }
    return (raw - min_raw) / (max_raw - min_raw) * 100.0;
}
