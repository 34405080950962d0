#ifndef QPO_HANDLER_H
#define QPO_HANDLER_H

/* The contract between the worker runtime and the code that runs one kind of job.
 *
 * A handler runs on a worker thread of its own with its own PostgreSQL connection. It does the
 * work (which may take hours: training, thousands of LLM calls), then describes its outcome.
 * The runtime completes the job in ONE transaction that (1) checks the fencing token (state
 * 'running', same attempt, same lease owner), (2) calls out->commit to write the handler's
 * output rows, (3) stores out->result and marks the job succeeded, (4) records the job event.
 * If the fence check fails (the lease was lost and the job retried elsewhere) nothing of it is
 * written. So outputs are written exactly once. */

#include <jansson.h>
#include <libpq-fe.h>
#include <stdbool.h>
#include <stdint.h>

#include "error.h"

typedef struct qpo_job {
    int64_t id;
    const char *kind;
    int attempt; /* 1 on the first try; also the fencing token */
    int max_attempts;
    int64_t run_id; /* 0 when the job belongs to no run */
    const json_t *payload;
} qpo_job;

typedef struct qpo_job_ctx qpo_job_ctx;

/* A connection for this job's thread, outside any transaction. A handler may use it for
 * writes that must survive the job failing (e.g. one qpo.llm_calls row per HTTP call,
 * autocommitted) and for reads. It must leave it outside a transaction when it returns. */
PGconn *qpo_job_conn(qpo_job_ctx *ctx);

/* True once the job was cancelled or its lease was lost. Cheap (no round trip): handlers of
 * long jobs call it between units of work and return QPO_JOB_CANCELLED when it is true. */
bool qpo_job_should_stop(qpo_job_ctx *ctx);

/* The worker's name (the lease owner), for audit rows. */
const char *qpo_job_worker_name(qpo_job_ctx *ctx);

/* Writes the handler's output rows inside the completing transaction. 0 ok; -1 with err set
 * rolls the completion back and the job fails (retried per its max_attempts). */
typedef int (*qpo_commit_fn)(PGconn *conn_in_tx, const qpo_job *job, void *arg, qpo_err *err);

typedef struct qpo_job_outcome {
    json_t *result;       /* owned by the runtime once set; stored in qpo.jobs.result */
    qpo_commit_fn commit; /* optional */
    void *commit_arg;     /* passed to commit, then to free_arg */
    void (*free_arg)(void *arg);
} qpo_job_outcome;

typedef enum qpo_job_status {
    QPO_JOB_OK,    /* complete with out->result and out->commit */
    QPO_JOB_RETRY, /* transient failure (err says why): back off and retry while attempts remain */
    QPO_JOB_FATAL, /* permanent failure (bad payload, missing data): 'dead' at once */
    QPO_JOB_CANCELLED, /* stopped because qpo_job_should_stop() said so */
} qpo_job_status;

typedef qpo_job_status (*qpo_handler_fn)(const qpo_job *job, qpo_job_ctx *ctx, qpo_job_outcome *out,
                                         qpo_err *err);

typedef struct qpo_handler {
    const char *kind;
    const char *job_class; /* "cpu" or "gpu": which workers may claim it */
    qpo_handler_fn run;
} qpo_handler;

/* Registers a handler for its kind (process-wide, before workers start). Components export
 * one function that registers theirs, e.g. qpo_reward_register_handlers(); the composition
 * root (cli/handlers.c) calls each. */
void qpo_handler_register(const qpo_handler *handler);
const qpo_handler *qpo_handler_find(const char *kind);

#endif
