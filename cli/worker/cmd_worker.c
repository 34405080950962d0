/* qpo worker: one worker process (see README.md). */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "commands.h"
#include "db.h"
#include "migrate.h"
#include "observe.h"
#include "runtime.h"

static void worker_usage(FILE *out) {
    fprintf(
        out,
        "usage: qpo worker --class cpu|gpu [--name NAME] [--kinds K1,K2] [--concurrency N]\n"
        "                  [--prefetch N] [--lease SECONDS] [--exit-when-idle] [--grace SECONDS]\n"
        "                  [--poll SECONDS] [--backoff-ms BASE[,CAP]] [--db CONNINFO]\n"
        "                  [--backend cpu|cuda|cuda-bf16|auto] [--artifacts dir|pg]\n"
        "                  [--log-format text|json] [--log-level LEVEL] [--metrics-listen ADDR]\n\n"
        "Claims jobs of one class and runs them on N handler threads. SIGTERM/SIGINT: stop\n"
        "claiming, let running jobs finish within --grace (default 30 s), then put them\n"
        "back in the queue without spending an attempt; a second signal does that at once.\n\n"
        "  --name           the lease owner, in logs and job_events (default worker-PID)\n"
        "  --kinds          kinds to run (default: every kind of the class listed below)\n"
        "  --prefetch       jobs claimed ahead of free threads and held, leases kept alive, in\n"
        "                   a local queue (alias --local-queue; default 16 for cpu, 0 for gpu);\n"
        "                   on SIGTERM they go back to the queue at once, attempts unspent\n"
        "  --lease          lease length, heartbeats every third of it (default 30)\n"
        "  --exit-when-idle exit once it holds nothing and no job of its kinds is blocked,\n"
        "                   queued or failed\n"
        "  --poll           claim this often without a notification (default 1)\n"
        "  --backoff-ms     retry delay before attempt 2, doubling, capped (default "
        "1000,600000)\n"
        "  --backend        gpu class: where the policy computes (default auto: CUDA when a\n"
        "                   device is visible, else the CPU)\n"
        "  --artifacts      gpu class: where train keeps checkpoints: dir (a folder on this\n"
        "                   machine, $QPO_CHECKPOINT_DIR; the default) or pg (PostgreSQL, so a\n"
        "                   retry can run on another machine); sets $QPO_ARTIFACTS\n" QPO_OBS_USAGE
        "\n"
        "kinds in this binary:");
    for (size_t i = 0; i < qpo_handler_count(); i++)
        fprintf(out, " %s(%s)", qpo_handler_at(i)->kind, qpo_handler_at(i)->job_class);
    fprintf(out, "\n");
}

static int split_kinds(char *list, const char ***kinds, size_t *n) {
    size_t cap = 1;
    for (const char *p = list; *p; p++)
        cap += *p == ',';
    *kinds = calloc(cap, sizeof(char *));
    *n = 0;
    for (char *save = NULL, *k = strtok_r(list, ",", &save); k; k = strtok_r(NULL, ",", &save))
        (*kinds)[(*n)++] = k;
    return *n ? 0 : -1;
}

static int parse_seconds(const char *s, double *v) {
    char *end;
    *v = strtod(s, &end);
    return end != s && *end == '\0' ? 0 : -1;
}

static int usage_error(const char *fmt, const char *arg) {
    fprintf(stderr, "qpo: error: ");
    fprintf(stderr, fmt, arg);
    fprintf(stderr, "\n  hint: 'qpo worker --help' shows the options\n");
    return QPO_EXIT_USAGE;
}

/* The gpu class computes where --backend says (auto by default); the cpu class has no use for
 * it. Resolved before any claim, so a missing device fails the command, not the jobs. */
static int choose_backend(qpo_worker_opts *o, const char *backend, char *device, size_t len) {
    if (!o->job_class || strcmp(o->job_class, "gpu")) {
        if (backend)
            return usage_error("--backend is for --class gpu (not '%s')",
                               o->job_class ? o->job_class : "");
        return 0;
    }
    qpo_backend_hook hook = qpo_worker_backend_hook();
    if (!hook) /* no component of this binary runs gpu jobs */
        return backend ? usage_error("--backend: no gpu job kinds in this binary%s", "") : 0;
    qpo_err err = {0};
    if (hook(backend ? backend : "auto", device, len, &err)) {
        if (!err.code)
            err.code = QPO_EXIT_USAGE;
        return qpo_err_print(&err);
    }
    o->device = device;
    return 0;
}

int qpo_cmd_worker(int argc, char **argv) {
    static const struct option opts[] = {{"class", required_argument, NULL, 'c'},
                                         {"kinds", required_argument, NULL, 'k'},
                                         {"concurrency", required_argument, NULL, 'n'},
                                         {"name", required_argument, NULL, 'N'},
                                         {"prefetch", required_argument, NULL, 'P'},
                                         {"local-queue", required_argument, NULL, 'P'},
                                         {"lease", required_argument, NULL, 'l'},
                                         {"exit-when-idle", no_argument, NULL, 'x'},
                                         {"grace", required_argument, NULL, 'g'},
                                         {"poll", required_argument, NULL, 'p'},
                                         {"backoff-ms", required_argument, NULL, 'b'},
                                         {"db", required_argument, NULL, 'd'},
                                         {"backend", required_argument, NULL, 'B'},
                                         {"artifacts", required_argument, NULL, 'A'},
                                         {"help", no_argument, NULL, 'h'},
                                         QPO_OBS_LONG_OPTIONS,
                                         {0, 0, 0, 0}};
    qpo_obs obs = {0};
    qpo_worker_opts o;
    qpo_worker_opts_default(&o);
    const char *db = NULL, *backend = NULL;
    char *kinds_arg = NULL;
    char name[128];
    snprintf(name, sizeof(name), "worker-%d", (int)getpid());
    o.name = name;
    int c, rc = 0;
    optind = 0;
    while (rc == 0 && (c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 'c':
            o.job_class = optarg;
            break;
        case 'k':
            kinds_arg = optarg;
            break;
        case 'n':
            o.concurrency = atoi(optarg);
            break;
        case 'N':
            o.name = optarg;
            break;
        case 'P': {
            char *end;
            long v = strtol(optarg, &end, 10);
            if (end == optarg || *end || v < 0 || v > 10000)
                rc = usage_error("--prefetch wants a number of jobs 0..10000, not '%s'", optarg);
            o.prefetch = (int)v;
            break;
        }
        case 'l':
            if (parse_seconds(optarg, &o.lease_s) < 0)
                rc = usage_error("--lease wants seconds, not '%s'", optarg);
            break;
        case 'x':
            o.exit_when_idle = true;
            break;
        case 'g':
            if (parse_seconds(optarg, &o.grace_s) < 0)
                rc = usage_error("--grace wants seconds, not '%s'", optarg);
            break;
        case 'p':
            if (parse_seconds(optarg, &o.poll_s) < 0)
                rc = usage_error("--poll wants seconds, not '%s'", optarg);
            break;
        case 'b':
            if (sscanf(optarg, "%lf,%lf", &o.backoff_base_ms, &o.backoff_cap_ms) < 1)
                rc = usage_error("--backoff-ms wants BASE[,CAP] in ms, not '%s'", optarg);
            break;
        case 'd':
            db = optarg;
            break;
        case 'B':
            backend = optarg;
            break;
        case 'A': /* read by the train job (workers/trainer/ckpt_store.h) */
            if (strcmp(optarg, "dir") && strcmp(optarg, "pg"))
                rc = usage_error("--artifacts is dir or pg, not '%s'", optarg);
            setenv("QPO_ARTIFACTS", optarg, 1);
            break;
        case 'h':
            worker_usage(stdout);
            return 0;
        default:
            if (qpo_obs_option(c, optarg, &obs))
                break;
            worker_usage(stderr);
            return QPO_EXIT_USAGE;
        }
    }
    if (rc)
        return rc;
    if (optind != argc)
        return usage_error("unexpected argument '%s'", argv[optind]);
    char device[256];
    if ((rc = choose_backend(&o, backend, device, sizeof device)))
        return rc;
    const char **kinds = NULL;
    if (kinds_arg && split_kinds(kinds_arg, &kinds, &o.nkinds) < 0) {
        free(kinds);
        return usage_error("--kinds is empty%s", "");
    }
    o.kinds = kinds;
    o.conninfo = qpo_db_conninfo(db);
    qpo_err err = {0};
    if (qpo_obs_start(&obs, &err) < 0) {
        free(kinds);
        return qpo_err_print(&err);
    }
    PGconn *conn = qpo_db_connect(o.conninfo, "qpo worker", &err);
    if (conn && qpo_migrate_check(conn, &err) == 0) {
        PQfinish(conn);
        conn = NULL;
        rc = qpo_worker_run(&o, &err);
    } else {
        rc = -1;
    }
    PQfinish(conn);
    free(kinds);
    qpo_obs_stop();
    return rc < 0 ? qpo_err_print(&err) : 0;
}
