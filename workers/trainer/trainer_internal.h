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
    /* policy.vocab "d0": loop 1 builds a scratch policy over the tokens of its training data
     * (tokenizer.h's subset; the ids travel in the checkpoints). */
    int vocab_d0;
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

/* Checkpoints (ckpt.c): one saved epoch is the policy file, its training state and its info
 * (epoch.json), made visible as one unit; the store keeps them in a folder or in PostgreSQL
 * (ckpt_store.h). */
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

/* The info as the JSON object epoch.json and qpo.checkpoint_epochs.info hold, and back (-1
 * when a field is missing or the sha256 is not 64 characters). */
json_t *qpo_epoch_info_json(const qpo_epoch_info *info);
int qpo_epoch_info_parse(const json_t *o, qpo_epoch_info *info);

int qpo_ckpt_loop_dir(const char *root, int64_t run, int loop, char *out, size_t outlen,
                      qpo_err *err); /* made if missing; absolute */
/* The dir backend's info of one complete epoch folder (0), or -1. */
int qpo_ckpt_epoch_read(const char *loop_dir, int epoch, qpo_epoch_info *info);
/* Removes what killed attempts left half-written (.tmp-* entries). */
void qpo_ckpt_clean_tmp(const char *loop_dir);
void qpo_ckpt_epoch_path(const char *loop_dir, int epoch, const char *file, char *out,
                         size_t outlen);
int qpo_sha256_file(const char *path, char hex[65], int64_t *bytes, qpo_err *err);
void qpo_ckpt_remove_tree(const char *dir);

/* Loads the final checkpoint of (run, loop) recorded in qpo.checkpoints (a file, or an epoch
 * in PostgreSQL streamed to a temporary file), checked against its sha256 and the tokenizer's
 * vocabulary; a policy over a subset vocabulary (policy.vocab "d0") replaces *tok with that
 * subset (qpo_trainer_adopt_vocab). NULL with err (QPO_EXIT_USAGE: nothing a retry fixes)
 * otherwise. */
qpo_policy *qpo_trainer_load_checkpoint(PGconn *conn, int64_t run, int loop, qpo_tokenizer **tok,
                                        qpo_err *err);
/* When p carries subset vocabulary ids, *tok (the run's tokenizer) becomes that subset, which
 * takes it over; a *tok that is already a subset must be the same one. */
int qpo_trainer_adopt_vocab(const qpo_policy *p, qpo_tokenizer **tok, qpo_err *err);

/* Copies the final weights of (run, loop) to DEST (a file or streamed out of PostgreSQL),
 * checked against the recorded sha256; a mismatch leaves no DEST and is QPO_EXIT_USAGE. */
int qpo_trainer_checkpoint_copy(PGconn *conn, int64_t run, int loop, const char *dest,
                                qpo_err *err);

/* A 64-bit mix of (a, b): seeds for (run seed, loop[, batch, item]). */
uint64_t qpo_trainer_seed(uint64_t a, uint64_t b);

/* Decoded prompt bytes as PostgreSQL text: invalid UTF-8 becomes U+FFFD, NUL is dropped.
 * malloc'd. */
char *qpo_text_clean_utf8(const char *s, size_t len);

/* Drops leading and trailing whitespace in place, as the authors' .strip() of every decoded
 * prompt (Python's str.strip(): ASCII and Unicode spaces). */
void qpo_text_strip(char *s);

/* The run's decoding: greedy (evaluate-generate) or top-k/top-p (generate) at r*. */
void qpo_trainer_gen_opts(const qpo_trun *run, int greedy, qpo_gen_opts *o);

/* A decoded prompt as generate writes it: the final eos dropped, cleaned (UTF-8, no NUL) and
 * stripped. malloc'd; NULL with msg when the tokenizer cannot decode the ids. */
char *qpo_trainer_prompt_text(const qpo_tokenizer *tok, const int32_t *ids, int len, char *msg,
                              size_t msglen);

/* Maps job status from an error code: usage (bad data/config) is fatal, the rest retried. */
qpo_job_status qpo_trainer_fail(const qpo_err *err);

#endif
