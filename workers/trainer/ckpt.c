/* Checkpoint folders: one complete folder per saved epoch, made under a temporary name and
 * renamed into place (a rename of a folder is atomic), so a worker killed at any instant
 * leaves either the previous epoch or the new one, never half of a pair of files. */
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
#include "trainer_internal.h"

#define POLICY_FILE "policy.safetensors"

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

static int write_info(const char *dir, const qpo_epoch_info *info, qpo_err *err) {
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/epoch.json", dir);
    json_t *o =
        json_pack("{si si sf sf sf ss sI sf si sf}", "epoch", info->epoch, "records", info->records,
                  "loss", info->loss, "ce", info->ce, "mse", info->mse, "sha256", info->sha256,
                  "bytes", (json_int_t)info->bytes, "heldout_ce", info->heldout_ce, "best_epoch",
                  info->best_epoch, "best_heldout_ce", info->best_heldout_ce);
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
    const char *sha = NULL;
    json_int_t bytes = 0;
    /* Folders written before held-out selection have no held-out fields. */
    info->heldout_ce = -1;
    info->best_epoch = 0;
    info->best_heldout_ce = -1;
    int rc =
        !o ||
        json_unpack(o, "{si si sF sF sF ss sI s?F s?i s?F}", "epoch", &info->epoch, "records",
                    &info->records, "loss", &info->loss, "ce", &info->ce, "mse", &info->mse,
                    "sha256", &sha, "bytes", &bytes, "heldout_ce", &info->heldout_ce, "best_epoch",
                    &info->best_epoch, "best_heldout_ce", &info->best_heldout_ce) ||
        strlen(sha) != 64;
    if (!rc) {
        snprintf(info->sha256, sizeof info->sha256, "%s", sha);
        info->bytes = bytes;
    }
    json_decref(o);
    return rc ? -1 : 0;
}

static void remove_tree(const char *dir) {
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
            remove_tree(path);
        }
    }
    closedir(d);
}

void qpo_ckpt_clear_epochs(const char *loop_dir) {
    prune_before(loop_dir, INT_MAX, 0);
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
                remove_tree(path);
        }
    }
    closedir(d);
}

int qpo_ckpt_save_epoch(qpo_trainer *tr, const char *loop_dir, const qpo_epoch_info *info,
                        qpo_epoch_info *saved, qpo_err *err) {
    char tmp[PATH_MAX], file[PATH_MAX + 32], final[PATH_MAX], msg[512];
    snprintf(tmp, sizeof tmp, "%s/.tmp-epoch-%06d-%d", loop_dir, info->epoch, (int)getpid());
    remove_tree(tmp);
    if (mkdir(tmp, 0755))
        return io_err(err, "create folder", tmp);
    snprintf(file, sizeof file, "%s/" POLICY_FILE, tmp);
    *saved = *info;
    int rc = -1;
    if (qpo_trainer_save(tr, file, msg, sizeof msg)) {
        qpo_err_set(err, QPO_EXIT_RUNTIME, "cannot save the epoch %d checkpoint", info->epoch);
        qpo_err_detail(err, "%s", msg);
    } else if (qpo_sha256_file(file, saved->sha256, &saved->bytes, err) == 0 &&
               write_info(tmp, saved, err) == 0) {
        fsync_path(tmp, O_RDONLY | O_DIRECTORY);
        qpo_ckpt_epoch_path(loop_dir, info->epoch, NULL, final, sizeof final);
        if (rename(tmp, final) == 0) {
            rc = 0;
        } else if (errno == ENOTEMPTY || errno == EEXIST) {
            /* Another attempt saved this epoch first; training is deterministic, so its
             * folder holds the same bytes. */
            rc = 0;
        } else {
            io_err(err, "rename into place", tmp);
        }
        fsync_path(loop_dir, O_RDONLY | O_DIRECTORY);
    }
    remove_tree(tmp);
    if (rc == 0)
        prune_before(loop_dir, info->epoch, info->best_epoch);
    return rc;
}

int qpo_ckpt_epoch_read(const char *loop_dir, int epoch, qpo_epoch_info *info) {
    char dir[PATH_MAX];
    qpo_ckpt_epoch_path(loop_dir, epoch, NULL, dir, sizeof dir);
    return read_info(dir, info) == 0 && info->epoch == epoch ? 0 : -1;
}

int qpo_ckpt_latest(const char *loop_dir, qpo_epoch_info *info, qpo_err *err) {
    DIR *d = opendir(loop_dir);
    if (!d)
        return io_err(err, "open folder", loop_dir);
    struct dirent *e;
    int best = 0, k;
    char dir[PATH_MAX];
    while ((e = readdir(d))) {
        if (sscanf(e->d_name, "epoch-%d", &k) == 1 && k > best) {
            qpo_epoch_info tmp;
            snprintf(dir, sizeof dir, "%s/%s", loop_dir, e->d_name);
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

int qpo_ckpt_publish(const char *loop_dir, int epoch, char *final_path, size_t len, qpo_err *err) {
    char src[PATH_MAX], tmp[PATH_MAX];
    qpo_ckpt_epoch_path(loop_dir, epoch, POLICY_FILE, src, sizeof src);
    snprintf(tmp, sizeof tmp, "%s/.tmp-final-%d", loop_dir, (int)getpid());
    snprintf(final_path, len, "%s/" POLICY_FILE, loop_dir);
    unlink(tmp);
    /* A hard link: the final weights cost no copy and outlive the epoch folder's pruning. */
    if (link(src, tmp))
        return io_err(err, "link", src);
    if (rename(tmp, final_path)) {
        unlink(tmp);
        return io_err(err, "rename into place", final_path);
    }
    fsync_path(loop_dir, O_RDONLY | O_DIRECTORY);
    return 0;
}

static qpo_policy *refuse(qpo_err *err, int64_t run, int loop, const char *path) {
    qpo_err_prefix(err, "the loop %d checkpoint of run %" PRId64 " is unusable", loop, run);
    qpo_err_hint(err,
                 "restore %s from a backup; or delete its qpo.checkpoints row and the "
                 "loop's folder and run the loop's train job again",
                 path);
    err->code = QPO_EXIT_USAGE;
    return NULL;
}

qpo_policy *qpo_trainer_load_checkpoint(PGconn *conn, int64_t run, int loop,
                                        const qpo_tokenizer *tok, qpo_err *err) {
    char rs[24], ls[16];
    snprintf(rs, sizeof rs, "%" PRId64, run);
    snprintf(ls, sizeof ls, "%d", loop);
    const char *params[2] = {rs, ls};
    PGresult *res = qpo_db_named(conn, "trainer_checkpoint_get", 2, params, err);
    if (!res)
        return NULL;
    if (PQntuples(res) != 1) {
        PQclear(res);
        qpo_err_set(err, QPO_EXIT_USAGE, "run %" PRId64 " has no checkpoint for loop %d", run,
                    loop);
        qpo_err_hint(err,
                     "the loop's train job must succeed first (qpo jobs list --run %" PRId64
                     " --kind train)",
                     run);
        return NULL;
    }
    char path[PATH_MAX], want[65], got[65];
    snprintf(path, sizeof path, "%s", PQgetvalue(res, 0, 0));
    snprintf(want, sizeof want, "%s", PQgetvalue(res, 0, 1));
    PQclear(res);
    int64_t bytes;
    if (qpo_sha256_file(path, got, &bytes, err))
        return refuse(err, run, loop, path);
    if (strcmp(want, got)) {
        qpo_err_set(err, QPO_EXIT_USAGE, "%s does not match its recorded sha256", path);
        qpo_err_detail(err, "qpo.checkpoints: %s; file: %s (%" PRId64 " bytes)", want, got, bytes);
        return refuse(err, run, loop, path);
    }
    char msg[512];
    qpo_policy *p = qpo_policy_load(path, qpo_trainer_backend(), msg, sizeof msg);
    if (!p) {
        qpo_err_set(err, QPO_EXIT_USAGE, "cannot load %s", path);
        qpo_err_detail(err, "%s", msg);
        return refuse(err, run, loop, path);
    }
    if (qpo_policy_config_of(p)->vocab != qpo_tokenizer_vocab_size(tok)) {
        qpo_err_set(err, QPO_EXIT_USAGE, "%s has a vocabulary of %d, the tokenizer %d", path,
                    qpo_policy_config_of(p)->vocab, qpo_tokenizer_vocab_size(tok));
        qpo_policy_free(p);
        return refuse(err, run, loop, path);
    }
    return p;
}
