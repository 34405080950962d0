/* qpo db migrate | status */
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "commands.h"
#include "db.h"
#include "migrate.h"

static void db_usage(FILE *out) {
    fprintf(out, "usage: qpo db migrate|status [--db CONNINFO]\n\n"
                 "  migrate   apply the pending migrations of sql/migrations (idempotent)\n"
                 "  status    show each migration and the schema version\n");
}

int qpo_cmd_db(int argc, char **argv) {
    static const struct option opts[] = {
        {"db", required_argument, NULL, 'd'}, {"help", no_argument, NULL, 'h'}, {0, 0, 0, 0}};
    const char *db = NULL;
    int c;
    optind = 0; /* GNU getopt: re-initialise, as commands may run more than once per process */
    while ((c = getopt_long(argc, argv, "d:h", opts, NULL)) != -1) {
        if (c == 'd')
            db = optarg;
        else if (c == 'h') {
            db_usage(stdout);
            return 0;
        } else {
            db_usage(stderr);
            return QPO_EXIT_USAGE;
        }
    }
    if (optind != argc - 1 || (strcmp(argv[optind], "migrate") && strcmp(argv[optind], "status"))) {
        db_usage(stderr);
        return QPO_EXIT_USAGE;
    }
    qpo_err err = {0};
    PGconn *conn = qpo_db_connect(qpo_db_conninfo(db), "qpo db", &err);
    if (!conn)
        return qpo_err_print(&err);
    int rc = !strcmp(argv[optind], "migrate") ? qpo_migrate(conn, stdout, &err)
                                               : qpo_migrate_status(conn, stdout, &err);
    PQfinish(conn);
    return rc < 0 ? qpo_err_print(&err) : 0;
}
