#ifndef QPO_METRICS_H
#define QPO_METRICS_H

/* Counters, gauges and histograms of one process, served in Prometheus' text exposition format
 * 0.0.4 by `--metrics-listen ADDR` (scheduler, worker, sim-llm).
 *
 * A family is a static qpo_metric defined where it is counted (one definition per name: two
 * would print the family twice, which Prometheus refuses); it joins the registry on first use,
 * so a process prints only what it does. Label sets stay bounded by construction (kinds,
 * states, targets, status classes); a family still files label sets past its 63rd
 * under the value "other". Updates take one process-wide mutex: they happen per job, per LLM
 * attempt or per training step, never in an inner loop. */

#include <stdbool.h>
#include <stddef.h>

#include "error.h"

typedef enum qpo_metric_type {
    QPO_METRIC_COUNTER,
    QPO_METRIC_GAUGE,
    QPO_METRIC_HISTOGRAM
} qpo_metric_type;

#define QPO_METRIC_MAX_LABELS 2
#define QPO_METRIC_MAX_SERIES 64

struct qpo_series;

typedef struct qpo_metric {
    const char *name; /* base units and _total for counters: qpo_llm_call_duration_seconds */
    const char *help;
    qpo_metric_type type;
    const char *labels[QPO_METRIC_MAX_LABELS]; /* label names; unused ones NULL */
    const double *buckets;                     /* histograms: upper bounds, ascending, no +Inf */
    size_t nbuckets;
    /* the registry's */
    struct qpo_series *series;
    size_t nseries;
    bool registered;
    struct qpo_metric *next;
} qpo_metric;

#define QPO_COUNTER(NAME, HELP, L1, L2)                                                            \
    {                                                                                              \
        .name = NAME, .help = HELP, .type = QPO_METRIC_COUNTER, .labels = { L1, L2 }               \
    }
#define QPO_GAUGE(NAME, HELP, L1, L2)                                                              \
    {                                                                                              \
        .name = NAME, .help = HELP, .type = QPO_METRIC_GAUGE, .labels = { L1, L2 }                 \
    }
#define QPO_HISTOGRAM(NAME, HELP, L1, L2, BUCKETS)                                                 \
    {                                                                                              \
        .name = NAME, .help = HELP, .type = QPO_METRIC_HISTOGRAM, .labels = {L1, L2},              \
        .buckets = BUCKETS, .nbuckets = sizeof(BUCKETS) / sizeof(BUCKETS[0])                       \
    }

/* Label values l1, l2 go with the family's label names in order; NULL where it has none. */
void qpo_metric_add(qpo_metric *m, double v, const char *l1, const char *l2); /* counter, gauge */
void qpo_metric_set(qpo_metric *m, double v, const char *l1, const char *l2); /* gauge */
void qpo_metric_observe(qpo_metric *m, double v, const char *l1, const char *l2); /* histogram */
/* The value of one series (a histogram's count); 0 when it has none. For tests. */
double qpo_metric_value(qpo_metric *m, const char *l1, const char *l2);

/* Called on the serving thread before each scrape renders, e.g. to read queue depths from
 * PostgreSQL: nothing is read while nobody scrapes, and a slow read delays the scrape only. */
typedef void (*qpo_metrics_collector)(void *arg);
void qpo_metrics_set_collector(qpo_metrics_collector fn, void *arg);

/* Every registered family in the exposition format (malloc'd), collectors run first. */
char *qpo_metrics_render(void);

/* Serves GET /metrics on ADDR ("HOST:PORT", ":PORT" for every interface, or "PORT") from a
 * thread with its own event loop, so a slow scrape never holds up the process's work.
 * QPO_EXIT_USAGE for a malformed ADDR, QPO_EXIT_RUNTIME when it cannot bind. One per
 * process. */
int qpo_metrics_listen(const char *addr, qpo_err *err);
/* The bound port (ADDR's port 0 picks one), 0 when not serving. */
int qpo_metrics_port(void);
/* Stops serving and joins the thread; collectors are not called afterwards. */
void qpo_metrics_stop(void);

#endif
