/* The reward workers' handlers, registered with the worker runtime: thin adapters from the
 * runtime's job context to the jobs' environment (reward_jobs.h). */
#include "reward_jobs.h"

static bool ctx_should_stop(void *arg) {
    return qpo_job_should_stop(arg);
}

static qpo_reward_env env_of(const qpo_job *job, qpo_job_ctx *ctx) {
    return (qpo_reward_env){.conn = qpo_job_conn(ctx),
                            .job_id = job->id,
                            .job_attempt = job->attempt,
                            .worker = qpo_job_worker_name(ctx),
                            .should_stop = ctx_should_stop,
                            .stop_arg = ctx};
}

static qpo_job_status run_reward(const qpo_job *job, qpo_job_ctx *ctx, qpo_job_outcome *out,
                                 qpo_err *err) {
    qpo_reward_env env = env_of(job, ctx);
    return qpo_reward_job_reward(&env, job->payload, out, err);
}

static qpo_job_status run_score(const qpo_job *job, qpo_job_ctx *ctx, qpo_job_outcome *out,
                                qpo_err *err) {
    qpo_reward_env env = env_of(job, ctx);
    return qpo_reward_job_score(&env, job->payload, out, err);
}

static qpo_job_status run_d0(const qpo_job *job, qpo_job_ctx *ctx, qpo_job_outcome *out,
                             qpo_err *err) {
    qpo_reward_env env = env_of(job, ctx);
    return qpo_reward_job_d0(&env, job->payload, out, err);
}

void qpo_reward_register_handlers(void) {
    static const qpo_handler handlers[] = {
        {"reward", "cpu", run_reward},
        {"score", "cpu", run_score},
        {"d0", "cpu", run_d0},
    };
    for (size_t i = 0; i < sizeof handlers / sizeof handlers[0]; i++) {
        qpo_handler_register(&handlers[i]);
    }
}
