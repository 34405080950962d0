#ifndef QPO_TEST_REPORT_CHECK_H
#define QPO_TEST_REPORT_CHECK_H

/* `qpo report` on a finished experiment (the trainer e2e's): its errors, index.html and
 * results.csv against the database, then the page in headless Chromium (--dump-dom: the plots
 * are drawn and show the database's numbers; --screenshot: kept under the build's
 * Testing/report/ and printed). Without `chromium` on PATH the browser half is skipped with a
 * message; CI installs it (qpo.sh). */

#include <libpq-fe.h>

void qpo_report_check(PGconn *conn, const char *conninfo, long long experiment,
                      const char *work_dir);

#endif
