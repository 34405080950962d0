/* Loading a GPT-2 BPE directory: encoder.json + vocab.bpe (OpenAI's names) or vocab.json +
 * merges.txt (Hugging Face's), same formats. Token strings are in GPT-2's byte-to-unicode
 * alphabet and are turned back into raw bytes here, so the rest works on bytes only. Every
 * problem names the file (and the line for merges). */
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "tok_internal.h"

/* GPT-2's bytes_to_unicode: printable Latin-1 bytes stand for themselves, the other 68 bytes
 * are given the code points 256.. in byte order. Inverted here: code point -> byte. */
static void unicode_to_byte(int16_t map[324]) {
    for (int i = 0; i < 324; i++)
        map[i] = -1;
    int extra = 0;
    for (int b = 0; b < 256; b++) {
        bool printable = (b >= '!' && b <= '~') || (b >= 0xa1 && b <= 0xac) || b >= 0xae;
        map[printable ? b : 256 + extra++] = (int16_t)b;
    }
}

/* Decodes a token string (UTF-8 of byte-alphabet code points) into raw bytes. */
static int token_bytes(const char *u, size_t ulen, const int16_t map[324], tok_bytes *out) {
    out->s = malloc(ulen + 1);
    if (!out->s)
        return -1;
    size_t n = 0;
    for (size_t i = 0; i < ulen;) {
        const unsigned char *p = (const unsigned char *)u + i;
        uint32_t cp;
        size_t k = tok_utf8_char(p, ulen - i);
        if (k == 1)
            cp = p[0];
        else if (k == 2)
            cp = (uint32_t)(p[0] & 0x1f) << 6 | (p[1] & 0x3f);
        else
            return -2;
        if (cp >= 324 || map[cp] < 0)
            return -2;
        out->s[n++] = (char)map[cp];
        i += k;
    }
    out->s[n] = '\0';
    out->len = (uint32_t)n;
    return 0;
}

static char *path_join(const char *dir, const char *name) {
    size_t len = strlen(dir) + strlen(name) + 2;
    char *p = malloc(len);
    if (p)
        snprintf(p, len, "%s/%s", dir, name);
    return p;
}

static int vocab_insert(qpo_tokenizer *tok, int32_t id) {
    vocab_map *m = &tok->vocab;
    const tok_bytes *t = &tok->tokens[id];
    for (uint64_t i = tok_hash(t->s, t->len) & m->mask;; i = (i + 1) & m->mask) {
        if (m->slots[i] == 0) {
            m->slots[i] = (uint32_t)id + 1;
            return 0;
        }
        const tok_bytes *o = &tok->tokens[m->slots[i] - 1];
        if (o->len == t->len && memcmp(o->s, t->s, t->len) == 0)
            return -1; /* two ids for the same bytes */
    }
}

static uint64_t table_size(size_t n) {
    uint64_t size = 1024;
    while (size < 2 * (uint64_t)n)
        size *= 2;
    return size;
}

static int load_encoder(qpo_tokenizer *tok, const char *path, char *errbuf, size_t errlen) {
    json_error_t jerr;
    json_t *root = json_load_file(path, JSON_REJECT_DUPLICATES, &jerr);
    if (!root) {
        tok_fail(errbuf, errlen, "%s: %s (line %d)", path, jerr.text, jerr.line);
        return -1;
    }
    int rc = -1;
    size_t count = json_object_size(root);
    if (!json_is_object(root) || count < 256 || count > (1u << 24)) {
        tok_fail(errbuf, errlen,
                 "%s: not a GPT-2 encoder (a JSON object of 256 to 16M tokens to ids)", path);
        goto out;
    }
    tok->vocab_size = (int32_t)count;
    tok->tokens = calloc(count, sizeof(*tok->tokens));
    tok->vocab.slots = calloc(table_size(count), sizeof(uint32_t));
    tok->vocab.mask = (uint32_t)(table_size(count) - 1);
    if (!tok->tokens || !tok->vocab.slots) {
        tok_fail(errbuf, errlen, "%s: out of memory", path);
        goto out;
    }
    int16_t map[324];
    unicode_to_byte(map);
    const char *key;
    json_t *v;
    json_object_foreach(root, key, v) {
        json_int_t id = json_is_integer(v) ? json_integer_value(v) : -1;
        if (id < 0 || id >= (json_int_t)count || tok->tokens[id].s) {
            tok_fail(errbuf, errlen,
                     "%s: token \"%s\" has id %s, not a unique integer in 0..%zu (ids must be "
                     "dense)",
                     path, key, json_is_integer(v) ? "out of range or repeated" : "not integer",
                     count - 1);
            goto out;
        }
        if (token_bytes(key, strlen(key), map, &tok->tokens[id]) != 0) {
            tok_fail(errbuf, errlen,
                     "%s: token \"%s\" (id %lld) has a character outside GPT-2's byte alphabet",
                     path, key, (long long)id);
            goto out;
        }
        if (vocab_insert(tok, (int32_t)id) != 0) {
            tok_fail(errbuf, errlen, "%s: token \"%s\" (id %lld) repeats another token's bytes",
                     path, key, (long long)id);
            goto out;
        }
    }
    for (int b = 0; b < 256; b++) {
        char c = (char)b;
        tok->byte_id[b] = vocab_lookup(tok, &c, 1);
        if (tok->byte_id[b] < 0) {
            tok_fail(errbuf, errlen,
                     "%s: no token for byte 0x%02x (a byte-level BPE needs all 256)", path, b);
            goto out;
        }
    }
    tok->eos = vocab_lookup(tok, "<|endoftext|>", 13);
    if (tok->eos < 0) {
        tok_fail(errbuf, errlen, "%s: no \"<|endoftext|>\" token", path);
        goto out;
    }
    rc = 0;
out:
    json_decref(root);
    return rc;
}

static char *read_text(const char *path, size_t *len, char *errbuf, size_t errlen) {
    FILE *fp = fopen(path, "rb");
    if (!fp) {
        tok_fail(errbuf, errlen, "%s: cannot open: %s", path, strerror(errno));
        return NULL;
    }
    char *buf = NULL;
    size_t cap = 0, n = 0;
    for (;;) {
        if (cap - n < 65536) {
            cap = cap ? 2 * cap : 1 << 20;
            char *p = realloc(buf, cap + 1);
            if (!p) {
                free(buf);
                fclose(fp);
                tok_fail(errbuf, errlen, "%s: out of memory", path);
                return NULL;
            }
            buf = p;
        }
        size_t r = fread(buf + n, 1, cap - n, fp);
        n += r;
        if (r == 0)
            break;
    }
    int bad = ferror(fp);
    fclose(fp);
    if (bad) {
        free(buf);
        tok_fail(errbuf, errlen, "%s: read error", path);
        return NULL;
    }
    buf[n] = '\0';
    *len = n;
    return buf;
}

static int pair_insert(pair_map *m, int32_t left, int32_t right, uint32_t rank, int32_t merged) {
    uint64_t key = (uint64_t)(uint32_t)left << 32 | (uint32_t)right;
    uint64_t i = (key * 0x9e3779b97f4a7c15u >> 20) & m->mask;
    for (; m->slots[i].key != UINT64_MAX; i = (i + 1) & m->mask)
        if (m->slots[i].key == key)
            return 1; /* a repeated merge: the first (lowest rank) wins, as in GPT-2 */
    m->slots[i] = (pair_entry){key, rank, merged};
    return 0;
}

/* One merge line "A B": both halves and their concatenation must be tokens. */
static int parse_merge(qpo_tokenizer *tok, char *line, uint32_t rank, const int16_t map[324],
                       const char *path, size_t lineno, char *errbuf, size_t errlen) {
    char *sp = strchr(line, ' ');
    if (!sp || sp == line || !sp[1] || strchr(sp + 1, ' ')) {
        tok_fail(errbuf, errlen,
                 "%s line %zu: expected two tokens separated by one space, got \"%s\"", path,
                 lineno, line);
        return -1;
    }
    *sp = '\0';
    tok_bytes a = {0}, b = {0};
    int rc = -1;
    if (token_bytes(line, strlen(line), map, &a) != 0 ||
        token_bytes(sp + 1, strlen(sp + 1), map, &b) != 0) {
        tok_fail(errbuf, errlen, "%s line %zu: a character outside GPT-2's byte alphabet", path,
                 lineno);
        goto out;
    }
    int32_t left = vocab_lookup(tok, a.s, a.len), right = vocab_lookup(tok, b.s, b.len);
    char joined[1024];
    int32_t merged = -1;
    if (a.len + b.len <= sizeof(joined)) {
        memcpy(joined, a.s, a.len);
        memcpy(joined + a.len, b.s, b.len);
        merged = vocab_lookup(tok, joined, a.len + b.len);
    }
    if (left < 0 || right < 0 || merged < 0) {
        tok_fail(errbuf, errlen, "%s line %zu: merge \"%s %s\": %s is not in the vocabulary", path,
                 lineno, line, sp + 1,
                 left < 0    ? "the first token"
                 : right < 0 ? "the second token"
                             : "the merged token");
        goto out;
    }
    pair_insert(&tok->pairs, left, right, rank, merged);
    rc = 0;
out:
    free(a.s);
    free(b.s);
    *sp = ' ';
    return rc;
}

static int load_merges(qpo_tokenizer *tok, const char *path, char *errbuf, size_t errlen) {
    size_t len;
    char *text = read_text(path, &len, errbuf, errlen);
    if (!text)
        return -1;
    if (strlen(text) != len) {
        tok_fail(errbuf, errlen, "%s: contains a NUL byte (not a merges file)", path);
        free(text);
        return -1;
    }
    size_t lines = 1;
    for (size_t i = 0; i < len; i++)
        lines += text[i] == '\n';
    uint64_t size = table_size(lines);
    tok->pairs.slots = malloc(size * sizeof(pair_entry));
    tok->pairs.mask = size - 1;
    if (!tok->pairs.slots) {
        free(text);
        tok_fail(errbuf, errlen, "%s: out of memory", path);
        return -1;
    }
    memset(tok->pairs.slots, 0xff, size * sizeof(pair_entry));
    int16_t map[324];
    unicode_to_byte(map);
    uint32_t rank = 0;
    size_t lineno = 0;
    int rc = 0;
    for (char *line = text, *next; rc == 0 && line && *line; line = next) {
        next = strchr(line, '\n');
        if (next)
            *next++ = '\0';
        lineno++;
        size_t l = strlen(line);
        if (l > 0 && line[l - 1] == '\r')
            line[--l] = '\0';
        if (l == 0 || (lineno == 1 && strncmp(line, "#version", 8) == 0))
            continue;
        rc = parse_merge(tok, line, rank++, map, path, lineno, errbuf, errlen);
    }
    free(text);
    return rc;
}

static bool exists(const char *path) {
    struct stat st;
    return stat(path, &st) == 0;
}

int tok_load_files(qpo_tokenizer *tok, const char *dir, char *errbuf, size_t errlen) {
    char *enc = path_join(dir, "encoder.json"), *merges = NULL;
    if (enc && exists(enc)) {
        merges = path_join(dir, "vocab.bpe");
    } else if (enc) {
        free(enc);
        enc = path_join(dir, "vocab.json");
        if (enc && exists(enc)) {
            merges = path_join(dir, "merges.txt");
        } else {
            tok_fail(errbuf, errlen,
                     "%s: neither encoder.json + vocab.bpe nor vocab.json + merges.txt found "
                     "there (a GPT-2 BPE directory holds one pair)",
                     dir);
            free(enc);
            return -1;
        }
    }
    int rc = -1;
    if (!enc || !merges)
        tok_fail(errbuf, errlen, "out of memory");
    else if (load_encoder(tok, enc, errbuf, errlen) == 0)
        rc = load_merges(tok, merges, errbuf, errlen);
    free(enc);
    free(merges);
    return rc;
}
