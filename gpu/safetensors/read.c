/* The validating reader: every check runs on the header before the data section is touched,
 * and every offset is checked against the real data size, so a corrupt file is an error
 * message, never an out-of-bounds read. */
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "safetensors.h"
#include "st_internal.h"

struct qpo_st_file {
    qpo_st_tensor *tensors; /* sorted by data offset */
    size_t *offsets;        /* begin offset of each tensor, same order */
    size_t n;
    const qpo_st_tensor **by_name; /* sorted by name, for qpo_st_find */
    json_t *meta;                  /* the __metadata__ object (string values only), or NULL */
    unsigned char *data;
    size_t data_size;
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

static uint64_t le64(const unsigned char *p) {
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = (v << 8) | p[i];
    return v;
}

void qpo_st_close(qpo_st_file *f) {
    if (!f)
        return;
    for (size_t i = 0; i < f->n; i++)
        free((char *)f->tensors[i].name);
    free(f->tensors);
    free(f->offsets);
    free(f->by_name);
    json_decref(f->meta);
    free(f->data);
    free(f);
}

static int check_metadata(json_t *meta, const char *what, char *errbuf, size_t errlen) {
    if (!json_is_object(meta)) {
        fail(errbuf, errlen, "%s: __metadata__ is not a JSON object", what);
        return -1;
    }
    const char *key;
    json_t *v;
    json_object_foreach(meta, key, v) {
        if (!json_is_string(v)) {
            fail(errbuf, errlen, "%s: __metadata__ key '%s' is not a string", what, key);
            return -1;
        }
    }
    return 0;
}

static int parse_shape(json_t *shape, qpo_st_tensor *t, const char *what, char *errbuf,
                       size_t errlen) {
    if (!json_is_array(shape)) {
        fail(errbuf, errlen, "%s: tensor '%s': shape is not an array", what, t->name);
        return -1;
    }
    if (json_array_size(shape) > QPO_ST_MAX_DIMS) {
        fail(errbuf, errlen, "%s: tensor '%s': %zu dimensions (at most %d supported)", what,
             t->name, json_array_size(shape), QPO_ST_MAX_DIMS);
        return -1;
    }
    t->ndim = (int)json_array_size(shape);
    for (int i = 0; i < t->ndim; i++) {
        json_t *d = json_array_get(shape, (size_t)i);
        if (!json_is_integer(d) || json_integer_value(d) < 0) {
            fail(errbuf, errlen, "%s: tensor '%s': shape[%d] is not a non-negative integer", what,
                 t->name, i);
            return -1;
        }
        t->shape[i] = json_integer_value(d);
    }
    return 0;
}

static int parse_offsets(json_t *offs, const char *name, size_t data_size, size_t *begin,
                         size_t *end, const char *what, char *errbuf, size_t errlen) {
    if (!json_is_array(offs) || json_array_size(offs) != 2) {
        fail(errbuf, errlen, "%s: tensor '%s': data_offsets is not an array [begin, end]", what,
             name);
        return -1;
    }
    json_t *b = json_array_get(offs, 0), *e = json_array_get(offs, 1);
    if (!json_is_integer(b) || !json_is_integer(e) || json_integer_value(b) < 0 ||
        json_integer_value(e) < 0) {
        fail(errbuf, errlen, "%s: tensor '%s': data_offsets are not non-negative integers", what,
             name);
        return -1;
    }
    uint64_t ub = (uint64_t)json_integer_value(b), ue = (uint64_t)json_integer_value(e);
    if (ub > ue) {
        fail(errbuf, errlen, "%s: tensor '%s': data_offsets [%llu, %llu] end before they begin",
             what, name, (unsigned long long)ub, (unsigned long long)ue);
        return -1;
    }
    if (ue > data_size) {
        fail(errbuf, errlen,
             "%s: tensor '%s': data_offsets [%llu, %llu] past the end of the data section "
             "(%zu bytes; file truncated?)",
             what, name, (unsigned long long)ub, (unsigned long long)ue, data_size);
        return -1;
    }
    *begin = (size_t)ub;
    *end = (size_t)ue;
    return 0;
}

/* Element count times dtype size must equal the byte range, computed without overflow. */
static int check_size(const qpo_st_tensor *t, size_t nbytes, const char *what, char *errbuf,
                      size_t errlen) {
    size_t bytes = qpo_st_dtype_size(t->dtype);
    for (int i = 0; i < t->ndim; i++) {
        if (__builtin_mul_overflow(bytes, (size_t)t->shape[i], &bytes)) {
            fail(errbuf, errlen, "%s: tensor '%s': shape is too large (size overflows)", what,
                 t->name);
            return -1;
        }
    }
    if (bytes != nbytes) {
        char dims[160] = "";
        size_t used = 0;
        for (int i = 0; i < t->ndim && used < sizeof(dims); i++)
            used += (size_t)snprintf(dims + used, sizeof(dims) - used, "%s%lld", i ? "," : "",
                                     (long long)t->shape[i]);
        fail(errbuf, errlen,
             "%s: tensor '%s': shape [%s] of %s needs %zu bytes but data_offsets span %zu", what,
             t->name, dims, qpo_st_dtype_name(t->dtype), bytes, nbytes);
        return -1;
    }
    return 0;
}

static int parse_entry(const char *name, json_t *entry, size_t data_size, qpo_st_tensor *t,
                       size_t *begin, const char *what, char *errbuf, size_t errlen) {
    if (!json_is_object(entry)) {
        fail(errbuf, errlen, "%s: tensor '%s': entry is not a JSON object", what, name);
        return -1;
    }
    const char *dt = json_string_value(json_object_get(entry, "dtype"));
    if (!dt) {
        fail(errbuf, errlen, "%s: tensor '%s': dtype missing or not a string", what, name);
        return -1;
    }
    if (st_dtype_parse(dt, &t->dtype) != 0) {
        fail(errbuf, errlen,
             "%s: tensor '%s': unknown or unsupported dtype '%s' (supported: F32 F16 BF16 I32 "
             "I64 U8)",
             what, name, dt);
        return -1;
    }
    if (parse_shape(json_object_get(entry, "shape"), t, what, errbuf, errlen) != 0)
        return -1;
    size_t end;
    if (parse_offsets(json_object_get(entry, "data_offsets"), name, data_size, begin, &end, what,
                      errbuf, errlen) != 0)
        return -1;
    t->nbytes = end - *begin;
    return check_size(t, t->nbytes, what, errbuf, errlen);
}

typedef struct placed {
    qpo_st_tensor t;
    size_t begin;
} placed;

static int by_offset(const void *a, const void *b) {
    const placed *x = a, *y = b;
    if (x->begin != y->begin)
        return x->begin < y->begin ? -1 : 1;
    if (x->t.nbytes != y->t.nbytes)
        return x->t.nbytes < y->t.nbytes ? -1 : 1;
    return strcmp(x->t.name, y->t.name);
}

static int by_name(const void *a, const void *b) {
    const qpo_st_tensor *x = *(const qpo_st_tensor *const *)a;
    const qpo_st_tensor *y = *(const qpo_st_tensor *const *)b;
    return strcmp(x->name, y->name);
}

/* Checks that the ranges (already sorted by offset) tile the data section: each starts where
 * the previous one ended, and the last ends at the end of the section. */
static int check_tiling(const placed *p, size_t n, size_t data_size, const char *what, char *errbuf,
                        size_t errlen) {
    size_t expected = 0;
    for (size_t i = 0; i < n; i++) {
        if (p[i].begin < expected) {
            fail(errbuf, errlen, "%s: tensor '%s': data_offsets overlap tensor '%s'", what,
                 p[i].t.name, p[i - 1].t.name);
            return -1;
        }
        if (p[i].begin > expected) {
            fail(errbuf, errlen,
                 "%s: tensor '%s': a gap of %zu bytes before it in the data section (at offset "
                 "%zu)",
                 what, p[i].t.name, p[i].begin - expected, expected);
            return -1;
        }
        expected = p[i].begin + p[i].t.nbytes;
    }
    if (expected != data_size) {
        fail(errbuf, errlen,
             "%s: the data section has %zu bytes but the tensors cover only %zu (trailing "
             "bytes)",
             what, data_size, expected);
        return -1;
    }
    return 0;
}

static void free_placed(placed *p, size_t n) {
    for (size_t i = 0; i < n; i++)
        free((char *)p[i].t.name);
    free(p);
}

/* Parses and validates a header against a data section of data_size bytes. On success the
 * file holds its tensors (data pointers still unset) and metadata. */
static qpo_st_file *parse_header(const unsigned char *hdr, size_t hlen, size_t data_size,
                                 const char *what, char *errbuf, size_t errlen) {
    json_error_t jerr;
    json_t *root =
        json_loadb((const char *)hdr, hlen, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &jerr);
    if (!root) {
        fail(errbuf, errlen, "%s: the header is not valid JSON: %s (line %d, column %d)", what,
             jerr.text, jerr.line, jerr.column);
        return NULL;
    }
    if (!json_is_object(root)) {
        fail(errbuf, errlen, "%s: the header is not a JSON object", what);
        json_decref(root);
        return NULL;
    }
    qpo_st_file *f = calloc(1, sizeof(*f));
    placed *p = calloc(json_object_size(root) + 1, sizeof(*p));
    if (!f || !p) {
        fail(errbuf, errlen, "%s: out of memory", what);
        goto fail;
    }
    f->data_size = data_size;
    const char *key;
    json_t *v;
    json_object_foreach(root, key, v) {
        if (strcmp(key, "__metadata__") == 0) {
            if (check_metadata(v, what, errbuf, errlen) != 0)
                goto fail;
            f->meta = json_incref(v);
            continue;
        }
        placed *e = &p[f->n];
        e->t.name = strdup(key);
        if (!e->t.name) {
            fail(errbuf, errlen, "%s: out of memory", what);
            goto fail;
        }
        f->n++;
        if (parse_entry(key, v, data_size, &e->t, &e->begin, what, errbuf, errlen) != 0)
            goto fail;
    }
    qsort(p, f->n, sizeof(*p), by_offset);
    if (check_tiling(p, f->n, data_size, what, errbuf, errlen) != 0)
        goto fail;
    f->tensors = calloc(f->n + 1, sizeof(*f->tensors));
    f->offsets = calloc(f->n + 1, sizeof(size_t));
    f->by_name = calloc(f->n + 1, sizeof(*f->by_name));
    if (!f->tensors || !f->offsets || !f->by_name) {
        fail(errbuf, errlen, "%s: out of memory", what);
        goto fail;
    }
    for (size_t i = 0; i < f->n; i++) {
        f->tensors[i] = p[i].t;
        f->offsets[i] = p[i].begin;
        f->by_name[i] = &f->tensors[i];
    }
    qsort(f->by_name, f->n, sizeof(*f->by_name), by_name);
    free(p); /* names now belong to f->tensors */
    json_decref(root);
    return f;
fail:
    if (p && f)
        free_placed(p, f->n);
    else
        free(p);
    if (f) {
        f->n = 0;
        qpo_st_close(f);
    }
    json_decref(root);
    return NULL;
}

/* The data section is kept 64-byte aligned so tensors can be used in place. */
static int attach_data(qpo_st_file *f, const char *what, char *errbuf, size_t errlen) {
    size_t alloc = (f->data_size + 63) / 64 * 64;
    f->data = aligned_alloc(64, alloc ? alloc : 64);
    if (!f->data) {
        fail(errbuf, errlen, "%s: out of memory for %zu bytes of tensor data", what, f->data_size);
        return -1;
    }
    for (size_t i = 0; i < f->n; i++)
        f->tensors[i].data = f->data + f->offsets[i];
    return 0;
}

/* Header-length checks shared by the file and buffer readers. */
static int check_header_len(uint64_t hlen, uint64_t total, const char *what, char *errbuf,
                            size_t errlen) {
    if (hlen > QPO_ST_MAX_HEADER) {
        fail(errbuf, errlen, "%s: header length %llu exceeds the %u-byte limit (corrupt file?)",
             what, (unsigned long long)hlen, QPO_ST_MAX_HEADER);
        return -1;
    }
    if (hlen > total - 8) {
        fail(errbuf, errlen,
             "%s: header length %llu runs past the end of the file (%llu bytes; truncated?)", what,
             (unsigned long long)hlen, (unsigned long long)total);
        return -1;
    }
    if (hlen < 2) {
        fail(errbuf, errlen, "%s: header length %llu is too short for a JSON object", what,
             (unsigned long long)hlen);
        return -1;
    }
    return 0;
}

qpo_st_file *qpo_st_open_buffer(const void *buf, size_t len, const char *what, char *errbuf,
                                size_t errlen) {
    const unsigned char *b = buf;
    if (len < 8) {
        fail(errbuf, errlen, "%s: %zu bytes, too short for a safetensors file (truncated?)", what,
             len);
        return NULL;
    }
    uint64_t hlen = le64(b);
    if (check_header_len(hlen, len, what, errbuf, errlen) != 0)
        return NULL;
    size_t data_size = len - 8 - (size_t)hlen;
    qpo_st_file *f = parse_header(b + 8, (size_t)hlen, data_size, what, errbuf, errlen);
    if (!f)
        return NULL;
    if (attach_data(f, what, errbuf, errlen) != 0) {
        qpo_st_close(f);
        return NULL;
    }
    if (data_size)
        memcpy(f->data, b + 8 + hlen, data_size);
    return f;
}

static int read_exact(int fd, void *dst, size_t n, const char *path, char *errbuf, size_t errlen) {
    unsigned char *p = dst;
    while (n > 0) {
        ssize_t r = read(fd, p, n);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            fail(errbuf, errlen, "%s: read failed: %s", path, strerror(errno));
            return -1;
        }
        if (r == 0) {
            fail(errbuf, errlen, "%s: the file shrank while being read", path);
            return -1;
        }
        p += r;
        n -= (size_t)r;
    }
    return 0;
}

static qpo_st_file *open_fd(int fd, const char *path, char *errbuf, size_t errlen) {
    struct stat st;
    if (fstat(fd, &st) != 0) {
        fail(errbuf, errlen, "%s: %s", path, strerror(errno));
        return NULL;
    }
    if (!S_ISREG(st.st_mode)) {
        fail(errbuf, errlen, "%s: not a regular file", path);
        return NULL;
    }
    uint64_t total = (uint64_t)st.st_size;
    unsigned char lenbuf[8];
    if (total < 8) {
        fail(errbuf, errlen, "%s: %llu bytes, too short for a safetensors file (truncated?)", path,
             (unsigned long long)total);
        return NULL;
    }
    if (read_exact(fd, lenbuf, 8, path, errbuf, errlen) != 0)
        return NULL;
    uint64_t hlen = le64(lenbuf);
    if (check_header_len(hlen, total, path, errbuf, errlen) != 0)
        return NULL;
    unsigned char *hdr = malloc((size_t)hlen);
    if (!hdr) {
        fail(errbuf, errlen, "%s: out of memory for a %llu-byte header", path,
             (unsigned long long)hlen);
        return NULL;
    }
    qpo_st_file *f = NULL;
    if (read_exact(fd, hdr, (size_t)hlen, path, errbuf, errlen) == 0)
        f = parse_header(hdr, (size_t)hlen, (size_t)(total - 8 - hlen), path, errbuf, errlen);
    free(hdr);
    if (!f)
        return NULL;
    if (attach_data(f, path, errbuf, errlen) != 0 ||
        read_exact(fd, f->data, f->data_size, path, errbuf, errlen) != 0) {
        qpo_st_close(f);
        return NULL;
    }
    return f;
}

qpo_st_file *qpo_st_open(const char *path, char *errbuf, size_t errlen) {
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        fail(errbuf, errlen, "%s: cannot open: %s", path, strerror(errno));
        return NULL;
    }
    qpo_st_file *f = open_fd(fd, path, errbuf, errlen);
    close(fd);
    return f;
}

size_t qpo_st_count(const qpo_st_file *f) {
    return f->n;
}

const qpo_st_tensor *qpo_st_at(const qpo_st_file *f, size_t i) {
    return i < f->n ? &f->tensors[i] : NULL;
}

const qpo_st_tensor *qpo_st_find(const qpo_st_file *f, const char *name) {
    qpo_st_tensor key = {.name = name};
    const qpo_st_tensor *kp = &key;
    const qpo_st_tensor **hit = bsearch(&kp, f->by_name, f->n, sizeof(*f->by_name), by_name);
    return hit ? *hit : NULL;
}

const char *qpo_st_metadata(const qpo_st_file *f, const char *key) {
    return f->meta ? json_string_value(json_object_get(f->meta, key)) : NULL;
}

int qpo_st_read_f32(const qpo_st_tensor *t, float *dst, size_t n, char *errbuf, size_t errlen) {
    size_t numel = qpo_st_numel(t);
    if (numel != n) {
        fail(errbuf, errlen, "tensor '%s': %zu elements, expected %zu", t->name, numel, n);
        return -1;
    }
    const unsigned char *src = t->data;
    for (size_t i = 0; i < n; i++) {
        switch (t->dtype) {
        case QPO_ST_F32:
            memcpy(&dst[i], src + 4 * i, 4);
            break;
        case QPO_ST_F16:
        case QPO_ST_BF16: {
            uint16_t h;
            memcpy(&h, src + 2 * i, 2);
            dst[i] = t->dtype == QPO_ST_F16 ? qpo_st_f16_to_f32(h) : qpo_st_bf16_to_f32(h);
            break;
        }
        case QPO_ST_I32: {
            int32_t v;
            memcpy(&v, src + 4 * i, 4);
            dst[i] = (float)v;
            break;
        }
        case QPO_ST_I64: {
            int64_t v;
            memcpy(&v, src + 8 * i, 8);
            dst[i] = (float)v;
            break;
        }
        case QPO_ST_U8:
            dst[i] = (float)src[i];
            break;
        }
    }
    return 0;
}
