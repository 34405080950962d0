#ifndef QPO_LLM_TEST_SERVER_H
#define QPO_LLM_TEST_SERVER_H

/* A small OpenAI-shaped HTTP server (libevent evhttp) on 127.0.0.1, in its own thread, that
 * the client tests talk to over real loopback sockets. Each request takes the next scripted
 * action, or the default one when the script is empty. */

#include <stdbool.h>
#include <stddef.h>

typedef enum ts_kind {
    TS_SYNTH,    /* a vLLM-shaped answer computed from the request (see ts_synth_* below) */
    TS_BODY,     /* status 200 with the given body, verbatim */
    TS_STATUS,   /* the given HTTP status (with Retry-After when retry_after is set) */
    TS_DROP,     /* close the connection without a reply */
    TS_TRUNCATE, /* 200 with the first half of the synthesized body */
    TS_DELAY,    /* TS_SYNTH after delay_ms */
} ts_kind;

typedef struct ts_action {
    ts_kind kind;
    int status;
    const char *body;        /* TS_BODY; TS_STATUS: optional error body */
    const char *retry_after; /* TS_STATUS: Retry-After header value, or NULL */
    int delay_ms;
} ts_action;

typedef struct ts_server ts_server;

ts_server *ts_start(void);
/* The same over TLS (self-signed certificate for IP 127.0.0.1, HTTP/1.1 only: no ALPN
 * offered). ts_write_cert writes the certificate as PEM: a client trusting that file as its
 * CA accepts the server, one trusting only the system's CAs refuses it. */
ts_server *ts_start_tls(void);
int ts_write_cert(const ts_server *s, const char *path);
ts_server *ts_start_opts(bool tls);
void ts_stop(ts_server *s);
int ts_port(const ts_server *s);
/* "http://127.0.0.1:PORT" or "https://..." */
const char *ts_url(const ts_server *s);

void ts_push(ts_server *s, ts_action a);
void ts_set_default(ts_server *s, ts_action a);
/* Holds every request until n are waiting at once, then answers them all: proves that n
 * were in flight together without any timing. 0 turns it off. */
void ts_set_barrier(ts_server *s, int n);

int ts_requests(ts_server *s);    /* requests received so far */
int ts_max_waiting(ts_server *s); /* most requests held at once (barrier or delay) */
/* Copies of the last request's Authorization header and body (caller frees). */
char *ts_last_auth(ts_server *s);
char *ts_last_body(ts_server *s);

/* The synthesized completion: the prompt split into tokens at each space (a token is a space
 * plus the word after it, the first one the leading word), token i's logprob -(i % 7 + 1)/8
 * (null for token 0), then one generated token "\n" with logprob -0.5. */
double ts_synth_logprob(int i);

/* A server whose every answer is 200 and a chunked body that never ends, until the client
 * hangs up (then it waits for the next connection). */
typedef struct ts_endless ts_endless;
ts_endless *ts_endless_start(void);
const char *ts_endless_url(const ts_endless *e); /* "http://127.0.0.1:PORT" */
int ts_endless_requests(ts_endless *e);
long ts_endless_bytes(ts_endless *e); /* body bytes sent so far */
void ts_endless_stop(ts_endless *e);

#endif
