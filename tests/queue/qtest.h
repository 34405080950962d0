#ifndef QPO_QTEST_H
#define QPO_QTEST_H

/* Helpers shared by the queue tests: SQL one-liners that fail the test on error, worker
 * processes of the real qpo binary, and waiting for a database condition (bounded, so a hung
 * queue fails the test instead of hanging it; never used to assert on speed). */

#include <libpq-fe.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

PGconn *qt_connect(const char *conninfo);
void qt_exec(PGconn *conn, const char *sql);
/* The first column of the first row as an integer; fails the test on error or no row. */
int64_t qt_int(PGconn *conn, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* The first column of the first row as text (static buffer). */
const char *qt_text(PGconn *conn, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Polls `SELECT (cond)` every 20 ms until true; false after timeout_s (times the harness's
 * qpo_test_time_scale(), as every deadline here). */
bool qt_wait_for(PGconn *conn, double timeout_s, const char *cond_fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Starts `qpo worker --db conninfo ARGS...` (NULL-terminated); its stderr goes to
 * $QPO_TEST_LOG or /dev/null. */
pid_t qt_worker(const char *conninfo, const char *arg, ...) __attribute__((sentinel));
/* Waits for pid; returns its exit code, or 128 + signal. Gives up (SIGKILL) after timeout_s. */
int qt_wait_exit(pid_t pid, double timeout_s);

#endif
