/* Payload fields for every handler: one check, one error shape naming the field. */
#include "handler.h"

int qpo_payload_int(const json_t *payload, const char *key, int64_t *out, qpo_err *err) {
    const json_t *v = json_object_get(payload, key);
    if (!json_is_integer(v)) {
        qpo_err_set(err, QPO_EXIT_USAGE, "job payload field \"%s\" must be an integer", key);
        qpo_err_detail(err, "payload field \"%s\" is %s", key, v ? "of another type" : "missing");
        qpo_err_hint(err, "see docs/data-model.md, \"Job kinds and payloads\"");
        return -1;
    }
    *out = json_integer_value(v);
    return 0;
}

static const char *payload_string(const json_t *payload, const char *key, bool allow_empty,
                                  qpo_err *err) {
    const json_t *v = json_object_get(payload, key);
    if (!json_is_string(v) || (!allow_empty && !*json_string_value(v))) {
        qpo_err_set(err, QPO_EXIT_USAGE, "job payload field \"%s\" must be a%s string", key,
                    allow_empty ? "" : " non-empty");
        qpo_err_hint(err, "see docs/data-model.md, \"Job kinds and payloads\"");
        return NULL;
    }
    return json_string_value(v);
}

const char *qpo_payload_str(const json_t *payload, const char *key, qpo_err *err) {
    return payload_string(payload, key, false, err);
}

const char *qpo_payload_str_or_empty(const json_t *payload, const char *key, qpo_err *err) {
    return payload_string(payload, key, true, err);
}
