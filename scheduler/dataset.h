#ifndef QPO_SCHED_DATASET_H
#define QPO_SCHED_DATASET_H

/* Task data sets: upstream files in, qpo.task_items rows out (docs/qpo-recipe.md section 5).
 * Reading (formats.c) turns each upstream row into a JSON object; mapping (items.c) turns it
 * into an item of the task; splitting (splits.c) deals the items of one upstream split into
 * train/collect/dev/test by a seeded order; import.c writes them in one transaction. */

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "error.h"

typedef struct qpo_item {
    char *upstream_split; /* "train", "validation", "test", or "all" (SVAMP's single file) */
    int upstream_index;   /* the row's position in its upstream split (0-based) */
    char *query;          /* what the policy sees */
    json_t *fields;       /* the template's fields (common/recipe/tasks.h) */
    int label;            /* gold index, or -1 for math */
    char *answer;         /* gold number (math), or NULL */
    const char *split;    /* train/collect/dev/test, set by qpo_items_assign_splits */
} qpo_item;

typedef struct qpo_item_list {
    qpo_item *items;
    size_t n, cap;
    size_t skipped; /* malformed rows skipped under --skip-bad */
} qpo_item_list;

void qpo_item_list_free(qpo_item_list *list);

/* Where a raw row came from, for file:line messages. */
typedef struct qpo_row_origin {
    const char *file;
    long line; /* 1-based line, or element number for JSON arrays (then `element` is set) */
    bool element;
} qpo_row_origin;

/* Maps one upstream row of `task` to an item appended to list. 0, or -1 with err set
 * (QPO_EXIT_USAGE) naming the missing or malformed field. */
int qpo_item_from_row(const char *task, const json_t *row, const char *upstream_split,
                      int upstream_index, qpo_item_list *list, qpo_err *err);

/* Reads every row of PATH (a file or, for aclImdb and TweetEval, a folder) as `format`
 * ("auto" to detect) and appends the items. upstream_split NULL: told by the file's name.
 * skip_bad: malformed rows are counted in list->skipped instead of failing. */
int qpo_read_dataset(const char *task, const char *path, const char *format,
                     const char *upstream_split, bool skip_bad, qpo_item_list *list, qpo_err *err);

/* The formats qpo_read_dataset knows, for --help and messages. */
extern const char *const qpo_dataset_formats;

/* Deals each upstream split's items into train/collect/dev/test by the recipe's proportions
 * over a seeded order (md5 of task, upstream split and index). -1 with err set when the task
 * has no rule for an upstream split (e.g. CosmosQA's unlabelled test). */
int qpo_items_assign_splits(const char *task, qpo_item_list *list, qpo_err *err);

/* The item_id of an upstream row: stable across imports, distinct per upstream split. */
int qpo_item_id(const char *upstream_split, int upstream_index);

#endif
