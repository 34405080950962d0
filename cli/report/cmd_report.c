/* qpo report EXPERIMENT --out DIR: index.html (inline SVG, no script, no external asset) and
 * results.csv. Both are written to temporary names and renamed into place only when both are
 * complete, so a failure leaves DIR as it was. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cmd_util.h"
#include "commands.h"
#include "db.h"
#include "report.h"

static const char usage[] =
    "usage: qpo report EXPERIMENT --out DIR [--db CONNINFO]\n\n"
    "Writes DIR/index.html, a self-contained page (inline SVG plots, no JavaScript): test\n"
    "accuracy by loop with the spread over seeds against the baselines (and the oracle when\n"
    "scored), the raw-reward distribution of each loop's collected pairs and how many merge\n"
    "kept, the training loss curves (qpo.train_metrics), and target-LLM calls, cache hits and\n"
    "tokens per loop; and DIR/results.csv (qpo.results). DIR is created if missing.\n";

static int fetch(PGconn *conn, qpo_report_data *d, qpo_err *err) {
    char id[24];
    snprintf(id, sizeof id, "%lld", d->id);
    const char *p[] = {id};
    if (!(d->experiment = qpo_db_named(conn, "report_experiment", 1, p, err)))
        return -1;
    if (PQntuples(d->experiment) == 0) {
        qpo_err_set(err, QPO_EXIT_USAGE, "experiment %lld does not exist", d->id);
        qpo_err_hint(err, "'qpo status' lists the experiments");
        return -1;
    }
    d->name = PQgetvalue(d->experiment, 0, 0);
    d->state = PQgetvalue(d->experiment, 0, 1);
    d->avg_acc_weights = PQgetvalue(d->experiment, 0, 2);
    if (!(d->results = qpo_db_named(conn, "report_results", 1, p, err)) ||
        !(d->rewards = qpo_db_named(conn, "report_rewards", 1, p, err)) ||
        !(d->loss = qpo_db_named(conn, "report_loss", 1, p, err)) ||
        !(d->cost = qpo_db_named(conn, "report_cost", 1, p, err)))
        return -1;
    return 0;
}

static void data_free(qpo_report_data *d) {
    PQclear(d->experiment);
    PQclear(d->results);
    PQclear(d->rewards);
    PQclear(d->loss);
    PQclear(d->cost);
}

static int ensure_dir(const char *dir, qpo_err *err) {
    struct stat st;
    if (mkdir(dir, 0777) && errno != EEXIST)
        return qpo_err_set(err, QPO_EXIT_USAGE, "--out %s: cannot create the folder: %s", dir,
                           strerror(errno));
    if (stat(dir, &st) || !S_ISDIR(st.st_mode))
        return qpo_err_set(err, QPO_EXIT_USAGE, "--out %s: not a folder", dir);
    if (access(dir, W_OK))
        return qpo_err_set(err, QPO_EXIT_USAGE, "--out %s: not writable: %s", dir, strerror(errno));
    return 0;
}

typedef void (*writer_fn)(FILE *, const qpo_report_data *);

static int write_tmp(const char *dir, const char *name, writer_fn fn, const qpo_report_data *d,
                     char *tmp, size_t len, qpo_err *err) {
    snprintf(tmp, len, "%s/.%s.tmp-%ld", dir, name, (long)getpid());
    FILE *f = fopen(tmp, "w");
    if (!f)
        return qpo_err_set(err, QPO_EXIT_RUNTIME, "cannot write %s: %s", tmp, strerror(errno));
    fn(f, d);
    int bad = ferror(f);
    if (fclose(f) || bad) {
        unlink(tmp);
        return qpo_err_set(err, QPO_EXIT_RUNTIME, "cannot write %s (disk full?)", tmp);
    }
    return 0;
}

static int write_files(const char *dir, const qpo_report_data *d, qpo_err *err) {
    char th[4096], tc[4096], fh[4096], fc[4096];
    if (write_tmp(dir, "index.html", qpo_report_html, d, th, sizeof th, err))
        return -1;
    if (write_tmp(dir, "results.csv", qpo_report_csv, d, tc, sizeof tc, err)) {
        unlink(th);
        return -1;
    }
    snprintf(fh, sizeof fh, "%s/index.html", dir);
    snprintf(fc, sizeof fc, "%s/results.csv", dir);
    if (rename(tc, fc) || rename(th, fh)) {
        qpo_err_set(err, QPO_EXIT_RUNTIME, "cannot rename into %s: %s", dir, strerror(errno));
        unlink(th), unlink(tc);
        return -1;
    }
    return 0;
}

typedef struct report_args {
    const char *db, *out;
    long long id;
} report_args;

static int parse(int argc, char **argv, report_args *a) {
    static const struct option opts[] = {{"db", required_argument, NULL, 'd'},
                                         {"out", required_argument, NULL, 'o'},
                                         {"help", no_argument, NULL, 'h'},
                                         {0, 0, 0, 0}};
    int c;
    optind = 0;
    while ((c = getopt_long(argc, argv, "ho:", opts, NULL)) != -1) {
        if (c == 'd')
            a->db = optarg;
        else if (c == 'o')
            a->out = optarg;
        else if (c == 'h') {
            fputs(usage, stdout);
            return -1;
        } else {
            fputs(usage, stderr);
            return QPO_EXIT_USAGE;
        }
    }
    if (optind != argc - 1 || (a->id = qpo_sched_parse_id(argv[optind])) < 0 || !a->out) {
        fputs(usage, stderr);
        return QPO_EXIT_USAGE;
    }
    return 0;
}

int qpo_cmd_report(int argc, char **argv) {
    report_args a = {0};
    int rc = parse(argc, argv, &a);
    if (rc)
        return rc < 0 ? 0 : rc;
    qpo_err err = {0};
    qpo_report_data d = {.id = a.id};
    PGconn *conn = qpo_sched_connect(a.db, "qpo report", &err);
    rc = conn && fetch(conn, &d, &err) == 0 && ensure_dir(a.out, &err) == 0 &&
                 write_files(a.out, &d, &err) == 0
             ? 0
             : -1;
    data_free(&d);
    PQfinish(conn);
    if (rc)
        return qpo_err_print(&err);
    printf("%s/index.html\n", a.out);
    return 0;
}
