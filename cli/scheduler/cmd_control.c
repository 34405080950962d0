/* qpo resume EXP | qpo cancel EXP | qpo results EXP [--format table|csv|json] */
#include <getopt.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cmd_util.h"
#include "commands.h"
#include "control.h"
#include "db.h"

typedef struct exp_args {
    const char *db;
    const char *format;
    long long id;
} exp_args;

/* Parses "CMD EXPERIMENT [--db C] [--format F]"; returns -1 after printing help (exit 0),
 * QPO_EXIT_USAGE on bad usage, else 0. */
static int parse_exp_args(int argc, char **argv, const char *usage, int with_format, exp_args *a) {
    static const struct option opts[] = {{"db", required_argument, NULL, 'd'},
                                         {"format", required_argument, NULL, 'f'},
                                         {"help", no_argument, NULL, 'h'},
                                         {0, 0, 0, 0}};
    int c;
    optind = 0;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        if (c == 'd')
            a->db = optarg;
        else if (c == 'f' && with_format)
            a->format = optarg;
        else if (c == 'h') {
            fputs(usage, stdout);
            return -1;
        } else {
            fputs(usage, stderr);
            return QPO_EXIT_USAGE;
        }
    }
    if (optind != argc - 1 || (a->id = qpo_sched_parse_id(argv[optind])) < 0) {
        fputs(usage, stderr);
        return QPO_EXIT_USAGE;
    }
    return 0;
}

int qpo_cmd_cancel(int argc, char **argv) {
    static const char usage[] =
        "usage: qpo cancel EXPERIMENT [--db CONNINFO]\n\n"
        "Cancels every unfinished job of the experiment (running ones are told to stop) and\n"
        "marks its unfinished runs and itself cancelled. Finished work is kept: 'qpo resume'\n"
        "carries on from there.\n";
    exp_args a = {0};
    int rc = parse_exp_args(argc, argv, usage, 0, &a);
    if (rc)
        return rc < 0 ? 0 : rc;
    qpo_err err = {0};
    PGconn *conn = qpo_sched_connect(a.db, "qpo cancel", &err);
    size_t n = 0;
    rc = conn ? qpo_experiment_cancel(conn, a.id, &n, &err) : -1;
    if (rc == 0)
        printf("experiment %lld cancelled (%zu jobs cancelled with their dependants)\n", a.id, n);
    PQfinish(conn);
    return rc < 0 ? qpo_err_print(&err) : 0;
}

int qpo_cmd_resume(int argc, char **argv) {
    static const char usage[] =
        "usage: qpo resume EXPERIMENT [--db CONNINFO]\n\n"
        "Gives the experiment's dead and failed jobs (and, after 'qpo cancel', its cancelled\n"
        "ones) fresh attempts; finished work is kept and the runs go on.\n";
    exp_args a = {0};
    int rc = parse_exp_args(argc, argv, usage, 0, &a);
    if (rc)
        return rc < 0 ? 0 : rc;
    qpo_err err = {0};
    PGconn *conn = qpo_sched_connect(a.db, "qpo resume", &err);
    size_t n = 0;
    rc = conn ? qpo_experiment_resume(conn, a.id, &n, &err) : -1;
    if (rc == 0)
        printf("experiment %lld resumed (%zu jobs given fresh attempts)\n", a.id, n);
    PQfinish(conn);
    return rc < 0 ? qpo_err_print(&err) : 0;
}

static const char *const result_cols[] = {"task",  "setting",  "target",  "source",    "loop",
                                          "seeds", "mean_acc", "std_acc", "items_min", "items_max"};
#define NCOLS 10

static void print_results(const PGresult *res, const char *format) {
    int n = PQntuples(res);
    if (!strcmp(format, "json")) {
        json_t *rows = json_array();
        for (int i = 0; i < n; i++) {
            json_t *row = json_object();
            for (int c = 0; c < NCOLS; c++) {
                const char *v = PQgetvalue(res, i, c);
                json_object_set_new(row, result_cols[c],
                                    c < 4                ? json_string(v)
                                    : (c == 6 || c == 7) ? json_real(strtod(v, NULL))
                                                         : json_integer(strtoll(v, NULL, 10)));
            }
            json_array_append_new(rows, row);
        }
        char *text = json_dumps(rows, JSON_INDENT(2));
        printf("%s\n", text);
        free(text);
        json_decref(rows);
        return;
    }
    if (!strcmp(format, "csv")) {
        for (int c = 0; c < NCOLS; c++)
            printf("%s%s", c ? "," : "", result_cols[c]);
        printf("\n");
        for (int i = 0; i < n; i++)
            for (int c = 0; c < NCOLS; c++)
                printf("%s%s%s", c ? "," : "", PQgetvalue(res, i, c), c == NCOLS - 1 ? "\n" : "");
        return;
    }
    printf("%-14s %-9s %-16s %-22s %4s %5s %16s %11s\n", "task", "setting", "target", "source",
           "loop", "seeds", "accuracy (%)", "test items");
    for (int i = 0; i < n; i++) {
        char acc[32], items[32];
        snprintf(acc, sizeof(acc), "%.2f +- %.2f", 100 * strtod(PQgetvalue(res, i, 6), NULL),
                 100 * strtod(PQgetvalue(res, i, 7), NULL));
        snprintf(items, sizeof(items), "%s", PQgetvalue(res, i, 8));
        if (strcmp(PQgetvalue(res, i, 8), PQgetvalue(res, i, 9)))
            snprintf(items, sizeof(items), "%s-%s", PQgetvalue(res, i, 8), PQgetvalue(res, i, 9));
        printf("%-14s %-9s %-16s %-22s %4s %5s %16s %11s\n", PQgetvalue(res, i, 0),
               PQgetvalue(res, i, 1), PQgetvalue(res, i, 2), PQgetvalue(res, i, 3),
               PQgetvalue(res, i, 4), PQgetvalue(res, i, 5), acc, items);
    }
    if (!n)
        printf("(no test scores yet)\n");
}

int qpo_cmd_results(int argc, char **argv) {
    static const char usage[] =
        "usage: qpo results EXPERIMENT [--format table|csv|json] [--db CONNINFO]\n\n"
        "Test accuracy per task, setting, target, source (qpo or baseline:NAME) and loop:\n"
        "mean and standard deviation over seeds (the SQL view qpo.results).\n";
    exp_args a = {.format = "table"};
    int rc = parse_exp_args(argc, argv, usage, 1, &a);
    if (rc)
        return rc < 0 ? 0 : rc;
    if (strcmp(a.format, "table") && strcmp(a.format, "csv") && strcmp(a.format, "json")) {
        fprintf(stderr, "qpo: error: --format: \"%s\" is not table, csv or json\n", a.format);
        return QPO_EXIT_USAGE;
    }
    qpo_err err = {0};
    PGconn *conn = qpo_sched_connect(a.db, "qpo results", &err);
    char id[24];
    snprintf(id, sizeof(id), "%lld", a.id);
    const char *p[] = {id};
    PGresult *exists = conn ? qpo_db_named(conn, "status_experiments", 1, p, &err) : NULL;
    if (exists && PQntuples(exists) == 0) {
        PQclear(exists);
        PQfinish(conn);
        qpo_err_set(&err, QPO_EXIT_USAGE, "experiment %s does not exist", id);
        qpo_err_hint(&err, "'qpo status' lists the experiments");
        return qpo_err_print(&err);
    }
    PGresult *res = exists ? qpo_db_named(conn, "results_of_experiment", 1, p, &err) : NULL;
    PQclear(exists);
    if (res)
        print_results(res, a.format);
    PQclear(res);
    PQfinish(conn);
    return res ? 0 : qpo_err_print(&err);
}
