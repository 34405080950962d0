/* `qpo target check|score|chat`: one endpoint, from the command line, before a long run. */
#include <event2/event.h>
#include <getopt.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "commands.h"
#include "error.h"
#include "llm.h"
#include "llm_cli.h"
#include "tasks.h"
#include "url.h"

static const char *const usage_text =
    "usage: qpo target check --target URL --model M [options]\n"
    "       qpo target score --target URL --model M --context TEXT --continuation TEXT [--json]\n"
    "       qpo target chat  --target URL --model M --task gsm8k|svamp --text QUERY\n"
    "                        [--prompt P] [--json]\n"
    "\n"
    "check: whether the endpoint supports what each task type needs (echo + logprobs on\n"
    "  /v1/completions for label scoring, logprobs on /v1/chat/completions for math), with\n"
    "  the latency of one call each. Exit 1 when unreachable, when it answers with an\n"
    "  error or garbage (HTTP 5xx, a body that is not the API's JSON), or when --require\n"
    "  names a capability it lacks.\n"
    "score: the continuation's tokens, logprobs and mean NLL after the context.\n"
    "chat: the recipe's math messages; the reply, its mean NLL and the extracted answer.\n"
    "\n"
    "options:\n"
    "  --target URL         base URL (http://host:8000 or http://host:8000/v1)\n"
    "  --model M            model name sent in every request\n"
    "  --api-key-env VAR    read the API key from $VAR\n"
    "  --api-key-file F     read the API key from the first line of F\n"
    "  --ca-file F          trust the CAs in PEM file F for https (default: the system's)\n"
    "  --timeout-ms N       whole-call timeout (default 60000)\n"
    "  --retries N          retries after the first attempt (default 2)\n"
    "  --require WHAT       check: label, math or all must be supported\n"
    "  --json               one JSON object on stdout\n";

enum {
    OPT_KEY_ENV = 256,
    OPT_KEY_FILE,
    OPT_CA_FILE,
    OPT_TIMEOUT,
    OPT_RETRIES,
    OPT_CONTEXT,
    OPT_CONT,
    OPT_TASK,
    OPT_TEXT,
    OPT_PROMPT,
    OPT_REQUIRE,
    OPT_JSON,
    OPT_HELP
};

typedef struct target_args {
    qpo_llm_cli_target tgt;
    const char *context, *continuation, *task, *text, *prompt, *require;
    bool json;
} target_args;

static int parse_args(int argc, char **argv, target_args *a, qpo_err *err) {
    static const struct option opts[] = {
        {"target", required_argument, NULL, 't'},
        {"model", required_argument, NULL, 'm'},
        {"api-key-env", required_argument, NULL, OPT_KEY_ENV},
        {"api-key-file", required_argument, NULL, OPT_KEY_FILE},
        {"ca-file", required_argument, NULL, OPT_CA_FILE},
        {"timeout-ms", required_argument, NULL, OPT_TIMEOUT},
        {"retries", required_argument, NULL, OPT_RETRIES},
        {"context", required_argument, NULL, OPT_CONTEXT},
        {"continuation", required_argument, NULL, OPT_CONT},
        {"task", required_argument, NULL, OPT_TASK},
        {"text", required_argument, NULL, OPT_TEXT},
        {"prompt", required_argument, NULL, OPT_PROMPT},
        {"require", required_argument, NULL, OPT_REQUIRE},
        {"json", no_argument, NULL, OPT_JSON},
        {"help", no_argument, NULL, OPT_HELP},
        {0, 0, 0, 0},
    };
    memset(a, 0, sizeof *a);
    a->tgt.timeout_ms = 60000;
    a->tgt.retries = 2;
    optind = 0;
    int ch;
    while ((ch = getopt_long(argc, argv, "t:m:", opts, NULL)) != -1) {
        switch (ch) {
        case 't':
            a->tgt.url = optarg;
            break;
        case 'm':
            a->tgt.model = optarg;
            break;
        case OPT_KEY_ENV:
            a->tgt.key_env = optarg;
            break;
        case OPT_KEY_FILE:
            a->tgt.key_file = optarg;
            break;
        case OPT_CA_FILE:
            a->tgt.ca_file = optarg;
            break;
        case OPT_TIMEOUT:
            if (qpo_llm_cli_int("--timeout-ms", optarg, 1, 3600000, &a->tgt.timeout_ms, err) < 0)
                return -1;
            break;
        case OPT_RETRIES:
            if (qpo_llm_cli_int("--retries", optarg, 0, 100, &a->tgt.retries, err) < 0)
                return -1;
            break;
        case OPT_CONTEXT:
            a->context = optarg;
            break;
        case OPT_CONT:
            a->continuation = optarg;
            break;
        case OPT_TASK:
            a->task = optarg;
            break;
        case OPT_TEXT:
            a->text = optarg;
            break;
        case OPT_PROMPT:
            a->prompt = optarg;
            break;
        case OPT_REQUIRE:
            a->require = optarg;
            break;
        case OPT_JSON:
            a->json = true;
            break;
        case OPT_HELP:
            fputs(usage_text, stdout);
            return 1;
        default:
            return qpo_err_set(err, QPO_EXIT_USAGE, "bad arguments (see qpo target --help)");
        }
    }
    if (optind < argc)
        return qpo_err_set(err, QPO_EXIT_USAGE, "unexpected argument \"%s\"", argv[optind]);
    if (!a->tgt.url || !a->tgt.model) {
        qpo_err_set(err, QPO_EXIT_USAGE, "--target and --model are required");
        qpo_err_hint(err, "e.g. qpo target check --target http://127.0.0.1:8000 --model M");
        return -1;
    }
    if (qpo_url_has_credentials(a->tgt.url)) {
        qpo_err_set(err, QPO_EXIT_USAGE, "--target must not hold credentials (user:password@)");
        qpo_err_hint(err, "give the key with --api-key-env or --api-key-file");
        return -1;
    }
    return 0;
}

/* ---- one request, waited for ---- */

typedef struct one_call {
    qpo_llm_status status;
    char error[512];
    double latency_ms;
    double mean_nll;
    json_t *tokens, *logprobs;
    char *text;
} one_call;

static int64_t on_attempt(const qpo_llm_attempt *a, void *arg) {
    one_call *oc = a->user;
    oc->latency_ms = a->latency_ms;
    return 0;
}

static void on_done(const qpo_llm_result *r, void *user) {
    one_call *oc = user;
    oc->status = r->status;
    snprintf(oc->error, sizeof oc->error, "%s", r->error ? r->error : "");
    if (r->status != QPO_LLM_OK)
        return;
    oc->mean_nll = r->mean_nll;
    oc->tokens = json_array();
    oc->logprobs = json_array();
    for (size_t i = 0; i < r->ntokens; i++) {
        json_array_append_new(oc->tokens, json_string(r->tokens[i]));
        json_array_append_new(oc->logprobs,
                              isnan(r->logprobs[i]) ? json_null() : json_real(r->logprobs[i]));
    }
    oc->text = strdup(r->text ? r->text : "");
}

static void one_call_free(one_call *oc) {
    json_decref(oc->tokens);
    json_decref(oc->logprobs);
    free(oc->text);
}

static int call_error(const one_call *oc, const char *what, qpo_err *err) {
    qpo_err_set(err, QPO_EXIT_RUNTIME, "%s failed: %s", what, qpo_llm_status_name(oc->status));
    qpo_err_detail(err, "%s", oc->error);
    if (oc->status == QPO_LLM_ERR_NO_LOGPROBS || oc->status == QPO_LLM_ERR_SPAN)
        qpo_err_hint(err, "the server does not return the logprobs this needs: see "
                          "workers/llm/README.md for which servers do");
    else if (oc->status == QPO_LLM_ERR_CONNECT || oc->status == QPO_LLM_ERR_TIMEOUT)
        qpo_err_hint(err, "is the server up at that URL? try qpo target check");
    return -1;
}

/* ---- check ---- */

static json_t *capability(const one_call *oc) {
    bool ok = oc->status == QPO_LLM_OK;
    return json_pack("{s:b, s:s, s:f, s:s?}", "supported", ok, "status",
                     qpo_llm_status_name(oc->status), "latency_ms", oc->latency_ms, "error",
                     ok ? NULL : oc->error);
}

static bool unreachable(qpo_llm_status s) {
    return s == QPO_LLM_ERR_CONNECT || s == QPO_LLM_ERR_TIMEOUT || s == QPO_LLM_ERR_DROPPED;
}

static void print_capability(const char *what, const one_call *oc) {
    if (oc->status == QPO_LLM_OK)
        printf("  %-44s supported (%.1f ms)\n", what, oc->latency_ms);
    else
        printf("  %-44s NOT supported: %s: %s\n", what, qpo_llm_status_name(oc->status), oc->error);
}

/* A server that answers well-formed but without a feature (no logprobs, no echo span, a 4xx
 * refusing the request) lacks a capability: a fact the check reports. Anything else (5xx,
 * garbage bodies, wrong JSON shapes, rate limits past the retries) is a broken endpoint that a
 * run would fail on, and a check that exited 0 for it would wave a long run through. */
static bool lacks_capability(qpo_llm_status s) {
    return s == QPO_LLM_ERR_NO_LOGPROBS || s == QPO_LLM_ERR_SPAN || s == QPO_LLM_ERR_CLIENT;
}

static bool broken(qpo_llm_status s) {
    return s != QPO_LLM_OK && !lacks_capability(s);
}

static int check_verdict(const target_args *a, const one_call *label, const one_call *math,
                         qpo_err *err) {
    if (unreachable(label->status) && unreachable(math->status)) {
        qpo_err_set(err, QPO_EXIT_RUNTIME, "the target is unreachable");
        qpo_err_detail(err, "%s: %s", a->tgt.url, label->error);
        return -1;
    }
    if (broken(label->status) || broken(math->status)) {
        const one_call *bad = broken(label->status) ? label : math;
        qpo_err_set(err, QPO_EXIT_RUNTIME, "the target answered with an error (%s)",
                    bad == label ? "label scoring" : "math");
        qpo_err_detail(err, "%s: %s: %s", a->tgt.url, qpo_llm_status_name(bad->status), bad->error);
        qpo_err_hint(err, "a run against it would fail the same way: fix the server first");
        return -1;
    }
    bool need_label = a->require && (!strcmp(a->require, "label") || !strcmp(a->require, "all"));
    bool need_math = a->require && (!strcmp(a->require, "math") || !strcmp(a->require, "all"));
    if ((need_label && label->status != QPO_LLM_OK) || (need_math && math->status != QPO_LLM_OK))
        return qpo_err_set(err, QPO_EXIT_RUNTIME, "the target lacks a required capability (%s)",
                           a->require);
    return 0;
}

static int run_check(const target_args *a, qpo_llm_client *c, qpo_err *err) {
    if (a->require && strcmp(a->require, "label") && strcmp(a->require, "math") &&
        strcmp(a->require, "all"))
        return qpo_err_set(err, QPO_EXIT_USAGE, "--require must be label, math or all");
    one_call label = {0}, math = {0};
    qpo_llm_message msgs[] = {{"system", QPO_MATH_SYSTEM_MESSAGE},
                              {"user", "What is 2 + 3?\nAnswer briefly."}};
    qpo_llm_chat_opts copts = {.temperature = 0, .max_tokens = 16};
    if (qpo_llm_score(c, "Classify the tweet.\n\nTweet: I am happy\nEmotion:", " Joy", on_done,
                      &label, err) < 0 ||
        qpo_llm_chat(c, msgs, 2, &copts, on_done, &math, err) < 0)
        return -1;
    if (qpo_llm_client_drain(c) < 0)
        return qpo_err_set(err, QPO_EXIT_RUNTIME, "the event loop failed");
    if (a->json) {
        json_t *o =
            json_pack("{s:s, s:s, s:b, s:o, s:o}", "target", a->tgt.url, "model", a->tgt.model,
                      "reachable", !(unreachable(label.status) && unreachable(math.status)),
                      "label_scoring", capability(&label), "math", capability(&math));
        qpo_llm_cli_print_json(o);
        json_decref(o);
    } else {
        printf("target %s, model %s\n", a->tgt.url, a->tgt.model);
        print_capability("label scoring (completions, echo + logprobs):", &label);
        print_capability("math (chat completions, logprobs):", &math);
    }
    int rc = check_verdict(a, &label, &math, err);
    one_call_free(&label);
    one_call_free(&math);
    return rc;
}

/* ---- score and chat ---- */

static int run_score(const target_args *a, qpo_llm_client *c, qpo_err *err) {
    if (!a->context || !a->continuation || !*a->continuation)
        return qpo_err_set(err, QPO_EXIT_USAGE,
                           "score needs --context and a non-empty "
                           "--continuation");
    one_call oc = {0};
    if (qpo_llm_score(c, a->context, a->continuation, on_done, &oc, err) < 0)
        return -1;
    if (qpo_llm_client_drain(c) < 0)
        return qpo_err_set(err, QPO_EXIT_RUNTIME, "the event loop failed");
    if (oc.status != QPO_LLM_OK)
        return call_error(&oc, "scoring", err);
    json_t *o = json_pack("{s:O, s:O, s:f}", "tokens", oc.tokens, "logprobs", oc.logprobs,
                          "mean_nll", oc.mean_nll);
    if (a->json)
        qpo_llm_cli_print_json(o);
    else
        printf("mean_nll %.6f over %zu tokens (%.1f ms)\n", oc.mean_nll, json_array_size(oc.tokens),
               oc.latency_ms);
    json_decref(o);
    one_call_free(&oc);
    return 0;
}

static int run_chat(const target_args *a, qpo_llm_client *c, qpo_err *err) {
    if (!a->task || (strcmp(a->task, "gsm8k") && strcmp(a->task, "svamp")))
        return qpo_err_set(err, QPO_EXIT_USAGE, "chat needs --task gsm8k or --task svamp");
    if (!a->text)
        return qpo_err_set(err, QPO_EXIT_USAGE, "chat needs --text QUERY");
    char *user = qpo_math_user_message(a->text, a->prompt ? a->prompt : "");
    if (!user)
        return qpo_err_set(err, QPO_EXIT_RUNTIME, "out of memory");
    qpo_llm_message msgs[] = {{"system", QPO_MATH_SYSTEM_MESSAGE}, {"user", user}};
    one_call oc = {0};
    int rc = qpo_llm_chat(c, msgs, 2, NULL, on_done, &oc, err);
    free(user);
    if (rc < 0)
        return -1;
    if (qpo_llm_client_drain(c) < 0)
        return qpo_err_set(err, QPO_EXIT_RUNTIME, "the event loop failed");
    if (oc.status != QPO_LLM_OK)
        return call_error(&oc, "chat", err);
    char answer[QPO_MATH_ANSWER_MAX];
    bool found = qpo_math_extract_answer(oc.text, answer) == 0;
    json_t *o = json_pack("{s:s, s:f, s:s?}", "text", oc.text, "mean_nll", oc.mean_nll, "answer",
                          found ? answer : NULL);
    if (a->json)
        qpo_llm_cli_print_json(o);
    else
        printf("%s\n-- answer %s, mean_nll %.6f\n", oc.text, found ? answer : "(none)",
               oc.mean_nll);
    json_decref(o);
    one_call_free(&oc);
    return 0;
}

int qpo_cmd_target(int argc, char **argv) {
    qpo_err err = {0};
    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
        fputs(usage_text, argc < 2 ? stderr : stdout);
        return argc < 2 ? QPO_EXIT_USAGE : QPO_EXIT_OK;
    }
    const char *sub = argv[1];
    int (*run)(const target_args *, qpo_llm_client *, qpo_err *) = !strcmp(sub, "check") ? run_check
                                                                   : !strcmp(sub, "score")
                                                                       ? run_score
                                                                   : !strcmp(sub, "chat") ? run_chat
                                                                                          : NULL;
    if (!run) {
        qpo_err_set(&err, QPO_EXIT_USAGE, "unknown target subcommand \"%s\"", sub);
        qpo_err_hint(&err, "qpo target check|score|chat");
        return qpo_err_print(&err);
    }
    target_args a;
    int prc = parse_args(argc - 1, argv + 1, &a, &err);
    if (prc > 0)
        return QPO_EXIT_OK;
    if (prc < 0)
        return qpo_err_print(&err);
    struct event_base *base = event_base_new();
    qpo_llm_hooks hooks = {.on_attempt = on_attempt};
    qpo_llm_client *c = base ? qpo_llm_cli_client(base, &a.tgt, &hooks, &err) : NULL;
    int rc = c ? run(&a, c, &err) : -1;
    qpo_llm_client_free(c);
    if (base)
        event_base_free(base);
    if (rc < 0)
        return qpo_err_print(&err);
    return QPO_EXIT_OK;
}
