#ifndef QPO_LOG_H
#define QPO_LOG_H

/* Lines on stderr for long-running processes (workers, scheduler, sim-llm), one write per line
 * so threads never interleave. Text (`2026-11-30T06:00:00.000Z info: [job 7 run 2 attempt 1]
 * message`) or JSON lines (`{"ts":..., "level":..., "msg":..., "job_id":7, "run_id":2,
 * "attempt":1}`). The threshold is --log-level, else QPO_LOG=debug|info|warn|error, else info.
 *
 * A line about a job carries the job's id, run and attempt: a handler thread sets its job once
 * (qpo_log_set_job) and every line it writes carries them; a thread that speaks of someone
 * else's job uses qpo_log_job. */

#include <stdint.h>

#include "error.h"

enum qpo_log_level { QPO_LOG_DEBUG, QPO_LOG_INFO, QPO_LOG_WARN, QPO_LOG_ERROR };

/* --log-format text|json and --log-level debug|info|warn|error (NULL: unchanged). Called
 * before the process's threads start. QPO_EXIT_USAGE naming the flag on a bad value. */
int qpo_log_configure(const char *format, const char *level, qpo_err *err);

void qpo_log(enum qpo_log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* One line about a job that is not this thread's (run_id 0: the job has no run). */
void qpo_log_job(enum qpo_log_level level, int64_t job_id, int64_t run_id, int attempt,
                 const char *fmt, ...) __attribute__((format(printf, 5, 6)));

/* This thread's job, on every line it writes until cleared (job_id 0 clears). */
void qpo_log_set_job(int64_t job_id, int64_t run_id, int attempt);

#define qpo_debug(...) qpo_log(QPO_LOG_DEBUG, __VA_ARGS__)
#define qpo_info(...) qpo_log(QPO_LOG_INFO, __VA_ARGS__)
#define qpo_warn(...) qpo_log(QPO_LOG_WARN, __VA_ARGS__)
#define qpo_error(...) qpo_log(QPO_LOG_ERROR, __VA_ARGS__)

#endif
