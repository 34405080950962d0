/* index.html of `qpo report`: four inline SVG plots, each followed by the numbers it draws
 * (so a reader can copy them, and a test can check that the DOM says what the database
 * says). Every string from the database goes through qpo_html_escape. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "report.h"
#include "svg.h"

static const char *const palette[] = {"#1f77b4", "#d62728", "#2ca02c", "#9467bd",
                                      "#ff7f0e", "#8c564b", "#e377c2", "#17becf"};
#define NPAL (int)(sizeof palette / sizeof palette[0])

static double num(const PGresult *r, int i, int c) {
    return PQgetisnull(r, i, c) ? NAN : strtod(PQgetvalue(r, i, c), NULL);
}

static void esc(FILE *o, const char *s) {
    qpo_html_escape(o, s);
}

static const char style[] =
    "body{font-family:DejaVu Sans,Helvetica,Arial,sans-serif;margin:24px auto;max-width:1000px;"
    "color:#222}h1{font-size:22px}h2{font-size:17px;margin-top:28px;border-bottom:1px solid "
    "#ccc}table{border-collapse:collapse;font-size:13px;margin:8px 0}td,th{border:1px solid "
    "#ccc;padding:3px 8px;text-align:right}th{background:#f3f3f3}td.s{text-align:left}"
    "svg.chart{display:block;margin:8px 0;background:#fff}.grid{stroke:#e6e6e6}"
    ".frame{fill:none;stroke:#888}.tick{font-size:11px;fill:#555}.label{font-size:12px;"
    "fill:#333}.title{font-size:14px;font-weight:bold;fill:#222}.legend,.reflabel{font-size:"
    "11px;fill:#333}.value{font-size:10px;fill:#222}.errbar{stroke-width:1.5;fill:none}"
    "p.note{font-size:13px;color:#555}";

/* ---- accuracy by loop ---- */

static int is_qpo(const PGresult *r, int i) {
    return !strcmp(PQgetvalue(r, i, 3), "qpo");
}

static void accuracy_range(const PGresult *r, int *maxloop, double *lo, double *hi) {
    *maxloop = 1, *lo = 1, *hi = 0;
    for (int i = 0; i < PQntuples(r); i++) {
        int loop = atoi(PQgetvalue(r, i, 4));
        double m = num(r, i, 6), s = num(r, i, 7);
        s = isfinite(s) ? s : 0;
        *maxloop = loop > *maxloop ? loop : *maxloop;
        *lo = fmin(*lo, m - s), *hi = fmax(*hi, m + s);
    }
    *lo = fmax(0, *lo - 0.05), *hi = fmin(1, *hi + 0.05);
}

/* qpo: mean +- std over seeds per loop; another source: a reference line at its mean when it
 * was scored once (loop 0), its own dashed series when it was scored per loop. */
static void accuracy_plot(FILE *o, const PGresult *r) {
    int n = PQntuples(r), maxloop;
    double lo, hi;
    accuracy_range(r, &maxloop, &lo, &hi);
    qpo_chart c;
    qpo_chart_begin(&c, o, 960, 340, "Test accuracy by loop (mean and spread over seeds)", "loop",
                    "accuracy", 1, maxloop, lo, hi, 1);
    int legend = 0;
    for (int i = 0; i < n;) {
        int j = i;
        while (j < n && !strcmp(PQgetvalue(r, j, 3), PQgetvalue(r, i, 3)))
            j++;
        const char *colour = is_qpo(r, i) ? palette[0] : palette[1 + legend % (NPAL - 1)];
        double x[64], y[64], e[64];
        int k = 0;
        for (int t = i; t < j && k < 64; t++, k++) {
            x[k] = atoi(PQgetvalue(r, t, 4)), y[k] = num(r, t, 6), e[k] = num(r, t, 7);
            e[k] = isfinite(e[k]) ? e[k] : 0;
        }
        if (!is_qpo(r, i) && k == 1 && x[0] == 0) {
            qpo_chart_hline(&c, y[0], colour, PQgetvalue(r, i, 3));
        } else {
            qpo_chart_line(&c, x, y, k, colour, is_qpo(r, i) ? 2.5 : 1.5, !is_qpo(r, i));
            qpo_chart_points(&c, x, y, e, k, colour, is_qpo(r, i),
                             is_qpo(r, i) ? "pt-qpo" : "pt-baseline");
        }
        qpo_chart_legend(&c, legend++, colour, PQgetvalue(r, i, 3));
        i = j;
    }
    qpo_chart_end(&c);
}

static void results_table(FILE *o, const PGresult *r) {
    fputs("<table id=\"results\"><tr><th>task</th><th>setting</th><th>target</th><th>source</th>"
          "<th>loop</th><th>seeds</th><th>mean acc</th><th>std</th><th>items</th></tr>\n",
          o);
    for (int i = 0; i < PQntuples(r); i++) {
        fputs("<tr>", o);
        for (int c = 0; c < 4; c++)
            fputs("<td class=\"s\">", o), esc(o, PQgetvalue(r, i, c)), fputs("</td>", o);
        fprintf(o, "<td>%s</td><td>%s</td><td class=\"acc\">%.4f</td>", PQgetvalue(r, i, 4),
                PQgetvalue(r, i, 5), num(r, i, 6));
        if (PQgetisnull(r, i, 7) || atoi(PQgetvalue(r, i, 5)) < 2) /* no spread of one seed */
            fputs("<td>n/a</td>", o);
        else
            fprintf(o, "<td>%.4f</td>", num(r, i, 7));
        fprintf(o, "<td>%s</td></tr>\n", PQgetvalue(r, i, 9));
    }
    fputs("</table>\n", o);
}

/* ---- rewards of the collected pairs ---- */

static void rewards_plot(FILE *o, const PGresult *r) {
    int n = PQntuples(r);
    double lo = num(r, 0, 3), hi = num(r, 0, 4), w = (hi - lo) / 10, ymax = 1;
    for (int i = 0; i < n; i++)
        ymax = fmax(ymax, num(r, i, 2));
    if (!(w > 0))
        w = 1;
    qpo_chart c;
    qpo_chart_begin(&c, o, 960, 300,
                    "Raw reward of each loop's collected pairs (legend: pairs, kept by merge)",
                    "raw reward", "pairs", lo, lo + 10 * w, 0, ymax, 0);
    int legend = 0;
    for (int i = 0; i < n;) {
        int loop = atoi(PQgetvalue(r, i, 0)), j = i;
        double x[10], y[10];
        for (int b = 0; b < 10; b++)
            x[b] = lo + (b + 0.5) * w, y[b] = 0;
        for (; j < n && atoi(PQgetvalue(r, j, 0)) == loop; j++)
            y[atoi(PQgetvalue(r, j, 1)) % 10] = num(r, j, 2);
        const char *colour = palette[legend % NPAL];
        qpo_chart_line(&c, x, y, 10, colour, 2, 0);
        qpo_chart_points(&c, x, y, NULL, 10, colour, 0, "pt-reward");
        char name[96];
        snprintf(name, sizeof name, "loop %d: %s (%s kept)", loop, PQgetvalue(r, i, 5),
                 PQgetvalue(r, i, 6));
        qpo_chart_legend(&c, legend++, colour, name);
        i = j;
    }
    qpo_chart_end(&c);
}

static void rewards_table(FILE *o, const PGresult *r) {
    fputs("<table id=\"merge\"><tr><th>loop</th><th>pairs scored</th><th>kept by merge</th>"
          "</tr>\n",
          o);
    for (int i = 0; i < PQntuples(r); i++)
        if (i == 0 || strcmp(PQgetvalue(r, i, 0), PQgetvalue(r, i - 1, 0)))
            fprintf(o, "<tr><td>%s</td><td>%s</td><td>%s</td></tr>\n", PQgetvalue(r, i, 0),
                    PQgetvalue(r, i, 5), PQgetvalue(r, i, 6));
    fputs("</table>\n", o);
}

/* ---- loss curves ---- */

/* One line per (seed, loop), x = the epoch counted across loops so loops follow each other. */
static void loss_plot(FILE *o, const PGresult *r) {
    int n = PQntuples(r), maxloop = 1, maxep = 1;
    double ymin = INFINITY, ymax = -INFINITY;
    for (int i = 0; i < n; i++) {
        maxloop = fmax(maxloop, atoi(PQgetvalue(r, i, 1)));
        maxep = fmax(maxep, atoi(PQgetvalue(r, i, 2)));
        ymin = fmin(ymin, num(r, i, 3)), ymax = fmax(ymax, num(r, i, 3));
    }
    qpo_chart c; /* zoomed on the losses: the curve's shape is the point, not its distance to 0 */
    qpo_chart_begin(&c, o, 960, 300, "Training loss (mean per epoch)", "epoch (loops in order)",
                    "loss", 1, maxloop * maxep, ymin, ymax, 1);
    int legend = 0;
    for (int i = 0; i < n;) {
        int j = i, k = 0;
        double x[512], y[512];
        for (; j < n && !strcmp(PQgetvalue(r, j, 0), PQgetvalue(r, i, 0)) &&
               !strcmp(PQgetvalue(r, j, 1), PQgetvalue(r, i, 1));
             j++)
            if (k < 512) {
                x[k] = (atoi(PQgetvalue(r, j, 1)) - 1) * maxep + atoi(PQgetvalue(r, j, 2));
                y[k++] = num(r, j, 3);
            }
        const char *colour = palette[(atoi(PQgetvalue(r, i, 1)) - 1) % NPAL];
        qpo_chart_line(&c, x, y, k, colour, 1.8, atoi(PQgetvalue(r, i, 0)) % 2);
        qpo_chart_points(&c, x, y, NULL, k, colour, 0, "pt-loss");
        char name[64];
        snprintf(name, sizeof name, "seed %s, loop %s", PQgetvalue(r, i, 0), PQgetvalue(r, i, 1));
        if (legend < 12)
            qpo_chart_legend(&c, legend++, colour, name);
        i = j;
    }
    qpo_chart_end(&c);
}

/* ---- target-LLM use ---- */

static void cost_plot(FILE *o, const PGresult *r) {
    int n = PQntuples(r), maxloop = 0;
    double ymax = 1;
    for (int i = 0; i < n; i++) {
        maxloop = fmax(maxloop, atoi(PQgetvalue(r, i, 0)));
        ymax = fmax(ymax, fmax(num(r, i, 1), num(r, i, 2)));
    }
    qpo_chart c;
    qpo_chart_begin(&c, o, 960, 300, "Target-LLM calls and cache hits per loop (0: D_0, baselines)",
                    "loop", "requests", 0, maxloop, 0, ymax, 1);
    for (int i = 0; i < n; i++) {
        double x = atoi(PQgetvalue(r, i, 0));
        qpo_chart_bar(&c, x - 0.17, 0.32, num(r, i, 1), palette[0], "bar-calls");
        qpo_chart_bar(&c, x + 0.17, 0.32, num(r, i, 2), palette[2], "bar-hits");
    }
    qpo_chart_legend(&c, 0, palette[0], "HTTP calls");
    qpo_chart_legend(&c, 1, palette[2], "cache hits");
    qpo_chart_end(&c);
    fputs("<table id=\"cost\"><tr><th>loop</th><th>calls</th><th>cache hits</th><th>tokens</th>"
          "<th>errors</th></tr>\n",
          o);
    for (int i = 0; i < n; i++)
        fprintf(o, "<tr><td>%s</td><td>%s</td><td>%s</td><td>%s</td><td>%s</td></tr>\n",
                PQgetvalue(r, i, 0), PQgetvalue(r, i, 1), PQgetvalue(r, i, 2), PQgetvalue(r, i, 3),
                PQgetvalue(r, i, 4));
    fputs("</table>\n", o);
}

static void section(FILE *o, const char *title, const PGresult *r, const char *empty,
                    void (*draw)(FILE *, const PGresult *)) {
    fprintf(o, "<h2>%s</h2>\n", title);
    if (PQntuples(r) == 0)
        fprintf(o, "<p class=\"note\">%s</p>\n", empty);
    else
        draw(o, r);
}

static void results_section(FILE *o, const PGresult *r) {
    accuracy_plot(o, r);
    results_table(o, r);
}

static void rewards_section(FILE *o, const PGresult *r) {
    rewards_plot(o, r);
    rewards_table(o, r);
}

void qpo_report_html(FILE *o, const qpo_report_data *d) {
    fprintf(o,
            "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n<title>qpo "
            "experiment %lld: ",
            d->id);
    esc(o, d->name);
    fprintf(o, "</title>\n<style>%s</style></head><body>\n<h1>Experiment %lld: ", style, d->id);
    esc(o, d->name);
    fputs("</h1>\n<p class=\"note\">state: ", o);
    esc(o, d->state);
    fputs(". Accuracy is on each run's test sample; the spread is the standard deviation over "
          "seeds (n/a for one seed). Raw reward: avg_acc weight ",
          o);
    esc(o, d->avg_acc_weights);
    fputs(" (reward.avg_acc_weight; the authors' recipe uses 10).</p>\n", o);
    section(o, "Accuracy", d->results, "No test scores yet.", results_section);
    section(o, "Rewards of the collected pairs", d->rewards, "No collected pairs yet.",
            rewards_section);
    section(o, "Training loss", d->loss, "No training steps logged yet.", loss_plot);
    section(o, "Target-LLM use", d->cost, "No target-LLM calls yet.", cost_plot);
    fputs("</body></html>\n", o);
}

/* A CSV field: quoted when it holds a comma, quote or newline. */
static void csv_field(FILE *o, const char *s) {
    if (!strpbrk(s, ",\"\n\r")) {
        fputs(s, o);
        return;
    }
    fputc('"', o);
    for (; *s; s++) {
        if (*s == '"')
            fputc('"', o);
        fputc(*s, o);
    }
    fputc('"', o);
}

void qpo_report_csv(FILE *o, const qpo_report_data *d) {
    const PGresult *r = d->results;
    for (int c = 0; c < PQnfields(r); c++)
        fprintf(o, "%s%s", c ? "," : "", PQfname(r, c));
    fputc('\n', o);
    for (int i = 0; i < PQntuples(r); i++)
        for (int c = 0; c < PQnfields(r); c++) {
            if (c)
                fputc(',', o);
            csv_field(o, PQgetvalue(r, i, c));
            if (c == PQnfields(r) - 1)
                fputc('\n', o);
        }
}
