#include "lines.h"

#include <stdlib.h>

static int grow(char **line, size_t *cap, size_t need) {
    if (need <= *cap)
        return 0;
    size_t n = *cap ? *cap : 256;
    while (n < need)
        n *= 2;
    char *p = realloc(*line, n);
    if (!p)
        return -1;
    *line = p;
    *cap = n;
    return 0;
}

/* A line of exactly max bytes is accepted with its newline: the cap is on the text. */
ssize_t qpo_getline_max(char **line, size_t *cap, FILE *f, size_t max) {
    size_t len = 0;
    int c;
    while ((c = getc_unlocked(f)) != EOF) {
        if (c != '\n' && len >= max)
            return QPO_LINE_TOO_LONG;
        if (grow(line, cap, len + 2) < 0)
            return QPO_LINE_EOF;
        (*line)[len++] = (char)c;
        if (c == '\n')
            break;
    }
    if (len == 0)
        return QPO_LINE_EOF;
    (*line)[len] = '\0';
    return (ssize_t)len;
}
