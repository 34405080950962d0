#ifndef QPO_SCHED_PLAN_H
#define QPO_SCHED_PLAN_H

/* The plan of a run (docs/data-model.md, "Flow of one run") as a DAG of job specs, built
 * from the resolved config alone, then written to the queue in one transaction. */

#include <jansson.h>
#include <libpq-fe.h>
#include <stddef.h>
#include <stdint.h>

#include "error.h"

typedef struct qpo_plan_run {
    int64_t id;
    const char *task, *setting, *target;
    int seed;
} qpo_plan_run;

typedef struct qpo_plan_job {
    char kind[24];
    char key[200];   /* idempotency key: unique per (run, kind, loop, shard) */
    json_t *payload; /* owned */
    int64_t run_id;
    int priority;
    size_t *parents; /* indexes of earlier jobs in the plan (owned) */
    size_t nparents;
    int level; /* 1 + the deepest parent's level: jobs of one level are enqueued together */
} qpo_plan_job;

typedef struct qpo_plan {
    qpo_plan_job *jobs;
    size_t n, cap;
} qpo_plan;

void qpo_plan_free(qpo_plan *plan);

/* Appends the jobs of an experiment's runs: D_0 first (an import-check per run, or one d0
 * build per task, setting and target shared by its seeds), then per loop t = 1..T
 * train -> {evaluate-generate -> score x shards (qpo, and baseline:policy_mode), generate ->
 * reward x batches -> merge} -> train(t+1), no collection in the last loop, and baseline
 * scoring once per run after D_0 (the configured baselines, baseline:best_single, and the
 * oracle when "oracle" is true). */
int qpo_plan_build(int64_t experiment_id, const json_t *resolved, const qpo_plan_run *runs,
                   size_t nruns, qpo_plan *plan, qpo_err *err);

/* Writes the plan to the queue (inside the caller's transaction), level by level so each
 * job's parents have ids. Jobs whose keys already exist are kept, not doubled. *created
 * counts new jobs. fault_after_jobs > 0: SIGKILLs this process once that many jobs are
 * written, before the commit (tests of a crash mid-plan). */
int qpo_plan_enqueue(PGconn *conn, const qpo_plan *plan, size_t fault_after_jobs, size_t *created,
                     qpo_err *err);

#endif
