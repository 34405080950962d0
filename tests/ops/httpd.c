/* The fault-injecting loopback server of test_data_fetch: see httpd.h. */
#include "httpd.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define STALL_MAX_MS 20000

struct test_httpd {
    int fd;
    char root[512], url[64];
    pthread_t thread;
    atomic_int stop, requests;
};

static void send_all(int fd, const char *p, size_t n) {
    while (n > 0) {
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
        if (w <= 0)
            return;
        p += w;
        n -= (size_t)w;
    }
}

static char *slurp(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    long len = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = malloc((size_t)len + 1);
    *n = buf ? fread(buf, 1, (size_t)len, f) : 0;
    fclose(f);
    return buf;
}

static void answer(test_httpd *h, int fd, const char *target) {
    char mode[16] = "", path[1024], head[256];
    const char *slash = strchr(target + 1, '/');
    size_t n = 0;
    char *body = NULL;
    if (slash && (size_t)(slash - target - 1) < sizeof(mode) && !strstr(target, "..")) {
        memcpy(mode, target + 1, (size_t)(slash - target - 1));
        snprintf(path, sizeof(path), "%s%s", h->root, slash);
        body = slurp(path, &n);
    }
    bool known = !strcmp(mode, "ok") || !strcmp(mode, "corrupt") || !strcmp(mode, "cut") ||
                 !strcmp(mode, "stall");
    if (!body || !known || n == 0) {
        const char *nf = "HTTP/1.1 404 Not Found\r\nContent-Length: 10\r\nConnection: close\r\n"
                         "\r\nnot found\n";
        send_all(fd, nf, strlen(nf));
        free(body);
        return;
    }
    if (!strcmp(mode, "corrupt"))
        body[0] ^= 1;
    int len = snprintf(head, sizeof(head),
                       "HTTP/1.1 200 OK\r\nContent-Length: %zu\r\nConnection: close\r\n\r\n", n);
    send_all(fd, head, (size_t)len);
    bool partial = !strcmp(mode, "cut") || !strcmp(mode, "stall");
    send_all(fd, body, partial ? n / 2 : n);
    free(body);
    if (!strcmp(mode, "stall")) {
        /* Hold the connection open until the client goes (or STALL_MAX_MS passes). */
        struct pollfd p = {fd, POLLIN, 0};
        char c;
        while (!atomic_load(&h->stop) && poll(&p, 1, STALL_MAX_MS) == 1 && recv(fd, &c, 1, 0) > 0)
            ;
    }
}

static void serve_one(test_httpd *h, int fd) {
    char req[4096];
    size_t got = 0;
    while (got < sizeof(req) - 1) {
        ssize_t r = recv(fd, req + got, sizeof(req) - 1 - got, 0);
        if (r <= 0)
            break;
        got += (size_t)r;
        req[got] = '\0';
        if (strstr(req, "\r\n\r\n"))
            break;
    }
    req[got] = '\0';
    char method[8], target[2048];
    if (sscanf(req, "%7s %2047s", method, target) == 2) {
        atomic_fetch_add(&h->requests, 1);
        answer(h, fd, target);
    }
    close(fd);
}

static void *loop(void *arg) {
    test_httpd *h = arg;
    while (!atomic_load(&h->stop)) {
        struct pollfd p = {h->fd, POLLIN, 0};
        if (poll(&p, 1, 100) == 1) {
            int c = accept(h->fd, NULL, NULL);
            if (c >= 0)
                serve_one(h, c);
        }
    }
    return NULL;
}

test_httpd *test_httpd_start(const char *root) {
    test_httpd *h = calloc(1, sizeof(*h));
    snprintf(h->root, sizeof(h->root), "%s", root);
    h->fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t alen = sizeof(a);
    if (h->fd < 0 || bind(h->fd, (struct sockaddr *)&a, sizeof(a)) < 0 || listen(h->fd, 16) < 0 ||
        getsockname(h->fd, (struct sockaddr *)&a, &alen) < 0) {
        perror("test_httpd_start");
        abort();
    }
    snprintf(h->url, sizeof(h->url), "http://127.0.0.1:%d", ntohs(a.sin_port));
    pthread_create(&h->thread, NULL, loop, h);
    return h;
}

const char *test_httpd_url(const test_httpd *h) {
    return h->url;
}

int test_httpd_requests(test_httpd *h) {
    return atomic_load(&h->requests);
}

void test_httpd_stop(test_httpd *h) {
    atomic_store(&h->stop, 1);
    pthread_join(h->thread, NULL);
    close(h->fd);
    free(h);
}
