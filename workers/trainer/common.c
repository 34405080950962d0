/* Text clean-up for prompts. */
#include <stdlib.h>
#include <string.h>

#include "trainer_internal.h"

/* Length of a valid UTF-8 sequence at s (at most n bytes), or 0 when it is not one. */
static size_t utf8_len(const unsigned char *s, size_t n) {
    unsigned char c = s[0];
    size_t len;
    unsigned cp;
    if (c < 0x80)
        return 1;
    if (c >= 0xc2 && c <= 0xdf)
        len = 2, cp = c & 0x1f;
    else if (c >= 0xe0 && c <= 0xef)
        len = 3, cp = c & 0x0f;
    else if (c >= 0xf0 && c <= 0xf4)
        len = 4, cp = c & 0x07;
    else
        return 0;
    if (len > n)
        return 0;
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xc0) != 0x80)
            return 0;
        cp = (cp << 6) | (s[i] & 0x3f);
    }
    /* Overlong forms, surrogates and code points past U+10FFFF. */
    if ((len == 3 && cp < 0x800) || (len == 4 && (cp < 0x10000 || cp > 0x10ffff)) ||
        (cp >= 0xd800 && cp <= 0xdfff))
        return 0;
    return len;
}

char *qpo_text_clean_utf8(const char *s, size_t len) {
    /* A sampled prompt may end inside a multi-byte character or hold byte 0; PostgreSQL text
     * refuses both. */
    char *out = malloc(len * 3 + 1);
    if (!out)
        abort();
    size_t o = 0;
    const unsigned char *u = (const unsigned char *)s;
    for (size_t i = 0; i < len;) {
        size_t k = u[i] ? utf8_len(u + i, len - i) : 1;
        if (!u[i]) {
            i++;
        } else if (k == 0) {
            memcpy(out + o, "\xef\xbf\xbd", 3);
            o += 3;
            i++;
        } else {
            memcpy(out + o, s + i, k);
            o += k;
            i += k;
        }
    }
    out[o] = '\0';
    return out;
}

/* Bytes of the whitespace character at s as Python's str.isspace() sees it (ASCII and the
 * Unicode spaces, in UTF-8), or 0. */
static size_t space_len(const unsigned char *s) {
    if (*s == ' ' || (*s >= '\t' && *s <= '\r') || (*s >= 0x1c && *s <= 0x1f))
        return 1;
    if (s[0] == 0xc2 && (s[1] == 0x85 || s[1] == 0xa0))
        return 2;
    if (s[0] == 0xe1 && s[1] == 0x9a && s[2] == 0x80) /* U+1680 */
        return 3;
    if (s[0] == 0xe2 && s[1] == 0x80 &&
        ((s[2] >= 0x80 && s[2] <= 0x8a) || s[2] == 0xa8 || s[2] == 0xa9 || s[2] == 0xaf))
        return 3;                                     /* U+2000..200A, U+2028, U+2029, U+202F */
    if (s[0] == 0xe2 && s[1] == 0x81 && s[2] == 0x9f) /* U+205F */
        return 3;
    if (s[0] == 0xe3 && s[1] == 0x80 && s[2] == 0x80) /* U+3000 */
        return 3;
    return 0;
}

void qpo_text_strip(char *s) {
    const unsigned char *u = (const unsigned char *)s;
    size_t start = 0, end = 0, i = 0;
    while (u[start] && space_len(u + start))
        start += space_len(u + start);
    for (i = start; u[i];) {
        size_t k = space_len(u + i);
        i += k ? k : 1;
        if (!k)
            end = i;
    }
    if (end < start)
        end = start;
    memmove(s, s + start, end - start);
    s[end - start] = '\0';
}
