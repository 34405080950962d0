#ifndef QPO_HANDLER_H
#define QPO_HANDLER_H

/* The contract between the worker runtime and the code that runs one kind of job.
 *
 * A handler runs on a worker thread of its own with its own PostgreSQL connection. It does the
 * work (which may take hours: training, thousands of LLM calls), then describes its outcome.
 * The runtime completes the job in ONE transaction that (1) checks the fencing token (state
 * 'running', same attempt, same lease owner), (2) inserts the rows the handler added to its
 * outcome (qpo_outcome_add_rows), then runs out->commit if set, (3) stores out->result and
 * marks the job succeeded, (4) records the job event.
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

/* Runs inside the completing transaction, after the handler's rows (qpo_outcome_add_rows):
 * for output a row insert does not fit, e.g. an INSERT ... SELECT that computes the rows in the
 * database (merge). 0 ok; -1 with err set rolls the completion back and the job fails
 * (retried per its max_attempts). */
typedef int (*qpo_commit_fn)(PGconn *conn_in_tx, const qpo_job *job, void *arg, qpo_err *err);

typedef struct qpo_outcome_rows qpo_outcome_rows; /* the runtime's list of row sets */

typedef struct qpo_job_outcome {
    json_t *result;         /* owned by the runtime once set; stored in qpo.jobs.result */
    qpo_outcome_rows *rows; /* added with qpo_outcome_add_rows; owned by the runtime */
    qpo_commit_fn commit;   /* optional, after the rows */
    void *commit_arg;       /* passed to commit, then to free_arg */
    void (*free_arg)(void *arg);
} qpo_job_outcome;

enum { QPO_ROWS_ANY = -1 };

/* Adds output rows: `rows` (a JSON array of objects keyed by column name; the reference is
 * taken) are inserted into TABLE ("qpo.rewards") in the completing transaction, in the order
 * they were added. The table defines the row: keys it lacks are refused, columns the rows do
 * not name keep their defaults. expected >= 0: the insert must write exactly that many rows.
 * A row the table refuses (a constraint, a trigger) fails the attempt with the server's
 * message, detail and hint. */
void qpo_outcome_add_rows(qpo_job_outcome *out, const char *table, json_t *rows, long expected);
/* The same, keeping a row already there when one conflicts (ON CONFLICT DO NOTHING): for
 * tables whose rows are written once across jobs (D_0). */
void qpo_outcome_add_new_rows(qpo_job_outcome *out, const char *table, json_t *rows);

/* Writes an outcome's rows, then its commit hook, on a connection inside a transaction the
 * caller opened (and fenced). The runtime calls it when completing a job; tests that run a
 * handler directly call it too. 0 ok; -1 with err set. */
int qpo_outcome_write(PGconn *conn_in_tx, const qpo_job *job, const qpo_job_outcome *out,
                      qpo_err *err);
/* True when the outcome has anything to write besides its result. */
bool qpo_outcome_has_output(const qpo_job_outcome *out);
/* Frees the rows and the commit argument (not the result). */
void qpo_outcome_free_output(qpo_job_outcome *out);

/* Required payload fields for handlers: QPO_EXIT_USAGE naming the field otherwise, with a
 * hint pointing at docs/data-model.md. */
int qpo_payload_int(const json_t *payload, const char *key, int64_t *out, qpo_err *err);
const char *qpo_payload_str(const json_t *payload, const char *key, qpo_err *err);
/* The same, accepting "" (a baseline prompt may be empty: InstructEval's no_instruction). */
const char *qpo_payload_str_or_empty(const json_t *payload, const char *key, qpo_err *err);

typedef enum qpo_job_status {
    QPO_JOB_OK,    /* complete with out->result and the outcome's rows */
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
