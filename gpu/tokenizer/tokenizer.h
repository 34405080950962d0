#ifndef QPO_TOKENIZER_H
#define QPO_TOKENIZER_H

/* GPT-2 byte-level BPE (and a byte-level tokenizer for tiny models). Depends on nothing of
 * qpo's; errors are written to a caller's buffer. Thread-safe after loading (encode/decode
 * take a const tokenizer). */

#include <stddef.h>
#include <stdint.h>

typedef struct qpo_tokenizer qpo_tokenizer;

/* Loads DIR/encoder.json + DIR/vocab.bpe, or DIR/vocab.json + DIR/merges.txt (Hugging Face).
 * NULL on error, with a message naming the file and line in errbuf. */
qpo_tokenizer *qpo_tokenizer_load_bpe(const char *dir, char *errbuf, size_t errlen);

/* 256 byte ids plus eos = 256 (vocab 257), for tiny demo and test models. */
qpo_tokenizer *qpo_tokenizer_new_bytes(void);

/* A smaller vocabulary over base: ids[0..n) (distinct base ids, eos not among them) become
 * 0..n-1, then unk = n (every other base id; it decodes to no text) and eos = n + 1. For a
 * policy trained from scratch on a known set of texts, whose output layer then spans only the
 * tokens it can learn. Takes ownership of base, also on failure. NULL with errbuf set. */
qpo_tokenizer *qpo_tokenizer_new_subset(qpo_tokenizer *base, const int32_t *ids, size_t n,
                                        char *errbuf, size_t errlen);
/* Renumbers ids[0..n) of the subset's base into the subset (unk for ids outside it): for ids
 * encoded with the base before the subset was known. No-op for any other tokenizer. */
void qpo_tokenizer_subset_map(const qpo_tokenizer *tok, int32_t *ids, size_t n);
/* The base ids of a subset (NULL and *n = 0 for any other tokenizer). */
const int32_t *qpo_tokenizer_subset_ids(const qpo_tokenizer *tok, size_t *n);

void qpo_tokenizer_free(qpo_tokenizer *tok);

int32_t qpo_tokenizer_eos(const qpo_tokenizer *tok);        /* 50256 for GPT-2 */
int32_t qpo_tokenizer_vocab_size(const qpo_tokenizer *tok); /* 50257 for GPT-2 */

/* Encodes len bytes of text (any bytes; see the README for invalid UTF-8). "<|endoftext|>" in
 * text is ordinary text. Appends ids to *ids (realloc'd; *n updated, *cap its capacity).
 * Returns 0, or -1 on allocation failure. */
int qpo_tokenizer_encode(const qpo_tokenizer *tok, const char *text, size_t len, int32_t **ids,
                         size_t *n, size_t *cap);

/* Decodes ids to bytes (NUL-terminated, malloc'd; *out_len without the NUL). eos decodes to
 * "<|endoftext|>". NULL with errbuf set on an id outside the vocabulary. */
char *qpo_tokenizer_decode(const qpo_tokenizer *tok, const int32_t *ids, size_t n, size_t *out_len,
                           char *errbuf, size_t errlen);

#endif
