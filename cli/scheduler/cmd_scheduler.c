/* qpo submit FILE [--name N] | qpo scheduler [--once] [--poll-ms MS] */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/select.h>
#include <unistd.h>

#include "cmd_util.h"
#include "commands.h"
#include "config.h"
#include "db.h"
#include "experiments.h"
#include "gpt2_weights.h"
#include "log.h"
#include "metrics.h"
#include "observe.h"
#include "queue_metrics.h"

static void submit_usage(FILE *out) {
    fprintf(out,
            "usage: qpo submit FILE [--name NAME] [--max-config-bytes N] [--db CONNINFO]\n"
            "                       [--dry-run [--json]]\n\n"
            "Validates an experiment config (config/README.md) and submits it; prints the\n"
            "experiment id. The scheduler plans it into runs and jobs. An invalid config is\n"
            "refused (exit 2) with the field at fault, and nothing is written.\n"
            "NAME defaults to the config's \"name\", else the file's base name.\n"
            "A FILE over N bytes (default %lld) is refused unread; the config's \"limits\"\n"
            "bound seeds, runs and baselines.\n\n"
            "--dry-run prints the plan instead, writing nothing: runs, jobs per kind, the\n"
            "LLM calls and tokens they would spend (estimated from the config and the task\n"
            "sizes in the database; D_0's source prompts are counted from $QPO_PROMPTS_DIR).\n"
            "--json prints it as one JSON object.\n",
            QPO_CONFIG_MAX_BYTES);
}

/* The experiment's name: --name, else the config's "name", else the file's base name. */
static void default_name(const char *path, const json_t *cfg, char *out, size_t size) {
    const char *n = json_string_value(json_object_get(cfg, "name"));
    if (n && *n) {
        snprintf(out, size, "%s", n);
        return;
    }
    const char *base = strrchr(path, '/');
    snprintf(out, size, "%s", base ? base + 1 : path);
    char *dot = strrchr(out, '.');
    if (dot && dot != out)
        *dot = '\0';
}

/* Pretrained weights are read by the gpu workers, which may see other files than this
 * machine: a warning here, the train job's error there. */
static void warn_missing_weights(const json_t *resolved) {
    const json_t *policy = json_object_get(resolved, "policy");
    if (strcmp(json_string_value(json_object_get(policy, "init")), QPO_INIT_PRETRAINED))
        return;
    char dir[4096];
    qpo_err err = {0};
    if (qpo_gpt2_weights_find(json_string_value(json_object_get(policy, "weights")), dir,
                              sizeof dir, &err) == 0)
        return;
    fprintf(stderr, "qpo: warning: policy.init \"" QPO_INIT_PRETRAINED "\": %s on this machine\n",
            err.msg);
    fprintf(stderr,
            "  detail: %s\n  hint: %s (the train job fails the same way on a gpu worker "
            "that lacks them)\n",
            err.detail, err.hint);
}

static int parse_bytes(const char *s, long long *out) {
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (end == s || *end || errno == ERANGE || v < 1) {
        fprintf(stderr, "qpo: error: --max-config-bytes must be a positive integer, not '%s'\n", s);
        return -1;
    }
    *out = v;
    return 0;
}

int qpo_cmd_submit(int argc, char **argv) {
    static const struct option opts[] = {{"db", required_argument, NULL, 'd'},
                                         {"name", required_argument, NULL, 'n'},
                                         {"max-config-bytes", required_argument, NULL, 'm'},
                                         {"dry-run", no_argument, NULL, 'r'},
                                         {"json", no_argument, NULL, 'j'},
                                         {"help", no_argument, NULL, 'h'},
                                         {0, 0, 0, 0}};
    const char *db = NULL, *name = NULL;
    long long max_bytes = QPO_CONFIG_MAX_BYTES;
    int c, dry_run = 0, as_json = 0;
    optind = 0;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        if (c == 'd')
            db = optarg;
        else if (c == 'n')
            name = optarg;
        else if (c == 'r')
            dry_run = 1;
        else if (c == 'j')
            as_json = 1;
        else if (c == 'm') {
            if (parse_bytes(optarg, &max_bytes) < 0)
                return QPO_EXIT_USAGE;
        } else if (c == 'h') {
            submit_usage(stdout);
            return 0;
        } else {
            submit_usage(stderr);
            return QPO_EXIT_USAGE;
        }
    }
    if (optind != argc - 1) {
        submit_usage(stderr);
        return QPO_EXIT_USAGE;
    }
    qpo_err err = {0};
    if (name && !*name) {
        qpo_err_set(&err, QPO_EXIT_USAGE, "--name: must not be empty");
        qpo_err_hint(&err, "leave --name out to use the config's \"name\" or the file's base name");
        return qpo_err_print(&err);
    }
    const char *path = argv[optind];
    json_t *cfg = qpo_config_load_file_max(path, max_bytes, &err);
    json_t *resolved = cfg ? qpo_config_resolve(cfg, &err) : NULL;
    if (!resolved) {
        if (cfg)
            qpo_err_prefix(&err, "%s", path);
        json_decref(cfg);
        return qpo_err_print(&err);
    }
    warn_missing_weights(resolved);
    char buf[256];
    default_name(path, cfg, buf, sizeof(buf));
    if (dry_run || as_json) {
        int rc =
            dry_run ? qpo_submit_dry_run(db, name ? name : buf, resolved, as_json)
                    : (fprintf(stderr, "qpo: error: --json goes with --dry-run\n"), QPO_EXIT_USAGE);
        json_decref(resolved);
        json_decref(cfg);
        return rc;
    }
    json_decref(resolved);
    PGconn *conn = qpo_sched_connect(db, "qpo submit", &err);
    int64_t id = 0;
    int rc = conn ? qpo_experiment_submit(conn, name ? name : buf, cfg, &id, &err) : -1;
    if (rc == 0)
        printf("%" PRId64 "\n", id);
    PQfinish(conn);
    json_decref(cfg);
    return rc < 0 ? qpo_err_print(&err) : 0;
}

static volatile sig_atomic_t stopping;

static void on_signal(int sig) {
    (void)sig;
    stopping = 1;
}

static void scheduler_usage(FILE *out) {
    fprintf(out, "usage: qpo scheduler [--once] [--poll-ms MS] [--db CONNINFO]\n"
                 "                     [--log-format text|json] [--log-level LEVEL]\n"
                 "                     [--metrics-listen ADDR]\n\n"
                 "Plans submitted experiments into runs and jobs and keeps run and experiment\n"
                 "states in line with their jobs. Stateless: stop and restart it at any time,\n"
                 "and run several for availability; none doubles another's work. It wakes on\n"
                 "every experiment insert (NOTIFY qpo_experiments) and polls every MS\n"
                 "milliseconds (default 2000). --once: one pass, then exit.\n"
                 "QPO_SCHEDULER_FAULT_AFTER_JOBS=N (tests only): die by SIGKILL after writing N\n"
                 "jobs of a plan, before its commit.\n\n" QPO_OBS_USAGE);
}

static qpo_metric passes =
    QPO_COUNTER("qpo_scheduler_passes_total", "Planning passes of this scheduler.", NULL, NULL);
static qpo_metric handled =
    QPO_COUNTER("qpo_scheduler_experiments_handled_total",
                "Submitted experiments this scheduler planned or marked invalid.", NULL, NULL);

/* Plans every waiting experiment, then refreshes states. */
static int one_pass(PGconn *conn, size_t fault_after, qpo_err *err) {
    qpo_metric_add(&passes, 1, NULL, NULL);
    for (;;) {
        int64_t id = 0;
        if (qpo_experiment_plan_next(conn, fault_after, &id, err) < 0)
            return -1;
        if (!id)
            break;
        qpo_metric_add(&handled, 1, NULL, NULL);
        qpo_info("scheduler: experiment %" PRId64 " handled", id);
    }
    return qpo_experiments_refresh(conn, err);
}

/* Waits for a notification or the poll interval, whichever comes first. */
static void wait_for_work(PGconn *conn, int poll_ms) {
    int fd = PQsocket(conn);
    fd_set set;
    FD_ZERO(&set);
    FD_SET(fd, &set);
    struct timeval tv = {poll_ms / 1000, (poll_ms % 1000) * 1000};
    if (select(fd + 1, &set, NULL, NULL, &tv) > 0) {
        PQconsumeInput(conn);
        PGnotify *n;
        while ((n = PQnotifies(conn)))
            PQfreemem(n);
    }
}

static PGconn *listen_connect(const char *db, qpo_err *err) {
    PGconn *conn = qpo_sched_connect(db, "qpo scheduler", err);
    if (conn && qpo_db_exec(conn, qpo_sql("scheduler_listen"), err) < 0) {
        PQfinish(conn);
        return NULL;
    }
    return conn;
}

static int scheduler_loop(const char *db, int once, int poll_ms, qpo_err *err);

int qpo_cmd_scheduler(int argc, char **argv) {
    static const struct option opts[] = {{"db", required_argument, NULL, 'd'},
                                         {"once", no_argument, NULL, 'o'},
                                         {"poll-ms", required_argument, NULL, 'p'},
                                         {"help", no_argument, NULL, 'h'},
                                         QPO_OBS_LONG_OPTIONS,
                                         {0, 0, 0, 0}};
    const char *db = NULL;
    qpo_obs obs = {0};
    int once = 0, poll_ms = 2000, c;
    optind = 0;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        if (c == 'd')
            db = optarg;
        else if (c == 'o')
            once = 1;
        else if (c == 'p' && atoi(optarg) > 0)
            poll_ms = atoi(optarg);
        else if (c == 'h') {
            scheduler_usage(stdout);
            return 0;
        } else if (!qpo_obs_option(c, optarg, &obs)) {
            scheduler_usage(stderr);
            return QPO_EXIT_USAGE;
        }
    }
    if (optind != argc) {
        scheduler_usage(stderr);
        return QPO_EXIT_USAGE;
    }
    qpo_err err = {0};
    qpo_queue_metrics depth = {qpo_db_conninfo(db), NULL};
    if (obs.metrics_listen)
        qpo_metrics_set_collector(qpo_queue_metrics_collect, &depth);
    if (qpo_obs_start(&obs, &err) < 0)
        return qpo_err_print(&err);
    int rc = scheduler_loop(db, once, poll_ms, &err);
    qpo_obs_stop();
    qpo_queue_metrics_close(&depth);
    return rc < 0 ? qpo_err_print(&err) : 0;
}

/* Runs passes until a signal (or one with --once); -1 with err set on an error that is no
 * lost connection. */
static int scheduler_loop(const char *db, int once, int poll_ms, qpo_err *err) {
    const char *fault = getenv("QPO_SCHEDULER_FAULT_AFTER_JOBS");
    size_t fault_after = fault ? (size_t)strtoull(fault, NULL, 10) : 0;
    PGconn *conn = listen_connect(db, err);
    if (!conn)
        return -1;
    signal(SIGTERM, on_signal);
    signal(SIGINT, on_signal);
    int rc = 0;
    while (!stopping) {
        rc = one_pass(conn, fault_after, err);
        /* A lost connection (server restart, failover) is waited out: nothing of a pass
         * survives a rollback, so the next pass redoes it. Other errors are bugs or a wrong
         * schema: exit, loudly. */
        if (rc < 0 && qpo_db_conn_lost(conn) && !once) {
            qpo_warn("scheduler: %s; reconnecting", err->msg);
            PQfinish(conn);
            while (!stopping && !(conn = listen_connect(db, err)))
                sleep(1);
            if (!conn)
                return 0;
            continue;
        }
        if (rc < 0 || once)
            break;
        wait_for_work(conn, poll_ms);
    }
    PQfinish(conn);
    return rc;
}
