#include "pair_reward.h"

#include "reward_formula.h"

double qpo_pair_raw_reward(const qpo_scoring *s, const qpo_score_item *it, double avg_acc,
                           double avg_acc_weight) {
    double w = avg_acc_weight;
    if (s->task->type == QPO_TASK_MATH)
        return qpo_reward_raw(QPO_REWARD_MATH, it->acc, avg_acc, it->completion_nll, w);
    if (s->sets)
        return qpo_reward_raw(QPO_REWARD_FEW_SHOT, it->acc, avg_acc, 0, w);
    return qpo_reward_raw(QPO_REWARD_ZERO_SHOT, it->acc, avg_acc, it->nlls[it->label], w);
}
