#ifndef QPO_CKPT_STORE_H
#define QPO_CKPT_STORE_H

/* Where a train job keeps its epochs: the store of one (run, loop), with two backends.
 *
 * - dir (ckpt.c): ROOT/run-<id>/loop-<t>/epoch-<k>/ folders on the worker's disk, each made
 *   under a temporary name and renamed into place. A retry must run where the folder is.
 * - pg (ckpt_pg.c): qpo.checkpoint_epochs + qpo.artifacts, the files as large objects written
 *   in one transaction fenced by the job's attempt and lease owner. A retry runs anywhere that
 *   reaches the database; ROOT only holds scratch copies while they are read or written.
 *
 * Both make an epoch visible whole or not at all, prune older epochs but the best one, and hand
 * out the files only after their sha256 matched the recorded one. */

#include <jansson.h>
#include <libpq-fe.h>
#include <limits.h>
#include <stddef.h>
#include <stdint.h>

#include "error.h"
#include "trainer_internal.h"

#define QPO_POLICY_FILE "policy.safetensors"
#define QPO_STATE_FILE "policy.safetensors.state"

typedef struct qpo_ckpt_store qpo_ckpt_store;

typedef struct qpo_ckpt_store_ops {
    const char *name; /* "dir" or "pg" */
    /* Makes SRC_DIR (QPO_POLICY_FILE and QPO_STATE_FILE, the policy's sha256 in info) the
     * epoch info->epoch, then drops older epochs except info->best_epoch. SRC_DIR is used up. */
    int (*save)(qpo_ckpt_store *s, const char *src_dir, const qpo_epoch_info *info, qpo_err *err);
    /* One saved epoch's info: 0, 1 when there is none, -1 with err. */
    int (*read)(qpo_ckpt_store *s, int epoch, qpo_epoch_info *info, qpo_err *err);
    /* The newest saved epoch's info: 0, 1 when there is none, -1 with err. */
    int (*latest)(qpo_ckpt_store *s, qpo_epoch_info *info, qpo_err *err);
    /* A local folder holding the epoch's two files, the policy checked against info->sha256:
     * dir: the epoch folder itself; pg: a scratch copy that release() removes. */
    int (*fetch)(qpo_ckpt_store *s, const qpo_epoch_info *info, char *dir, size_t len,
                 qpo_err *err);
    void (*release)(qpo_ckpt_store *s, const char *dir);
    /* Drops every epoch not published: a start-over must not meet an older attempt's. */
    int (*clear)(qpo_ckpt_store *s, qpo_err *err);
    /* Sets what qpo.checkpoints records for the epoch: "path", "state_path" and, for pg,
     * "artifact_epoch" (dir: hard-links the weights to loop-<t>/policy.safetensors). */
    int (*publish)(qpo_ckpt_store *s, int epoch, json_t *row, qpo_err *err);
} qpo_ckpt_store_ops;

struct qpo_ckpt_store {
    const qpo_ckpt_store_ops *ops;
    char loop_dir[PATH_MAX]; /* ROOT/run-<id>/loop-<t>, absolute: epochs (dir) or scratch (pg) */
    PGconn *conn;            /* outside a transaction */
    int64_t run;
    int loop;
    /* The saving job's fencing token (pg); job_id 0: a job run outside the runtime. */
    int64_t job_id;
    int attempt;
    const char *owner;
    size_t chunk; /* bytes per large-object call (pg); 0: QPO_BLOB_CHUNK */
};

extern const qpo_ckpt_store_ops qpo_ckpt_dir_ops, qpo_ckpt_pg_ops;

/* "dir" or "pg": KIND if given, else $QPO_ARTIFACTS, else "dir". NULL with err (usage) for
 * anything else. */
const qpo_ckpt_store_ops *qpo_ckpt_store_kind(const char *kind, qpo_err *err);

/* Opens the store of (run, loop) under ROOT (made if missing) with the given backend. */
int qpo_ckpt_store_open(qpo_ckpt_store *s, const qpo_ckpt_store_ops *ops, const char *root,
                        PGconn *conn, int64_t run, int loop, qpo_err *err);

/* Saves the trainer's weights and state as epoch info->epoch; *saved gets info with the
 * weights' sha256 and size. */
int qpo_ckpt_save_epoch(qpo_ckpt_store *s, qpo_trainer *tr, const qpo_epoch_info *info,
                        qpo_epoch_info *saved, qpo_err *err);

/* The pg backend's epoch files as of qpo.artifacts, streamed into DEST_DIR/NAME and checked
 * against their recorded sha256 (and WANT_SHA256 when not NULL). Opens its own transaction.
 * Missing or mismatching: QPO_EXIT_USAGE, nothing left at the destination. */
int qpo_ckpt_pg_fetch_file(PGconn *conn, int64_t run, int loop, int epoch, const char *name,
                           const char *want_sha256, const char *dest, size_t chunk, qpo_err *err);

#endif
