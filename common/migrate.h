#ifndef QPO_MIGRATE_H
#define QPO_MIGRATE_H

#include <libpq-fe.h>
#include <stdio.h>

#include "error.h"

/* Applies the migrations compiled from sql/migrations/ in name order, each in its own
 * transaction, recording name and SHA-256 in qpo.schema_migrations. Refuses (err set) when an
 * applied file's checksum differs from the compiled one. Concurrent callers serialise on an
 * advisory lock. Prints one line per applied file to `out` (NULL: silent). Returns the number
 * applied, or -1. */
int qpo_migrate(PGconn *conn, FILE *out, qpo_err *err);

/* Checks that every compiled migration is applied with its checksum: commands call it at
 * start so a stale or tampered schema is a clear error. 0 ok, -1 with err set. */
int qpo_migrate_check(PGconn *conn, qpo_err *err);

/* Prints the schema version and each migration's state to `out`. */
int qpo_migrate_status(PGconn *conn, FILE *out, qpo_err *err);

#endif
