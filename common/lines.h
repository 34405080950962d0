#ifndef QPO_LINES_H
#define QPO_LINES_H

/* Reading text a line at a time with a cap on the line's length: getline() grows its buffer
 * without bound, so /dev/zero or a binary file given by mistake ate all memory before any
 * error could be said. Every line-oriented reader of user files uses this instead. */

#include <stdio.h>
#include <sys/types.h>

/* No line of the data qpo reads comes near this (the longest, an IMDB review, is ~14 KB). */
#define QPO_MAX_LINE_BYTES (1024 * 1024)

#define QPO_LINE_EOF (-1)      /* end of file or a read error (ferror tells) */
#define QPO_LINE_TOO_LONG (-2) /* longer than max bytes: the rest of the line is left unread */

/* Like getline(): *line (grown as needed, NUL-terminated) gets the next line with its '\n';
 * returns its length, QPO_LINE_EOF or QPO_LINE_TOO_LONG. */
ssize_t qpo_getline_max(char **line, size_t *cap, FILE *f, size_t max);

#endif
