/* qpo sim-llm: serve the simulated OpenAI-compatible target LLM. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "observe.h"
#include "commands.h"
#include "dataset.h"
#include "db.h"
#include "error.h"
#include "log.h"
#include "server.h"

#define MAX_DATA_DIRS 16

static const char USAGE[] =
    "usage: qpo sim-llm --listen 127.0.0.1:PORT [--db CONNINFO | --data DIR ...] [options]\n"
    "\n"
    "Serves a simulated OpenAI-compatible LLM (GET /v1/models, POST /v1/completions,\n"
    "POST /v1/chat/completions) whose answers depend on the (prompt, query) pair in a\n"
    "documented, deterministic way (docs/sim-llm.md). Prints its base address on stdout\n"
    "when ready; stops on SIGTERM or SIGINT.\n"
    "\n"
    "  --listen HOST:PORT      numeric IPv4 address and port; port 0 picks a free one\n"
    "  --db CONNINFO           load the gold answers from qpo.task_items\n"
    "  --data DIR              load upstream data files (repeatable): the shared data folder\n"
    "                          or one of tweet_eval_emotion/, gsm8k/, svamp/\n"
    "  --model NAME            model id served (default qpo-sim)\n"
    "  --api-key KEY           require 'Authorization: Bearer KEY' (default: accept any)\n"
    "  --threads N             server threads (default 2)\n"
    "  --latency-ms MEAN       delay every reply by MEAN ms (timers, not sleeps)\n"
    "  --latency-jitter-ms J   spread the delay uniformly over MEAN +- J\n"
    "  --fail-rate F           fraction of completions answered with an error status\n"
    "  --fail-status S[,S...]  that status: 429, 500 or 503 (default 503); with several, each\n"
    "                          failed request gets one of them (seeded)\n"
    "  --retry-after SECONDS   send Retry-After with those errors\n"
    "  --drop-rate F           fraction of completions whose connection is closed unanswered\n"
    "  --truncate-rate F       fraction answered 200 with the JSON body cut in half\n"
    "  --malformed-rate F      fraction answered 200 with valid JSON of the wrong shape\n"
    "  --hang-rate F           fraction answered --hang-ms late (past a client's timeout)\n"
    "  --hang-ms MS            how late (default 60000)\n"
    "  --seed S                seed of the fault and jitter choices (default 0)\n" QPO_OBS_USAGE
    "\n"
    "Without --db or --data, $DATABASE_URL is used when set; otherwise no item is known and\n"
    "every query gets the model's documented answer for unknown queries.\n";

typedef struct options {
    char host[64];
    int port;
    const char *db;
    const char *data[MAX_DATA_DIRS];
    int n_data;
    sim_server_cfg cfg;
    qpo_obs obs;
} options;

static int bad_value(qpo_err *err, const char *flag, const char *value, const char *what) {
    qpo_err_set(err, QPO_EXIT_USAGE, "%s needs %s", flag, what);
    qpo_err_detail(err, "%s '%s'", flag, value);
    qpo_err_hint(err, "see 'qpo sim-llm --help'");
    return -1;
}

static int parse_double(const char *flag, const char *s, double lo, double hi, double *out,
                        qpo_err *err) {
    char *end;
    double v = strtod(s, &end);
    if (end == s || *end || !(v >= lo && v <= hi)) {
        char what[96];
        snprintf(what, sizeof(what), "a number between %g and %g", lo, hi);
        return bad_value(err, flag, s, what);
    }
    *out = v;
    return 0;
}

static int parse_int(const char *flag, const char *s, long lo, long hi, long *out, qpo_err *err) {
    char *end;
    long v = strtol(s, &end, 10);
    if (end == s || *end || v < lo || v > hi) {
        char what[96];
        snprintf(what, sizeof(what), "an integer between %ld and %ld", lo, hi);
        return bad_value(err, flag, s, what);
    }
    *out = v;
    return 0;
}

static int parse_listen(const char *s, options *o, qpo_err *err) {
    const char *colon = strrchr(s, ':');
    long port;
    if (!colon || colon == s || (size_t)(colon - s) >= sizeof(o->host))
        return bad_value(err, "--listen", s, "HOST:PORT, e.g. 127.0.0.1:0");
    if (parse_int("--listen", colon + 1, 0, 65535, &port, err))
        return -1;
    snprintf(o->host, sizeof(o->host), "%.*s", (int)(colon - s), s);
    o->port = (int)port;
    return 0;
}

enum {
    OPT_LISTEN = 256,
    OPT_DB,
    OPT_DATA,
    OPT_MODEL,
    OPT_API_KEY,
    OPT_THREADS,
    OPT_LATENCY,
    OPT_JITTER,
    OPT_FAIL_RATE,
    OPT_FAIL_STATUS,
    OPT_RETRY_AFTER,
    OPT_DROP,
    OPT_TRUNCATE,
    OPT_MALFORMED,
    OPT_HANG,
    OPT_HANG_MS,
    OPT_SEED,
    OPT_HELP
};

static const struct option LONGOPTS[] = {
    {"listen", required_argument, NULL, OPT_LISTEN},
    {"db", required_argument, NULL, OPT_DB},
    {"data", required_argument, NULL, OPT_DATA},
    {"model", required_argument, NULL, OPT_MODEL},
    {"api-key", required_argument, NULL, OPT_API_KEY},
    {"threads", required_argument, NULL, OPT_THREADS},
    {"latency-ms", required_argument, NULL, OPT_LATENCY},
    {"latency-jitter-ms", required_argument, NULL, OPT_JITTER},
    {"fail-rate", required_argument, NULL, OPT_FAIL_RATE},
    {"fail-status", required_argument, NULL, OPT_FAIL_STATUS},
    {"retry-after", required_argument, NULL, OPT_RETRY_AFTER},
    {"drop-rate", required_argument, NULL, OPT_DROP},
    {"truncate-rate", required_argument, NULL, OPT_TRUNCATE},
    {"malformed-rate", required_argument, NULL, OPT_MALFORMED},
    {"hang-rate", required_argument, NULL, OPT_HANG},
    {"hang-ms", required_argument, NULL, OPT_HANG_MS},
    {"seed", required_argument, NULL, OPT_SEED},
    {"help", no_argument, NULL, OPT_HELP},
    QPO_OBS_LONG_OPTIONS,
    {NULL, 0, NULL, 0},
};

/* "429" or "429,500": each one of the statuses a failed request may get. */
static int parse_statuses(const char *arg, sim_faults *f, qpo_err *err) {
    char copy[64];
    if (strlen(arg) >= sizeof copy)
        return bad_value(err, "--fail-status", arg, "at most 3 statuses of 429, 500, 503");
    snprintf(copy, sizeof copy, "%s", arg);
    f->n_fail_status = 0;
    char *save = NULL;
    for (char *t = strtok_r(copy, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
        long v = 0;
        if (f->n_fail_status == SIM_MAX_FAIL_STATUSES ||
            parse_int("--fail-status", t, 100, 599, &v, err) || (v != 429 && v != 500 && v != 503))
            return bad_value(err, "--fail-status", arg, "one to 3 statuses of 429, 500, 503");
        f->fail_status[f->n_fail_status++] = (int)v;
    }
    return f->n_fail_status ? 0 : bad_value(err, "--fail-status", arg, "429, 500 or 503");
}

static int apply(int opt, const char *arg, options *o, qpo_err *err) {
    sim_server_cfg *c = &o->cfg;
    long v = 0;
    int rc = 0;
    switch (opt) {
    case OPT_LISTEN:
        return parse_listen(arg, o, err);
    case OPT_DB:
        o->db = arg;
        return 0;
    case OPT_DATA:
        if (o->n_data == MAX_DATA_DIRS)
            return bad_value(err, "--data", arg, "at most 16 directories");
        o->data[o->n_data++] = arg;
        return 0;
    case OPT_MODEL:
        if (!*arg)
            return bad_value(err, "--model", arg, "a non-empty model id");
        c->api.model = arg;
        return 0;
    case OPT_API_KEY:
        c->api.api_key = arg;
        return 0;
    case OPT_THREADS:
        rc = parse_int("--threads", arg, 1, 64, &v, err);
        c->threads = (int)v;
        return rc;
    case OPT_LATENCY:
        return parse_double("--latency-ms", arg, 0, 3.6e6, &c->latency_ms, err);
    case OPT_JITTER:
        return parse_double("--latency-jitter-ms", arg, 0, 3.6e6, &c->jitter_ms, err);
    case OPT_FAIL_RATE:
        return parse_double("--fail-rate", arg, 0, 1, &c->faults.fail_rate, err);
    case OPT_FAIL_STATUS:
        return parse_statuses(arg, &c->faults, err);
    case OPT_RETRY_AFTER:
        rc = parse_int("--retry-after", arg, 0, 86400, &v, err);
        c->faults.retry_after = (int)v;
        return rc;
    case OPT_DROP:
        return parse_double("--drop-rate", arg, 0, 1, &c->faults.drop_rate, err);
    case OPT_TRUNCATE:
        return parse_double("--truncate-rate", arg, 0, 1, &c->faults.truncate_rate, err);
    case OPT_MALFORMED:
        return parse_double("--malformed-rate", arg, 0, 1, &c->faults.malformed_rate, err);
    case OPT_HANG:
        return parse_double("--hang-rate", arg, 0, 1, &c->faults.hang_rate, err);
    case OPT_HANG_MS:
        return parse_double("--hang-ms", arg, 1, 3.6e6, &c->faults.hang_ms, err);
    case OPT_SEED: {
        char *end;
        unsigned long long s = strtoull(arg, &end, 10);
        if (end == arg || *end || *arg == '-')
            return bad_value(err, "--seed", arg, "a non-negative integer");
        c->faults.seed = s;
        return 0;
    }
    default:
        if (qpo_obs_option(opt, arg, &o->obs))
            return 0;
        qpo_err_set(err, QPO_EXIT_USAGE, "unknown or incomplete option");
        qpo_err_hint(err, "see 'qpo sim-llm --help'");
        return -1;
    }
}

static int parse_args(int argc, char **argv, options *o, int *help, qpo_err *err) {
    memset(o, 0, sizeof(*o));
    o->cfg.threads = 2;
    o->cfg.api.model = "qpo-sim";
    o->cfg.faults.fail_status[0] = 503;
    o->cfg.faults.n_fail_status = 1;
    o->cfg.faults.retry_after = -1;
    o->port = -1;
    optind = 0;
    opterr = 0;
    int opt;
    while ((opt = getopt_long(argc, argv, "", LONGOPTS, NULL)) != -1) {
        if (opt == OPT_HELP) {
            *help = 1;
            return 0;
        }
        if (opt == '?') {
            qpo_err_set(err, QPO_EXIT_USAGE, "unknown option or missing value: %s",
                        argv[optind - 1]);
            qpo_err_hint(err, "see 'qpo sim-llm --help'");
            return -1;
        }
        if (apply(opt, optarg, o, err))
            return -1;
    }
    if (optind < argc) {
        qpo_err_set(err, QPO_EXIT_USAGE, "unexpected argument '%s'", argv[optind]);
        return -1;
    }
    if (o->port < 0) {
        qpo_err_set(err, QPO_EXIT_USAGE, "--listen HOST:PORT is required");
        qpo_err_hint(err, "for example --listen 127.0.0.1:0 (a free port, printed on stdout)");
        return -1;
    }
    if (o->db && o->n_data) {
        qpo_err_set(err, QPO_EXIT_USAGE, "give --db or --data, not both");
        return -1;
    }
    o->cfg.host = o->host;
    o->cfg.port = o->port;
    return sim_faults_check(&o->cfg.faults, err);
}

static int load(const options *o, sim_data *d, qpo_err *err) {
    for (int i = 0; i < o->n_data; i++)
        if (sim_data_load_dir(d, o->data[i], err))
            return -1;
    const char *env = getenv("DATABASE_URL");
    if (o->db || (!o->n_data && env && *env))
        if (sim_data_load_db(d, qpo_db_conninfo(o->db), err))
            return -1;
    return sim_data_finish(d, err);
}

static void log_items(const sim_data *d) {
    size_t ntasks;
    const qpo_task *all = qpo_task_all(&ntasks);
    char line[512] = "";
    size_t at = 0;
    for (size_t t = 0; t < ntasks; t++) {
        size_t n = 0;
        for (size_t i = 0; i < d->n_items; i++)
            n += d->items[i].task == &all[t];
        if (n && at < sizeof(line))
            at += (size_t)snprintf(line + at, sizeof(line) - at, " %s=%zu", all[t].name, n);
    }
    qpo_info("sim-llm: %zu items known%s%s (%zu duplicate texts: first kept)", d->n_items,
             d->n_items ? ":" : "", line, d->duplicates);
}

int qpo_cmd_sim_llm(int argc, char **argv) {
    options o;
    qpo_err err = {0};
    int help = 0;
    if (parse_args(argc, argv, &o, &help, &err))
        return qpo_err_print(&err);
    if (help) {
        fputs(USAGE, stdout);
        return 0;
    }
    if (qpo_obs_start(&o.obs, &err) < 0)
        return qpo_err_print(&err);
    sim_data data = {0};
    if (load(&o, &data, &err)) {
        sim_data_free(&data);
        qpo_obs_stop();
        return qpo_err_print(&err);
    }
    log_items(&data);
    o.cfg.api.data = &data;
    sim_server *s = sim_server_start(&o.cfg, &err);
    if (!s) {
        sim_data_free(&data);
        qpo_obs_stop();
        return qpo_err_print(&err);
    }
    printf("http://%s:%d\n", o.host, sim_server_port(s));
    fflush(stdout);
    sim_server_wait(s);
    /* Tests compare this with what clients recorded: the fault schedule of 0..n-1. */
    qpo_info("sim-llm: stopped after %llu completion requests",
             (unsigned long long)sim_server_requests(s));
    sim_server_free(s);
    qpo_obs_stop();
    sim_data_free(&data);
    qpo_info("sim-llm: stopped");
    return 0;
}
