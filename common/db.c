#include "db.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sql_files.h"

const char *qpo_db_conninfo(const char *flag_value) {
    if (flag_value && *flag_value)
        return flag_value;
    const char *env = getenv("DATABASE_URL");
    if (env && *env)
        return env;
    return "";
}

PGconn *qpo_db_connect(const char *conninfo, const char *application_name, qpo_err *err) {
    const char *keys[] = {"dbname", "application_name", "options", NULL};
    const char *vals[] = {conninfo, application_name ? application_name : "qpo",
                          "-c search_path=qpo,public -c client_min_messages=warning", NULL};
    /* expand_dbname=1: the first dbname may be a full conninfo string or URI. */
    PGconn *conn = PQconnectdbParams(keys, vals, 1);
    if (!conn || PQstatus(conn) != CONNECTION_OK) {
        qpo_err_set(err, QPO_EXIT_RUNTIME, "cannot connect to PostgreSQL");
        qpo_err_detail(err, "%s", conn ? PQerrorMessage(conn) : "out of memory");
        qpo_err_hint(err, "pass --db CONNINFO, or set DATABASE_URL or the PG* variables");
        PQfinish(conn);
        return NULL;
    }
    return conn;
}

/* PostgreSQL's detail for a CHECK or NOT NULL violation is the whole row, which can be a
 * megabyte of config and may hold what a user did not mean to print: the constraint, table
 * and column say which rule was broken without it. */
#define FAILING_ROW "Failing row contains"

static void constraint_detail(const PGresult *res, qpo_err *err) {
    const char *table = PQresultErrorField(res, PG_DIAG_TABLE_NAME);
    const char *column = PQresultErrorField(res, PG_DIAG_COLUMN_NAME);
    const char *constraint = PQresultErrorField(res, PG_DIAG_CONSTRAINT_NAME);
    if (constraint)
        qpo_err_detail(err, "constraint %s of table %s", constraint, table ? table : "?");
    else
        qpo_err_detail(err, "column %s of table %s", column ? column : "?", table ? table : "?");
}

PGresult *qpo_db_check(PGconn *conn, PGresult *res, const char *what, qpo_err *err) {
    ExecStatusType st = res ? PQresultStatus(res) : PGRES_FATAL_ERROR;
    if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK)
        return res;
    const char *state = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
    const char *msg = res ? PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY) : NULL;
    const char *det = res ? PQresultErrorField(res, PG_DIAG_MESSAGE_DETAIL) : NULL;
    const char *hint = res ? PQresultErrorField(res, PG_DIAG_MESSAGE_HINT) : NULL;
    qpo_err_set(err, QPO_EXIT_RUNTIME, "%s failed: %s", what, msg ? msg : PQerrorMessage(conn));
    if (det && !strncmp(det, FAILING_ROW, strlen(FAILING_ROW)))
        constraint_detail(res, err);
    else if (det)
        qpo_err_detail(err, "%s", det);
    if (hint)
        qpo_err_hint(err, "%s", hint);
    if (err && state)
        snprintf(err->sqlstate, sizeof(err->sqlstate), "%s", state);
    PQclear(res);
    return NULL;
}

int qpo_db_exec(PGconn *conn, const char *sql, qpo_err *err) {
    PGresult *res = qpo_db_check(conn, PQexec(conn, sql), "SQL", err);
    if (!res)
        return -1;
    PQclear(res);
    return 0;
}

PGresult *qpo_db_query(PGconn *conn, const char *sql, int nparams, const char *const *params,
                       qpo_err *err) {
    PGresult *res = PQexecParams(conn, sql, nparams, NULL, params, NULL, NULL, 0);
    return qpo_db_check(conn, res, "query", err);
}

PGresult *qpo_db_named(PGconn *conn, const char *name, int nparams, const char *const *params,
                       qpo_err *err) {
    PGresult *res = PQexecParams(conn, qpo_sql(name), nparams, NULL, params, NULL, NULL, 0);
    return qpo_db_check(conn, res, name, err);
}

bool qpo_db_err_sqlstate_is(const qpo_err *err, const char *sqlstate) {
    return strcmp(err->sqlstate, sqlstate) == 0;
}

bool qpo_db_conn_lost(PGconn *conn) {
    return !conn || PQstatus(conn) != CONNECTION_OK;
}

int qpo_db_begin(PGconn *conn, qpo_err *err) {
    return qpo_db_exec(conn, "BEGIN", err);
}

int qpo_db_commit(PGconn *conn, qpo_err *err) {
    return qpo_db_exec(conn, "COMMIT", err);
}

void qpo_db_rollback(PGconn *conn) {
    PQclear(PQexec(conn, "ROLLBACK"));
}

int64_t qpo_db_int64(const PGresult *res, int row, int col) {
    if (PQgetisnull(res, row, col))
        return 0;
    return strtoll(PQgetvalue(res, row, col), NULL, 10);
}

bool qpo_db_isnull(const PGresult *res, int row, int col) {
    return PQgetisnull(res, row, col) != 0;
}
