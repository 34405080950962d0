#ifndef QPO_LLM_CLI_H
#define QPO_LLM_CLI_H

/* What `qpo target` and `qpo bench llm` share: a target from command-line flags. */

#include <jansson.h>

#include "error.h"
#include "llm.h"

typedef struct qpo_llm_cli_target {
    const char *url, *model, *key_env, *key_file;
    const char *ca_file; /* NULL: the system's CAs */
    int timeout_ms;
    int retries;
    int max_inflight;
} qpo_llm_cli_target;

/* The client for those flags, the API key resolved (and wiped once the client copied it). */
qpo_llm_client *qpo_llm_cli_client(struct event_base *base, const qpo_llm_cli_target *a,
                                   const qpo_llm_hooks *hooks, qpo_err *err);

/* Parses an integer flag value in [lo, hi]; QPO_EXIT_USAGE naming the flag otherwise. */
int qpo_llm_cli_int(const char *flag, const char *value, int lo, int hi, int *out, qpo_err *err);

/* One compact JSON line on stdout. */
void qpo_llm_cli_print_json(const json_t *o);

#endif
