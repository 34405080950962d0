/* The metrics registry and its endpoint in-process: the exposition text sample by sample
 * (labels escaped, histogram buckets cumulative, label sets bounded), linted by promtool when
 * installed, served over loopback HTTP on a port of its own, and its address checked. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "metrics.h"
#include "scrape.h"

static qpo_metric jobs = QPO_COUNTER("qpo_test_jobs_total", "Jobs.", "kind", NULL);
static qpo_metric depth = QPO_GAUGE("qpo_test_depth", "Depth.", "state", NULL);
static const double bounds[] = {0.1, 1, 10};
static qpo_metric took =
    QPO_HISTOGRAM("qpo_test_duration_seconds", "Took.", "target", "status", bounds);
static qpo_metric plain = QPO_COUNTER("qpo_test_plain_total", "No labels.", NULL, NULL);
static qpo_metric many = QPO_COUNTER("qpo_test_many_total", "Many label values.", "k", NULL);

static void test_exposition_text(void **state) {
    qpo_metric_add(&jobs, 1, "score", NULL);
    qpo_metric_add(&jobs, 2, "score", NULL);
    qpo_metric_add(&jobs, 1, "train", NULL);
    qpo_metric_set(&depth, 7, "queued", NULL);
    qpo_metric_set(&depth, 3, "queued", NULL);
    qpo_metric_observe(&took, 0.05, "sim \"a\"\\b\n", "ok");
    qpo_metric_observe(&took, 0.5, "sim \"a\"\\b\n", "ok");
    qpo_metric_observe(&took, 50, "sim \"a\"\\b\n", "ok");
    qpo_metric_add(&plain, 1.5, NULL, NULL);
    char *text = qpo_metrics_render();
    assert_non_null(strstr(text, "# HELP qpo_test_jobs_total Jobs.\n"
                                 "# TYPE qpo_test_jobs_total counter\n"
                                 "qpo_test_jobs_total{kind=\"score\"} 3\n"
                                 "qpo_test_jobs_total{kind=\"train\"} 1\n"));
    assert_true(sample(text, "qpo_test_depth{state=\"queued\"}") == 3);
    /* Cumulative buckets, the label value escaped as the format says. */
    const char *series = "qpo_test_duration_seconds_bucket{target=\"sim \\\"a\\\"\\\\b\\n\","
                         "status=\"ok\",le=\"%s\"}";
    const char *les[] = {"0.1", "1", "10", "+Inf"};
    const double want[] = {1, 2, 2, 3};
    for (int i = 0; i < 4; i++) {
        char s[256];
        snprintf(s, sizeof s, series, les[i]);
        assert_true(sample(text, s) == want[i]);
    }
    assert_true(sample(text, "qpo_test_duration_seconds_count{target=\"sim \\\"a\\\"\\\\b\\n\","
                             "status=\"ok\"}") == 3);
    assert_true(sample(text, "qpo_test_plain_total") == 1.5);
    assert_true(promtool_ok(text));
    assert_true(qpo_metric_value(&jobs, "score", NULL) == 3);
    assert_true(qpo_metric_value(&took, "sim \"a\"\\b\n", "ok") == 3);
    free(text);
}

static void test_label_sets_are_bounded(void **state) {
    for (int i = 0; i < QPO_METRIC_MAX_SERIES + 10; i++) {
        char k[16];
        snprintf(k, sizeof k, "k%d", i);
        qpo_metric_add(&many, 1, k, NULL);
    }
    char *text = qpo_metrics_render();
    assert_true(sample(text, "qpo_test_many_total{k=\"k0\"}") == 1);
    assert_true(sample(text, "qpo_test_many_total{k=\"k62\"}") == 1);
    /* the 64th set is "other" itself, taking every later one */
    assert_true(sample(text, "qpo_test_many_total{k=\"k63\"}") == -1);
    assert_true(sample(text, "qpo_test_many_total{k=\"other\"}") == 11);
    free(text);
}

static void collect(void *arg) {
    int *calls = arg;
    (*calls)++;
    qpo_metric_set(&depth, *calls, "scraped", NULL);
}

static void test_served_over_http(void **state) {
    qpo_err err = {0};
    assert_int_equal(qpo_metrics_listen("nonsense:port", &err), -1);
    assert_int_equal(err.code, QPO_EXIT_USAGE);
    assert_non_null(strstr(err.msg, "--metrics-listen"));
    int calls = 0;
    qpo_metrics_set_collector(collect, &calls);
    assert_int_equal(qpo_metrics_listen("127.0.0.1:0", &err), 0);
    int port = qpo_metrics_port();
    assert_true(port > 0);
    /* a second listener in one process is refused */
    assert_int_equal(qpo_metrics_listen("127.0.0.1:0", &err), -1);
    long status;
    char *body = http_get(port, "/metrics", &status, 5);
    assert_non_null(body);
    assert_int_equal(status, 200);
    assert_true(sample(body, "qpo_test_depth{state=\"scraped\"}") == 1);
    assert_true(promtool_ok(body));
    free(body);
    body = http_get(port, "/metrics", &status, 5);
    assert_true(sample(body, "qpo_test_depth{state=\"scraped\"}") == 2); /* read per scrape */
    free(body);
    body = http_get(port, "/elsewhere", &status, 5);
    assert_int_equal(status, 404);
    free(body);
    qpo_metrics_stop();
    qpo_metrics_set_collector(NULL, NULL);
    assert_int_equal(qpo_metrics_port(), 0);
    assert_null(http_get(port, "/metrics", &status, 0));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_exposition_text),
        cmocka_unit_test(test_label_sets_are_bounded),
        cmocka_unit_test(test_served_over_http),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
