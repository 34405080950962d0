#ifndef QPO_QUEUE_H
#define QPO_QUEUE_H

/* The queue client: what the scheduler, the CLI and the worker runtime call. Every function
 * works inside the caller's transaction when one is open (so planning many jobs is atomic). */

#include <libpq-fe.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

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
    const char *run_after; /* NULL: now; else a timestamptz literal */
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

/* Like qpo_enqueue_batch; existed[i] (may be NULL) tells whether opts[i]'s idempotency key
 * already held a job (then nothing was written for it). */
int qpo_enqueue_batch_ex(PGconn *conn, const qpo_enqueue_opts *opts, size_t n, int64_t *ids,
                         bool *existed, qpo_err *err);

/* ---- Worker side: claiming and settling leases. Every call that changes a claimed job is
 * fenced by (id, attempt, owner): it changes nothing once the lease was lost. ---- */

typedef struct qpo_lease_ref {
    int64_t id;
    int attempt; /* the fencing token */
} qpo_lease_ref;

typedef struct qpo_claimed {
    int64_t id;
    char *kind;
    int attempt;
    int max_attempts;
    int64_t run_id;
    json_t *payload; /* owned */
} qpo_claimed;

/* Claims up to max runnable jobs of job_class and kinds, highest priority first, leased to
 * owner for lease_s seconds. *out (free with qpo_claimed_free) gets *n jobs. */
int qpo_claim(PGconn *conn, const char *job_class, const char *const *kinds, size_t nkinds, int max,
              const char *owner, double lease_s, qpo_claimed **out, size_t *n, qpo_err *err);
void qpo_claimed_free(qpo_claimed *jobs, size_t n);

/* Marks jobs succeeded with results[i] (NULL: none) in one statement; completed[i] says
 * whether the fence held. Runs inside the caller's transaction when one is open. */
int qpo_complete_batch(PGconn *conn, const char *owner, const qpo_lease_ref *refs,
                       json_t *const *results, size_t n, bool *completed, qpo_err *err);

/* qpo_complete_batch and qpo_claim in one statement (one round trip, one commit): the
 * worker's steady state. */
int qpo_complete_and_claim(PGconn *conn, const char *owner, const qpo_lease_ref *refs,
                           json_t *const *results, size_t n, bool *completed, const char *job_class,
                           const char *const *kinds, size_t nkinds, int max, double lease_s,
                           qpo_claimed **out, size_t *nclaimed, qpo_err *err);

/* Inside an open transaction: locks the job if the fence holds (*held). */
int qpo_fence_lock(PGconn *conn, const char *owner, qpo_lease_ref ref, bool *held, qpo_err *err);

typedef struct qpo_backoff {
    double base_ms; /* delay before the 2nd attempt; doubles each attempt */
    double cap_ms;
} qpo_backoff;

/* A failed attempt: 'failed' (retried after backoff with jitter) or 'dead' when fatal or the
 * attempts are spent. new_state (16 bytes, may be NULL) gets the state, "" if the fence
 * failed. */
int qpo_fail(PGconn *conn, const char *owner, qpo_lease_ref ref, const char *error, bool fatal,
             qpo_backoff backoff, char *new_state, qpo_err *err);

/* Extends the leases; held[i] false for the jobs lost (cancelled, reaped). */
int qpo_heartbeat(PGconn *conn, const char *owner, const qpo_lease_ref *refs, size_t n,
                  double lease_s, bool *held, qpo_err *err);

/* Shutdown: back to queued without spending the attempt. */
int qpo_release(PGconn *conn, const char *owner, const qpo_lease_ref *refs, size_t n,
                size_t *released, qpo_err *err);

/* Jobs claimed but never started (a worker's local queue, at shutdown): back as they were
 * before the claim, attempt and max_attempts unchanged, so the claim never happened as far as
 * attempts go. Only for jobs no handler ran: the attempt number is reused by the next claim. */
int qpo_unclaim(PGconn *conn, const char *owner, const qpo_lease_ref *refs, size_t n,
                size_t *unclaimed, qpo_err *err);

/* Returns expired leases to queued (or dead when spent). Safe to run from many processes. */
int qpo_reap(PGconn *conn, size_t *reaped, qpo_err *err);

/* Whether any job of job_class and kinds is blocked, queued, running or failed. */
int qpo_has_unfinished(PGconn *conn, const char *job_class, const char *const *kinds, size_t nkinds,
                       bool *yes, qpo_err *err);

#endif
