#ifndef QPO_SCHED_IMPORT_H
#define QPO_SCHED_IMPORT_H

/* Writing imported data: task items and released D_0 files, each import one transaction,
 * re-imports of the same file a no-op. */

#include <jansson.h>
#include <libpq-fe.h>
#include <stdbool.h>
#include <stddef.h>

#include "dataset.h"
#include "error.h"

typedef struct qpo_import_counts {
    size_t read;      /* rows mapped */
    size_t inserted;  /* new rows */
    size_t unchanged; /* rows already present with the same content */
    size_t skipped;   /* malformed rows skipped (--skip-bad) */
    size_t replaced;  /* --replace: rows deleted before the file's were written */
} qpo_import_counts;

/* Writes the items (splits assigned) of `task`. Refuses, writing nothing, when a row already
 * present differs from the file's (another version of the data set). With replace, the task's
 * items of the files' upstream splits are replaced instead, provided no run (of any state)
 * uses the task; refused otherwise. */
int qpo_import_items(PGconn *conn, const char *task, const qpo_item_list *list, bool replace,
                     qpo_import_counts *counts, qpo_err *err);

typedef struct qpo_d0_import {
    const char *file;
    const char *task;
    const char *setting;   /* zero_shot | few_shot */
    const char *target;    /* the target name runs use */
    const char *model_key; /* the record's per-model object ("llama7b"); NULL: the only one */
    bool skip_bad;
    double avg_acc_weight; /* of the raw reward; the authors' QPO_REWARD_AVG_ACC_WEIGHT */
} qpo_d0_import;

/* Loads the QPO authors' released D_0 (docs/qpo-recipe.md section 6): raw rewards per
 * section 4 from each record's fields, with opts->avg_acc_weight. Refused when D_0 of
 * (task, setting, target) already holds records of another weight. */
int qpo_import_d0(PGconn *conn, const qpo_d0_import *opts, qpo_import_counts *counts, qpo_err *err);

/* The importer's pieces without a database, for commands that read D_0 themselves: the file's
 * JSON array (a usage error naming the file otherwise), and one record as the row the import
 * writes ({"query", "prompt" without the final <|endoftext|>, "raw_reward", "acc", ...}) or
 * NULL with a usage error naming the field (callers add the file and record number). */
json_t *qpo_d0_load(const char *file, qpo_err *err);
json_t *qpo_d0_record(const qpo_d0_import *opts, const json_t *rec, qpo_err *err);

#endif
