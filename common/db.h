#ifndef QPO_DB_H
#define QPO_DB_H

#include <libpq-fe.h>
#include <stdbool.h>
#include <stdint.h>

#include "error.h"

/* The connection string: --db CONNINFO if given, else $DATABASE_URL, else "" so libpq reads
 * its PG* variables. */
const char *qpo_db_conninfo(const char *flag_value);

/* Connects and sets application_name (e.g. "qpo worker gpu-1") and search_path. */
PGconn *qpo_db_connect(const char *conninfo, const char *application_name, qpo_err *err);

/* Runs SQL without parameters (may hold several statements). 0 or -1 with err set. */
int qpo_db_exec(PGconn *conn, const char *sql, qpo_err *err);

/* Runs one parameterised statement (text parameters, NULL for SQL NULL). Returns a result
 * with status COMMAND_OK or TUPLES_OK, or NULL with err set (see qpo_db_check). */
PGresult *qpo_db_query(PGconn *conn, const char *sql, int nparams, const char *const *params,
                       qpo_err *err);

/* Same, for a statement from sql/queries/ by name (see qpo_sql). */
PGresult *qpo_db_named(PGconn *conn, const char *name, int nparams, const char *const *params,
                       qpo_err *err);

/* The text of a named statement: a block starting with "-- name: NAME" in any file of
 * sql/queries/. Aborts on an unknown name: that is a programming error, not a user error. */
const char *qpo_sql(const char *name);

/* The one check of a result: res itself when it is COMMAND_OK or TUPLES_OK; otherwise NULL
 * (res cleared) with err holding what the server said: "WHAT failed: MESSAGE", its detail,
 * hint and SQLSTATE as separate fields. */
PGresult *qpo_db_check(PGconn *conn, PGresult *res, const char *what, qpo_err *err);

/* True when err came from a statement the server failed with this SQLSTATE, e.g. "40001". */
bool qpo_db_err_sqlstate_is(const qpo_err *err, const char *sqlstate);

/* True when the connection is gone (server restart, network): callers reconnect. */
bool qpo_db_conn_lost(PGconn *conn);

int qpo_db_begin(PGconn *conn, qpo_err *err);
int qpo_db_commit(PGconn *conn, qpo_err *err);
void qpo_db_rollback(PGconn *conn); /* best effort: a failed rollback means a lost connection */

/* Helpers for reading results: NULL-safe conversions of a cell. */
int64_t qpo_db_int64(const PGresult *res, int row, int col);
bool qpo_db_isnull(const PGresult *res, int row, int col);

#endif
