/* Finding pretrained GPT-2 weights. See gpt2_weights.h. */
#include "gpt2_weights.h"

#include <glob.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static int is_file(const char *dir, const char *name) {
    char path[4096];
    struct stat st;
    snprintf(path, sizeof path, "%s/%s", dir, name);
    return stat(path, &st) == 0 && S_ISREG(st.st_mode); /* follows the cache's symlinks */
}

/* NULL when dir has both files, else what it lacks. */
static const char *lacks(const char *dir) {
    struct stat st;
    if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode))
        return "no such folder";
    if (!is_file(dir, QPO_GPT2_CONFIG))
        return "no " QPO_GPT2_CONFIG;
    if (!is_file(dir, QPO_GPT2_WEIGHTS))
        return "no " QPO_GPT2_WEIGHTS;
    return NULL;
}

static int take(const char *dir, char *out, size_t len) {
    snprintf(out, len, "%s", dir);
    return 0;
}

/* The cache's snapshot of refs/main, then any complete snapshot (sorted, so every process
 * picks the same). */
static int from_cache(const char *hub, char *out, size_t len) {
    char path[8192], rev[128] = "";
    snprintf(path, sizeof path, "%s/models--gpt2/refs/main", hub);
    FILE *f = fopen(path, "r");
    if (f) {
        if (fgets(rev, sizeof rev, f))
            rev[strcspn(rev, "\r\n")] = '\0';
        fclose(f);
    }
    if (rev[0] && !strchr(rev, '/')) {
        snprintf(path, sizeof path, "%s/models--gpt2/snapshots/%s", hub, rev);
        if (!lacks(path))
            return take(path, out, len);
    }
    snprintf(path, sizeof path, "%s/models--gpt2/snapshots/*", hub);
    glob_t g;
    int rc = -1;
    if (glob(path, 0, NULL, &g) == 0) {
        for (size_t i = 0; i < g.gl_pathc && rc < 0; i++)
            if (!lacks(g.gl_pathv[i]))
                rc = take(g.gl_pathv[i], out, len);
        globfree(&g);
    }
    return rc;
}

int qpo_gpt2_weights_find(const char *explicit_dir, char *out, size_t len, qpo_err *err) {
    const char *env = getenv("QPO_GPT2_DIR"), *hf_home = getenv("HF_HOME");
    const char *home = getenv("HOME");
    char hub[4096];
    if (hf_home && *hf_home)
        snprintf(hub, sizeof hub, "%s/hub", hf_home);
    else
        snprintf(hub, sizeof hub, "%s/.cache/huggingface/hub", home ? home : "");
    const char *why_explicit = explicit_dir && *explicit_dir ? lacks(explicit_dir) : "not set";
    /* An explicit folder is the user's choice: a bad one is an error, not a fall-through. */
    if (explicit_dir && *explicit_dir && !why_explicit)
        return take(explicit_dir, out, len);
    const char *why_env = "not set";
    if (!(explicit_dir && *explicit_dir)) {
        why_env = env && *env ? lacks(env) : "not set";
        if (env && *env && !why_env)
            return take(env, out, len);
        if (from_cache(hub, out, len) == 0)
            return 0;
    }
    qpo_err_set(err, QPO_EXIT_USAGE,
                "no pretrained GPT-2 weights (" QPO_GPT2_CONFIG " + " QPO_GPT2_WEIGHTS ")");
    if (explicit_dir && *explicit_dir)
        qpo_err_detail(err,
                       "policy.weights %s: %s (given, so $QPO_GPT2_DIR and the cache %s "
                       "were not searched)",
                       explicit_dir, why_explicit, hub);
    else
        qpo_err_detail(err,
                       "looked in policy.weights (not set), $QPO_GPT2_DIR (%s%s%s) and the "
                       "Hugging Face cache %s/models--gpt2/snapshots/*/ (none complete)",
                       env && *env ? env : "", env && *env ? ": " : "", why_env, hub);
    qpo_err_hint(err, "download them (huggingface-cli download gpt2 config.json "
                      "model.safetensors) or name the folder in policy.weights or $QPO_GPT2_DIR");
    return -1;
}
