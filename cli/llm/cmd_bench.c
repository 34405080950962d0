/* `qpo bench llm`: throughput, latency and client CPU of label-scoring calls at a fixed number
 * in flight. Each finished call submits the next, as a reward worker would; no cache hook, so
 * every call goes to the server. */
#include <event2/event.h>
#include <getopt.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "commands.h"
#include "error.h"
#include "llm.h"
#include "llm_cli.h"

static const char *const bench_usage =
    "usage: qpo bench llm --target URL [--model M] --inflight N --requests M [--chat] [--json]\n"
    "\n"
    "Sends M label-scoring calls (or chat calls with --chat), N in flight, and prints\n"
    "calls_per_s, p50_ms and p99_ms (per attempt, on the wire) and cpu_s_per_1000 (this\n"
    "process's user+system CPU per 1000 calls). --model defaults to \"sim\".\n";

typedef struct bench {
    qpo_llm_client *c;
    int requests, submitted, ok, failed;
    bool chat;
    double *lat;
    size_t nlat;
    qpo_err err;
} bench;

static void on_done(const qpo_llm_result *r, void *user);

static int submit_one(bench *b) {
    static const qpo_llm_message msgs[] = {{"user", "What is 2 + 3?"}};
    char ctx[96];
    snprintf(ctx, sizeof ctx, "Classify the tweet.\n\nTweet: call %d\nEmotion:", b->submitted);
    b->submitted++;
    if (b->chat)
        return qpo_llm_chat(b->c, msgs, 1, NULL, on_done, b, &b->err);
    return qpo_llm_score(b->c, ctx, " Joy", on_done, b, &b->err);
}

static void on_done(const qpo_llm_result *r, void *user) {
    bench *b = user;
    if (r->status == QPO_LLM_OK)
        b->ok++;
    else
        b->failed++;
    if (b->submitted < b->requests)
        submit_one(b);
}

static int64_t on_attempt(const qpo_llm_attempt *a, void *arg) {
    bench *b = arg;
    if (b->nlat < (size_t)b->requests * 4)
        b->lat[b->nlat++] = a->latency_ms;
    return 0;
}

static int cmp_double(const void *x, const void *y) {
    double a = *(const double *)x, b = *(const double *)y;
    return (a > b) - (a < b);
}

static double cpu_seconds(void) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
           (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

static double wall_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int parse(int argc, char **argv, qpo_llm_cli_target *t, bench *b, bool *json, qpo_err *err) {
    static const struct option opts[] = {
        {"target", required_argument, NULL, 't'},
        {"model", required_argument, NULL, 'm'},
        {"inflight", required_argument, NULL, 'n'},
        {"requests", required_argument, NULL, 'r'},
        {"api-key-env", required_argument, NULL, 'k'},
        {"chat", no_argument, NULL, 'c'},
        {"json", no_argument, NULL, 'j'},
        {"help", no_argument, NULL, 'h'},
        {0, 0, 0, 0},
    };
    *t =
        (qpo_llm_cli_target){.model = "sim", .timeout_ms = 60000, .retries = 4, .max_inflight = 64};
    b->requests = 10000;
    optind = 0;
    int ch;
    while ((ch = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (ch) {
        case 't':
            t->url = optarg;
            break;
        case 'm':
            t->model = optarg;
            break;
        case 'k':
            t->key_env = optarg;
            break;
        case 'c':
            b->chat = true;
            break;
        case 'j':
            *json = true;
            break;
        case 'h':
            fputs(bench_usage, stdout);
            return 1;
        case 'n':
            if (qpo_llm_cli_int("--inflight", optarg, 1, 100000, &t->max_inflight, err) < 0)
                return -1;
            break;
        case 'r':
            if (qpo_llm_cli_int("--requests", optarg, 1, 100000000, &b->requests, err) < 0)
                return -1;
            break;
        default:
            return qpo_err_set(err, QPO_EXIT_USAGE, "bad arguments (see --help)");
        }
    }
    if (!t->url)
        return qpo_err_set(err, QPO_EXIT_USAGE, "--target URL is required");
    return 0;
}

static void report(const bench *b, int inflight, double wall, double cpu, bool json) {
    double p50 = b->nlat ? b->lat[(size_t)(0.50 * (double)(b->nlat - 1))] : 0;
    double p99 = b->nlat ? b->lat[(size_t)(0.99 * (double)(b->nlat - 1))] : 0;
    double cps = wall > 0 ? (double)(b->ok + b->failed) / wall : 0;
    double cpu1000 = cpu / (double)b->requests * 1000;
    if (json) {
        json_t *o =
            json_pack("{s:f, s:f, s:f, s:f, s:i, s:i, s:i, s:i, s:f}", "calls_per_s", cps, "p50_ms",
                      p50, "p99_ms", p99, "cpu_s_per_1000", cpu1000, "inflight", inflight,
                      "requests", b->requests, "ok", b->ok, "failed", b->failed, "wall_s", wall);
        qpo_llm_cli_print_json(o);
        json_decref(o);
    } else {
        printf("%d calls (%d failed), %d in flight: %.0f calls/s, p50 %.2f ms, p99 %.2f ms, "
               "%.3f CPU s per 1000 calls\n",
               b->requests, b->failed, inflight, cps, p50, p99, cpu1000);
    }
}

int qpo_cmd_bench_llm(int argc, char **argv) {
    bench b = {0};
    qpo_llm_cli_target t;
    bool json = false;
    int prc = parse(argc, argv, &t, &b, &json, &b.err);
    if (prc != 0)
        return prc > 0 ? QPO_EXIT_OK : qpo_err_print(&b.err);
    b.lat = malloc(sizeof *b.lat * (size_t)b.requests * 4);
    struct event_base *base = event_base_new();
    qpo_llm_hooks hooks = {.on_attempt = on_attempt, .arg = &b};
    b.c = base && b.lat ? qpo_llm_cli_client(base, &t, &hooks, &b.err) : NULL;
    int rc = QPO_EXIT_RUNTIME;
    if (b.c) {
        double w0 = wall_seconds(), c0 = cpu_seconds();
        for (int i = 0; i < t.max_inflight && b.submitted < b.requests; i++)
            submit_one(&b);
        if (qpo_llm_client_drain(b.c) == 0) {
            double wall = wall_seconds() - w0, cpu = cpu_seconds() - c0;
            qsort(b.lat, b.nlat, sizeof *b.lat, cmp_double);
            report(&b, t.max_inflight, wall, cpu, json);
            rc = b.ok > 0 ? QPO_EXIT_OK : QPO_EXIT_RUNTIME;
            if (b.ok == 0)
                fprintf(stderr, "qpo: error: no call succeeded: is a server at %s?\n", t.url);
        } else {
            qpo_err_set(&b.err, QPO_EXIT_RUNTIME, "the event loop failed");
            rc = qpo_err_print(&b.err);
        }
    } else {
        if (!qpo_err_is_set(&b.err))
            qpo_err_set(&b.err, QPO_EXIT_RUNTIME, "out of memory");
        rc = qpo_err_print(&b.err);
    }
    qpo_llm_client_free(b.c);
    if (base)
        event_base_free(base);
    free(b.lat);
    return rc;
}
