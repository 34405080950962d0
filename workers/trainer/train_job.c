/* The train job of (run, loop t): D_0 + earlier loops' records, the loop's starting weights
 * (init for t = 1, loop t-1's checkpoint after), a checkpoint after every epoch, and resume
 * from the newest complete epoch, so a killed attempt's retry ends on the same bits. With
 * hyper.select = "heldout" a seeded share of D_t's queries is kept out of training and the
 * loop publishes the epoch whose weights have the lowest CE on them (test accuracy swings from
 * epoch to epoch; the last epoch is a draw from that swing). */
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "ckpt_store.h"
#include "db.h"
#include "gpt2_weights.h"
#include "log.h"
#include "records.h"
#include "train_data.h"
#include "train_metrics.h"
#include "trainer_internal.h"

typedef struct train_plan {
    int epochs;
    qpo_train_opts opts;
    uint64_t init_seed;
} train_plan;

static train_plan plan_of(const qpo_trun *run, int loop) {
    train_plan tp;
    qpo_train_opts_default(&tp.opts);
    tp.epochs = loop == 1 ? run->epochs_first : run->epochs_next;
    tp.opts.lr = (float)(loop == 1 ? run->lr_first : run->lr_next);
    tp.opts.batch_size = run->batch_size;
    tp.opts.lr_step_epochs = run->lr_step_epochs;
    tp.opts.lr_gamma = (float)run->lr_gamma;
    tp.opts.clip = (float)run->grad_clip;
    tp.opts.weight_decay = (float)run->weight_decay;
    tp.opts.lambda = (float)run->lambda;
    tp.opts.lambda_switch = run->lambda_switch;
    tp.opts.dropout = (float)run->dropout;
    tp.opts.seed = qpo_trainer_seed((uint64_t)run->seed, (uint64_t)loop);
    tp.init_seed = qpo_trainer_seed((uint64_t)run->seed, 0);
    return tp;
}

static int is_dir(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

/* Loop 1's starting weights: "scratch", "pretrained" (GPT-2 found as gpt2_weights.h says), a
 * Hugging Face GPT-2 folder, or a qpo checkpoint. */
static qpo_policy *initial_policy(const qpo_trun *run, const qpo_tokenizer *tok, uint64_t seed,
                                  qpo_err *err) {
    const qpo_backend *be = qpo_trainer_backend();
    char msg[512] = "";
    qpo_policy *p = NULL;
    if (!strcmp(run->init, QPO_INIT_PRETRAINED)) {
        char dir[4096];
        if (qpo_gpt2_weights_find(run->weights, dir, sizeof dir, err)) {
            qpo_err_prefix(err, "run %" PRId64 ", policy.init \"" QPO_INIT_PRETRAINED "\"",
                           run->id);
            return NULL;
        }
        /* The folder's shape is the policy's: policy.size does not apply. */
        p = qpo_policy_from_hf(dir, be, seed, msg, sizeof msg);
    } else if (!strcmp(run->init, "scratch")) {
        qpo_policy_config cfg;
        if (qpo_trainer_policy_config(run, tok, &cfg, err))
            return NULL;
        p = qpo_policy_new(&cfg, be, msg, sizeof msg);
        if (p)
            qpo_policy_init_random(p, seed);
    } else if (is_dir(run->init)) {
        p = qpo_policy_from_hf(run->init, be, seed, msg, sizeof msg);
    } else {
        p = qpo_policy_load(run->init, be, msg, sizeof msg);
    }
    if (!p) {
        qpo_err_set(err, QPO_EXIT_USAGE, "cannot start run %" PRId64 " from policy.init \"%s\"",
                    run->id, run->init);
        qpo_err_detail(err, "%s", msg);
        qpo_err_hint(err, "policy.init is \"scratch\", \"pretrained\", a Hugging Face GPT-2 folder "
                          "(model.safetensors + config.json) or a qpo policy .safetensors file");
        return NULL;
    }
    if (qpo_policy_config_of(p)->vocab != qpo_tokenizer_vocab_size(tok)) {
        qpo_err_set(err, QPO_EXIT_USAGE,
                    "policy.init \"%s\" has a vocabulary of %d, the "
                    "tokenizer %d",
                    run->init, qpo_policy_config_of(p)->vocab, qpo_tokenizer_vocab_size(tok));
        qpo_policy_free(p);
        return NULL;
    }
    return p;
}

/* The weights and state of the newest complete epoch, or NULL (start over) when there is
 * none or it does not fit this attempt's data and options. A store that cannot be read is an
 * error (*failed): starting over on a database hiccup would discard the saved epochs. */
static qpo_trainer *resume(qpo_ckpt_store *store, const train_plan *tp, const qpo_records *data,
                           qpo_policy **out_p, qpo_epoch_info *info, int *failed, qpo_err *err) {
    *failed = 0;
    int found = store->ops->latest(store, info, err);
    if (found < 0 && err->code == QPO_EXIT_RUNTIME && store->ops == &qpo_ckpt_pg_ops) {
        *failed = 1;
        return NULL;
    }
    if (found != 0) {
        qpo_err_clear(err); /* none, or an unreadable folder: both start from the loop's init */
        return NULL;
    }
    char dir[PATH_MAX], path[PATH_MAX + 64], msg[512] = "";
    qpo_err e2 = {0};
    qpo_policy *p = NULL;
    qpo_trainer *tr = NULL;
    int fetched = 0;
    if (info->epoch > tp->epochs || (size_t)info->records != data->n) {
        snprintf(msg, sizeof msg,
                 "it holds epoch %d of %d records; this attempt trains %d "
                 "epochs on %zu",
                 info->epoch, info->records, tp->epochs, data->n);
    } else if (store->ops->fetch(store, info, dir, sizeof dir, &e2)) {
        if (e2.code == QPO_EXIT_RUNTIME && store->ops == &qpo_ckpt_pg_ops) {
            *err = e2;
            *failed = 1;
            return NULL;
        }
        snprintf(msg, sizeof msg, "%s", e2.msg);
    } else {
        fetched = 1;
        snprintf(path, sizeof path, "%s/" QPO_POLICY_FILE, dir);
        if ((p = qpo_policy_load(path, qpo_trainer_backend(), msg, sizeof msg)) &&
            (tr = qpo_trainer_new(p, &tp->opts, data, msg, sizeof msg)) &&
            qpo_trainer_load_state(tr, path, msg, sizeof msg) == 0) {
            store->ops->release(store, dir);
            *out_p = p;
            return tr;
        }
    }
    if (fetched)
        store->ops->release(store, dir);
    qpo_warn("not resuming run %" PRId64 " loop %d from epoch %d (%s store): %s; training the "
             "loop from its start",
             store->run, store->loop, info->epoch, store->ops->name, msg);
    qpo_trainer_free(tr);
    qpo_policy_free(p);
    qpo_err_clear(err);
    if (store->ops->clear(store, err)) {
        *failed = 1;
        return NULL;
    }
    return NULL;
}

/* policy.vocab "d0": loop 1's tokenizer becomes the subset of the tokens its training rows
 * hold (D_0's queries and prompts; held-out and later tokens map to unk), and the rows are
 * rebuilt with it. Later loops inherit the subset from loop 1's checkpoint. */
static int narrow_vocab(PGconn *conn, const qpo_trun *run, int loop, qpo_tokenizer **tok,
                        qpo_train_data *data, qpo_err *err) {
    int32_t *ids = NULL;
    size_t n = 0;
    char msg[256];
    if (qpo_records_token_ids(&data->records, qpo_tokenizer_vocab_size(*tok),
                              qpo_tokenizer_eos(*tok), &ids, &n))
        return qpo_err_set(err, QPO_EXIT_RUNTIME, "out of memory for the subset vocabulary");
    *tok = qpo_tokenizer_new_subset(*tok, ids, n, msg, sizeof msg);
    free(ids);
    if (!*tok) {
        qpo_err_set(err, QPO_EXIT_RUNTIME, "cannot build the subset vocabulary");
        qpo_err_detail(err, "%s", msg);
        return -1;
    }
    qpo_info("train: run %" PRId64 " loop %d: policy.vocab \"d0\": %zu tokens + unk + eos", run->id,
             loop, n);
    qpo_train_data_free(data);
    return qpo_train_data_load(conn, run, loop, *tok, qpo_tokenizer_vocab_size(*tok), data, err);
}

/* The loop's data, with loop t-1's weights (t > 1: *prev) loaded first, since they say which
 * vocabulary the rows are written in. */
static int load_inputs(PGconn *conn, const qpo_trun *run, int loop, qpo_tokenizer **tok,
                       qpo_policy **prev, qpo_train_data *data, qpo_err *err) {
    *prev = NULL;
    memset(data, 0, sizeof *data);
    if (loop > 1 && !(*prev = qpo_trainer_load_checkpoint(conn, run->id, loop - 1, tok, err)))
        return -1;
    qpo_policy_config cfg;
    if (qpo_trainer_policy_config(run, *tok, &cfg, err) ||
        qpo_train_data_load(conn, run, loop, *tok, cfg.vocab, data, err))
        return -1;
    if (loop == 1 && run->vocab_d0)
        return narrow_vocab(conn, run, loop, tok, data, err);
    return 0;
}

static qpo_policy *starting_policy(const qpo_trun *run, int loop, const qpo_tokenizer *tok,
                                   const train_plan *tp, qpo_policy **prev, qpo_err *err) {
    if (loop > 1) {
        qpo_policy *p = *prev;
        *prev = NULL;
        return p;
    }
    qpo_policy *p = initial_policy(run, tok, tp->init_seed, err);
    size_t n;
    const int32_t *ids = qpo_tokenizer_subset_ids(tok, &n);
    char msg[256];
    if (p && ids && qpo_policy_set_vocab_ids(p, ids, n, msg, sizeof msg)) {
        qpo_err_set(err, QPO_EXIT_RUNTIME, "cannot record the policy's vocabulary");
        qpo_err_detail(err, "%s", msg);
        qpo_policy_free(p);
        return NULL;
    }
    return p;
}

typedef struct train_state {
    qpo_policy *p;
    qpo_trainer *tr;
    qpo_epoch_info last;
    int resumed_from;
} train_state;

/* Mean CE of the held-out records under the current weights, dropout off. CE alone: it is the
 * term that decides the prompts the policy writes, and it stays comparable across epochs when
 * lambda_switch changes the MSE weight. */
static int heldout_ce(qpo_policy *p, const qpo_records *h, int batch_size, double *out, char *msg,
                      size_t len) {
    double sum = 0;
    qpo_step_opts so = {.lambda = 0, .dropout = 0, .dropout_seed = 0};
    for (size_t i = 0; i < h->n; i += (size_t)batch_size) {
        int B = (int)(h->n - i < (size_t)batch_size ? h->n - i : (size_t)batch_size);
        qpo_batch b = {B,
                       h->query_ids + i * QPO_PGDT_QLEN,
                       h->query_mask + i * QPO_PGDT_QLEN,
                       h->prompt_ids + i * QPO_PGDT_PLEN,
                       h->prompt_mask + i * QPO_PGDT_PLEN,
                       h->reward + i};
        qpo_loss l;
        if (qpo_policy_forward(p, &b, &so, &l, msg, len))
            return -1;
        sum += (double)l.ce * B;
    }
    *out = sum / (double)h->n;
    return 0;
}

/* This epoch's held-out CE, and the best epoch so far carried forward. */
static int score_epoch(train_state *st, const qpo_records *heldout, int batch_size,
                       qpo_epoch_info *info, qpo_err *err) {
    char msg[512];
    info->heldout_ce = -1;
    info->best_epoch = st->last.best_epoch;
    info->best_heldout_ce = st->last.best_heldout_ce;
    if (heldout->n == 0)
        return 0;
    if (heldout_ce(st->p, heldout, batch_size, &info->heldout_ce, msg, sizeof msg)) {
        qpo_err_set(err, QPO_EXIT_RUNTIME, "held-out loss failed after epoch %d", info->epoch);
        qpo_err_detail(err, "%s", msg);
        return -1;
    }
    if (info->best_epoch == 0 || info->heldout_ce < info->best_heldout_ce) {
        info->best_epoch = info->epoch;
        info->best_heldout_ce = info->heldout_ce;
    }
    return 0;
}

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* One step, logged to the loop's training curve. */
static int logged_step(train_state *st, qpo_train_metrics *log, qpo_loss *l, char *msg,
                       size_t len) {
    double t0 = now_s();
    if (qpo_trainer_step(st->tr, l, msg, len))
        return -1;
    qpo_step_info info = qpo_trainer_last_step(st->tr);
    qpo_train_metrics_add(log, &info, l, now_s() - t0);
    return 0;
}

/* Runs the remaining epochs, saving each; stops early (CANCELLED) when asked. */
static qpo_job_status run_epochs(const qpo_trainer_env *env, const train_plan *tp,
                                 qpo_ckpt_store *store, const qpo_records *heldout, train_state *st,
                                 qpo_train_metrics *log, qpo_err *err) {
    char msg[512];
    int saved_here = 0;
    while (qpo_trainer_epochs_done(st->tr) < tp->epochs) {
        int epoch = qpo_trainer_epochs_done(st->tr);
        double sum[3] = {0};
        int steps = 0;
        while (qpo_trainer_epochs_done(st->tr) == epoch) {
            if (env->should_stop && env->should_stop(env->stop_arg))
                return QPO_JOB_CANCELLED;
            qpo_loss l;
            if (logged_step(st, log, &l, msg, sizeof msg)) {
                qpo_err_set(err, QPO_EXIT_RUNTIME, "training step failed in epoch %d", epoch + 1);
                qpo_err_detail(err, "%s", msg);
                return QPO_JOB_RETRY;
            }
            sum[0] += l.ce, sum[1] += l.mse, sum[2] += l.loss, steps++;
        }
        qpo_epoch_info info = {.epoch = epoch + 1,
                               .records = (int)st->last.records,
                               .ce = sum[0] / steps,
                               .mse = sum[1] / steps,
                               .loss = sum[2] / steps};
        qpo_train_metrics_flush(log);
        if (score_epoch(st, heldout, tp->opts.batch_size, &info, err) ||
            qpo_ckpt_save_epoch(store, st->tr, &info, &st->last, err))
            return QPO_JOB_RETRY;
        qpo_info("train: run %" PRId64 " loop %d epoch %d/%d loss %.5f (ce %.5f, mse %.5f, "
                 "held-out ce %.5f; %s store)",
                 store->run, store->loop, info.epoch, tp->epochs, info.loss, info.ce, info.mse,
                 info.heldout_ce, store->ops->name);
        if (env->stop_after_epochs && ++saved_here >= env->stop_after_epochs &&
            qpo_trainer_epochs_done(st->tr) < tp->epochs)
            return QPO_JOB_CANCELLED;
    }
    return QPO_JOB_OK;
}

/* The epoch the loop publishes: the best on held-out data, else the last. */
static qpo_epoch_info chosen_epoch(qpo_ckpt_store *store, const qpo_epoch_info *last) {
    qpo_epoch_info c = *last;
    qpo_err e = {0};
    if (last->best_epoch > 0 && last->best_epoch != last->epoch &&
        store->ops->read(store, last->best_epoch, &c, &e)) {
        qpo_warn("train: run %" PRId64 " loop %d: epoch %d (best held-out) is gone; publishing "
                 "epoch %d",
                 store->run, store->loop, last->best_epoch, last->epoch);
        c = *last;
    }
    return c;
}

/* Publishes the chosen epoch as the loop's weights and adds its qpo.checkpoints row. */
static json_t *finish(const qpo_trainer_env *env, const qpo_trun *run, int loop,
                      const train_plan *tp, qpo_ckpt_store *store, const qpo_train_data *data,
                      train_state *st, qpo_job_outcome *out, qpo_err *err) {
    qpo_epoch_info c = chosen_epoch(store, &st->last);
    char *config_text = qpo_policy_config_json(qpo_policy_config_of(st->p));
    json_error_t jerr;
    json_t *config = config_text ? json_loads(config_text, 0, &jerr) : NULL;
    free(config_text);
    const qpo_backend *be = qpo_policy_backend(st->p);
    const char *select = data->heldout.n ? "heldout" : "last";
    json_t *training = json_pack(
        "{ss ss ss sf si si si ss si si sf}", "backend", be->name, "device",
        be->device ? be->device : "cpu", "init", loop == 1 ? run->init : "previous loop", "lr",
        loop == 1 ? run->lr_first : run->lr_next, "batch_size", tp->opts.batch_size, "run_seed",
        run->seed, "resumed_from_epoch", st->resumed_from, "select", select, "epochs_trained",
        st->last.epoch, "heldout_records", (int)data->heldout.n, "heldout_ce", c.heldout_ce);
    json_t *row =
        json_pack("{sI si ss sI si si sf sf sf so so so}", "run_id", (json_int_t)run->id, "loop",
                  loop, "sha256", c.sha256, "bytes", (json_int_t)c.bytes, "epochs", c.epoch,
                  "records", c.records, "final_loss", c.loss, "final_ce", c.ce, "final_mse", c.mse,
                  "config", config ? config : json_null(), "training", training, "job_id",
                  env->job_id > 0 ? json_integer(env->job_id) : json_null());
    if (store->ops->publish(store, c.epoch, row, err)) {
        json_decref(row);
        return NULL;
    }
    json_object_set_new(training, "artifacts", json_string(store->ops->name));
    const char *path = json_string_value(json_object_get(row, "path"));
    json_t *rows = json_array();
    json_array_append_new(rows, row);
    qpo_outcome_add_rows(out, "qpo.checkpoints", rows, 1);
    return json_pack("{ss ss si si sf sf sf si ss si si sf ss ss}", "path", path, "sha256",
                     c.sha256, "epochs", c.epoch, "records", c.records, "loss", c.loss, "ce", c.ce,
                     "mse", c.mse, "resumed_from_epoch", st->resumed_from, "select", select,
                     "epochs_trained", st->last.epoch, "heldout_records", (int)data->heldout.n,
                     "heldout_ce", c.heldout_ce, "backend", be->name, "device",
                     be->device ? be->device : "cpu");
}

static qpo_job_status train(const qpo_trainer_env *env, const qpo_trun *run, int loop,
                            qpo_tokenizer **tok, qpo_job_outcome *out, qpo_err *err) {
    train_plan tp = plan_of(run, loop);
    char msg[512];
    const char *root = env->checkpoint_root ? env->checkpoint_root : qpo_trainer_checkpoint_root();
    const qpo_ckpt_store_ops *ops = qpo_ckpt_store_kind(env->artifacts, err);
    qpo_ckpt_store store;
    if (!ops)
        return QPO_JOB_FATAL;
    if (qpo_ckpt_store_open(&store, ops, root, env->conn, run->id, loop, err))
        return QPO_JOB_RETRY;
    store.job_id = env->job_id;
    store.attempt = env->job_attempt;
    store.owner = env->worker_name;
    qpo_train_data data;
    qpo_policy *prev = NULL;
    if (load_inputs(env->conn, run, loop, tok, &prev, &data, err)) {
        qpo_policy_free(prev);
        qpo_train_data_free(&data);
        return qpo_trainer_fail(err);
    }
    train_state st = {0};
    int failed = 0;
    st.tr = resume(&store, &tp, &data.records, &st.p, &st.last, &failed, err);
    if (failed) {
        qpo_policy_free(prev);
        qpo_train_data_free(&data);
        return QPO_JOB_RETRY;
    }
    if (st.tr) {
        st.resumed_from = st.last.epoch;
        qpo_info("train: run %" PRId64 " loop %d resumes after epoch %d", run->id, loop,
                 st.last.epoch);
    } else {
        st.p = starting_policy(run, loop, *tok, &tp, &prev, err);
        st.tr = st.p ? qpo_trainer_new(st.p, &tp.opts, &data.records, msg, sizeof msg) : NULL;
        if (st.p && !st.tr) {
            qpo_err_set(err, QPO_EXIT_RUNTIME, "cannot start training run %" PRId64 " loop %d",
                        run->id, loop);
            qpo_err_detail(err, "%s", msg);
        }
    }
    st.last.records = (int)data.records.n;
    qpo_job_status s;
    if (!st.tr) {
        s = qpo_trainer_fail(err);
    } else {
        qpo_train_metrics log;
        qpo_train_metrics_begin(&log, env->conn, run->id, loop, env->job_id, env->job_attempt,
                                qpo_trainer_global_step(st.tr));
        s = run_epochs(env, &tp, &store, &data.heldout, &st, &log, err);
        qpo_train_metrics_flush(&log); /* a cancelled or failed attempt's steps count too */
    }
    if (s == QPO_JOB_OK) {
        out->result = finish(env, run, loop, &tp, &store, &data, &st, out, err);
        if (out->result) {
            json_object_set_new(out->result, "d0_records", json_integer(data.d0_records));
            json_object_set_new(out->result, "run_records", json_integer(data.run_records));
        }
        s = out->result ? QPO_JOB_OK : QPO_JOB_RETRY;
    }
    qpo_trainer_free(st.tr);
    qpo_policy_free(st.p);
    qpo_policy_free(prev); /* unused when the loop resumed */
    qpo_train_data_free(&data);
    return s;
}

qpo_job_status qpo_trainer_job_train(const qpo_trainer_env *env, const json_t *payload,
                                     qpo_job_outcome *out, qpo_err *err) {
    qpo_trun run;
    int loop;
    if (qpo_trun_from_payload(env->conn, payload, &run, &loop, err))
        return qpo_trainer_fail(err);
    qpo_tokenizer *tok = qpo_trainer_tokenizer(&run, err);
    if (!tok)
        return qpo_trainer_fail(err);
    qpo_job_status s = train(env, &run, loop, &tok, out, err);
    qpo_tokenizer_free(tok);
    return s;
}
