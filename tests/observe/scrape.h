#ifndef QPO_TEST_SCRAPE_H
#define QPO_TEST_SCRAPE_H

/* Scraping a qpo process's /metrics over loopback HTTP, reading samples back, and checking the
 * text with Prometheus' own linter when it is installed. */

#include <stdbool.h>

/* A loopback port free right now (bound, read, closed). */
int free_port(void);
/* GET http://127.0.0.1:PORT/PATH; the body (malloc'd), *status the HTTP status (0: none). Polls
 * up to timeout_s (scaled: qpo_test_seconds) while the server is not yet listening. */
char *http_get(int port, const char *path, long *status, double timeout_s);
/* The value of the sample `series` (name with its labels, exactly as printed), or -1 when the
 * text has no such line. */
double sample(const char *text, const char *series);
/* `promtool check metrics` on text: true when it passes or promtool is absent (said on
 * stderr once); false, with its complaint printed, when it fails. */
bool promtool_ok(const char *text);

#endif
