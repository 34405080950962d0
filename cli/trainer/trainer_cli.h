#ifndef QPO_TRAINER_CLI_H
#define QPO_TRAINER_CLI_H

/* What qpo prompt and qpo export share: argument parsing and a run's trained loop. */

#include <libpq-fe.h>
#include <stdint.h>

#include "error.h"
#include "trainer_internal.h"

/* A positive integer option; prints the usage error and returns -1 otherwise. */
int qpo_trainer_cli_int(const char *arg, const char *flag, int64_t *out);

/* Run RUN_ID with its resolved config; *loop 0 picks the newest loop with a checkpoint. */
int qpo_trainer_cli_run(PGconn *conn, int64_t run_id, int *loop, qpo_trun *run, qpo_err *err);

#endif
