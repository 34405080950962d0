/* Loading, encoding and decoding. Encoding splits the text into maximal runs of valid UTF-8
 * and of invalid bytes: valid runs go through the GPT-2 pre-tokenizer regex, each invalid run
 * is one pre-token of its own; every pre-token is then byte-pair merged. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tok_internal.h"

void tok_fail(char *errbuf, size_t errlen, const char *fmt, ...) {
    if (!errbuf || errlen == 0)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(errbuf, errlen, fmt, ap);
    va_end(ap);
}

void qpo_tokenizer_free(qpo_tokenizer *tok) {
    if (!tok)
        return;
    if (tok->tokens)
        for (int32_t i = 0; i < tok->vocab_size; i++)
            free(tok->tokens[i].s);
    free(tok->tokens);
    free(tok->whole);
    free(tok->vocab.slots);
    free(tok->pairs.slots);
    pcre2_code_free(tok->re);
    qpo_tokenizer_free(tok->base);
    free(tok->to_sub);
    free(tok->to_base);
    free(tok);
}

qpo_tokenizer *qpo_tokenizer_new_bytes(void) {
    qpo_tokenizer *tok = calloc(1, sizeof(*tok));
    if (!tok)
        return NULL;
    tok->bytes_only = true;
    tok->vocab_size = 257;
    tok->eos = 256;
    return tok;
}

/* Marks the tokens that BPE rebuilds from their own bytes, so a pre-token equal to one of
 * them needs a single lookup instead of a merge loop (the common case for words). */
static int mark_whole_tokens(qpo_tokenizer *tok) {
    tok->whole = calloc((size_t)tok->vocab_size, 1);
    if (!tok->whole)
        return -1;
    int32_t *ids = NULL;
    size_t cap = 0;
    for (int32_t id = 0; id < tok->vocab_size; id++) {
        size_t n = 0;
        const tok_bytes *t = &tok->tokens[id];
        if (tok_bpe_word(tok, (const unsigned char *)t->s, t->len, &ids, &n, &cap) != 0) {
            free(ids);
            return -1;
        }
        tok->whole[id] = n == 1 && ids[0] == id;
    }
    free(ids);
    return 0;
}

qpo_tokenizer *qpo_tokenizer_load_bpe(const char *dir, char *errbuf, size_t errlen) {
    qpo_tokenizer *tok = calloc(1, sizeof(*tok));
    if (!tok) {
        tok_fail(errbuf, errlen, "out of memory");
        return NULL;
    }
    if (tok_load_files(tok, dir, errbuf, errlen) != 0 ||
        !(tok->re = tok_compile_regex(errbuf, errlen))) {
        qpo_tokenizer_free(tok);
        return NULL;
    }
    if (mark_whole_tokens(tok) != 0) {
        tok_fail(errbuf, errlen, "out of memory");
        qpo_tokenizer_free(tok);
        return NULL;
    }
    return tok;
}

int32_t qpo_tokenizer_eos(const qpo_tokenizer *tok) {
    return tok->eos;
}

int32_t qpo_tokenizer_vocab_size(const qpo_tokenizer *tok) {
    return tok->vocab_size;
}

/* Pre-tokenizes one run of valid UTF-8. Every character matches some alternative of the
 * pattern, so matches are contiguous; a gap is still encoded, never dropped. */
static int encode_valid(const qpo_tokenizer *tok, pcre2_match_data *md, const unsigned char *s,
                        size_t len, int32_t **ids, size_t *n, size_t *cap) {
    size_t at = 0;
    while (at < len) {
        int rc = pcre2_match(tok->re, s, len, at, PCRE2_NO_UTF_CHECK, md, NULL);
        /* A JIT resource error (never seen, even on 10 MB runs) retries in the interpreter;
         * should that fail too, the rest of the run becomes one pre-token: never lost. */
        if (rc < 0 && rc != PCRE2_ERROR_NOMATCH)
            rc = pcre2_match(tok->re, s, len, at, PCRE2_NO_UTF_CHECK | PCRE2_NO_JIT, md, NULL);
        PCRE2_SIZE *ov = pcre2_get_ovector_pointer(md);
        size_t start = rc > 0 ? ov[0] : len, end = rc > 0 ? ov[1] : len;
        if (start > at && tok_bpe_word(tok, s + at, start - at, ids, n, cap) != 0)
            return -1;
        if (end > start && tok_bpe_word(tok, s + start, end - start, ids, n, cap) != 0)
            return -1;
        if (end <= at) /* cannot happen with this pattern; guards against a stall */
            end = at + 1;
        at = end;
    }
    return 0;
}

static int encode_bytes(const char *text, size_t len, int32_t **ids, size_t *n, size_t *cap) {
    for (size_t i = 0; i < len; i++)
        if (tok_push(ids, n, cap, (unsigned char)text[i]) != 0)
            return -1;
    return 0;
}

int qpo_tokenizer_encode(const qpo_tokenizer *tok, const char *text, size_t len, int32_t **ids,
                         size_t *n, size_t *cap) {
    if (tok->base) {
        size_t from = *n;
        if (qpo_tokenizer_encode(tok->base, text, len, ids, n, cap))
            return -1;
        tok_subset_map(tok, *ids, from, *n);
        return 0;
    }
    if (tok->bytes_only)
        return encode_bytes(text, len, ids, n, cap);
    pcre2_match_data *md = pcre2_match_data_create(1, NULL);
    if (!md)
        return -1;
    const unsigned char *s = (const unsigned char *)text;
    int rc = 0;
    size_t at = 0;
    while (rc == 0 && at < len) {
        size_t valid = at;
        for (size_t k; valid < len && (k = tok_utf8_char(s + valid, len - valid)) > 0;)
            valid += k;
        if (valid > at)
            rc = encode_valid(tok, md, s + at, valid - at, ids, n, cap);
        size_t bad = valid;
        while (bad < len && tok_utf8_char(s + bad, len - bad) == 0)
            bad++;
        if (rc == 0 && bad > valid)
            rc = tok_bpe_word(tok, s + valid, bad - valid, ids, n, cap);
        at = bad;
    }
    pcre2_match_data_free(md);
    return rc;
}

static const char eos_text[] = "<|endoftext|>";

/* The bytes of one id; the byte tokenizer's bytes are written into *scratch. */
static int token_text(const qpo_tokenizer *tok, int32_t id, char *scratch, const char **s,
                      size_t *len) {
    if (id < 0 || id >= tok->vocab_size)
        return -1;
    if (id == tok->eos) {
        *s = eos_text;
        *len = sizeof(eos_text) - 1;
    } else if (tok->base) {
        *s = ""; /* unk has no text */
        *len = 0;
        if (tok->to_base[id] >= 0)
            return token_text(tok->base, tok->to_base[id], scratch, s, len);
    } else if (tok->bytes_only) {
        *scratch = (char)(unsigned char)id;
        *s = scratch;
        *len = 1;
    } else {
        *s = tok->tokens[id].s;
        *len = tok->tokens[id].len;
    }
    return 0;
}

char *qpo_tokenizer_decode(const qpo_tokenizer *tok, const int32_t *ids, size_t n, size_t *out_len,
                           char *errbuf, size_t errlen) {
    size_t total = 0;
    for (size_t i = 0; i < n; i++) {
        const char *s;
        char scratch;
        size_t len;
        if (token_text(tok, ids[i], &scratch, &s, &len) != 0) {
            tok_fail(errbuf, errlen, "id %d (position %zu) is outside the vocabulary (0..%d)",
                     (int)ids[i], i, (int)tok->vocab_size - 1);
            return NULL;
        }
        total += len;
    }
    char *out = malloc(total + 1);
    if (!out) {
        tok_fail(errbuf, errlen, "out of memory decoding %zu ids", n);
        return NULL;
    }
    size_t at = 0;
    for (size_t i = 0; i < n; i++) {
        const char *s = NULL;
        char scratch;
        size_t len = 0;
        token_text(tok, ids[i], &scratch, &s, &len);
        memcpy(out + at, s, len);
        at += len;
    }
    out[at] = '\0';
    if (out_len)
        *out_len = at;
    return out;
}
