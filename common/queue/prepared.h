#ifndef QPO_QUEUE_PREPARED_H
#define QPO_QUEUE_PREPARED_H

/* The queue's hot statements (claim, complete, heartbeat, enqueue) run as prepared statements:
 * at batch sizes of tens of jobs, parsing and planning each call costs as much as running it.
 * Each connection prepares a statement on its first use (tracked per thread, by connection
 * and backend pid, so a reconnect prepares again). Same contract as qpo_db_named. */

#include <libpq-fe.h>

#include "error.h"

PGresult *qpo_queue_exec(PGconn *conn, const char *name, int nparams, const char *const *params,
                         qpo_err *err);

#endif
