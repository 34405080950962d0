/* See blob_pg.h. */
#include "blob_pg.h"

#include <errno.h>
#include <inttypes.h>
#include <libpq/libpq-fs.h>
#include <limits.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static size_t chunk_of(size_t chunk) {
    return chunk == 0 ? QPO_BLOB_CHUNK : chunk > INT_MAX ? INT_MAX : chunk;
}

static int lo_err(PGconn *conn, qpo_err *err, const char *what, Oid oid) {
    qpo_err_set(err, QPO_EXIT_RUNTIME, "cannot %s large object %u", what, oid);
    qpo_err_detail(err, "%s", PQerrorMessage(conn));
    return -1;
}

static void hex_of(EVP_MD_CTX *ctx, char out[65]) {
    unsigned char md[32];
    unsigned int n = 0;
    EVP_DigestFinal_ex(ctx, md, &n);
    for (unsigned i = 0; i < 32; i++)
        snprintf(out + 2 * i, 3, "%02x", md[i]);
}

int qpo_blob_put(PGconn *conn, const char *path, size_t chunk, Oid *oid, char sha256[65],
                 int64_t *bytes, qpo_err *err) {
    chunk = chunk_of(chunk);
    FILE *f = fopen(path, "rb");
    if (!f) {
        qpo_err_set(err, QPO_EXIT_RUNTIME, "cannot open %s: %s", path, strerror(errno));
        return -1;
    }
    char *buf = malloc(chunk);
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    int rc = -1, fd = -1;
    *oid = buf && ctx ? lo_creat(conn, INV_READ | INV_WRITE) : InvalidOid;
    if (!buf || !ctx) {
        qpo_err_set(err, QPO_EXIT_RUNTIME, "out of memory streaming %s", path);
        goto done;
    }
    if (*oid == InvalidOid || (fd = lo_open(conn, *oid, INV_WRITE)) < 0) {
        lo_err(conn, err, "create", *oid);
        goto done;
    }
    EVP_DigestInit_ex(ctx, EVP_sha256(), NULL);
    int64_t total = 0;
    size_t n;
    while ((n = fread(buf, 1, chunk, f)) > 0) {
        EVP_DigestUpdate(ctx, buf, n);
        if (lo_write(conn, fd, buf, n) != (int)n) {
            lo_err(conn, err, "write", *oid);
            goto done;
        }
        total += (int64_t)n;
    }
    if (ferror(f)) {
        qpo_err_set(err, QPO_EXIT_RUNTIME, "cannot read %s: %s", path, strerror(errno));
        goto done;
    }
    if (lo_close(conn, fd) < 0) {
        fd = -1;
        lo_err(conn, err, "close", *oid);
        goto done;
    }
    fd = -1;
    hex_of(ctx, sha256);
    *bytes = total;
    rc = 0;
done:
    if (fd >= 0)
        lo_close(conn, fd);
    EVP_MD_CTX_free(ctx);
    free(buf);
    fclose(f);
    return rc;
}

/* Copies the object into F, hashing it; 0, or -1 with err set. */
static int stream_out(PGconn *conn, Oid oid, FILE *f, const char *part, size_t chunk, char *buf,
                      EVP_MD_CTX *ctx, int64_t *total, qpo_err *err) {
    int fd = lo_open(conn, oid, INV_READ);
    if (fd < 0)
        return lo_err(conn, err, "open", oid);
    EVP_DigestInit_ex(ctx, EVP_sha256(), NULL);
    int n, rc = 0;
    *total = 0;
    while ((n = lo_read(conn, fd, buf, chunk)) > 0) {
        EVP_DigestUpdate(ctx, buf, (size_t)n);
        if (fwrite(buf, 1, (size_t)n, f) != (size_t)n) {
            rc = qpo_err_set(err, QPO_EXIT_RUNTIME, "cannot write %s: %s", part, strerror(errno));
            break;
        }
        *total += n;
    }
    if (rc == 0 && n < 0)
        rc = lo_err(conn, err, "read", oid);
    lo_close(conn, fd);
    return rc;
}

int qpo_blob_get(PGconn *conn, Oid oid, const char *want_sha256, int64_t want_bytes,
                 const char *dest, size_t chunk, const char *what, qpo_err *err) {
    chunk = chunk_of(chunk);
    char part[PATH_MAX], got[65];
    if ((size_t)snprintf(part, sizeof part, "%s.part", dest) >= sizeof part)
        return qpo_err_set(err, QPO_EXIT_USAGE, "path too long: %s", dest);
    FILE *f = fopen(part, "wb");
    if (!f)
        return qpo_err_set(err, QPO_EXIT_RUNTIME, "cannot create %s: %s", part, strerror(errno));
    char *buf = malloc(chunk);
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    int64_t total = 0;
    int rc = !buf || !ctx ? qpo_err_set(err, QPO_EXIT_RUNTIME, "out of memory reading %s", what)
                          : stream_out(conn, oid, f, part, chunk, buf, ctx, &total, err);
    if (fflush(f) || fsync(fileno(f)))
        rc = rc ? rc
                : qpo_err_set(err, QPO_EXIT_RUNTIME, "cannot write %s: %s", part, strerror(errno));
    fclose(f);
    if (rc == 0) {
        hex_of(ctx, got);
        if (total != want_bytes || strcmp(got, want_sha256)) {
            rc = qpo_err_set(err, QPO_EXIT_USAGE, "%s does not match its recorded sha256", what);
            qpo_err_detail(err,
                           "recorded: %s (%" PRId64 " bytes); stored: %s (%" PRId64
                           " bytes, large object %u)",
                           want_sha256, want_bytes, got, total, oid);
        } else if (rename(part, dest)) {
            rc = qpo_err_set(err, QPO_EXIT_RUNTIME, "cannot rename %s into place: %s", part,
                             strerror(errno));
        }
    }
    if (rc)
        unlink(part);
    EVP_MD_CTX_free(ctx);
    free(buf);
    return rc;
}
