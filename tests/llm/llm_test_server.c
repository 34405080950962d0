/* The client tests' server: evhttp on its own thread and event base. Answers are vLLM-shaped
 * (the fixtures in test_llm_parse.c cover the exact documented bodies of vLLM and OpenAI). */
#include "llm_test_server.h"

#include <event2/buffer.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <event2/thread.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <jansson.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define TS_SCRIPT_MAX 256
#define TS_HELD_MAX 4096

typedef struct held {
    ts_server *s;
    struct evhttp_request *req;
    struct event *timer; /* TS_DELAY; NULL when held by the barrier */
} held;

struct ts_server {
    struct event_base *base;
    struct evhttp *http;
    struct event *stop_ev;
    pthread_t thread;
    pthread_mutex_t mu;
    int port;
    char url[64];
    ts_action script[TS_SCRIPT_MAX];
    int head, tail;
    ts_action dflt;
    int barrier;
    held *held[TS_HELD_MAX];
    int nheld, max_waiting, requests;
    char *last_auth, *last_body;
    SSL_CTX *tls; /* NULL: plain HTTP */
    X509 *crt;
};

double ts_synth_logprob(int i) {
    return -(double)(i % 7 + 1) / 8.0;
}

static size_t cp_len(const char *s, size_t bytes) {
    size_t n = 0;
    for (size_t i = 0; i < bytes; i++)
        if (((unsigned char)s[i] & 0xC0) != 0x80)
            n++;
    return n;
}

static char *synth_completion(const char *prompt, const char *model) {
    json_t *tokens = json_array(), *lps = json_array(), *offs = json_array(), *tops = json_array();
    size_t n = strlen(prompt), start = 0;
    int i = 0;
    while (start < n) {
        size_t end = start + 1;
        while (end < n && prompt[end] != ' ')
            end++;
        json_array_append_new(tokens, json_stringn(prompt + start, end - start));
        json_array_append_new(lps, i == 0 ? json_null() : json_real(ts_synth_logprob(i)));
        json_array_append_new(offs, json_integer((json_int_t)cp_len(prompt, start)));
        json_array_append_new(tops, i == 0 ? json_null() : json_object());
        start = end;
        i++;
    }
    json_array_append_new(tokens, json_string("\n"));
    json_array_append_new(lps, json_real(-0.5));
    json_array_append_new(offs, json_integer((json_int_t)cp_len(prompt, n)));
    json_array_append_new(tops, json_object());
    char *text = malloc(n + 2);
    memcpy(text, prompt, n);
    strcpy(text + n, "\n");
    json_t *o = json_pack("{s:s, s:s, s:i, s:s, s:[{s:i, s:s, s:{s:o, s:o, s:o, s:o}, s:s, s:n}], "
                          "s:{s:i, s:i, s:i}}",
                          "id", "cmpl-test", "object", "text_completion", "created", 1700000000,
                          "model", model, "choices", "index", 0, "text", text, "logprobs",
                          "text_offset", offs, "token_logprobs", lps, "tokens", tokens,
                          "top_logprobs", tops, "finish_reason", "length", "stop_reason", "usage",
                          "prompt_tokens", i, "total_tokens", i + 1, "completion_tokens", 1);
    free(text);
    char *s = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    return s;
}

static char *synth_chat(const char *model) {
    const char *words[] = {"2", " plus", " 3", " is", " 5.\n", "Final", " Answer:", " 5"};
    json_t *content = json_array();
    for (size_t i = 0; i < sizeof words / sizeof words[0]; i++)
        json_array_append_new(content, json_pack("{s:s, s:f, s:[], s:[]}", "token", words[i],
                                                 "logprob", -0.25, "bytes", "top_logprobs"));
    json_t *o = json_pack("{s:s, s:s, s:i, s:s, s:[{s:i, s:{s:s, s:s}, s:{s:o}, s:s}], "
                          "s:{s:i, s:i, s:i}}",
                          "id", "chatcmpl-test", "object", "chat.completion", "created", 1700000000,
                          "model", model, "choices", "index", 0, "message", "role", "assistant",
                          "content", "2 plus 3 is 5.\nFinal Answer: 5", "logprobs", "content",
                          content, "finish_reason", "stop", "usage", "prompt_tokens", 20,
                          "completion_tokens", 8, "total_tokens", 28);
    char *s = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    return s;
}

static char *request_body(struct evhttp_request *req) {
    struct evbuffer *in = evhttp_request_get_input_buffer(req);
    size_t n = evbuffer_get_length(in);
    char *b = malloc(n + 1);
    evbuffer_copyout(in, b, n);
    b[n] = 0;
    return b;
}

static char *synth_for(struct evhttp_request *req) {
    char *body = request_body(req);
    json_t *j = json_loads(body, 0, NULL);
    free(body);
    const char *model = json_string_value(json_object_get(j, "model"));
    const char *prompt = json_string_value(json_object_get(j, "prompt"));
    char *out;
    if (strstr(evhttp_request_get_uri(req), "/chat/"))
        out = synth_chat(model ? model : "?");
    else
        out = synth_completion(prompt ? prompt : "", model ? model : "?");
    json_decref(j);
    return out;
}

static void send_body(struct evhttp_request *req, int code, const char *body, size_t len) {
    struct evbuffer *b = evbuffer_new();
    evbuffer_add(b, body, len);
    evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type", "application/json");
    evhttp_send_reply(req, code, code == 200 ? "OK" : "Error", b);
    evbuffer_free(b);
}

static void send_synth(struct evhttp_request *req, bool truncate) {
    char *body = synth_for(req);
    size_t n = strlen(body);
    send_body(req, 200, body, truncate ? n / 2 : n);
    free(body);
}

static void release(ts_server *s, held *h) {
    if (h->timer)
        event_free(h->timer);
    send_synth(h->req, false);
    free(h);
}

static void on_delay(evutil_socket_t fd, short what, void *arg) {
    held *h = arg;
    ts_server *s = h->s;
    pthread_mutex_lock(&s->mu);
    for (int i = 0; i < s->nheld; i++)
        if (s->held[i] == h) {
            s->held[i] = s->held[--s->nheld];
            break;
        }
    pthread_mutex_unlock(&s->mu);
    release(s, h);
}

/* Holds req; with a barrier, releases everyone once enough are waiting. Called locked. */
static void hold(ts_server *s, struct evhttp_request *req, int delay_ms) {
    held *h = calloc(1, sizeof *h);
    h->s = s;
    h->req = req;
    s->held[s->nheld++] = h;
    if (s->nheld > s->max_waiting)
        s->max_waiting = s->nheld;
    if (delay_ms > 0) {
        h->timer = evtimer_new(s->base, on_delay, h);
        struct timeval tv = {delay_ms / 1000, (delay_ms % 1000) * 1000};
        evtimer_add(h->timer, &tv);
        return;
    }
    if (s->nheld < s->barrier)
        return;
    s->barrier = 0; /* one-shot: later requests are answered at once */
    for (int i = 0; i < s->nheld;) {
        if (s->held[i]->timer) {
            i++;
            continue;
        }
        held *x = s->held[i];
        s->held[i] = s->held[--s->nheld];
        release(s, x);
    }
}

static ts_action next_action(ts_server *s) {
    if (s->head != s->tail) {
        ts_action a = s->script[s->head];
        s->head = (s->head + 1) % TS_SCRIPT_MAX;
        return a;
    }
    return s->dflt;
}

static void on_request(struct evhttp_request *req, void *arg) {
    ts_server *s = arg;
    const char *auth = evhttp_find_header(evhttp_request_get_input_headers(req), "Authorization");
    pthread_mutex_lock(&s->mu);
    s->requests++;
    free(s->last_auth);
    s->last_auth = auth ? strdup(auth) : NULL;
    free(s->last_body);
    s->last_body = request_body(req);
    ts_action a = next_action(s);
    if (a.kind == TS_DELAY || (a.kind == TS_SYNTH && s->barrier > 0)) {
        hold(s, req, a.kind == TS_DELAY ? a.delay_ms : 0);
        pthread_mutex_unlock(&s->mu);
        return;
    }
    pthread_mutex_unlock(&s->mu);
    switch (a.kind) {
    case TS_BODY:
        send_body(req, 200, a.body, strlen(a.body));
        break;
    case TS_STATUS:
        if (a.retry_after)
            evhttp_add_header(evhttp_request_get_output_headers(req), "Retry-After", a.retry_after);
        send_body(req, a.status, a.body ? a.body : "{\"error\":{\"message\":\"injected\"}}",
                  strlen(a.body ? a.body : "{\"error\":{\"message\":\"injected\"}}"));
        break;
    case TS_DROP:
        evhttp_connection_free(evhttp_request_get_connection(req));
        break;
    case TS_TRUNCATE:
        send_synth(req, true);
        break;
    default:
        send_synth(req, false);
        break;
    }
}

static void on_stop(evutil_socket_t fd, short what, void *arg) {
    ts_server *s = arg;
    pthread_mutex_lock(&s->mu);
    while (s->nheld) {
        held *h = s->held[--s->nheld];
        pthread_mutex_unlock(&s->mu);
        release(s, h);
        pthread_mutex_lock(&s->mu);
    }
    pthread_mutex_unlock(&s->mu);
    event_base_loopexit(s->base, NULL);
}

static void *run(void *arg) {
    ts_server *s = arg;
    event_base_dispatch(s->base);
    return NULL;
}

static void add_ext(X509 *crt, int nid, const char *value) {
    X509V3_CTX ctx;
    X509V3_set_ctx_nodb(&ctx);
    X509V3_set_ctx(&ctx, crt, crt, NULL, NULL, 0);
    X509_EXTENSION *ext = X509V3_EXT_conf_nid(NULL, &ctx, nid, value);
    if (!ext || !X509_add_ext(crt, ext, -1)) {
        fprintf(stderr, "test server: cannot add a certificate extension\n");
        abort();
    }
    X509_EXTENSION_free(ext);
}

/* A throwaway self-signed P-256 certificate for 127.0.0.1 (its own CA: ts_write_cert). */
static SSL_CTX *tls_ctx_new(X509 **crt_out) {
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    EVP_PKEY *key = EVP_EC_gen("P-256");
    X509 *crt = X509_new();
    X509_set_version(crt, 2);
    ASN1_INTEGER_set(X509_get_serialNumber(crt), 1);
    X509_gmtime_adj(X509_getm_notBefore(crt), -3600);
    X509_gmtime_adj(X509_getm_notAfter(crt), 86400);
    X509_set_pubkey(crt, key);
    X509_NAME *name = X509_get_subject_name(crt);
    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)"127.0.0.1", -1, -1,
                               0);
    X509_set_issuer_name(crt, name);
    add_ext(crt, NID_basic_constraints, "critical,CA:TRUE");
    add_ext(crt, NID_subject_alt_name, "IP:127.0.0.1");
    if (!ctx || !key || !X509_sign(crt, key, EVP_sha256()) || !SSL_CTX_use_certificate(ctx, crt) ||
        !SSL_CTX_use_PrivateKey(ctx, key)) {
        fprintf(stderr, "test server: cannot make a TLS certificate\n");
        abort();
    }
    *crt_out = crt;
    EVP_PKEY_free(key);
    return ctx;
}

static struct bufferevent *tls_bev(struct event_base *base, void *arg) {
    ts_server *s = arg;
    return bufferevent_openssl_socket_new(base, -1, SSL_new(s->tls), BUFFEREVENT_SSL_ACCEPTING,
                                          BEV_OPT_CLOSE_ON_FREE);
}

ts_server *ts_start_tls(void) {
    return ts_start_opts(true);
}

ts_server *ts_start(void) {
    return ts_start_opts(false);
}

ts_server *ts_start_opts(bool tls) {
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, (void (*)(void))evthread_use_pthreads);
    /* A client that hangs up while the server writes (TLS via bufferevent_openssl does not
     * pass MSG_NOSIGNAL) must fail that write, not kill the test program. */
    signal(SIGPIPE, SIG_IGN);
    ts_server *s = calloc(1, sizeof *s);
    pthread_mutex_init(&s->mu, NULL);
    s->base = event_base_new();
    s->http = evhttp_new(s->base);
    if (tls) {
        s->tls = tls_ctx_new(&s->crt);
        evhttp_set_bevcb(s->http, tls_bev, s);
    }
    evhttp_set_gencb(s->http, on_request, s);
    evhttp_set_allowed_methods(s->http, EVHTTP_REQ_POST | EVHTTP_REQ_GET);
    struct evhttp_bound_socket *bs = evhttp_bind_socket_with_handle(s->http, "127.0.0.1", 0);
    if (!bs) {
        fprintf(stderr, "test server: cannot bind 127.0.0.1\n");
        abort();
    }
    struct sockaddr_storage ss;
    ev_socklen_t len = sizeof ss;
    getsockname(evhttp_bound_socket_get_fd(bs), (struct sockaddr *)&ss, &len);
    s->port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
    snprintf(s->url, sizeof s->url, "%s://127.0.0.1:%d", tls ? "https" : "http", s->port);
    s->stop_ev = event_new(s->base, -1, 0, on_stop, s);
    s->dflt.kind = TS_SYNTH;
    pthread_create(&s->thread, NULL, run, s);
    return s;
}

void ts_stop(ts_server *s) {
    event_active(s->stop_ev, EV_TIMEOUT, 0);
    pthread_join(s->thread, NULL);
    event_free(s->stop_ev);
    evhttp_free(s->http);
    event_base_free(s->base);
    SSL_CTX_free(s->tls);
    X509_free(s->crt);
    pthread_mutex_destroy(&s->mu);
    free(s->last_auth);
    free(s->last_body);
    free(s);
}

int ts_write_cert(const ts_server *s, const char *path) {
    FILE *f = s->crt ? fopen(path, "w") : NULL;
    int ok = f && PEM_write_X509(f, s->crt);
    if (f)
        fclose(f);
    return ok ? 0 : -1;
}

int ts_port(const ts_server *s) {
    return s->port;
}

const char *ts_url(const ts_server *s) {
    return s->url;
}

void ts_push(ts_server *s, ts_action a) {
    pthread_mutex_lock(&s->mu);
    s->script[s->tail] = a;
    s->tail = (s->tail + 1) % TS_SCRIPT_MAX;
    pthread_mutex_unlock(&s->mu);
}

void ts_set_default(ts_server *s, ts_action a) {
    pthread_mutex_lock(&s->mu);
    s->dflt = a;
    pthread_mutex_unlock(&s->mu);
}

void ts_set_barrier(ts_server *s, int n) {
    pthread_mutex_lock(&s->mu);
    s->barrier = n;
    s->max_waiting = 0;
    pthread_mutex_unlock(&s->mu);
}

int ts_requests(ts_server *s) {
    pthread_mutex_lock(&s->mu);
    int n = s->requests;
    pthread_mutex_unlock(&s->mu);
    return n;
}

int ts_max_waiting(ts_server *s) {
    pthread_mutex_lock(&s->mu);
    int n = s->max_waiting;
    pthread_mutex_unlock(&s->mu);
    return n;
}

char *ts_last_auth(ts_server *s) {
    pthread_mutex_lock(&s->mu);
    char *a = s->last_auth ? strdup(s->last_auth) : NULL;
    pthread_mutex_unlock(&s->mu);
    return a;
}

char *ts_last_body(ts_server *s) {
    pthread_mutex_lock(&s->mu);
    char *a = s->last_body ? strdup(s->last_body) : NULL;
    pthread_mutex_unlock(&s->mu);
    return a;
}

/* ---- the endless server: plain sockets, so that a client hanging up mid-body is simply a
 * failed send (evhttp would call the request handler again to answer the error) ---- */

struct ts_endless {
    int fd;
    pthread_t thread;
    char url[64];
    pthread_mutex_t mu;
    int requests;
    long bytes;
    volatile int stopping;
};

/* Reads the request head and its Content-Length body; -1 when the client went away. */
static int read_request(int c) {
    char buf[65536];
    size_t len = 0;
    char *end = NULL;
    while (!end && len < sizeof buf - 1) {
        ssize_t k = recv(c, buf + len, sizeof buf - 1 - len, 0);
        if (k <= 0)
            return -1;
        len += (size_t)k;
        buf[len] = '\0';
        end = strstr(buf, "\r\n\r\n");
    }
    if (!end)
        return -1;
    const char *cl = strcasestr(buf, "content-length:");
    long want = cl ? strtol(cl + 15, NULL, 10) : 0;
    long have = (long)(len - (size_t)(end + 4 - buf));
    while (have < want) {
        ssize_t k = recv(c, buf, sizeof buf, 0);
        if (k <= 0)
            return -1;
        have += k;
    }
    return 0;
}

static void serve_endless(ts_endless *e, int c) {
    static const char head[] = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                               "Transfer-Encoding: chunked\r\n\r\n";
    static char chunk[8 + 65536 + 2];
    if (read_request(c) < 0)
        return;
    pthread_mutex_lock(&e->mu);
    e->requests++;
    pthread_mutex_unlock(&e->mu);
    memcpy(chunk, "10000\r\n", 7);
    memset(chunk + 7, ' ', 65536);
    memcpy(chunk + 7 + 65536, "\r\n", 2);
    if (send(c, head, sizeof head - 1, MSG_NOSIGNAL) < 0)
        return;
    while (!e->stopping && send(c, chunk, 7 + 65536 + 2, MSG_NOSIGNAL) > 0) {
        pthread_mutex_lock(&e->mu);
        e->bytes += 65536;
        pthread_mutex_unlock(&e->mu);
    }
}

static void *endless_run(void *arg) {
    ts_endless *e = arg;
    for (;;) {
        int c = accept(e->fd, NULL, NULL);
        if (c < 0)
            break; /* ts_endless_stop shut the socket down */
        serve_endless(e, c);
        close(c);
    }
    return NULL;
}

ts_endless *ts_endless_start(void) {
    ts_endless *e = calloc(1, sizeof *e);
    pthread_mutex_init(&e->mu, NULL);
    e->fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t alen = sizeof a;
    if (e->fd < 0 || bind(e->fd, (struct sockaddr *)&a, sizeof a) < 0 || listen(e->fd, 16) < 0 ||
        getsockname(e->fd, (struct sockaddr *)&a, &alen) < 0) {
        fprintf(stderr, "endless server: cannot listen on 127.0.0.1\n");
        abort();
    }
    snprintf(e->url, sizeof e->url, "http://127.0.0.1:%d", ntohs(a.sin_port));
    pthread_create(&e->thread, NULL, endless_run, e);
    return e;
}

const char *ts_endless_url(const ts_endless *e) {
    return e->url;
}

int ts_endless_requests(ts_endless *e) {
    pthread_mutex_lock(&e->mu);
    int n = e->requests;
    pthread_mutex_unlock(&e->mu);
    return n;
}

long ts_endless_bytes(ts_endless *e) {
    pthread_mutex_lock(&e->mu);
    long n = e->bytes;
    pthread_mutex_unlock(&e->mu);
    return n;
}

void ts_endless_stop(ts_endless *e) {
    e->stopping = 1;
    shutdown(e->fd, SHUT_RDWR);
    pthread_join(e->thread, NULL);
    close(e->fd);
    pthread_mutex_destroy(&e->mu);
    free(e);
}
