/* Model configs: the named ones and the JSON form stored in checkpoint metadata. */
#include <jansson.h>
#include <stdio.h>
#include <string.h>

#include "policy.h"

int qpo_policy_config_named(const char *name, qpo_policy_config *out) {
    if (!strcmp(name, "tiny")) {
        *out = (qpo_policy_config){.n_layer = 2, .n_head = 4, .d = 64, .vocab = 512, .ctx = 128};
        return 0;
    }
    if (!strcmp(name, "gpt2")) {
        *out =
            (qpo_policy_config){.n_layer = 12, .n_head = 12, .d = 768, .vocab = 50257, .ctx = 1024};
        return 0;
    }
    return -1;
}

int qpo_policy_config_check(const qpo_policy_config *c, char *errbuf, size_t errlen) {
    if (c->n_layer < 1 || c->n_head < 1 || c->d < 1 || c->vocab < 2 || c->ctx < 1 ||
        c->n_layer > 1024 || c->d > 65536 || c->vocab > 10000000 || c->ctx > 1000000) {
        snprintf(errbuf, errlen,
                 "policy config out of range: n_layer %d, n_head %d, d %d, vocab %d, ctx %d",
                 c->n_layer, c->n_head, c->d, c->vocab, c->ctx);
        return -1;
    }
    if (c->d % c->n_head) {
        snprintf(errbuf, errlen, "policy config: d %d is not divisible by n_head %d", c->d,
                 c->n_head);
        return -1;
    }
    if (c->ctx < QPO_PGDT_SEQ) {
        snprintf(errbuf, errlen, "policy config: ctx %d is below the %d positions PGDT uses",
                 c->ctx, QPO_PGDT_SEQ);
        return -1;
    }
    return 0;
}

char *qpo_policy_config_json(const qpo_policy_config *c) {
    char buf[256];
    snprintf(buf, sizeof buf,
             "{\"n_layer\": %d, \"n_head\": %d, \"d\": %d, \"vocab\": %d, "
             "\"ctx\": %d, \"reward_embed\": \"%s\"}",
             c->n_layer, c->n_head, c->d, c->vocab, c->ctx,
             c->reward_embed == QPO_REWARD_EMBED_RAW ? "raw" : "unit");
    return strdup(buf);
}

static int get_int(json_t *o, const char *key, int *out, char *errbuf, size_t errlen) {
    json_t *v = json_object_get(o, key);
    if (!json_is_integer(v) || json_integer_value(v) < 0 || json_integer_value(v) > 100000000) {
        snprintf(errbuf, errlen, "policy config: \"%s\" missing or not a valid integer", key);
        return -1;
    }
    *out = (int)json_integer_value(v);
    return 0;
}

float qpo_policy_reward_input(const qpo_policy_config *c, float r_norm) {
    return c->reward_embed == QPO_REWARD_EMBED_RAW ? r_norm : r_norm / 100.0f;
}

/* A file without the key predates the choice, so it was trained with the authors' input. */
static int get_reward_embed(json_t *o, qpo_reward_embed *out, char *errbuf, size_t errlen) {
    json_t *v = json_object_get(o, "reward_embed");
    const char *s = v ? json_string_value(v) : "raw";
    if (s && !strcmp(s, "raw"))
        *out = QPO_REWARD_EMBED_RAW;
    else if (s && !strcmp(s, "unit"))
        *out = QPO_REWARD_EMBED_UNIT;
    else {
        snprintf(errbuf, errlen,
                 "policy config: \"reward_embed\" is \"unit\" or \"raw\" (this file was "
                 "written by another version of qpo?)");
        return -1;
    }
    return 0;
}

int qpo_policy_config_parse(const char *json, qpo_policy_config *out, char *errbuf, size_t errlen) {
    json_error_t jerr;
    json_t *o = json_loads(json, 0, &jerr);
    if (!json_is_object(o)) {
        snprintf(errbuf, errlen, "policy config is not a JSON object: %s", jerr.text);
        json_decref(o);
        return -1;
    }
    int rc = get_int(o, "n_layer", &out->n_layer, errbuf, errlen) ||
             get_int(o, "n_head", &out->n_head, errbuf, errlen) ||
             get_int(o, "d", &out->d, errbuf, errlen) ||
             get_int(o, "vocab", &out->vocab, errbuf, errlen) ||
             get_int(o, "ctx", &out->ctx, errbuf, errlen) ||
             get_reward_embed(o, &out->reward_embed, errbuf, errlen);
    json_decref(o);
    if (rc)
        return -1;
    return qpo_policy_config_check(out, errbuf, errlen);
}
