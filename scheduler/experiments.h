#ifndef QPO_SCHED_EXPERIMENTS_H
#define QPO_SCHED_EXPERIMENTS_H

/* Experiments in (submit), planned into runs and jobs, their states kept up to date. */

#include <jansson.h>
#include <libpq-fe.h>
#include <stdint.h>

#include "error.h"

/* Validates and inserts an experiment (state submitted); *id gets its id. An invalid config
 * writes nothing and returns -1 with err naming the field. */
int qpo_experiment_submit(PGconn *conn, const char *name, const json_t *config, int64_t *id,
                          qpo_err *err);

/* Plans the oldest submitted experiment no other scheduler is planning, in one transaction:
 * an invalid config marks it invalid (nothing else written); a valid one gets its targets,
 * runs and jobs and becomes planned. *planned_id: the experiment handled, 0 when none was
 * waiting. fault_after_jobs: see qpo_plan_enqueue. */
int qpo_experiment_plan_next(PGconn *conn, size_t fault_after_jobs, int64_t *planned_id,
                             qpo_err *err);

/* Brings every active experiment's and run's state in line with its jobs. */
int qpo_experiments_refresh(PGconn *conn, qpo_err *err);

#endif
