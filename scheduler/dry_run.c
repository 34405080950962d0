/* The estimate behind `qpo submit --dry-run` (dry_run.h). Calls are counted per job from its
 * payload the way the reward workers make them (workers/reward/scoring.h): one completion per
 * verbalizer per demonstration set for labels, one chat completion for math. Tokens are
 * estimated as characters / 4, the target client's own estimate for rate limits. */
#include "dry_run.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "db.h"
#include "plan.h"
#include "tasks.h"

/* A source prompt, its template and answer cue, in characters: the instructions of the
 * InstructEval and Prompt-OIRL collections are one or two sentences. */
#define PROMPT_CHARS 160
#define CHARS_PER_TOKEN 4

typedef struct task_info {
    const char *name;
    long test_items; /* in the database; -1: none imported */
    double query_chars;
} task_info;

typedef struct dry {
    PGconn *conn;
    const json_t *resolved;
    qpo_plan_run *runs;
    size_t nruns;
    task_info tasks[32];
    size_t ntasks;
    qpo_dry_prompt_count count;
    void *count_arg;
    json_t *notes;
    double prompt_tokens, completion_tokens;
} dry;

static int add_run(const char *task, const char *setting, const char *target, long long seed,
                   void *arg) {
    dry *d = arg;
    qpo_plan_run *grown = realloc(d->runs, (d->nruns + 1) * sizeof(*grown));
    if (!grown)
        return -1;
    d->runs = grown;
    /* Ids as the database would give them to a fresh experiment's runs, in this order. */
    d->runs[d->nruns] = (qpo_plan_run){(int64_t)d->nruns + 1, task, setting, target, (int)seed};
    d->nruns++;
    return 0;
}

static void note(dry *d, const char *fmt, const char *a, const char *b) {
    char text[512];
    snprintf(text, sizeof text, fmt, a, b ? b : "");
    size_t i;
    json_t *n;
    json_array_foreach(d->notes, i, n) {
        if (!strcmp(json_string_value(n), text))
            return;
    }
    json_array_append_new(d->notes, json_string(text));
}

static task_info *task_of(dry *d, const char *name, qpo_err *err) {
    for (size_t i = 0; i < d->ntasks; i++)
        if (!strcmp(d->tasks[i].name, name))
            return &d->tasks[i];
    if (d->ntasks == sizeof d->tasks / sizeof d->tasks[0]) {
        qpo_err_set(err, QPO_EXIT_USAGE, "more than %zu tasks in one experiment", d->ntasks);
        return NULL;
    }
    const char *p[] = {name};
    PGresult *res = qpo_db_named(d->conn, "dryrun_task_sizes", 1, p, err);
    if (!res)
        return NULL;
    task_info *t = &d->tasks[d->ntasks++];
    *t = (task_info){name, -1, 0};
    double chars = 0, items = 0;
    for (int r = 0; r < PQntuples(res); r++) {
        double n = (double)qpo_db_int64(res, r, 1);
        if (!strcmp(PQgetvalue(res, r, 0), "test"))
            t->test_items = (long)n;
        chars += n * strtod(PQgetvalue(res, r, 2), NULL);
        items += n;
    }
    PQclear(res);
    t->query_chars = items > 0 ? chars / items : 0;
    if (items == 0)
        note(d,
             "task %s has no items in the database: test sizes are the config's and tokens "
             "count the prompts only (qpo data import %s)",
             name, name);
    return t;
}

static int geti(const json_t *o, const char *key) {
    return (int)json_integer_value(json_object_get(o, key));
}

/* Calls for one (item, prompt) pair, as the reward workers score it. */
static long calls_per_pair(const qpo_task *task, const char *setting, int sets_few_shot) {
    if (task->type == QPO_TASK_MATH)
        return 1;
    return (long)task->n_labels * (!strcmp(setting, "few_shot") ? sets_few_shot : 1);
}

/* Source prompts of the run's D_0: the files a d0 build reads, or the imported records. */
static long source_prompts(dry *d, const qpo_plan_run *r, const qpo_plan *plan, qpo_err *err) {
    for (size_t i = 0; i < plan->n; i++) {
        const qpo_plan_job *j = &plan->jobs[i];
        if (!strcmp(j->kind, "d0") &&
            !strcmp(json_string_value(json_object_get(j->payload, "task")), r->task)) {
            long n = d->count ? d->count(r->task, json_object_get(j->payload, "collections"),
                                         d->count_arg)
                              : -1;
            if (n < 0)
                note(d,
                     "the source prompts of %s are not counted: set QPO_PROMPTS_DIR to the "
                     "folder the d0 workers read%s",
                     r->task, NULL);
            return n < 0 ? 0 : n;
        }
    }
    const char *p[] = {r->task, r->setting, r->target};
    PGresult *res = qpo_db_named(d->conn, "dryrun_d0_prompts", 3, p, err);
    if (!res)
        return -1;
    long n = (long)qpo_db_int64(res, 0, 0);
    PQclear(res);
    if (n == 0)
        note(d, "no D_0 of %s imported yet for %s: its oracle is not counted", r->task, r->setting);
    return n;
}

/* Items one score shard reads: ord % shards == shard among the first test_n. */
static long shard_items(long test_n, int shard, int shards) {
    return shard < test_n ? (test_n - shard + shards - 1) / shards : 0;
}

/* pairs x calls per pair, with their tokens added to d's totals. */
static long spend(dry *d, const qpo_task *task, const qpo_plan_run *r, const task_info *t,
                  long pairs, int few_shot_sets) {
    long calls = pairs * calls_per_pair(task, r->setting, few_shot_sets);
    double chars = t->query_chars + PROMPT_CHARS;
    if (!strcmp(r->setting, "few_shot") && task->type != QPO_TASK_MATH)
        chars += QPO_FEW_SHOT_DEMOS * (t->query_chars + PROMPT_CHARS / 4);
    d->prompt_tokens += (double)calls * (chars / CHARS_PER_TOKEN + 1);
    d->completion_tokens += (double)calls * (task->type == QPO_TASK_MATH ? QPO_MATH_MAX_TOKENS : 1);
    return calls;
}

/* The LLM calls of one planned job; -1 with err set when the database cannot be read. */
static long job_calls(dry *d, const qpo_plan *plan, const qpo_plan_job *j, qpo_err *err) {
    const qpo_plan_run *r = &d->runs[j->run_id - 1];
    const qpo_task *task = qpo_task_find(r->task);
    task_info *t = task_of(d, r->task, err);
    if (!t || !task)
        return t ? 0 : -1;
    const json_t *p = j->payload;
    if (!strcmp(j->kind, "d0")) {
        long prompts = source_prompts(d, r, plan, err);
        return prompts < 0
                   ? -1
                   : spend(d, task, r, t, prompts * geti(p, "queries"), QPO_FEW_SHOT_SETS_COLLECT);
    }
    if (!strcmp(j->kind, "reward"))
        return spend(d, task, r, t, geti(json_object_get(d->resolved, "collect"), "batch_size"),
                     QPO_FEW_SHOT_SETS_COLLECT);
    if (strcmp(j->kind, "score"))
        return 0; /* train, generate, evaluate-generate, merge, import-check: no LLM */
    const json_t *test = json_object_get(d->resolved, "test");
    long test_n = geti(test, qpo_config_task_is_math(r->task) ? "math_size" : "size");
    if (t->test_items >= 0 && t->test_items < test_n)
        test_n = t->test_items;
    long pairs = shard_items(test_n, geti(p, "shard"), geti(p, "shards"));
    if (!strcmp(json_string_value(json_object_get(p, "source")), "oracle")) {
        long prompts = source_prompts(d, r, plan, err);
        if (prompts < 0)
            return -1;
        pairs *= prompts;
    }
    return spend(d, task, r, t, pairs, QPO_FEW_SHOT_SETS_TEST);
}

static void count(json_t *by_kind, const char *kind, long n) {
    json_int_t was = json_integer_value(json_object_get(by_kind, kind));
    json_object_set_new(by_kind, kind, json_integer(was + n));
}

static json_t *summarise(dry *d, const qpo_plan *plan, qpo_err *err) {
    json_t *jobs = json_object(), *calls = json_object();
    long total_calls = 0;
    for (size_t i = 0; i < plan->n; i++) {
        const qpo_plan_job *j = &plan->jobs[i];
        long n = job_calls(d, plan, j, err);
        if (n < 0) {
            json_decref(jobs);
            json_decref(calls);
            return NULL;
        }
        count(jobs, j->kind, 1);
        count(calls, j->kind, n);
        total_calls += n;
    }
    json_t *tasks = json_object();
    for (size_t i = 0; i < d->ntasks; i++)
        json_object_set_new(tasks, d->tasks[i].name,
                            json_pack("{s:o s:f}", "test_items_in_db",
                                      d->tasks[i].test_items < 0
                                          ? json_null()
                                          : json_integer(d->tasks[i].test_items),
                                      "mean_query_chars", d->tasks[i].query_chars));
    return json_pack("{s:I s:{s:I s:o} s:{s:I s:o} s:I s:I s:o s:O}", "runs", (json_int_t)d->nruns,
                     "jobs", "total", (json_int_t)plan->n, "by_kind", jobs, "llm_calls", "total",
                     (json_int_t)total_calls, "by_kind", calls, "prompt_tokens",
                     (json_int_t)(d->prompt_tokens + 0.5), "completion_tokens_max",
                     (json_int_t)(d->completion_tokens + 0.5), "tasks", tasks, "notes", d->notes);
}

json_t *qpo_dry_run(PGconn *conn, const json_t *resolved, qpo_dry_prompt_count count_prompts,
                    void *arg, qpo_err *err) {
    /* A guard as much as a promise: any write by mistake fails instead of landing. */
    if (qpo_db_exec(conn, "SET default_transaction_read_only = on", err) < 0)
        return NULL;
    dry d = {.conn = conn, .resolved = resolved, .count = count_prompts, .count_arg = arg};
    d.notes = json_array();
    json_t *out = NULL;
    qpo_plan plan = {0};
    if (qpo_config_each_run(resolved, add_run, &d) != 0)
        qpo_err_set(err, QPO_EXIT_RUNTIME, "out of memory listing the runs");
    else if (qpo_plan_build(0, resolved, d.runs, d.nruns, &plan, err) == 0)
        out = summarise(&d, &plan, err);
    qpo_plan_free(&plan);
    free(d.runs);
    json_decref(d.notes);
    return out;
}
