#ifndef QPO_SIM_SERVER_H
#define QPO_SIM_SERVER_H

/* The HTTP side: a few threads, each with its own event_base and evhttp, accepting on its own
 * SO_REUSEPORT socket bound to the same port, so the kernel spreads connections across them
 * and no request ever waits on a lock. Faults and latency are applied here, around api.c. */

#include "api.h"
#include "error.h"
#include "faults.h"

typedef struct sim_server_cfg {
    const char *host; /* a numeric IPv4 address */
    int port;         /* 0: pick a free one */
    int threads;
    sim_api api;
    sim_faults faults;
    double latency_ms, jitter_ms; /* delay = latency +- uniform jitter, never below 0 */
} sim_server_cfg;

typedef struct sim_server sim_server;

/* Binds and starts serving. NULL with err set (usage error for a bad address, runtime for a
 * port in use). */
sim_server *sim_server_start(const sim_server_cfg *cfg, qpo_err *err);
int sim_server_port(const sim_server *s);
/* Blocks until SIGTERM or SIGINT (or sim_server_stop), then stops the threads. */
void sim_server_wait(sim_server *s);
/* Asks the server to stop; safe from any thread. */
/* Completion requests received so far: the fault schedule's request numbers 0..n-1. */
uint64_t sim_server_requests(const sim_server *s);
void sim_server_stop(sim_server *s);
/* Frees everything; call after sim_server_wait returned. */
void sim_server_free(sim_server *s);

#endif
