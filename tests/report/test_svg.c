/* The SVG chart writer of `qpo report`: nice ticks, tick labels, escaping of every string,
 * coordinates inside the plot, and lines broken at missing values. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "svg.h"

static char *render(void (*fn)(FILE *, void *), void *arg) {
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    assert_non_null(f);
    fn(f, arg);
    fclose(f);
    return buf;
}

static int count(const char *hay, const char *needle) {
    int n = 0;
    for (const char *p = hay; (p = strstr(p, needle)); p += strlen(needle))
        n++;
    return n;
}

static void test_ticks_are_nice_and_cover_the_range(void **state) {
    (void)state;
    double t[32], step;
    int n = qpo_svg_ticks(0.43, 0.78, 5, t, 32, &step);
    assert_true(fabs(step - 0.1) < 1e-12);
    assert_int_equal(n, 5); /* 0.4 .. 0.8 */
    assert_true(fabs(t[0] - 0.4) < 1e-12 && fabs(t[n - 1] - 0.8) < 1e-12);
    n = qpo_svg_ticks(0, 1234, 5, t, 32, &step);
    assert_true(step == 200 || step == 500);
    assert_true(t[0] <= 0 && t[n - 1] >= 1234);
    /* A flat series (one seed, one value) still gets an axis around it. */
    n = qpo_svg_ticks(0.5, 0.5, 5, t, 32, &step);
    assert_true(n >= 2 && t[0] < 0.5 && t[n - 1] > 0.5);
    /* Reversed or non-finite bounds do not loop or return nothing. */
    assert_true(qpo_svg_ticks(3, -3, 5, t, 32, &step) >= 2);
    assert_true(qpo_svg_ticks(NAN, INFINITY, 5, t, 32, &step) >= 2);
    /* Zero prints as 0, never -0. */
    n = qpo_svg_ticks(-1, 1, 4, t, 32, &step);
    for (int i = 0; i < n; i++)
        assert_false(signbit(t[i]) && t[i] == 0);
}

static void test_tick_labels_have_the_step_precision(void **state) {
    (void)state;
    char b[32];
    qpo_svg_tick_label(0.25, 0.05, b, sizeof b);
    assert_string_equal(b, "0.25");
    qpo_svg_tick_label(0.3, 0.1, b, sizeof b);
    assert_string_equal(b, "0.3");
    qpo_svg_tick_label(400, 200, b, sizeof b);
    assert_string_equal(b, "400");
    qpo_svg_tick_label(2e6, 1e6, b, sizeof b);
    assert_string_equal(b, "2e+06");
}

static void escape_fn(FILE *f, void *arg) {
    qpo_html_escape(f, arg);
}

static void test_every_markup_character_is_escaped(void **state) {
    (void)state;
    char *s = render(escape_fn, "<script>alert(\"x\" & 'y')</script>");
    assert_string_equal(s, "&lt;script&gt;alert(&quot;x&quot; &amp; &#39;y&#39;)&lt;/script&gt;");
    free(s);
    s = render(escape_fn, NULL);
    assert_string_equal(s, "");
    free(s);
}

static void chart_fn(FILE *f, void *arg) {
    (void)arg;
    qpo_chart c;
    qpo_chart_begin(&c, f, 600, 300, "Acc <by> loop", "loop", "a&b", 1, 3, 0.4, 0.8, 1);
    double x[] = {1, 2, 3}, y[] = {0.5, NAN, 0.7}, e[] = {0.05, 0, 0};
    qpo_chart_line(&c, x, y, 3, "#123456", 2, 0);
    qpo_chart_points(&c, x, y, e, 3, "#123456", 1, "pt");
    qpo_chart_hline(&c, 0.6, "#654321", "baseline:<manual>");
    qpo_chart_legend(&c, 0, "#123456", "qpo & co");
    /* The mapping puts the range's ends on the plot area's edges. */
    assert_true(fabs(qpo_chart_x(&c, c.x0) - c.left) < 1e-9);
    assert_true(fabs(qpo_chart_y(&c, c.y1) - c.top) < 1e-9);
    assert_true(c.x0 < 1 && c.x1 > 3); /* whole loops with half a step of room */
    qpo_chart_end(&c);
}

static void test_chart_escapes_text_and_breaks_lines_at_gaps(void **state) {
    (void)state;
    char *s = render(chart_fn, NULL);
    assert_non_null(strstr(s, "<svg xmlns=\"http://www.w3.org/2000/svg\""));
    assert_non_null(strstr(s, "Acc &lt;by&gt; loop"));
    assert_non_null(strstr(s, "baseline:&lt;manual&gt;"));
    assert_non_null(strstr(s, "qpo &amp; co"));
    assert_null(strstr(s, "<manual>"));
    assert_int_equal(count(s, "class=\"series\""), 2); /* NaN split the line in two */
    assert_int_equal(count(s, "<circle class=\"pt\""), 2);
    assert_int_equal(count(s, "class=\"errbar\""), 1);
    assert_non_null(strstr(s, ">0.5</text>"));
    assert_non_null(strstr(s, ">0.7</text>"));
    assert_int_equal(count(s, "<svg"), 1);
    assert_int_equal(count(s, "</svg>"), 1);
    free(s);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ticks_are_nice_and_cover_the_range),
        cmocka_unit_test(test_tick_labels_have_the_step_precision),
        cmocka_unit_test(test_every_markup_character_is_escaped),
        cmocka_unit_test(test_chart_escapes_text_and_breaks_lines_at_gaps),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
