/* Byte-pair merging of one pre-token. Symbols form a linked list over the word's bytes and
 * candidate pairs sit in a min-heap ordered by (merge rank, position); a popped pair is
 * applied only if both symbols are still what they were when it was pushed. Lowest rank
 * first and leftmost first on equal ranks reproduces GPT-2's "merge every occurrence of the
 * best bigram, left to right" loop in O(n log n), so very long words stay fast. */
#include <stdlib.h>
#include <string.h>

#include "tok_internal.h"

uint64_t tok_hash(const char *s, size_t len) {
    uint64_t h = 0xcbf29ce484222325u; /* FNV-1a: words are short, so simple is fast */
    for (size_t i = 0; i < len; i++) {
        h ^= (unsigned char)s[i];
        h *= 0x100000001b3u;
    }
    return h ^ (h >> 29);
}

int32_t vocab_lookup(const qpo_tokenizer *tok, const char *s, size_t len) {
    const vocab_map *m = &tok->vocab;
    for (uint64_t i = tok_hash(s, len) & m->mask;; i = (i + 1) & m->mask) {
        uint32_t slot = m->slots[i];
        if (slot == 0)
            return -1;
        const tok_bytes *t = &tok->tokens[slot - 1];
        if (t->len == len && memcmp(t->s, s, len) == 0)
            return (int32_t)(slot - 1);
    }
}

static uint64_t pair_slot(uint64_t key, uint64_t mask) {
    return (key * 0x9e3779b97f4a7c15u >> 20) & mask;
}

const pair_entry *pair_lookup(const pair_map *m, int32_t left, int32_t right) {
    uint64_t key = (uint64_t)(uint32_t)left << 32 | (uint32_t)right;
    for (uint64_t i = pair_slot(key, m->mask);; i = (i + 1) & m->mask) {
        const pair_entry *e = &m->slots[i];
        if (e->key == key)
            return e;
        if (e->key == UINT64_MAX)
            return NULL;
    }
}

int tok_push(int32_t **ids, size_t *n, size_t *cap, int32_t id) {
    if (*n == *cap) {
        size_t c = *cap ? 2 * *cap : 64;
        int32_t *p = realloc(*ids, c * sizeof(**ids));
        if (!p)
            return -1;
        *ids = p;
        *cap = c;
    }
    (*ids)[(*n)++] = id;
    return 0;
}

typedef struct sym {
    int32_t id; /* -1 once merged into its left neighbour */
    int32_t prev, next;
} sym;

typedef struct cand {
    uint32_t rank;
    int32_t pos;
    int32_t left, right; /* the ids when pushed, to detect stale entries */
} cand;

static bool cand_less(const cand *a, const cand *b) {
    return a->rank != b->rank ? a->rank < b->rank : a->pos < b->pos;
}

static void heap_push(cand *h, size_t *n, cand c) {
    size_t i = (*n)++;
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (!cand_less(&c, &h[p]))
            break;
        h[i] = h[p];
        i = p;
    }
    h[i] = c;
}

static cand heap_pop(cand *h, size_t *n) {
    cand top = h[0], last = h[--*n];
    size_t i = 0;
    for (;;) {
        size_t l = 2 * i + 1, best = i;
        const cand *b = &last;
        if (l < *n && cand_less(&h[l], b)) {
            best = l;
            b = &h[l];
        }
        if (l + 1 < *n && cand_less(&h[l + 1], b))
            best = l + 1;
        if (best == i)
            break;
        h[i] = h[best];
        i = best;
    }
    if (*n > 0)
        h[i] = last;
    return top;
}

static void push_pair(const qpo_tokenizer *tok, const sym *s, int32_t pos, cand *h, size_t *hn) {
    if (pos < 0 || s[pos].next < 0)
        return;
    const pair_entry *e = pair_lookup(&tok->pairs, s[pos].id, s[s[pos].next].id);
    if (e)
        heap_push(h, hn, (cand){e->rank, pos, s[pos].id, s[s[pos].next].id});
}

/* Merges in place. h needs 3 * n slots: n - 1 initial pairs plus at most two per merge. */
static void merge_all(const qpo_tokenizer *tok, sym *s, size_t n, cand *h) {
    size_t hn = 0;
    for (size_t i = 0; i + 1 < n; i++)
        push_pair(tok, s, (int32_t)i, h, &hn);
    while (hn > 0) {
        cand c = heap_pop(h, &hn);
        int32_t nx = s[c.pos].next;
        if (s[c.pos].id != c.left || nx < 0 || s[nx].id != c.right)
            continue;
        s[c.pos].id = pair_lookup(&tok->pairs, c.left, c.right)->merged;
        s[c.pos].next = s[nx].next;
        if (s[nx].next >= 0)
            s[s[nx].next].prev = c.pos;
        s[nx].id = -1;
        push_pair(tok, s, s[c.pos].prev, h, &hn);
        push_pair(tok, s, c.pos, h, &hn);
    }
}

static int bpe_merge(const qpo_tokenizer *tok, const unsigned char *w, size_t len, int32_t **ids,
                     size_t *n, size_t *cap) {
    enum { SMALL = 64 };
    sym small_s[SMALL];
    cand small_h[3 * SMALL];
    sym *s = small_s;
    cand *h = small_h;
    if (len > SMALL) {
        s = malloc(len * sizeof(*s));
        h = malloc(3 * len * sizeof(*h));
        if (!s || !h) {
            free(s);
            free(h);
            return -1;
        }
    }
    for (size_t i = 0; i < len; i++)
        s[i] = (sym){tok->byte_id[w[i]], (int32_t)i - 1, i + 1 < len ? (int32_t)i + 1 : -1};
    merge_all(tok, s, len, h);
    int rc = 0;
    for (int32_t i = 0; rc == 0 && i >= 0 && len > 0; i = s[i].next)
        rc = tok_push(ids, n, cap, s[i].id);
    if (s != small_s) {
        free(s);
        free(h);
    }
    return rc;
}

int tok_bpe_word(const qpo_tokenizer *tok, const unsigned char *w, size_t len, int32_t **ids,
                 size_t *n, size_t *cap) {
    if (tok->whole) {
        int32_t id = vocab_lookup(tok, (const char *)w, len);
        if (id >= 0 && tok->whole[id])
            return tok_push(ids, n, cap, id);
    }
    return bpe_merge(tok, w, len, ids, n, cap);
}
