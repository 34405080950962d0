#ifndef QPO_SCHED_DRY_RUN_H
#define QPO_SCHED_DRY_RUN_H

/* `qpo submit --dry-run`: the plan the scheduler would write for a config, built by the same
 * planner (qpo_plan_build over the runs qpo_config_each_run lists), counted per kind, with
 * the LLM calls and tokens its jobs would spend, estimated from the config and the task
 * sizes in the database. Reads only: the session is made read-only first. */

#include <jansson.h>
#include <libpq-fe.h>

#include "error.h"

/* The number of source prompts a d0 build reads for task from these collections; -1 when it
 * cannot be known here (no prompts folder). Given by the caller: the prompt files belong to
 * the reward workers. */
typedef long (*qpo_dry_prompt_count)(const char *task, const json_t *collections, void *arg);

/* The plan's summary: {"runs", "jobs": {"total", "by_kind"}, "llm_calls": {"total",
 * "by_kind"}, "prompt_tokens", "completion_tokens_max", "tasks": {...}, "notes": [...]}.
 * NULL with err set when the database cannot be read. */
json_t *qpo_dry_run(PGconn *conn, const json_t *resolved, qpo_dry_prompt_count count, void *arg,
                    qpo_err *err);

#endif
