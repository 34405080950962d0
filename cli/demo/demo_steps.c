/* `qpo demo`'s steps: each runs other commands of this binary as child processes, the way an
 * operator would, so the demo exercises the same path as a deployment. See demo.h. */
#include "demo.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "datafiles.h"
#include "db.h"

#define SIM_START_S 10
#define POLL_MS 1000
#define PROGRESS_EVERY_S 15

/* The released D_0 files the manifest lists ({path, task, setting}, paths in the data folder):
 * a new reference, an empty list when there are none. */
static json_t *released_d0(void) {
    qpo_err quiet = {0};
    json_t *manifest = qpo_data_manifest(&quiet);
    const json_t *set = manifest ? qpo_data_set(manifest, "d0", &quiet) : NULL;
    json_t *list = set ? json_object_get(set, "releases") : NULL;
    list = json_is_array(list) ? json_incref(list) : json_array();
    json_decref(manifest);
    return list;
}

void demo_path(const demo_ctx *d, const char *name, char *buf, size_t n) {
    snprintf(buf, n, "%s/%s", d->out, name);
}

static void sleep_ms(int ms) {
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static int run_step(char *const argv[], qpo_err *err) {
    int rc = demo_run(argv, NULL, false, err);
    if (rc < 0)
        return -1;
    if (rc == 0)
        return 0;
    qpo_err_set(err, rc == QPO_EXIT_USAGE ? QPO_EXIT_USAGE : QPO_EXIT_RUNTIME,
                "'qpo %s %s' failed (exit %d)", argv[0], argv[1] ? argv[1] : "", rc);
    qpo_err_detail(err, "its error is printed above");
    return -1;
}

static long long count_rows(PGconn *conn, const char *stmt, int n, const char *const *params,
                            qpo_err *err) {
    PGresult *res = qpo_db_named(conn, stmt, n, params, err);
    if (!res)
        return -1;
    long long c = qpo_db_int64(res, 0, 0);
    PQclear(res);
    return c;
}

static int import_task(demo_ctx *d, PGconn *conn, const char *task, qpo_err *err) {
    const char *p[] = {task};
    long long have = count_rows(conn, "demo_task_items", 1, p, err);
    if (have < 0)
        return -1;
    if (have > 0) {
        printf("%s: %lld items already imported\n", task, have);
        return 0;
    }
    /* qpo data import finds the task's files in the folder by the manifest. */
    if (d->data) {
        char *argv[] = {"data", "import", (char *)task, "--data", (char *)d->data, NULL};
        return run_step(argv, err);
    }
    qpo_err_set(err, QPO_EXIT_USAGE, "task %s has no data in the database", task);
    qpo_err_detail(err, "no data folder was found (--data DIR, $QPO_DATA_DIR, ../shared/data "
                        "or the qpo data fetch cache)");
    qpo_err_hint(err,
                 "fetch its files first (qpo data fetch %s), or import it with 'qpo data "
                 "import %s FILE...' and pass --db",
                 task, task);
    return -1;
}

static int import_released_d0(demo_ctx *d, PGconn *conn, const char *task, const char *setting,
                              const char *target, qpo_err *err) {
    const char *p[] = {task, setting, target};
    long long have = count_rows(conn, "demo_d0_records", 3, p, err);
    if (have != 0)
        return have < 0 ? -1 : 0;
    json_t *releases = released_d0();
    size_t i;
    const json_t *r;
    json_array_foreach(releases, i, r) {
        if (strcmp(json_string_value(json_object_get(r, "task")), task) ||
            strcmp(json_string_value(json_object_get(r, "setting")), setting) || !d->data)
            continue;
        char path[1024];
        snprintf(path, sizeof(path), "%s/%s", d->data,
                 json_string_value(json_object_get(r, "path")));
        json_decref(releases);
        char *argv[] = {"data",      "import-d0",     path,       "--task",       (char *)task,
                        "--setting", (char *)setting, "--target", (char *)target, NULL};
        return run_step(argv, err);
    }
    json_decref(releases);
    qpo_err_set(err, QPO_EXIT_USAGE, "no D_0 for %s/%s/%s to import", task, setting, target);
    qpo_err_hint(err, "use \"d0\": {\"source\": \"build\"} to build D_0 against the target, or "
                      "import a D_0 file first (qpo data import-d0) and pass --db");
    return -1;
}

static bool d0_imported(const json_t *config) {
    const char *src = json_string_value(json_object_get(json_object_get(config, "d0"), "source"));
    return !src || !strcmp(src, "import");
}

int demo_prepare_data(demo_ctx *d, qpo_err *err) {
    char *migrate[] = {"db", "migrate", NULL};
    if (run_step(migrate, err) < 0)
        return -1;
    PGconn *conn = qpo_db_connect(d->conninfo, "qpo demo", err);
    if (!conn)
        return -1;
    int rc = 0;
    size_t i, j, k;
    json_t *task, *setting, *target;
    json_array_foreach(json_object_get(d->config, "tasks"), i, task) {
        if (rc == 0)
            rc = import_task(d, conn, json_string_value(task), err);
        if (rc < 0 || !d0_imported(d->config))
            continue;
        json_array_foreach(json_object_get(d->config, "settings"), j, setting) {
            json_array_foreach(json_object_get(d->config, "targets"), k, target) {
                if (rc == 0)
                    rc = import_released_d0(
                        d, conn, json_string_value(task), json_string_value(setting),
                        json_string_value(json_object_get(target, "name")), err);
            }
        }
    }
    PQfinish(conn);
    return rc;
}

static demo_child *new_child(demo_ctx *d, const char *name, qpo_err *err) {
    if (d->nchildren == DEMO_MAX_CHILDREN) {
        qpo_err_set(err, QPO_EXIT_USAGE, "too many child processes (at most %d)",
                    DEMO_MAX_CHILDREN);
        qpo_err_hint(err, "name fewer targets in the config");
        return NULL;
    }
    demo_child *c = &d->children[d->nchildren++];
    memset(c, 0, sizeof(*c));
    snprintf(c->name, sizeof(c->name), "%s", name);
    snprintf(c->log, sizeof(c->log), "%s/%s.log", d->logs, name);
    return c;
}

int demo_sim_start_s(qpo_err *err) {
    const char *env = getenv("QPO_DEMO_SIM_START_S");
    if (!env || !*env)
        return SIM_START_S;
    char *end;
    errno = 0;
    long v = strtol(env, &end, 10);
    if (errno || *end || v < 1 || v > 86400) {
        qpo_err_set(err, QPO_EXIT_USAGE, "QPO_DEMO_SIM_START_S=%s: expected whole seconds", env);
        qpo_err_detail(err, "from 1 to 86400");
        return -1;
    }
    return (int)v;
}

static double monotonic_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/* The first line the simulator prints is its base URL; wait for it. */
static int read_address(const demo_ctx *d, demo_child *c, const char *addr_file, char *url,
                        size_t n, qpo_err *err) {
    for (double end = monotonic_s() + d->sim_start_s; monotonic_s() < end;) {
        FILE *f = fopen(addr_file, "r");
        if (f) {
            bool got = fgets(url, (int)n, f) && strchr(url, '\n');
            fclose(f);
            if (got) {
                url[strcspn(url, "\r\n")] = '\0';
                return 0;
            }
        }
        if (demo_child_exited(c))
            break;
        sleep_ms(50);
    }
    qpo_err_set(err, QPO_EXIT_RUNTIME, "qpo sim-llm did not start");
    qpo_err_detail(err, "see %s", c->log);
    return -1;
}

int demo_start_simulators(demo_ctx *d, qpo_err *err) {
    size_t i;
    json_t *target;
    json_array_foreach(json_object_get(d->config, "targets"), i, target) {
        const char *name = json_string_value(json_object_get(target, "name"));
        const char *model = json_string_value(json_object_get(target, "model"));
        char child_name[32], addr_file[700], url[256];
        snprintf(child_name, sizeof(child_name), "sim-llm-%zu", i);
        demo_child *c = new_child(d, child_name, err);
        if (!c)
            return -1;
        snprintf(addr_file, sizeof(addr_file), "%s/%s.addr", d->logs, child_name);
        unlink(addr_file);
        char *argv[] = {"sim-llm",
                        "--listen",
                        "127.0.0.1:0",
                        "--db",
                        d->conninfo,
                        "--model",
                        (char *)(model ? model : "qpo-sim"),
                        NULL};
        if (demo_spawn(c, argv, addr_file, err) < 0 ||
            read_address(d, c, addr_file, url, sizeof(url) - 4, err) < 0)
            return -1;
        size_t len = strlen(url);
        if (len && url[len - 1] == '/')
            url[--len] = '\0';
        strcat(url, "/v1");
        json_object_set_new(target, "base_url", json_string(url));
        printf("target %s: simulated %s at %s (log %s)\n", name ? name : "?",
               model ? model : "qpo-sim", url, c->log);
    }
    return 0;
}

int demo_submit(demo_ctx *d, qpo_err *err) {
    char path[700];
    demo_path(d, "experiment.json", path, sizeof(path));
    if (json_dump_file(d->config, path, JSON_INDENT(2)) < 0)
        return qpo_err_set(err, QPO_EXIT_RUNTIME, "cannot write %s", path);
    char *out = NULL;
    char *argv[] = {"submit", path, NULL};
    int rc = demo_run(argv, &out, false, err);
    if (rc == 0 && out && sscanf(out, "%lld", &d->experiment) == 1) {
        printf("experiment %lld submitted (%s)\n", d->experiment, path);
        free(out);
        return 0;
    }
    if (rc == 0)
        qpo_err_set(err, QPO_EXIT_RUNTIME, "qpo submit printed no experiment id");
    else if (rc > 0)
        qpo_err_set(err, rc == QPO_EXIT_USAGE ? QPO_EXIT_USAGE : QPO_EXIT_RUNTIME,
                    "qpo submit %s failed (exit %d); its error is printed above", path, rc);
    free(out);
    return -1;
}

static int spawn_named(demo_ctx *d, const char *name, char *const argv[], qpo_err *err) {
    demo_child *c = new_child(d, name, err);
    if (!c || demo_spawn(c, argv, NULL, err) < 0)
        return -1;
    printf("%-10s pid %d, log %s\n", name, (int)c->pid, c->log);
    return 0;
}

int demo_start_pipeline(demo_ctx *d, qpo_err *err) {
    char *sched[] = {"scheduler", NULL};
    char *cpu[] = {"worker", "--class", "cpu", "--name", "cpu-1", "--concurrency", "4", NULL};
    char *gpu[] = {"worker", "--class", "gpu", "--name", "gpu-1", "--concurrency", "1", NULL};
    if (spawn_named(d, "scheduler", sched, err) < 0 || spawn_named(d, "worker-cpu", cpu, err) < 0 ||
        spawn_named(d, "worker-gpu", gpu, err) < 0)
        return -1;
    return 0;
}

static void report_failed_jobs(PGconn *conn, const char *exp, qpo_err *err) {
    qpo_err ignored = {0};
    const char *p[] = {exp};
    PGresult *res = qpo_db_named(conn, "demo_failed_jobs", 1, p, &ignored);
    if (!res || PQntuples(res) == 0) {
        qpo_err_detail(err, "no job failed; see the scheduler's log");
    } else {
        /* The first failed job is the cause; the others are listed for the user. */
        qpo_err_detail(err, "job %s (%s) %s after %s attempt(s): %s", PQgetvalue(res, 0, 0),
                       PQgetvalue(res, 0, 1), PQgetvalue(res, 0, 2), PQgetvalue(res, 0, 3),
                       PQgetvalue(res, 0, 4));
        for (int i = 1; i < PQntuples(res); i++)
            fprintf(stderr, "  also job %s (%s) %s: %s\n", PQgetvalue(res, i, 0),
                    PQgetvalue(res, i, 1), PQgetvalue(res, i, 2), PQgetvalue(res, i, 4));
    }
    PQclear(res);
}

static int child_died(demo_ctx *d, qpo_err *err) {
    for (size_t i = 0; i < d->nchildren; i++) {
        demo_child *c = &d->children[i];
        if (c->pid > 0 && demo_child_exited(c)) {
            qpo_err_set(err, QPO_EXIT_RUNTIME, "%s exited before the experiment was done", c->name);
            qpo_err_detail(err, "wait status %d; see %s", c->status, c->log);
            return -1;
        }
    }
    return 0;
}

static void print_progress(PGconn *conn, const char *exp, time_t started) {
    qpo_err ignored = {0};
    const char *p[] = {exp};
    PGresult *res = qpo_db_named(conn, "demo_job_counts", 1, p, &ignored);
    if (res)
        printf("  %4lds: %s of %s jobs done, %s running\n", (long)(time(NULL) - started),
               PQgetvalue(res, 0, 0), PQgetvalue(res, 0, 2), PQgetvalue(res, 0, 1));
    fflush(stdout);
    PQclear(res);
}

int demo_wait(demo_ctx *d, volatile const int *stop, qpo_err *err) {
    PGconn *conn = qpo_db_connect(d->conninfo, "qpo demo", err);
    if (!conn)
        return -1;
    char exp[32];
    snprintf(exp, sizeof(exp), "%lld", d->experiment);
    const char *p[] = {exp};
    time_t started = time(NULL), shown = started;
    int rc = -1;
    while (!*stop) {
        PGresult *res = qpo_db_named(conn, "demo_experiment_state", 1, p, err);
        if (!res)
            break;
        char state[32];
        snprintf(state, sizeof(state), "%s", PQgetvalue(res, 0, 0));
        if (!strcmp(state, "done")) {
            PQclear(res);
            rc = 0;
            break;
        }
        if (!strcmp(state, "failed") || !strcmp(state, "invalid") || !strcmp(state, "cancelled")) {
            qpo_err_set(err, QPO_EXIT_RUNTIME, "experiment %s is %s%s%s", exp, state,
                        *PQgetvalue(res, 0, 1) ? ": " : "", PQgetvalue(res, 0, 1));
            report_failed_jobs(conn, exp, err);
            PQclear(res);
            break;
        }
        PQclear(res);
        if (child_died(d, err) < 0)
            break;
        if (time(NULL) - shown >= PROGRESS_EVERY_S) {
            print_progress(conn, exp, started);
            shown = time(NULL);
        }
        sleep_ms(POLL_MS);
    }
    if (*stop && rc < 0 && !qpo_err_is_set(err))
        qpo_err_set(err, QPO_EXIT_RUNTIME, "interrupted; experiment %s was not finished", exp);
    PQfinish(conn);
    return rc;
}

static int write_file(const char *path, const char *text, qpo_err *err) {
    FILE *f = fopen(path, "w");
    if (!f || fputs(text, f) < 0 || fclose(f) != 0)
        return qpo_err_set(err, QPO_EXIT_RUNTIME, "cannot write %s: %s", path, strerror(errno));
    return 0;
}

static int results_into(demo_ctx *d, const char *exp, const char *format, const char *file,
                        bool show, qpo_err *err) {
    char *out = NULL, path[700];
    char *argv[] = {"results", (char *)exp, "--format", (char *)format, NULL};
    int rc = demo_run(argv, &out, !show, err);
    if (rc != 0) {
        free(out);
        return rc < 0
                   ? -1
                   : qpo_err_set(err, QPO_EXIT_RUNTIME, "qpo results %s failed (exit %d)", exp, rc);
    }
    if (show)
        fputs(out, stdout);
    demo_path(d, file, path, sizeof(path));
    rc = write_file(path, out, err);
    free(out);
    return rc;
}

/* `qpo report` is another engineer's command; the demo uses it when the binary has it. */
static void maybe_report(demo_ctx *d, const char *exp) {
    qpo_err ignored = {0};
    char *help = NULL;
    char *probe[] = {"help", NULL};
    if (demo_run(probe, &help, true, &ignored) != 0 || !strstr(help, "\n  report ")) {
        free(help);
        return;
    }
    free(help);
    char dir[700];
    demo_path(d, "report", dir, sizeof(dir));
    char *argv[] = {"report", (char *)exp, "--out", dir, NULL};
    if (demo_run(argv, NULL, false, &ignored) == 0)
        printf("report: %s/index.html\n", dir);
}

int demo_results(demo_ctx *d, qpo_err *err) {
    char exp[32], path[700];
    snprintf(exp, sizeof(exp), "%lld", d->experiment);
    if (results_into(d, exp, "table", "results.txt", true, err) < 0 ||
        results_into(d, exp, "csv", "results.csv", false, err) < 0 ||
        results_into(d, exp, "json", "results.json", false, err) < 0)
        return -1;
    demo_path(d, "results.txt", path, sizeof(path));
    printf("written to %s, results.csv and results.json\n", path);
    PGconn *conn = qpo_db_connect(d->conninfo, "qpo demo", err);
    if (!conn)
        return -1;
    PGresult *res = qpo_db_named(conn, "demo_llm_calls", 0, NULL, err);
    if (res)
        printf("LLM calls: %s, cache hits: %s\n", PQgetvalue(res, 0, 0), PQgetvalue(res, 0, 1));
    PQclear(res);
    PQfinish(conn);
    maybe_report(d, exp);
    return res ? 0 : -1;
}
