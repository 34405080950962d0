#ifndef QPO_SIM_API_H
#define QPO_SIM_API_H

/* The OpenAI-compatible endpoints as pure functions: request body in, status and response body
 * out. No sockets here, so the model can be measured in-process and the server stays thin. */

#include <stddef.h>

#include "dataset.h"

typedef struct sim_api {
    const sim_data *data;
    const char *model;   /* the one model id served */
    const char *api_key; /* NULL: any Authorization header (or none) is accepted */
} sim_api;

typedef struct sim_reply {
    int status;
    char *body; /* malloc'd JSON */
    size_t len;
} sim_reply;

/* method "GET"/"POST"; path without query string; authorization may be NULL. */
void sim_api_handle(const sim_api *api, const char *method, const char *path,
                    const char *authorization, const char *body, size_t len, sim_reply *out);

/* An OpenAI-shaped error: {"error": {"message", "type", "param", "code"}}. */
void sim_api_error(sim_reply *out, int status, const char *type, const char *param,
                   const char *code, const char *fmt, ...) __attribute__((format(printf, 6, 7)));

/* A 200 body of valid JSON in the wrong shape for path (variant picks one of a few). */
void sim_api_malformed(const char *path, unsigned variant, sim_reply *out);

void sim_reply_free(sim_reply *r);

#endif
