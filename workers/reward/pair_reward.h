#ifndef QPO_PAIR_REWARD_H
#define QPO_PAIR_REWARD_H

/* A scored (query, prompt) pair's raw reward, for the reward and d0 jobs alike: which formula
 * applies follows from the scoring (math task, demonstration sets or neither), the arithmetic
 * is qpo_reward_raw's (common/recipe), which the D_0 importer calls too. avg_acc_weight: the
 * run's (qpo.runs) or the d0 build's (config reward.avg_acc_weight). */

#include "scoring.h"

double qpo_pair_raw_reward(const qpo_scoring *s, const qpo_score_item *it, double avg_acc,
                           double avg_acc_weight);

#endif
