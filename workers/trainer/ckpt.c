/* The checkpoint store's shared parts and its dir backend (ckpt_store.h): one complete folder
 * per saved epoch, made under a temporary name and renamed into place (a rename of a folder is
 * atomic), so a worker killed at any instant leaves either the previous epoch or the new one,
 * never half of a pair of files. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "db.h"
#include "log.h"
#include "ckpt_store.h"
#include "trainer_internal.h"

const char *qpo_trainer_checkpoint_root(void) {
    const char *env = getenv("QPO_CHECKPOINT_DIR");
    return env && *env ? env : "qpo-checkpoints";
}

static int io_err(qpo_err *err, const char *what, const char *path) {
    qpo_err_set(err, QPO_EXIT_RUNTIME, "cannot %s %s: %s", what, path, strerror(errno));
    return -1;
}

static int mkdir_p(char *path, qpo_err *err) {
    for (char *p = path + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        int rc = mkdir(path, 0755);
        *p = '/';
        if (rc && errno != EEXIST)
            return io_err(err, "create folder", path);
    }
    if (mkdir(path, 0755) && errno != EEXIST)
        return io_err(err, "create folder", path);
    return 0;
}

int qpo_ckpt_loop_dir(const char *root, int64_t run, int loop, char *out, size_t outlen,
                      qpo_err *err) {
    char abs[PATH_MAX];
    if (root[0] == '/')
        snprintf(abs, sizeof abs, "%s", root);
    else if (getcwd(abs, sizeof abs))
        snprintf(abs + strlen(abs), sizeof abs - strlen(abs), "/%s", root);
    else
        return io_err(err, "read the working directory for", root);
    if ((size_t)snprintf(out, outlen, "%s/run-%" PRId64 "/loop-%d", abs, run, loop) >= outlen) {
        qpo_err_set(err, QPO_EXIT_USAGE, "checkpoint path too long under %s", root);
        return -1;
    }
    if (mkdir_p(out, err)) {
        qpo_err_hint(err, "set QPO_CHECKPOINT_DIR to a writable folder");
        return -1;
    }
    return 0;
}

void qpo_ckpt_epoch_path(const char *loop_dir, int epoch, const char *file, char *out,
                         size_t outlen) {
    snprintf(out, outlen, "%s/epoch-%06d%s%s", loop_dir, epoch, file ? "/" : "", file ? file : "");
}

static int fsync_path(const char *path, int flags) {
    int fd = open(path, flags);
    if (fd < 0)
        return -1;
    int rc = fsync(fd);
    close(fd);
    return rc;
}

int qpo_sha256_file(const char *path, char hex[65], int64_t *bytes, qpo_err *err) {
    FILE *f = fopen(path, "rb");
    if (!f)
        return io_err(err, "open", path);
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    EVP_DigestInit_ex(ctx, EVP_sha256(), NULL);
    unsigned char buf[1 << 16];
    size_t n;
    int64_t total = 0;
    while ((n = fread(buf, 1, sizeof buf, f)) > 0) {
        EVP_DigestUpdate(ctx, buf, n);
        total += (int64_t)n;
    }
    int bad = ferror(f);
    fclose(f);
    unsigned char md[32];
    unsigned int mdlen = 0;
    EVP_DigestFinal_ex(ctx, md, &mdlen);
    EVP_MD_CTX_free(ctx);
    if (bad)
        return io_err(err, "read", path);
    for (unsigned i = 0; i < 32; i++)
        snprintf(hex + 2 * i, 3, "%02x", md[i]);
    *bytes = total;
    return 0;
}

json_t *qpo_epoch_info_json(const qpo_epoch_info *info) {
    return json_pack("{si si sf sf sf ss sI sf si sf}", "epoch", info->epoch, "records",
                     info->records, "loss", info->loss, "ce", info->ce, "mse", info->mse, "sha256",
                     info->sha256, "bytes", (json_int_t)info->bytes, "heldout_ce", info->heldout_ce,
                     "best_epoch", info->best_epoch, "best_heldout_ce", info->best_heldout_ce);
}

int qpo_epoch_info_parse(const json_t *o, qpo_epoch_info *info) {
    const char *sha = NULL;
    json_int_t bytes = 0;
    /* Folders written before held-out selection have no held-out fields. */
    info->heldout_ce = -1;
    info->best_epoch = 0;
    info->best_heldout_ce = -1;
    int rc =
        !o ||
        json_unpack((json_t *)o, "{si si sF sF sF ss sI s?F s?i s?F}", "epoch", &info->epoch,
                    "records", &info->records, "loss", &info->loss, "ce", &info->ce, "mse",
                    &info->mse, "sha256", &sha, "bytes", &bytes, "heldout_ce", &info->heldout_ce,
                    "best_epoch", &info->best_epoch, "best_heldout_ce", &info->best_heldout_ce) ||
        strlen(sha) != 64;
    if (rc)
        return -1;
    snprintf(info->sha256, sizeof info->sha256, "%s", sha);
    info->bytes = bytes;
    return 0;
}

static int write_info(const char *dir, const qpo_epoch_info *info, qpo_err *err) {
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/epoch.json", dir);
    json_t *o = qpo_epoch_info_json(info);
    int rc = json_dump_file(o, path, JSON_COMPACT | JSON_SORT_KEYS);
    json_decref(o);
    if (rc || fsync_path(path, O_RDONLY))
        return io_err(err, "write", path);
    return 0;
}

static int read_info(const char *dir, qpo_epoch_info *info) {
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/epoch.json", dir);
    json_error_t jerr;
    json_t *o = json_load_file(path, 0, &jerr);
    int rc = qpo_epoch_info_parse(o, info);
    json_decref(o);
    return rc;
}

void qpo_ckpt_remove_tree(const char *dir) {
    DIR *d = opendir(dir);
    if (!d)
        return;
    struct dirent *e;
    char path[PATH_MAX];
    while ((e = readdir(d))) {
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) {
            snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
            unlink(path);
        }
    }
    closedir(d);
    rmdir(dir);
}

/* Older epochs are dropped once a newer one is complete (a gpt2 epoch folder is 1.5 GB),
 * except the best one so far, which the loop may publish. */
static void prune_before(const char *loop_dir, int epoch, int keep) {
    DIR *d = opendir(loop_dir);
    if (!d)
        return;
    struct dirent *e;
    int k;
    char path[PATH_MAX];
    while ((e = readdir(d))) {
        if (sscanf(e->d_name, "epoch-%d", &k) == 1 && k < epoch && k != keep) {
            snprintf(path, sizeof path, "%s/%s", loop_dir, e->d_name);
            qpo_ckpt_remove_tree(path);
        }
    }
    closedir(d);
}

void qpo_ckpt_clean_tmp(const char *loop_dir) {
    DIR *d = opendir(loop_dir);
    if (!d)
        return;
    struct dirent *e;
    char path[PATH_MAX];
    while ((e = readdir(d))) {
        if (!strncmp(e->d_name, ".tmp-", 5)) {
            snprintf(path, sizeof path, "%s/%s", loop_dir, e->d_name);
            if (unlink(path))
                qpo_ckpt_remove_tree(path);
        }
    }
    closedir(d);
}

int qpo_ckpt_epoch_read(const char *loop_dir, int epoch, qpo_epoch_info *info) {
    char dir[PATH_MAX];
    qpo_ckpt_epoch_path(loop_dir, epoch, NULL, dir, sizeof dir);
    return read_info(dir, info) == 0 && info->epoch == epoch ? 0 : -1;
}

static int dir_save(qpo_ckpt_store *s, const char *src, const qpo_epoch_info *info, qpo_err *err) {
    char final[PATH_MAX];
    if (write_info(src, info, err))
        return -1;
    fsync_path(src, O_RDONLY | O_DIRECTORY);
    qpo_ckpt_epoch_path(s->loop_dir, info->epoch, NULL, final, sizeof final);
    /* ENOTEMPTY/EEXIST: another attempt saved this epoch first; training is deterministic, so
     * its folder holds the same bytes. */
    if (rename(src, final) && errno != ENOTEMPTY && errno != EEXIST)
        return io_err(err, "rename into place", src);
    fsync_path(s->loop_dir, O_RDONLY | O_DIRECTORY);
    prune_before(s->loop_dir, info->epoch, info->best_epoch);
    return 0;
}

static int dir_read(qpo_ckpt_store *s, int epoch, qpo_epoch_info *info, qpo_err *err) {
    (void)err;
    return qpo_ckpt_epoch_read(s->loop_dir, epoch, info) ? 1 : 0;
}

static int dir_latest(qpo_ckpt_store *s, qpo_epoch_info *info, qpo_err *err) {
    DIR *d = opendir(s->loop_dir);
    if (!d)
        return io_err(err, "open folder", s->loop_dir);
    struct dirent *e;
    int best = 0, k;
    char dir[PATH_MAX];
    while ((e = readdir(d))) {
        if (sscanf(e->d_name, "epoch-%d", &k) == 1 && k > best) {
            qpo_epoch_info tmp;
            snprintf(dir, sizeof dir, "%s/%s", s->loop_dir, e->d_name);
            if (read_info(dir, &tmp) == 0 && tmp.epoch == k) {
                best = k;
                *info = tmp;
            } else {
                qpo_warn("ignoring checkpoint folder %s: no readable epoch.json", dir);
            }
        }
    }
    closedir(d);
    return best > 0 ? 0 : 1;
}

static int dir_fetch(qpo_ckpt_store *s, const qpo_epoch_info *info, char *dir, size_t len,
                     qpo_err *err) {
    char path[PATH_MAX + 32], sha[65];
    int64_t bytes;
    qpo_ckpt_epoch_path(s->loop_dir, info->epoch, NULL, dir, len);
    snprintf(path, sizeof path, "%s/" QPO_POLICY_FILE, dir);
    if (qpo_sha256_file(path, sha, &bytes, err))
        return -1;
    if (strcmp(sha, info->sha256)) {
        qpo_err_set(err, QPO_EXIT_USAGE, "%s does not match epoch.json's sha256", path);
        qpo_err_detail(err, "epoch.json: %s; file: %s (%" PRId64 " bytes)", info->sha256, sha,
                       bytes);
        return -1;
    }
    return 0;
}

static void dir_release(qpo_ckpt_store *s, const char *dir) {
    (void)s, (void)dir; /* the epoch folder stays */
}

static int dir_clear(qpo_ckpt_store *s, qpo_err *err) {
    (void)err;
    prune_before(s->loop_dir, INT_MAX, 0);
    return 0;
}

static int dir_publish(qpo_ckpt_store *s, int epoch, json_t *row, qpo_err *err) {
    char src[PATH_MAX], tmp[PATH_MAX], final[PATH_MAX], state[PATH_MAX];
    qpo_ckpt_epoch_path(s->loop_dir, epoch, QPO_POLICY_FILE, src, sizeof src);
    qpo_ckpt_epoch_path(s->loop_dir, epoch, QPO_STATE_FILE, state, sizeof state);
    snprintf(tmp, sizeof tmp, "%s/.tmp-final-%d", s->loop_dir, (int)getpid());
    snprintf(final, sizeof final, "%s/" QPO_POLICY_FILE, s->loop_dir);
    unlink(tmp);
    /* A hard link: the final weights cost no copy and outlive the epoch folder's pruning. */
    if (link(src, tmp))
        return io_err(err, "link", src);
    if (rename(tmp, final)) {
        unlink(tmp);
        return io_err(err, "rename into place", final);
    }
    fsync_path(s->loop_dir, O_RDONLY | O_DIRECTORY);
    json_object_set_new(row, "path", json_string(final));
    json_object_set_new(row, "state_path", json_string(state));
    return 0;
}

const qpo_ckpt_store_ops qpo_ckpt_dir_ops = {"dir",     dir_save,    dir_read,  dir_latest,
                                             dir_fetch, dir_release, dir_clear, dir_publish};

const qpo_ckpt_store_ops *qpo_ckpt_store_kind(const char *kind, qpo_err *err) {
    if (!kind || !*kind)
        kind = getenv("QPO_ARTIFACTS");
    if (!kind || !*kind || !strcmp(kind, "dir"))
        return &qpo_ckpt_dir_ops;
    if (!strcmp(kind, "pg"))
        return &qpo_ckpt_pg_ops;
    qpo_err_set(err, QPO_EXIT_USAGE, "unknown artifact store \"%s\"", kind);
    qpo_err_hint(err, "--artifacts (or QPO_ARTIFACTS) is dir (a folder on the worker) or pg "
                      "(PostgreSQL large objects)");
    return NULL;
}

int qpo_ckpt_store_open(qpo_ckpt_store *s, const qpo_ckpt_store_ops *ops, const char *root,
                        PGconn *conn, int64_t run, int loop, qpo_err *err) {
    memset(s, 0, sizeof *s);
    s->ops = ops;
    s->conn = conn;
    s->run = run;
    s->loop = loop;
    if (qpo_ckpt_loop_dir(root, run, loop, s->loop_dir, sizeof s->loop_dir, err))
        return -1;
    qpo_ckpt_clean_tmp(s->loop_dir);
    return 0;
}

int qpo_ckpt_save_epoch(qpo_ckpt_store *s, qpo_trainer *tr, const qpo_epoch_info *info,
                        qpo_epoch_info *saved, qpo_err *err) {
    char tmp[PATH_MAX], file[PATH_MAX + 32], msg[512];
    snprintf(tmp, sizeof tmp, "%s/.tmp-epoch-%06d-%d", s->loop_dir, info->epoch, (int)getpid());
    qpo_ckpt_remove_tree(tmp);
    if (mkdir(tmp, 0755))
        return io_err(err, "create folder", tmp);
    snprintf(file, sizeof file, "%s/" QPO_POLICY_FILE, tmp);
    *saved = *info;
    int rc = -1;
    if (qpo_trainer_save(tr, file, msg, sizeof msg)) {
        qpo_err_set(err, QPO_EXIT_RUNTIME, "cannot save the epoch %d checkpoint", info->epoch);
        qpo_err_detail(err, "%s", msg);
    } else if (qpo_sha256_file(file, saved->sha256, &saved->bytes, err) == 0) {
        rc = s->ops->save(s, tmp, saved, err);
    }
    qpo_ckpt_remove_tree(tmp);
    if (rc != 0 && !err->hint[0])
        qpo_err_hint(err,
                     "free space in %s (or set QPO_CHECKPOINT_DIR to a writable folder with "
                     "room); the epochs saved before are intact and the retry resumes from them",
                     s->loop_dir);
    return rc;
}
