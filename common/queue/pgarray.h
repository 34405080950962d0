#ifndef QPO_PGARRAY_H
#define QPO_PGARRAY_H

/* Builds PostgreSQL array literals ("{1,2,NULL}", "{\"a\",\"b\"}") and JSON array texts for
 * passing many rows in one parameter: one statement per batch instead of one per row. */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct qpo_strbuf {
    char *s;
    size_t len, cap;
} qpo_strbuf;

void qpo_sb_init(qpo_strbuf *b);
void qpo_sb_free(qpo_strbuf *b);
void qpo_sb_append(qpo_strbuf *b, const char *text, size_t n);
void qpo_sb_puts(qpo_strbuf *b, const char *text);
void qpo_sb_printf(qpo_strbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Array elements: call open, then one add per element, then close. */
void qpo_arr_open(qpo_strbuf *b);
void qpo_arr_int(qpo_strbuf *b, int64_t v);
void qpo_arr_text(qpo_strbuf *b, const char *v); /* NULL: SQL NULL */
void qpo_arr_bool(qpo_strbuf *b, bool v);
void qpo_arr_null(qpo_strbuf *b);
void qpo_arr_close(qpo_strbuf *b);

#endif
