/* generate (collect prompts, sampled) and evaluate-generate (test prompts, greedy): the loop's
 * checkpoint, the scheduler's item selection, one prompt per query. Every query's random
 * draws come from its own seed (run seed, loop, batch, position), so the prompts do not
 * depend on how queries are batched or which worker runs the job. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "db.h"
#include "log.h"
#include "records.h"
#include "trainer_internal.h"

/* Queries decoded per call: bounds memory and how long a stop request waits. A GPU decodes a
 * thousand at once in about the time the CPU takes for a few (gpt2: about 20 GB of device
 * memory at 1024, mostly the activations prefill shares with training). */
#define GEN_CHUNK 64
#define GEN_CHUNK_GPU 1024

typedef struct gen_items {
    int n;
    int *item_id, *batch;
    uint64_t *seed;
    int32_t *qids, *qmask;
} gen_items;

static void gen_items_free(gen_items *g) {
    free(g->item_id), free(g->batch), free(g->seed), free(g->qids), free(g->qmask);
    memset(g, 0, sizeof *g);
}

static int gen_items_grow(gen_items *g, int add) {
    int n = g->n + add;
    int *a = realloc(g->item_id, sizeof(int) * (n ? n : 1));
    g->item_id = a ? a : g->item_id;
    int *b = realloc(g->batch, sizeof(int) * (n ? n : 1));
    g->batch = b ? b : g->batch;
    uint64_t *s = realloc(g->seed, sizeof(uint64_t) * (n ? n : 1));
    g->seed = s ? s : g->seed;
    int32_t *q = realloc(g->qids, sizeof(int32_t) * QPO_PGDT_QLEN * (n ? n : 1));
    g->qids = q ? q : g->qids;
    int32_t *m = realloc(g->qmask, sizeof(int32_t) * QPO_PGDT_QLEN * (n ? n : 1));
    g->qmask = m ? m : g->qmask;
    return a && b && s && q && m ? 0 : -1;
}

/* Appends the rows of (pos|ord, item_id, query) with their batch and seeds. */
static int add_rows(gen_items *g, PGresult *res, int batch, uint64_t batch_seed,
                    const qpo_tokenizer *tok, qpo_err *err) {
    int rows = PQntuples(res);
    if (gen_items_grow(g, rows)) {
        qpo_err_set(err, QPO_EXIT_RUNTIME, "out of memory for %d queries", g->n + rows);
        return -1;
    }
    for (int r = 0; r < rows; r++) {
        int i = g->n + r;
        g->item_id[i] = atoi(PQgetvalue(res, r, 1));
        g->batch[i] = batch;
        g->seed[i] = qpo_trainer_seed(batch_seed, (uint64_t)atoll(PQgetvalue(res, r, 0)));
        if (qpo_encode_query(tok, PQgetvalue(res, r, 2), g->qids + (size_t)i * QPO_PGDT_QLEN,
                             g->qmask + (size_t)i * QPO_PGDT_QLEN)) {
            qpo_err_set(err, QPO_EXIT_RUNTIME, "out of memory tokenising item %d", g->item_id[i]);
            return -1;
        }
    }
    g->n += rows;
    return 0;
}

char *qpo_trainer_prompt_text(const qpo_tokenizer *tok, const int32_t *ids, int len, char *msg,
                              size_t msglen) {
    if (len > 0 && ids[len - 1] == qpo_tokenizer_eos(tok))
        len--; /* the stop token is not part of the prompt's text */
    size_t outlen;
    char *raw = qpo_tokenizer_decode(tok, ids, (size_t)len, &outlen, msg, msglen);
    if (!raw)
        return NULL;
    char *text = qpo_text_clean_utf8(raw, outlen);
    free(raw);
    qpo_text_strip(text);
    return text;
}

static json_t *decode_rows(const qpo_tokenizer *tok, const gen_items *g, const int32_t *ids,
                           const int *len, int64_t run, int loop, const char *purpose,
                           int64_t job_id, qpo_err *err) {
    json_t *rows = json_array();
    for (int i = 0; i < g->n; i++) {
        char msg[256];
        char *text =
            qpo_trainer_prompt_text(tok, ids + (size_t)i * QPO_PGDT_PLEN, len[i], msg, sizeof msg);
        if (!text) {
            json_decref(rows);
            qpo_err_set(err, QPO_EXIT_RUNTIME, "cannot decode the prompt of item %d",
                        g->item_id[i]);
            qpo_err_detail(err, "%s", msg);
            return NULL;
        }
        json_array_append_new(rows,
                              json_pack("{sI si ss si si ss so}", "run_id", (json_int_t)run, "loop",
                                        loop, "purpose", purpose, "batch", g->batch[i], "item_id",
                                        g->item_id[i], "prompt", text, "job_id",
                                        job_id > 0 ? json_integer(job_id) : json_null()));
        free(text);
    }
    return rows;
}

/* Decodes all items in chunks, checking for a stop request between chunks. */
static qpo_job_status sample_all(const qpo_trainer_env *env, qpo_policy *p, const qpo_gen_opts *o,
                                 const gen_items *g, int32_t *ids, int *len, qpo_err *err) {
    int chunk = qpo_policy_backend(p)->device ? GEN_CHUNK_GPU : GEN_CHUNK;
    qpo_gen_opts oc = *o;
    oc.batch = chunk;
    for (int at = 0; at < g->n; at += chunk) {
        if (env->should_stop && env->should_stop(env->stop_arg))
            return QPO_JOB_CANCELLED;
        int n = g->n - at < chunk ? g->n - at : chunk;
        char msg[512];
        size_t q = (size_t)at * QPO_PGDT_QLEN;
        if (qpo_generate(p, &oc, n, g->qids + q, g->qmask + q, g->seed + at,
                         ids + (size_t)at * QPO_PGDT_PLEN, len + at, msg, sizeof msg)) {
            qpo_err_set(err, QPO_EXIT_RUNTIME, "generation failed");
            qpo_err_detail(err, "%s", msg);
            return QPO_JOB_RETRY;
        }
    }
    return QPO_JOB_OK;
}

void qpo_trainer_gen_opts(const qpo_trun *run, int greedy, qpo_gen_opts *o) {
    qpo_gen_opts_default(o);
    o->greedy = greedy;
    o->top_k = run->top_k;
    o->top_p = (float)run->top_p;
    o->reward = (float)run->r_star;
    o->max_new = run->max_prompt_tokens;
}

typedef int (*select_fn)(const qpo_trainer_env *env, const qpo_trun *run, int loop,
                         const json_t *payload, const qpo_tokenizer *tok, gen_items *g,
                         qpo_err *err);

static qpo_job_status generate(const qpo_trainer_env *env, const json_t *payload, int greedy,
                               select_fn select, const char *purpose, qpo_job_outcome *out,
                               qpo_err *err) {
    qpo_trun run;
    int loop;
    if (qpo_trun_from_payload(env->conn, payload, &run, &loop, err))
        return qpo_trainer_fail(err);
    qpo_tokenizer *tok = qpo_trainer_tokenizer(&run, err);
    gen_items g = {0};
    /* The payload and selection first: a bad payload is refused before loading weights. */
    qpo_policy *p = tok && select(env, &run, loop, payload, tok, &g, err) == 0
                        ? qpo_trainer_load_checkpoint(env->conn, run.id, loop, &tok, err)
                        : NULL;
    if (p) /* queries were encoded before the policy said which vocabulary it speaks */
        qpo_tokenizer_subset_map(tok, g.qids, (size_t)g.n * QPO_PGDT_QLEN);
    int32_t *ids = NULL;
    int *len = NULL;
    qpo_job_status s = QPO_JOB_OK;
    if (!p) {
        s = qpo_trainer_fail(err);
    } else {
        qpo_gen_opts o;
        qpo_trainer_gen_opts(&run, greedy, &o);
        ids = calloc((size_t)(g.n ? g.n : 1) * QPO_PGDT_PLEN, sizeof *ids);
        len = calloc((size_t)(g.n ? g.n : 1), sizeof *len);
        s = sample_all(env, p, &o, &g, ids, len, err);
    }
    json_t *rows = s == QPO_JOB_OK
                       ? decode_rows(tok, &g, ids, len, run.id, loop, purpose, env->job_id, err)
                       : NULL;
    if (s == QPO_JOB_OK && !rows)
        s = QPO_JOB_RETRY;
    if (rows) {
        const qpo_backend *be = qpo_policy_backend(p);
        out->result =
            json_pack("{ss si si ss ss}", "purpose", purpose, "prompts", g.n, "loop", loop,
                      "backend", be->name, "device", be->device ? be->device : "cpu");
        qpo_outcome_add_rows(out, "qpo.generations", rows, g.n);
        qpo_info("%s: run %" PRId64 " loop %d: %d prompts", purpose, run.id, loop, g.n);
    }
    free(ids);
    free(len);
    gen_items_free(&g);
    qpo_policy_free(p);
    qpo_tokenizer_free(tok);
    return s;
}

static int select_collect(const qpo_trainer_env *env, const qpo_trun *run, int loop,
                          const json_t *payload, const qpo_tokenizer *tok, gen_items *g,
                          qpo_err *err) {
    int64_t batches, size;
    if (qpo_payload_int(payload, "batches", &batches, err) ||
        qpo_payload_int(payload, "batch_size", &size, err))
        return -1;
    if (batches != run->collect_batches || size != run->collect_batch_size) {
        qpo_err_set(err, QPO_EXIT_USAGE,
                    "job payload asks for %" PRId64 " x %" PRId64 " collect items; run %" PRId64
                    " selects %d x %d",
                    batches, size, run->id, run->collect_batches, run->collect_batch_size);
        qpo_err_hint(err, "the run's collect_batches and collect_batch_size drive "
                          "qpo.collect_batch(); plan the job from the same config");
        return -1;
    }
    char rs[24], ls[16], bs[16];
    snprintf(rs, sizeof rs, "%" PRId64, run->id);
    snprintf(ls, sizeof ls, "%d", loop);
    uint64_t loop_seed = qpo_trainer_seed((uint64_t)run->seed, (uint64_t)loop);
    for (int b = 0; b < batches; b++) {
        snprintf(bs, sizeof bs, "%d", b);
        const char *params[3] = {rs, ls, bs};
        PGresult *res = qpo_db_named(env->conn, "trainer_collect_items", 3, params, err);
        if (!res) {
            if (strstr(err->msg, "no collect items"))
                err->code = QPO_EXIT_USAGE;
            return -1;
        }
        int rc = add_rows(g, res, b, qpo_trainer_seed(loop_seed, (uint64_t)b), tok, err);
        PQclear(res);
        if (rc)
            return -1;
    }
    return 0;
}

static int select_test(const qpo_trainer_env *env, const qpo_trun *run, int loop,
                       const json_t *payload, const qpo_tokenizer *tok, gen_items *g,
                       qpo_err *err) {
    (void)loop;
    int64_t n;
    if (qpo_payload_int(payload, "test_size", &n, err))
        return -1;
    if (n != run->test_size) {
        /* The score jobs read the run's test sample (qpo.runs.test_size): prompts for any other
         * sample would never be scored. */
        qpo_err_set(err, QPO_EXIT_USAGE,
                    "job payload test_size %" PRId64 " is not run %" PRId64 "'s test_size %d", n,
                    run->id, run->test_size);
        qpo_err_hint(err, "plan the job from the run's config");
        return -1;
    }
    char rs[24], ns[24];
    snprintf(rs, sizeof rs, "%" PRId64, run->id);
    snprintf(ns, sizeof ns, "%" PRId64, n);
    const char *params[2] = {rs, ns};
    PGresult *res = qpo_db_named(env->conn, "trainer_test_items", 2, params, err);
    if (!res)
        return -1;
    int rc = PQntuples(res) == 0 ? -1 : add_rows(g, res, 0, 0, tok, err);
    if (PQntuples(res) == 0) {
        qpo_err_set(err, QPO_EXIT_USAGE, "task %s has no test items", run->task);
        qpo_err_hint(err, "import the task's data first: qpo data import %s FILE...", run->task);
    }
    PQclear(res);
    return rc;
}

qpo_job_status qpo_trainer_job_generate(const qpo_trainer_env *env, const json_t *payload,
                                        qpo_job_outcome *out, qpo_err *err) {
    return generate(env, payload, 0, select_collect, "collect", out, err);
}

qpo_job_status qpo_trainer_job_evaluate_generate(const qpo_trainer_env *env, const json_t *payload,
                                                 qpo_job_outcome *out, qpo_err *err) {
    return generate(env, payload, 1, select_test, "test", out, err);
}
