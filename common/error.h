#ifndef QPO_ERROR_H
#define QPO_ERROR_H

#include <stdbool.h>
#include <stddef.h>

/* One error shape carried up the call stack and printed the same way by every command, after
 * PostgreSQL's ereport: a short message, the detail (file, line, field, value) and a hint. */

enum qpo_exit {
    QPO_EXIT_OK = 0,
    QPO_EXIT_RUNTIME = 1, /* something failed while running: database, network, I/O */
    QPO_EXIT_USAGE = 2,   /* the user's input is wrong: arguments, config, data rows */
};

typedef struct qpo_err {
    int code; /* enum qpo_exit; 0 while no error is set */
    char msg[512];
    char detail[1024];
    char hint[512];
    char sqlstate[6]; /* PostgreSQL's SQLSTATE when the server raised it, else "" */
} qpo_err;

void qpo_err_clear(qpo_err *err);
bool qpo_err_is_set(const qpo_err *err);

/* Sets code and message, clearing detail, hint and SQLSTATE. Returns -1 so callers can `return
 * qpo_err_set(...)`. */
int qpo_err_set(qpo_err *err, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
void qpo_err_detail(qpo_err *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void qpo_err_hint(qpo_err *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Prefixes the message with context ("loading config: ..."), keeping detail and hint. */
void qpo_err_prefix(qpo_err *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Prints "qpo: error: MSG" plus DETAIL/HINT lines to stderr; returns err->code (1 if unset). */
int qpo_err_print(const qpo_err *err);

/* The whole error as one text in PostgreSQL's own shape, for a column (a job's last_error):
 * "MSG\nDETAIL: ...\nHINT: ...\nSQLSTATE: ..." with absent parts left out. */
void qpo_err_format(const qpo_err *err, char *out, size_t size);

#endif
