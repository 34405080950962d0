#ifndef QPO_POLICY_CMD_INTERNAL_H
#define QPO_POLICY_CMD_INTERNAL_H

/* Shared by the `qpo policy` subcommands and `qpo bench policy`. */

#include "error.h"
#include "policy.h"

int qpo_policy_cmd_init(int argc, char **argv);
int qpo_policy_cmd_loss(int argc, char **argv);
int qpo_policy_cmd_sample(int argc, char **argv);

/* Loads a policy file for a command; a usage error (exit 2) naming the file otherwise. */
qpo_policy *qpo_policy_cmd_load(const char *path, qpo_err *err);
/* Parses an integer/float option value, or sets a usage error naming the option. */
int qpo_policy_cmd_int(const char *opt, const char *s, long lo, long hi, long *out, qpo_err *err);
int qpo_policy_cmd_float(const char *opt, const char *s, double *out, qpo_err *err);

#endif
