#ifndef QPO_LOG_H
#define QPO_LOG_H

/* Timestamped lines on stderr for long-running processes (workers, scheduler, sim-llm).
 * QPO_LOG=debug|info|warn|error picks the threshold (default info). Thread-safe. */

enum qpo_log_level { QPO_LOG_DEBUG, QPO_LOG_INFO, QPO_LOG_WARN, QPO_LOG_ERROR };

void qpo_log(enum qpo_log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define qpo_debug(...) qpo_log(QPO_LOG_DEBUG, __VA_ARGS__)
#define qpo_info(...) qpo_log(QPO_LOG_INFO, __VA_ARGS__)
#define qpo_warn(...) qpo_log(QPO_LOG_WARN, __VA_ARGS__)
#define qpo_error(...) qpo_log(QPO_LOG_ERROR, __VA_ARGS__)

#endif
