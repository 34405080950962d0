#ifndef QPO_TOK_INTERNAL_H
#define QPO_TOK_INTERNAL_H

/* Shared between the tokenizer's files: the loaded vocabulary, its two hash tables and the
 * pre-tokenizer. Not part of the API. */

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tokenizer.h"

typedef struct tok_bytes {
    char *s; /* raw bytes of the token (not the byte-to-unicode form) */
    uint32_t len;
} tok_bytes;

/* bytes -> id, open addressing; slots hold id + 1 (0 = empty). */
typedef struct vocab_map {
    uint32_t *slots;
    uint32_t mask;
} vocab_map;

/* (left id, right id) -> (merge rank, merged id), open addressing. */
typedef struct pair_entry {
    uint64_t key; /* left << 32 | right; UINT64_MAX = empty */
    uint32_t rank;
    int32_t merged;
} pair_entry;

typedef struct pair_map {
    pair_entry *slots;
    uint64_t mask;
} pair_map;

struct qpo_tokenizer {
    bool bytes_only;
    int32_t vocab_size;
    int32_t eos;
    tok_bytes *tokens;    /* id -> bytes */
    int32_t byte_id[256]; /* a single byte's token */
    /* 1 when BPE of the token's own bytes yields the token: a pre-token equal to such a
     * token's bytes is encoded by one hash lookup. */
    uint8_t *whole;
    vocab_map vocab;
    pair_map pairs;
    pcre2_code *re;
    /* A subset view (subset.c): encoding goes through base, then to_sub maps each base id to
     * this vocabulary (unk = vocab_size - 2 for ids outside it); to_base maps back. */
    qpo_tokenizer *base;
    int32_t *to_sub, *to_base;
};

/* Maps ids[from..n) of base ids to the subset's in place. */
void tok_subset_map(const qpo_tokenizer *tok, int32_t *ids, size_t from, size_t n);

uint64_t tok_hash(const char *s, size_t len);
int32_t vocab_lookup(const qpo_tokenizer *tok, const char *s, size_t len); /* -1 if absent */
const pair_entry *pair_lookup(const pair_map *m, int32_t left, int32_t right);

/* Loads the files of a BPE directory into tok (vocab, tokens, pairs, eos). */
int tok_load_files(qpo_tokenizer *tok, const char *dir, char *errbuf, size_t errlen);

/* BPE of one pre-token, appending ids. -1 on allocation failure. */
int tok_bpe_word(const qpo_tokenizer *tok, const unsigned char *w, size_t len, int32_t **ids,
                 size_t *n, size_t *cap);
int tok_push(int32_t **ids, size_t *n, size_t *cap, int32_t id);

/* Compiles the GPT-2 pre-tokenizer regex (JIT where available). */
pcre2_code *tok_compile_regex(char *errbuf, size_t errlen);
/* Length of the valid UTF-8 sequence at s (1..4), or 0 if the bytes there are not one. */
size_t tok_utf8_char(const unsigned char *s, size_t len);

void tok_fail(char *errbuf, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#endif
