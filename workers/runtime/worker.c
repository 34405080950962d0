/* The worker's main thread: a libevent loop that LISTENs on the libpq socket, claims jobs in
 * batches for its free handler threads and a local queue ahead of them (so a thread that
 * finishes never waits for a round trip), heartbeats every lease it holds, reaps expired
 * leases of every worker, settles outcomes, and reconnects with backoff when PostgreSQL goes
 * away. */
#include <event2/thread.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "db.h"
#include "log.h"
#include "worker_internal.h"

static void claim_more(worker *w);
static void drop_unstarted(worker *w, enum take which);
static void connect_main(worker *w);
static void on_poll(evutil_socket_t fd, short what, void *arg);

void qpo_worker_opts_default(qpo_worker_opts *o) {
    memset(o, 0, sizeof(*o));
    o->job_class = "cpu";
    o->concurrency = 1;
    o->prefetch = -1;
    o->lease_s = 30;
    o->poll_s = 1;
    o->grace_s = 30;
    o->backoff_base_ms = 1000;
    o->backoff_cap_ms = 600000;
    o->handle_signals = true;
}

int qpo_worker_default_prefetch(const char *job_class) {
    return job_class && !strcmp(job_class, "gpu") ? 0 : 16;
}

static struct timeval tv_of(double s) {
    struct timeval tv = {(time_t)s, (suseconds_t)((s - floor(s)) * 1e6)};
    return tv;
}

/* A break requested before the loop runs would be forgotten by libevent: keep a flag too. */
static void stop_loop(worker *w) {
    w->stopped = true;
    event_base_loopbreak(w->base);
}

static void finish_if_drained(worker *w) {
    if (w->draining && w->nheld == 0)
        stop_loop(w);
}

/* Frees jobs of the local queue that no thread started. Those whose lease was lost
 * (cancelled, reaped) have nothing to settle; the others go back to the queue first, as if
 * never claimed. */
static void drop_unstarted(worker *w, enum take which) {
    item *list = slots_take_unstarted(w, which);
    size_t n = 0;
    for (item *it = list; it; it = it->next)
        n++;
    if (n == 0)
        return;
    qpo_lease_ref *refs = malloc(n * sizeof(*refs));
    size_t k = 0;
    for (item *it = list, *next; it; it = next) {
        next = it->next;
        refs[k++] = (qpo_lease_ref){it->c.id, it->c.attempt};
        held_remove(w, it);
        item_free(it);
    }
    if (which != TAKE_STOPPED) {
        size_t back = 0;
        qpo_err err = {0};
        if (!w->conn || qpo_unclaim(w->conn, w->o.name, refs, n, &back, &err) < 0)
            qpo_warn("worker %s: could not hand back %zu unstarted job%s (%s); their leases "
                     "will expire",
                     w->o.name, n, n == 1 ? "" : "s", w->conn ? err.msg : "no connection");
        else
            qpo_info("worker %s: handed back %zu unstarted job%s from its local queue", w->o.name,
                     back, back == 1 ? "" : "s");
    }
    free(refs);
}

/* Any failed statement lands here: a lost connection is dropped and retried with backoff,
 * anything else is logged (the next tick tries again). */
void worker_db_failed(worker *w, const qpo_err *err, const char *what) {
    if (w->conn && !qpo_db_conn_lost(w->conn)) {
        qpo_error("worker %s: %s: %s (%s)", w->o.name, what, err->msg, err->detail);
        return;
    }
    if (!w->conn)
        return;
    qpo_warn("worker %s: lost the database connection while %s; reconnecting", w->o.name, what);
    if (w->sock_ev) {
        event_free(w->sock_ev);
        w->sock_ev = NULL;
    }
    PQfinish(w->conn);
    w->conn = NULL;
    w->reconnect_delay_s = 0.1;
    struct timeval tv = tv_of(w->reconnect_delay_s);
    evtimer_add(w->reconnect_ev, &tv);
}

/* Reads pending notifications; true when a job was announced. A cancellation triggers an
 * early heartbeat so the handler hears of it now. */
static bool drain_notifies(worker *w, bool *cancel) {
    bool jobs = false;
    PGnotify *n;
    while (w->conn && (n = PQnotifies(w->conn))) {
        if (!strcmp(n->relname, "qpo_cancel"))
            *cancel = true;
        else
            jobs = true;
        PQfreemem(n);
    }
    return jobs;
}

static void heartbeat(worker *w) {
    if (!w->conn || w->nheld == 0)
        return;
    qpo_lease_ref *refs = malloc(w->nheld * sizeof(*refs));
    bool *held = malloc(w->nheld * sizeof(*held));
    for (size_t i = 0; i < w->nheld; i++)
        refs[i] = (qpo_lease_ref){w->held[i]->c.id, w->held[i]->c.attempt};
    qpo_err err = {0};
    if (qpo_heartbeat(w->conn, w->o.name, refs, w->nheld, w->o.lease_s, held, &err) < 0) {
        worker_db_failed(w, &err, "heartbeating");
    } else {
        for (size_t i = 0; i < w->nheld; i++)
            if (!held[i] && !atomic_exchange(&w->held[i]->stop, true))
                qpo_log_job(QPO_LOG_INFO, refs[i].id, w->held[i]->c.run_id, refs[i].attempt,
                            "worker %s: the job no longer holds its lease (cancelled, reaped or "
                            "just completed)",
                            w->o.name);
    }
    free(refs);
    free(held);
    drop_unstarted(w, TAKE_STOPPED);
}

static void after_statements(worker *w) {
    bool cancel = false;
    bool jobs = drain_notifies(w, &cancel);
    if (cancel)
        heartbeat(w);
    if (jobs)
        claim_more(w);
}

static void exit_if_idle(worker *w) {
    if (!w->o.exit_when_idle || w->nheld || w->pending || !w->conn)
        return;
    bool unfinished = true;
    qpo_err err = {0};
    if (qpo_has_unfinished(w->conn, w->o.job_class, w->kinds, w->nkinds, &unfinished, &err) < 0)
        worker_db_failed(w, &err, "checking for work");
    else if (!unfinished) {
        qpo_info("worker %s: no work left; exiting", w->o.name);
        stop_loop(w);
    } else {
        /* Work left but none claimable: typically rows another worker's claim has locked
         * this instant. Look again soon rather than at the next poll. */
        struct timeval tv = tv_of(fmin(w->o.poll_s, 0.05));
        evtimer_add(w->idle_ev, &tv);
    }
}

static void dispatch(worker *w, qpo_claimed *jobs, size_t n) {
    for (size_t i = 0; i < n; i++) {
        item *it = calloc(1, sizeof(*it));
        it->c = jobs[i];
        it->job = (qpo_job){it->c.id,           it->c.kind,   it->c.attempt,
                            it->c.max_attempts, it->c.run_id, it->c.payload};
        w->held[w->nheld++] = it;
        counters_claimed(it);
        slots_dispatch(w, it);
    }
    free(jobs); /* the fields moved into the items */
    w->claimed_total += n;
    counters_held(w);
}

static void claim_more(worker *w) {
    for (;;) {
        if (!w->conn || w->draining)
            return;
        int free_slots = w->capacity - (int)w->nheld;
        if (free_slots <= 0) {
            /* Full: announcements can wait for a free slot, cancellations cannot. */
            bool cancel = false;
            drain_notifies(w, &cancel);
            if (cancel)
                heartbeat(w);
            return;
        }
        qpo_claimed *jobs = NULL;
        size_t n = 0;
        qpo_err err = {0};
        if (qpo_claim(w->conn, w->o.job_class, w->kinds, w->nkinds, free_slots, w->o.name,
                      w->o.lease_s, &jobs, &n, &err) < 0) {
            worker_db_failed(w, &err, "claiming");
            return;
        }
        w->claim_calls++;
        dispatch(w, jobs, n);
        bool cancel = false;
        bool announced = drain_notifies(w, &cancel);
        if (cancel)
            heartbeat(w);
        /* A notification that arrived during the claim may be for a job its snapshot missed. */
        if (announced && (int)n < free_slots)
            continue;
        if (n == 0)
            exit_if_idle(w);
        return;
    }
}

/* Writes finished outcomes and, in the same statement, claims as many jobs as that frees
 * room for (threads and local queue together). */
static void settle_and_refill(worker *w) {
    size_t npending = 0;
    for (item *it = w->pending; it; it = it->next)
        npending++;
    int free_after = w->capacity - (int)w->nheld + (int)npending;
    qpo_claimed *jobs = NULL;
    size_t n = 0;
    settle_pending(w, w->draining || !w->conn ? 0 : free_after, &jobs, &n);
    if (n)
        w->claim_calls++;
    dispatch(w, jobs, n); /* updates the held gauge, refilled or not */
}

static void on_done(evutil_socket_t fd, short what, void *arg) {
    worker *w = arg;
    pthread_mutex_lock(&w->mu);
    item *done = w->done_head;
    w->done_head = NULL;
    pthread_mutex_unlock(&w->mu);
    while (done) {
        item *next = done->next;
        done->next = w->pending;
        w->pending = done;
        done = next;
    }
    settle_and_refill(w);
    claim_more(w);
    finish_if_drained(w);
}

static void on_socket(evutil_socket_t fd, short what, void *arg) {
    worker *w = arg;
    if (!w->conn)
        return;
    if (!PQconsumeInput(w->conn) || qpo_db_conn_lost(w->conn)) {
        qpo_err err = {0};
        qpo_err_set(&err, QPO_EXIT_RUNTIME, "%s", PQerrorMessage(w->conn));
        worker_db_failed(w, &err, "listening");
        return;
    }
    after_statements(w);
}

static void on_poll(evutil_socket_t fd, short what, void *arg) {
    worker *w = arg;
    settle_and_refill(w);
    claim_more(w);
}

static void on_beat(evutil_socket_t fd, short what, void *arg) {
    worker *w = arg;
    heartbeat(w);
    size_t reaped = 0;
    qpo_err err = {0};
    if (w->conn && qpo_reap(w->conn, &reaped, &err) < 0)
        worker_db_failed(w, &err, "reaping");
    else if (reaped) {
        counters_reaped(reaped);
        qpo_info("worker %s: returned %zu job%s with expired leases", w->o.name, reaped,
                 reaped == 1 ? "" : "s");
    }
    if (w->conn)
        after_statements(w);
}

static void on_reconnect(evutil_socket_t fd, short what, void *arg) {
    worker *w = arg;
    connect_main(w);
    if (!w->conn) {
        w->reconnect_delay_s = fmin(w->reconnect_delay_s * 2, 5.0);
        struct timeval tv = tv_of(w->reconnect_delay_s);
        evtimer_add(w->reconnect_ev, &tv);
        return;
    }
    qpo_info("worker %s: reconnected", w->o.name);
    heartbeat(w);
    settle_and_refill(w);
    claim_more(w);
    finish_if_drained(w);
}

/* Grace period over: the jobs still running go back to queued, unspent, and their handlers
 * are told to stop. Finished outcomes are written first. */
static void on_grace(evutil_socket_t fd, short what, void *arg) {
    worker *w = arg;
    qpo_claimed *none = NULL;
    size_t nnone = 0, n = 0;
    settle_pending(w, 0, &none, &nnone);
    drop_unstarted(w, TAKE_ALL);
    qpo_lease_ref *refs = malloc((w->nheld + 1) * sizeof(*refs));
    for (size_t i = 0; i < w->nheld; i++) {
        item *it = w->held[i];
        it->released = true;
        atomic_store(&it->stop, true);
        refs[n++] = (qpo_lease_ref){it->c.id, it->c.attempt};
    }
    size_t released = 0;
    qpo_err err = {0};
    if (n && (!w->conn || qpo_release(w->conn, w->o.name, refs, n, &released, &err) < 0))
        qpo_warn("worker %s: could not release %zu job%s (%s); their leases will expire", w->o.name,
                 n, n == 1 ? "" : "s", w->conn ? err.msg : "no connection");
    else if (n)
        qpo_info("worker %s: released %zu running job%s back to the queue", w->o.name, released,
                 released == 1 ? "" : "s");
    free(refs);
    stop_loop(w);
}

static void on_signal(evutil_socket_t sig, short what, void *arg) {
    worker *w = arg;
    if (w->draining) {
        qpo_info("worker %s: second signal; releasing running jobs now", w->o.name);
        on_grace(-1, 0, w);
        return;
    }
    w->draining = true;
    /* The local queue goes back at once, unspent; a job an idle thread is taking right now
     * runs within the grace period like the others. */
    drop_unstarted(w, TAKE_WAITING);
    qpo_info("worker %s: %s: no new claims; waiting up to %.0f s for %zu running job%s", w->o.name,
             sig == SIGINT ? "SIGINT" : "SIGTERM", w->o.grace_s, w->nheld,
             w->nheld == 1 ? "" : "s");
    struct timeval tv = tv_of(w->o.grace_s);
    evtimer_add(w->grace_ev, &tv);
    finish_if_drained(w);
}

static void connect_main(worker *w) {
    qpo_err err = {0};
    PGconn *conn = qpo_db_connect(w->o.conninfo, w->app_name, &err);
    if (!conn)
        return;
    if (qpo_db_exec(conn, qpo_sql("worker_listen"), &err) < 0) {
        PQfinish(conn);
        return;
    }
    w->conn = conn;
    w->sock_ev = event_new(w->base, PQsocket(conn), EV_READ | EV_PERSIST, on_socket, w);
    event_add(w->sock_ev, NULL);
}

/* --kinds given: each must have a handler of this class; else every registered one. */
static int resolve_kinds(worker *w, qpo_err *err) {
    size_t cap = w->o.nkinds ? w->o.nkinds : qpo_handler_count();
    w->kinds = calloc(cap + 1, sizeof(char *));
    for (size_t i = 0; i < w->o.nkinds; i++) {
        const qpo_handler *h = qpo_handler_find(w->o.kinds[i]);
        if (!h || strcmp(h->job_class, w->o.job_class) != 0) {
            qpo_err_set(err, QPO_EXIT_USAGE, "no %s handler for kind '%s'", w->o.job_class,
                        w->o.kinds[i]);
            qpo_err_hint(err,
                         h ? "kind '%s' is a %s kind: run it with --class %s"
                           : "'qpo worker --help' lists the kinds this binary handles",
                         w->o.kinds[i], h ? h->job_class : "", h ? h->job_class : "");
            return -1;
        }
        w->kinds[w->nkinds++] = w->o.kinds[i];
    }
    for (size_t i = 0; !w->o.nkinds && i < qpo_handler_count(); i++)
        if (!strcmp(qpo_handler_at(i)->job_class, w->o.job_class))
            w->kinds[w->nkinds++] = qpo_handler_at(i)->kind;
    if (w->nkinds == 0)
        return qpo_err_set(err, QPO_EXIT_USAGE, "this binary has no %s job handlers",
                           w->o.job_class);
    return 0;
}

static int validate(const qpo_worker_opts *o, qpo_err *err) {
    if (strcmp(o->job_class, "cpu") && strcmp(o->job_class, "gpu"))
        return qpo_err_set(err, QPO_EXIT_USAGE, "--class must be cpu or gpu, not '%s'",
                           o->job_class);
    if (!o->name || !*o->name || strlen(o->name) > 100)
        return qpo_err_set(err, QPO_EXIT_USAGE, "--name must be 1 to 100 characters");
    if (o->concurrency < 1 || o->concurrency > 1024)
        return qpo_err_set(err, QPO_EXIT_USAGE, "--concurrency must be 1..1024, not %d",
                           o->concurrency);
    if (o->prefetch < -1 || o->prefetch > 10000)
        return qpo_err_set(err, QPO_EXIT_USAGE, "--prefetch must be 0..10000, not %d", o->prefetch);
    if (!(o->lease_s >= 0.5 && o->lease_s <= 86400))
        return qpo_err_set(err, QPO_EXIT_USAGE, "--lease must be 0.5..86400 seconds");
    if (!(o->poll_s > 0) || !(o->grace_s >= 0) || !(o->backoff_base_ms >= 0) ||
        !(o->backoff_cap_ms >= o->backoff_base_ms))
        return qpo_err_set(err, QPO_EXIT_USAGE, "poll, grace and backoff must be >= 0");
    return 0;
}

static int setup_events(worker *w, qpo_err *err) {
    static bool threads_ready;
    if (!threads_ready && evthread_use_pthreads() != 0)
        return qpo_err_set(err, QPO_EXIT_RUNTIME, "libevent without pthread support");
    threads_ready = true;
    w->base = event_base_new();
    if (!w->base)
        return qpo_err_set(err, QPO_EXIT_RUNTIME, "cannot create the event loop");
    w->done_ev = event_new(w->base, -1, 0, on_done, w);
    w->poll_ev = event_new(w->base, -1, EV_PERSIST, on_poll, w);
    w->beat_ev = event_new(w->base, -1, EV_PERSIST, on_beat, w);
    w->reconnect_ev = evtimer_new(w->base, on_reconnect, w);
    w->grace_ev = evtimer_new(w->base, on_grace, w);
    w->idle_ev = evtimer_new(w->base, on_poll, w);
    struct timeval poll = tv_of(w->o.poll_s), beat = tv_of(w->o.lease_s / 3);
    event_add(w->poll_ev, &poll);
    event_add(w->beat_ev, &beat);
    if (w->o.handle_signals) {
        /* Handlers talk to targets over sockets from their threads: a peer that closes while a
         * TLS library writes with write(2) must cost an error on that call, not the process. */
        signal(SIGPIPE, SIG_IGN);
        w->sigterm_ev = evsignal_new(w->base, SIGTERM, on_signal, w);
        w->sigint_ev = evsignal_new(w->base, SIGINT, on_signal, w);
        event_add(w->sigterm_ev, NULL);
        event_add(w->sigint_ev, NULL);
    }
    return 0;
}

static void teardown(worker *w) {
    atomic_store(&w->shutting_down, true);
    drop_unstarted(w, TAKE_ALL); /* else the stopping threads would still run them */
    bool joined = w->threads ? slots_stop(w, 2.0) : true;
    /* Outcomes that came back after the loop stopped: settle what can be. */
    pthread_mutex_lock(&w->mu);
    item *done = w->done_head;
    w->done_head = NULL;
    pthread_mutex_unlock(&w->mu);
    while (done) {
        item *next = done->next;
        done->next = w->pending;
        w->pending = done;
        done = next;
    }
    if (w->conn) {
        qpo_claimed *none = NULL;
        size_t n = 0;
        settle_pending(w, 0, &none, &n);
    }
    for (item *it = w->pending, *next; it; it = next) {
        next = it->next;
        held_remove(w, it);
        item_free(it);
    }
    w->pending = NULL;
    if (joined) { /* a thread still running may touch its item and context */
        for (size_t i = 0; i < w->nheld; i++)
            item_free(w->held[i]);
        free(w->threads);
        free(w->ctxs);
    }
    free(w->held);
    struct event *evs[] = {w->sock_ev,  w->poll_ev,    w->beat_ev,   w->done_ev, w->reconnect_ev,
                           w->grace_ev, w->sigterm_ev, w->sigint_ev, w->idle_ev};
    for (size_t i = 0; i < sizeof(evs) / sizeof(evs[0]); i++)
        if (evs[i] && (joined || evs[i] != w->done_ev))
            event_free(evs[i]);
    if (joined && w->base)
        event_base_free(w->base);
    PQfinish(w->conn);
    free(w->kinds);
}

int qpo_worker_run(const qpo_worker_opts *opts, qpo_err *err) {
    if (validate(opts, err) < 0)
        return -1;
    worker *w = calloc(1, sizeof(*w));
    w->o = *opts;
    /* the device in the application_name: pg_stat_activity shows where gpu jobs compute */
    if (opts->device)
        snprintf(w->app_name, sizeof(w->app_name), "qpo worker %s @ %s", opts->name, opts->device);
    else
        snprintf(w->app_name, sizeof(w->app_name), "qpo worker %s", opts->name);
    pthread_mutex_init(&w->mu, NULL);
    pthread_cond_init(&w->cv, NULL);
    int rc = resolve_kinds(w, err);
    if (rc == 0)
        rc = setup_events(w, err);
    if (rc == 0) {
        int prefetch =
            opts->prefetch >= 0 ? opts->prefetch : qpo_worker_default_prefetch(opts->job_class);
        w->capacity = opts->concurrency + prefetch;
        /* Twice: a refill claimed for settled outcomes may land before a lost connection
         * left some of them unsettled (held still). */
        w->held = calloc(2 * (size_t)w->capacity, sizeof(item *));
        connect_main(w);
        if (!w->conn) { /* the first connection must work: a typo in --db is not an outage */
            PGconn *probe = qpo_db_connect(opts->conninfo, w->app_name, err);
            if (probe)
                qpo_err_set(err, QPO_EXIT_RUNTIME, "cannot LISTEN for new jobs");
            PQfinish(probe);
            rc = -1;
        } else {
            rc = slots_start(w, err);
        }
    }
    if (rc == 0) {
        qpo_info("worker %s: class %s, %zu kind%s, concurrency %d, prefetch %d, lease %.1f s%s%s",
                 opts->name, opts->job_class, w->nkinds, w->nkinds == 1 ? "" : "s",
                 opts->concurrency, w->capacity - opts->concurrency, opts->lease_s,
                 opts->device ? ", computing on " : "", opts->device ? opts->device : "");
        claim_more(w);
        if (!w->stopped)
            event_base_dispatch(w->base);
        qpo_info("worker %s: stopped; %zu jobs claimed in %zu statements, %zu completed in %zu",
                 opts->name, w->claimed_total, w->claim_calls, w->completed_total,
                 w->complete_calls);
    }
    teardown(w);
    pthread_mutex_destroy(&w->mu);
    pthread_cond_destroy(&w->cv);
    free(w);
    return rc;
}
