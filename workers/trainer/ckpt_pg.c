/* The checkpoint store's pg backend (ckpt_store.h, migration 0060): an epoch is a
 * qpo.checkpoint_epochs row and its files large objects, written with the pruning of older
 * epochs in one transaction that checks the job's fencing token. A worker killed mid-save
 * leaves nothing (the transaction and its large objects roll back); a worker whose lease went
 * to another attempt writes nothing. The worker's folder holds only scratch copies. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "blob_pg.h"
#include "ckpt_store.h"
#include "db.h"
#include "log.h"

static const char *const FILES[] = {QPO_POLICY_FILE, QPO_STATE_FILE};
enum { NFILES = sizeof FILES / sizeof FILES[0] };

typedef struct key_params {
    char run[24], loop[16], epoch[16];
} key_params;

static key_params key_of(const qpo_ckpt_store *s, int epoch) {
    key_params k;
    snprintf(k.run, sizeof k.run, "%" PRId64, s->run);
    snprintf(k.loop, sizeof k.loop, "%d", s->loop);
    snprintf(k.epoch, sizeof k.epoch, "%d", epoch);
    return k;
}

typedef struct streamed {
    Oid oid;
    char sha256[65];
    int64_t bytes;
} streamed;

/* Streams one file into a new large object, checking it against the sha256 it was saved with. */
static int put_file(qpo_ckpt_store *s, const char *src, const char *name, const char *want_sha,
                    streamed *out, qpo_err *err) {
    char path[PATH_MAX + 64];
    snprintf(path, sizeof path, "%s/%s", src, name);
    if (qpo_blob_put(s->conn, path, s->chunk, &out->oid, out->sha256, &out->bytes, err))
        return -1;
    if (want_sha && strcmp(out->sha256, want_sha)) {
        /* The file changed between hashing and streaming: the disk is not to be trusted. */
        qpo_err_set(err, QPO_EXIT_RUNTIME, "%s changed while it was stored", path);
        qpo_err_detail(err, "sha256 %s before, %s while streaming", want_sha, out->sha256);
        return -1;
    }
    return 0;
}

static int record_file(qpo_ckpt_store *s, const key_params *k, const char *name, const streamed *f,
                       qpo_err *err) {
    char oid[16], bytes[24];
    snprintf(oid, sizeof oid, "%u", f->oid);
    snprintf(bytes, sizeof bytes, "%" PRId64, f->bytes);
    const char *p[7] = {k->run, k->loop, k->epoch, name, oid, f->sha256, bytes};
    PGresult *res = qpo_db_named(s->conn, "artifacts_file_insert", 7, p, err);
    PQclear(res);
    return res ? 0 : -1;
}

/* The fenced epoch row: 'inserted', 'exists' or 'fenced' into *outcome. */
static int insert_epoch(qpo_ckpt_store *s, const key_params *k, const qpo_epoch_info *info,
                        char *outcome, size_t len, qpo_err *err) {
    json_t *o = qpo_epoch_info_json(info);
    char *text = json_dumps(o, JSON_COMPACT | JSON_SORT_KEYS);
    json_decref(o);
    char job[24], attempt[16];
    snprintf(job, sizeof job, "%" PRId64, s->job_id);
    snprintf(attempt, sizeof attempt, "%d", s->job_id ? s->attempt : 0);
    const char *p[7] = {k->run, k->loop, k->epoch, text, job, attempt, s->owner ? s->owner : ""};
    PGresult *res = qpo_db_named(s->conn, "artifacts_epoch_insert", 7, p, err);
    free(text);
    if (!res)
        return -1;
    snprintf(outcome, len, "%s", PQgetvalue(res, 0, 0));
    PQclear(res);
    return 0;
}

static int prune(qpo_ckpt_store *s, int before, int keep, qpo_err *err) {
    key_params k = key_of(s, before);
    char ks[16];
    snprintf(ks, sizeof ks, "%d", keep);
    const char *p[4] = {k.run, k.loop, k.epoch, ks};
    PGresult *res = qpo_db_named(s->conn, "artifacts_prune", 4, p, err);
    PQclear(res);
    return res ? 0 : -1;
}

/* The files first, then the fenced epoch row (the job row is locked only for the end of the
 * transaction, not while gigabytes stream), the file rows and the pruning: one commit makes it
 * all visible. */
static int pg_save(qpo_ckpt_store *s, const char *src, const qpo_epoch_info *info, qpo_err *err) {
    key_params k = key_of(s, info->epoch);
    streamed files[NFILES];
    char outcome[16] = "";
    if (qpo_db_begin(s->conn, err))
        return -1;
    int rc = 0;
    for (int i = 0; rc == 0 && i < NFILES; i++)
        rc = put_file(s, src, FILES[i], i == 0 ? info->sha256 : NULL, &files[i], err);
    if (rc == 0)
        rc = insert_epoch(s, &k, info, outcome, sizeof outcome, err);
    if (rc == 0 && !strcmp(outcome, "fenced")) {
        rc = qpo_err_set(err, QPO_EXIT_RUNTIME,
                         "job %" PRId64 " attempt %d is no longer this worker's: epoch %d of run "
                         "%" PRId64 " loop %d not saved",
                         s->job_id, s->attempt, info->epoch, s->run, s->loop);
        qpo_err_hint(err, "its lease expired or it was cancelled; another attempt carries on");
    }
    if (rc == 0 && !strcmp(outcome, "exists")) {
        /* Another attempt saved this epoch first; training is deterministic, so its rows hold
         * the same bytes. This transaction's large objects roll back with it. */
        qpo_db_rollback(s->conn);
        return 0;
    }
    for (int i = 0; rc == 0 && i < NFILES; i++)
        rc = record_file(s, &k, FILES[i], &files[i], err);
    if (rc == 0)
        rc = prune(s, info->epoch, info->best_epoch, err);
    if (rc == 0)
        return qpo_db_commit(s->conn, err);
    qpo_db_rollback(s->conn);
    return -1;
}

static int epoch_info_of(PGresult *res, int col, qpo_epoch_info *info, const qpo_ckpt_store *s,
                         qpo_err *err) {
    json_error_t jerr;
    json_t *o = json_loads(PQgetvalue(res, 0, col), 0, &jerr);
    int rc = qpo_epoch_info_parse(o, info);
    json_decref(o);
    if (rc)
        qpo_err_set(err, QPO_EXIT_USAGE,
                    "qpo.checkpoint_epochs of run %" PRId64 " loop %d holds an unreadable info",
                    s->run, s->loop);
    return rc;
}

static int pg_read(qpo_ckpt_store *s, int epoch, qpo_epoch_info *info, qpo_err *err) {
    key_params k = key_of(s, epoch);
    const char *p[3] = {k.run, k.loop, k.epoch};
    PGresult *res = qpo_db_named(s->conn, "artifacts_epoch_get", 3, p, err);
    if (!res)
        return -1;
    int rc = PQntuples(res) == 0 ? 1 : epoch_info_of(res, 0, info, s, err);
    PQclear(res);
    return rc;
}

static int pg_latest(qpo_ckpt_store *s, qpo_epoch_info *info, qpo_err *err) {
    key_params k = key_of(s, 0);
    const char *p[2] = {k.run, k.loop};
    PGresult *res = qpo_db_named(s->conn, "artifacts_epoch_latest", 2, p, err);
    if (!res)
        return -1;
    int rc = PQntuples(res) == 0 ? 1 : epoch_info_of(res, 1, info, s, err);
    PQclear(res);
    return rc;
}

/* One file inside the caller's transaction. */
static int get_file(PGconn *conn, const key_params *k, const char *name, const char *want_sha,
                    const char *dest, size_t chunk, qpo_err *err) {
    const char *p[4] = {k->run, k->loop, k->epoch, name};
    PGresult *res = qpo_db_named(conn, "artifacts_file_get", 4, p, err);
    if (!res)
        return -1;
    char what[160];
    snprintf(what, sizeof what, "artifact run-%s/loop-%s/epoch-%s/%s", k->run, k->loop, k->epoch,
             name);
    if (PQntuples(res) != 1) {
        PQclear(res);
        qpo_err_set(err, QPO_EXIT_USAGE, "%s is missing from qpo.artifacts", what);
        qpo_err_hint(err, "the epoch was pruned or deleted by hand; run the loop's train job "
                          "again (qpo jobs retry) to write it anew");
        return -1;
    }
    Oid oid = (Oid)strtoul(PQgetvalue(res, 0, 0), NULL, 10);
    char sha[65];
    snprintf(sha, sizeof sha, "%s", PQgetvalue(res, 0, 1));
    int64_t bytes = qpo_db_int64(res, 0, 2);
    PQclear(res);
    if (want_sha && strcmp(want_sha, sha)) {
        qpo_err_set(err, QPO_EXIT_USAGE, "%s is not the weights that were recorded", what);
        qpo_err_detail(err, "recorded: %s; qpo.artifacts: %s", want_sha, sha);
        return -1;
    }
    return qpo_blob_get(conn, oid, sha, bytes, dest, chunk, what, err);
}

int qpo_ckpt_pg_fetch_file(PGconn *conn, int64_t run, int loop, int epoch, const char *name,
                           const char *want_sha256, const char *dest, size_t chunk, qpo_err *err) {
    qpo_ckpt_store s = {.run = run, .loop = loop};
    key_params k = key_of(&s, epoch);
    if (qpo_db_begin(conn, err))
        return -1;
    int rc = get_file(conn, &k, name, want_sha256, dest, chunk, err);
    if (rc == 0)
        return qpo_db_commit(conn, err);
    qpo_db_rollback(conn);
    return -1;
}

static int pg_fetch(qpo_ckpt_store *s, const qpo_epoch_info *info, char *dir, size_t len,
                    qpo_err *err) {
    snprintf(dir, len, "%s/.tmp-fetch-%06d-%d", s->loop_dir, info->epoch, (int)getpid());
    qpo_ckpt_remove_tree(dir);
    if (mkdir(dir, 0755)) {
        qpo_err_set(err, QPO_EXIT_RUNTIME, "cannot create folder %s", dir);
        return -1;
    }
    key_params k = key_of(s, info->epoch);
    int rc = qpo_db_begin(s->conn, err);
    for (int i = 0; rc == 0 && i < NFILES; i++) {
        char dest[PATH_MAX + 64];
        snprintf(dest, sizeof dest, "%s/%s", dir, FILES[i]);
        rc = get_file(s->conn, &k, FILES[i], i == 0 ? info->sha256 : NULL, dest, s->chunk, err);
    }
    if (rc == 0 && qpo_db_commit(s->conn, err) == 0)
        return 0;
    qpo_db_rollback(s->conn);
    qpo_ckpt_remove_tree(dir);
    return -1;
}

static void pg_release(qpo_ckpt_store *s, const char *dir) {
    (void)s;
    qpo_ckpt_remove_tree(dir);
}

static int pg_clear(qpo_ckpt_store *s, qpo_err *err) {
    return prune(s, INT32_MAX, 0, err);
}

static int pg_publish(qpo_ckpt_store *s, int epoch, json_t *row, qpo_err *err) {
    (void)err;
    char path[128];
    snprintf(path, sizeof path, "pg:run-%" PRId64 "/loop-%d/epoch-%06d/" QPO_POLICY_FILE, s->run,
             s->loop, epoch);
    json_object_set_new(row, "path", json_string(path));
    snprintf(path, sizeof path, "pg:run-%" PRId64 "/loop-%d/epoch-%06d/" QPO_STATE_FILE, s->run,
             s->loop, epoch);
    json_object_set_new(row, "state_path", json_string(path));
    json_object_set_new(row, "artifact_epoch", json_integer(epoch));
    return 0;
}

const qpo_ckpt_store_ops qpo_ckpt_pg_ops = {"pg",     pg_save,    pg_read,  pg_latest,
                                            pg_fetch, pg_release, pg_clear, pg_publish};
