/* The eight QPO tasks and their rendering (docs/qpo-recipe.md section 5). See tasks.h. */
#define PCRE2_CODE_UNIT_WIDTH 8
#include "tasks.h"

#include <ctype.h>
#include <math.h>
#include <pcre2.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "splitmix.h"

static const qpo_task TASKS[] = {
    {.name = "ag_news",
     .type = QPO_TASK_CLASSIFICATION,
     .n_fields = 1,
     .fields = {{"News", "text"}},
     .answer_label = "Category",
     .n_labels = 4,
     .verbalizers = {"World", "Sports", "Business", "Sci/Tech"},
     .n_query_parts = 1,
     .query_parts = {{NULL, "text"}}},
    {.name = "boolq",
     .type = QPO_TASK_CLASSIFICATION,
     .n_fields = 2,
     .fields = {{"Passage", "passage"}, {"Question", "question"}},
     .answer_label = "Answer",
     .n_labels = 2,
     .verbalizers = {"True", "False"},
     .n_query_parts = 2,
     .query_parts = {{"[Question]:", "question"}, {"[Passage]:", "passage"}}},
    {.name = "imdb",
     .type = QPO_TASK_CLASSIFICATION,
     .n_fields = 1,
     .fields = {{"Review", "text"}},
     .answer_label = "Sentiment",
     .n_labels = 2,
     .verbalizers = {"Negative", "Positive"},
     .n_query_parts = 1,
     .query_parts = {{NULL, "text"}}},
    {.name = "tweet_emotion",
     .type = QPO_TASK_CLASSIFICATION,
     .n_fields = 1,
     .fields = {{"Tweet", "text"}},
     .answer_label = "Emotion",
     .n_labels = 4,
     .verbalizers = {"Anger", "Joy", "Optimism", "Sadness"},
     .n_query_parts = 1,
     .query_parts = {{NULL, "text"}}},
    {.name = "cosmos_qa",
     .type = QPO_TASK_MULTIPLE_CHOICE,
     .n_fields = 2,
     .fields = {{"Passage", "context"}, {"Question", "question"}},
     .answer_label = "Answer",
     .n_labels = 4,
     .n_query_parts = 2,
     .query_parts = {{"[Question]:", "question"}, {"[Context]:", "context"}}},
    {.name = "hellaswag",
     .type = QPO_TASK_MULTIPLE_CHOICE,
     .n_fields = 1,
     .fields = {{"Sentence", "ctx"}},
     .answer_label = "Answer",
     .n_labels = 4,
     .n_query_parts = 2,
     .query_parts = {{"[Activity_Label]:", "activity_label"}, {"[Context]:", "ctx"}}},
    {.name = "gsm8k",
     .type = QPO_TASK_MATH,
     .n_fields = 1,
     .fields = {{"Question", "question"}},
     .answer_label = "Answer",
     .n_query_parts = 1,
     .query_parts = {{NULL, "question"}}},
    {.name = "svamp",
     .type = QPO_TASK_MATH,
     .n_fields = 1,
     .fields = {{"Question", "question"}},
     .answer_label = "Answer",
     .n_query_parts = 1,
     .query_parts = {{NULL, "question"}}},
};

const char *const QPO_MATH_SYSTEM_MESSAGE =
    "The final answer should be expressed as a single number, prefixed by 'Final Answer: '.";

const char *qpo_task_type_name(qpo_task_type type) {
    switch (type) {
    case QPO_TASK_CLASSIFICATION:
        return "classification";
    case QPO_TASK_MULTIPLE_CHOICE:
        return "multiple_choice";
    case QPO_TASK_MATH:
        return "math";
    }
    return "unknown";
}

const qpo_task *qpo_task_find(const char *name) {
    for (size_t i = 0; name && i < sizeof TASKS / sizeof TASKS[0]; i++) {
        if (strcmp(TASKS[i].name, name) == 0) {
            return &TASKS[i];
        }
    }
    return NULL;
}

const qpo_task *qpo_task_all(size_t *count) {
    *count = sizeof TASKS / sizeof TASKS[0];
    return TASKS;
}

/* ---- a small growable string ---- */

typedef struct strbuf {
    char *data;
    size_t len, cap;
} strbuf;

static void sb_add(strbuf *sb, const char *s, size_t n) {
    if (sb->len + n + 1 > sb->cap) {
        size_t cap = sb->cap ? sb->cap : 256;
        while (cap < sb->len + n + 1) {
            cap *= 2;
        }
        char *grown = realloc(sb->data, cap);
        if (!grown) {
            abort(); /* out of memory: nothing sensible to carry on with */
        }
        sb->data = grown;
        sb->cap = cap;
    }
    memcpy(sb->data + sb->len, s, n);
    sb->len += n;
    sb->data[sb->len] = '\0';
}

static void sb_puts(strbuf *sb, const char *s) {
    sb_add(sb, s, strlen(s));
}

char *qpo_task_cut_words(const char *text, int max_words) {
    /* Python's text.split(" ") makes n spaces into n + 1 words, empty ones included, so the
     * cut keeps the bytes before the max_words-th space. */
    int spaces = 0;
    for (const char *p = text; *p; p++) {
        if (*p == ' ' && ++spaces == max_words) {
            size_t keep = (size_t)(p - text);
            char *out = malloc(keep + sizeof QPO_TASK_CUT_MARK);
            if (!out) {
                abort();
            }
            memcpy(out, text, keep);
            memcpy(out + keep, QPO_TASK_CUT_MARK, sizeof QPO_TASK_CUT_MARK);
            return out;
        }
    }
    return strdup(text);
}

static const char *field_string(const qpo_task *task, const json_t *fields, const char *key,
                                qpo_err *err) {
    const json_t *v = json_is_object(fields) ? json_object_get(fields, key) : NULL;
    if (!json_is_string(v)) {
        qpo_err_set(err, QPO_EXIT_USAGE, "task item lacks a text field");
        qpo_err_detail(err, "task %s, field \"%s\" %s", task->name, key,
                       v ? "is not a string" : "is missing");
        qpo_err_hint(err, "check the import of qpo.task_items.fields for this task");
        return NULL;
    }
    return json_string_value(v);
}

const char *qpo_task_verbalizer(const qpo_task *task, const json_t *fields, int k, qpo_err *err) {
    if (k < 0 || k >= task->n_labels) {
        qpo_err_set(err, QPO_EXIT_USAGE, "label out of range");
        qpo_err_detail(err, "task %s has %d labels, got %d", task->name, task->n_labels, k);
        return NULL;
    }
    if (task->type == QPO_TASK_CLASSIFICATION) {
        return task->verbalizers[k];
    }
    const json_t *choices = json_is_object(fields) ? json_object_get(fields, "choices") : NULL;
    const json_t *choice = json_array_get(choices, (size_t)k);
    if (!json_is_array(choices) || json_array_size(choices) != (size_t)task->n_labels ||
        !json_is_string(choice)) {
        qpo_err_set(err, QPO_EXIT_USAGE, "multiple-choice item lacks its choices");
        qpo_err_detail(err, "task %s: fields.choices must be an array of %d strings", task->name,
                       task->n_labels);
        return NULL;
    }
    return json_string_value(choice);
}

static int add_block(strbuf *sb, const qpo_task *task, const json_t *fields, const char *verbalizer,
                     qpo_err *err) {
    for (int i = 0; i < task->n_fields; i++) {
        const char *value = field_string(task, fields, task->fields[i].key, err);
        if (!value) {
            return -1;
        }
        char *cut = qpo_task_cut_words(value, QPO_TASK_MAX_WORDS);
        sb_puts(sb, task->fields[i].label);
        sb_puts(sb, ": ");
        sb_puts(sb, cut);
        sb_puts(sb, "\n");
        free(cut);
    }
    sb_puts(sb, task->answer_label);
    sb_puts(sb, ":");
    if (verbalizer) {
        sb_puts(sb, " ");
        sb_puts(sb, verbalizer);
    }
    return 0;
}

char *qpo_task_render_block(const qpo_task *task, const json_t *fields, const char *verbalizer,
                            qpo_err *err) {
    strbuf sb = {0};
    if (add_block(&sb, task, fields, verbalizer, err) != 0) {
        free(sb.data);
        return NULL;
    }
    return sb.data;
}

char *qpo_task_render_context(const qpo_task *task, const char *instruction,
                              const qpo_task_example *demos, int n_demos, const json_t *test_fields,
                              qpo_err *err) {
    strbuf sb = {0};
    if (instruction && *instruction) {
        sb_puts(&sb, instruction);
        sb_puts(&sb, "\n\n");
    }
    for (int i = 0; i < n_demos; i++) {
        const char *v = qpo_task_verbalizer(task, demos[i].fields, demos[i].label, err);
        if (!v || add_block(&sb, task, demos[i].fields, v, err) != 0) {
            qpo_err_prefix(err, "demonstration %d", i + 1);
            free(sb.data);
            return NULL;
        }
        sb_puts(&sb, "\n\n");
    }
    if (add_block(&sb, task, test_fields, NULL, err) != 0) {
        free(sb.data);
        return NULL;
    }
    return sb.data;
}

char *qpo_task_render_scoring(const qpo_task *task, const char *instruction,
                              const qpo_task_example *demos, int n_demos, const json_t *test_fields,
                              int k, size_t *context_len, qpo_err *err) {
    const char *v = qpo_task_verbalizer(task, test_fields, k, err);
    if (!v) {
        return NULL;
    }
    char *context = qpo_task_render_context(task, instruction, demos, n_demos, test_fields, err);
    if (!context) {
        return NULL;
    }
    strbuf sb = {.data = context, .len = strlen(context), .cap = strlen(context) + 1};
    *context_len = sb.len;
    sb_puts(&sb, " ");
    sb_puts(&sb, v);
    return sb.data;
}

char *qpo_task_query_text(const qpo_task *task, const json_t *fields, qpo_err *err) {
    strbuf sb = {0};
    for (int i = 0; i < task->n_query_parts; i++) {
        const char *value = field_string(task, fields, task->query_parts[i].key, err);
        if (!value) {
            free(sb.data);
            return NULL;
        }
        if (i > 0) {
            sb_puts(&sb, " ");
        }
        if (task->query_parts[i].label) {
            sb_puts(&sb, task->query_parts[i].label);
            sb_puts(&sb, " ");
        }
        sb_puts(&sb, value);
    }
    if (!sb.data) {
        sb_puts(&sb, "");
    }
    return sb.data;
}

/* Moves a seeded choice of k of pool[0..n) to its front (Fisher-Yates prefix). */
static void seeded_prefix(uint64_t *state, size_t *pool, size_t n, size_t k) {
    for (size_t i = 0; i < k; i++) {
        /* Modulo bias is below 2^-40 for any realistic train size: irrelevant here. */
        size_t j = i + (size_t)(qpo_mix64_next(state) % (n - i));
        size_t tmp = pool[i];
        pool[i] = pool[j];
        pool[j] = tmp;
    }
}

int qpo_task_demo_indices(uint64_t set_seed, const int *labels, int n_labels, size_t n_train,
                          size_t k, size_t *out) {
    if (k > n_train) {
        return -1;
    }
    size_t *pool = malloc((n_train ? n_train : 1) * sizeof *pool);
    if (!pool) {
        abort();
    }
    uint64_t state = set_seed;
    if (!labels || n_labels < 2) {
        for (size_t i = 0; i < n_train; i++) {
            pool[i] = i;
        }
        seeded_prefix(&state, pool, n_train, k);
        memcpy(out, pool, k * sizeof *out);
        free(pool);
        return 0;
    }
    size_t got = 0, per = k / (size_t)n_labels, extra = k % (size_t)n_labels;
    for (int c = 0; c < n_labels; c++) {
        /* The authors' count list gives the remainder's extra demonstration to the last labels. */
        size_t want = per + ((size_t)c >= (size_t)n_labels - extra ? 1 : 0), m = 0;
        for (size_t i = 0; i < n_train; i++) {
            if (labels[i] == c) {
                pool[m++] = i;
            }
        }
        if (m < want) {
            free(pool);
            return -1;
        }
        seeded_prefix(&state, pool, m, want);
        memcpy(out + got, pool, want * sizeof *out);
        got += want;
    }
    /* Shuffled, so labels do not come in order inside the prompt. */
    seeded_prefix(&state, out, k, k);
    free(pool);
    return 0;
}

/* ---- math ---- */

char *qpo_math_user_message(const char *question, const char *prompt) {
    strbuf sb = {0};
    sb_puts(&sb, question);
    sb_puts(&sb, "\n");
    sb_puts(&sb, prompt ? prompt : "");
    return sb.data;
}

static pcre2_code *number_re;
static pthread_once_t number_re_once = PTHREAD_ONCE_INIT;

static void compile_number_re(void) {
    int errcode;
    PCRE2_SIZE erroff;
    number_re = pcre2_compile((PCRE2_SPTR) "-?\\d+\\.?\\d*", PCRE2_ZERO_TERMINATED, 0, &errcode,
                              &erroff, NULL);
    if (!number_re) {
        abort(); /* a constant pattern: failing to compile is a build defect */
    }
}

/* "12." -> "12", "12.00" -> "12"; other decimals kept as written. */
static void normalise_number(char *s) {
    size_t n = strlen(s);
    if (n > 0 && s[n - 1] == '.') {
        s[--n] = '\0';
    }
    char *dot = strchr(s, '.');
    if (dot) {
        bool zeros = true;
        for (char *p = dot + 1; *p; p++) {
            zeros = zeros && *p == '0';
        }
        if (zeros) {
            *dot = '\0';
        }
    }
}

static char *without_commas(const char *text) {
    size_t n = strlen(text);
    char *s = malloc(n + 1);
    if (!s) {
        abort();
    }
    size_t j = 0;
    for (size_t i = 0; i < n; i++) {
        if (text[i] != ',') {
            s[j++] = text[i];
        }
    }
    s[j] = '\0';
    return s;
}

/* The last (or first) match of the number pattern in text, into out. */
static int find_number(const char *text, bool last, char out[QPO_MATH_ANSWER_MAX]) {
    pthread_once(&number_re_once, compile_number_re);
    out[0] = '\0';
    char *s = without_commas(text);
    size_t len = strlen(s);
    pcre2_match_data *md = pcre2_match_data_create_from_pattern(number_re, NULL);
    PCRE2_SIZE offset = 0, best_start = 0, best_len = 0;
    bool found = false;
    while (offset <= len && pcre2_match(number_re, (PCRE2_SPTR)s, len, offset, 0, md, NULL) > 0) {
        PCRE2_SIZE *ov = pcre2_get_ovector_pointer(md);
        best_start = ov[0];
        best_len = ov[1] - ov[0];
        found = true;
        offset = ov[1] > ov[0] ? ov[1] : ov[0] + 1;
        if (!last) {
            break;
        }
    }
    pcre2_match_data_free(md);
    if (found) {
        if (best_len >= QPO_MATH_ANSWER_MAX) {
            best_len = QPO_MATH_ANSWER_MAX - 1; /* a 60-digit "answer" is wrong either way */
        }
        memcpy(out, s + best_start, best_len);
        out[best_len] = '\0';
        normalise_number(out);
    }
    free(s);
    return found ? 0 : -1;
}

int qpo_math_extract_answer(const char *text, char out[QPO_MATH_ANSWER_MAX]) {
    return find_number(text ? text : "", true, out);
}

/* The gold after "#### " must be the whole rest (blanks and thousands commas aside) and a
 * plain decimal: "1e999" matched the number pattern as "1" and was stored as a wrong gold. */
static bool plain_decimal(const char *text) {
    char *s = without_commas(text);
    char *a = s, *b = s + strlen(s);
    while (*a == ' ' || *a == '\t' || *a == '\n' || *a == '\r') {
        a++;
    }
    while (b > a && (b[-1] == ' ' || b[-1] == '\t' || b[-1] == '\n' || b[-1] == '\r')) {
        *--b = '\0';
    }
    bool ok = a < b && (size_t)(b - a) < QPO_MATH_ANSWER_MAX;
    for (const char *p = a; ok && *p; p++) {
        ok = (*p >= '0' && *p <= '9') || *p == '.' || (*p == '-' && p == a);
    }
    char *end = NULL;
    ok = ok && isfinite(strtod(a, &end)) && *end == '\0';
    free(s);
    return ok;
}

int qpo_math_gold_gsm8k(const char *answer_text, char out[QPO_MATH_ANSWER_MAX], qpo_err *err) {
    const char *marker = NULL;
    for (const char *p = answer_text; (p = strstr(p, "#### ")); p++) {
        marker = p;
    }
    if (!marker || find_number(marker + 5, false, out) != 0) {
        qpo_err_set(err, QPO_EXIT_USAGE, "GSM8K answer has no gold number");
        qpo_err_detail(err, "expected \"#### NUMBER\" at the end of: %.120s", answer_text);
        return -1;
    }
    if (!plain_decimal(marker + 5)) {
        qpo_err_set(err, QPO_EXIT_USAGE, "GSM8K gold \"%.40s\" is not a plain decimal number",
                    marker + 5);
        qpo_err_detail(err, "it would be stored as \"%s\", which is not the same number", out);
        out[0] = '\0';
        return -1;
    }
    return 0;
}

void qpo_math_gold_number(double answer, char out[QPO_MATH_ANSWER_MAX]) {
    char buf[QPO_MATH_ANSWER_MAX];
    snprintf(buf, sizeof buf, "%.15g", answer);
    if (strchr(buf, 'e')) {
        snprintf(buf, sizeof buf, "%.6f", answer);
    }
    snprintf(out, QPO_MATH_ANSWER_MAX, "%s", buf);
    normalise_number(out);
}

int qpo_math_is_correct(const char *prediction, const char *gold) {
    if (!prediction || !*prediction || !gold || !*gold) {
        return 0;
    }
    char *end1, *end2;
    double p = strtod(prediction, &end1);
    double g = strtod(gold, &end2);
    if (*end1 || *end2) {
        return strcmp(prediction, gold) == 0;
    }
    /* Absolute tolerance: answers are counts and amounts, where 1e-6 is far below any real
     * difference yet absorbs float round-off of values such as SVAMP's 51.0. */
    return fabs(p - g) <= 1e-6 + 1e-12 * fabs(g);
}
