/* Scoring (item, prompt) pairs on the target LLM. See scoring.h. */
#include "scoring.h"

#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "reward_formula.h"

typedef struct run_state {
    qpo_scoring *s;
    struct event_base *base;
    size_t pending;
    bool stopped;
    bool (*should_stop)(void *);
    void *stop_arg;
} run_state;

typedef struct request {
    run_state *st;
    qpo_score_item *it;
    int set, label;
    char *continuation; /* kept until the run ends: the client may hold the pointer */
} request;

static void *xcalloc(size_t n, size_t size) {
    void *p = calloc(n ? n : 1, size);
    if (!p) {
        abort(); /* out of memory mid-job: the job is retried elsewhere */
    }
    return p;
}

size_t qpo_scoring_calls_per_item(const qpo_scoring *s) {
    if (s->task->type == QPO_TASK_MATH) {
        return 1;
    }
    return (size_t)s->n_sets * (size_t)s->task->n_labels;
}

static void note_failure(qpo_scoring *s, const qpo_score_item *it, qpo_llm_status status,
                         const char *error, bool retryable) {
    if (s->failed == 0) {
        s->failure_retryable = retryable;
        snprintf(s->first_error, sizeof s->first_error, "item %d: %s%s%s", it->item_id,
                 qpo_llm_status_name(status), error && *error ? ": " : "", error ? error : "");
    } else {
        s->failure_retryable = s->failure_retryable && retryable;
    }
    s->failed++;
}

static void on_done(const qpo_llm_result *r, void *user) {
    request *rq = user;
    run_state *st = rq->st;
    qpo_scoring *s = st->s;
    qpo_score_item *it = rq->it;
    size_t slot = (size_t)rq->set * (size_t)s->task->n_labels + (size_t)rq->label;
    if (s->task->type == QPO_TASK_MATH) {
        slot = 0;
    }
    if (r->status != QPO_LLM_OK) {
        note_failure(s, it, r->status, r->error, qpo_llm_status_retryable(r->status));
    } else {
        it->call_ids[slot] = r->call_id;
        if (s->task->type == QPO_TASK_MATH) {
            it->completion_nll = r->mean_nll;
            free(it->completion);
            it->completion = strdup(r->text ? r->text : "");
        } else {
            it->nlls[slot] = r->mean_nll;
        }
    }
    if (--st->pending == 0) {
        event_base_loopbreak(st->base);
    }
}

static void on_tick(evutil_socket_t fd, short what, void *arg) {
    (void)fd, (void)what;
    run_state *st = arg;
    if (st->should_stop && st->should_stop(st->stop_arg)) {
        st->stopped = true;
        event_base_loopbreak(st->base);
    }
}

static char *continuation_of(const char *verbalizer) {
    size_t n = strlen(verbalizer);
    char *c = xcalloc(n + 2, 1);
    c[0] = ' ';
    memcpy(c + 1, verbalizer, n);
    return c;
}

/* Submits the label-scoring calls of one item: every verbalizer under every demo set. */
static int submit_labels(run_state *st, qpo_llm_client *c, qpo_score_item *it, request *rq,
                         char **contexts, qpo_err *err) {
    qpo_scoring *s = st->s;
    for (int set = 0; set < s->n_sets; set++) {
        const qpo_task_example *demos = s->sets ? s->sets[set].demos : NULL;
        int n_demos = s->sets ? QPO_FEW_SHOT_DEMOS : 0;
        contexts[set] =
            qpo_task_render_context(s->task, it->prompt, demos, n_demos, it->fields, err);
        if (!contexts[set]) {
            qpo_err_prefix(err, "item %d", it->item_id);
            return -1;
        }
        for (int k = 0; k < s->task->n_labels; k++) {
            const char *v = qpo_task_verbalizer(s->task, it->fields, k, err);
            if (!v) {
                qpo_err_prefix(err, "item %d", it->item_id);
                return -1;
            }
            request *r = &rq[set * s->task->n_labels + k];
            *r = (request){
                .st = st, .it = it, .set = set, .label = k, .continuation = continuation_of(v)};
            st->pending++;
            if (qpo_llm_score(c, contexts[set], r->continuation, on_done, r, err) != 0) {
                st->pending--;
                return -1;
            }
        }
    }
    return 0;
}

static int submit_math(run_state *st, qpo_llm_client *c, qpo_score_item *it, request *rq,
                       char **user_msg, qpo_err *err) {
    const json_t *q = json_object_get(it->fields, "question");
    const char *question = json_is_string(q) ? json_string_value(q) : it->query;
    *user_msg = qpo_math_user_message(question, it->prompt);
    qpo_llm_message msgs[2] = {{"system", QPO_MATH_SYSTEM_MESSAGE}, {"user", *user_msg}};
    qpo_llm_chat_opts opts = {.temperature = 0, .max_tokens = QPO_MATH_MAX_TOKENS};
    *rq = (request){.st = st, .it = it};
    st->pending++;
    if (qpo_llm_chat(c, msgs, 2, &opts, on_done, rq, err) != 0) {
        st->pending--;
        return -1;
    }
    return 0;
}

static void finish_item(const qpo_scoring *s, qpo_score_item *it) {
    if (s->task->type == QPO_TASK_MATH) {
        qpo_math_extract_answer(it->completion ? it->completion : "", it->prediction);
        it->acc = qpo_math_is_correct(it->prediction, it->gold) ? 1.0 : 0.0;
        return;
    }
    int right = 0;
    for (int set = 0; set < s->n_sets; set++) {
        const double *row = it->nlls + (size_t)set * (size_t)s->task->n_labels;
        it->predictions[set] = qpo_reward_argmin(row, (size_t)s->task->n_labels);
        right += it->predictions[set] == it->label;
    }
    it->acc = (double)right / s->n_sets;
    snprintf(it->prediction, sizeof it->prediction, "%d", it->predictions[0]);
}

static void prepare_item(const qpo_scoring *s, qpo_score_item *it) {
    it->n_calls = qpo_scoring_calls_per_item(s);
    free(it->call_ids);
    it->call_ids = xcalloc(it->n_calls, sizeof *it->call_ids);
    if (s->task->type != QPO_TASK_MATH) {
        free(it->nlls);
        free(it->predictions);
        it->nlls = xcalloc(it->n_calls, sizeof *it->nlls);
        it->predictions = xcalloc((size_t)s->n_sets, sizeof *it->predictions);
    }
}

/* The gold an item must carry before its reward can be computed (the zero-shot reward indexes
 * the NLLs by it). */
static int check_gold(const qpo_scoring *s, const qpo_score_item *it, qpo_err *err) {
    bool math = s->task->type == QPO_TASK_MATH;
    if (math ? it->gold != NULL : (it->label >= 0 && it->label < s->task->n_labels)) {
        return 0;
    }
    qpo_err_set(err, QPO_EXIT_USAGE, "task item %d of %s has no usable gold answer", it->item_id,
                s->task->name);
    if (math) {
        qpo_err_detail(err, "qpo.task_items.answer is NULL");
    } else {
        qpo_err_detail(err, "label %d, expected 0..%d", it->label, s->task->n_labels - 1);
    }
    qpo_err_hint(err, "re-import the task's data (qpo data import)");
    return -1;
}

static int submit_all(run_state *st, qpo_llm_client *c, request *reqs, char **texts, qpo_err *err) {
    qpo_scoring *s = st->s;
    for (size_t i = 0; i < s->n_items; i++) {
        if (check_gold(s, &s->items[i], err) != 0) {
            return -1;
        }
    }
    size_t per = qpo_scoring_calls_per_item(s);
    size_t per_text = s->task->type == QPO_TASK_MATH ? 1 : (size_t)s->n_sets;
    for (size_t i = 0; i < s->n_items; i++) {
        qpo_score_item *it = &s->items[i];
        prepare_item(s, it);
        int rc = s->task->type == QPO_TASK_MATH
                     ? submit_math(st, c, it, &reqs[i * per], &texts[i * per_text], err)
                     : submit_labels(st, c, it, &reqs[i * per], &texts[i * per_text], err);
        if (rc != 0) {
            return -1;
        }
    }
    return 0;
}

int qpo_scoring_run(qpo_scoring *s, struct event_base *base, qpo_llm_client *c,
                    bool (*should_stop)(void *), void *stop_arg, qpo_err *err) {
    size_t per = qpo_scoring_calls_per_item(s);
    size_t per_text = s->task->type == QPO_TASK_MATH ? 1 : (size_t)s->n_sets;
    request *reqs = xcalloc(s->n_items * per, sizeof *reqs);
    char **texts = xcalloc(s->n_items * per_text, sizeof *texts);
    run_state st = {.s = s, .base = base, .should_stop = should_stop, .stop_arg = stop_arg};
    s->requests = s->n_items * per;
    s->failed = 0;
    s->failure_retryable = true;
    int rc = submit_all(&st, c, reqs, texts, err);
    struct event *tick = event_new(base, -1, EV_PERSIST, on_tick, &st);
    struct timeval every = {0, 200 * 1000};
    evtimer_add(tick, &every);
    /* Requests already submitted still end (done is called for each): wait for them even
     * after a submission error, so no callback outlives this frame. */
    while (st.pending > 0 && !st.stopped) {
        if (event_base_loop(base, EVLOOP_ONCE) < 0) {
            rc = qpo_err_set(err, QPO_EXIT_RUNTIME, "the event loop failed");
            break;
        }
    }
    event_free(tick);
    if (rc == 0 && st.stopped) {
        rc = 1;
    } else if (rc == 0 && s->failed > 0) {
        qpo_err_set(err, QPO_EXIT_RUNTIME, "%zu of %zu LLM requests failed", s->failed,
                    s->requests);
        qpo_err_detail(err, "first: %s", s->first_error);
        qpo_err_hint(err, s->failure_retryable
                              ? "transient: the job is retried and reuses the answered calls"
                              : "check the target: it must support what this task needs "
                                "(qpo target check)");
        rc = -1;
    } else if (rc == 0) {
        for (size_t i = 0; i < s->n_items; i++) {
            finish_item(s, &s->items[i]);
        }
    }
    /* Ending what is still in flight (stopped, or a submission error) runs their done
     * callbacks, which need reqs: so it goes before them. The client stays its owner's. */
    qpo_llm_client_cancel_all(c);
    for (size_t i = 0; i < s->n_items * per; i++) {
        free(reqs[i].continuation);
    }
    for (size_t i = 0; i < s->n_items * per_text; i++) {
        free(texts[i]);
    }
    free(reqs);
    free(texts);
    return rc;
}

double qpo_scoring_accuracy(const qpo_scoring *s) {
    double sum = 0;
    for (size_t i = 0; i < s->n_items; i++) {
        sum += s->items[i].acc;
    }
    return s->n_items ? sum / (double)s->n_items : 0.0;
}

void qpo_score_items_free(qpo_score_item *items, size_t n) {
    for (size_t i = 0; items && i < n; i++) {
        free(items[i].query);
        free(items[i].prompt);
        json_decref(items[i].fields);
        free(items[i].gold);
        free(items[i].nlls);
        free(items[i].predictions);
        free(items[i].completion);
        free(items[i].call_ids);
    }
    free(items);
}

json_t *qpo_score_item_nlls_json(const qpo_scoring *s, const qpo_score_item *it) {
    if (s->task->type == QPO_TASK_MATH) {
        return json_null();
    }
    int labels = s->task->n_labels;
    json_t *outer = json_array();
    for (int set = 0; set < s->n_sets; set++) {
        json_t *row = json_array();
        for (int k = 0; k < labels; k++) {
            json_array_append_new(row, json_real(it->nlls[set * labels + k]));
        }
        if (s->n_sets == 1 && !s->sets) {
            json_decref(outer);
            return row;
        }
        json_array_append_new(outer, row);
    }
    return outer;
}

json_t *qpo_score_item_calls_json(const qpo_score_item *it) {
    json_t *a = json_array();
    for (size_t i = 0; i < it->n_calls; i++) {
        json_array_append_new(a, json_integer(it->call_ids[i]));
    }
    return a;
}

json_t *qpo_score_item_predictions_json(const qpo_scoring *s, const qpo_score_item *it) {
    if (s->task->type == QPO_TASK_MATH || !s->sets) {
        return json_null();
    }
    json_t *a = json_array();
    for (int set = 0; set < s->n_sets; set++) {
        json_array_append_new(a, json_integer(it->predictions[set]));
    }
    return a;
}
