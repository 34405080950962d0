/* Loading and indexing the items the sim knows. See dataset.h. */
#include "dataset.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "db.h"
#include "simhash.h"

uint64_t sim_fields_key(const char *const *values, const size_t *value_len, int n) {
    uint64_t key = 0x51A1u;
    for (int i = 0; i < n; i++)
        key = sim_mix(key, sim_hash_words(values[i], value_len[i], SIM_KEY_WORDS));
    return key;
}

static int item_key(const sim_item *it, uint64_t *key) {
    const char *values[QPO_TASK_MAX_FIELDS];
    size_t lens[QPO_TASK_MAX_FIELDS];
    for (int i = 0; i < it->task->n_fields; i++) {
        const char *v = json_string_value(json_object_get(it->fields, it->task->fields[i].key));
        if (!v)
            return -1;
        values[i] = v;
        lens[i] = strlen(v);
    }
    *key = sim_fields_key(values, lens, it->task->n_fields);
    return 0;
}

int sim_data_add(sim_data *d, const qpo_task *task, json_t *fields, int label, const char *answer,
                 qpo_err *err) {
    if (d->n_items == d->cap_items) {
        size_t cap = d->cap_items ? d->cap_items * 2 : 1024;
        sim_item *v = realloc(d->items, cap * sizeof(*v));
        if (!v) {
            json_decref(fields);
            return qpo_err_set(err, QPO_EXIT_RUNTIME, "out of memory loading items");
        }
        d->items = v;
        d->cap_items = cap;
    }
    sim_item *it = &d->items[d->n_items];
    memset(it, 0, sizeof(*it));
    it->task = task;
    it->fields = fields;
    it->label = label;
    if (answer)
        snprintf(it->answer, sizeof(it->answer), "%s", answer);
    it->query = qpo_task_query_text(task, fields, err);
    if (!it->query) {
        json_decref(fields);
        return -1;
    }
    d->n_items++;
    return 0;
}

static void slot_put(sim_data *d, uint64_t key, uint32_t item) {
    size_t mask = d->n_slots - 1;
    for (size_t i = key & mask;; i = (i + 1) & mask) {
        sim_slot *s = &d->slots[i];
        if (!s->item) {
            s->key = key;
            s->item = item + 1;
            return;
        }
        if (s->key == key && d->items[s->item - 1].task == d->items[item].task) {
            d->duplicates++;
            return;
        }
    }
}

int sim_data_finish(sim_data *d, qpo_err *err) {
    size_t n = 1024;
    while (n < d->n_items * 2)
        n *= 2;
    free(d->slots);
    d->slots = calloc(n, sizeof(*d->slots));
    if (!d->slots)
        return qpo_err_set(err, QPO_EXIT_RUNTIME, "out of memory indexing items");
    d->n_slots = n;
    d->duplicates = 0;
    for (size_t i = 0; i < d->n_items; i++) {
        uint64_t key;
        if (item_key(&d->items[i], &key) == 0)
            slot_put(d, key, (uint32_t)i);
    }
    return 0;
}

const sim_item *sim_data_find(const sim_data *d, uint64_t key, const qpo_task *task) {
    if (!d->n_slots)
        return NULL;
    size_t mask = d->n_slots - 1;
    for (size_t i = key & mask; d->slots[i].item; i = (i + 1) & mask) {
        const sim_item *it = &d->items[d->slots[i].item - 1];
        if (d->slots[i].key == key && it->task == task)
            return it;
    }
    return NULL;
}

void sim_data_free(sim_data *d) {
    for (size_t i = 0; i < d->n_items; i++) {
        json_decref(d->items[i].fields);
        free(d->items[i].query);
    }
    free(d->items);
    free(d->slots);
    memset(d, 0, sizeof(*d));
}

/* ---- upstream files ---- */

static int exists(const char *path) {
    struct stat st;
    return stat(path, &st) == 0;
}

static char *read_line(FILE *f) {
    char *line = NULL;
    size_t cap = 0;
    ssize_t n = getline(&line, &cap, f);
    if (n < 0) {
        free(line);
        return NULL;
    }
    while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r'))
        line[--n] = '\0';
    return line;
}

static int load_tweeteval_split(sim_data *d, const char *dir, const char *split, qpo_err *err) {
    char tpath[1024], lpath[1024];
    snprintf(tpath, sizeof(tpath), "%s/%s_text.txt", dir, split);
    snprintf(lpath, sizeof(lpath), "%s/%s_labels.txt", dir, split);
    if (!exists(tpath))
        return 0;
    FILE *ft = fopen(tpath, "r"), *fl = fopen(lpath, "r");
    if (!ft || !fl) {
        if (ft)
            fclose(ft);
        if (fl)
            fclose(fl);
        qpo_err_set(err, QPO_EXIT_USAGE, "cannot read TweetEval split '%s'", split);
        qpo_err_detail(err, "%s: %s", fl ? tpath : lpath, strerror(errno));
        return -1;
    }
    const qpo_task *task = qpo_task_find("tweet_emotion");
    int rc = 0, lineno = 0;
    char *text;
    while (rc == 0 && (text = read_line(ft))) {
        lineno++;
        char *lab = read_line(fl), *end = NULL;
        long label = lab ? strtol(lab, &end, 10) : -1;
        if (!lab || end == lab || *end || label < 0 || label >= task->n_labels) {
            qpo_err_set(err, QPO_EXIT_USAGE, "bad TweetEval label");
            qpo_err_detail(err, "%s line %d: '%s'", lpath, lineno, lab ? lab : "(missing line)");
            qpo_err_hint(err,
                         "each line of %s_labels.txt is a label id 0..%d matching the same "
                         "line of %s_text.txt",
                         split, task->n_labels - 1, split);
            rc = -1;
        } else {
            rc = sim_data_add(d, task, json_pack("{s:s}", "text", text), (int)label, NULL, err);
        }
        free(lab);
        free(text);
    }
    fclose(ft);
    fclose(fl);
    return rc;
}

static int load_tweeteval(sim_data *d, const char *dir, qpo_err *err) {
    const char *splits[] = {"train", "val", "test"};
    for (int i = 0; i < 3; i++)
        if (load_tweeteval_split(d, dir, splits[i], err))
            return -1;
    return 0;
}

static int load_gsm8k_file(sim_data *d, const char *path, qpo_err *err) {
    FILE *f = fopen(path, "r");
    if (!f) {
        qpo_err_set(err, QPO_EXIT_USAGE, "cannot read GSM8K file");
        qpo_err_detail(err, "%s: %s", path, strerror(errno));
        return -1;
    }
    const qpo_task *task = qpo_task_find("gsm8k");
    int rc = 0, lineno = 0;
    char *line;
    while (rc == 0 && (line = read_line(f))) {
        lineno++;
        if (!*line) {
            free(line);
            continue;
        }
        json_error_t jerr;
        json_t *row = json_loads(line, 0, &jerr);
        const char *q = json_string_value(json_object_get(row, "question"));
        const char *a = json_string_value(json_object_get(row, "answer"));
        char gold[QPO_MATH_ANSWER_MAX];
        if (!q || !a) {
            qpo_err_set(err, QPO_EXIT_USAGE, "bad GSM8K row");
            qpo_err_detail(err, "%s line %d: %s", path, lineno,
                           row ? "needs string fields \"question\" and \"answer\"" : jerr.text);
            rc = -1;
        } else if (qpo_math_gold_gsm8k(a, gold, err)) {
            qpo_err_prefix(err, "%s line %d", path, lineno);
            rc = -1;
        } else {
            rc = sim_data_add(d, task, json_pack("{s:s}", "question", q), -1, gold, err);
        }
        json_decref(row);
        free(line);
    }
    fclose(f);
    return rc;
}

static int load_gsm8k(sim_data *d, const char *dir, qpo_err *err) {
    const char *names[] = {"train.jsonl", "test.jsonl"};
    for (int i = 0; i < 2; i++) {
        char path[1024];
        snprintf(path, sizeof(path), "%s/%s", dir, names[i]);
        if (exists(path) && load_gsm8k_file(d, path, err))
            return -1;
    }
    return 0;
}

static int load_svamp(sim_data *d, const char *path, qpo_err *err) {
    json_error_t jerr;
    json_t *arr = json_load_file(path, 0, &jerr);
    if (!json_is_array(arr)) {
        qpo_err_set(err, QPO_EXIT_USAGE, "bad SVAMP file");
        qpo_err_detail(err, "%s: %s", path, arr ? "not a JSON array" : jerr.text);
        json_decref(arr);
        return -1;
    }
    const qpo_task *task = qpo_task_find("svamp");
    size_t i;
    json_t *row;
    int rc = 0;
    json_array_foreach(arr, i, row) {
        const char *body = json_string_value(json_object_get(row, "Body"));
        const char *question = json_string_value(json_object_get(row, "Question"));
        json_t *ans = json_object_get(row, "Answer");
        if (!body || !question || !json_is_number(ans)) {
            qpo_err_set(err, QPO_EXIT_USAGE, "bad SVAMP problem");
            qpo_err_detail(err, "%s element %zu: needs strings Body, Question and number Answer",
                           path, i);
            rc = -1;
            break;
        }
        char gold[QPO_MATH_ANSWER_MAX];
        qpo_math_gold_number(json_number_value(ans), gold);
        json_t *fields = json_pack("{s:s++}", "question", body, " ", question);
        if ((rc = sim_data_add(d, task, fields, -1, gold, err)))
            break;
    }
    json_decref(arr);
    return rc;
}

/* Where each data set may sit under --data DIR: in its own folder, or DIR being that folder. */
static const struct {
    const char *marker; /* a path under DIR that says the data set is there */
    const char *folder; /* the folder handed to the loader, relative to DIR */
    int (*load)(sim_data *d, const char *path, qpo_err *err);
} SOURCES[] = {
    {"tweet_eval_emotion", "tweet_eval_emotion", load_tweeteval},
    {"train_text.txt", ".", load_tweeteval},
    {"gsm8k", "gsm8k", load_gsm8k},
    {"train.jsonl", ".", load_gsm8k},
    {"svamp/SVAMP.json", "svamp/SVAMP.json", load_svamp},
    {"SVAMP.json", "SVAMP.json", load_svamp},
};

int sim_data_load_dir(sim_data *d, const char *dir, qpo_err *err) {
    int found = 0;
    for (size_t i = 0; i < sizeof(SOURCES) / sizeof(SOURCES[0]); i++) {
        char path[1024];
        snprintf(path, sizeof(path), "%s/%s", dir, SOURCES[i].marker);
        if (!exists(path))
            continue;
        found = 1;
        snprintf(path, sizeof(path), "%s/%s", dir, SOURCES[i].folder);
        if (SOURCES[i].load(d, path, err))
            return -1;
    }
    if (!found) {
        qpo_err_set(err, QPO_EXIT_USAGE, "no task data found in --data directory");
        qpo_err_detail(err, "directory: %s", dir);
        qpo_err_hint(err, "give the shared data folder (holding tweet_eval_emotion/, gsm8k/, "
                          "svamp/) or one of those folders");
        return -1;
    }
    return 0;
}

/* Reads every task item at start: the sim must not touch the database per request. */
int sim_data_load_db(sim_data *d, const char *conninfo, qpo_err *err) {
    PGconn *conn = qpo_db_connect(conninfo, "qpo sim-llm", err);
    if (!conn)
        return -1;
    PGresult *res = qpo_db_named(conn, "sim_llm_task_items", 0, NULL, err);
    if (!res) {
        PQfinish(conn);
        return -1;
    }
    int rc = 0;
    for (int r = 0; rc == 0 && r < PQntuples(res); r++) {
        const qpo_task *task = qpo_task_find(PQgetvalue(res, r, 0));
        if (!task)
            continue;
        json_error_t jerr;
        json_t *fields = json_loads(PQgetvalue(res, r, 1), 0, &jerr);
        if (!json_is_object(fields)) {
            json_decref(fields);
            qpo_err_set(err, QPO_EXIT_RUNTIME, "bad fields in qpo.task_items");
            qpo_err_detail(err, "task %s row %d: %s", task->name, r, jerr.text);
            rc = -1;
            break;
        }
        int label = PQgetisnull(res, r, 2) ? -1 : atoi(PQgetvalue(res, r, 2));
        const char *answer = PQgetisnull(res, r, 3) ? NULL : PQgetvalue(res, r, 3);
        rc = sim_data_add(d, task, fields, label, answer, err);
    }
    PQclear(res);
    PQfinish(conn);
    return rc;
}
