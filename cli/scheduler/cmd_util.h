#ifndef QPO_SCHED_CMD_UTIL_H
#define QPO_SCHED_CMD_UTIL_H

/* What every scheduler command does first: connect and check the schema. */

#include <libpq-fe.h>

#include "error.h"

/* Connects with --db (or the environment) and checks that the schema is current. */
PGconn *qpo_sched_connect(const char *db_flag, const char *app, qpo_err *err);

/* Parses a positive experiment id; -1 when it is not one. */
long long qpo_sched_parse_id(const char *s);

#endif
