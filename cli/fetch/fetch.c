/* qpo_fetch_file: see fetch.h. */
#include "fetch.h"

#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define CONNECT_TIMEOUT_S 30L
/* A transfer slower than this for this long is a stalled one: give up rather than hang. */
#define STALL_BYTES_PER_S 1L
#define STALL_S 60L
#define COPY_CHUNK 65536

/* The temporary file being written, for the signal handler: Ctrl-C or a stopped container
 * must not leave a half-written file beside the cache's. One fetch at a time per process. */
static char partial_path[4200];
static volatile sig_atomic_t partial_exists;

static void remove_partial_and_die(int sig) {
    if (partial_exists)
        unlink(partial_path); /* async-signal-safe; ENOENT after a rename is harmless */
    raise(sig);               /* SA_RESETHAND: the default action, so the exit says which signal */
}

void qpo_fetch_cleanup_on_signals(void) {
    struct sigaction sa = {.sa_handler = remove_partial_and_die, .sa_flags = SA_RESETHAND};
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL);
}

/* The file being written: its descriptor, its running digest, and the size it may reach. */
typedef struct sink {
    int fd;
    EVP_MD_CTX *sha;
    long long written, limit;
    int write_errno;
} sink;

typedef struct want {
    const char *path, *sha256;
    long long size;
} want;

static int sink_put(sink *s, const void *data, size_t n) {
    if (s->written + (long long)n > s->limit)
        return -1; /* bigger than the manifest says: not the file, stop reading it */
    const char *p = data;
    for (size_t left = n; left > 0;) {
        ssize_t w = write(s->fd, p, left);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0) {
            s->write_errno = w < 0 ? errno : EIO;
            return -1;
        }
        p += w;
        left -= (size_t)w;
    }
    EVP_DigestUpdate(s->sha, data, n);
    s->written += (long long)n;
    return 0;
}

static void hex(const unsigned char *d, unsigned n, char *out) {
    for (unsigned i = 0; i < n; i++)
        sprintf(out + 2 * i, "%02x", d[i]);
}

/* SHA-256 of a whole file; -1 when it cannot be read. */
static int file_sha256(const char *path, char out[65]) {
    int fd = open(path, O_RDONLY);
    if (fd < 0)
        return -1;
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    EVP_DigestInit_ex(ctx, EVP_sha256(), NULL);
    char buf[COPY_CHUNK];
    ssize_t r;
    while ((r = read(fd, buf, sizeof(buf))) > 0)
        EVP_DigestUpdate(ctx, buf, (size_t)r);
    unsigned char d[EVP_MAX_MD_SIZE];
    unsigned n = 0;
    EVP_DigestFinal_ex(ctx, d, &n);
    EVP_MD_CTX_free(ctx);
    close(fd);
    hex(d, n, out);
    return r < 0 ? -1 : 0;
}

static int mkdir_parents(const char *path, qpo_err *err) {
    char buf[4096];
    snprintf(buf, sizeof(buf), "%s", path);
    for (char *p = buf + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        if (mkdir(buf, 0755) < 0 && errno != EEXIST)
            return qpo_err_set(err, QPO_EXIT_RUNTIME, "cannot create %s: %s", buf, strerror(errno));
        *p = '/';
    }
    return 0;
}

/* After a failure: the folders made for the file go again when nothing else is in them
 * (rmdir refuses a folder that holds anything), up to the cache itself. */
static void remove_empty_parents(const char *dest, const char *cache) {
    char buf[4096];
    snprintf(buf, sizeof(buf), "%s", dest);
    size_t keep = strlen(cache);
    for (char *slash = strrchr(buf, '/'); slash && (size_t)(slash - buf) > keep;
         slash = strrchr(buf, '/')) {
        *slash = '\0';
        if (rmdir(buf) < 0)
            return;
    }
}

static size_t on_body(char *data, size_t size, size_t nmemb, void *user) {
    return sink_put(user, data, size * nmemb) == 0 ? size * nmemb : 0;
}

static int from_url(const char *url, const want *w, sink *s, qpo_err *err) {
    CURL *c = curl_easy_init();
    if (!c)
        return qpo_err_set(err, QPO_EXIT_RUNTIME, "libcurl could not start a transfer");
    char curl_err[CURL_ERROR_SIZE] = "";
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, s);
    curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 1L);
    curl_easy_setopt(c, CURLOPT_FAILONERROR, 1L);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, CONNECT_TIMEOUT_S);
    curl_easy_setopt(c, CURLOPT_LOW_SPEED_LIMIT, STALL_BYTES_PER_S);
    curl_easy_setopt(c, CURLOPT_LOW_SPEED_TIME, STALL_S);
    curl_easy_setopt(c, CURLOPT_ERRORBUFFER, curl_err);
    curl_easy_setopt(c, CURLOPT_USERAGENT, "qpo-data-fetch");
    CURLcode rc = curl_easy_perform(c);
    long status = 0;
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    curl_easy_cleanup(c);
    if (rc == CURLE_OK)
        return 0;
    if (rc == CURLE_HTTP_RETURNED_ERROR)
        qpo_err_set(err, QPO_EXIT_RUNTIME, "%s: HTTP %ld from %s", w->path, status, url);
    else if (rc == CURLE_WRITE_ERROR && s->written >= s->limit && !s->write_errno)
        qpo_err_set(err, QPO_EXIT_RUNTIME, "%s: %s sent more than the manifest's %lld bytes",
                    w->path, url, w->size);
    else if (rc == CURLE_WRITE_ERROR)
        qpo_err_set(err, QPO_EXIT_RUNTIME, "%s: cannot write the download: %s", w->path,
                    strerror(s->write_errno));
    else
        qpo_err_set(err, QPO_EXIT_RUNTIME, "%s: download from %s failed after %lld bytes: %s",
                    w->path, url, s->written, curl_err[0] ? curl_err : curl_easy_strerror(rc));
    return -1;
}

static int from_dir(const char *dir, const want *w, sink *s, qpo_err *err) {
    char src[4096];
    snprintf(src, sizeof(src), "%s/%s", dir, w->path);
    int fd = open(src, O_RDONLY);
    if (fd < 0)
        return qpo_err_set(err, QPO_EXIT_RUNTIME, "%s: cannot read %s: %s", w->path, src,
                           strerror(errno));
    char buf[COPY_CHUNK];
    ssize_t r;
    int rc = 0;
    while (rc == 0 && (r = read(fd, buf, sizeof(buf))) > 0)
        rc = sink_put(s, buf, (size_t)r);
    if (rc == 0 && r < 0)
        rc =
            qpo_err_set(err, QPO_EXIT_RUNTIME, "%s: reading %s: %s", w->path, src, strerror(errno));
    else if (rc < 0 && s->write_errno)
        qpo_err_set(err, QPO_EXIT_RUNTIME, "%s: cannot write the copy: %s", w->path,
                    strerror(s->write_errno));
    else if (rc < 0)
        qpo_err_set(err, QPO_EXIT_RUNTIME, "%s: %s is larger than the manifest's %lld bytes",
                    w->path, src, w->size);
    close(fd);
    return rc;
}

static int check(const want *w, sink *s, const char *from, qpo_err *err) {
    unsigned char d[EVP_MAX_MD_SIZE];
    unsigned n = 0;
    char got[2 * EVP_MAX_MD_SIZE + 1];
    EVP_DigestFinal_ex(s->sha, d, &n);
    hex(d, n, got);
    if (s->written != w->size) {
        qpo_err_set(err, QPO_EXIT_RUNTIME, "%s: %lld bytes from %s, the manifest says %lld",
                    w->path, s->written, from, w->size);
        qpo_err_hint(err, "a cut transfer or another version of the file; nothing was kept: run "
                          "the fetch again, or fetch from another --from");
        return -1;
    }
    if (strcmp(got, w->sha256)) {
        qpo_err_set(err, QPO_EXIT_RUNTIME, "%s: SHA-256 mismatch", w->path);
        qpo_err_detail(err, "%s has %s, config/data-manifest.json says %s", from, got, w->sha256);
        qpo_err_hint(err, "the source holds another version of the file; nothing was kept");
        return -1;
    }
    return 0;
}

/* Fills the temporary file from the source and checks its size and digest. */
static int fill(const json_t *file, const qpo_fetch_source *src, const want *w, sink *s, char *from,
                size_t nfrom, qpo_err *err) {
    if (src && src->dir) {
        snprintf(from, nfrom, "%s/%s", src->dir, w->path);
        return from_dir(src->dir, w, s, err) < 0 ? -1 : check(w, s, from, err);
    }
    if (src && src->base_url) {
        snprintf(from, nfrom, "%s/%s", src->base_url, w->path);
        return from_url(from, w, s, err) < 0 ? -1 : check(w, s, from, err);
    }
    const json_t *urls = json_object_get(file, "urls");
    if (!json_array_size(urls)) {
        qpo_err_set(err, QPO_EXIT_USAGE, "%s has no upstream URL", w->path);
        qpo_err_detail(err, "the file was assembled by hand (config/data-manifest.json)");
        qpo_err_hint(err, "take it from a data folder that has it: --from DIR");
        return -1;
    }
    /* The mirrors in turn: the first whose bytes match wins; the last error is kept. */
    int rc = -1;
    for (size_t i = 0; rc < 0 && i < json_array_size(urls); i++) {
        if (i > 0 && (ftruncate(s->fd, 0) < 0 || lseek(s->fd, 0, SEEK_SET) < 0))
            return qpo_err_set(err, QPO_EXIT_RUNTIME, "%s: cannot reuse the temporary file",
                               w->path);
        s->written = 0;
        EVP_DigestInit_ex(s->sha, EVP_sha256(), NULL);
        qpo_err_clear(err);
        snprintf(from, nfrom, "%s", json_string_value(json_array_get(urls, i)));
        rc = from_url(from, w, s, err) < 0 ? -1 : check(w, s, from, err);
    }
    return rc;
}

static int read_want(const json_t *file, want *w, qpo_err *err) {
    w->path = json_string_value(json_object_get(file, "path"));
    w->sha256 = json_string_value(json_object_get(file, "sha256"));
    w->size = json_integer_value(json_object_get(file, "size"));
    if (!w->path || !w->sha256 || strlen(w->sha256) != 64 || w->size <= 0 || w->path[0] == '/' ||
        strstr(w->path, ".."))
        return qpo_err_set(err, QPO_EXIT_RUNTIME,
                           "config/data-manifest.json: a file entry without a relative path, "
                           "a 64-digit sha256 and a size (path: %s)",
                           w->path ? w->path : "(none)");
    return 0;
}

int qpo_fetch_file(const json_t *file, const qpo_fetch_source *src, const char *cache,
                   qpo_fetch_outcome *outcome, qpo_err *err) {
    want w;
    if (read_want(file, &w, err) < 0)
        return -1;
    char dest[4096], have[65], from[4096] = "";
    char *tmp = partial_path;
    snprintf(dest, sizeof(dest), "%s/%s", cache, w.path);
    if (file_sha256(dest, have) == 0 && !strcmp(have, w.sha256)) {
        *outcome = QPO_FETCH_PRESENT;
        return 0;
    }
    if (mkdir_parents(dest, err) < 0)
        return -1;
    snprintf(tmp, sizeof(partial_path), "%s.part-XXXXXX", dest);
    partial_exists = 1;
    sink s = {.fd = mkstemp(tmp), .sha = EVP_MD_CTX_new(), .limit = w.size};
    if (s.fd < 0) {
        partial_exists = 0;
        EVP_MD_CTX_free(s.sha);
        return qpo_err_set(err, QPO_EXIT_RUNTIME, "cannot create %s: %s", tmp, strerror(errno));
    }
    EVP_DigestInit_ex(s.sha, EVP_sha256(), NULL);
    int rc = fill(file, src, &w, &s, from, sizeof(from), err);
    if (rc == 0 && (fchmod(s.fd, 0644) < 0 || fsync(s.fd) < 0))
        rc = qpo_err_set(err, QPO_EXIT_RUNTIME, "%s: %s", tmp, strerror(errno));
    close(s.fd);
    EVP_MD_CTX_free(s.sha);
    if (rc == 0 && rename(tmp, dest) < 0)
        rc = qpo_err_set(err, QPO_EXIT_RUNTIME, "cannot rename %s to %s: %s", tmp, dest,
                         strerror(errno));
    if (rc < 0)
        unlink(tmp);
    partial_exists = 0;
    if (rc < 0) {
        remove_empty_parents(dest, cache);
        return -1;
    }
    *outcome = QPO_FETCH_FETCHED;
    return 0;
}
