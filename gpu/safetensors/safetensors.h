#ifndef QPO_SAFETENSORS_H
#define QPO_SAFETENSORS_H

/* The safetensors container (8-byte little-endian header length, JSON header, raw data), read
 * with full validation and written atomically. Depends on nothing of qpo's (jansson only). */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef enum qpo_st_dtype {
    QPO_ST_F32,
    QPO_ST_F16,
    QPO_ST_BF16,
    QPO_ST_I32,
    QPO_ST_I64,
    QPO_ST_U8,
} qpo_st_dtype;

#define QPO_ST_MAX_DIMS 8

typedef struct qpo_st_tensor {
    const char *name;
    qpo_st_dtype dtype;
    int ndim;
    int64_t shape[QPO_ST_MAX_DIMS];
    const void *data; /* points into the file's data (little-endian) */
    size_t nbytes;
} qpo_st_tensor;

typedef struct qpo_st_file qpo_st_file;

/* Opens and validates a file: header length within the file, header is a JSON object, every
 * entry has a known dtype, a shape whose element count times dtype size equals its byte range,
 * offsets inside the data section, no two ranges overlap, and the ranges cover the data
 * section exactly. NULL on any violation with a message in errbuf naming path and tensor. */
qpo_st_file *qpo_st_open(const char *path, char *errbuf, size_t errlen);
void qpo_st_close(qpo_st_file *f);

size_t qpo_st_count(const qpo_st_file *f);
const qpo_st_tensor *qpo_st_at(const qpo_st_file *f, size_t i);
const qpo_st_tensor *qpo_st_find(const qpo_st_file *f, const char *name); /* NULL if absent */
/* The value of a __metadata__ key (a string), or NULL. */
const char *qpo_st_metadata(const qpo_st_file *f, const char *key);

/* Copies a tensor to fp32, converting from f32/f16/bf16 (i32/i64 also accepted). Fails (-1,
 * errbuf) when the element count differs from n. */
int qpo_st_read_f32(const qpo_st_tensor *t, float *dst, size_t n, char *errbuf, size_t errlen);

/* Writing: add tensors (data copied or referenced until write), then write to path.tmp,
 * fsync, rename to path, fsync the directory: a crash leaves the old file or the new one. */
typedef struct qpo_st_writer qpo_st_writer;
qpo_st_writer *qpo_st_writer_new(void);
int qpo_st_writer_add(qpo_st_writer *w, const char *name, qpo_st_dtype dtype, int ndim,
                      const int64_t *shape, const void *data);
int qpo_st_writer_metadata(qpo_st_writer *w, const char *key, const char *value);
int qpo_st_writer_write(qpo_st_writer *w, const char *path, char *errbuf, size_t errlen);
void qpo_st_writer_free(qpo_st_writer *w);

#endif
