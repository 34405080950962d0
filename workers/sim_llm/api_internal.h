#ifndef QPO_SIM_API_INTERNAL_H
#define QPO_SIM_API_INTERNAL_H

/* Shared by api.c (dispatch, errors) and the two endpoint files. */

#include <jansson.h>

#include "api.h"

/* Request fields common to both endpoints, validated. */
typedef struct sim_common_params {
    double temperature;
    long long seed;
} sim_common_params;

/* Each returns 0 with *resp set, or -1 with out holding the error reply. */
int sim_completions(const sim_api *api, const json_t *req, const sim_common_params *cp,
                    json_t **resp, sim_reply *out);
int sim_chat(const sim_api *api, const json_t *req, const sim_common_params *cp, json_t **resp,
             sim_reply *out);

/* Optional integer field in [lo, hi]: 0 (value or dflt in *v), or -1 with a 400 in out. */
int sim_int_param(const json_t *req, const char *name, long long lo, long long hi, long long dflt,
                  long long *v, sim_reply *out);
/* "cmpl-" / "chatcmpl-" plus 24 hex digits of the request's hash. */
void sim_response_id(const char *prefix, const json_t *req, char out[48]);

#define SIM_JSON_FLAGS (JSON_COMPACT | JSON_REAL_PRECISION(7))

#endif
