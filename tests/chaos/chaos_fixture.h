#ifndef QPO_TEST_CHAOS_FIXTURE_H
#define QPO_TEST_CHAOS_FIXTURE_H

/* The chaos tests' experiment and its processes. A fresh database holds TweetEval emotion and
 * SVAMP (imported with `qpo data import` from ../shared/data), a small hand-made D_0 for each,
 * and one experiment submitted with `qpo submit`: zero-shot, a tiny byte-level policy trained
 * on the CPU, a few queries per batch, against `qpo sim-llm`. The scheduler, one cpu and one
 * gpu worker run as children of the test, each log in DIR/logs/, so a test can SIGKILL and
 * restart any of them; every restart gets a new worker name, as a replacement host would. */

#include <libpq-fe.h>
#include <stdbool.h>
#include <sys/types.h>

#include "pgtest.h"

typedef enum { CHAOS_SCHEDULER, CHAOS_CPU, CHAOS_GPU, CHAOS_ROLES } chaos_role;

typedef struct chaos_size {
    int seeds, loops, epochs_first, epochs_next, batches, batch_size, test_size;
} chaos_size;

typedef struct chaos_exp {
    char conninfo[512];
    PGconn *conn; /* the test's own; chaos_* queries reconnect it after a server restart */
    char dir[256];
    pid_t pid[CHAOS_ROLES];
    int generation[CHAOS_ROLES];
    const char *worker_flags; /* extra flags for both workers (space-separated), may be NULL */
} chaos_exp;

extern const char *const chaos_role_name[CHAOS_ROLES];

/* A fresh database with the data, D_0 and the experiment (targets at base_url/v1, the target's
 * extra JSON members, e.g. "\"retry_budget\": 2", may be NULL). Jobs get 100 attempts: the
 * kills spend attempts, and a job that ran out would end the run instead of proving it. */
void chaos_setup(chaos_exp *e, qpo_pgtest *pg, const char *data, const char *base_url,
                 const chaos_size *size, const char *target_extra);
void chaos_teardown(chaos_exp *e);

/* Starts a role's process (its next generation). */
void chaos_start(chaos_exp *e, chaos_role r);
/* Sends sig and waits for the process; its exit code (128 + signal when killed), so a process
 * that had died on its own shows. SIGTERM lets it finish cleanly (0). */
int chaos_stop(chaos_exp *e, chaos_role r, int sig);
/* SIGTERM to every role; fails the test unless each exits 0 (none died along the way). */
void chaos_stop_all(chaos_exp *e);

/* The experiment's state once it left submitted/planned/running, polling every 0.2 s (the
 * deadline is against hangs, not a timing assertion: it fails the test). Malloc'd. */
char *chaos_wait_finished(chaos_exp *e, int deadline_s);
/* True when the experiment has finished (done, failed, cancelled). */
bool chaos_finished(chaos_exp *e);

/* Queries on e->conn, reconnecting once if the server went away in between. */
char *chaos_str(chaos_exp *e, const char *sql); /* malloc'd; "NULL" for SQL NULL */
long long chaos_ll(chaos_exp *e, const char *sql);
void chaos_exec(chaos_exp *e, const char *sql);

/* What two runs of the experiment must agree on, keyed by (task, seed), never by ids: */
char *chaos_results_text(chaos_exp *e);     /* qpo.results */
char *chaos_rewards_text(chaos_exp *e);     /* qpo.rewards' deterministic columns */
char *chaos_checkpoints_text(chaos_exp *e); /* final checkpoints' SHA-256, re-hashed on disk */
char *chaos_jobs_text(chaos_exp *e);        /* jobs per kind and state */

/* Runs `qpo ARGS... --db CONNINFO` to completion; its exit code. */
int chaos_qpo(chaos_exp *e, const char *const args[]);

/* `qpo sim-llm --data DATA --listen LISTEN FLAGS...` (flags space-separated, may be NULL); waits
 * for the base address it prints when ready. */
typedef struct chaos_sim {
    pid_t pid;
    char url[128];
    char log[64]; /* its stderr */
} chaos_sim;
void chaos_sim_start(chaos_sim *s, const char *data, const char *listen, const char *flags);
/* Stops it (SIGTERM) and returns the completion requests it received, from its log. */
long long chaos_sim_stop(chaos_sim *s);

#endif
