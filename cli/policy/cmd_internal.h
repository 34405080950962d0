#ifndef QPO_POLICY_CMD_INTERNAL_H
#define QPO_POLICY_CMD_INTERNAL_H

/* Shared by the `qpo policy` subcommands and `qpo bench policy`. */

#include "error.h"
#include "policy.h"

int qpo_policy_cmd_init(int argc, char **argv);
int qpo_policy_cmd_loss(int argc, char **argv);
int qpo_policy_cmd_sample(int argc, char **argv);

/* The backend `--backend NAME` chose for this command (cpu unless given; cuda, cuda-bf16,
 * auto), or NULL with a usage error: an unknown name, or CUDA asked for where there is none. */
const qpo_backend *qpo_policy_cmd_backend(qpo_err *err);
/* Removes every `--backend NAME` / `--backend=NAME` from argv (the subcommands' own parsers
 * never see it) and remembers the name; -1 with a usage error when NAME is missing. */
int qpo_policy_cmd_take_backend(int *argc, char **argv, qpo_err *err);

/* Loads a policy file for a command; a usage error (exit 2) naming the file otherwise. */
qpo_policy *qpo_policy_cmd_load(const char *path, qpo_err *err);
/* Parses an integer/float option value, or sets a usage error naming the option. */
int qpo_policy_cmd_int(const char *opt, const char *s, long lo, long hi, long *out, qpo_err *err);
int qpo_policy_cmd_float(const char *opt, const char *s, double *out, qpo_err *err);

#endif
