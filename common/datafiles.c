/* The data folder resolver and the compiled-in manifest: see datafiles.h. */
#include "datafiles.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* Generated from config/data-manifest.json by common/CMakeLists.txt. */
extern const char qpo_data_manifest_json[];

json_t *qpo_data_manifest(qpo_err *err) {
    json_error_t je;
    json_t *m = json_loads(qpo_data_manifest_json, 0, &je);
    if (!m || !json_is_array(json_object_get(m, "datasets"))) {
        qpo_err_set(err, QPO_EXIT_RUNTIME, "the compiled-in data manifest cannot be read");
        qpo_err_detail(err, "config/data-manifest.json:%d: %s", je.line,
                       m ? "no \"datasets\" list" : je.text);
        json_decref(m);
        return NULL;
    }
    return m;
}

const json_t *qpo_data_set(const json_t *manifest, const char *name, qpo_err *err) {
    size_t i;
    const json_t *set;
    char known[512] = "";
    size_t used = 0;
    json_array_foreach(json_object_get(manifest, "datasets"), i, set) {
        const char *n = json_string_value(json_object_get(set, "name"));
        if (n && !strcmp(n, name))
            return set;
        if (n && used < sizeof(known))
            used +=
                (size_t)snprintf(known + used, sizeof(known) - used, "%s%s", used ? ", " : "", n);
    }
    qpo_err_set(err, QPO_EXIT_USAGE, "unknown data set \"%s\"", name);
    qpo_err_detail(err, "known: %s (config/data-manifest.json)", known);
    return NULL;
}

static bool is_dir(const char *path) {
    struct stat st;
    return path && stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

static int put(char *buf, size_t n, const char *what, const char *a, const char *b, qpo_err *err) {
    if ((size_t)snprintf(buf, n, "%s%s", a, b) >= n)
        return qpo_err_set(err, QPO_EXIT_USAGE, "%s: path too long: %s%s", what, a, b);
    return 0;
}

int qpo_data_cache_dir(const char *explicit_dir, char *buf, size_t n, qpo_err *err) {
    if (explicit_dir && *explicit_dir)
        return put(buf, n, "--cache", explicit_dir, "", err);
    const char *env = getenv("QPO_CACHE_DIR");
    if (env && *env)
        return put(buf, n, "$QPO_CACHE_DIR", env, "", err);
    env = getenv("XDG_CACHE_HOME");
    if (env && *env)
        return put(buf, n, "$XDG_CACHE_HOME", env, "/qpo", err);
    env = getenv("HOME");
    if (env && *env)
        return put(buf, n, "$HOME", env, "/.cache/qpo", err);
    qpo_err_set(err, QPO_EXIT_USAGE, "no cache folder: $HOME is not set");
    qpo_err_hint(err, "pass --cache DIR or set QPO_CACHE_DIR");
    return -1;
}

static int must_be_dir(const char *what, const char *dir, char *buf, size_t n, qpo_err *err) {
    if (!is_dir(dir)) {
        qpo_err_set(err, QPO_EXIT_USAGE, "%s %s is not a folder", what, dir);
        qpo_err_hint(err, "a data folder laid out as ../shared/data (tweet_eval_emotion/, "
                          "gpt2_bpe/, prompts/, ...): 'qpo data fetch NAME' makes one");
        return -1;
    }
    return put(buf, n, what, dir, "", err);
}

int qpo_data_dir(const char *explicit_dir, char *buf, size_t n, qpo_err *err) {
    if (explicit_dir)
        return must_be_dir("--data", explicit_dir, buf, n, err);
    const char *env = getenv("QPO_DATA_DIR");
    if (env && *env)
        return must_be_dir("$QPO_DATA_DIR", env, buf, n, err);
    if (is_dir("../shared/data"))
        return put(buf, n, "data", "../shared/data", "", err);
    qpo_err quiet = {0};
    if (qpo_data_cache_dir(NULL, buf, n, &quiet) == 0 && is_dir(buf))
        return 0;
    buf[0] = '\0';
    return 0;
}
