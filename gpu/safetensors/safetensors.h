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
/* Headers longer than this are refused before any allocation (the safetensors crate's limit). */
#define QPO_ST_MAX_HEADER (100u * 1024u * 1024u)

typedef struct qpo_st_tensor {
    const char *name;
    qpo_st_dtype dtype;
    int ndim;
    int64_t shape[QPO_ST_MAX_DIMS];
    /* Points into the file's data (little-endian). The data section is 64-byte aligned in
     * memory, so a tensor is aligned to its dtype size whenever its offset is (always true for
     * files this library writes). */
    const void *data;
    size_t nbytes;
} qpo_st_tensor;

typedef struct qpo_st_file qpo_st_file;

/* Opens and validates a file: header length within the file, header is a JSON object, every
 * entry has a known dtype, a shape whose element count times dtype size equals its byte range,
 * offsets inside the data section, no two ranges overlap, and the ranges cover the data
 * section exactly. NULL on any violation with a message in errbuf naming path and tensor.
 * The whole file is read into memory; the file may change afterwards without harm. */
qpo_st_file *qpo_st_open(const char *path, char *errbuf, size_t errlen);
/* The same validation on a buffer already in memory (copied; `what` names it in errors). */
qpo_st_file *qpo_st_open_buffer(const void *buf, size_t len, const char *what, char *errbuf,
                                size_t errlen);
void qpo_st_close(qpo_st_file *f);

/* Tensors are numbered in the order of their data offsets. */
size_t qpo_st_count(const qpo_st_file *f);
const qpo_st_tensor *qpo_st_at(const qpo_st_file *f, size_t i);
const qpo_st_tensor *qpo_st_find(const qpo_st_file *f, const char *name); /* NULL if absent */
/* The value of a __metadata__ key (a string), or NULL. */
const char *qpo_st_metadata(const qpo_st_file *f, const char *key);

/* "F32", "BF16", ... and the size of one element in bytes. */
const char *qpo_st_dtype_name(qpo_st_dtype dtype);
size_t qpo_st_dtype_size(qpo_st_dtype dtype);
/* The product of the shape (1 for a scalar). */
size_t qpo_st_numel(const qpo_st_tensor *t);

/* Copies a tensor to fp32, converting from f32/f16/bf16 (i32/i64/u8 also accepted). Fails (-1,
 * errbuf) when the element count differs from n. */
int qpo_st_read_f32(const qpo_st_tensor *t, float *dst, size_t n, char *errbuf, size_t errlen);

/* Scalar conversions used by qpo_st_read_f32 (exact: every fp16/bf16 value is an fp32 value). */
float qpo_st_f16_to_f32(uint16_t h);
float qpo_st_bf16_to_f32(uint16_t b);

/* Writing: add tensors, then write to a temporary file beside path, fsync, rename to path,
 * fsync the directory: a crash leaves the old file or the new one. qpo_st_writer_add copies
 * the data; qpo_st_writer_add_ref only keeps the pointer, which must stay valid until the
 * write (for large models). Adding returns -1 on a bad name (empty, duplicate, "__metadata__"),
 * ndim or shape; that first error is kept and also makes the write fail with its message.
 * The data section is ordered by dtype size (largest first) so every tensor is aligned. */
typedef struct qpo_st_writer qpo_st_writer;
qpo_st_writer *qpo_st_writer_new(void);
int qpo_st_writer_add(qpo_st_writer *w, const char *name, qpo_st_dtype dtype, int ndim,
                      const int64_t *shape, const void *data);
int qpo_st_writer_add_ref(qpo_st_writer *w, const char *name, qpo_st_dtype dtype, int ndim,
                          const int64_t *shape, const void *data);
int qpo_st_writer_metadata(qpo_st_writer *w, const char *key, const char *value);
int qpo_st_writer_write(qpo_st_writer *w, const char *path, char *errbuf, size_t errlen);
void qpo_st_writer_free(qpo_st_writer *w);

#endif
