#include "tokens.h"

#include <stdlib.h>

#define WORD_PIECE_MAX 12

static int is_word_byte(unsigned char c) {
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c >= 0x80;
}

static int is_continuation(unsigned char c) {
    return (c & 0xC0) == 0x80;
}

/* Length of the token starting at text[i]. */
static size_t token_len(const unsigned char *t, size_t n, size_t i) {
    if (t[i] == '\n' || t[i] == '\r')
        return 1;
    size_t j = i;
    while (j < n && (t[j] == ' ' || t[j] == '\t'))
        j++;
    if (j >= n || t[j] == '\n' || t[j] == '\r')
        return j - i;
    if (!is_word_byte(t[j]))
        return j + 1 - i;
    size_t start = j;
    while (j < n && is_word_byte(t[j]) && (j - start < WORD_PIECE_MAX || is_continuation(t[j])))
        j++;
    return j - i;
}

static size_t cps(const unsigned char *t, size_t n) {
    size_t c = 0;
    for (size_t i = 0; i < n; i++)
        c += !is_continuation(t[i]);
    return c;
}

size_t sim_codepoints(const char *text, size_t n) {
    return cps((const unsigned char *)text, n);
}

int sim_tokenize(const char *text, size_t n, uint32_t byte_base, uint32_t cp_base,
                 sim_tokens *toks) {
    const unsigned char *t = (const unsigned char *)text;
    uint32_t cp = cp_base;
    for (size_t i = 0; i < n;) {
        size_t len = token_len(t, n, i);
        if (toks->n == toks->cap) {
            size_t cap = toks->cap ? toks->cap * 2 : 64;
            sim_token *v = realloc(toks->v, cap * sizeof(*v));
            if (!v)
                return -1;
            toks->v = v;
            toks->cap = cap;
        }
        toks->v[toks->n++] = (sim_token){(uint32_t)(byte_base + i), (uint32_t)len, cp};
        cp += (uint32_t)cps(t + i, len);
        i += len;
    }
    return 0;
}

size_t sim_count_tokens(const char *text, size_t n) {
    const unsigned char *t = (const unsigned char *)text;
    size_t c = 0;
    for (size_t i = 0; i < n; i += token_len(t, n, i))
        c++;
    return c;
}

void sim_tokens_free(sim_tokens *toks) {
    free(toks->v);
    toks->v = NULL;
    toks->n = toks->cap = 0;
}
