/* Target configuration: status names, endpoints, the API key and qpo.targets rows. The key is
 * read from where the config says and handed over in memory only; errors name its source,
 * never its value. */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "llm.h"

const char *qpo_llm_status_name(qpo_llm_status s) {
    static const char *const names[] = {
        [QPO_LLM_OK] = "ok",
        [QPO_LLM_ERR_CONNECT] = "connect",
        [QPO_LLM_ERR_TIMEOUT] = "timeout",
        [QPO_LLM_ERR_DROPPED] = "dropped",
        [QPO_LLM_ERR_RATE_LIMITED] = "rate_limited",
        [QPO_LLM_ERR_SERVER] = "server",
        [QPO_LLM_ERR_CLIENT] = "client",
        [QPO_LLM_ERR_MALFORMED] = "malformed",
        [QPO_LLM_ERR_SHAPE] = "shape",
        [QPO_LLM_ERR_NO_LOGPROBS] = "no_logprobs",
        [QPO_LLM_ERR_SPAN] = "span",
        [QPO_LLM_ERR_CANCELLED] = "cancelled",
        [QPO_LLM_ERR_INTERNAL] = "internal",
        [QPO_LLM_ERR_TOO_LARGE] = "too_large",
    };
    if ((unsigned)s < sizeof names / sizeof names[0] && names[s])
        return names[s];
    return "unknown";
}

bool qpo_llm_status_retryable(qpo_llm_status s) {
    switch (s) {
    case QPO_LLM_ERR_CONNECT:
    case QPO_LLM_ERR_TIMEOUT:
    case QPO_LLM_ERR_DROPPED:
    case QPO_LLM_ERR_RATE_LIMITED:
    case QPO_LLM_ERR_SERVER:
    case QPO_LLM_ERR_MALFORMED:
    case QPO_LLM_ERR_SHAPE:
        return true;
    default:
        return false;
    }
}

const char *qpo_llm_endpoint_path(qpo_llm_endpoint e) {
    return e == QPO_LLM_CHAT ? "/v1/chat/completions" : "/v1/completions";
}

void qpo_llm_free_secret(char *key) {
    if (!key)
        return;
    volatile char *v = key;
    while (*v)
        *v++ = 0;
    free(key);
}

static char *trimmed_copy(const char *s, size_t n) {
    while (n && isspace((unsigned char)*s))
        s++, n--;
    while (n && isspace((unsigned char)s[n - 1]))
        n--;
    return n ? strndup(s, n) : NULL;
}

static int key_from_file(const char *file, char **key, qpo_err *err) {
    FILE *f = fopen(file, "r");
    if (!f) {
        qpo_err_set(err, QPO_EXIT_USAGE, "cannot read the API key file");
        qpo_err_detail(err, "file %s: %s", file, strerror(errno));
        return -1;
    }
    char line[4096];
    size_t n = fgets(line, sizeof line, f) ? strlen(line) : 0;
    fclose(f);
    *key = trimmed_copy(line, n);
    volatile char *v = line;
    for (size_t i = 0; i < sizeof line; i++)
        v[i] = 0;
    if (!*key) {
        qpo_err_set(err, QPO_EXIT_USAGE, "the API key file is empty");
        qpo_err_detail(err, "file %s", file);
        qpo_err_hint(err, "put the key on the file's first line");
        return -1;
    }
    return 0;
}

int qpo_llm_resolve_api_key(const char *env_var, const char *file, char **key, qpo_err *err) {
    *key = NULL;
    if (env_var && *env_var) {
        const char *v = getenv(env_var);
        *key = v ? trimmed_copy(v, strlen(v)) : NULL;
        if (*key)
            return 0;
        qpo_err_set(err, QPO_EXIT_USAGE, "the API key variable is unset or empty");
        qpo_err_detail(err, "environment variable %s", env_var);
        qpo_err_hint(err, "export %s=... before starting, or use api_key_file", env_var);
        return -1;
    }
    if (file && *file)
        return key_from_file(file, key, err);
    return 0;
}

typedef struct int_key {
    const char *name;
    int *dst;
} int_key;

static int read_number(const char *key, const json_t *v, double *out, qpo_err *err) {
    if (!json_is_number(v) || json_number_value(v) < 0) {
        qpo_err_set(err, QPO_EXIT_USAGE, "target config: %s must be a non-negative number", key);
        return -1;
    }
    *out = json_number_value(v);
    return 0;
}

static int apply_key(qpo_llm_target *t, const char *key, const json_t *v, qpo_err *err) {
    const int_key ints[] = {{"max_inflight", &t->max_inflight},
                            {"connect_timeout_ms", &t->connect_timeout_ms},
                            {"timeout_ms", &t->timeout_ms},
                            {"retry_budget", &t->retry_budget}};
    double d;
    for (size_t i = 0; i < sizeof ints / sizeof ints[0]; i++) {
        if (strcmp(key, ints[i].name))
            continue;
        if (!json_is_integer(v) || json_integer_value(v) < 0 || json_integer_value(v) > 1000000) {
            qpo_err_set(err, QPO_EXIT_USAGE, "target config: %s must be an integer in 0..1000000",
                        key);
            return -1;
        }
        *ints[i].dst = (int)json_integer_value(v);
        if (ints[i].dst == &t->retry_budget && *ints[i].dst == 0)
            t->retry_budget = -1; /* 0 in the table means "no retries", not "the default" */
        return 0;
    }
    if (!strcmp(key, "requests_per_s") || !strcmp(key, "tokens_per_min")) {
        if (read_number(key, v, &d, err) < 0)
            return -1;
        *(key[0] == 'r' ? &t->requests_per_s : &t->tokens_per_min) = d;
        return 0;
    }
    if (!strcmp(key, "max_response_bytes")) {
        if (!json_is_integer(v) || json_integer_value(v) < QPO_LLM_MIN_RESPONSE_CAP ||
            json_integer_value(v) > QPO_LLM_MAX_RESPONSE_CAP) {
            qpo_err_set(err, QPO_EXIT_USAGE,
                        "target config: max_response_bytes must be an integer in %ld..%ld",
                        QPO_LLM_MIN_RESPONSE_CAP, QPO_LLM_MAX_RESPONSE_CAP);
            return -1;
        }
        t->max_response_bytes = (long)json_integer_value(v);
        return 0;
    }
    if (!strcmp(key, "ca_file")) {
        if (!json_is_string(v) || !json_string_length(v)) {
            qpo_err_set(err, QPO_EXIT_USAGE, "target config: ca_file must be a non-empty string");
            return -1;
        }
        t->ca_file = json_string_value(v);
        return 0;
    }
    if (!strcmp(key, "api_key_env") || !strcmp(key, "api_key_file")) {
        if (json_is_string(v))
            return 0;
        qpo_err_set(err, QPO_EXIT_USAGE, "target config: %s must be a string", key);
        return -1;
    }
    qpo_err_set(err, QPO_EXIT_USAGE, "target config: unknown key \"%s\"", key);
    qpo_err_hint(err, "known keys: api_key_env, api_key_file, max_inflight, requests_per_s, "
                      "tokens_per_min, connect_timeout_ms, timeout_ms, retry_budget, "
                      "max_response_bytes, ca_file");
    return -1;
}

int qpo_llm_target_from_json(const char *name, const char *base_url, const char *model,
                             const json_t *config, qpo_llm_target *t, char **key_out,
                             qpo_err *err) {
    memset(t, 0, sizeof *t);
    *key_out = NULL;
    t->name = name;
    t->base_url = base_url;
    t->model = model;
    if (config && !json_is_object(config)) {
        qpo_err_set(err, QPO_EXIT_USAGE, "target config is not a JSON object");
        qpo_err_detail(err, "target %s", name ? name : "?");
        return -1;
    }
    const char *k;
    const json_t *v;
    json_object_foreach((json_t *)config, k, v) {
        if (apply_key(t, k, v, err) < 0) {
            qpo_err_detail(err, "target %s", name ? name : "?");
            return -1;
        }
    }
    const char *env = json_string_value(json_object_get(config, "api_key_env"));
    const char *file = json_string_value(json_object_get(config, "api_key_file"));
    if (qpo_llm_resolve_api_key(env, file, key_out, err) < 0) {
        qpo_err_prefix(err, "target %s", name ? name : "?");
        return -1;
    }
    t->api_key = *key_out;
    return 0;
}
