#ifndef QPO_REWARD_JOBS_H
#define QPO_REWARD_JOBS_H

/* The reward workers' jobs (docs/data-model.md): reward, score and d0. Each is a function of
 * an environment (connection, job identity, stop check) so tests can run one against a real
 * database and a simulated LLM without the worker runtime; the handlers registered by
 * qpo_reward_register_handlers() build the environment from the runtime's job context. */

#include <jansson.h>
#include <libpq-fe.h>
#include <stdbool.h>
#include <stdint.h>

#include "error.h"
#include "handler.h"

typedef struct qpo_reward_env {
    PGconn *conn; /* outside a transaction; llm_calls rows are autocommitted on it */
    int64_t job_id;
    int job_attempt;
    const char *worker;
    bool (*should_stop)(void *arg);
    void *stop_arg;
} qpo_reward_env;

/* reward {"run_id", "loop", "batch"}: scores the collect batch, computes its accuracy and every
 * pair's raw and normalised reward; its outcome adds qpo.rewards rows. */
qpo_job_status qpo_reward_job_reward(const qpo_reward_env *env, const json_t *payload,
                                     qpo_job_outcome *out, qpo_err *err);

/* score {"run_id", "loop", "shard", "shards", "source"[, "prompt"]}: accuracy of the policy's
 * test prompts (source "qpo") or of one fixed prompt ("baseline:NAME") on this shard of the
 * run's test sample; its outcome adds qpo.eval_scores rows. */
qpo_job_status qpo_reward_job_score(const qpo_reward_env *env, const json_t *payload,
                                    qpo_job_outcome *out, qpo_err *err);

/* d0 {"task", "setting", "target", "queries", "seed", "collections": [..]}: builds D_0 from
 * source prompts (see d0_job.c); its outcome adds qpo.d0_records rows. */
qpo_job_status qpo_reward_job_d0(const qpo_reward_env *env, const json_t *payload,
                                 qpo_job_outcome *out, qpo_err *err);

/* Registers reward, score and d0 with the worker runtime (cpu class). */
void qpo_reward_register_handlers(void);

#endif
