/* Writing handler outcomes, on the main thread. Succeeded jobs without output rows complete
 * many at a time in one fenced statement (the throughput path); if that statement fails for
 * another reason than a lost connection, each job is completed alone so one bad result cannot
 * hold back the rest. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "db.h"
#include "log.h"
#include "worker_internal.h"

void held_remove(worker *w, item *it) {
    for (size_t i = 0; i < w->nheld; i++)
        if (w->held[i] == it) {
            w->held[i] = w->held[--w->nheld];
            return;
        }
}

static bool batchable(const item *it) {
    return it->status == QPO_JOB_OK && !it->settled && !it->released;
}

/* Completes the batchable items of w->pending, claiming up to claim_max more jobs in the
 * same statement. false: connection lost. */
static bool complete_batch(worker *w, int claim_max, qpo_claimed **claimed, size_t *nclaimed) {
    size_t n = 0;
    for (item *it = w->pending; it; it = it->next)
        n += batchable(it);
    if (n == 0)
        return true;
    qpo_lease_ref *refs = malloc(n * sizeof(*refs));
    json_t **results = malloc(n * sizeof(*results));
    bool *done = malloc(n * sizeof(*done));
    item **items = malloc(n * sizeof(*items));
    size_t k = 0;
    for (item *it = w->pending; it; it = it->next)
        if (batchable(it)) {
            refs[k] = (qpo_lease_ref){it->c.id, it->c.attempt};
            results[k] = it->out.result;
            items[k++] = it;
        }
    qpo_err err = {0};
    bool ok = true;
    int rc = claim_max > 0 ? qpo_complete_and_claim(w->conn, w->o.name, refs, results, n, done,
                                                    w->o.job_class, w->kinds, w->nkinds, claim_max,
                                                    w->o.lease_s, claimed, nclaimed, &err)
                           : qpo_complete_batch(w->conn, w->o.name, refs, results, n, done, &err);
    if (rc == 0) {
        for (size_t i = 0; i < n; i++) {
            items[i]->settled = true;
            if (done[i])
                counters_succeeded(items[i]);
            else
                qpo_log_job(QPO_LOG_INFO, refs[i].id, items[i]->c.run_id, refs[i].attempt,
                            "worker %s: lease lost before completion", w->o.name);
        }
        w->completed_total += n;
        w->complete_calls++;
    } else if (qpo_db_conn_lost(w->conn)) {
        worker_db_failed(w, &err, "completing jobs");
        ok = false;
    } else {
        for (size_t i = 0; i < n; i++) {
            qpo_err one = {0};
            if (qpo_complete_batch(w->conn, w->o.name, &refs[i], &results[i], 1, &done[i], &one) ==
                0) {
                items[i]->settled = true;
                w->completed_total++;
                if (done[i])
                    counters_succeeded(items[i]);
            } else if (qpo_db_conn_lost(w->conn)) {
                worker_db_failed(w, &one, "completing a job");
                ok = false;
                break;
            } else {
                items[i]->status = QPO_JOB_RETRY; /* e.g. a result PostgreSQL refuses */
                items[i]->err = one;
            }
        }
    }
    free(refs);
    free(results);
    free(done);
    free(items);
    return ok;
}

/* Writes one non-success outcome. false: connection lost. */
static bool settle_one(worker *w, item *it) {
    qpo_err err = {0};
    qpo_lease_ref ref = {it->c.id, it->c.attempt};
    int rc = 0;
    if (it->status == QPO_JOB_CANCELLED && !atomic_load(&it->stop)) {
        /* Nobody asked it to stop: a handler bug, counted as a failed attempt so it cannot
         * loop forever. */
        it->status = QPO_JOB_RETRY;
        qpo_err_set(&it->err, QPO_EXIT_RUNTIME,
                    "%s handler returned CANCELLED without being asked to stop", it->c.kind);
    }
    if (it->status == QPO_JOB_RETRY || it->status == QPO_JOB_FATAL) {
        char state[16] = "";
        qpo_backoff b = {w->o.backoff_base_ms, w->o.backoff_cap_ms};
        /* last_error keeps the whole error (message, detail, hint, SQLSTATE), so what a
         * trigger or the target check said reaches qpo jobs and qpo status. */
        char msg[sizeof(it->err.msg) + sizeof(it->err.detail) + sizeof(it->err.hint) + 64] =
            "handler failed";
        if (qpo_err_is_set(&it->err))
            qpo_err_format(&it->err, msg, sizeof(msg));
        rc = qpo_fail(w->conn, w->o.name, ref, msg, it->status == QPO_JOB_FATAL, b, state, &err);
        if (rc == 0 && state[0]) {
            counters_failed(it, state);
            qpo_log_job(QPO_LOG_INFO, it->c.id, it->c.run_id, it->c.attempt,
                        "worker %s: %s job %s: %s", w->o.name, it->c.kind, state, msg);
        }
    }
    if (rc < 0) {
        if (qpo_db_conn_lost(w->conn)) {
            worker_db_failed(w, &err, "recording a job outcome");
            return false;
        }
        qpo_log_job(QPO_LOG_ERROR, it->c.id, it->c.run_id, it->c.attempt, "worker %s: %s (%s)",
                    w->o.name, err.msg, err.detail);
    }
    return true;
}

bool settle_pending(worker *w, int claim_max, qpo_claimed **claimed, size_t *nclaimed) {
    *claimed = NULL;
    *nclaimed = 0;
    if (!w->conn)
        return false;
    if (!complete_batch(w, claim_max, claimed, nclaimed))
        return false;
    item **link = &w->pending;
    while (*link) {
        item *it = *link;
        if (!it->settled && !it->released && !settle_one(w, it))
            return false;
        *link = it->next;
        held_remove(w, it);
        item_free(it);
    }
    return true;
}
