/* See server.h. */
#include "metrics.h"
#include "server.h"

#include <arpa/inet.h>
#include <errno.h>
#include <math.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <event2/thread.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "simhash.h"

#define MAX_THREADS 64

typedef struct worker worker;

/* A reply waiting for its latency timer. */
typedef struct pending {
    struct pending *prev, *next;
    worker *w;
    struct evhttp_request *req;
    struct event *timer;
    sim_fault fault;
    sim_reply reply;
    char endpoint[24]; /* the metrics' label: a known path or "other" */
    struct timespec arrived;
} pending;

struct worker {
    sim_server *server;
    pthread_t thread;
    struct event_base *base;
    struct evhttp *http;
    pending *waiting; /* list of replies under a timer, freed at shutdown */
    uint64_t rng;
};

struct sim_server {
    sim_server_cfg cfg;
    int port, n_workers;
    worker workers[MAX_THREADS];
    struct event_base *main_base;
    struct event *sigint, *sigterm;
    atomic_uint_fast64_t seq; /* arrival number of fault-eligible requests */
};

static const char *reason(int status) {
    switch (status) {
    case 200:
        return "OK";
    case 400:
        return "Bad Request";
    case 401:
        return "Unauthorized";
    case 404:
        return "Not Found";
    case 405:
        return "Method Not Allowed";
    case 429:
        return "Too Many Requests";
    case 503:
        return "Service Unavailable";
    default:
        return status >= 500 ? "Internal Server Error" : "Error";
    }
}

static const char *method_name(enum evhttp_cmd_type cmd) {
    switch (cmd) {
    case EVHTTP_REQ_GET:
        return "GET";
    case EVHTTP_REQ_POST:
        return "POST";
    case EVHTTP_REQ_PUT:
        return "PUT";
    case EVHTTP_REQ_DELETE:
        return "DELETE";
    case EVHTTP_REQ_HEAD:
        return "HEAD";
    case EVHTTP_REQ_PATCH:
        return "PATCH";
    default:
        return "OTHER";
    }
}

static void free_body(const void *data, size_t len, void *arg) {
    free((void *)data);
}

/* Closes the connection under the request without replying; libevent then frees both when
 * its own write or read fails. */
static void drop(struct evhttp_request *req) {
    struct evhttp_connection *conn = evhttp_request_get_connection(req);
    if (conn) {
        evutil_socket_t fd = bufferevent_getfd(evhttp_connection_get_bufferevent(conn));
        if (fd >= 0)
            shutdown(fd, SHUT_RDWR);
    }
    evhttp_send_reply(req, 500, "Dropped", NULL);
}

static qpo_metric served = QPO_COUNTER("qpo_sim_requests_total",
                                       "Requests the simulated LLM answered, by endpoint and HTTP "
                                       "status class (dropped: closed unanswered, a fault).",
                                       "endpoint", "code");
static const double served_buckets[] = {0.001, 0.005, 0.01, 0.025, 0.05, 0.1,
                                        0.25,  0.5,   1,    2.5,   5,    10};
static qpo_metric served_time =
    QPO_HISTOGRAM("qpo_sim_request_duration_seconds",
                  "Arrival to reply of simulated LLM requests, latency faults included.",
                  "endpoint", NULL, served_buckets);

static void count_reply(const pending *p, int status) {
    static const char *classes[] = {"1xx", "2xx", "3xx", "4xx", "5xx"};
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    double s =
        (double)(now.tv_sec - p->arrived.tv_sec) + (double)(now.tv_nsec - p->arrived.tv_nsec) / 1e9;
    const char *code = p->fault == SIM_FAULT_DROP      ? "dropped"
                       : status >= 100 && status < 600 ? classes[status / 100 - 1]
                                                       : "other";
    qpo_metric_add(&served, 1, p->endpoint, code);
    qpo_metric_observe(&served_time, s, p->endpoint, NULL);
}

static void respond(pending *p) {
    const sim_server_cfg *cfg = &p->w->server->cfg;
    struct evhttp_request *req = p->req;
    count_reply(p, p->reply.status);
    if (p->fault == SIM_FAULT_DROP) {
        sim_reply_free(&p->reply);
        drop(req);
        return;
    }
    struct evkeyvalq *h = evhttp_request_get_output_headers(req);
    evhttp_add_header(h, "Content-Type", "application/json");
    if (p->fault == SIM_FAULT_FAIL && cfg->faults.retry_after >= 0) {
        char ra[32];
        snprintf(ra, sizeof(ra), "%d", cfg->faults.retry_after);
        evhttp_add_header(h, "Retry-After", ra);
    }
    size_t len = p->reply.len;
    if (p->fault == SIM_FAULT_TRUNCATE)
        len /= 2;
    struct evbuffer *out = evhttp_request_get_output_buffer(req);
    if (p->reply.body)
        evbuffer_add_reference(out, p->reply.body, len, free_body, NULL);
    p->reply.body = NULL;
    evhttp_send_reply(req, p->reply.status, reason(p->reply.status), NULL);
}

static void unlink_pending(pending *p) {
    if (p->prev)
        p->prev->next = p->next;
    else
        p->w->waiting = p->next;
    if (p->next)
        p->next->prev = p->prev;
}

static void on_timer(evutil_socket_t fd, short what, void *arg) {
    pending *p = arg;
    unlink_pending(p);
    event_free(p->timer);
    respond(p);
    free(p);
}

static int is_completion(const char *path) {
    return !strcmp(path, "/v1/completions") || !strcmp(path, "/v1/chat/completions");
}

static void build_reply(worker *w, struct evhttp_request *req, const char *path, pending *p) {
    const sim_server_cfg *cfg = &w->server->cfg;
    unsigned variant = 0;
    p->fault = SIM_FAULT_NONE;
    if (is_completion(path) && evhttp_request_get_command(req) == EVHTTP_REQ_POST)
        p->fault = sim_fault_for(&cfg->faults, atomic_fetch_add(&w->server->seq, 1), &variant);
    if (p->fault == SIM_FAULT_DROP)
        return;
    if (p->fault == SIM_FAULT_FAIL) {
        int st = sim_fault_status(&cfg->faults, variant);
        sim_api_error(&p->reply, st, st == 429 ? "requests" : "server_error", NULL,
                      st == 429 ? "rate_limit_exceeded" : NULL,
                      st == 429   ? "Rate limit reached (injected fault)"
                      : st == 503 ? "The server is overloaded (injected fault)"
                                  : "The server had an error (injected fault)");
        return;
    }
    if (p->fault == SIM_FAULT_MALFORMED) {
        sim_api_malformed(path, variant, &p->reply);
        return;
    }
    struct evbuffer *in = evhttp_request_get_input_buffer(req);
    size_t len = evbuffer_get_length(in);
    const char *body = len ? (const char *)evbuffer_pullup(in, -1) : "";
    const char *auth = evhttp_find_header(evhttp_request_get_input_headers(req), "Authorization");
    sim_api_handle(&cfg->api, method_name(evhttp_request_get_command(req)), path, auth, body, len,
                   &p->reply);
}

static double next_unit(worker *w) {
    w->rng = sim_mix(w->rng, 1);
    return sim_unit(w->rng);
}

static void on_request(struct evhttp_request *req, void *arg) {
    worker *w = arg;
    const sim_server_cfg *cfg = &w->server->cfg;
    const char *uri = evhttp_request_get_uri(req);
    char path[256];
    size_t plen = strcspn(uri, "?");
    snprintf(path, sizeof(path), "%.*s", (int)(plen < 255 ? plen : 255), uri);
    pending *p = calloc(1, sizeof(*p));
    if (!p) {
        evhttp_send_error(req, 500, "out of memory");
        return;
    }
    p->w = w;
    p->req = req;
    clock_gettime(CLOCK_MONOTONIC, &p->arrived);
    static const char *known[] = {"/v1/completions", "/v1/chat/completions", "/v1/models"};
    snprintf(p->endpoint, sizeof p->endpoint, "other");
    for (size_t i = 0; i < sizeof known / sizeof known[0]; i++)
        if (!strcmp(path, known[i]))
            snprintf(p->endpoint, sizeof p->endpoint, "%s", known[i]);
    build_reply(w, req, path, p);
    double delay = cfg->latency_ms + cfg->jitter_ms * (2 * next_unit(w) - 1);
    if (p->fault == SIM_FAULT_HANG)
        delay = fmax(delay, 0) + (cfg->faults.hang_ms > 0 ? cfg->faults.hang_ms : 60000);
    if (delay <= 0) {
        respond(p);
        free(p);
        return;
    }
    p->timer = evtimer_new(w->base, on_timer, p);
    struct timeval tv = {(time_t)(delay / 1000), (suseconds_t)(fmod(delay, 1000.0) * 1000)};
    p->next = w->waiting;
    if (w->waiting)
        w->waiting->prev = p;
    w->waiting = p;
    evtimer_add(p->timer, &tv);
}

static int listen_socket(const char *host, int port, qpo_err *err) {
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    if (inet_pton(AF_INET, host, &addr.sin_addr) != 1) {
        qpo_err_set(err, QPO_EXIT_USAGE, "--listen needs a numeric IPv4 address");
        qpo_err_detail(err, "host '%s'", host);
        qpo_err_hint(err, "for example --listen 127.0.0.1:0");
        return -1;
    }
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0), one = 1;
    if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) ||
        setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) ||
        bind(fd, (struct sockaddr *)&addr, sizeof(addr)) || listen(fd, 1024)) {
        qpo_err_set(err, QPO_EXIT_RUNTIME, "cannot listen on %s:%d", host, port);
        qpo_err_detail(err, "%s", strerror(errno));
        qpo_err_hint(err, "pick another port, or port 0 for a free one");
        if (fd >= 0)
            close(fd);
        return -1;
    }
    return fd;
}

static int bound_port(int fd) {
    struct sockaddr_in a;
    socklen_t len = sizeof(a);
    getsockname(fd, (struct sockaddr *)&a, &len);
    return ntohs(a.sin_port);
}

static void *worker_main(void *arg) {
    worker *w = arg;
    event_base_loop(w->base, EVLOOP_NO_EXIT_ON_EMPTY);
    return NULL;
}

static int worker_init(sim_server *s, worker *w, int fd, qpo_err *err) {
    w->server = s;
    w->rng = sim_mix(s->cfg.faults.seed, (uint64_t)(w - s->workers) + 0x1A7);
    /* Precise timers (timerfd): epoll's millisecond timeouts round every latency up. */
    struct event_config *ec = event_config_new();
    event_config_set_flag(ec, EVENT_BASE_FLAG_PRECISE_TIMER);
    w->base = ec ? event_base_new_with_config(ec) : NULL;
    if (ec)
        event_config_free(ec);
    w->http = w->base ? evhttp_new(w->base) : NULL;
    if (!w->http || !evhttp_accept_socket_with_handle(w->http, fd)) {
        close(fd);
        return qpo_err_set(err, QPO_EXIT_RUNTIME, "cannot start the HTTP server (libevent)");
    }
    evhttp_set_allowed_methods(w->http, EVHTTP_REQ_GET | EVHTTP_REQ_POST | EVHTTP_REQ_PUT |
                                            EVHTTP_REQ_DELETE | EVHTTP_REQ_PATCH | EVHTTP_REQ_HEAD);
    evhttp_set_timeout(w->http, 300);
    evhttp_set_gencb(w->http, on_request, w);
    return 0;
}

static void on_signal(evutil_socket_t sig, short what, void *arg) {
    sim_server_stop(arg);
}

sim_server *sim_server_start(const sim_server_cfg *cfg, qpo_err *err) {
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, (void (*)(void))evthread_use_pthreads);
    signal(SIGPIPE, SIG_IGN); /* a dropped connection must not kill the server */
    sim_server *s = calloc(1, sizeof(*s));
    if (!s) {
        qpo_err_set(err, QPO_EXIT_RUNTIME, "out of memory");
        return NULL;
    }
    s->cfg = *cfg;
    int threads = cfg->threads < 1 ? 1 : cfg->threads > MAX_THREADS ? MAX_THREADS : cfg->threads;
    s->port = cfg->port;
    for (int i = 0; i < threads; i++) {
        int fd = listen_socket(cfg->host, s->port, err);
        if (fd < 0 || worker_init(s, &s->workers[s->n_workers++], fd, err)) {
            sim_server_free(s);
            return NULL;
        }
        if (i == 0)
            s->port = bound_port(fd);
    }
    s->main_base = event_base_new();
    s->sigint = evsignal_new(s->main_base, SIGINT, on_signal, s);
    s->sigterm = evsignal_new(s->main_base, SIGTERM, on_signal, s);
    evsignal_add(s->sigint, NULL);
    evsignal_add(s->sigterm, NULL);
    for (int i = 0; i < s->n_workers; i++)
        pthread_create(&s->workers[i].thread, NULL, worker_main, &s->workers[i]);
    return s;
}

int sim_server_port(const sim_server *s) {
    return s->port;
}

void sim_server_wait(sim_server *s) {
    event_base_loop(s->main_base, EVLOOP_NO_EXIT_ON_EMPTY);
    for (int i = 0; i < s->n_workers; i++)
        event_base_loopexit(s->workers[i].base, NULL);
    for (int i = 0; i < s->n_workers; i++)
        pthread_join(s->workers[i].thread, NULL);
    for (int i = 0; i < s->n_workers; i++)
        s->workers[i].thread = 0;
}

uint64_t sim_server_requests(const sim_server *s) {
    return atomic_load(&s->seq);
}

void sim_server_stop(sim_server *s) {
    event_base_loopexit(s->main_base, NULL);
}

static void worker_free(worker *w) {
    for (pending *p = w->waiting, *next; p; p = next) {
        next = p->next;
        event_free(p->timer);
        sim_reply_free(&p->reply);
        /* A request whose client already left belongs to no connection: evhttp_free will not
         * free it. */
        if (!evhttp_request_get_connection(p->req))
            evhttp_request_free(p->req);
        free(p);
    }
    if (w->http)
        evhttp_free(w->http);
    if (w->base)
        event_base_free(w->base);
}

void sim_server_free(sim_server *s) {
    if (!s)
        return;
    for (int i = 0; i < s->n_workers; i++)
        worker_free(&s->workers[i]);
    if (s->sigint)
        event_free(s->sigint);
    if (s->sigterm)
        event_free(s->sigterm);
    if (s->main_base)
        event_base_free(s->main_base);
    free(s);
}
