/* Task items into qpo.task_items: staged in a temporary table, checked against what is
 * already there, inserted in the same transaction. */
#include "import.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "db.h"

#define STAGE_BATCH 2000

static json_t *item_row(const char *task, const qpo_item *it) {
    json_t *row = json_pack("{s:s, s:i, s:s, s:s, s:i, s:s, s:O}", "task", task, "item_id",
                            qpo_item_id(it->upstream_split, it->upstream_index), "split", it->split,
                            "upstream_split", it->upstream_split, "upstream_index",
                            it->upstream_index, "query", it->query, "fields", it->fields);
    if (!row)
        return NULL;
    json_object_set_new(row, "label", it->label >= 0 ? json_integer(it->label) : json_null());
    json_object_set_new(row, "answer", it->answer ? json_string(it->answer) : json_null());
    return row;
}

static int stage_batch(PGconn *conn, json_t *rows, qpo_err *err) {
    char *text = json_dumps(rows, JSON_COMPACT);
    if (!text)
        return qpo_err_set(err, QPO_EXIT_RUNTIME, "cannot encode rows (invalid UTF-8?)");
    const char *params[] = {text};
    PGresult *res = qpo_db_named(conn, "import_stage_rows", 1, params, err);
    free(text);
    PQclear(res);
    return res ? 0 : -1;
}

static int stage_items(PGconn *conn, const char *task, const qpo_item_list *list, qpo_err *err) {
    PGresult *res = qpo_db_named(conn, "import_stage_create", 0, NULL, err);
    if (!res)
        return -1;
    PQclear(res);
    json_t *rows = json_array();
    int rc = 0;
    for (size_t i = 0; i < list->n && rc == 0; i++) {
        json_t *row = item_row(task, &list->items[i]);
        if (!row) {
            rc = qpo_err_set(err, QPO_EXIT_USAGE, "row %d of %s: not valid UTF-8",
                             list->items[i].upstream_index, list->items[i].upstream_split);
            break;
        }
        json_array_append_new(rows, row);
        if (json_array_size(rows) == STAGE_BATCH || i + 1 == list->n) {
            rc = stage_batch(conn, rows, err);
            json_array_clear(rows);
        }
    }
    json_decref(rows);
    return rc;
}

typedef struct task_runs {
    int64_t n, first_run, first_experiment;
} task_runs;

/* The runs planned on the task, with qpo.runs locked against new ones until commit: items a
 * run read must never change under it, and a run planned mid-replace would read half. */
static int runs_of_task(PGconn *conn, const char *task, task_runs *tr, qpo_err *err) {
    const char *params[] = {task};
    PGresult *lock = qpo_db_named(conn, "import_lock_runs", 0, NULL, err);
    PQclear(lock);
    PGresult *res = lock ? qpo_db_named(conn, "import_task_runs", 1, params, err) : NULL;
    if (!res)
        return -1;
    *tr = (task_runs){qpo_db_int64(res, 0, 0), qpo_db_int64(res, 0, 1), qpo_db_int64(res, 0, 2)};
    PQclear(res);
    return 0;
}

static void hint_runs(qpo_err *err, const char *task, const task_runs *tr) {
    if (tr->n > 0)
        qpo_err_hint(err,
                     "%lld run(s) use the items of %s (first: run %lld of experiment %lld), so "
                     "qpo never overwrites them; import the other version under another task",
                     (long long)tr->n, task, (long long)tr->first_run,
                     (long long)tr->first_experiment);
    else
        qpo_err_hint(err,
                     "no run uses the items of %s yet: pass --replace to replace its items of "
                     "the upstream splits in these files",
                     task);
}

static int refuse_changed_rows(PGconn *conn, const char *task, qpo_err *err) {
    PGresult *res = qpo_db_named(conn, "import_changed_rows", 0, NULL, err);
    if (!res)
        return -1;
    int64_t changed = qpo_db_int64(res, 0, 0);
    task_runs tr = {0};
    if (changed > 0 && runs_of_task(conn, task, &tr, err) == 0) {
        qpo_err_set(err, QPO_EXIT_USAGE, "%lld rows of %s differ from the ones already imported",
                    (long long)changed, task);
        qpo_err_detail(err, "first: upstream split %s, index %s", PQgetvalue(res, 0, 1),
                       PQgetvalue(res, 0, 2));
        hint_runs(err, task, &tr);
    }
    PQclear(res);
    return changed > 0 ? -1 : 0;
}

/* --replace: allowed only while no run uses the task (any state). */
static int replace_items(PGconn *conn, const char *task, qpo_import_counts *counts, qpo_err *err) {
    task_runs tr;
    if (runs_of_task(conn, task, &tr, err) < 0)
        return -1;
    if (tr.n > 0) {
        qpo_err_set(err, QPO_EXIT_USAGE, "--replace refused: runs use the items of %s", task);
        hint_runs(err, task, &tr);
        return -1;
    }
    const char *params[] = {task};
    PGresult *res = qpo_db_named(conn, "import_replace_items", 1, params, err);
    if (!res)
        return -1;
    counts->replaced = (size_t)strtoull(PQcmdTuples(res), NULL, 10);
    PQclear(res);
    return 0;
}

int qpo_import_items(PGconn *conn, const char *task, const qpo_item_list *list, bool replace,
                     qpo_import_counts *counts, qpo_err *err) {
    memset(counts, 0, sizeof(*counts));
    counts->read = list->n;
    counts->skipped = list->skipped;
    if (qpo_db_begin(conn, err) < 0)
        return -1;
    PGresult *res = NULL;
    if (stage_items(conn, task, list, err) < 0 ||
        (replace ? replace_items(conn, task, counts, err) : refuse_changed_rows(conn, task, err)) <
            0 ||
        !(res = qpo_db_named(conn, "import_insert_items", 0, NULL, err)) ||
        qpo_db_commit(conn, err) < 0) {
        PQclear(res);
        qpo_db_rollback(conn);
        return -1;
    }
    counts->inserted = (size_t)strtoull(PQcmdTuples(res), NULL, 10);
    counts->unchanged = replace ? 0 : list->n - counts->inserted;
    PQclear(res);
    return 0;
}
