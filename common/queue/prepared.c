#include "prepared.h"

#include <stdint.h>
#include <string.h>

#include "db.h"

static const char *const hot[] = {"queue_claim",      "queue_complete_batch",    "queue_heartbeat",
                                  "queue_fence_lock", "queue_enqueue_batch",     "queue_fail",
                                  "queue_count_done", "queue_complete_and_claim"};
enum { NHOT = sizeof(hot) / sizeof(hot[0]), NCACHE = 8 };

typedef struct prepared_set {
    const PGconn *conn;
    int backend_pid;
    uint32_t done; /* bit i: hot[i] prepared on this connection */
} prepared_set;

static _Thread_local prepared_set cache[NCACHE];
static _Thread_local unsigned next_slot;

static prepared_set *set_of(PGconn *conn) {
    int pid = PQbackendPID(conn);
    for (int i = 0; i < NCACHE; i++)
        if (cache[i].conn == conn && cache[i].backend_pid == pid)
            return &cache[i];
    prepared_set *s = &cache[next_slot++ % NCACHE];
    *s = (prepared_set){conn, pid, 0};
    return s;
}

PGresult *qpo_queue_exec(PGconn *conn, const char *name, int nparams, const char *const *params,
                         qpo_err *err) {
    int idx = -1;
    for (int i = 0; i < NHOT; i++)
        if (!strcmp(hot[i], name))
            idx = i;
    if (idx < 0)
        return qpo_db_named(conn, name, nparams, params, err);
    prepared_set *s = set_of(conn);
    if (!(s->done & (1u << idx))) {
        PGresult *res =
            qpo_db_check(conn, PQprepare(conn, name, qpo_sql(name), 0, NULL), name, err);
        if (!res)
            return NULL;
        PQclear(res);
        s->done |= 1u << idx;
    }
    return qpo_db_check(conn, PQexecPrepared(conn, name, nparams, params, NULL, NULL, 0), name,
                        err);
}
