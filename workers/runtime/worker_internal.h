#ifndef QPO_WORKER_INTERNAL_H
#define QPO_WORKER_INTERNAL_H

/* Shared by the runtime's files: the main thread (worker.c: events, claiming, heartbeats,
 * reaping, reconnects), the handler threads (slots.c) and settling outcomes (settle.c). */

#include <event2/event.h>
#include <pthread.h>
#include <stdatomic.h>

#include "queue.h"
#include "runtime.h"

/* One claimed job from claim until its outcome is settled in the database. */
typedef struct item {
    qpo_claimed c;
    qpo_job job;
    atomic_bool stop;      /* cancelled, lease lost or released: the handler should return */
    bool released;         /* given back at shutdown: its outcome is dropped */
    bool settled;          /* the handler thread already wrote the outcome (it had output rows) */
    qpo_job_status status; /* set by the handler thread */
    qpo_job_outcome out;
    qpo_err err;
    struct item *next;
} item;

struct qpo_job_ctx {
    struct worker *w;
    PGconn *conn; /* lazily connected: most jobs of the benchmark kinds never need one */
    item *it;
};

typedef struct worker {
    qpo_worker_opts o;
    const char **kinds;
    size_t nkinds;
    char app_name[128];

    struct event_base *base;
    struct event *sock_ev, *poll_ev, *beat_ev, *done_ev, *reconnect_ev, *grace_ev, *idle_ev;
    struct event *sigterm_ev, *sigint_ev;
    PGconn *conn; /* main thread's: LISTEN, claim, heartbeat, reap, batched completion */
    double reconnect_delay_s;

    /* Shared with the handler threads, under mu. todo is the local queue: claimed, leased
     * and heartbeated, not yet started (at most prefetch more than the idle threads). */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    item *todo_head, *todo_tail, *done_head;
    bool quit;
    int idle_threads; /* waiting for a job: each will start one of todo's first */
    atomic_bool shutting_down;

    /* Main thread only. */
    pthread_t *threads;
    qpo_job_ctx *ctxs;
    item **held; /* claimed and not yet settled, the local queue included */
    size_t nheld;
    int capacity;  /* jobs claimed at most: concurrency + prefetch */
    item *pending; /* finished by a handler, outcome not yet written */
    bool draining;
    bool stopped;
    size_t claimed_total, completed_total;
    size_t claim_calls, complete_calls; /* mean batch sizes, logged at exit */
} worker;

/* slots.c */
int slots_start(worker *w, qpo_err *err);
void slots_dispatch(worker *w, item *it);
/* Which jobs slots_take_unstarted takes: those told to stop (lease lost), those no idle thread
 * is about to start (the local queue proper), or all. */
enum take { TAKE_STOPPED, TAKE_WAITING, TAKE_ALL };
/* Takes jobs no thread has started off the local queue and returns them as a list; no thread
 * can start them afterwards. */
item *slots_take_unstarted(worker *w, enum take which);
/* Stops the threads; waits up to wait_s for running handlers. true when all joined. */
bool slots_stop(worker *w, double wait_s);
void item_free(item *it);

/* settle.c: writes the outcomes of w->pending; false when the connection was lost midway
 * (the rest stays pending for the next try). With claim_max > 0 the completing statement
 * also claims up to that many jobs (*claimed, for the caller to dispatch): one round trip
 * and one commit per cycle in the steady state. */
bool settle_pending(worker *w, int claim_max, qpo_claimed **claimed, size_t *nclaimed);
void held_remove(worker *w, item *it);

/* counters.c: the worker's metrics (common/metrics.h) */
void counters_claimed(const item *it);
void counters_succeeded(const item *it);
void counters_failed(const item *it, const char *new_state); /* "failed" (retried) or "dead" */
void counters_ran(const item *it, double seconds);
void counters_reaped(size_t n);
void counters_held(const worker *w);

/* worker.c */
void worker_db_failed(worker *w, const qpo_err *err, const char *what);

#endif
