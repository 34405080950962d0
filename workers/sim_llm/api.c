/* Dispatch, authentication, OpenAI-shaped errors and /v1/models. */
#include "api.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "api_internal.h"
#include "simhash.h"

void sim_reply_free(sim_reply *r) {
    free(r->body);
    r->body = NULL;
    r->len = 0;
}

static void set_json(sim_reply *out, int status, json_t *j) {
    out->status = status;
    out->body = json_dumps(j, SIM_JSON_FLAGS);
    out->len = out->body ? strlen(out->body) : 0;
    json_decref(j);
}

void sim_api_error(sim_reply *out, int status, const char *type, const char *param,
                   const char *code, const char *fmt, ...) {
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    json_t *e = json_pack("{s:{s:s,s:s,s:s?,s:s?}}", "error", "message", msg, "type", type, "param",
                          param, "code", code);
    set_json(out, status, e);
}

int sim_int_param(const json_t *req, const char *name, long long lo, long long hi, long long dflt,
                  long long *v, sim_reply *out) {
    const json_t *j = json_object_get(req, name);
    if (!j || json_is_null(j)) {
        *v = dflt;
        return 0;
    }
    if (!json_is_integer(j) || json_integer_value(j) < lo || json_integer_value(j) > hi) {
        sim_api_error(out, 400, "invalid_request_error", name, "invalid_value",
                      "'%s' must be an integer between %lld and %lld", name, lo, hi);
        return -1;
    }
    *v = json_integer_value(j);
    return 0;
}

void sim_response_id(const char *prefix, const json_t *req, char out[48]) {
    char *s = json_dumps(req, JSON_COMPACT | JSON_SORT_KEYS);
    uint64_t a = sim_hash(s, s ? strlen(s) : 0, 1), b = sim_hash(s, s ? strlen(s) : 0, 2);
    snprintf(out, 48, "%s%016llx%08llx", prefix, (unsigned long long)a,
             (unsigned long long)(b & 0xFFFFFFFF));
    free(s);
}

static void models(const sim_api *api, const char *path, sim_reply *out) {
    json_t *m = json_pack("{s:s,s:s,s:I,s:s}", "id", api->model, "object", "model", "created",
                          (json_int_t)0, "owned_by", "qpo");
    if (!strcmp(path, "/v1/models")) {
        set_json(out, 200, json_pack("{s:s,s:[o]}", "object", "list", "data", m));
        return;
    }
    if (!strcmp(path + strlen("/v1/models/"), api->model)) {
        set_json(out, 200, m);
        return;
    }
    json_decref(m);
    sim_api_error(out, 404, "invalid_request_error", "model", "model_not_found",
                  "The model '%s' does not exist", path + strlen("/v1/models/"));
}

static int authorized(const sim_api *api, const char *authorization) {
    if (!api->api_key)
        return 1;
    const char *bearer = "Bearer ";
    return authorization && !strncmp(authorization, bearer, strlen(bearer)) &&
           !strcmp(authorization + strlen(bearer), api->api_key);
}

static int common_params(const sim_api *api, const json_t *req, sim_common_params *cp,
                         sim_reply *out) {
    const json_t *model = json_object_get(req, "model");
    if (!json_is_string(model)) {
        sim_api_error(out, 400, "invalid_request_error", "model", "missing_required_parameter",
                      "you must provide a model parameter");
        return -1;
    }
    if (strcmp(json_string_value(model), api->model)) {
        sim_api_error(out, 404, "invalid_request_error", "model", "model_not_found",
                      "The model '%s' does not exist; this server serves '%s'",
                      json_string_value(model), api->model);
        return -1;
    }
    const json_t *t = json_object_get(req, "temperature");
    cp->temperature = 1.0; /* OpenAI's default */
    if (t && !json_is_null(t)) {
        if (!json_is_number(t) || json_number_value(t) < 0 || json_number_value(t) > 2) {
            sim_api_error(out, 400, "invalid_request_error", "temperature", "invalid_value",
                          "'temperature' must be a number between 0 and 2");
            return -1;
        }
        cp->temperature = json_number_value(t);
    }
    long long n;
    if (sim_int_param(req, "seed", -(1LL << 62), 1LL << 62, 0, &cp->seed, out) ||
        sim_int_param(req, "n", 1, 128, 1, &n, out))
        return -1;
    if (n != 1) {
        sim_api_error(out, 400, "invalid_request_error", "n", "unsupported_value",
                      "this simulated model only supports n = 1");
        return -1;
    }
    if (json_is_true(json_object_get(req, "stream"))) {
        sim_api_error(out, 400, "invalid_request_error", "stream", "unsupported_value",
                      "this simulated model does not stream; send stream: false");
        return -1;
    }
    return 0;
}

static void post(const sim_api *api, const char *path, const char *body, size_t len,
                 sim_reply *out) {
    json_error_t jerr;
    json_t *req = json_loadb(body, len, 0, &jerr);
    if (!json_is_object(req)) {
        json_decref(req);
        sim_api_error(out, 400, "invalid_request_error", NULL, NULL,
                      "We could not parse the JSON body of your request (%s)",
                      req ? "not an object" : jerr.text);
        return;
    }
    sim_common_params cp;
    json_t *resp = NULL;
    int chat = !strcmp(path, "/v1/chat/completions");
    if (common_params(api, req, &cp, out) == 0 &&
        (chat ? sim_chat(api, req, &cp, &resp, out) : sim_completions(api, req, &cp, &resp, out)) ==
            0)
        set_json(out, 200, resp);
    json_decref(req);
}

void sim_api_handle(const sim_api *api, const char *method, const char *path,
                    const char *authorization, const char *body, size_t len, sim_reply *out) {
    memset(out, 0, sizeof(*out));
    int is_post = !strcmp(path, "/v1/completions") || !strcmp(path, "/v1/chat/completions");
    int is_get = !strcmp(path, "/v1/models") || !strncmp(path, "/v1/models/", 11);
    if (!is_post && !is_get) {
        sim_api_error(out, 404, "invalid_request_error", NULL, "unknown_url",
                      "Unknown request URL: %s %s", method, path);
        return;
    }
    if (!authorized(api, authorization)) {
        sim_api_error(out, 401, "invalid_request_error", NULL, "invalid_api_key",
                      "Incorrect API key provided");
        return;
    }
    if (strcmp(method, is_post ? "POST" : "GET")) {
        sim_api_error(out, 405, "invalid_request_error", NULL, "method_not_allowed",
                      "%s %s is not supported; use %s", method, path, is_post ? "POST" : "GET");
        return;
    }
    if (is_get)
        models(api, path, out);
    else
        post(api, path, body, len, out);
}

void sim_api_malformed(const char *path, unsigned variant, sim_reply *out) {
    static const char *const completions[] = {
        "{\"id\":\"cmpl-malformed\",\"object\":\"text_completion\",\"choices\":[]}",
        "{\"id\":\"cmpl-malformed\",\"object\":\"text_completion\",\"choices\":[{\"index\":0,"
        "\"text\":42,\"finish_reason\":\"length\"}]}",
        "{\"id\":\"cmpl-malformed\",\"object\":\"text_completion\",\"choices\":[{\"index\":0,"
        "\"text\":\"x\",\"logprobs\":{\"tokens\":[\"x\"],\"token_logprobs\":[\"-1.0\"],"
        "\"text_offset\":\"0\"},\"finish_reason\":\"length\"}]}",
    };
    static const char *const chat[] = {
        "{\"id\":\"chatcmpl-malformed\",\"object\":\"chat.completion\",\"choices\":[]}",
        "{\"id\":\"chatcmpl-malformed\",\"object\":\"chat.completion\",\"choices\":[{\"index\":0,"
        "\"message\":{\"role\":\"assistant\"},\"finish_reason\":\"stop\"}]}",
        "{\"id\":\"chatcmpl-malformed\",\"object\":\"chat.completion\",\"choices\":[{\"index\":0,"
        "\"message\":{\"role\":\"assistant\",\"content\":\"1\"},\"logprobs\":{\"content\":"
        "\"none\"},\"finish_reason\":\"stop\"}]}",
    };
    const char *s = strstr(path, "chat") ? chat[variant % 3] : completions[variant % 3];
    out->status = 200;
    out->body = strdup(s);
    out->len = out->body ? strlen(s) : 0;
}
