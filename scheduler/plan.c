/* Building and writing the DAG of an experiment. Keys name the job's place in the plan
 * (run, kind, loop, shard), so planning twice, or by two schedulers, writes each job once. */
#include "plan.h"

#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "queue.h"

#define NO_PARENT ((size_t)-1)

static void add_parent(qpo_plan *plan, size_t child, size_t parent);

void qpo_plan_free(qpo_plan *plan) {
    for (size_t i = 0; i < plan->n; i++) {
        json_decref(plan->jobs[i].payload);
        free(plan->jobs[i].parents);
    }
    free(plan->jobs);
    memset(plan, 0, sizeof(*plan));
}

/* Appends a job; returns its index. parents: up to two single parents (NO_PARENT for none). */
static size_t add(qpo_plan *plan, const char *kind, int64_t run_id, int priority, json_t *payload,
                  size_t p1, size_t p2, const char *key_fmt, ...)
    __attribute__((format(printf, 8, 9)));
static size_t add(qpo_plan *plan, const char *kind, int64_t run_id, int priority, json_t *payload,
                  size_t p1, size_t p2, const char *key_fmt, ...) {
    if (plan->n == plan->cap) {
        plan->cap = plan->cap ? plan->cap * 2 : 64;
        plan->jobs = realloc(plan->jobs, plan->cap * sizeof(*plan->jobs));
        if (!plan->jobs)
            abort();
    }
    qpo_plan_job *j = &plan->jobs[plan->n];
    memset(j, 0, sizeof(*j));
    snprintf(j->kind, sizeof(j->kind), "%s", kind);
    va_list ap;
    va_start(ap, key_fmt);
    vsnprintf(j->key, sizeof(j->key), key_fmt, ap);
    va_end(ap);
    j->payload = payload;
    j->run_id = run_id;
    j->priority = priority;
    plan->n++;
    size_t me = plan->n - 1;
    if (p1 != NO_PARENT)
        add_parent(plan, me, p1);
    if (p2 != NO_PARENT)
        add_parent(plan, me, p2);
    return me;
}

static void add_parent(qpo_plan *plan, size_t child, size_t parent) {
    qpo_plan_job *j = &plan->jobs[child];
    j->parents = realloc(j->parents, (j->nparents + 1) * sizeof(*j->parents));
    if (!j->parents)
        abort();
    j->parents[j->nparents++] = parent;
    if (plan->jobs[parent].level + 1 > j->level)
        j->level = plan->jobs[parent].level + 1;
}

static int geti(const json_t *obj, const char *section, const char *key) {
    return (int)json_integer_value(json_object_get(json_object_get(obj, section), key));
}

/* The d0 build's collections for one task: math tasks use Prompt-OIRL's, NLP tasks
 * InstructEval's. */
static json_t *collections_for(const json_t *resolved, const char *task) {
    json_t *out = json_array();
    size_t i;
    json_t *c;
    int math = qpo_config_task_is_math(task);
    json_array_foreach(json_object_get(json_object_get(resolved, "d0"), "collections"), i, c) {
        int is_oirl = !strncmp(json_string_value(c), "prompt_oirl", 11);
        if (is_oirl == math)
            json_array_append(out, c);
    }
    return out;
}

/* The first job of D_0 for a run: its shared d0 build (looked up or added), or an
 * import-check of its own. */
static size_t plan_d0(int64_t exp, const json_t *resolved, const qpo_plan_run *r, qpo_plan *plan) {
    const json_t *d0 = json_object_get(resolved, "d0");
    if (strcmp(json_string_value(json_object_get(d0, "source")), "build")) {
        json_t *payload = json_pack("{sI ss ss ss}", "run_id", (json_int_t)r->id, "task", r->task,
                                    "setting", r->setting, "target", r->target);
        return add(plan, "import-check", r->id, 0, payload, NO_PARENT, NO_PARENT,
                   "run:%lld:import-check", (long long)r->id);
    }
    char key[200];
    snprintf(key, sizeof(key), "exp:%lld:d0:%s:%s:%s", (long long)exp, r->task, r->setting,
             r->target);
    for (size_t i = 0; i < plan->n; i++)
        if (!strcmp(plan->jobs[i].key, key))
            return i;
    json_t *payload = json_pack(
        "{ss ss ss sO sO so sO}", "task", r->task, "setting", r->setting, "target", r->target,
        "queries", json_object_get(d0, "queries"), "seed", json_object_get(d0, "seed"),
        "collections", collections_for(resolved, r->task), "avg_acc_weight",
        json_object_get(json_object_get(resolved, "reward"), "avg_acc_weight"));
    /* Shared by the seeds of (task, setting, target); it belongs to the first run planned. */
    return add(plan, "d0", r->id, 0, payload, NO_PARENT, NO_PARENT, "%s", key);
}

static void plan_loop(const json_t *resolved, const qpo_plan_run *r, int t, int loops, size_t *prev,
                      qpo_plan *plan) {
    long long id = (long long)r->id;
    int shards = geti(resolved, "test", "shards");
    int batches = geti(resolved, "collect", "batches");
    int test_size = qpo_config_task_is_math(r->task) ? geti(resolved, "test", "math_size")
                                                     : geti(resolved, "test", "size");
    /* Later loops first: a run that started should finish before new ones start. */
    int prio = t;
    size_t train = add(plan, "train", r->id, prio, json_pack("{sI si}", "run_id", id, "loop", t),
                       *prev, NO_PARENT, "run:%lld:train:%d", id, t);
    size_t evalgen = add(plan, "evaluate-generate", r->id, prio,
                         json_pack("{sI si si}", "run_id", id, "loop", t, "test_size", test_size),
                         train, NO_PARENT, "run:%lld:evaluate-generate:%d", id, t);
    for (int s = 0; s < shards; s++)
        add(plan, "score", r->id, prio,
            json_pack("{sI si si si ss}", "run_id", id, "loop", t, "shard", s, "shards", shards,
                      "source", "qpo"),
            evalgen, NO_PARENT, "run:%lld:score:%d:%d", id, t, s);
    /* Query dependence: the policy's own most frequent test prompt on every test item. */
    for (int s = 0; s < shards; s++)
        add(plan, "score", r->id, prio,
            json_pack("{sI si si si ss ss}", "run_id", id, "loop", t, "shard", s, "shards", shards,
                      "source", "baseline:policy_mode", "select", "policy_mode"),
            evalgen, NO_PARENT, "run:%lld:score:%d:baseline:policy_mode:%d", id, t, s);
    if (t == loops)
        return;
    size_t gen = add(plan, "generate", r->id, prio,
                     json_pack("{sI si si si}", "run_id", id, "loop", t, "batches", batches,
                               "batch_size", geti(resolved, "collect", "batch_size")),
                     train, NO_PARENT, "run:%lld:generate:%d", id, t);
    size_t first_reward = plan->n;
    for (int b = 0; b < batches; b++)
        add(plan, "reward", r->id, prio,
            json_pack("{sI si si}", "run_id", id, "loop", t, "batch", b), gen, NO_PARENT,
            "run:%lld:reward:%d:%d", id, t, b);
    size_t merge = add(plan, "merge", r->id, prio, json_pack("{sI si}", "run_id", id, "loop", t),
                       NO_PARENT, NO_PARENT, "run:%lld:merge:%d", id, t);
    for (int b = 0; b < batches; b++)
        add_parent(plan, merge, first_reward + (size_t)b);
    *prev = merge;
}

static void plan_baselines(const json_t *resolved, const qpo_plan_run *r, size_t d0,
                           qpo_plan *plan) {
    long long id = (long long)r->id;
    int shards = geti(resolved, "test", "shards");
    size_t i;
    json_t *b;
    json_array_foreach(json_object_get(resolved, "baselines"), i, b) {
        const char *name = json_string_value(json_object_get(b, "name"));
        char source[160];
        snprintf(source, sizeof(source), "baseline:%s", name);
        for (int s = 0; s < shards; s++)
            add(plan, "score", r->id, 0,
                json_pack("{sI si si si ss sO}", "run_id", id, "loop", 0, "shard", s, "shards",
                          shards, "source", source, "prompt", json_object_get(b, "prompt")),
                d0, NO_PARENT, "run:%lld:score:0:%s:%d", id, source, s);
    }
    /* Chosen by the program from D_0 when the job runs: the best single source prompt, and
     * (when configured) every source prompt for the per-query oracle. */
    for (int s = 0; s < shards; s++)
        add(plan, "score", r->id, 0,
            json_pack("{sI si si si ss ss}", "run_id", id, "loop", 0, "shard", s, "shards", shards,
                      "source", "baseline:best_single", "select", "best_single"),
            d0, NO_PARENT, "run:%lld:score:0:baseline:best_single:%d", id, s);
    if (!json_is_true(json_object_get(resolved, "oracle")))
        return;
    for (int s = 0; s < shards; s++)
        add(plan, "score", r->id, 0,
            json_pack("{sI si si si ss ss}", "run_id", id, "loop", 0, "shard", s, "shards", shards,
                      "source", "oracle", "select", "oracle"),
            d0, NO_PARENT, "run:%lld:score:0:oracle:%d", id, s);
}

int qpo_plan_build(int64_t experiment_id, const json_t *resolved, const qpo_plan_run *runs,
                   size_t nruns, qpo_plan *plan, qpo_err *err) {
    int loops = (int)json_integer_value(json_object_get(resolved, "loops"));
    for (size_t i = 0; i < nruns; i++) {
        size_t d0 = plan_d0(experiment_id, resolved, &runs[i], plan);
        size_t prev = d0;
        for (int t = 1; t <= loops; t++)
            plan_loop(resolved, &runs[i], t, loops, &prev, plan);
        plan_baselines(resolved, &runs[i], d0, plan);
    }
    return 0;
}

int qpo_plan_enqueue(PGconn *conn, const qpo_plan *plan, size_t fault_after_jobs, size_t *created,
                     qpo_err *err) {
    int64_t *ids = calloc(plan->n ? plan->n : 1, sizeof(*ids));
    qpo_enqueue_opts *opts = calloc(plan->n ? plan->n : 1, sizeof(*opts));
    size_t nedges = 0;
    for (size_t i = 0; i < plan->n; i++)
        nedges += plan->jobs[i].nparents;
    /* parent_ids[first_edge[i] ...] holds job i's parents' ids once they are written. */
    int64_t *parent_ids = calloc(nedges ? nedges : 1, sizeof(*parent_ids));
    size_t *first_edge = calloc(plan->n ? plan->n : 1, sizeof(*first_edge));
    for (size_t i = 0, e = 0; i < plan->n; e += plan->jobs[i].nparents, i++)
        first_edge[i] = e;
    size_t *index = calloc(plan->n ? plan->n : 1, sizeof(*index));
    bool *existed = calloc(plan->n ? plan->n : 1, sizeof(*existed));
    int max_level = 0, rc = 0;
    size_t written = 0;
    *created = 0;
    for (size_t i = 0; i < plan->n; i++)
        if (plan->jobs[i].level > max_level)
            max_level = plan->jobs[i].level;
    for (int level = 0; level <= max_level && rc == 0; level++) {
        size_t n = 0;
        char **payloads = calloc(plan->n ? plan->n : 1, sizeof(*payloads));
        for (size_t i = 0; i < plan->n; i++) {
            const qpo_plan_job *j = &plan->jobs[i];
            if (j->level != level)
                continue;
            for (size_t p = 0; p < j->nparents; p++)
                parent_ids[first_edge[i] + p] = ids[j->parents[p]];
            payloads[n] = json_dumps(j->payload, JSON_COMPACT | JSON_SORT_KEYS);
            opts[n] = (qpo_enqueue_opts){.kind = j->kind,
                                         .payload_json = payloads[n],
                                         .priority = j->priority,
                                         .idempotency_key = j->key,
                                         .run_id = j->run_id,
                                         .parents = &parent_ids[first_edge[i]],
                                         .nparents = j->nparents};
            index[n++] = i;
        }
        int64_t *level_ids = calloc(n ? n : 1, sizeof(*level_ids));
        rc = qpo_enqueue_batch_ex(conn, opts, n, level_ids, existed, err);
        for (size_t k = 0; k < n; k++) {
            ids[index[k]] = level_ids[k];
            *created += rc == 0 && !existed[k];
            free(payloads[k]);
        }
        free(level_ids);
        free(payloads);
        written += n;
        if (rc == 0 && fault_after_jobs && written >= fault_after_jobs)
            raise(SIGKILL);
    }
    free(ids);
    free(opts);
    free(parent_ids);
    free(first_edge);
    free(index);
    free(existed);
    return rc;
}
