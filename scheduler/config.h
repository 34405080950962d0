#ifndef QPO_SCHED_CONFIG_H
#define QPO_SCHED_CONFIG_H

/* Experiment configs (config/README.md): one validation shared by `qpo submit` and the
 * scheduler (for experiments inserted by SQL), so both paths accept and refuse the same
 * files with the same messages. */

#include <jansson.h>

#include "error.h"

/* Validates a user's config and returns it resolved: every default filled in, every list
 * explicit, so planners and workers read one shape and never re-derive a default. On error
 * returns NULL with err->code QPO_EXIT_USAGE and err->msg naming the field, e.g.
 * `tasks[1]: unknown task "tweet"; known: ag_news, ...`. The caller owns the result. */
json_t *qpo_config_resolve(const json_t *config, qpo_err *err);

/* Defaults of the limits (config/README.md, "Limits"): the file's size is a flag of the
 * commands that read one (--max-config-bytes), the others are keys of the config's "limits". */
#define QPO_CONFIG_MAX_BYTES (1024LL * 1024)
#define QPO_LIMIT_SEEDS 1000
#define QPO_LIMIT_RUNS 1000
#define QPO_LIMIT_BASELINES 100

/* Reads and parses a JSON file (not yet validated); errors name file:line:column. A file
 * longer than QPO_CONFIG_MAX_BYTES (or max_bytes) is refused before it is parsed. */
json_t *qpo_config_load_file(const char *path, qpo_err *err);
json_t *qpo_config_load_file_max(const char *path, long long max_bytes, qpo_err *err);

/* The task names the config accepts, comma-separated (for messages). */
const char *qpo_config_known_tasks(void);

/* True when the task scores numeric answers (GSM8K, SVAMP) rather than labels. */
int qpo_config_task_is_math(const char *task);

/* The runs of a resolved config, in the one order every planner uses (task, setting, target,
 * seed): fn for each, stopping at its first non-zero return, which is returned. */
typedef int (*qpo_config_run_fn)(const char *task, const char *setting, const char *target,
                                 long long seed, void *arg);
int qpo_config_each_run(const json_t *resolved, qpo_config_run_fn fn, void *arg);

#endif
