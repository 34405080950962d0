#ifndef QPO_TRAINER_JOBS_H
#define QPO_TRAINER_JOBS_H

/* The trainer workers' jobs (docs/data-model.md): train, generate, evaluate-generate (gpu
 * class) and merge (cpu class). Each is a function of an environment (connection, job
 * identity, stop check, checkpoint directory) so tests can run one against a real database
 * without the worker runtime; qpo_trainer_register_handlers() builds the environment from the
 * runtime's job context. Outputs are rows added to the outcome, written inside the completing
 * transaction, so each is written exactly once. */

#include <jansson.h>
#include <libpq-fe.h>
#include <stdbool.h>
#include <stdint.h>

#include "error.h"
#include "handler.h"

typedef struct qpo_trainer_env {
    PGconn *conn; /* outside a transaction */
    int64_t job_id;
    int job_attempt;
    bool (*should_stop)(void *arg);
    void *stop_arg;
    /* Root of run-<id>/loop-<t>/ checkpoint folders (with artifacts in pg: scratch copies
     * only); NULL: qpo_trainer_checkpoint_root(). */
    const char *checkpoint_root;
    /* Where train keeps its epochs: "dir" or "pg" (ckpt_store.h); NULL: $QPO_ARTIFACTS, else
     * "dir". Readers follow what qpo.checkpoints recorded, whatever this says. */
    const char *artifacts;
    const char *worker_name; /* the lease owner: epochs saved in pg are fenced by it */
    /* Tests: after saving this many epochs in this call, stop as if cancelled (0: never). */
    int stop_after_epochs;
} qpo_trainer_env;

/* $QPO_CHECKPOINT_DIR, else "qpo-checkpoints" in the working directory. */
const char *qpo_trainer_checkpoint_root(void);

/* train {"run_id", "loop"}: trains loop t's policy (resuming from the last complete epoch of
 * an earlier attempt); its outcome adds the final checkpoint row to qpo.checkpoints. */
qpo_job_status qpo_trainer_job_train(const qpo_trainer_env *env, const json_t *payload,
                                     qpo_job_outcome *out, qpo_err *err);

/* generate {"run_id", "loop", "batches", "batch_size"}: one sampled prompt per collect item;
 * its outcome adds qpo.generations rows (purpose 'collect'). */
qpo_job_status qpo_trainer_job_generate(const qpo_trainer_env *env, const json_t *payload,
                                        qpo_job_outcome *out, qpo_err *err);

/* evaluate-generate {"run_id", "loop", "test_size"}: greedy prompts for the test sample;
 * its outcome adds qpo.generations rows (purpose 'test'). */
qpo_job_status qpo_trainer_job_evaluate_generate(const qpo_trainer_env *env, const json_t *payload,
                                                 qpo_job_outcome *out, qpo_err *err);

/* merge {"run_id", "loop"}: out->commit adds loop t's good rewards to qpo.run_records. */
qpo_job_status qpo_trainer_job_merge(const qpo_trainer_env *env, const json_t *payload,
                                     qpo_job_outcome *out, qpo_err *err);

/* Registers train, generate, evaluate-generate (gpu) and merge (cpu) with the runtime. */
void qpo_trainer_register_handlers(void);

#endif
