/* The process-wide table of handlers by kind. Filled before workers start, read-only after,
 * so it needs no lock. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "handler.h"
#include "runtime.h"

#define MAX_HANDLERS 64

static qpo_handler handlers[MAX_HANDLERS];
static qpo_backend_hook backend_hook;

void qpo_worker_set_backend_hook(qpo_backend_hook hook) {
    backend_hook = hook;
}

qpo_backend_hook qpo_worker_backend_hook(void) {
    return backend_hook;
}
static size_t nhandlers;

void qpo_handler_register(const qpo_handler *handler) {
    for (size_t i = 0; i < nhandlers; i++)
        if (!strcmp(handlers[i].kind, handler->kind)) {
            handlers[i] = *handler; /* the last registration of a kind wins */
            return;
        }
    if (nhandlers == MAX_HANDLERS) {
        fprintf(stderr, "qpo: internal error: more than %d job handlers\n", MAX_HANDLERS);
        abort();
    }
    handlers[nhandlers++] = *handler;
}

const qpo_handler *qpo_handler_find(const char *kind) {
    for (size_t i = 0; i < nhandlers; i++)
        if (!strcmp(handlers[i].kind, kind))
            return &handlers[i];
    return NULL;
}

size_t qpo_handler_count(void) {
    return nhandlers;
}

const qpo_handler *qpo_handler_at(size_t i) {
    return i < nhandlers ? &handlers[i] : NULL;
}
