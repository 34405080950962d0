/* The trainer workers' handlers, registered with the worker runtime: thin adapters from the
 * runtime's job context to the jobs' environment (trainer_jobs.h). */
#include "runtime.h"
#include "trainer_internal.h"
#include "trainer_jobs.h"

static bool ctx_should_stop(void *arg) {
    return qpo_job_should_stop(arg);
}

static qpo_trainer_env env_of(const qpo_job *job, qpo_job_ctx *ctx) {
    return (qpo_trainer_env){.conn = qpo_job_conn(ctx),
                             .job_id = job->id,
                             .job_attempt = job->attempt,
                             .worker_name = qpo_job_worker_name(ctx),
                             .should_stop = ctx_should_stop,
                             .stop_arg = ctx};
}

static qpo_job_status run_train(const qpo_job *job, qpo_job_ctx *ctx, qpo_job_outcome *out,
                                qpo_err *err) {
    qpo_trainer_env env = env_of(job, ctx);
    return qpo_trainer_job_train(&env, job->payload, out, err);
}

static qpo_job_status run_generate(const qpo_job *job, qpo_job_ctx *ctx, qpo_job_outcome *out,
                                   qpo_err *err) {
    qpo_trainer_env env = env_of(job, ctx);
    return qpo_trainer_job_generate(&env, job->payload, out, err);
}

static qpo_job_status run_evaluate_generate(const qpo_job *job, qpo_job_ctx *ctx,
                                            qpo_job_outcome *out, qpo_err *err) {
    qpo_trainer_env env = env_of(job, ctx);
    return qpo_trainer_job_evaluate_generate(&env, job->payload, out, err);
}

static qpo_job_status run_merge(const qpo_job *job, qpo_job_ctx *ctx, qpo_job_outcome *out,
                                qpo_err *err) {
    qpo_trainer_env env = env_of(job, ctx);
    return qpo_trainer_job_merge(&env, job->payload, out, err);
}

void qpo_trainer_register_handlers(void) {
    static const qpo_handler handlers[] = {
        {"train", "gpu", run_train},
        {"generate", "gpu", run_generate},
        {"evaluate-generate", "gpu", run_evaluate_generate},
        {"merge", "cpu", run_merge},
    };
    for (size_t i = 0; i < sizeof handlers / sizeof handlers[0]; i++)
        qpo_handler_register(&handlers[i]);
    qpo_worker_set_backend_hook(qpo_trainer_select_backend);
}
