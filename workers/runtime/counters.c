/* The worker's Prometheus families (docs/observability.md). Each settled attempt lands in one
 * outcome: succeeded, failed (retried or dead), cancelled, or released at shutdown; claimed
 * minus those is what the worker holds. */
#include "metrics.h"
#include "worker_internal.h"

static qpo_metric claimed =
    QPO_COUNTER("qpo_jobs_claimed_total", "Job attempts this worker claimed.", "kind", NULL);
static qpo_metric succeeded =
    QPO_COUNTER("qpo_jobs_succeeded_total", "Job attempts this worker completed.", "kind", NULL);
static qpo_metric failed =
    QPO_COUNTER("qpo_jobs_failed_total",
                "Job attempts that failed on this worker (retried or dead).", "kind", NULL);
static qpo_metric retried =
    QPO_COUNTER("qpo_jobs_retried_total",
                "Failed job attempts given another attempt after a backoff.", "kind", NULL);
static qpo_metric dead = QPO_COUNTER("qpo_jobs_dead_total",
                                     "Failed job attempts that left their job dead.", "kind", NULL);
static qpo_metric expired = QPO_COUNTER(
    "qpo_leases_expired_total",
    "Expired leases (any worker's) this worker's reaper returned to the queue.", NULL, NULL);
static const double duration_buckets[] = {0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 60, 300, 1800, 7200};
static qpo_metric duration =
    QPO_HISTOGRAM("qpo_job_duration_seconds", "Wall time of job handlers on this worker.", "kind",
                  NULL, duration_buckets);
static qpo_metric held = QPO_GAUGE(
    "qpo_worker_jobs_held", "Jobs this worker holds: running and in its local queue.", NULL, NULL);

void counters_claimed(const item *it) {
    qpo_metric_add(&claimed, 1, it->c.kind, NULL);
}

void counters_succeeded(const item *it) {
    qpo_metric_add(&succeeded, 1, it->c.kind, NULL);
}

void counters_failed(const item *it, const char *new_state) {
    qpo_metric_add(&failed, 1, it->c.kind, NULL);
    qpo_metric_add(new_state[0] == 'd' ? &dead : &retried, 1, it->c.kind, NULL);
}

void counters_ran(const item *it, double seconds) {
    qpo_metric_observe(&duration, seconds, it->c.kind, NULL);
}

void counters_reaped(size_t n) {
    qpo_metric_add(&expired, (double)n, NULL, NULL);
}

void counters_held(const worker *w) {
    qpo_metric_set(&held, (double)w->nheld, NULL, NULL);
}
