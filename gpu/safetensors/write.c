/* The atomic writer: the whole file goes to a temporary name beside the target, is fsync'd,
 * renamed over the target and the directory fsync'd, so readers and crashes see the old file
 * or the new one, never a mix. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* mkostemp */
#endif
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <libgen.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "safetensors.h"
#include "st_internal.h"

typedef struct wtensor {
    char *name;
    qpo_st_dtype dtype;
    int ndim;
    int64_t shape[QPO_ST_MAX_DIMS];
    const void *data;
    void *owned; /* the copy made by qpo_st_writer_add, or NULL for a reference */
    size_t nbytes;
} wtensor;

struct qpo_st_writer {
    wtensor *t;
    size_t n, cap;
    json_t *meta;
    char err[256]; /* the first error of an add, reported again by the write */
};

static void fail(char *errbuf, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void fail(char *errbuf, size_t errlen, const char *fmt, ...) {
    if (!errbuf || errlen == 0)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(errbuf, errlen, fmt, ap);
    va_end(ap);
}

qpo_st_writer *qpo_st_writer_new(void) {
    qpo_st_writer *w = calloc(1, sizeof(*w));
    if (w && !(w->meta = json_object())) {
        free(w);
        return NULL;
    }
    return w;
}

void qpo_st_writer_free(qpo_st_writer *w) {
    if (!w)
        return;
    for (size_t i = 0; i < w->n; i++) {
        free(w->t[i].name);
        free(w->t[i].owned);
    }
    free(w->t);
    json_decref(w->meta);
    free(w);
}

#define WFAIL(...)                                                                                 \
    do {                                                                                           \
        if (!w->err[0])                                                                            \
            fail(w->err, sizeof(w->err), __VA_ARGS__);                                             \
        return -1;                                                                                 \
    } while (0)

static int check_new_tensor(qpo_st_writer *w, const char *name, qpo_st_dtype dtype, int ndim,
                            const int64_t *shape, size_t *nbytes) {
    if (!name || !name[0] || strcmp(name, "__metadata__") == 0)
        WFAIL("tensor name '%s' is not allowed", name ? name : "(null)");
    for (size_t i = 0; i < w->n; i++)
        if (strcmp(w->t[i].name, name) == 0)
            WFAIL("tensor '%s' added twice", name);
    if (qpo_st_dtype_size(dtype) == 0)
        WFAIL("tensor '%s': unknown dtype %d", name, (int)dtype);
    if (ndim < 0 || ndim > QPO_ST_MAX_DIMS || (ndim > 0 && !shape))
        WFAIL("tensor '%s': ndim %d outside 0..%d", name, ndim, QPO_ST_MAX_DIMS);
    size_t bytes = qpo_st_dtype_size(dtype);
    for (int i = 0; i < ndim; i++) {
        if (shape[i] < 0)
            WFAIL("tensor '%s': shape[%d] = %lld is negative", name, i, (long long)shape[i]);
        if (__builtin_mul_overflow(bytes, (size_t)shape[i], &bytes))
            WFAIL("tensor '%s': shape too large", name);
    }
    *nbytes = bytes;
    return 0;
}

static int add(qpo_st_writer *w, const char *name, qpo_st_dtype dtype, int ndim,
               const int64_t *shape, const void *data, int copy) {
    size_t nbytes;
    if (check_new_tensor(w, name, dtype, ndim, shape, &nbytes) != 0)
        return -1;
    if (nbytes > 0 && !data)
        WFAIL("tensor '%s': no data", name);
    if (w->n == w->cap) {
        size_t cap = w->cap ? 2 * w->cap : 16;
        wtensor *t = realloc(w->t, cap * sizeof(*t));
        if (!t)
            WFAIL("out of memory");
        w->t = t;
        w->cap = cap;
    }
    wtensor *t = &w->t[w->n];
    memset(t, 0, sizeof(*t));
    t->name = strdup(name);
    if (!t->name)
        WFAIL("out of memory");
    if (copy && nbytes > 0) {
        t->owned = malloc(nbytes);
        if (!t->owned) {
            free(t->name);
            WFAIL("out of memory copying tensor '%s' (%zu bytes)", name, nbytes);
        }
        memcpy(t->owned, data, nbytes);
    }
    t->data = t->owned ? t->owned : data;
    t->dtype = dtype;
    t->ndim = ndim;
    for (int i = 0; i < ndim; i++)
        t->shape[i] = shape[i];
    t->nbytes = nbytes;
    w->n++;
    return 0;
}

int qpo_st_writer_add(qpo_st_writer *w, const char *name, qpo_st_dtype dtype, int ndim,
                      const int64_t *shape, const void *data) {
    return add(w, name, dtype, ndim, shape, data, 1);
}

int qpo_st_writer_add_ref(qpo_st_writer *w, const char *name, qpo_st_dtype dtype, int ndim,
                          const int64_t *shape, const void *data) {
    return add(w, name, dtype, ndim, shape, data, 0);
}

int qpo_st_writer_metadata(qpo_st_writer *w, const char *key, const char *value) {
    if (!key || !value)
        WFAIL("metadata key and value must not be NULL");
    json_t *s = json_string(value);
    if (!s)
        WFAIL("metadata '%s': value is not valid UTF-8", key);
    if (json_object_set_new(w->meta, key, s) != 0)
        WFAIL("metadata key '%s' is not valid UTF-8", key);
    return 0;
}

/* Larger dtypes first: with an 8-byte aligned data section every tensor then starts at a
 * multiple of its own element size. Ties keep insertion order. */
static size_t *data_order(const qpo_st_writer *w) {
    size_t *order = malloc((w->n ? w->n : 1) * sizeof(size_t));
    if (!order)
        return NULL;
    size_t k = 0;
    for (size_t size = 8; size >= 1; size /= 2)
        for (size_t i = 0; i < w->n; i++)
            if (qpo_st_dtype_size(w->t[i].dtype) == size)
                order[k++] = i;
    return order;
}

static char *build_header(const qpo_st_writer *w, const size_t *order, size_t *hlen) {
    json_t *root = json_object();
    size_t off = 0;
    for (size_t k = 0; root && k < w->n; k++) {
        const wtensor *t = &w->t[order[k]];
        json_t *shape = json_array();
        for (int i = 0; shape && i < t->ndim; i++)
            json_array_append_new(shape, json_integer(t->shape[i]));
        json_t *e =
            json_pack("{s:s, s:o, s:[I,I]}", "dtype", qpo_st_dtype_name(t->dtype), "shape", shape,
                      "data_offsets", (json_int_t)off, (json_int_t)(off + t->nbytes));
        if (!e || json_object_set_new(root, t->name, e) != 0) {
            json_decref(root);
            return NULL;
        }
        off += t->nbytes;
    }
    if (root && json_object_size(w->meta) > 0)
        json_object_set(root, "__metadata__", w->meta);
    char *json = root ? json_dumps(root, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
    json_decref(root);
    if (!json)
        return NULL;
    /* Pad with spaces (valid JSON whitespace) so the data section starts 8-byte aligned. */
    size_t len = strlen(json), padded = (len + 7) / 8 * 8;
    char *out = realloc(json, padded + 1);
    if (!out) {
        free(json);
        return NULL;
    }
    memset(out + len, ' ', padded - len);
    out[padded] = '\0';
    *hlen = padded;
    return out;
}

static int write_all(int fd, const void *buf, size_t n) {
    const unsigned char *p = buf;
    while (n > 0) {
        ssize_t r = write(fd, p, n);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            return -1;
        p += r;
        n -= (size_t)r;
    }
    return 0;
}

static int write_body(int fd, const qpo_st_writer *w, const size_t *order, const char *header,
                      size_t hlen) {
    unsigned char lenbuf[8];
    for (int i = 0; i < 8; i++)
        lenbuf[i] = (unsigned char)((uint64_t)hlen >> (8 * i));
    if (write_all(fd, lenbuf, 8) != 0 || write_all(fd, header, hlen) != 0)
        return -1;
    for (size_t k = 0; k < w->n; k++)
        if (write_all(fd, w->t[order[k]].data, w->t[order[k]].nbytes) != 0)
            return -1;
    return 0;
}

static int fsync_dir_of(const char *path) {
    char *copy = strdup(path);
    if (!copy)
        return -1;
    int fd = open(dirname(copy), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    free(copy);
    if (fd < 0)
        return -1;
    int rc = fsync(fd);
    close(fd);
    return rc;
}

static int write_atomically(const qpo_st_writer *w, const size_t *order, const char *header,
                            size_t hlen, const char *path, char *errbuf, size_t errlen) {
    size_t tlen = strlen(path) + 16;
    char *tmp = malloc(tlen);
    if (!tmp) {
        fail(errbuf, errlen, "%s: out of memory", path);
        return -1;
    }
    snprintf(tmp, tlen, "%s.tmp.XXXXXX", path);
    int fd = mkostemp(tmp, O_CLOEXEC);
    if (fd < 0) {
        fail(errbuf, errlen, "%s: cannot create a temporary file: %s", path, strerror(errno));
        free(tmp);
        return -1;
    }
    const char *step = "write";
    int rc = fchmod(fd, 0644);
    if (rc == 0)
        rc = write_body(fd, w, order, header, hlen);
    if (rc == 0 && (rc = fsync(fd)) != 0)
        step = "fsync";
    int saved = errno;
    if (close(fd) != 0 && rc == 0) {
        rc = -1;
        step = "close";
        saved = errno;
    }
    if (rc == 0 && (rc = rename(tmp, path)) != 0) {
        step = "rename";
        saved = errno;
    }
    if (rc != 0) {
        fail(errbuf, errlen, "%s: %s of %s failed: %s", path, step, tmp, strerror(saved));
        unlink(tmp);
        free(tmp);
        return -1;
    }
    free(tmp);
    if (fsync_dir_of(path) != 0) {
        fail(errbuf, errlen, "%s: fsync of its directory failed: %s", path, strerror(errno));
        return -1;
    }
    return 0;
}

int qpo_st_writer_write(qpo_st_writer *w, const char *path, char *errbuf, size_t errlen) {
    if (w->err[0]) {
        fail(errbuf, errlen, "%s: not written: %s", path, w->err);
        return -1;
    }
    size_t *order = data_order(w);
    size_t hlen = 0;
    char *header = order ? build_header(w, order, &hlen) : NULL;
    int rc = -1;
    if (!header)
        fail(errbuf, errlen, "%s: out of memory building the header", path);
    else
        rc = write_atomically(w, order, header, hlen, path, errbuf, errlen);
    free(header);
    free(order);
    return rc;
}
