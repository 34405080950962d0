#include "log.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static int threshold(void) {
    static int cached = -1;
    if (cached < 0) {
        const char *v = getenv("QPO_LOG");
        cached = QPO_LOG_INFO;
        if (v && !strcmp(v, "debug"))
            cached = QPO_LOG_DEBUG;
        else if (v && !strcmp(v, "warn"))
            cached = QPO_LOG_WARN;
        else if (v && !strcmp(v, "error"))
            cached = QPO_LOG_ERROR;
    }
    return cached;
}

void qpo_log(enum qpo_log_level level, const char *fmt, ...) {
    if ((int)level < threshold())
        return;
    static const char *names[] = {"debug", "info", "warn", "error"};
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct tm tm;
    gmtime_r(&ts.tv_sec, &tm);
    char line[2048];
    int n = snprintf(line, sizeof(line), "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ %s: ",
                     tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min,
                     tm.tm_sec, ts.tv_nsec / 1000000, names[level]);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line + n, sizeof(line) - (size_t)n - 1, fmt, ap);
    va_end(ap);
    /* One fputs per line keeps lines from concurrent threads whole. */
    strcat(line, "\n");
    fputs(line, stderr);
}
