#ifndef QPO_PGTEST_H
#define QPO_PGTEST_H

/* A throwaway PostgreSQL cluster for integration tests (common/pg_cluster.h, the one `qpo demo`
 * uses too) in a temp dir under /tmp, torn down by qpo_pgtest_stop() or at exit, plus a
 * migrated template database each test clones. Failures abort the test program. */

#include <stdbool.h>
#include <sys/types.h>

typedef struct qpo_pgtest qpo_pgtest;

/* Starts a cluster; aborts the test program with a message if it cannot (a test that cannot
 * reach its database must fail loudly, not pass). */
qpo_pgtest *qpo_pgtest_start(void);

/* A new database with every migration applied, cloned from a migrated template so each test
 * gets a clean schema in milliseconds. Returns its conninfo (static storage per call: copy it
 * if you keep it across calls). */
const char *qpo_pgtest_new_db(qpo_pgtest *pg);

/* The conninfo of the cluster's `postgres` database (no migrations). */
const char *qpo_pgtest_admin_conninfo(qpo_pgtest *pg);

/* Restarts the server (pg_ctl restart -m fast): existing connections are dropped. */
void qpo_pgtest_restart(qpo_pgtest *pg);
/* Stops the server, immediate mode (simulates a crash); qpo_pgtest_start_again() brings it back. */
void qpo_pgtest_crash(qpo_pgtest *pg);
void qpo_pgtest_start_again(qpo_pgtest *pg);

void qpo_pgtest_stop(qpo_pgtest *pg);

/* Where ../shared/data is, or NULL when absent (tests then skip with a message). */
const char *qpo_test_shared_data(void);

/* The path of the built qpo binary (for tests that run it as a process). */
const char *qpo_test_binary(void);

/* Waits for a child process; its exit status, 128 + the signal that ended it, or -1. */
int qpo_test_wait_exit(pid_t pid);

/* The factor every time limit of the tests is multiplied by: QPO_TEST_TIME_SCALE from the
 * environment, else the build's (cmake -DQPO_TEST_TIME_SCALE, 1 unless configured; `./qpo.sh
 * test-valgrind` raises it). A bad value aborts the test program with a message. Deadlines
 * that guard against hangs go through it; timings a test asserts on (a client timeout that
 * must fire, a Retry-After) do not. */
double qpo_test_time_scale(void);

/* seconds * qpo_test_time_scale(). */
double qpo_test_seconds(double seconds);

/* For polling loops that guard against a hang: a deadline qpo_test_seconds(seconds) from now
 * on the monotonic clock, and whether that clock is still before it. A deadline, not a count
 * of naps, because each poll (a query, a scrape) costs time of its own under valgrind. */
double qpo_test_deadline(double seconds);
bool qpo_test_before(double deadline);

#endif
