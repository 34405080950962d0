#ifndef QPO_TEST_SIM_FIXTURE_H
#define QPO_TEST_SIM_FIXTURE_H

/* Fixtures for the reward jobs' end-to-end tests: a `qpo sim-llm` process on loopback, and a
 * migrated database holding one TweetEval run whose collect batch 0 has N generated prompts. */

#include <libpq-fe.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "pgtest.h"

typedef struct sim_proc {
    pid_t pid;
    char base_url[128];
} sim_proc;

/* Starts `qpo sim-llm --listen 127.0.0.1:0 --db CONNINFO FLAGS...` (flags space-separated) and
 * waits for the address it prints when ready. Fails the test if it cannot. */
void sim_start(sim_proc *sim, const char *conninfo, const char *flags);
void sim_stop(sim_proc *sim);

/* Kills every simulator and worker this program started and has not waited for (call before
 * stopping the cluster, so a failed test cannot hang it). */
void fixture_kill_children(void);

/* Starts `qpo worker --class cpu --kinds reward,score,d0 --db CONNINFO --name NAME FLAGS...`. */
pid_t worker_start(const char *conninfo, const char *name, const char *flags);
/* Waits for a process; returns its exit status (or 128 + signal). */
int proc_wait(pid_t pid);

/* A fresh database with: targets 'sim' (base_url, config_json), a zero-shot or few-shot
 * tweet_emotion run 1 (experiment 1), the TweetEval items (test file as 'collect', train file
 * as 'train'), n_pairs generations of loop 1 batch 0 with prompts cycling through a fixed
 * list, two D_0 records (raw -5 and 25) and a queued 'reward' job. Returns a connection;
 * *conninfo receives a malloc'd copy of its conninfo and *job_id the job's id. */
PGconn *reward_db_setup(qpo_pgtest *pg, const char *data_dir, const char *setting, int n_pairs,
                        char **conninfo, int64_t *job_id);

/* Points target 'sim' at the simulator. */
void reward_db_set_target(PGconn *conn, const char *base_url, const char *config_json);

/* sim_start, then target 'sim' pointed at it with config_json: the simulator reads the task
 * items when it starts, so tests call this after adding theirs. */
void sim_serve(sim_proc *sim, PGconn *conn, const char *conninfo, const char *flags,
               const char *config_json);

/* ../shared/data, or the calling test is skipped (cmocka's skip() from inside the test body). */
const char *shared_data_or_skip(void);

/* Runs SQL, failing the test on error; scalar returns the first cell (malloc'd; "NULL"). */
void db_exec_ok(PGconn *conn, const char *sql);
char *db_scalar(PGconn *conn, const char *sql);
long long db_count(PGconn *conn, const char *sql);

#endif
