#include "error.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

void qpo_err_clear(qpo_err *err) {
    memset(err, 0, sizeof(*err));
}

bool qpo_err_is_set(const qpo_err *err) {
    return err->code != 0;
}

int qpo_err_set(qpo_err *err, int code, const char *fmt, ...) {
    if (!err)
        return -1;
    qpo_err_clear(err);
    err->code = code ? code : QPO_EXIT_RUNTIME;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
    va_end(ap);
    return -1;
}

void qpo_err_detail(qpo_err *err, const char *fmt, ...) {
    if (!err)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->detail, sizeof(err->detail), fmt, ap);
    va_end(ap);
}

void qpo_err_hint(qpo_err *err, const char *fmt, ...) {
    if (!err)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->hint, sizeof(err->hint), fmt, ap);
    va_end(ap);
}

void qpo_err_prefix(qpo_err *err, const char *fmt, ...) {
    if (!err)
        return;
    char prefix[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(prefix, sizeof(prefix), fmt, ap);
    va_end(ap);
    char old[sizeof(err->msg)];
    memcpy(old, err->msg, sizeof(old));
    snprintf(err->msg, sizeof(err->msg), "%s: %s", prefix, old);
}

int qpo_err_print(const qpo_err *err) {
    fprintf(stderr, "qpo: error: %s\n", err->msg[0] ? err->msg : "unknown error");
    if (err->detail[0])
        fprintf(stderr, "  detail: %s\n", err->detail);
    if (err->hint[0])
        fprintf(stderr, "  hint: %s\n", err->hint);
    if (err->sqlstate[0])
        fprintf(stderr, "  sqlstate: %s\n", err->sqlstate);
    return err->code ? err->code : QPO_EXIT_RUNTIME;
}

void qpo_err_format(const qpo_err *err, char *out, size_t size) {
    snprintf(out, size, "%s%s%s%s%s%s%s", err->msg[0] ? err->msg : "unknown error",
             err->detail[0] ? "\nDETAIL: " : "", err->detail, err->hint[0] ? "\nHINT: " : "",
             err->hint, err->sqlstate[0] ? "\nSQLSTATE: " : "", err->sqlstate);
}
