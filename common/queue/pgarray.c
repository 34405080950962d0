#include "pgarray.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void qpo_sb_init(qpo_strbuf *b) {
    b->s = NULL;
    b->len = b->cap = 0;
    qpo_sb_append(b, "", 0);
}

void qpo_sb_free(qpo_strbuf *b) {
    free(b->s);
    b->s = NULL;
    b->len = b->cap = 0;
}

void qpo_sb_append(qpo_strbuf *b, const char *text, size_t n) {
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 64;
        while (cap < b->len + n + 1)
            cap *= 2;
        char *s = realloc(b->s, cap);
        if (!s)
            abort(); /* out of memory: nothing sensible to carry on with */
        b->s = s;
        b->cap = cap;
    }
    memcpy(b->s + b->len, text, n);
    b->len += n;
    b->s[b->len] = '\0';
}

void qpo_sb_puts(qpo_strbuf *b, const char *text) {
    qpo_sb_append(b, text, strlen(text));
}

void qpo_sb_printf(qpo_strbuf *b, const char *fmt, ...) {
    char small[256];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(small, sizeof(small), fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    if ((size_t)n < sizeof(small)) {
        qpo_sb_append(b, small, (size_t)n);
        return;
    }
    char *big = malloc((size_t)n + 1);
    if (!big)
        abort();
    va_start(ap, fmt);
    vsnprintf(big, (size_t)n + 1, fmt, ap);
    va_end(ap);
    qpo_sb_append(b, big, (size_t)n);
    free(big);
}

static void separator(qpo_strbuf *b) {
    if (b->len && b->s[b->len - 1] != '{')
        qpo_sb_append(b, ",", 1);
}

void qpo_arr_open(qpo_strbuf *b) {
    qpo_sb_append(b, "{", 1);
}

void qpo_arr_close(qpo_strbuf *b) {
    qpo_sb_append(b, "}", 1);
}

void qpo_arr_int(qpo_strbuf *b, int64_t v) {
    separator(b);
    qpo_sb_printf(b, "%lld", (long long)v);
}

void qpo_arr_bool(qpo_strbuf *b, bool v) {
    separator(b);
    qpo_sb_append(b, v ? "t" : "f", 1);
}

void qpo_arr_null(qpo_strbuf *b) {
    separator(b);
    qpo_sb_append(b, "NULL", 4);
}

/* Quoted, with backslash and double quote escaped: the array input syntax's rules. */
void qpo_arr_text(qpo_strbuf *b, const char *v) {
    if (!v) {
        qpo_arr_null(b);
        return;
    }
    separator(b);
    qpo_sb_append(b, "\"", 1);
    for (const char *p = v; *p; p++) {
        if (*p == '"' || *p == '\\')
            qpo_sb_append(b, "\\", 1);
        qpo_sb_append(b, p, 1);
    }
    qpo_sb_append(b, "\"", 1);
}
