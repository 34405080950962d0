#ifndef QPO_POLICY_TRAIN_INTERNAL_H
#define QPO_POLICY_TRAIN_INTERNAL_H

#include "model_internal.h"
#include "train.h"

struct qpo_trainer {
    qpo_policy *p;
    qpo_train_opts o;
    const qpo_records *data;
    float *m, *v;       /* AdamW moments, backend memory, parameter layout */
    int64_t step;       /* optimizer steps taken (AdamW's t) */
    int epoch;          /* epochs completed */
    size_t pos;         /* next record of the current epoch's order */
    int32_t *order;     /* the current epoch's permutation of the records */
    float lambda;       /* current MSE weight (lambda_switch may raise it per batch) */
    qpo_step_info last; /* what the latest qpo_trainer_step did, for telemetry */
};

/* The epoch's order: a Fisher-Yates shuffle seeded by (seed, epoch). */
void qpo_trainer_shuffle(qpo_trainer *tr);
/* FNV-1a over the parameters' bytes: ties a state file to the weights saved with it. */
uint64_t qpo_trainer_weights_checksum(qpo_trainer *tr);

#endif
