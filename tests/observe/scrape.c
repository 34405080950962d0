#include "scrape.h"

#include <arpa/inet.h>
#include <curl/curl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "pgtest.h"

int free_port(void) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof a;
    if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof a) ||
        getsockname(fd, (struct sockaddr *)&a, &len)) {
        if (fd >= 0)
            close(fd);
        return -1;
    }
    close(fd);
    return ntohs(a.sin_port);
}

typedef struct buf {
    char *data;
    size_t len;
} buf;

static size_t on_body(char *p, size_t size, size_t n, void *arg) {
    buf *b = arg;
    char *grown = realloc(b->data, b->len + size * n + 1);
    if (!grown)
        return 0;
    memcpy(grown + b->len, p, size * n);
    b->len += size * n;
    grown[b->len] = '\0';
    b->data = grown;
    return size * n;
}

char *http_get(int port, const char *path, long *status, double timeout_s) {
    char url[128];
    snprintf(url, sizeof url, "http://127.0.0.1:%d%s", port, path);
    *status = 0;
    double end = qpo_test_deadline(timeout_s);
    for (bool first = true; first || qpo_test_before(end); first = false) {
        buf b = {calloc(1, 1), 0};
        CURL *c = curl_easy_init();
        curl_easy_setopt(c, CURLOPT_URL, url);
        curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
        curl_easy_setopt(c, CURLOPT_WRITEDATA, &b);
        curl_easy_setopt(c, CURLOPT_TIMEOUT, (long)qpo_test_seconds(10));
        CURLcode rc = curl_easy_perform(c);
        if (rc == CURLE_OK)
            curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, status);
        curl_easy_cleanup(c);
        if (rc == CURLE_OK)
            return b.data;
        free(b.data);
        usleep(50000);
    }
    return NULL;
}

double sample(const char *text, const char *series) {
    size_t n = strlen(series);
    for (const char *p = text; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : NULL)
        if (!strncmp(p, series, n) && p[n] == ' ')
            return strtod(p + n + 1, NULL);
    return -1;
}

bool promtool_ok(const char *text) {
    static int have = -1;
    if (have < 0) {
        have = system("command -v promtool >/dev/null 2>&1") == 0;
        if (!have)
            fprintf(stderr, "promtool not installed (Debian package prometheus): the exposition "
                            "text is not linted\n");
    }
    if (!have)
        return true;
    char path[] = "/tmp/qpo-metrics-XXXXXX";
    int fd = mkstemp(path);
    if (fd < 0)
        return false;
    FILE *f = fdopen(fd, "w");
    fputs(text, f);
    fclose(f);
    char cmd[256];
    snprintf(cmd, sizeof cmd, "promtool check metrics < %s 1>&2", path);
    int rc = system(cmd);
    unlink(path);
    if (rc != 0)
        fprintf(stderr, "promtool refused:\n%s\n", text);
    return rc == 0;
}
