#ifndef QPO_TRAINER_INTERNAL_H
#define QPO_TRAINER_INTERNAL_H

/* What the trainer jobs share: the run and its resolved config, the backend, tokenizer and
 * policy shape, checkpoint folders, seeds and text clean-up. */

#include <stddef.h>
#include <stdint.h>

#include "generate.h"
#include "policy.h"
#include "tokenizer.h"
#include "train.h"
#include "trainer_jobs.h"

/* A run with its experiment's hyper-parameters (the recipe's defaults where the resolved
 * config has none: configs resolved by older schedulers). */
typedef struct qpo_trun {
    int64_t id;
    char task[64], setting[16], target[128];
    int seed, loops, collect_batches, collect_batch_size, test_size;
    char size[32], init[1024], tokenizer[1024];
    char weights[1024]; /* policy.weights ("" when absent): the pretrained GPT-2 folder */
    int batch_size, epochs_first, epochs_next, lr_step_epochs, lambda_switch, top_k;
    int max_query_tokens, max_prompt_tokens;
    double lr_first, lr_next, weight_decay, lr_gamma, grad_clip, lambda, dropout, top_p, r_star;
    /* hyper.select "heldout": this share of D_t's queries is held out of training and the
     * loop publishes the epoch with the lowest held-out CE; 0 ("last"): the last epoch. */
    double heldout;
} qpo_trun;

/* run_id and loop, with loop checked against 1..loops of the loaded run. */
int qpo_trun_from_payload(PGconn *conn, const json_t *payload, qpo_trun *run, int *loop,
                          qpo_err *err);

/* The one place the compute backend is chosen (the CUDA backend slots in here). */
const qpo_backend *qpo_trainer_backend(void);
/* The worker's --backend hook (runtime.h): resolves NAME for every gpu job of this process. */
int qpo_trainer_select_backend(const char *name, char *device, size_t len, qpo_err *err);

/* The run's tokenizer: "gpt2_bpe" (files in $QPO_BPE_DIR), "bytes", or a directory. */
qpo_tokenizer *qpo_trainer_tokenizer(const qpo_trun *run, qpo_err *err);
/* The named size with the tokenizer's vocabulary (eos = vocab - 1 on both sides). */
int qpo_trainer_policy_config(const qpo_trun *run, const qpo_tokenizer *tok, qpo_policy_config *cfg,
                              qpo_err *err);

/* Checkpoints (ckpt.c): ROOT/run-<id>/loop-<t>/epoch-<k>/{policy.safetensors, .state,
 * epoch.json}, each epoch folder made in a temp folder and renamed into place, so a folder
 * that exists is complete. The loop's final weights: loop-<t>/policy.safetensors. */
typedef struct qpo_epoch_info {
    int epoch, records;
    double loss, ce, mse;
    char sha256[65];
    int64_t bytes;
    /* Held-out CE of this epoch's weights (-1: nothing held out), and the best epoch so far
     * with its held-out CE (0: none): kept with the newest epoch so a resumed job knows it. */
    double heldout_ce;
    int best_epoch;
    double best_heldout_ce;
} qpo_epoch_info;

int qpo_ckpt_loop_dir(const char *root, int64_t run, int loop, char *out, size_t outlen,
                      qpo_err *err); /* made if missing; absolute */
/* Saves the epoch, then drops older epoch folders except info->best_epoch's. */
int qpo_ckpt_save_epoch(qpo_trainer *tr, const char *loop_dir, const qpo_epoch_info *info,
                        qpo_epoch_info *saved, qpo_err *err);
/* The info of one complete epoch folder (0), or -1. */
int qpo_ckpt_epoch_read(const char *loop_dir, int epoch, qpo_epoch_info *info);
/* Removes every epoch folder: a start-over must not meet an older attempt's epochs. */
void qpo_ckpt_clear_epochs(const char *loop_dir);
/* Removes what killed attempts left half-written (.tmp-* entries). */
void qpo_ckpt_clean_tmp(const char *loop_dir);
/* The newest complete epoch folder's info (0: found; 1: none; -1: error). */
int qpo_ckpt_latest(const char *loop_dir, qpo_epoch_info *info, qpo_err *err);
void qpo_ckpt_epoch_path(const char *loop_dir, int epoch, const char *file, char *out,
                         size_t outlen);
/* Makes loop-<t>/policy.safetensors the given epoch's weights (atomically). */
int qpo_ckpt_publish(const char *loop_dir, int epoch, char *final_path, size_t len, qpo_err *err);
int qpo_sha256_file(const char *path, char hex[65], int64_t *bytes, qpo_err *err);

/* Loads the final checkpoint of (run, loop) recorded in qpo.checkpoints, checked against its
 * sha256 and the tokenizer's vocabulary. NULL with err (QPO_EXIT_USAGE: nothing a retry
 * fixes) otherwise. */
qpo_policy *qpo_trainer_load_checkpoint(PGconn *conn, int64_t run, int loop,
                                        const qpo_tokenizer *tok, qpo_err *err);

/* A 64-bit mix of (a, b): seeds for (run seed, loop[, batch, item]). */
uint64_t qpo_trainer_seed(uint64_t a, uint64_t b);

/* Decoded prompt bytes as PostgreSQL text: invalid UTF-8 becomes U+FFFD, NUL is dropped.
 * malloc'd. */
char *qpo_text_clean_utf8(const char *s, size_t len);

/* Drops leading and trailing whitespace in place, as the authors' .strip() of every decoded
 * prompt (Python's str.strip(): ASCII and Unicode spaces). */
void qpo_text_strip(char *s);

/* Maps job status from an error code: usage (bad data/config) is fatal, the rest retried. */
qpo_job_status qpo_trainer_fail(const qpo_err *err);

#endif
