/* Flags to a client, shared by the target and bench commands. */
#include "llm_cli.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

qpo_llm_client *qpo_llm_cli_client(struct event_base *base, const qpo_llm_cli_target *a,
                                   const qpo_llm_hooks *hooks, qpo_err *err) {
    char *key = NULL;
    if (qpo_llm_resolve_api_key(a->key_env, a->key_file, &key, err) < 0)
        return NULL;
    qpo_llm_target t = {
        .name = a->url,
        .base_url = a->url,
        .model = a->model,
        .api_key = key,
        .max_inflight = a->max_inflight,
        .timeout_ms = a->timeout_ms,
        .connect_timeout_ms = a->timeout_ms < 10000 ? a->timeout_ms : 10000,
        .retry_budget = a->retries == 0 ? -1 : a->retries,
        .ca_file = a->ca_file,
    };
    qpo_llm_client *c = qpo_llm_client_new(base, &t, hooks, err);
    qpo_llm_free_secret(key);
    return c;
}

int qpo_llm_cli_int(const char *flag, const char *value, int lo, int hi, int *out, qpo_err *err) {
    char *end;
    errno = 0;
    long v = strtol(value, &end, 10);
    if (errno || end == value || *end || v < lo || v > hi) {
        qpo_err_set(err, QPO_EXIT_USAGE, "%s wants an integer in %d..%d", flag, lo, hi);
        qpo_err_detail(err, "got \"%s\"", value);
        return -1;
    }
    *out = (int)v;
    return 0;
}

void qpo_llm_cli_print_json(const json_t *o) {
    char *s = json_dumps(o, JSON_COMPACT | JSON_REAL_PRECISION(10));
    if (s)
        puts(s);
    free(s);
    fflush(stdout);
}
