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

static PGresult *checked(PGconn *conn, PGresult *res, const char *what, qpo_err *err) {
    ExecStatusType st = res ? PQresultStatus(res) : PGRES_FATAL_ERROR;
    if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK)
        return res;
    const char *state = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
    const char *msg = res ? PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY) : NULL;
    const char *det = res ? PQresultErrorField(res, PG_DIAG_MESSAGE_DETAIL) : NULL;
    qpo_err_set(err, QPO_EXIT_RUNTIME, "%s failed: %s", what, msg ? msg : PQerrorMessage(conn));
    qpo_err_detail(err, "SQLSTATE %s%s%s", state ? state : "none", det ? "; " : "", det ? det : "");
    PQclear(res);
    return NULL;
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
        PGresult *res = checked(conn, PQprepare(conn, name, qpo_sql(name), 0, NULL), name, err);
        if (!res)
            return NULL;
        PQclear(res);
        s->done |= 1u << idx;
    }
    return checked(conn, PQexecPrepared(conn, name, nparams, params, NULL, NULL, 0), name, err);
}
