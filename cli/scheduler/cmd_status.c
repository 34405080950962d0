/* qpo status [EXP] [--watch] [--json]: experiments, their runs and each run's stages. The
 * report is built once as JSON; the table is a rendering of it, so both say the same. */
#include <getopt.h>
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cmd_util.h"
#include "commands.h"
#include "db.h"

/* The stage's devices (status_devices rows d), or null where its jobs say none. */
static json_t *stage_devices(const PGresult *d, const char *run, const char *kind) {
    for (int k = 0; k < PQntuples(d); k++)
        if (!strcmp(PQgetvalue(d, k, 0), run) && !strcmp(PQgetvalue(d, k, 1), kind))
            return json_string(PQgetvalue(d, k, 2));
    return json_null();
}

static json_t *stage_json(const PGresult *res, int i, const PGresult *d) {
    long long total = qpo_db_int64(res, i, 2), done = qpo_db_int64(res, i, 3);
    long long dead = qpo_db_int64(res, i, 7), cancelled = qpo_db_int64(res, i, 8);
    double elapsed = strtod(PQgetvalue(res, i, 9), NULL);
    double rate = elapsed > 0 ? done / (elapsed / 60.0) : 0; /* jobs per minute */
    long long left = total - done - dead - cancelled;
    json_t *s = json_pack("{ss sI sI sI sI sI sI sI sf}", "stage", PQgetvalue(res, i, 1), "total",
                          total, "done", done, "running", qpo_db_int64(res, i, 4), "waiting",
                          qpo_db_int64(res, i, 5), "retrying", qpo_db_int64(res, i, 6), "dead",
                          dead, "cancelled", cancelled, "rate_per_min", rate);
    json_object_set_new(s, "eta_s",
                        rate > 0 && left > 0 ? json_real(left / rate * 60.0) : json_null());
    json_object_set_new(s, "devices",
                        stage_devices(d, PQgetvalue(res, i, 0), PQgetvalue(res, i, 1)));
    return s;
}

/* The newest step of a run's running train job, from qpo.train_metrics (null if none). */
static json_t *training_json(const PGresult *t, const char *run_id) {
    for (int k = 0; k < PQntuples(t); k++)
        if (!strcmp(PQgetvalue(t, k, 0), run_id))
            return json_pack("{si si sI sf sf}", "loop", (int)qpo_db_int64(t, k, 1), "epoch",
                             (int)qpo_db_int64(t, k, 2), "step", qpo_db_int64(t, k, 3), "loss",
                             strtod(PQgetvalue(t, k, 4), NULL), "tokens_per_s",
                             strtod(PQgetvalue(t, k, 5), NULL));
    return json_null();
}

static int add_runs(PGconn *conn, const char *exp, json_t *runs, qpo_err *err) {
    const char *p[] = {exp};
    PGresult *r = qpo_db_named(conn, "status_runs", 1, p, err);
    PGresult *s = r ? qpo_db_named(conn, "status_stages", 1, p, err) : NULL;
    PGresult *c = s ? qpo_db_named(conn, "status_cost", 1, p, err) : NULL;
    PGresult *t = c ? qpo_db_named(conn, "status_training", 1, p, err) : NULL;
    PGresult *d = t ? qpo_db_named(conn, "status_devices", 1, p, err) : NULL;
    if (!d) {
        PQclear(r);
        PQclear(s);
        PQclear(c);
        PQclear(t);
        return -1;
    }
    for (int i = 0; i < PQntuples(r); i++) {
        const char *id = PQgetvalue(r, i, 0);
        json_t *run =
            json_pack("{sI ss ss ss si ss ss sI sI sI}", "id", qpo_db_int64(r, i, 0), "task",
                      PQgetvalue(r, i, 1), "setting", PQgetvalue(r, i, 2), "target",
                      PQgetvalue(r, i, 3), "seed", (int)qpo_db_int64(r, i, 4), "state",
                      PQgetvalue(r, i, 5), "error", PQgetvalue(r, i, 6), "llm_calls", (json_int_t)0,
                      "cache_hits", (json_int_t)0, "tokens", (json_int_t)0);
        json_t *stages = json_array();
        for (int k = 0; k < PQntuples(s); k++)
            if (!strcmp(PQgetvalue(s, k, 0), id))
                json_array_append_new(stages, stage_json(s, k, d));
        for (int k = 0; k < PQntuples(c); k++)
            if (!strcmp(PQgetvalue(c, k, 0), id)) {
                json_object_set_new(run, "llm_calls", json_integer(qpo_db_int64(c, k, 1)));
                json_object_set_new(run, "cache_hits", json_integer(qpo_db_int64(c, k, 2)));
                json_object_set_new(run, "tokens", json_integer(qpo_db_int64(c, k, 3)));
            }
        json_object_set_new(run, "stages", stages);
        json_object_set_new(run, "training", training_json(t, id));
        json_array_append_new(runs, run);
    }
    PQclear(r);
    PQclear(s);
    PQclear(c);
    PQclear(t);
    PQclear(d);
    return 0;
}

static json_t *build_report(PGconn *conn, const char *exp, qpo_err *err) {
    const char *p[] = {exp};
    PGresult *res = qpo_db_named(conn, "status_experiments", 1, p, err);
    if (!res)
        return NULL;
    if (exp && PQntuples(res) == 0) {
        PQclear(res);
        qpo_err_set(err, QPO_EXIT_USAGE, "experiment %s does not exist", exp);
        return NULL;
    }
    json_t *list = json_array();
    for (int i = 0; i < PQntuples(res); i++) {
        json_t *runs = json_array();
        json_t *e =
            json_pack("{sI ss ss ss ss so}", "id", qpo_db_int64(res, i, 0), "name",
                      PQgetvalue(res, i, 1), "state", PQgetvalue(res, i, 2), "error",
                      PQgetvalue(res, i, 3), "created_at", PQgetvalue(res, i, 4), "runs", runs);
        json_array_append_new(list, e);
        if (add_runs(conn, PQgetvalue(res, i, 0), runs, err) < 0) {
            json_decref(list);
            list = NULL;
            break;
        }
    }
    PQclear(res);
    return list;
}

static void fmt_eta(const json_t *eta, char *out, size_t size) {
    if (!json_is_number(eta)) {
        snprintf(out, size, "-");
        return;
    }
    long s = (long)json_number_value(eta);
    snprintf(out, size, "%ldh%02ldm%02lds", s / 3600, s / 60 % 60, s % 60);
}

static void render_run(const json_t *run, FILE *out) {
    fprintf(out, "  run %lld  %s %s %s seed %d  %s  (LLM calls %lld, cache hits %lld)\n",
            (long long)json_integer_value(json_object_get(run, "id")),
            json_string_value(json_object_get(run, "task")),
            json_string_value(json_object_get(run, "setting")),
            json_string_value(json_object_get(run, "target")),
            (int)json_integer_value(json_object_get(run, "seed")),
            json_string_value(json_object_get(run, "state")),
            (long long)json_integer_value(json_object_get(run, "llm_calls")),
            (long long)json_integer_value(json_object_get(run, "cache_hits")));
    const char *error = json_string_value(json_object_get(run, "error"));
    if (error && *error)
        fprintf(out, "    error: %s\n", error);
    const json_t *tr = json_object_get(run, "training");
    if (json_is_object(tr))
        fprintf(out, "    training loop %d epoch %d step %lld: loss %.4f, %.0f tokens/s\n",
                (int)json_integer_value(json_object_get(tr, "loop")),
                (int)json_integer_value(json_object_get(tr, "epoch")),
                (long long)json_integer_value(json_object_get(tr, "step")),
                json_real_value(json_object_get(tr, "loss")),
                json_real_value(json_object_get(tr, "tokens_per_s")));
    fprintf(out, "    %-18s %9s %7s %8s %5s %9s %8s %10s  %s\n", "stage", "done", "running",
            "retrying", "dead", "cancelled", "jobs/min", "ETA", "device");
    size_t i;
    json_t *s;
    json_array_foreach(json_object_get(run, "stages"), i, s) {
        char done[32], eta[32];
        snprintf(done, sizeof(done), "%lld/%lld",
                 (long long)json_integer_value(json_object_get(s, "done")),
                 (long long)json_integer_value(json_object_get(s, "total")));
        fmt_eta(json_object_get(s, "eta_s"), eta, sizeof(eta));
        const char *dev = json_string_value(json_object_get(s, "devices"));
        fprintf(out, "    %-18s %9s %7lld %8lld %5lld %9lld %8.2f %10s  %s\n",
                json_string_value(json_object_get(s, "stage")), done,
                (long long)json_integer_value(json_object_get(s, "running")),
                (long long)json_integer_value(json_object_get(s, "retrying")),
                (long long)json_integer_value(json_object_get(s, "dead")),
                (long long)json_integer_value(json_object_get(s, "cancelled")),
                json_real_value(json_object_get(s, "rate_per_min")), eta, dev ? dev : "");
    }
}

static void render(const json_t *report, FILE *out) {
    size_t i;
    json_t *e;
    if (!json_array_size(report))
        fprintf(out, "no experiments\n");
    json_array_foreach(report, i, e) {
        fprintf(out, "experiment %lld  \"%s\"  %s  (submitted %s)\n",
                (long long)json_integer_value(json_object_get(e, "id")),
                json_string_value(json_object_get(e, "name")),
                json_string_value(json_object_get(e, "state")),
                json_string_value(json_object_get(e, "created_at")));
        const char *error = json_string_value(json_object_get(e, "error"));
        if (error && *error)
            fprintf(out, "  error: %s\n", error);
        size_t k;
        json_t *run;
        json_array_foreach(json_object_get(e, "runs"), k, run) render_run(run, out);
    }
}

/* Whether every experiment shown has reached a state it leaves only by a command. */
static int all_settled(const json_t *report) {
    size_t i;
    json_t *e;
    json_array_foreach(report, i, e) {
        const char *st = json_string_value(json_object_get(e, "state"));
        if (!strcmp(st, "submitted") || !strcmp(st, "planned") || !strcmp(st, "running"))
            return 0;
    }
    return 1;
}

static volatile sig_atomic_t interrupted;
static void on_sigint(int sig) {
    (void)sig;
    interrupted = 1;
}

static void status_usage(FILE *out) {
    fprintf(out, "usage: qpo status [EXPERIMENT] [--watch] [--json] [--db CONNINFO]\n\n"
                 "Experiments (all, or the one given), their runs and each run's stages: jobs\n"
                 "done/total, running, retrying, dead, rate and ETA, LLM calls and cache hits.\n"
                 "--watch redraws every 2 s until the experiments settle (or Ctrl-C).\n");
}

int qpo_cmd_status(int argc, char **argv) {
    static const struct option opts[] = {{"db", required_argument, NULL, 'd'},
                                         {"watch", no_argument, NULL, 'w'},
                                         {"json", no_argument, NULL, 'j'},
                                         {"help", no_argument, NULL, 'h'},
                                         {0, 0, 0, 0}};
    const char *db = NULL;
    int watch = 0, as_json = 0, c;
    optind = 0;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        if (c == 'd')
            db = optarg;
        else if (c == 'w')
            watch = 1;
        else if (c == 'j')
            as_json = 1;
        else if (c == 'h') {
            status_usage(stdout);
            return 0;
        } else {
            status_usage(stderr);
            return QPO_EXIT_USAGE;
        }
    }
    const char *exp = optind < argc ? argv[optind] : NULL;
    qpo_err err = {0};
    if (optind + (exp ? 1 : 0) != argc || (exp && qpo_sched_parse_id(exp) < 0)) {
        status_usage(stderr);
        return QPO_EXIT_USAGE;
    }
    PGconn *conn = qpo_sched_connect(db, "qpo status", &err);
    if (!conn)
        return qpo_err_print(&err);
    signal(SIGINT, on_sigint);
    int rc = 0;
    do {
        json_t *report = build_report(conn, exp, &err);
        if (!report) {
            rc = -1;
            break;
        }
        if (watch && isatty(STDOUT_FILENO))
            printf("\033[H\033[2J");
        if (as_json) {
            char *text = json_dumps(report, JSON_INDENT(2));
            printf("%s\n", text);
            free(text);
        } else
            render(report, stdout);
        fflush(stdout);
        int settled = all_settled(report);
        json_decref(report);
        if (!watch || settled)
            break;
        sleep(2);
    } while (!interrupted);
    PQfinish(conn);
    return rc < 0 ? qpo_err_print(&err) : 0;
}
