#include "log.h"

#include <jansson.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef struct job_ctx {
    int64_t job_id, run_id;
    int attempt;
} job_ctx;

static const char *level_names[] = {"debug", "info", "warn", "error"};
static int configured_level = -1; /* -1: QPO_LOG, read once */
static bool json_lines;
static _Thread_local job_ctx thread_job;

static int level_of(const char *name) {
    for (int i = 0; i < 4; i++)
        if (name && !strcmp(name, level_names[i]))
            return i;
    return -1;
}

static int threshold(void) {
    if (configured_level < 0) {
        int env = level_of(getenv("QPO_LOG"));
        configured_level = env >= 0 ? env : QPO_LOG_INFO;
    }
    return configured_level;
}

int qpo_log_configure(const char *format, const char *level, qpo_err *err) {
    if (format && strcmp(format, "text") && strcmp(format, "json"))
        return qpo_err_set(err, QPO_EXIT_USAGE, "--log-format must be text or json, not '%s'",
                           format);
    if (level && level_of(level) < 0)
        return qpo_err_set(err, QPO_EXIT_USAGE,
                           "--log-level must be debug, info, warn or error, not '%s'", level);
    if (format)
        json_lines = !strcmp(format, "json");
    if (level)
        configured_level = level_of(level);
    return 0;
}

void qpo_log_set_job(int64_t job_id, int64_t run_id, int attempt) {
    thread_job = (job_ctx){job_id, job_id ? run_id : 0, job_id ? attempt : 0};
}

static void timestamp(char *out, size_t size) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct tm tm;
    gmtime_r(&ts.tv_sec, &tm);
    snprintf(out, size, "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ", tm.tm_year + 1900, tm.tm_mon + 1,
             tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, ts.tv_nsec / 1000000);
}

/* One fputs per line keeps lines from concurrent threads whole. */
static void write_json(enum qpo_log_level level, const job_ctx *job, const char *ts,
                       const char *msg) {
    json_t *o = json_pack("{ss ss ss}", "ts", ts, "level", level_names[level], "msg", msg);
    if (!o) /* msg is not UTF-8: keep the line, lose no field but the text */
        o = json_pack("{ss ss ss}", "ts", ts, "level", level_names[level], "msg",
                      "(message not valid UTF-8)");
    if (o && job->job_id) {
        json_object_set_new(o, "job_id", json_integer(job->job_id));
        json_object_set_new(o, "run_id", job->run_id ? json_integer(job->run_id) : json_null());
        json_object_set_new(o, "attempt", json_integer(job->attempt));
    }
    char *line = o ? json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
    json_decref(o);
    if (!line)
        return;
    size_t n = strlen(line);
    char *withnl = realloc(line, n + 2);
    if (withnl) {
        memcpy(withnl + n, "\n", 2);
        fputs(withnl, stderr);
    }
    free(withnl ? withnl : line);
}

static void write_text(enum qpo_log_level level, const job_ctx *job, const char *ts,
                       const char *msg) {
    char ctx[96] = "";
    if (job->job_id && job->run_id)
        snprintf(ctx, sizeof ctx, "[job %lld run %lld attempt %d] ", (long long)job->job_id,
                 (long long)job->run_id, job->attempt);
    else if (job->job_id)
        snprintf(ctx, sizeof ctx, "[job %lld attempt %d] ", (long long)job->job_id, job->attempt);
    char line[2300];
    snprintf(line, sizeof line, "%s %s: %s%s\n", ts, level_names[level], ctx, msg);
    fputs(line, stderr);
}

static void vlog(enum qpo_log_level level, const job_ctx *job, const char *fmt, va_list ap) {
    if ((int)level < threshold())
        return;
    char ts[40], msg[2048];
    timestamp(ts, sizeof ts);
    vsnprintf(msg, sizeof msg, fmt, ap);
    if (json_lines)
        write_json(level, job, ts, msg);
    else
        write_text(level, job, ts, msg);
}

void qpo_log(enum qpo_log_level level, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vlog(level, &thread_job, fmt, ap);
    va_end(ap);
}

void qpo_log_job(enum qpo_log_level level, int64_t job_id, int64_t run_id, int attempt,
                 const char *fmt, ...) {
    job_ctx job = {job_id, run_id, attempt};
    va_list ap;
    va_start(ap, fmt);
    vlog(level, &job, fmt, ap);
    va_end(ap);
}
