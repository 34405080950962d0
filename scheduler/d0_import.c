/* The QPO authors' released D_0 files (docs/qpo-recipe.md section 6): a JSON array of
 * records {prompt_method, query, label | gt_answer, prompt, <model>: {...}} whose per-model
 * object carries the benchmark fields the raw reward is computed from (section 4). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "db.h"
#include "import.h"
#include "reward_formula.h"
#include "tasks.h"

#define D0_BATCH 2000
static const char eos[] = "<|endoftext|>";

static int rec_err(qpo_err *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int rec_err(qpo_err *err, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    char msg[sizeof(err->msg)];
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    return qpo_err_set(err, QPO_EXIT_USAGE, "%s", msg);
}

/* The per-model object: the one named, or the only object-valued field. */
static json_t *model_object(const json_t *rec, const char *model_key, qpo_err *err) {
    if (model_key) {
        json_t *m = json_object_get(rec, model_key);
        if (!json_is_object(m))
            return rec_err(err, "field \"%s\" is missing or not an object", model_key), NULL;
        return m;
    }
    json_t *found = NULL;
    const char *key;
    json_t *val;
    json_object_foreach((json_t *)rec, key, val) {
        if (!json_is_object(val))
            continue;
        if (found)
            return rec_err(err, "several per-model objects; pass --model-key"), NULL;
        found = val;
    }
    if (!found)
        rec_err(err, "no per-model object (e.g. \"llama7b\": {...})");
    return found;
}

static int number(const json_t *obj, const char *key, double *out, qpo_err *err) {
    json_t *v = json_object_get(obj, key);
    if (json_is_boolean(v))
        *out = json_is_true(v);
    else if (json_is_number(v) && isfinite(json_number_value(v)))
        *out = json_number_value(v);
    else
        return rec_err(err, "field \"%s\" is missing or not a number", key);
    return 0;
}

static int unit_interval(const json_t *obj, const char *key, double *out, qpo_err *err) {
    if (number(obj, key, out, err) < 0)
        return -1;
    if (*out < 0 || *out > 1)
        return rec_err(err, "field \"%s\" = %g is not in [0, 1]", key, *out);
    return 0;
}

/* Fills acc, avg_acc and raw_reward by setting and task type. */
static int rewards(const json_t *m, const char *setting, const qpo_task *task, int label, double w,
                   json_t *row, qpo_err *err) {
    double acc, avg, raw;
    if (!strcmp(setting, "few_shot")) {
        if (unit_interval(m, "few_shot_accuracy", &acc, err) < 0 ||
            unit_interval(m, "few_shot_avg_acc", &avg, err) < 0)
            return -1;
        raw = qpo_reward_raw(QPO_REWARD_FEW_SHOT, acc, avg, 0, w);
    } else if (task->type == QPO_TASK_MATH) {
        double nll = 0; /* rec_err always fails, but -O3 cannot see that through varargs */
        if (unit_interval(m, "zero_shot_correct", &acc, err) < 0 ||
            unit_interval(m, "zero_shot_avg_acc", &avg, err) < 0 ||
            number(m, "zero_shot_perplexity", &nll, err) < 0)
            return -1;
        raw = qpo_reward_raw(QPO_REWARD_MATH, acc, avg, nll, w);
    } else {
        json_t *nlls = json_object_get(m, "zero_shot_perplexities");
        if (unit_interval(m, "zero_shot_correct", &acc, err) < 0 ||
            unit_interval(m, "zero_shot_avg_acc", &avg, err) < 0)
            return -1;
        if (!json_is_array(nlls) || label < 0 || (size_t)label >= json_array_size(nlls) ||
            !json_is_number(json_array_get(nlls, (size_t)label)))
            return rec_err(err, "field \"zero_shot_perplexities\" has no number for label %d",
                           label);
        raw = qpo_reward_raw(QPO_REWARD_ZERO_SHOT, acc, avg,
                             json_number_value(json_array_get(nlls, (size_t)label)), w);
    }
    json_object_set_new(row, "acc", json_real(acc));
    json_object_set_new(row, "avg_acc", json_real(avg));
    json_object_set_new(row, "raw_reward", json_real(raw));
    json_object_set_new(row, "avg_acc_weight", json_real(w));
    return 0;
}

/* The gold: a label index for label tasks, the normalised number for math. */
static int gold(const json_t *rec, const qpo_task *task, json_t *row, int *label, qpo_err *err) {
    *label = -1;
    if (task->type == QPO_TASK_MATH) {
        json_t *a = json_object_get(rec, "gt_answer");
        char out[QPO_MATH_ANSWER_MAX];
        if (json_is_number(a))
            qpo_math_gold_number(json_number_value(a), out);
        else if (json_is_string(a) && qpo_math_extract_answer(json_string_value(a), out) == 0)
            ;
        else
            return rec_err(err, "field \"gt_answer\" is missing or not a number");
        json_object_set_new(row, "answer", json_string(out));
        return 0;
    }
    json_t *l = json_object_get(rec, "label");
    if (!json_is_integer(l) || json_integer_value(l) < 0 ||
        (task->type == QPO_TASK_CLASSIFICATION && json_integer_value(l) >= task->n_labels) ||
        json_integer_value(l) >= QPO_TASK_MAX_LABELS)
        return rec_err(err, "field \"label\" is missing or not a label index of %s", task->name);
    *label = (int)json_integer_value(l);
    json_object_set_new(row, "label", json_integer(*label));
    return 0;
}

static json_t *record_row(const qpo_d0_import *o, const qpo_task *task, const char *source,
                          const json_t *rec, qpo_err *err) {
    json_t *query = json_object_get(rec, "query"), *prompt = json_object_get(rec, "prompt");
    json_t *method = json_object_get(rec, "prompt_method");
    if (!json_is_object(rec))
        return rec_err(err, "record is not a JSON object"), NULL;
    if (!json_is_string(query) || !json_is_string(prompt))
        return rec_err(err, "fields \"query\" and \"prompt\" are required strings"), NULL;
    json_t *m = model_object(rec, o->model_key, err);
    if (!m)
        return NULL;
    /* The policy appends its own end-of-text, so the stored prompt is the text alone. */
    const char *p = json_string_value(prompt);
    size_t plen = strlen(p);
    if (plen >= strlen(eos) && !strcmp(p + plen - strlen(eos), eos))
        plen -= strlen(eos);
    json_t *row = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s#, s:O}", "task", o->task, "setting",
                            o->setting, "target", o->target, "source", source, "query",
                            json_string_value(query), "prompt", p, (int)plen, "extra", m);
    if (!row)
        return rec_err(err, "record is not valid UTF-8"), NULL;
    json_object_set_new(row, "prompt_method",
                        json_string(json_is_string(method) ? json_string_value(method) : ""));
    int label;
    if (gold(rec, task, row, &label, err) < 0 ||
        rewards(m, o->setting, task, label, o->avg_acc_weight, row, err) < 0) {
        json_decref(row);
        return NULL;
    }
    return row;
}

static int flush(PGconn *conn, json_t *rows, qpo_err *err) {
    if (!json_array_size(rows))
        return 0;
    char *text = json_dumps(rows, JSON_COMPACT);
    const char *params[] = {text};
    PGresult *res = text ? qpo_db_named(conn, "d0_stage_rows", 1, params, err) : NULL;
    if (!text)
        qpo_err_set(err, QPO_EXIT_RUNTIME, "cannot encode D_0 rows");
    free(text);
    PQclear(res);
    json_array_clear(rows);
    return res ? 0 : -1;
}

static int stage_records(PGconn *conn, const qpo_d0_import *o, const qpo_task *task,
                         const json_t *all, qpo_import_counts *counts, qpo_err *err) {
    const char *source = strrchr(o->file, '/') ? strrchr(o->file, '/') + 1 : o->file;
    json_t *rows = json_array();
    size_t i;
    json_t *rec;
    int rc = 0;
    json_array_foreach(all, i, rec) {
        json_t *row = record_row(o, task, source, rec, err);
        if (!row && err->code == QPO_EXIT_USAGE && o->skip_bad) {
            counts->skipped++;
            qpo_err_clear(err);
            continue;
        }
        if (!row) {
            qpo_err_prefix(err, "%s: record %zu", o->file, i);
            qpo_err_hint(err, "fix the record, or pass --skip-bad to skip malformed records");
            rc = -1;
            break;
        }
        counts->read++;
        json_array_append_new(rows, row);
        if (json_array_size(rows) == D0_BATCH && (rc = flush(conn, rows, err)) < 0)
            break;
    }
    if (rc == 0)
        rc = flush(conn, rows, err);
    json_decref(rows);
    return rc;
}

json_t *qpo_d0_load(const char *file, qpo_err *err) {
    json_error_t jerr;
    json_t *all = json_load_file(file, 0, &jerr);
    if (!all)
        return qpo_err_set(err, QPO_EXIT_USAGE, "%s:%d:%d: %s", file, jerr.line, jerr.column,
                           jerr.text),
               NULL;
    if (!json_is_array(all)) {
        json_decref(all);
        return qpo_err_set(err, QPO_EXIT_USAGE, "%s: expected a JSON array of records", file), NULL;
    }
    return all;
}

json_t *qpo_d0_record(const qpo_d0_import *o, const json_t *rec, qpo_err *err) {
    const qpo_task *task = qpo_task_find(o->task);
    if (!task)
        return qpo_err_set(err, QPO_EXIT_USAGE, "unknown task \"%s\"", o->task), NULL;
    const char *source = strrchr(o->file, '/') ? strrchr(o->file, '/') + 1 : o->file;
    return record_row(o, task, source, rec, err);
}

/* D_0's records of one (task, setting, target) share one reward: refuses another weight. */
static int same_weight(PGconn *conn, const qpo_d0_import *o, qpo_err *err) {
    char w[32];
    snprintf(w, sizeof w, "%.17g", o->avg_acc_weight);
    const char *params[4] = {o->task, o->setting, o->target, w};
    PGresult *res = qpo_db_named(conn, "d0_weight_conflict", 4, params, err);
    if (!res)
        return -1;
    int rc = 0;
    if (PQntuples(res) > 0) {
        rc = qpo_err_set(err, QPO_EXIT_USAGE,
                         "%s: D_0 %s/%s/%s holds records of avg_acc weight %s, not %g", o->file,
                         o->task, o->setting, o->target, PQgetvalue(res, 0, 0), o->avg_acc_weight);
        qpo_err_hint(err,
                     "one D_0 keeps one reward: pass --avg-acc-weight %s, or import under "
                     "another --target name",
                     PQgetvalue(res, 0, 0));
    }
    PQclear(res);
    return rc;
}

int qpo_import_d0(PGconn *conn, const qpo_d0_import *o, qpo_import_counts *counts, qpo_err *err) {
    memset(counts, 0, sizeof(*counts));
    const qpo_task *task = qpo_task_find(o->task);
    if (!task)
        return qpo_err_set(err, QPO_EXIT_USAGE, "unknown task \"%s\"", o->task);
    if (strcmp(o->setting, "zero_shot") && strcmp(o->setting, "few_shot"))
        return qpo_err_set(err, QPO_EXIT_USAGE,
                           "unknown setting \"%s\"; known: zero_shot, few_shot", o->setting);
    if (!(o->avg_acc_weight >= 0 && o->avg_acc_weight <= QPO_REWARD_AVG_ACC_WEIGHT_MAX))
        return qpo_err_set(err, QPO_EXIT_USAGE, "avg_acc weight %g is not in [0, %g]",
                           o->avg_acc_weight, QPO_REWARD_AVG_ACC_WEIGHT_MAX);
    json_t *all = qpo_d0_load(o->file, err);
    if (!all)
        return -1;
    PGresult *res = NULL;
    int rc = qpo_db_begin(conn, err);
    if (rc == 0)
        rc = same_weight(conn, o, err);
    if (rc == 0 && (res = qpo_db_named(conn, "d0_stage_create", 0, NULL, err)) == NULL)
        rc = -1;
    PQclear(res);
    res = NULL;
    if (rc == 0)
        rc = stage_records(conn, o, task, all, counts, err);
    if (rc == 0 && !(res = qpo_db_named(conn, "d0_insert", 0, NULL, err)))
        rc = -1;
    if (rc == 0)
        rc = qpo_db_commit(conn, err);
    if (rc < 0)
        qpo_db_rollback(conn);
    else {
        counts->inserted = (size_t)strtoull(PQcmdTuples(res), NULL, 10);
        counts->unchanged = counts->read - counts->inserted;
    }
    PQclear(res);
    json_decref(all);
    return rc;
}
