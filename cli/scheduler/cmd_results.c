/* qpo results EXP [--format table|csv|json]: per loop, QPO, each baseline, the oracle, and QPO
 * minus the best baseline paired over the same test items with a 95% bootstrap interval. */
#include <getopt.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cmd_util.h"
#include "commands.h"
#include "db.h"
#include "results.h"

static const char usage[] =
    "usage: qpo results EXPERIMENT [--format table|csv|json] [--db CONNINFO]\n\n"
    "Test accuracy per task, setting, target, loop and source: qpo, the configured\n"
    "baselines (baseline:NAME), D_0's best single source prompt (baseline:best_single), the\n"
    "policy's most frequent test prompt on every item (baseline:policy_mode) and the per-query\n"
    "oracle over D_0's source prompts; mean and standard deviation over seeds (the SQL view\n"
    "qpo.results; n/a for one seed). QPO rows add QPO minus the loop's best baseline, paired\n"
    "over the same test items, with a 95% bootstrap interval (2000 resamples of each seed's\n"
    "items, averaged over seeds) and the number of distinct test prompts the policy wrote;\n"
    "--format json also gives QPO minus each baseline (vs_baselines).\n"
    "The weight of avg_acc in the runs' raw rewards (config reward.avg_acc_weight) is shown\n"
    "with them: the authors' recipe uses 10.\n";

static int parse_args(int argc, char **argv, const char **db, const char **format, long long *id) {
    static const struct option opts[] = {{"db", required_argument, NULL, 'd'},
                                         {"format", required_argument, NULL, 'f'},
                                         {"help", no_argument, NULL, 'h'},
                                         {0, 0, 0, 0}};
    int c;
    optind = 0;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        if (c == 'd')
            *db = optarg;
        else if (c == 'f')
            *format = optarg;
        else if (c == 'h') {
            fputs(usage, stdout);
            return -1;
        } else {
            fputs(usage, stderr);
            return QPO_EXIT_USAGE;
        }
    }
    if (optind != argc - 1 || (*id = qpo_sched_parse_id(argv[optind])) < 0) {
        fputs(usage, stderr);
        return QPO_EXIT_USAGE;
    }
    if (strcmp(*format, "table") && strcmp(*format, "csv") && strcmp(*format, "json")) {
        fprintf(stderr, "qpo: error: --format: \"%s\" is not table, csv or json\n", *format);
        return QPO_EXIT_USAGE;
    }
    return 0;
}

/* The runs' reward.avg_acc_weight, as text ("10", or "0, 10" if runs differ): a reader must
 * not take a run with another weight for the authors' reward. */
typedef struct weights {
    char text[128];
    json_t *list;
} weights;

static const char *weight_note(const weights *w) {
    static char note[256];
    snprintf(note, sizeof note,
             "raw reward: avg_acc weight %s (reward.avg_acc_weight; the "
             "authors' recipe uses 10)",
             w->text);
    return note;
}

static json_t *num(double v) {
    return isnan(v) ? json_null() : json_real(v);
}

/* One comparison, the same shape in vs_best_baseline and vs_baselines. */
static json_t *vs_json(const char *baseline, qpo_interval d, long paired_min) {
    return json_pack("{ss sf sf sf sI}", "baseline", baseline, "diff", d.mean, "ci_low", d.lo,
                     "ci_high", d.hi, "paired_items_min", (json_int_t)paired_min);
}

static json_t *vs_list(const qpo_result_row *x) {
    json_t *list = json_array();
    for (size_t k = 0; k < x->nvs_all; k++)
        json_array_append_new(
            list, vs_json(x->vs_all[k].baseline, x->vs_all[k].diff, x->vs_all[k].paired_min));
    return list;
}

static void print_json(const qpo_results *r, const weights *w) {
    json_t *rows = json_array(), *warnings = json_array();
    for (size_t i = 0; i < r->n; i++) {
        const qpo_result_row *x = &r->rows[i];
        json_t *row = json_pack(
            "{ss ss ss ss si si so so sI sI so}", "task", x->task, "setting", x->setting, "target",
            x->target, "source", x->source, "loop", x->loop, "seeds", x->seeds, "mean_acc",
            num(x->mean_acc), "std_acc", num(x->std_acc), "items_min", (json_int_t)x->items_min,
            "items_max", (json_int_t)x->items_max, "distinct_prompts", num(x->distinct_prompts));
        if (x->vs)
            json_object_set_new(row, "vs_best_baseline", vs_json(x->vs, x->diff, x->paired_min));
        if (x->nvs_all)
            json_object_set_new(row, "vs_baselines", vs_list(x));
        json_array_append_new(rows, row);
    }
    for (size_t i = 0; i < r->nwarnings; i++)
        json_array_append_new(warnings, json_string(r->warnings[i]));
    json_t *doc =
        json_pack("{so so s{si si ss} sO}", "rows", rows, "warnings", warnings, "bootstrap",
                  "resamples", QPO_BOOTSTRAP_RESAMPLES, "seed", QPO_BOOTSTRAP_SEED, "pooling",
                  "resample each seed's items, average over seeds", "avg_acc_weights", w->list);
    char *text = json_dumps(doc, JSON_INDENT(2));
    printf("%s\n", text);
    free(text);
    json_decref(doc);
}

static void csv_num(double v) {
    if (!isnan(v))
        printf("%.10g", v);
}

static void print_csv(const qpo_results *r, const weights *w) {
    printf("task,setting,target,source,loop,seeds,mean_acc,std_acc,items_min,items_max,"
           "distinct_prompts,vs,diff,ci_low,ci_high\n");
    for (size_t i = 0; i < r->n; i++) {
        const qpo_result_row *x = &r->rows[i];
        printf("%s,%s,%s,%s,%d,%d,", x->task, x->setting, x->target, x->source, x->loop, x->seeds);
        csv_num(x->mean_acc);
        putchar(',');
        csv_num(x->std_acc);
        printf(",%ld,%ld,", x->items_min, x->items_max);
        csv_num(x->distinct_prompts);
        if (x->vs)
            printf(",%s,%.10g,%.10g,%.10g\n", x->vs, x->diff.mean, x->diff.lo, x->diff.hi);
        else
            printf(",,,,\n");
    }
    fprintf(stderr, "qpo: %s\n", weight_note(w));
    for (size_t i = 0; i < r->nwarnings; i++)
        fprintf(stderr, "qpo: warning: %s\n", r->warnings[i]);
}

static void print_table(const qpo_results *r, const weights *w) {
    printf("%-14s %-9s %-12s %4s %-22s %5s %16s %10s %7s  %s\n", "task", "setting", "target",
           "loop", "source", "seeds", "accuracy (%)", "test items", "prompts",
           "QPO - best baseline (95% CI, points)");
    for (size_t i = 0; i < r->n; i++) {
        const qpo_result_row *x = &r->rows[i];
        char acc[32], items[32], prompts[16] = "", diff[160] = "";
        if (isnan(x->std_acc))
            snprintf(acc, sizeof acc, "%.2f +- n/a", 100 * x->mean_acc);
        else
            snprintf(acc, sizeof acc, "%.2f +- %.2f", 100 * x->mean_acc, 100 * x->std_acc);
        snprintf(items, sizeof items, "%ld", x->items_min);
        if (x->items_min != x->items_max)
            snprintf(items, sizeof items, "%ld-%ld", x->items_min, x->items_max);
        if (!isnan(x->distinct_prompts))
            snprintf(prompts, sizeof prompts, "%.4g", x->distinct_prompts);
        if (x->vs)
            snprintf(diff, sizeof diff, "%+.2f [%+.2f, %+.2f] vs %s", 100 * x->diff.mean,
                     100 * x->diff.lo, 100 * x->diff.hi, x->vs);
        printf("%-14s %-9s %-12s %4d %-22s %5d %16s %10s %7s  %s\n", x->task, x->setting, x->target,
               x->loop, x->source, x->seeds, acc, items, prompts, diff);
    }
    if (!r->n)
        printf("(no test scores yet)\n");
    printf("%s\n", weight_note(w));
    for (size_t i = 0; i < r->nwarnings; i++)
        printf("warning: %s\n", r->warnings[i]);
}

static int load_weights(PGconn *conn, const char *const *p, weights *w, qpo_err *err) {
    PGresult *res = qpo_db_named(conn, "results_reward_weights", 1, p, err);
    if (!res)
        return -1;
    w->list = json_array();
    for (int i = 0; i < PQntuples(res); i++) {
        size_t len = strlen(w->text);
        snprintf(w->text + len, sizeof w->text - len, "%s%s", i ? ", " : "", PQgetvalue(res, i, 0));
        json_array_append_new(w->list, json_real(atof(PQgetvalue(res, i, 0))));
    }
    if (!PQntuples(res))
        snprintf(w->text, sizeof w->text, "n/a (no runs)");
    PQclear(res);
    return 0;
}

static int load(PGconn *conn, long long id, qpo_results *out, weights *w, qpo_err *err) {
    char ids[24];
    snprintf(ids, sizeof(ids), "%lld", id);
    const char *p[] = {ids};
    PGresult *exists = qpo_db_named(conn, "status_experiments", 1, p, err);
    if (exists && PQntuples(exists) == 0) {
        PQclear(exists);
        qpo_err_set(err, QPO_EXIT_USAGE, "experiment %s does not exist", ids);
        qpo_err_hint(err, "'qpo status' lists the experiments");
        return -1;
    }
    PGresult *agg = exists ? qpo_db_named(conn, "results_of_experiment", 1, p, err) : NULL;
    PGresult *items = agg ? qpo_db_named(conn, "results_item_scores", 1, p, err) : NULL;
    PGresult *d0 = items ? qpo_db_named(conn, "results_d0_provenance", 1, p, err) : NULL;
    int rc = d0 ? qpo_results_build(agg, items, d0, out) : -1;
    if (rc == 0)
        rc = load_weights(conn, p, w, err);
    PQclear(exists);
    PQclear(agg);
    PQclear(items);
    PQclear(d0);
    return rc;
}

int qpo_cmd_results(int argc, char **argv) {
    const char *db = NULL, *format = "table";
    long long id = 0;
    int rc = parse_args(argc, argv, &db, &format, &id);
    if (rc)
        return rc < 0 ? 0 : rc;
    qpo_err err = {0};
    PGconn *conn = qpo_sched_connect(db, "qpo results", &err);
    qpo_results r = {0};
    weights w = {0};
    rc = conn ? load(conn, id, &r, &w, &err) : -1;
    PQfinish(conn);
    if (rc) {
        json_decref(w.list);
        qpo_results_free(&r);
        return qpo_err_print(&err);
    }
    if (!strcmp(format, "json"))
        print_json(&r, &w);
    else if (!strcmp(format, "csv"))
        print_csv(&r, &w);
    else
        print_table(&r, &w);
    json_decref(w.list);
    qpo_results_free(&r);
    return 0;
}
