#ifndef QPO_TEST_HTTPD_H
#define QPO_TEST_HTTPD_H

/* A loopback HTTP server on its own thread that serves a data folder with faults chosen by
 * the first path segment: /ok/PATH the file, /corrupt/PATH the file with its first byte
 * changed, /cut/PATH half the file under the whole file's Content-Length and then a closed
 * connection, /stall/PATH half the file and then nothing until the client goes, anything
 * missing a 404. One request per connection, as `qpo data fetch`
 * makes them. */

typedef struct test_httpd test_httpd;

test_httpd *test_httpd_start(const char *root);
/* http://127.0.0.1:PORT (static storage per server). */
const char *test_httpd_url(const test_httpd *h);
/* Requests answered so far. */
int test_httpd_requests(test_httpd *h);
void test_httpd_stop(test_httpd *h);

#endif
