#ifndef QPO_POLICY_TRAIN_H
#define QPO_POLICY_TRAIN_H

/* Offline RL training of the policy (recipe section 3): shuffled mini-batches, the CE + lambda
 * MSE loss with dropout, gradient-norm clipping, AdamW and StepLR. A trainer's whole state
 * (moments, counters, schedule, data order) saves beside the policy file, so a killed job
 * resumes bit for bit: every random draw is a function of (seed, step) or (seed, epoch). */

#include <stdint.h>

#include "policy.h"

/* Records ready for training: n rows of [40] ids and masks, and r_norm. */
typedef struct qpo_records {
    size_t n;
    int32_t *query_ids, *query_mask, *prompt_ids, *prompt_mask;
    float *reward;
} qpo_records;

int qpo_records_alloc(qpo_records *r, size_t n);
void qpo_records_free(qpo_records *r);

typedef struct qpo_train_opts {
    float lr;           /* 1e-3 for loop 1, 1e-4 after */
    int batch_size;     /* 128 */
    int lr_step_epochs; /* StepLR step size: 20 */
    float lr_gamma;     /* 0.65 */
    float clip;         /* 0.25 */
    float weight_decay; /* 1e-4, on every parameter */
    float beta1, beta2, eps;
    float lambda;      /* 0.1 */
    int lambda_switch; /* the authors' per-batch rule (policy.h QPO_LAMBDA_SWITCH_MSE); on */
    float dropout;     /* 0.1 */
    uint64_t seed;     /* data order and dropout */
} qpo_train_opts;

void qpo_train_opts_default(qpo_train_opts *o);

typedef struct qpo_trainer qpo_trainer;

/* data is referenced, not copied: it must outlive the trainer. */
qpo_trainer *qpo_trainer_new(qpo_policy *p, const qpo_train_opts *o, const qpo_records *data,
                             char *errbuf, size_t errlen);
void qpo_trainer_free(qpo_trainer *tr);

/* One optimizer step on the next mini-batch of the current epoch; the last batch of an epoch
 * may be smaller. Crossing the end of an epoch reshuffles and applies StepLR. */
int qpo_trainer_step(qpo_trainer *tr, qpo_loss *out, char *errbuf, size_t errlen);
/* Steps to the end of the current epoch; out gets the mean loss over its steps. */
int qpo_trainer_epoch(qpo_trainer *tr, qpo_loss *out, char *errbuf, size_t errlen);

/* Called after each epoch (after its checkpoint is written); non-zero stops training. */
typedef int (*qpo_epoch_cb)(void *ud, int epoch, const qpo_loss *mean, float lr);

/* Trains until total_epochs epochs are done, writing a checkpoint (policy + state) to
 * ckpt_path after every epoch. A resumed trainer (qpo_trainer_load_state) continues where its
 * checkpoint left off, so a killed job restarts from its last epoch bit for bit. */
int qpo_trainer_run(qpo_trainer *tr, int total_epochs, const char *ckpt_path, qpo_epoch_cb cb,
                    void *ud, char *errbuf, size_t errlen);

/* What one step did beyond its loss, for training curves: the step's optimizer count and
 * epoch (1-based), the lambda and learning rate it used, the gradient norm before clipping,
 * and the batch's size and non-padding tokens (query + prompt). The caller times the step. */
typedef struct qpo_step_info {
    int64_t step;
    int epoch;
    float lambda, lr, grad_norm;
    int batch_size;
    int64_t tokens;
} qpo_step_info;

/* The latest qpo_trainer_step's info; zeros before the first step of this trainer. */
qpo_step_info qpo_trainer_last_step(const qpo_trainer *tr);

int64_t qpo_trainer_global_step(const qpo_trainer *tr);
int qpo_trainer_epochs_done(const qpo_trainer *tr);
float qpo_trainer_lr(const qpo_trainer *tr);

/* Saves the policy to path and the trainer state to path + ".state" (both atomic). */
int qpo_trainer_save(qpo_trainer *tr, const char *path, char *errbuf, size_t errlen);
/* Restores the state saved beside path. The policy must already hold path's weights (the
 * state carries their checksum); data and options must match those it was saved with. */
int qpo_trainer_load_state(qpo_trainer *tr, const char *path, char *errbuf, size_t errlen);

/* Gradient-norm clipping as torch.nn.utils.clip_grad_norm_: the coefficient
 * min(1, max_norm / (norm + 1e-6)); _coef only computes it (the optimizer applies it), _grads
 * also scales the gradients. */
float qpo_policy_clip_coef(qpo_policy *p, float max_norm);
float qpo_policy_clip_grads(qpo_policy *p, float max_norm);

/* steps AdamW steps on one fixed batch, dropout off (betas 0.9/0.999, eps 1e-8, lambda 0.1),
 * as `pgdt_torch.py ref` does: losses[s] = the loss after s + 1 steps. The gradients of the
 * starting weights are the caller's to read first (qpo_policy_forward + backward). */
int qpo_policy_fit_batch(qpo_policy *p, const qpo_batch *b, int steps, float lr, float wd,
                         float clip, qpo_loss *losses, char *errbuf, size_t errlen);

#endif
