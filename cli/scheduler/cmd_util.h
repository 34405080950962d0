#ifndef QPO_SCHED_CMD_UTIL_H
#define QPO_SCHED_CMD_UTIL_H

/* What every scheduler command does first: connect and check the schema. */

#include <jansson.h>
#include <libpq-fe.h>

#include "error.h"

/* Connects with --db (or the environment) and checks that the schema is current. */
PGconn *qpo_sched_connect(const char *db_flag, const char *app, qpo_err *err);

/* qpo submit --dry-run (cmd_dry_run.c): prints the plan of a resolved config; an exit code. */
int qpo_submit_dry_run(const char *db, const char *name, const json_t *resolved, int as_json);

/* Parses a positive experiment id; -1 when it is not one. */
long long qpo_sched_parse_id(const char *s);

#endif
