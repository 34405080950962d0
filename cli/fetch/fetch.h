#ifndef QPO_FETCH_H
#define QPO_FETCH_H

/* One manifest file into the cache, verified: fetched to a temporary file beside its place,
 * renamed there only when its size and SHA-256 match the manifest, so the cache never holds
 * a file that is half-written or not the one the manifest names. */

#include <jansson.h>
#include <stdbool.h>

#include "error.h"

typedef struct qpo_fetch_source {
    const char *dir;      /* --from DIR: a data folder to copy from */
    const char *base_url; /* --from URL: a mirror laid out as the data folder */
} qpo_fetch_source;

typedef enum { QPO_FETCH_PRESENT, QPO_FETCH_FETCHED } qpo_fetch_outcome;

/* file: a manifest entry {"path", "size", "sha256", "urls"}. Without a source the manifest's
 * urls are tried in order. On error nothing is left at the file's place or beside it. */
int qpo_fetch_file(const json_t *file, const qpo_fetch_source *src, const char *cache,
                   qpo_fetch_outcome *outcome, qpo_err *err);

/* SIGINT, SIGTERM and SIGHUP remove the temporary file being written, then end the process
 * as the signal would. */
void qpo_fetch_cleanup_on_signals(void);

#endif
