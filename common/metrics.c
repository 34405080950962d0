/* The metrics registry and its HTTP endpoint (metrics.h). One mutex guards every family: the
 * update rate is per job, per LLM attempt or per training step, so it never contends. */
#include "metrics.h"

#include <arpa/inet.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/thread.h>
#include <math.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "log.h"

typedef struct qpo_series {
    char *values[QPO_METRIC_MAX_LABELS];
    double value;      /* counter, gauge; a histogram's sum */
    double count;      /* histogram */
    double *in_bucket; /* histogram: observations per bucket, the last one past every bound */
} qpo_series;

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static qpo_metric *families;
static qpo_metrics_collector collector;
static void *collector_arg;

static size_t nlabels(const qpo_metric *m) {
    size_t n = 0;
    while (n < QPO_METRIC_MAX_LABELS && m->labels[n])
        n++;
    return n;
}

static bool same_values(const qpo_series *s, const char *const *v, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (strcmp(s->values[i], v[i] ? v[i] : ""))
            return false;
    return true;
}

/* The series of these label values, created on first use; under mu. A family full of label
 * sets files the rest under "other" so a bug upstream cannot grow a scrape without bound. */
static qpo_series *series_of(qpo_metric *m, const char *l1, const char *l2) {
    if (!m->registered) {
        m->registered = true;
        qpo_metric **link = &families;
        while (*link)
            link = &(*link)->next;
        *link = m;
    }
    size_t n = nlabels(m);
    const char *v[QPO_METRIC_MAX_LABELS] = {l1, l2};
    /* The last free slot is kept for "other". */
    for (bool other = false;; other = true) {
        for (size_t i = 0; i < m->nseries; i++)
            if (same_values(&m->series[i], v, n))
                return &m->series[i];
        if (other || m->nseries < QPO_METRIC_MAX_SERIES - 1)
            break;
        for (size_t i = 0; i < n; i++)
            v[i] = "other";
    }
    qpo_series *grown = realloc(m->series, (m->nseries + 1) * sizeof(*grown));
    if (!grown)
        return NULL;
    m->series = grown;
    qpo_series *s = &m->series[m->nseries];
    memset(s, 0, sizeof(*s));
    for (size_t i = 0; i < n; i++)
        s->values[i] = strdup(v[i] ? v[i] : "");
    if (m->type == QPO_METRIC_HISTOGRAM)
        s->in_bucket = calloc(m->nbuckets + 1, sizeof(double));
    if ((m->type == QPO_METRIC_HISTOGRAM && !s->in_bucket) || (n > 0 && !s->values[0]) ||
        (n > 1 && !s->values[1])) {
        for (size_t i = 0; i < n; i++)
            free(s->values[i]);
        free(s->in_bucket);
        return NULL;
    }
    m->nseries++;
    return s;
}

void qpo_metric_add(qpo_metric *m, double v, const char *l1, const char *l2) {
    pthread_mutex_lock(&mu);
    qpo_series *s = series_of(m, l1, l2);
    if (s)
        s->value += v;
    pthread_mutex_unlock(&mu);
}

void qpo_metric_set(qpo_metric *m, double v, const char *l1, const char *l2) {
    pthread_mutex_lock(&mu);
    qpo_series *s = series_of(m, l1, l2);
    if (s)
        s->value = v;
    pthread_mutex_unlock(&mu);
}

void qpo_metric_observe(qpo_metric *m, double v, const char *l1, const char *l2) {
    pthread_mutex_lock(&mu);
    qpo_series *s = series_of(m, l1, l2);
    if (s) {
        size_t b = 0;
        while (b < m->nbuckets && v > m->buckets[b])
            b++;
        s->in_bucket[b]++;
        s->count++;
        s->value += v;
    }
    pthread_mutex_unlock(&mu);
}

double qpo_metric_value(qpo_metric *m, const char *l1, const char *l2) {
    double v = 0;
    const char *want[QPO_METRIC_MAX_LABELS] = {l1, l2};
    pthread_mutex_lock(&mu);
    for (size_t i = 0; i < m->nseries; i++)
        if (same_values(&m->series[i], want, nlabels(m)))
            v = m->type == QPO_METRIC_HISTOGRAM ? m->series[i].count : m->series[i].value;
    pthread_mutex_unlock(&mu);
    return v;
}

void qpo_metrics_set_collector(qpo_metrics_collector fn, void *arg) {
    pthread_mutex_lock(&mu);
    collector = fn;
    collector_arg = arg;
    pthread_mutex_unlock(&mu);
}

/* ---- the exposition format ---- */

static void put_number(FILE *f, double v) {
    if (isnan(v))
        fputs("NaN", f);
    else if (isinf(v))
        fputs(v > 0 ? "+Inf" : "-Inf", f);
    else
        fprintf(f, "%.17g", v);
}

/* Label values escape backslash, double quote and newline; nothing else. */
static void put_value(FILE *f, const char *s) {
    for (; *s; s++) {
        if (*s == '\\' || *s == '"')
            fputc('\\', f), fputc(*s, f);
        else if (*s == '\n')
            fputs("\\n", f);
        else
            fputc(*s, f);
    }
}

/* name{labels[,le="x"]} for one sample; le NULL when the sample has none. */
static void put_sample(FILE *f, const qpo_metric *m, const char *suffix, const qpo_series *s,
                       const char *le) {
    fprintf(f, "%s%s", m->name, suffix);
    size_t n = nlabels(m);
    if (n == 0 && !le)
        return;
    fputc('{', f);
    for (size_t i = 0; i < n; i++) {
        fprintf(f, "%s%s=\"", i ? "," : "", m->labels[i]);
        put_value(f, s->values[i]);
        fputc('"', f);
    }
    if (le)
        fprintf(f, "%sle=\"%s\"", n ? "," : "", le);
    fputc('}', f);
}

static void put_histogram(FILE *f, const qpo_metric *m, const qpo_series *s) {
    double cumulative = 0;
    for (size_t b = 0; b <= m->nbuckets; b++) {
        char le[32];
        if (b < m->nbuckets)
            snprintf(le, sizeof le, "%g", m->buckets[b]);
        else
            snprintf(le, sizeof le, "+Inf");
        cumulative += s->in_bucket[b];
        put_sample(f, m, "_bucket", s, le);
        fputc(' ', f);
        put_number(f, cumulative);
        fputc('\n', f);
    }
    put_sample(f, m, "_sum", s, NULL);
    fputc(' ', f);
    put_number(f, s->value);
    fputc('\n', f);
    put_sample(f, m, "_count", s, NULL);
    fputc(' ', f);
    put_number(f, s->count);
    fputc('\n', f);
}

static void put_family(FILE *f, const qpo_metric *m) {
    static const char *types[] = {"counter", "gauge", "histogram"};
    fprintf(f, "# HELP %s %s\n# TYPE %s %s\n", m->name, m->help, m->name, types[m->type]);
    for (size_t i = 0; i < m->nseries; i++) {
        if (m->type == QPO_METRIC_HISTOGRAM) {
            put_histogram(f, m, &m->series[i]);
            continue;
        }
        put_sample(f, m, "", &m->series[i], NULL);
        fputc(' ', f);
        put_number(f, m->series[i].value);
        fputc('\n', f);
    }
}

char *qpo_metrics_render(void) {
    pthread_mutex_lock(&mu);
    qpo_metrics_collector fn = collector;
    void *arg = collector_arg;
    pthread_mutex_unlock(&mu);
    if (fn)
        fn(arg);
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    if (!f)
        return NULL;
    pthread_mutex_lock(&mu);
    for (const qpo_metric *m = families; m; m = m->next)
        put_family(f, m);
    pthread_mutex_unlock(&mu);
    fclose(f);
    return text;
}

/* ---- serving ---- */

static struct {
    struct event_base *base;
    struct evhttp *http;
    pthread_t thread;
    bool running;
    int port;
} srv;

static void on_request(struct evhttp_request *req, void *arg) {
    (void)arg;
    const char *path = evhttp_uri_get_path(evhttp_request_get_evhttp_uri(req));
    struct evbuffer *body = evbuffer_new();
    if (!body) {
        evhttp_send_error(req, 500, "out of memory");
        return;
    }
    if (!path || strcmp(path, "/metrics")) {
        evbuffer_add_printf(body, "qpo serves its metrics at /metrics\n");
        evhttp_send_reply(req, 404, "Not Found", body);
    } else if (evhttp_request_get_command(req) != EVHTTP_REQ_GET &&
               evhttp_request_get_command(req) != EVHTTP_REQ_HEAD) {
        evhttp_send_reply(req, 405, "Method Not Allowed", body);
    } else {
        char *text = qpo_metrics_render();
        if (text)
            evbuffer_add(body, text, strlen(text));
        free(text);
        evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type",
                          "text/plain; version=0.0.4; charset=utf-8");
        evhttp_send_reply(req, text ? 200 : 500, text ? "OK" : "Internal Server Error", body);
    }
    evbuffer_free(body);
}

static void *serve(void *arg) {
    (void)arg;
    event_base_dispatch(srv.base);
    return NULL;
}

/* "HOST:PORT", ":PORT" or "PORT"; [v6]:PORT too. */
static int parse_addr(const char *addr, char *host, size_t hlen, int *port, qpo_err *err) {
    const char *colon = strrchr(addr, ':');
    const char *p = colon ? colon + 1 : addr;
    char *end;
    long v = strtol(p, &end, 10);
    if (!*p || *end || v < 0 || v > 65535)
        return qpo_err_set(err, QPO_EXIT_USAGE,
                           "--metrics-listen: '%s' is not HOST:PORT, :PORT or PORT", addr);
    size_t n = colon ? (size_t)(colon - addr) : 0;
    if (n >= 2 && addr[0] == '[' && addr[n - 1] == ']')
        addr++, n -= 2;
    if (n >= hlen)
        return qpo_err_set(err, QPO_EXIT_USAGE, "--metrics-listen: host too long in '%s'", addr);
    snprintf(host, hlen, "%.*s", (int)n, addr);
    if (!host[0])
        snprintf(host, hlen, "0.0.0.0");
    *port = (int)v;
    return 0;
}

static int bound_port(struct evhttp_bound_socket *h) {
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    if (getsockname(evhttp_bound_socket_get_fd(h), (struct sockaddr *)&ss, &len) < 0)
        return 0;
    if (ss.ss_family == AF_INET6)
        return ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
    return ntohs(((struct sockaddr_in *)&ss)->sin_port);
}

static void free_server(void) {
    if (srv.http)
        evhttp_free(srv.http);
    if (srv.base)
        event_base_free(srv.base);
    memset(&srv, 0, sizeof srv);
}

int qpo_metrics_listen(const char *addr, qpo_err *err) {
    char host[256];
    int port = 0;
    if (parse_addr(addr, host, sizeof host, &port, err) < 0)
        return -1;
    if (srv.running)
        return qpo_err_set(err, QPO_EXIT_RUNTIME, "--metrics-listen: already serving");
    /* The loop is stopped from another thread (qpo_metrics_stop): libevent needs its locks. */
    if (evthread_use_pthreads() != 0)
        return qpo_err_set(err, QPO_EXIT_RUNTIME, "libevent without pthread support");
    srv.base = event_base_new();
    srv.http = srv.base ? evhttp_new(srv.base) : NULL;
    if (!srv.http) {
        free_server();
        return qpo_err_set(err, QPO_EXIT_RUNTIME, "--metrics-listen: cannot create the server");
    }
    evhttp_set_allowed_methods(srv.http, EVHTTP_REQ_GET | EVHTTP_REQ_HEAD);
    evhttp_set_gencb(srv.http, on_request, NULL);
    struct evhttp_bound_socket *h = evhttp_bind_socket_with_handle(srv.http, host, (uint16_t)port);
    if (!h) {
        free_server();
        qpo_err_set(err, QPO_EXIT_RUNTIME, "--metrics-listen: cannot listen on %s", addr);
        qpo_err_hint(err, "is the port in use, or the host not this machine's?");
        return -1;
    }
    srv.port = bound_port(h);
    if (pthread_create(&srv.thread, NULL, serve, NULL) != 0) {
        free_server();
        return qpo_err_set(err, QPO_EXIT_RUNTIME, "--metrics-listen: cannot start its thread");
    }
    srv.running = true;
    qpo_info("metrics: serving http://%s:%d/metrics", host, srv.port);
    return 0;
}

int qpo_metrics_port(void) {
    return srv.running ? srv.port : 0;
}

void qpo_metrics_stop(void) {
    if (!srv.running)
        return;
    event_base_loopbreak(srv.base);
    pthread_join(srv.thread, NULL);
    free_server();
}
