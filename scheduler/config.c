/* Experiment config validation: each section is checked by its own function, which copies
 * the user's values over the recipe's defaults and names the offending field on error. */
#include "config.h"

#include <errno.h>
#include <math.h>
#include <regex.h>
#include <stdio.h>
#include <string.h>

#include "gpt2_weights.h"
#include "hyper.h"
#include "reward_formula.h"
#include "target_limits.h"
#include "tasks.h"
#include "url.h"

#define NAME_PATTERN "^[A-Za-z0-9_.:-]+$"

static int bad(qpo_err *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int bad(qpo_err *err, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    char msg[sizeof(err->msg)];
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    qpo_err_set(err, QPO_EXIT_USAGE, "%s", msg);
    qpo_err_hint(err, "the config format is described in config/README.md");
    return -1;
}

const char *qpo_config_known_tasks(void) {
    static char list[256];
    if (!list[0]) {
        size_t n = 0;
        const qpo_task *all = qpo_task_all(&n);
        for (size_t i = 0; i < n; i++) {
            if (i)
                strcat(list, ", ");
            strcat(list, all[i].name);
        }
    }
    return list;
}

int qpo_config_task_is_math(const char *task) {
    const qpo_task *t = qpo_task_find(task);
    return t && t->type == QPO_TASK_MATH;
}

static int matches_name(const char *s) {
    regex_t re;
    if (regcomp(&re, NAME_PATTERN, REG_EXTENDED | REG_NOSUB))
        return 0;
    int ok = regexec(&re, s, 0, NULL, 0) == 0;
    regfree(&re);
    return ok;
}

/* Refuses keys outside `known` (NULL-terminated): a typo must not silently fall back to a
 * default. */
static int check_keys(const json_t *obj, const char *where, const char *const *known,
                      qpo_err *err) {
    const char *key;
    json_t *val;
    json_object_foreach((json_t *)obj, key, val) {
        int found = 0;
        for (const char *const *k = known; *k; k++)
            found |= !strcmp(*k, key);
        if (!found) {
            char list[512] = "";
            for (const char *const *k = known; *k; k++)
                snprintf(list + strlen(list), sizeof(list) - strlen(list), "%s%s",
                         k == known ? "" : ", ", *k);
            return bad(err, "%s%s%s: unknown key; known: %s", where, *where ? "." : "", key, list);
        }
    }
    return 0;
}

/* Duplicate checks remember what they saw in a hash table (a jansson object keyed by the
 * value's text), so a list of n entries costs n lookups: comparing each entry with all before
 * it made 100k seeds take minutes. */
typedef json_t seen_set;

static seen_set *seen_new(void) {
    return json_object();
}

static void seen_free(seen_set *s) {
    json_decref(s);
}

/* -1 (with the error naming both places, list[i]field) when text was seen before; else
 * remembers it. Strings are quoted in the message, numbers not. */
static int seen_twice(seen_set *s, const char *text, size_t len, const char *list, size_t i,
                      const char *field, int quoted, qpo_err *err) {
    json_t *first = json_object_getn(s, text, len);
    const char *q = quoted ? "\"" : "";
    if (first)
        return bad(err, "%s[%zu]%s: %s%s%s is listed twice (first at %s[%lld])", list, i, field, q,
                   text, q, list, (long long)json_integer_value(first));
    json_object_setn_new(s, text, len, json_integer((json_int_t)i));
    return 0;
}

/* limits (config/README.md): guards against a config that would plan more work than any
 * experiment means to (20,000 seeds once became 595k jobs and a scheduler query that held a
 * backend for minutes). Each is raised in the config itself when meant. */
typedef struct limits {
    long long max_seeds, max_runs, max_baselines;
} limits;

static int int_field(const json_t *obj, const char *where, const char *key, long long def,
                     long long lo, long long hi, json_t *out, qpo_err *err);

static int check_limits(const json_t *cfg, limits *lim, json_t *out, qpo_err *err) {
    static const char *const keys[] = {"max_seeds", "max_runs", "max_baselines", NULL};
    json_t *empty = json_object();
    const json_t *l = json_object_get(cfg, "limits");
    json_t *o = json_object();
    json_object_set_new(out, "limits", o);
    int rc = -1;
    if (l && !json_is_object(l))
        bad(err, "limits: must be an object");
    else if (check_keys(l ? l : empty, "limits", keys, err) == 0 &&
             int_field(l ? l : empty, "limits", "max_seeds", QPO_LIMIT_SEEDS, 1, 10000000, o,
                       err) == 0 &&
             int_field(l ? l : empty, "limits", "max_runs", QPO_LIMIT_RUNS, 1, 10000000, o, err) ==
                 0 &&
             int_field(l ? l : empty, "limits", "max_baselines", QPO_LIMIT_BASELINES, 0, 1000000, o,
                       err) == 0) {
        lim->max_seeds = json_integer_value(json_object_get(o, "max_seeds"));
        lim->max_runs = json_integer_value(json_object_get(o, "max_runs"));
        lim->max_baselines = json_integer_value(json_object_get(o, "max_baselines"));
        rc = 0;
    }
    json_decref(empty);
    return rc;
}

/* Every run is planned into about fifty jobs (docs/data-model.md), so the runs are what a
 * config's size turns into. */
static int check_runs(const json_t *out, const limits *lim, qpo_err *err) {
    long long runs = 1;
    static const char *const crossed[] = {"tasks", "settings", "seeds", "targets", NULL};
    for (const char *const *k = crossed; *k; k++)
        runs *= (long long)json_array_size(json_object_get(out, *k));
    if (runs > lim->max_runs)
        return bad(err,
                   "tasks x settings x seeds x targets: %lld runs is more than "
                   "limits.max_runs (%lld); raise it in the config if meant",
                   runs, lim->max_runs);
    return 0;
}

static json_t *string_list(const json_t *cfg, const char *key, qpo_err *err) {
    json_t *v = json_object_get(cfg, key);
    if (!v)
        return bad(err, "%s: missing (a list of strings)", key), NULL;
    if (!json_is_array(v) || json_array_size(v) == 0)
        return bad(err, "%s: must be a non-empty list", key), NULL;
    size_t i;
    json_t *e;
    seen_set *seen = seen_new();
    json_array_foreach(v, i, e) {
        if (!json_is_string(e)) {
            seen_free(seen);
            return bad(err, "%s[%zu]: must be a string", key, i), NULL;
        }
        if (seen_twice(seen, json_string_value(e), json_string_length(e), key, i, "", 1, err)) {
            seen_free(seen);
            return NULL;
        }
    }
    seen_free(seen);
    return json_deep_copy(v);
}

static int check_tasks(const json_t *cfg, json_t *out, qpo_err *err) {
    json_t *tasks = string_list(cfg, "tasks", err);
    if (!tasks)
        return -1;
    size_t i;
    json_t *e;
    json_array_foreach(tasks, i, e) {
        if (!qpo_task_find(json_string_value(e))) {
            bad(err, "tasks[%zu]: unknown task \"%s\"; known: %s", i, json_string_value(e),
                qpo_config_known_tasks());
            json_decref(tasks);
            return -1;
        }
    }
    json_object_set_new(out, "tasks", tasks);
    return 0;
}

static int check_settings(const json_t *cfg, json_t *out, qpo_err *err) {
    json_t *settings = string_list(cfg, "settings", err);
    if (!settings)
        return -1;
    size_t i;
    json_t *e;
    json_array_foreach(settings, i, e) {
        const char *s = json_string_value(e);
        if (strcmp(s, "zero_shot") && strcmp(s, "few_shot")) {
            bad(err, "settings[%zu]: unknown setting \"%s\"; known: zero_shot, few_shot", i, s);
            json_decref(settings);
            return -1;
        }
    }
    json_object_set_new(out, "settings", settings);
    return 0;
}

static int check_seeds(const json_t *cfg, const limits *lim, json_t *out, qpo_err *err) {
    json_t *v = json_object_get(cfg, "seeds");
    if (!v)
        return bad(err, "seeds: missing (a list of integers, e.g. [0, 1, 2])");
    if (!json_is_array(v) || json_array_size(v) == 0)
        return bad(err, "seeds: must be a non-empty list of integers");
    if ((long long)json_array_size(v) > lim->max_seeds)
        return bad(err,
                   "seeds: %zu seeds is more than limits.max_seeds (%lld); raise it in the "
                   "config if meant",
                   json_array_size(v), lim->max_seeds);
    size_t i;
    json_t *e;
    int rc = 0;
    seen_set *seen = seen_new();
    json_array_foreach(v, i, e) {
        if (!json_is_integer(e) || json_integer_value(e) < 0 ||
            json_integer_value(e) > 2147483647) {
            rc = bad(err, "seeds[%zu]: must be an integer >= 0", i);
            break;
        }
        char text[32];
        int n = snprintf(text, sizeof text, "%lld", (long long)json_integer_value(e));
        if ((rc = seen_twice(seen, text, (size_t)n, "seeds", i, "", 0, err)) < 0)
            break;
    }
    seen_free(seen);
    if (rc == 0)
        json_object_set(out, "seeds", v);
    return rc;
}

/* An integer field in [lo, hi], defaulting to def when absent. */
static int int_field(const json_t *obj, const char *where, const char *key, long long def,
                     long long lo, long long hi, json_t *out, qpo_err *err) {
    json_t *v = json_object_get(obj, key);
    long long val = def;
    if (v) {
        if (!json_is_integer(v) || json_integer_value(v) < lo || json_integer_value(v) > hi)
            return bad(err, "%s%s%s: must be an integer in [%lld, %lld]", where, *where ? "." : "",
                       key, lo, hi);
        val = json_integer_value(v);
    }
    json_object_set_new(out, key, json_integer(val));
    return 0;
}

static int real_field(const json_t *obj, const char *where, const char *key, double def, double lo,
                      double hi, json_t *out, qpo_err *err) {
    json_t *v = json_object_get(obj, key);
    double val = def;
    if (v) {
        if (!json_is_number(v) || !isfinite(json_number_value(v)) || json_number_value(v) < lo ||
            json_number_value(v) > hi)
            return bad(err, "%s.%s: must be a number in [%g, %g]", where, key, lo, hi);
        val = json_number_value(v);
    }
    json_object_set_new(out, key, json_real(val));
    return 0;
}

static int string_field(const json_t *obj, const char *where, const char *key, const char *def,
                        json_t *out, qpo_err *err) {
    json_t *v = json_object_get(obj, key);
    if (!v && !def)
        return bad(err, "%s.%s: missing", where, key);
    if (v && (!json_is_string(v) || !json_string_length(v)))
        return bad(err, "%s.%s: must be a non-empty string", where, key);
    json_object_set_new(out, key, json_string(v ? json_string_value(v) : def));
    return 0;
}

static const char *const target_keys[] = {"name",
                                          "base_url",
                                          "model",
                                          "api_key_env",
                                          "api_key_file",
                                          "api_key",
                                          "max_inflight",
                                          "requests_per_s",
                                          "tokens_per_min",
                                          "connect_timeout_ms",
                                          "timeout_ms",
                                          "retry_budget",
                                          "max_response_bytes",
                                          "ca_file",
                                          NULL};

static int check_target(const json_t *t, const char *where, json_t *out, qpo_err *err) {
    if (!json_is_object(t))
        return bad(err, "%s: must be an object with name, base_url and model", where);
    if (check_keys(t, where, target_keys, err) < 0)
        return -1;
    if (json_object_get(t, "api_key")) {
        bad(err, "%s.api_key: keys are never stored in the database", where);
        qpo_err_hint(err, "name an environment variable (api_key_env) or a file (api_key_file) "
                          "that the reward workers read");
        return -1;
    }
    if (string_field(t, where, "name", NULL, out, err) < 0 ||
        string_field(t, where, "base_url", NULL, out, err) < 0 ||
        string_field(t, where, "model", NULL, out, err) < 0)
        return -1;
    const char *name = json_string_value(json_object_get(out, "name"));
    if (!matches_name(name))
        return bad(err, "%s.name: \"%s\" may hold only letters, digits and _ . : -", where, name);
    const char *url = json_string_value(json_object_get(out, "base_url"));
    if (strncmp(url, "http://", 7) && strncmp(url, "https://", 8))
        return bad(err, "%s.base_url: \"%s\" must start with http:// or https://", where, url);
    if (qpo_url_has_credentials(url)) /* not echoed: the URL holds a password */
        return bad(err,
                   "%s.base_url: must not hold credentials (user:password@); give the key "
                   "with api_key_env or api_key_file",
                   where);
    int has_env = json_object_get(t, "api_key_env") != NULL;
    int has_file = json_object_get(t, "api_key_file") != NULL;
    if (has_env && has_file)
        return bad(err, "%s: give api_key_env or api_key_file, not both", where);
    if ((has_env && string_field(t, where, "api_key_env", NULL, out, err) < 0) ||
        (has_file && string_field(t, where, "api_key_file", NULL, out, err) < 0))
        return -1;
    /* Limits: 0 means "no limit" where a limit is optional. */
    return int_field(t, where, "max_inflight", 8, 1, 4096, out, err) < 0 ||
                   real_field(t, where, "requests_per_s", 0, 0, 1e6, out, err) < 0 ||
                   int_field(t, where, "tokens_per_min", 0, 0, 1000000000, out, err) < 0 ||
                   int_field(t, where, "connect_timeout_ms", 10000, 1, 600000, out, err) < 0 ||
                   int_field(t, where, "timeout_ms", 120000, 1, 3600000, out, err) < 0 ||
                   int_field(t, where, "retry_budget", 5, 0, 1000, out, err) < 0 ||
                   int_field(t, where, "max_response_bytes", QPO_LLM_MAX_RESPONSE_BYTES,
                             QPO_LLM_MIN_RESPONSE_CAP, QPO_LLM_MAX_RESPONSE_CAP, out, err) < 0 ||
                   (json_object_get(t, "ca_file") &&
                    string_field(t, where, "ca_file", NULL, out, err) < 0)
               ? -1
               : 0;
}

static int check_targets(const json_t *cfg, json_t *out, qpo_err *err) {
    json_t *v = json_object_get(cfg, "targets");
    if (!v)
        return bad(err, "targets: missing (a list of target LLM endpoints)");
    if (!json_is_array(v) || json_array_size(v) == 0)
        return bad(err, "targets: must be a non-empty list");
    json_t *list = json_array();
    json_object_set_new(out, "targets", list);
    seen_set *seen = seen_new();
    size_t i;
    json_t *e;
    json_array_foreach(v, i, e) {
        char where[32];
        snprintf(where, sizeof(where), "targets[%zu]", i);
        json_t *t = json_object();
        json_array_append_new(list, t);
        json_t *name = NULL;
        if (check_target(e, where, t, err) < 0 ||
            (name = json_object_get(t, "name"),
             seen_twice(seen, json_string_value(name), json_string_length(name), "targets", i,
                        ".name", 1, err) < 0)) {
            seen_free(seen);
            return -1;
        }
    }
    seen_free(seen);
    return 0;
}

static const char *const policy_keys[] = {"size", "init", "tokenizer", "weights", "vocab", NULL};

static int check_policy(const json_t *cfg, json_t *out, qpo_err *err) {
    json_t *empty = json_object();
    const json_t *p = json_object_get(cfg, "policy");
    if (!p)
        p = empty;
    json_t *o = json_object();
    json_object_set_new(out, "policy", o);
    int rc = -1;
    if (!json_is_object(p))
        bad(err, "policy: must be an object");
    else if (check_keys(p, "policy", policy_keys, err) == 0 &&
             string_field(p, "policy", "size", "gpt2", o, err) == 0 &&
             string_field(p, "policy", "init", "scratch", o, err) == 0 &&
             string_field(p, "policy", "tokenizer", "gpt2_bpe", o, err) == 0 &&
             string_field(p, "policy", "vocab", "tokenizer", o, err) == 0) {
        const char *size = json_string_value(json_object_get(o, "size"));
        const char *init = json_string_value(json_object_get(o, "init"));
        const char *vocab = json_string_value(json_object_get(o, "vocab"));
        json_t *weights = json_object_get(p, "weights");
        if (strcmp(size, "tiny") && strcmp(size, "gpt2"))
            bad(err, "policy.size: unknown size \"%s\"; known: tiny, gpt2", size);
        else if (strcmp(vocab, "tokenizer") && strcmp(vocab, "d0"))
            bad(err, "policy.vocab: unknown \"%s\"; known: tokenizer, d0", vocab);
        else if (!strcmp(vocab, "d0") && strcmp(init, "scratch"))
            bad(err, "policy.vocab: \"d0\" needs \"init\": \"scratch\" (a pretrained or "
                     "given policy keeps its own vocabulary)");
        else if (weights && strcmp(init, QPO_INIT_PRETRAINED))
            bad(err, "policy.weights: only read with \"init\": \"" QPO_INIT_PRETRAINED "\"");
        else if (!weights || string_field(p, "policy", "weights", NULL, o, err) == 0)
            rc = 0;
    }
    json_decref(empty);
    return rc;
}

/* Every numeric field of qpo_hyper_specs, in table order. */
static int hyper_numbers(const json_t *h, json_t *o, qpo_err *err) {
    for (const qpo_hyper_spec *s = qpo_hyper_specs; s->key; s++) {
        int rc = s->integer ? int_field(h, "hyper", s->key, (long long)s->def, (long long)s->lo,
                                        (long long)s->hi, o, err)
                            : real_field(h, "hyper", s->key, s->def, s->lo, s->hi, o, err);
        if (rc < 0)
            return -1;
    }
    return 0;
}

/* The recipe's hyper-parameters (common/recipe/hyper.h), lambda_switch and select. */
static int check_hyper(const json_t *cfg, json_t *out, qpo_err *err) {
    const char *keys[QPO_HYPER_COUNT + 3];
    size_t n = 0;
    for (const qpo_hyper_spec *s = qpo_hyper_specs; s->key; s++)
        keys[n++] = s->key;
    keys[n++] = "lambda_switch";
    keys[n++] = "select";
    keys[n] = NULL;
    json_t *empty = json_object();
    const json_t *h = json_object_get(cfg, "hyper");
    if (!h)
        h = empty;
    json_t *o = json_object();
    json_object_set_new(out, "hyper", o);
    int rc = -1;
    if (!json_is_object(h))
        bad(err, "hyper: must be an object");
    else if (check_keys(h, "hyper", keys, err) == 0 && hyper_numbers(h, o, err) == 0 &&
             string_field(h, "hyper", "select", "heldout", o, err) == 0) {
        json_t *sw = json_object_get(h, "lambda_switch");
        const char *sel = json_string_value(json_object_get(o, "select"));
        if (sw && !json_is_boolean(sw))
            bad(err, "hyper.lambda_switch: must be true or false");
        else if (strcmp(sel, "heldout") && strcmp(sel, "last"))
            bad(err, "hyper.select: unknown \"%s\"; known: heldout, last", sel);
        else if (!strcmp(sel, "heldout") && !(json_real_value(json_object_get(o, "heldout")) > 0))
            bad(err, "hyper.heldout: must be above 0 when hyper.select is \"heldout\"");
        else {
            json_object_set_new(
                o, "lambda_switch",
                json_boolean(sw ? json_is_true(sw) : QPO_HYPER_LAMBDA_SWITCH_DEFAULT));
            rc = 0;
        }
    }
    json_decref(empty);
    return rc;
}

/* independent: the authors' 10 seeded class-balanced draws per loop (repeats allowed);
 * exhaustive: one order walked without repeats (sql/migrations/0015_collect_draw.sql). */
static int check_draw(const json_t *c, json_t *co, qpo_err *err) {
    if (string_field(c, "collect", "draw", "independent", co, err) < 0)
        return -1;
    const char *d = json_string_value(json_object_get(co, "draw"));
    if (strcmp(d, "independent") && strcmp(d, "exhaustive"))
        return bad(err, "collect.draw: unknown rule \"%s\"; known: independent, exhaustive", d);
    return 0;
}

/* Collect shape and test sample: the recipe's 10 x 100 and 100 (NLP) / 200 (math). */
static int check_sampling(const json_t *cfg, json_t *out, qpo_err *err) {
    static const char *const collect_keys[] = {"batches", "batch_size", "draw", NULL};
    static const char *const test_keys[] = {"size", "math_size", "shards", NULL};
    json_t *empty = json_object();
    const json_t *c = json_object_get(cfg, "collect");
    const json_t *t = json_object_get(cfg, "test");
    json_t *co = json_object(), *to = json_object();
    json_object_set_new(out, "collect", co);
    json_object_set_new(out, "test", to);
    int rc = -1;
    if (c && !json_is_object(c))
        bad(err, "collect: must be an object");
    else if (t && !json_is_object(t))
        bad(err, "test: must be an object");
    else if (check_keys(c ? c : empty, "collect", collect_keys, err) == 0 &&
             check_keys(t ? t : empty, "test", test_keys, err) == 0 &&
             int_field(c ? c : empty, "collect", "batches", 10, 1, 1000, co, err) == 0 &&
             int_field(c ? c : empty, "collect", "batch_size", 100, 1, 100000, co, err) == 0 &&
             check_draw(c ? c : empty, co, err) == 0 &&
             int_field(t ? t : empty, "test", "size", 100, 1, 1000000, to, err) == 0 &&
             int_field(t ? t : empty, "test", "math_size", 200, 1, 1000000, to, err) == 0 &&
             int_field(t ? t : empty, "test", "shards", 4, 1, 1000, to, err) == 0)
        rc = 0;
    json_decref(empty);
    return rc;
}

/* InstructEval's folders under ../shared/data/prompts/instructeval/, named as the d0 job
 * reads them. Its low-perplexity prompts were written per model: one folder each. */
static const char *const plain_collections[] = {"instructeval/no_instruction",
                                                "instructeval/generic_instruction",
                                                "instructeval/ape",
                                                "instructeval/rlprompt",
                                                "instructeval/manual",
                                                "instructeval/chat_gpt_prompts",
                                                "prompt_oirl",
                                                NULL};
#define LOW_PERPLEXITY "instructeval/low_perplexity_prompts/"
static const char *const low_perplexity_models[] = {
    "bloom1b1", "bloom1b7", "bloom3b", "bloom7b1", "gptneo1b3", "gptneo2b7", "gptneox20b",
    "llama13b", "llama7b",  "opt13b",  "opt1b3",   "opt2b7",    "opt6b7",    NULL};
/* The authors' D_0 holds one low-perplexity set, the one written for their target (llama7b). */
#define DEFAULT_LOW_PERPLEXITY LOW_PERPLEXITY "llama7b"

static int known_collection(const char *name) {
    for (const char *const *k = plain_collections; *k; k++)
        if (!strcmp(*k, name))
            return 1;
    size_t plen = strlen(LOW_PERPLEXITY);
    for (const char *const *m = low_perplexity_models; *m && !strncmp(name, LOW_PERPLEXITY, plen);
         m++)
        if (!strcmp(name + plen, *m))
            return 1;
    return 0;
}

static int check_collections(const json_t *d, json_t *o, qpo_err *err) {
    json_t *v = json_object_get(d, "collections");
    if (!v) {
        json_t *all = json_array();
        for (const char *const *k = plain_collections; *k; k++)
            json_array_append_new(all, json_string(*k));
        json_array_insert_new(all, json_array_size(all) - 1, json_string(DEFAULT_LOW_PERPLEXITY));
        json_object_set_new(o, "collections", all);
        return 0;
    }
    if (!json_is_array(v) || !json_array_size(v))
        return bad(err, "d0.collections: must be a non-empty list");
    size_t i;
    json_t *e;
    json_array_foreach(v, i, e) {
        if (!json_is_string(e) || !known_collection(json_string_value(e)))
            return bad(err,
                       "d0.collections[%zu]: unknown collection; known: instructeval/{"
                       "no_instruction, generic_instruction, ape, rlprompt, manual, "
                       "chat_gpt_prompts, low_perplexity_prompts/MODEL}, prompt_oirl (MODEL: "
                       "bloom1b1, bloom1b7, bloom3b, bloom7b1, gptneo1b3, gptneo2b7, gptneox20b, "
                       "llama13b, llama7b, opt13b, opt1b3, opt2b7, opt6b7)",
                       i);
    }
    json_object_set(o, "collections", v);
    return 0;
}

static int check_d0(const json_t *cfg, json_t *out, qpo_err *err) {
    static const char *const keys[] = {"source", "collections", "queries", "seed", NULL};
    json_t *empty = json_object();
    const json_t *d = json_object_get(cfg, "d0");
    json_t *o = json_object();
    json_object_set_new(out, "d0", o);
    int rc = -1;
    if (d && !json_is_object(d))
        bad(err, "d0: must be an object");
    else if (check_keys(d ? d : empty, "d0", keys, err) == 0 &&
             string_field(d ? d : empty, "d0", "source", "import", o, err) == 0) {
        const char *src = json_string_value(json_object_get(o, "source"));
        if (!strcmp(src, "import"))
            rc = 0;
        else if (strcmp(src, "build"))
            bad(err, "d0.source: unknown source \"%s\"; known: import, build", src);
        else if (check_collections(d ? d : empty, o, err) == 0 &&
                 int_field(d ? d : empty, "d0", "queries", 100, 1, 1000000, o, err) == 0 &&
                 int_field(d ? d : empty, "d0", "seed", 0, 0, 2147483647, o, err) == 0)
            rc = 0;
    }
    json_decref(empty);
    return rc;
}

static int baseline_entries(const json_t *v, json_t *list, seen_set *seen, qpo_err *err) {
    size_t i;
    json_t *e;
    json_array_foreach(v, i, e) {
        static const char *const keys[] = {"name", "prompt", NULL};
        char where[32];
        snprintf(where, sizeof(where), "baselines[%zu]", i);
        if (!json_is_object(e))
            return bad(err, "%s: must be an object {\"name\", \"prompt\"}", where);
        if (check_keys(e, where, keys, err) < 0)
            return -1;
        json_t *name = json_object_get(e, "name"), *prompt = json_object_get(e, "prompt");
        if (!json_is_string(name) || !matches_name(json_string_value(name)))
            return bad(err, "%s.name: must be a string of letters, digits and _ . : -", where);
        if (!json_is_string(prompt))
            return bad(err, "%s.prompt: must be a string (\"\" for no instruction)", where);
        if (!strcmp(json_string_value(name), "best_single") ||
            !strcmp(json_string_value(name), "policy_mode"))
            return bad(err, "%s.name: \"%s\" is chosen by qpo itself; pick another name", where,
                       json_string_value(name));
        if (seen_twice(seen, json_string_value(name), json_string_length(name), "baselines", i,
                       ".name", 1, err) < 0)
            return -1;
        json_array_append_new(list, json_pack("{sOsO}", "name", name, "prompt", prompt));
    }
    return 0;
}

static int check_baselines(const json_t *cfg, const limits *lim, json_t *out, qpo_err *err) {
    json_t *v = json_object_get(cfg, "baselines");
    json_t *list = json_array();
    json_object_set_new(out, "baselines", list);
    if (!v)
        return 0;
    if (!json_is_array(v))
        return bad(err, "baselines: must be a list of {\"name\", \"prompt\"}");
    if ((long long)json_array_size(v) > lim->max_baselines)
        return bad(err,
                   "baselines: %zu baselines is more than limits.max_baselines (%lld); "
                   "raise it in the config if meant",
                   json_array_size(v), lim->max_baselines);
    seen_set *seen = seen_new();
    int rc = baseline_entries(v, list, seen, err);
    seen_free(seen);
    return rc;
}

/* reward.avg_acc_weight: the weight of the prompt's avg_acc in every raw reward of the
 * experiment's runs (the authors' 10 unless chosen; reward_formula.h says why one would). */
static int check_reward(const json_t *cfg, json_t *out, qpo_err *err) {
    static const char *const keys[] = {"avg_acc_weight", NULL};
    json_t *empty = json_object();
    const json_t *r = json_object_get(cfg, "reward");
    json_t *o = json_object();
    json_object_set_new(out, "reward", o);
    int rc = -1;
    if (r && !json_is_object(r))
        bad(err, "reward: must be an object");
    else if (check_keys(r ? r : empty, "reward", keys, err) == 0 &&
             real_field(r ? r : empty, "reward", "avg_acc_weight", QPO_REWARD_AVG_ACC_WEIGHT, 0,
                        QPO_REWARD_AVG_ACC_WEIGHT_MAX, o, err) == 0)
        rc = 0;
    json_decref(empty);
    return rc;
}

/* The per-query oracle costs every D_0 source prompt on every test item: off unless asked. */
static int check_oracle(const json_t *cfg, json_t *out, qpo_err *err) {
    const json_t *v = json_object_get(cfg, "oracle");
    if (v && !json_is_boolean(v))
        return bad(err, "oracle: must be true or false");
    json_object_set_new(out, "oracle", json_boolean(v && json_is_true(v)));
    return 0;
}

json_t *qpo_config_resolve(const json_t *config, qpo_err *err) {
    static const char *const keys[] = {"name",   "description", "tasks",     "settings", "seeds",
                                       "loops",  "targets",     "policy",    "hyper",    "collect",
                                       "test",   "d0",          "baselines", "oracle",   "limits",
                                       "reward", NULL};
    limits lim;
    if (!json_is_object(config))
        return bad(err, "config: must be a JSON object"), NULL;
    json_t *out = json_object();
    json_t *name = json_object_get(config, "name");
    json_t *desc = json_object_get(config, "description");
    int rc = check_keys(config, "", keys, err);
    if (rc == 0 && name && (!json_is_string(name) || !json_string_length(name)))
        rc = bad(err, "name: must be a non-empty string");
    if (rc == 0 && desc && !json_is_string(desc))
        rc = bad(err, "description: must be a string");
    if (rc == 0) {
        if (name)
            json_object_set(out, "name", name);
        if (desc)
            json_object_set(out, "description", desc);
    }
    if (rc < 0 || check_limits(config, &lim, out, err) < 0 || check_tasks(config, out, err) < 0 ||
        check_settings(config, out, err) < 0 || check_seeds(config, &lim, out, err) < 0 ||
        int_field(config, "", "loops", 4, 1, 100, out, err) < 0 ||
        check_targets(config, out, err) < 0 || check_runs(out, &lim, err) < 0 ||
        check_policy(config, out, err) < 0 || check_hyper(config, out, err) < 0 ||
        check_sampling(config, out, err) < 0 || check_d0(config, out, err) < 0 ||
        check_reward(config, out, err) < 0 || check_baselines(config, &lim, out, err) < 0 ||
        check_oracle(config, out, err) < 0) {
        json_decref(out);
        return NULL;
    }
    return out;
}

json_t *qpo_config_load_file(const char *path, qpo_err *err) {
    return qpo_config_load_file_max(path, QPO_CONFIG_MAX_BYTES, err);
}

/* The size is checked while reading, before any parsing: a 1 GB file (or a pipe that never
 * ends) would otherwise become a JSON tree and a jsonb row before any field check ran. */
typedef struct capped_reader {
    FILE *f;
    long long left; /* below 0: the file is over the limit */
} capped_reader;

static size_t read_capped(void *buf, size_t size, void *data) {
    capped_reader *r = data;
    size_t want = (long long)size <= r->left ? size : (size_t)r->left + 1;
    size_t n = fread(buf, 1, want, r->f);
    r->left -= (long long)n;
    return r->left < 0 ? (size_t)-1 : n; /* -1: jansson stops with a read error */
}

static void too_big(const char *path, long long max_bytes, qpo_err *err) {
    qpo_err_set(err, QPO_EXIT_USAGE, "%s: the config file is larger than %lld bytes", path,
                max_bytes);
    qpo_err_hint(err, "raise the limit with --max-config-bytes N if the file is meant to be this "
                      "large");
}

json_t *qpo_config_load_file_max(const char *path, long long max_bytes, qpo_err *err) {
    capped_reader r = {fopen(path, "rb"), max_bytes};
    if (!r.f) {
        qpo_err_set(err, QPO_EXIT_USAGE, "%s: cannot read the config file", path);
        qpo_err_detail(err, "%s", strerror(errno));
        return NULL;
    }
    json_error_t jerr;
    json_t *cfg = json_load_callback(read_capped, &r, JSON_REJECT_DUPLICATES, &jerr);
    int read_failed = ferror(r.f);
    fclose(r.f);
    if (r.left < 0) {
        json_decref(cfg);
        too_big(path, max_bytes, err);
        return NULL;
    }
    if (!cfg && read_failed) {
        qpo_err_set(err, QPO_EXIT_USAGE, "%s: cannot read the config file", path);
        qpo_err_detail(err, "%s", jerr.text);
        return NULL;
    }
    if (!cfg) {
        qpo_err_set(err, QPO_EXIT_USAGE, "%s:%d:%d: %s", path, jerr.line, jerr.column, jerr.text);
        qpo_err_hint(err, "experiment configs are JSON objects (config/README.md)");
        return NULL;
    }
    return cfg;
}

int qpo_config_each_run(const json_t *resolved, qpo_config_run_fn fn, void *arg) {
    size_t a, b, d, e;
    json_t *task, *setting, *target, *seed;
    json_array_foreach(json_object_get(resolved, "tasks"), a, task) {
        json_array_foreach(json_object_get(resolved, "settings"), b, setting) {
            json_array_foreach(json_object_get(resolved, "targets"), d, target) {
                json_array_foreach(json_object_get(resolved, "seeds"), e, seed) {
                    int rc = fn(json_string_value(task), json_string_value(setting),
                                json_string_value(json_object_get(target, "name")),
                                (long long)json_integer_value(seed), arg);
                    if (rc)
                        return rc;
                }
            }
        }
    }
    return 0;
}
