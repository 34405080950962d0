#ifndef QPO_BLOB_PG_H
#define QPO_BLOB_PG_H

/* Files as PostgreSQL large objects, streamed in bounded chunks both ways (a gpt2 checkpoint
 * with its training state is 1.5 GB: it is never whole in memory) and hashed with SHA-256
 * while streaming, so a reader checks the bytes it wrote out against what was recorded when
 * they went in, without a second pass. The connection must be inside a transaction (the
 * lo_* API's rule), which is also what makes a half-written object vanish with a killed
 * writer. */

#include <libpq-fe.h>
#include <stddef.h>
#include <stdint.h>

#include "error.h"

/* Bytes moved per lo_read/lo_write call unless a caller says otherwise. */
#define QPO_BLOB_CHUNK ((size_t)1 << 20)

/* Streams the file at PATH into a new large object: its oid, SHA-256 (hex) and size. */
int qpo_blob_put(PGconn *conn_in_tx, const char *path, size_t chunk, Oid *oid, char sha256[65],
                 int64_t *bytes, qpo_err *err);

/* Streams large object OID into DEST (written as DEST.part, renamed into place only once its
 * size and SHA-256 equal WANT_BYTES and WANT_SHA256). Anything else leaves no DEST and fails
 * with QPO_EXIT_USAGE naming WHAT (a retry cannot mend stored bytes); a database or disk error
 * is QPO_EXIT_RUNTIME. */
int qpo_blob_get(PGconn *conn_in_tx, Oid oid, const char *want_sha256, int64_t want_bytes,
                 const char *dest, size_t chunk, const char *what, qpo_err *err);

#endif
