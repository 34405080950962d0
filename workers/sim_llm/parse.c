/* See parse.h. Blocks are found from the end of the text backwards, by the template's field
 * labels, so values holding newlines and instructions holding blank lines still parse. */
#include "parse.h"

#include <string.h>

#include "simhash.h"

/* Start of the last line beginning with "label: " that starts before `end`, or -1. */
static long find_label_line(const char *t, size_t end, const char *label) {
    size_t m = strlen(label);
    for (size_t p = end; p-- > 0;) {
        if (p != 0 && t[p - 1] != '\n')
            continue;
        if (p + m + 2 <= end && !memcmp(t + p, label, m) && t[p + m] == ':' && t[p + m + 1] == ' ')
            return (long)p;
    }
    return -1;
}

/* Splits text[0, answer_at) into instruction, demonstrations and the test block's values. */
static int parse_blocks(const char *t, size_t answer_at, const qpo_task *task, const char **values,
                        size_t *lens, sim_label_req *out) {
    size_t end = answer_at; /* the '\n' before "Answer:" */
    long start = 0;
    for (int f = task->n_fields - 1; f >= 0; f--) {
        start = find_label_line(t, end, task->fields[f].label);
        if (start < 0)
            return -1;
        size_t v = (size_t)start + strlen(task->fields[f].label) + 2;
        values[f] = t + v;
        lens[f] = end - v;
        end = start > 0 ? (size_t)start - 1 : 0;
    }
    if (start > 0 && (start < 2 || t[start - 1] != '\n' || t[start - 2] != '\n'))
        return -1;
    size_t head = start >= 2 ? (size_t)start - 2 : 0; /* instruction + demos, without "\n\n" */
    /* The first demonstration starts where the first field's label first opens a block. */
    const char *first_label = task->fields[0].label;
    size_t fl = strlen(first_label), demo_at = head;
    int n_demos = 0;
    for (size_t p = 0; p < head; p++) {
        int at_block = p == 0 || (p >= 2 && t[p - 1] == '\n' && t[p - 2] == '\n');
        if (at_block && p + fl + 1 < head && !memcmp(t + p, first_label, fl) && t[p + fl] == ':') {
            if (n_demos++ == 0)
                demo_at = p;
        }
    }
    out->pair.prompt = t;
    out->pair.prompt_len = n_demos == 0 ? head : (demo_at >= 2 ? demo_at - 2 : 0);
    out->pair.n_demos = n_demos;
    out->pair.demos_hash = n_demos ? sim_hash(t + demo_at, head - demo_at, 0xDE) : 0;
    return 0;
}

static int match_verbalizer(const sim_label_req *r, const char *c, size_t n) {
    while (n && *c == ' ')
        c++, n--;
    for (int k = 0; k < r->n_labels; k++)
        if (r->verbalizers[k] && strlen(r->verbalizers[k]) == n && !memcmp(r->verbalizers[k], c, n))
            return k;
    return -1;
}

static void fill_candidates(const sim_data *d, const char **values, size_t *lens,
                            sim_label_req *r) {
    const qpo_task *task = r->task;
    uint64_t key = sim_fields_key(values, lens, task->n_fields);
    r->item = sim_data_find(d, key, task);
    r->pair.task = task;
    r->pair.query_key = key;
    if (r->item) {
        r->pair.query = r->item->query;
        r->pair.query_len = strlen(r->item->query);
    } else {
        r->pair.query = values[0];
        r->pair.query_len = lens[0];
    }
    r->n_labels = 0;
    if (task->type == QPO_TASK_CLASSIFICATION) {
        r->n_labels = task->n_labels;
        for (int k = 0; k < task->n_labels; k++)
            r->verbalizers[k] = task->verbalizers[k];
        r->gold = r->item ? r->item->label : (int)(key % (uint64_t)task->n_labels);
    } else if (r->item) {
        qpo_err err = {0};
        r->n_labels = task->n_labels;
        for (int k = 0; k < task->n_labels; k++)
            if (!(r->verbalizers[k] = qpo_task_verbalizer(task, r->item->fields, k, &err)))
                r->n_labels = 0;
        r->gold = r->item->label;
    }
}

int sim_parse_label(const sim_data *d, const char *t, size_t n, sim_label_req *out) {
    size_t ntasks;
    const qpo_task *all = qpo_task_all(&ntasks);
    for (size_t i = 0; i < ntasks; i++) {
        const qpo_task *task = &all[i];
        if (task->type == QPO_TASK_MATH)
            continue;
        /* The answer line is the last line: "\nAnswer:" then the continuation, if any. */
        const char *nl = memrchr(t, '\n', n);
        if (!nl)
            continue;
        size_t at = (size_t)(nl - t), al = strlen(task->answer_label);
        if (at + 1 + al + 1 > n || memcmp(t + at + 1, task->answer_label, al) ||
            t[at + 1 + al] != ':')
            continue;
        const char *values[QPO_TASK_MAX_FIELDS];
        size_t lens[QPO_TASK_MAX_FIELDS];
        sim_label_req r = {0};
        if (parse_blocks(t, at, task, values, lens, &r))
            continue;
        r.task = task;
        r.ctx_len = at + 1 + al + 1;
        r.cont_len = n - r.ctx_len;
        fill_candidates(d, values, lens, &r);
        r.k = match_verbalizer(&r, t + r.ctx_len, r.cont_len);
        /* Several tasks answer with "Answer:"; prefer the one that knows the item. */
        if (r.item || !out->task)
            *out = r;
        if (r.item)
            return 0;
    }
    return out->task ? 0 : -1;
}

void sim_parse_math(const sim_data *d, const char *u, size_t n, sim_math_req *out) {
    memset(out, 0, sizeof(*out));
    size_t ntasks;
    const qpo_task *all = qpo_task_all(&ntasks);
    size_t first_nl = n;
    /* The question is the shortest line prefix that names a known item. */
    for (size_t cut = 0; cut <= n; cut++) {
        if (cut < n && u[cut] != '\n')
            continue;
        if (first_nl == n)
            first_nl = cut;
        const char *values[1] = {u};
        size_t lens[1] = {cut};
        uint64_t key = sim_fields_key(values, lens, 1);
        for (size_t i = 0; i < ntasks; i++) {
            if (all[i].type != QPO_TASK_MATH)
                continue;
            const sim_item *it = sim_data_find(d, key, &all[i]);
            if (it) {
                out->item = it;
                out->pair.task = it->task;
                out->pair.query = it->query;
                out->pair.query_len = strlen(it->query);
                out->pair.query_key = key;
                out->pair.prompt = cut < n ? u + cut + 1 : u + n;
                out->pair.prompt_len = cut < n ? n - cut - 1 : 0;
                return;
            }
        }
    }
    const char *values[1] = {u};
    size_t lens[1] = {first_nl};
    out->pair.task = qpo_task_find("gsm8k");
    out->pair.query = u;
    out->pair.query_len = first_nl;
    out->pair.query_key = sim_fields_key(values, lens, 1);
    out->pair.prompt = first_nl < n ? u + first_nl + 1 : u + n;
    out->pair.prompt_len = first_nl < n ? n - first_nl - 1 : 0;
}
