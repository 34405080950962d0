/* qpo demo [--out DIR] [--keep] [--db CONNINFO] [--config FILE] [--data DIR]
 *
 * A whole experiment on one machine, the way a deployment runs it: a throwaway PostgreSQL
 * cluster (or --db), the simulated target LLM, the scheduler and a cpu and a gpu worker as
 * separate processes; then the results. */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "commands.h"
#include "datafiles.h"
#include "demo.h"
#include "pg_cluster.h"

extern const char qpo_demo_config_json[];

static volatile sig_atomic_t stop_requested;

static void on_signal(int sig) {
    (void)sig;
    stop_requested = 1;
}

static void usage(FILE *out) {
    fprintf(out,
            "usage: qpo demo [--out DIR] [--keep] [--db CONNINFO] [--config FILE] [--data DIR]\n\n"
            "Runs an experiment end to end against the simulated target LLM (qpo sim-llm):\n"
            "a throwaway PostgreSQL cluster in DIR, data import, submit, then the scheduler, a\n"
            "cpu worker and a gpu worker as child processes until the experiment is done; prints\n"
            "and writes `qpo results`. Ctrl-C stops the children and the cluster.\n\n"
            "  --out DIR       logs, results and the cluster go here (default ./qpo-demo)\n"
            "  --keep          leave the cluster running afterwards and print how to connect\n"
            "  --db CONNINFO   use this server instead of a throwaway cluster\n"
            "  --config FILE   another experiment config (default: the built-in\n"
            "                  config/experiments/demo.json); its targets are simulated\n"
            "  --data DIR      the data folder to import from (default $QPO_DATA_DIR, else\n"
            "                  ../shared/data, else the qpo data fetch cache, when present)\n\n"
            "QPO_DEMO_SIM_START_S in the environment: the seconds the simulator may take to\n"
            "start (default 10).\n");
}

typedef struct demo_opts {
    const char *out, *db, *config, *data;
    bool keep;
} demo_opts;

static int parse(int argc, char **argv, demo_opts *o) {
    static const struct option opts[] = {{"out", required_argument, NULL, 'o'},
                                         {"keep", no_argument, NULL, 'k'},
                                         {"db", required_argument, NULL, 'd'},
                                         {"config", required_argument, NULL, 'c'},
                                         {"data", required_argument, NULL, 'D'},
                                         {"help", no_argument, NULL, 'h'},
                                         {0, 0, 0, 0}};
    int c;
    optind = 0;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 'o':
            o->out = optarg;
            break;
        case 'k':
            o->keep = true;
            break;
        case 'd':
            o->db = optarg;
            break;
        case 'c':
            o->config = optarg;
            break;
        case 'D':
            o->data = optarg;
            break;
        case 'h':
            usage(stdout);
            return 1;
        default:
            usage(stderr);
            return QPO_EXIT_USAGE;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "qpo: error: qpo demo takes no argument '%s'\n", argv[optind]);
        return QPO_EXIT_USAGE;
    }
    return 0;
}

static int mkdir_p(const char *path, qpo_err *err) {
    char buf[600];
    snprintf(buf, sizeof(buf), "%s", path);
    for (char *p = buf + 1;; p++) {
        bool end = *p == '\0';
        if (*p == '/' || end) {
            *p = '\0';
            if (mkdir(buf, 0755) < 0 && errno != EEXIST)
                return qpo_err_set(err, QPO_EXIT_RUNTIME, "cannot create %s: %s", buf,
                                   strerror(errno));
            if (end)
                return 0;
            *p = '/';
        }
    }
}

static json_t *load_config(const char *file, qpo_err *err) {
    json_error_t je;
    json_t *c = file ? json_load_file(file, 0, &je) : json_loads(qpo_demo_config_json, 0, &je);
    if (!c) {
        qpo_err_set(err, QPO_EXIT_USAGE, "cannot read the experiment config");
        qpo_err_detail(err, "%s:%d: %s", file ? file : "(built-in demo.json)", je.line, je.text);
        return NULL;
    }
    if (!json_is_array(json_object_get(c, "targets")) ||
        !json_array_size(json_object_get(c, "targets")) ||
        !json_is_array(json_object_get(c, "tasks"))) {
        qpo_err_set(err, QPO_EXIT_USAGE, "%s: the config needs \"tasks\" and \"targets\" lists",
                    file ? file : "(built-in demo.json)");
        json_decref(c);
        return NULL;
    }
    return c;
}

/* The children read these from the environment, as a deployment's processes would. */
static void export_env(const demo_ctx *d, const char *checkpoints) {
    setenv("DATABASE_URL", d->conninfo, 1);
    setenv("QPO_CHECKPOINT_DIR", checkpoints, 0);
    /* Spinning OpenMP threads starve the other processes on a small machine. */
    setenv("OMP_WAIT_POLICY", "passive", 0);
    if (d->data) {
        char path[700];
        snprintf(path, sizeof(path), "%s/gpt2_bpe", d->data);
        setenv("QPO_BPE_DIR", path, 0);
        snprintf(path, sizeof(path), "%s/prompts", d->data);
        setenv("QPO_PROMPTS_DIR", path, 0);
    }
}

static void step(const char *what) {
    printf("\n== %s\n", what);
    fflush(stdout);
}

/* Everything after the cluster exists; the caller stops children and cluster. */
static int run_experiment(demo_ctx *d, qpo_err *err) {
    step("data");
    if (demo_prepare_data(d, err) < 0)
        return -1;
    step("simulated target LLM (docs/sim-llm.md)");
    if (demo_start_simulators(d, err) < 0 || demo_submit(d, err) < 0)
        return -1;
    step("scheduler, a cpu worker and a gpu worker (CPU backend)");
    if (demo_start_pipeline(d, err) < 0)
        return -1;
    printf("waiting for experiment %lld\n", d->experiment);
    fflush(stdout);
    if (demo_wait(d, (volatile const int *)&stop_requested, err) < 0)
        return -1;
    step("results (test accuracy; loop 0 = the baseline prompts)");
    return demo_results(d, err);
}

static void print_keep(const demo_ctx *d, const qpo_pg_cluster *c) {
    printf("\ncluster kept running: export DATABASE_URL='%s'\n", d->conninfo);
    printf("  psql \"$DATABASE_URL\"; stop it with: %spg_ctl -D %s stop\n",
           geteuid() == 0 ? "runuser -u postgres -- " : "", qpo_pg_cluster_dir(c));
}

static int start_cluster(demo_ctx *d, qpo_pg_cluster **cluster, qpo_err *err) {
    step("throwaway PostgreSQL cluster");
    /* As root the server runs as postgres, which must pass through DIR to reach its own. */
    if (geteuid() == 0 && chmod(d->out, 0755) < 0)
        return qpo_err_set(err, QPO_EXIT_RUNTIME, "chmod %s: %s", d->out, strerror(errno));
    char dir[700];
    demo_path(d, "pg-XXXXXX", dir, sizeof(dir));
    /* mkdtemp names it; the cluster wants to create the directory itself as its owner. */
    if (!mkdtemp(dir) || rmdir(dir) < 0)
        return qpo_err_set(err, QPO_EXIT_RUNTIME, "cannot create %s: %s", dir, strerror(errno));
    *cluster = qpo_pg_cluster_start(dir, err);
    if (!*cluster)
        return -1;
    snprintf(d->conninfo, sizeof(d->conninfo), "%s", qpo_pg_cluster_conninfo(*cluster));
    printf("cluster in %s (server log %s/server.log)\n", dir, dir);
    return 0;
}

int qpo_cmd_demo(int argc, char **argv) {
    demo_opts o = {.out = "./qpo-demo"};
    int prc = parse(argc, argv, &o);
    if (prc)
        return prc == 1 ? 0 : prc;
    qpo_err err = {0};
    demo_ctx d = {.out = o.out, .sim_start_s = demo_sim_start_s(&err)};
    if (d.sim_start_s < 0)
        return qpo_err_print(&err);
    static char data_dir[2048];
    if (qpo_data_dir(o.data, data_dir, sizeof(data_dir), &err) < 0)
        return qpo_err_print(&err);
    d.data = data_dir[0] ? data_dir : NULL;
    d.config = load_config(o.config, &err);
    char checkpoints[700];
    snprintf(d.logs, sizeof(d.logs), "%s/logs", o.out);
    demo_path(&d, "checkpoints", checkpoints, sizeof(checkpoints));
    if (!d.config || mkdir_p(d.logs, &err) < 0 || mkdir_p(checkpoints, &err) < 0) {
        json_decref(d.config);
        return qpo_err_print(&err);
    }
    struct sigaction sa = {.sa_handler = on_signal};
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);

    qpo_pg_cluster *cluster = NULL;
    int rc = 0;
    if (o.db)
        snprintf(d.conninfo, sizeof(d.conninfo), "%s", o.db);
    else
        rc = start_cluster(&d, &cluster, &err);
    if (rc == 0) {
        export_env(&d, checkpoints);
        printf("logs of the child processes: %s/\n", d.logs);
        rc = run_experiment(&d, &err);
    }
    demo_children_stop(d.children, d.nchildren, 5000);
    if (cluster && o.keep) {
        print_keep(&d, cluster);
        qpo_pg_cluster_release(cluster);
    } else {
        qpo_pg_cluster_stop(cluster, true);
    }
    json_decref(d.config);
    if (rc < 0) {
        fflush(stdout);
        fprintf(stderr, "qpo demo: logs in %s/\n", d.logs);
        return qpo_err_print(&err);
    }
    return 0;
}
