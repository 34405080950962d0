/* qpo resume EXP | qpo cancel EXP */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cmd_util.h"
#include "commands.h"
#include "control.h"
#include "db.h"

typedef struct exp_args {
    const char *db;
    long long id;
} exp_args;

/* Parses "CMD EXPERIMENT [--db C]"; returns -1 after printing help (exit 0), QPO_EXIT_USAGE
 * on bad usage, else 0. */
static int parse_exp_args(int argc, char **argv, const char *usage, exp_args *a) {
    static const struct option opts[] = {
        {"db", required_argument, NULL, 'd'}, {"help", no_argument, NULL, 'h'}, {0, 0, 0, 0}};
    int c;
    optind = 0;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        if (c == 'd')
            a->db = optarg;
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
    int rc = parse_exp_args(argc, argv, usage, &a);
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
    int rc = parse_exp_args(argc, argv, usage, &a);
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
