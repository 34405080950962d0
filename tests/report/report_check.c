/* See report_check.h. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "pgtest.h"
#include "report_check.h"
#include "trainer_fixture.h"

static char *slurp(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f)
        fail_msg("cannot read %s", path);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *s = malloc((size_t)n + 1);
    assert_int_equal(fread(s, 1, (size_t)n, f), (size_t)n);
    s[n] = '\0';
    fclose(f);
    return s;
}

static int count(const char *hay, const char *needle) {
    int n = 0;
    for (const char *p = hay; (p = strstr(p, needle)); p += strlen(needle))
        n++;
    return n;
}

static int qpo_report(const char *conninfo, const char *exp, const char *out) {
    char cmd[4096];
    snprintf(cmd, sizeof cmd, "'%s' report %s --out '%s' --db '%s' > /dev/null", qpo_test_binary(),
             exp, out, conninfo);
    int rc = system(cmd);
    return WIFEXITED(rc) ? WEXITSTATUS(rc) : 128;
}

static void check_errors(const char *conninfo, const char *exp, const char *work) {
    char out[1024], file[1100];
    snprintf(out, sizeof out, "%s/report-err", work);
    assert_int_equal(qpo_report(conninfo, "999", out), 2); /* unknown experiment */
    snprintf(file, sizeof file, "%s/a-file", work);
    FILE *f = fopen(file, "w");
    fclose(f);
    assert_int_equal(qpo_report(conninfo, exp, file), 2); /* --out is a file */
    snprintf(out, sizeof out, "%s/readonly", work);
    mkdir(out, 0555);
    if (access(out, W_OK) != 0) /* root writes anywhere: then this check cannot apply */
        assert_int_equal(qpo_report(conninfo, exp, out), 2);
}

/* The page and the CSV say what the database says. */
static void check_files(PGconn *conn, long long exp, const char *out) {
    char path[1100], sql[256];
    snprintf(path, sizeof path, "%s/index.html", out);
    char *html = slurp(path);
    assert_null(strstr(html, "<script"));
    assert_null(strstr(html, " src=")); /* self-contained: nothing loaded from elsewhere */
    assert_null(strstr(html, " href="));
    assert_int_equal(count(html, "<svg"), 4);
    assert_true(count(html, "class=\"pt-qpo\"") >= 2); /* two loops of qpo accuracy */
    snprintf(sql, sizeof sql,
             "SELECT to_char(mean_acc, 'FM0.0000') FROM qpo.results WHERE experiment_id = %lld "
             "AND source = 'qpo' AND loop = 2",
             exp);
    char *acc = db_str(conn, sql), needle[64];
    snprintf(needle, sizeof needle, "<td class=\"acc\">%s</td>", acc);
    assert_non_null(strstr(html, needle));
    free(acc);
    free(html);
    snprintf(path, sizeof path, "%s/results.csv", out);
    char *csv = slurp(path);
    snprintf(sql, sizeof sql, "SELECT count(*) + 1 FROM qpo.results WHERE experiment_id = %lld",
             exp);
    assert_int_equal(count(csv, "\n"), db_ll(conn, sql));
    assert_true(strncmp(csv, "task,setting,target,source,loop,", 32) == 0);
    free(csv);
}

static const char *artifact_dir(void) {
#ifdef QPO_TEST_ARTIFACTS
    return QPO_TEST_ARTIFACTS;
#else
    return ".";
#endif
}

/* Chromium's view of the page: the DOM after layout, and a screenshot kept as an artifact. */
static void check_in_chromium(PGconn *conn, long long exp, const char *out) {
    if (system("command -v chromium > /dev/null 2>&1") != 0) {
        fprintf(stderr, "skipped the browser check: no `chromium` on PATH (apt-get install "
                        "chromium; qpo.sh installs it)\n");
        return;
    }
    char png[1100], dom[1100], cmd[4096];
    mkdir(artifact_dir(), 0777);
    snprintf(png, sizeof png, "%s/report.png", artifact_dir());
    snprintf(dom, sizeof dom, "%s/report-dom.html", out);
    unlink(png);
    static const char flags[] = "--headless --no-sandbox --disable-gpu --hide-scrollbars "
                                "--no-first-run --disable-dev-shm-usage --window-size=1100,1900";
    snprintf(cmd, sizeof cmd,
             "chromium %s --screenshot='%s' 'file://%s/index.html' "
             "> /dev/null 2>&1",
             flags, png, out);
    assert_int_equal(system(cmd), 0);
    snprintf(cmd, sizeof cmd, "chromium %s --dump-dom 'file://%s/index.html' > '%s' 2>/dev/null",
             flags, out, dom);
    assert_int_equal(system(cmd), 0);
    struct stat st;
    assert_int_equal(stat(png, &st), 0);
    assert_true(st.st_size > 20000); /* a drawn page, not a blank one */
    char *d = slurp(dom);
    assert_int_equal(count(d, "<svg"), 4);
    assert_true(count(d, "class=\"series\"") >= 3); /* accuracy, rewards, loss lines */
    assert_true(count(d, "<circle") >= 10);
    char sql[256];
    snprintf(sql, sizeof sql,
             "SELECT to_char(mean_acc, 'FM0.0000') FROM qpo.results WHERE experiment_id = %lld "
             "AND source = 'qpo' AND loop = 1",
             exp);
    char *acc = db_str(conn, sql);
    assert_non_null(strstr(d, acc));
    free(acc);
    free(d);
    fprintf(stderr, "report screenshot: %s\n", png);
}

void qpo_report_check(PGconn *conn, const char *conninfo, long long experiment,
                      const char *work_dir) {
    char out[1024], exp[24];
    snprintf(out, sizeof out, "%s/report", work_dir);
    snprintf(exp, sizeof exp, "%lld", experiment);
    check_errors(conninfo, exp, work_dir);
    assert_int_equal(qpo_report(conninfo, exp, out), 0);
    check_files(conn, experiment, out);
    check_in_chromium(conn, experiment, out);
}
