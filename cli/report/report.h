#ifndef QPO_REPORT_H
#define QPO_REPORT_H

/* The report page of one experiment (report_page.c): the query results the page draws, and
 * the writers of index.html and results.csv. */

#include <libpq-fe.h>
#include <stdio.h>

typedef struct qpo_report_data {
    long long id;
    const char *name, *state, *avg_acc_weights; /* the runs' reward.avg_acc_weight */
    PGresult *experiment, *results, *rewards, *loss, *cost;
} qpo_report_data;

/* The whole page: header, four plots with their numbers as tables. */
void qpo_report_html(FILE *out, const qpo_report_data *d);
/* qpo.results of the experiment as CSV (the columns of `qpo results --format csv`). */
void qpo_report_csv(FILE *out, const qpo_report_data *d);

#endif
