#ifndef QPO_QUEUE_H
#define QPO_QUEUE_H

/* The queue client: what the scheduler, the CLI and the worker runtime call. Every function
 * works inside the caller's transaction when one is open (so planning many jobs is atomic). */

#include <libpq-fe.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "error.h"

typedef struct qpo_enqueue_opts {
    const char *kind;
    const char *payload_json;    /* NULL: '{}' */
    int priority;                /* higher runs first */
    int max_attempts;            /* 0: the kind's default */
    const char *idempotency_key; /* NULL: none; same key returns the existing job */
    int64_t run_id;              /* 0: none */
    const int64_t *parents;      /* jobs that must succeed first (job is 'blocked' until then) */
    size_t nparents;
    const char *run_after;       /* NULL: now; else a timestamptz literal */
} qpo_enqueue_opts;

/* Enqueues one job; *job_id gets its id, *existed whether the idempotency key already held a
 * job (then nothing is written). */
int qpo_enqueue(PGconn *conn, const qpo_enqueue_opts *opts, int64_t *job_id, bool *existed,
                qpo_err *err);

/* Enqueues n jobs in one round trip where possible; ids[i] for opts[i]. */
int qpo_enqueue_batch(PGconn *conn, const qpo_enqueue_opts *opts, size_t n, int64_t *ids,
                      qpo_err *err);

/* Cancels a queued, blocked, failed or running job and its descendants, recording reason. */
int qpo_job_cancel(PGconn *conn, int64_t job_id, const char *reason, qpo_err *err);

/* Gives a dead, failed or cancelled job (and its cancelled descendants) a fresh set of
 * attempts. */
int qpo_job_retry(PGconn *conn, int64_t job_id, qpo_err *err);

#endif
