#ifndef QPO_SCHED_TEST_UTIL_H
#define QPO_SCHED_TEST_UTIL_H

/* Helpers shared by the scheduler's tests: running the qpo binary, one-value queries. */

#include <libpq-fe.h>
#include <stdint.h>

typedef struct qpo_run_result {
    int exit_code; /* -1 when killed by a signal */
    int signal;    /* the signal that killed it, else 0 */
    char out[65536];
    char err[16384];
} qpo_run_result;

/* Runs build/qpo with argv (NULL-terminated, without "qpo") and --db conninfo appended when
 * conninfo is not NULL; env_kv ("K=V" or NULL) is added to its environment. */
void qpo_run(qpo_run_result *r, const char *conninfo, const char *env_kv, const char *const *argv);

/* Starts build/qpo in the background (stdout/stderr to /dev/null); returns its pid. */
int qpo_spawn(const char *conninfo, const char *env_kv, const char *const *argv);
/* Waits for a spawned process; fills exit_code/signal. */
void qpo_wait(int pid, qpo_run_result *r);

PGconn *test_connect(const char *conninfo);
/* Runs SQL and returns the first cell as an integer (asserts success). */
int64_t q_int(PGconn *conn, const char *sql);
/* The first cell as a malloc'd string (asserts success and one row). */
char *q_str(PGconn *conn, const char *sql);
void q_exec(PGconn *conn, const char *sql);

#endif
