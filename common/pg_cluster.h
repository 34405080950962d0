#ifndef QPO_PG_CLUSTER_H
#define QPO_PG_CLUSTER_H

/* A throwaway PostgreSQL cluster: initdb into a fresh directory, pg_ctl start with a unix
 * socket in that directory (no TCP), stopped and removed by qpo_pg_cluster_stop(). The one
 * implementation behind `qpo demo` and the tests' harness (tests/harness/pgtest.c).
 * initdb refuses to run as root, so as root the server commands run as the `postgres` user
 * (runuser) in a directory chowned to it. Binaries: $QPO_PG_BINDIR, else the newest
 * /usr/lib/postgresql/<major>/bin, else PATH. Durability is off (fsync, full pages): the
 * cluster is thrown away, and the tests simulate process crashes, not power loss. */

#include <stdbool.h>
#include <stddef.h>

#include "error.h"

typedef struct qpo_pg_cluster qpo_pg_cluster;

/* Creates DIR (it must not exist or be empty; its parent must exist), initdb, starts the
 * server. The output of initdb and pg_ctl goes to DIR.log, the server's to DIR/server.log.
 * Returns NULL with err set (naming the log to read) on failure, having removed what it made. */
qpo_pg_cluster *qpo_pg_cluster_start(const char *dir, qpo_err *err);

/* conninfo of the cluster's `postgres` database: "host=DIR port=P user=postgres dbname=postgres" */
const char *qpo_pg_cluster_conninfo(const qpo_pg_cluster *c);
/* The same for another database of the cluster, into buf. */
void qpo_pg_cluster_conninfo_db(const qpo_pg_cluster *c, const char *dbname, char *buf, size_t n);
const char *qpo_pg_cluster_dir(const qpo_pg_cluster *c);

/* TCP for the starts after this call (qpo_pg_cluster_resume): listen_addresses, e.g.
 * "127.0.0.1" (NULL or "": unix socket only, the default). For tests of TLS, which libpq
 * never uses over a unix socket. */
void qpo_pg_cluster_listen_tcp(qpo_pg_cluster *c, const char *addresses);
int qpo_pg_cluster_port(const qpo_pg_cluster *c);

/* pg_ctl stop with MODE ("fast" drops connections cleanly, "immediate" simulates a crash). */
int qpo_pg_cluster_halt(qpo_pg_cluster *c, const char *mode, qpo_err *err);
/* Starts the stopped server again on the same port. */
int qpo_pg_cluster_resume(qpo_pg_cluster *c, qpo_err *err);

/* Frees c and leaves the server running (`qpo demo --keep`). */
void qpo_pg_cluster_release(qpo_pg_cluster *c);

/* Stops the server (immediate: its data is thrown away) and frees c; with remove, deletes DIR
 * and DIR.log too. NULL is a no-op. */
void qpo_pg_cluster_stop(qpo_pg_cluster *c, bool remove);

#endif
