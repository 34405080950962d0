/* qpo submit --dry-run: the plan of a config, counted and estimated, nothing written. */
#include <stdio.h>
#include <stdlib.h>

#include "cmd_util.h"
#include "dry_run.h"
#ifdef QPO_HAVE_SOURCE_PROMPTS
#include "source_prompts.h"
#endif

/* What a d0 build would read: the prompt files under $QPO_PROMPTS_DIR, as the d0 job does. */
static long count_prompts(const char *task, const json_t *collections, void *arg) {
    (void)arg;
#ifdef QPO_HAVE_SOURCE_PROMPTS
    const char *dir = getenv("QPO_PROMPTS_DIR");
    if (!dir || !*dir)
        return -1;
    qpo_source_prompt *list = NULL;
    size_t n = 0, i;
    json_t *c;
    qpo_err err = {0};
    json_array_foreach(collections, i, c) {
        if (qpo_source_prompts_load(dir, json_string_value(c), task, &list, &n, &err)) {
            fprintf(stderr, "qpo: warning: %s; its prompts are not counted\n", err.msg);
            qpo_err_clear(&err);
        }
    }
    qpo_source_prompts_free(list, n);
    return (long)n;
#else
    (void)task;
    (void)collections;
    return -1;
#endif
}

static void print_counts(const char *title, const json_t *section) {
    printf("%s: %lld\n", title, (long long)json_integer_value(json_object_get(section, "total")));
    const char *kind;
    json_t *n;
    json_object_foreach((json_t *)json_object_get(section, "by_kind"), kind, n) {
        printf("  %-18s %lld\n", kind, (long long)json_integer_value(n));
    }
}

static void print_plan(const char *name, const json_t *s) {
    printf("experiment \"%s\": dry run, nothing written\n", name);
    printf("runs: %lld\n", (long long)json_integer_value(json_object_get(s, "runs")));
    print_counts("jobs", json_object_get(s, "jobs"));
    print_counts("estimated LLM calls (before cache hits and retries)",
                 json_object_get(s, "llm_calls"));
    printf("estimated prompt tokens: %lld\n",
           (long long)json_integer_value(json_object_get(s, "prompt_tokens")));
    printf("completion tokens at most: %lld\n",
           (long long)json_integer_value(json_object_get(s, "completion_tokens_max")));
    size_t i;
    json_t *note;
    json_array_foreach(json_object_get(s, "notes"), i, note) {
        printf("note: %s\n", json_string_value(note));
    }
}

int qpo_submit_dry_run(const char *db, const char *name, const json_t *resolved, int as_json) {
    qpo_err err = {0};
    PGconn *conn = qpo_sched_connect(db, "qpo submit --dry-run", &err);
    json_t *summary = conn ? qpo_dry_run(conn, resolved, count_prompts, NULL, &err) : NULL;
    PQfinish(conn);
    if (!summary)
        return qpo_err_print(&err);
    if (as_json) {
        json_object_set_new(summary, "name", json_string(name));
        json_dumpf(summary, stdout, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
        printf("\n");
    } else {
        print_plan(name, summary);
    }
    json_decref(summary);
    return 0;
}
