/* A loop's final checkpoint as recorded in qpo.checkpoints, wherever its store keeps it: a file
 * on this machine, or an epoch in PostgreSQL streamed to a temporary file. Either way the
 * bytes are checked against the recorded sha256 before the policy is built from them. */
#include <inttypes.h>
#include <limits.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ckpt_store.h"
#include "db.h"
#include "trainer_internal.h"

static qpo_policy *refuse(qpo_err *err, int64_t run, int loop, const char *path) {
    qpo_err_prefix(err, "the loop %d checkpoint of run %" PRId64 " is unusable", loop, run);
    qpo_err_hint(err,
                 "restore %s from a backup; or delete its qpo.checkpoints row (and the loop's "
                 "folder or qpo.checkpoint_epochs rows) and run the loop's train job again",
                 path);
    err->code = QPO_EXIT_USAGE;
    return NULL;
}

/* A fresh temporary file for weights streamed out of PostgreSQL ($TMPDIR, else /tmp). */
static int scratch_file(char *out, size_t len, qpo_err *err) {
    const char *tmp = getenv("TMPDIR");
    snprintf(out, len, "%s/qpo-policy-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    int fd = mkstemp(out);
    if (fd < 0)
        return qpo_err_set(err, QPO_EXIT_RUNTIME, "cannot create a temporary file %s", out);
    close(fd);
    return 0;
}

/* The policy in LOCAL (NAME in messages), its vocabulary the tokenizer's (*tok becomes the
 * policy's subset when it carries one). */
static qpo_policy *load_checked(const char *local, const char *name, qpo_tokenizer **tok,
                                qpo_err *err) {
    char msg[512];
    qpo_policy *p = qpo_policy_load(local, qpo_trainer_backend(), msg, sizeof msg);
    if (!p) {
        qpo_err_set(err, QPO_EXIT_USAGE, "cannot load %s", name);
        qpo_err_detail(err, "%s", msg);
        return NULL;
    }
    if (qpo_trainer_adopt_vocab(p, tok, err)) {
        qpo_err_prefix(err, "%s", name);
        qpo_policy_free(p);
        return NULL;
    }
    if (qpo_policy_config_of(p)->vocab != qpo_tokenizer_vocab_size(*tok)) {
        qpo_err_set(err, QPO_EXIT_USAGE, "%s has a vocabulary of %d, the tokenizer %d", name,
                    qpo_policy_config_of(p)->vocab, qpo_tokenizer_vocab_size(*tok));
        qpo_policy_free(p);
        return NULL;
    }
    return p;
}

qpo_policy *qpo_trainer_load_checkpoint(PGconn *conn, int64_t run, int loop, qpo_tokenizer **tok,
                                        qpo_err *err) {
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
    int in_pg = !PQgetisnull(res, 0, 5);
    int epoch = in_pg ? atoi(PQgetvalue(res, 0, 5)) : 0;
    PQclear(res);
    char local[PATH_MAX];
    if (in_pg) {
        if (scratch_file(local, sizeof local, err))
            return NULL;
        if (qpo_ckpt_pg_fetch_file(conn, run, loop, epoch, QPO_POLICY_FILE, want, local, 0, err)) {
            unlink(local);
            /* A lost connection is retried; stored bytes that are gone or changed are not. */
            return err->code == QPO_EXIT_RUNTIME ? NULL : refuse(err, run, loop, path);
        }
    } else {
        snprintf(local, sizeof local, "%s", path);
        int64_t bytes;
        if (qpo_sha256_file(path, got, &bytes, err))
            return refuse(err, run, loop, path);
        if (strcmp(want, got)) {
            qpo_err_set(err, QPO_EXIT_USAGE, "%s does not match its recorded sha256", path);
            qpo_err_detail(err, "qpo.checkpoints: %s; file: %s (%" PRId64 " bytes)", want, got,
                           bytes);
            return refuse(err, run, loop, path);
        }
    }
    qpo_policy *p = load_checked(local, path, tok, err);
    if (in_pg)
        unlink(local);
    return p ? p : refuse(err, run, loop, path);
}

/* Copies a file while hashing it; 0, or -1 with err. */
static int copy_hashed(const char *src, const char *dest, char sha[65], qpo_err *err) {
    FILE *in = fopen(src, "rb"), *out = in ? fopen(dest, "wb") : NULL;
    if (!in || !out) {
        qpo_err_set(err, QPO_EXIT_RUNTIME, "cannot copy %s to %s", src, dest);
        if (in)
            fclose(in);
        return -1;
    }
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    EVP_DigestInit_ex(ctx, EVP_sha256(), NULL);
    unsigned char buf[1 << 16];
    size_t n;
    int bad = 0;
    while (!bad && (n = fread(buf, 1, sizeof buf, in)) > 0) {
        EVP_DigestUpdate(ctx, buf, n);
        bad = fwrite(buf, 1, n, out) != n;
    }
    bad = bad || ferror(in);
    bad = fclose(out) || bad;
    fclose(in);
    unsigned char md[32];
    unsigned int mdlen = 0;
    EVP_DigestFinal_ex(ctx, md, &mdlen);
    EVP_MD_CTX_free(ctx);
    for (unsigned i = 0; i < 32; i++)
        snprintf(sha + 2 * i, 3, "%02x", md[i]);
    if (bad)
        return qpo_err_set(err, QPO_EXIT_RUNTIME, "cannot copy %s to %s", src, dest);
    return 0;
}

int qpo_trainer_checkpoint_copy(PGconn *conn, int64_t run, int loop, const char *dest,
                                qpo_err *err) {
    char rs[24], ls[16];
    snprintf(rs, sizeof rs, "%" PRId64, run);
    snprintf(ls, sizeof ls, "%d", loop);
    const char *params[2] = {rs, ls};
    PGresult *res = qpo_db_named(conn, "trainer_checkpoint_get", 2, params, err);
    if (!res)
        return -1;
    if (PQntuples(res) != 1) {
        PQclear(res);
        return qpo_err_set(err, QPO_EXIT_USAGE, "run %" PRId64 " has no checkpoint for loop %d",
                           run, loop);
    }
    char path[PATH_MAX], want[65], got[65];
    snprintf(path, sizeof path, "%s", PQgetvalue(res, 0, 0));
    snprintf(want, sizeof want, "%s", PQgetvalue(res, 0, 1));
    int epoch = PQgetisnull(res, 0, 5) ? 0 : atoi(PQgetvalue(res, 0, 5));
    PQclear(res);
    if (epoch > 0) {
        if (qpo_ckpt_pg_fetch_file(conn, run, loop, epoch, QPO_POLICY_FILE, want, dest, 0, err) ==
            0)
            return 0;
        if (err->code != QPO_EXIT_RUNTIME)
            refuse(err, run, loop, path);
        return -1;
    }
    if (copy_hashed(path, dest, got, err))
        return -1;
    if (strcmp(got, want)) {
        unlink(dest);
        qpo_err_set(err, QPO_EXIT_USAGE, "%s does not match its recorded sha256", path);
        qpo_err_detail(err, "qpo.checkpoints: %s; file: %s", want, got);
        refuse(err, run, loop, path);
        return -1;
    }
    return 0;
}
