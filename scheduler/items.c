/* Upstream rows to task items. Each task accepts the field names of both its Hugging Face
 * export and its native files; the fields kept are those common/recipe/tasks.h renders. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dataset.h"
#include "tasks.h"

void qpo_item_list_free(qpo_item_list *list) {
    for (size_t i = 0; i < list->n; i++) {
        free(list->items[i].upstream_split);
        free(list->items[i].query);
        free(list->items[i].answer);
        json_decref(list->items[i].fields);
    }
    free(list->items);
    memset(list, 0, sizeof(*list));
}

static int row_err(qpo_err *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int row_err(qpo_err *err, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    char msg[sizeof(err->msg)];
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    return qpo_err_set(err, QPO_EXIT_USAGE, "%s", msg);
}

/* A required non-empty string field, copied into fields under `as`. */
static int take_string(const json_t *row, const char *key, const char *as, json_t *fields,
                       qpo_err *err) {
    json_t *v = json_object_get(row, key);
    if (!json_is_string(v))
        return row_err(err, "field \"%s\" is missing or not a string", key);
    json_object_set_new(fields, as, json_string(json_string_value(v)));
    return 0;
}

/* A label as an integer in [lo, hi]; upstream files write it as a number or a string. */
static int parse_label(const json_t *row, const char *key, int lo, int hi, int *out, qpo_err *err) {
    json_t *v = json_object_get(row, key);
    long long val;
    char *end = NULL;
    if (json_is_integer(v))
        val = json_integer_value(v);
    else if (json_is_string(v) && json_string_length(v) &&
             (val = strtoll(json_string_value(v), &end, 10), *end == '\0'))
        ;
    else
        return row_err(err, "field \"%s\" is missing or not an integer label", key);
    if (val < lo || val > hi)
        return row_err(err, "field \"%s\": label %lld out of range [%d, %d]", key, val, lo, hi);
    *out = (int)val;
    return 0;
}

static int map_text_label(const json_t *row, json_t *fields, int nlabels, int *label,
                          qpo_err *err) {
    if (take_string(row, "text", "text", fields, err) < 0)
        return -1;
    return parse_label(row, "label", 0, nlabels - 1, label, err);
}

/* AG News' native CSV has a 1-based "class index" and a title beside the description. */
static int map_ag_news(const json_t *row, json_t *fields, int *label, qpo_err *err) {
    if (!json_object_get(row, "class_index"))
        return map_text_label(row, fields, 4, label, err);
    json_t *title = json_object_get(row, "title"), *desc = json_object_get(row, "description");
    if (!json_is_string(title) || !json_is_string(desc))
        return row_err(err, "columns title and description are required");
    char *text = NULL;
    if (asprintf(&text, "%s %s", json_string_value(title), json_string_value(desc)) < 0)
        return row_err(err, "out of memory");
    json_object_set_new(fields, "text", json_string(text));
    free(text);
    if (parse_label(row, "class_index", 1, 4, label, err) < 0)
        return -1;
    (*label)--;
    return 0;
}

/* BoolQ: native and google/boolq write "answer": true/false; super_glue writes "label" with
 * 1 = True. The verbalizers are True, False, so gold True is label 0. */
static int map_boolq(const json_t *row, json_t *fields, int *label, qpo_err *err) {
    if (take_string(row, "passage", "passage", fields, err) < 0 ||
        take_string(row, "question", "question", fields, err) < 0)
        return -1;
    json_t *answer = json_object_get(row, "answer");
    if (json_is_boolean(answer)) {
        *label = json_is_true(answer) ? 0 : 1;
        return 0;
    }
    int l;
    if (parse_label(row, "label", 0, 1, &l, err) < 0)
        return row_err(err, "field \"answer\" (true/false) or \"label\" (0/1) is required");
    *label = l == 1 ? 0 : 1;
    return 0;
}

static int map_cosmos_qa(const json_t *row, json_t *fields, int *label, qpo_err *err) {
    if (take_string(row, "context", "context", fields, err) < 0 ||
        take_string(row, "question", "question", fields, err) < 0)
        return -1;
    json_t *choices = json_array();
    json_object_set_new(fields, "choices", choices);
    for (int k = 0; k < 4; k++) {
        char key[16];
        snprintf(key, sizeof(key), "answer%d", k);
        json_t *v = json_object_get(row, key);
        if (!json_is_string(v))
            return row_err(err, "field \"%s\" is missing or not a string", key);
        json_array_append_new(choices, json_string(json_string_value(v)));
    }
    return parse_label(row, "label", 0, 3, label, err);
}

/* HellaSwag: "ctx" is ctx_a + " " + ctx_b upstream; older exports carry only the halves. */
static int map_hellaswag(const json_t *row, json_t *fields, int *label, qpo_err *err) {
    if (take_string(row, "activity_label", "activity_label", fields, err) < 0)
        return -1;
    if (json_is_string(json_object_get(row, "ctx")))
        take_string(row, "ctx", "ctx", fields, err);
    else {
        json_t *a = json_object_get(row, "ctx_a"), *b = json_object_get(row, "ctx_b");
        if (!json_is_string(a) || !json_is_string(b))
            return row_err(err, "field \"ctx\" (or ctx_a and ctx_b) is required");
        char *ctx = NULL;
        if (asprintf(&ctx, "%s %s", json_string_value(a), json_string_value(b)) < 0)
            return row_err(err, "out of memory");
        json_object_set_new(fields, "ctx", json_string(ctx));
        free(ctx);
    }
    json_t *endings = json_object_get(row, "endings");
    if (!json_is_array(endings) || json_array_size(endings) != 4)
        return row_err(err, "field \"endings\" must be a list of 4 strings");
    for (size_t k = 0; k < 4; k++)
        if (!json_is_string(json_array_get(endings, k)))
            return row_err(err, "endings[%zu] is not a string", k);
    json_object_set(fields, "choices", endings);
    if (parse_label(row, "label", 0, 3, label, err) < 0) {
        qpo_err_hint(err, "HellaSwag's test split is unlabelled: import train and validation");
        return -1;
    }
    return 0;
}

static int map_gsm8k(const json_t *row, json_t *fields, char **answer, qpo_err *err) {
    if (take_string(row, "question", "question", fields, err) < 0)
        return -1;
    json_t *a = json_object_get(row, "answer");
    if (!json_is_string(a))
        return row_err(err, "field \"answer\" is missing or not a string");
    char gold[QPO_MATH_ANSWER_MAX];
    if (qpo_math_gold_gsm8k(json_string_value(a), gold, err) < 0) {
        err->code = QPO_EXIT_USAGE;
        return -1;
    }
    *answer = strdup(gold);
    return 0;
}

/* SVAMP: the query is Body + " " + Question (Hugging Face exports also carry it joined). */
static int map_svamp(const json_t *row, json_t *fields, char **answer, qpo_err *err) {
    json_t *body = json_object_get(row, "Body"), *q = json_object_get(row, "Question");
    json_t *a = json_object_get(row, "Answer");
    if (!json_is_string(body) || !json_is_string(q))
        return row_err(err, "fields \"Body\" and \"Question\" are required strings");
    if (!json_is_number(a) && !json_is_string(a))
        return row_err(err, "field \"Answer\" is missing or not a number");
    char *end = NULL;
    double val = json_is_number(a) ? json_number_value(a) : strtod(json_string_value(a), &end);
    if (!isfinite(val) ||
        (end && (end == json_string_value(a) || strspn(end, " \t\r\n") != strlen(end))))
        return row_err(err, "field \"Answer\" is not a finite number");
    char *text = NULL;
    if (asprintf(&text, "%s %s", json_string_value(body), json_string_value(q)) < 0)
        return row_err(err, "out of memory");
    json_object_set_new(fields, "question", json_string(text));
    free(text);
    char gold[QPO_MATH_ANSWER_MAX];
    qpo_math_gold_number(val, gold);
    /* The gold is kept as text: one that reads back as another number (1e-9 as "0") would
     * mark right answers wrong. */
    if (fabs(strtod(gold, NULL) - val) > 1e-9 * fabs(val))
        return row_err(err, "field \"Answer\" %.17g would be stored as \"%s\", another number", val,
                       gold);
    *answer = strdup(gold);
    return 0;
}

static int map_row(const qpo_task *task, const json_t *row, json_t *fields, int *label,
                   char **answer, qpo_err *err) {
    const char *name = task->name;
    if (!strcmp(name, "ag_news"))
        return map_ag_news(row, fields, label, err);
    if (!strcmp(name, "boolq"))
        return map_boolq(row, fields, label, err);
    if (!strcmp(name, "imdb"))
        return map_text_label(row, fields, 2, label, err);
    if (!strcmp(name, "tweet_emotion"))
        return map_text_label(row, fields, 4, label, err);
    if (!strcmp(name, "cosmos_qa"))
        return map_cosmos_qa(row, fields, label, err);
    if (!strcmp(name, "hellaswag"))
        return map_hellaswag(row, fields, label, err);
    if (!strcmp(name, "gsm8k"))
        return map_gsm8k(row, fields, answer, err);
    if (!strcmp(name, "svamp"))
        return map_svamp(row, fields, answer, err);
    return row_err(err, "no importer for task \"%s\"", name);
}

static int append(qpo_item_list *list, const qpo_item *item) {
    if (list->n == list->cap) {
        size_t cap = list->cap ? list->cap * 2 : 1024;
        qpo_item *items = realloc(list->items, cap * sizeof(*items));
        if (!items)
            return -1;
        list->items = items;
        list->cap = cap;
    }
    list->items[list->n++] = *item;
    return 0;
}

int qpo_item_from_row(const char *task_name, const json_t *row, const char *upstream_split,
                      int upstream_index, qpo_item_list *list, qpo_err *err) {
    const qpo_task *task = qpo_task_find(task_name);
    if (!task)
        return row_err(err, "unknown task \"%s\"", task_name);
    if (!json_is_object(row))
        return row_err(err, "row is not a JSON object");
    qpo_item item = {.upstream_index = upstream_index, .label = -1, .fields = json_object()};
    if (map_row(task, row, item.fields, &item.label, &item.answer, err) < 0 ||
        !(item.query = qpo_task_query_text(task, item.fields, err))) {
        err->code = QPO_EXIT_USAGE;
        json_decref(item.fields);
        free(item.answer);
        return -1;
    }
    item.upstream_split = strdup(upstream_split);
    if (append(list, &item) < 0) {
        json_decref(item.fields);
        free(item.answer);
        free(item.query);
        free(item.upstream_split);
        return qpo_err_set(err, QPO_EXIT_RUNTIME, "out of memory");
    }
    return 0;
}
