/* A job's output: the rows its handler added, written by the runtime in the completing,
 * fenced transaction (slots.c), so a result is written once or not at all. See handler.h. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "db.h"
#include "handler.h"

struct qpo_outcome_rows {
    char *table;
    json_t *rows;
    long expected; /* QPO_ROWS_ANY or the exact count the insert must write */
    bool skip_conflicts;
    struct qpo_outcome_rows *next;
};

static void add(qpo_job_outcome *out, const char *table, json_t *rows, long expected,
                bool skip_conflicts) {
    qpo_outcome_rows *r = calloc(1, sizeof *r);
    if (!r || !(r->table = strdup(table)))
        abort();
    r->rows = rows;
    r->expected = expected;
    r->skip_conflicts = skip_conflicts;
    qpo_outcome_rows **link = &out->rows;
    while (*link)
        link = &(*link)->next;
    *link = r;
}

void qpo_outcome_add_rows(qpo_job_outcome *out, const char *table, json_t *rows, long expected) {
    add(out, table, rows, expected, false);
}

void qpo_outcome_add_new_rows(qpo_job_outcome *out, const char *table, json_t *rows) {
    add(out, table, rows, QPO_ROWS_ANY, true);
}

static int write_rows(PGconn *conn, const qpo_outcome_rows *r, qpo_err *err) {
    char *json = json_dumps(r->rows, JSON_COMPACT);
    if (!json)
        return qpo_err_set(err, QPO_EXIT_RUNTIME, "rows for %s are not a JSON array", r->table);
    const char *params[3] = {r->table, json, r->skip_conflicts ? "true" : "false"};
    PGresult *res = qpo_db_named(conn, "outcome_insert_rows", 3, params, err);
    free(json);
    if (!res) {
        qpo_err_prefix(err, "writing rows to %s", r->table);
        return -1;
    }
    long n = atol(PQgetvalue(res, 0, 0));
    PQclear(res);
    if (r->expected >= 0 && n != r->expected) {
        qpo_err_set(err, QPO_EXIT_RUNTIME, "writing rows to %s: %ld rows written, expected %ld",
                    r->table, n, r->expected);
        return -1;
    }
    return 0;
}

int qpo_outcome_write(PGconn *conn_in_tx, const qpo_job *job, const qpo_job_outcome *out,
                      qpo_err *err) {
    for (const qpo_outcome_rows *r = out->rows; r; r = r->next)
        if (write_rows(conn_in_tx, r, err) < 0)
            return -1;
    if (out->commit && out->commit(conn_in_tx, job, out->commit_arg, err) < 0) {
        if (!qpo_err_is_set(err))
            qpo_err_set(err, QPO_EXIT_RUNTIME, "the commit hook of %s failed", job->kind);
        return -1;
    }
    return 0;
}

bool qpo_outcome_has_output(const qpo_job_outcome *out) {
    return out->rows || out->commit;
}

void qpo_outcome_free_output(qpo_job_outcome *out) {
    while (out->rows) {
        qpo_outcome_rows *r = out->rows;
        out->rows = r->next;
        free(r->table);
        json_decref(r->rows);
        free(r);
    }
    if (out->free_arg && out->commit_arg)
        out->free_arg(out->commit_arg);
    out->commit_arg = NULL;
}
