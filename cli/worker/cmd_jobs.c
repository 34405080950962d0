/* qpo jobs enqueue|list|show|retry|cancel: the operator's view of the queue. */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "commands.h"
#include "db.h"
#include "migrate.h"
#include "queue.h"

static void jobs_usage(FILE *out) {
    fprintf(out, "usage: qpo jobs <action> [options] [--db CONNINFO]\n\n"
                 "  enqueue KIND [--payload JSON] [--priority N] [--max-attempts N] [--key KEY]\n"
                 "               [--after ID,ID..] [--run-after TIMESTAMP] [--run ID] [--count N]\n"
                 "                 queue a job (N copies with --count); prints the ids\n"
                 "  list [--state S] [--kind K] [--run ID] [--limit N]   newest first (limit 50)\n"
                 "  show ID        every field, the parents and the history of the job\n"
                 "  retry ID       fresh attempts for a failed, dead or cancelled job and its\n"
                 "                 cancelled descendants\n"
                 "  cancel ID [--reason TEXT]   cancel a job and its blocked descendants\n");
}

static int bad_usage(const char *fmt, const char *arg) {
    fprintf(stderr, "qpo: error: ");
    fprintf(stderr, fmt, arg);
    fprintf(stderr, "\n  hint: 'qpo jobs --help' shows the actions\n");
    return QPO_EXIT_USAGE;
}

static int parse_id(const char *s, int64_t *id) {
    char *end;
    long long v = s ? strtoll(s, &end, 10) : 0;
    if (!s || end == s || *end || v <= 0)
        return bad_usage("job id must be a positive integer, not '%s'", s ? s : "");
    *id = v;
    return 0;
}

/* A whole decimal in [lo, hi]: atoi turned "abc" into 0 and wrapped large numbers. */
static int parse_int(const char *opt, const char *s, long lo, long hi, int *out) {
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (end == s || *end || errno == ERANGE || v < lo || v > hi) {
        fprintf(stderr, "qpo: error: --%s must be an integer in %ld..%ld, not '%s'\n", opt, lo, hi,
                s);
        fprintf(stderr, "  hint: 'qpo jobs --help' shows the actions\n");
        return QPO_EXIT_USAGE;
    }
    *out = (int)v;
    return 0;
}

static int parse_parents(char *list, int64_t **parents, size_t *n) {
    size_t cap = 1;
    for (const char *p = list; *p; p++)
        cap += *p == ',';
    *parents = calloc(cap, sizeof(int64_t));
    *n = 0;
    for (char *save = NULL, *t = strtok_r(list, ",", &save); t; t = strtok_r(NULL, ",", &save))
        if (parse_id(t, &(*parents)[(*n)++]) != 0)
            return QPO_EXIT_USAGE;
    return 0;
}

typedef struct jobs_args {
    const char *db, *payload, *key, *run_after, *state, *kind, *reason;
    char *after;
    int priority, max_attempts, count, limit;
    int64_t run_id;
} jobs_args;

static int parse_args(int argc, char **argv, jobs_args *a) {
    static const struct option opts[] = {{"db", required_argument, NULL, 'd'},
                                         {"payload", required_argument, NULL, 'p'},
                                         {"priority", required_argument, NULL, 'P'},
                                         {"max-attempts", required_argument, NULL, 'm'},
                                         {"key", required_argument, NULL, 'k'},
                                         {"after", required_argument, NULL, 'a'},
                                         {"run-after", required_argument, NULL, 't'},
                                         {"run", required_argument, NULL, 'r'},
                                         {"count", required_argument, NULL, 'c'},
                                         {"state", required_argument, NULL, 's'},
                                         {"kind", required_argument, NULL, 'K'},
                                         {"limit", required_argument, NULL, 'l'},
                                         {"reason", required_argument, NULL, 'R'},
                                         {"help", no_argument, NULL, 'h'},
                                         {0, 0, 0, 0}};
    memset(a, 0, sizeof(*a));
    a->count = 1;
    a->limit = 50;
    int c;
    optind = 0;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 'd':
            a->db = optarg;
            break;
        case 'p':
            a->payload = optarg;
            break;
        case 'P':
            if (parse_int("priority", optarg, INT_MIN, INT_MAX, &a->priority))
                return QPO_EXIT_USAGE;
            break;
        case 'm':
            /* 0 is the struct's "unset" (the kind's default), so an explicit 0 is refused */
            if (parse_int("max-attempts", optarg, 1, 1000, &a->max_attempts))
                return QPO_EXIT_USAGE;
            break;
        case 'k':
            a->key = optarg;
            break;
        case 'a':
            a->after = optarg;
            break;
        case 't':
            a->run_after = optarg;
            break;
        case 'r':
            if (parse_id(optarg, &a->run_id))
                return QPO_EXIT_USAGE;
            break;
        case 'c':
            if (parse_int("count", optarg, 1, 1000000, &a->count))
                return QPO_EXIT_USAGE;
            break;
        case 's':
            a->state = optarg;
            break;
        case 'K':
            a->kind = optarg;
            break;
        case 'l':
            if (parse_int("limit", optarg, 1, 1000000, &a->limit))
                return QPO_EXIT_USAGE;
            break;
        case 'R':
            a->reason = optarg;
            break;
        case 'h':
            jobs_usage(stdout);
            return -1;
        default:
            jobs_usage(stderr);
            return QPO_EXIT_USAGE;
        }
    }
    if (a->count < 1 || a->count > 1000000)
        return bad_usage("--count must be 1..1000000%s", "");
    if (a->limit < 1)
        return bad_usage("--limit must be positive%s", "");
    if (a->key && a->count > 1)
        return bad_usage("--key names one job; it cannot go with --count%s", "");
    return 0;
}

/* Names the --after ids that are no job, instead of a bare foreign-key SQLSTATE. */
static int missing_parents(PGconn *conn, const int64_t *ids, size_t n, qpo_err *err) {
    size_t cap = n * 21 + 3, len = 1;
    char *arr = malloc(cap);
    arr[0] = '{';
    for (size_t i = 0; i < n; i++)
        len += (size_t)snprintf(arr + len, cap - len, "%s%lld", i ? "," : "", (long long)ids[i]);
    snprintf(arr + len, cap - len, "}");
    const char *params[] = {arr};
    PGresult *res = qpo_db_named(conn, "queue_missing_parents", 1, params, err);
    free(arr);
    if (!res)
        return -1;
    int rc = 0;
    if (PQgetvalue(res, 0, 0)[0]) {
        qpo_err_set(err, QPO_EXIT_USAGE, "--after names no such job: %s", PQgetvalue(res, 0, 0));
        qpo_err_hint(err, "'qpo jobs list' shows the jobs");
        rc = -1;
    }
    PQclear(res);
    return rc;
}

static int do_enqueue(PGconn *conn, jobs_args *a, const char *kind, qpo_err *err) {
    PGresult *known = qpo_db_named(conn, "queue_kind_known", 1, &kind, err);
    if (!known)
        return -1;
    int ntuples = PQntuples(known);
    PQclear(known);
    if (ntuples == 0)
        return bad_usage("unknown job kind '%s': no worker handles it (see qpo.job_kinds)", kind);
    int64_t *parents = NULL;
    size_t nparents = 0;
    if (a->after && parse_parents(a->after, &parents, &nparents)) {
        free(parents);
        return QPO_EXIT_USAGE;
    }
    if (nparents && missing_parents(conn, parents, nparents, err)) {
        free(parents);
        return -1; /* printed by the caller; exit 2 for a usage error */
    }
    qpo_enqueue_opts *o = calloc((size_t)a->count, sizeof(*o));
    int64_t *ids = calloc((size_t)a->count, sizeof(int64_t));
    bool *existed = calloc((size_t)a->count, sizeof(bool));
    for (int i = 0; i < a->count; i++)
        o[i] = (qpo_enqueue_opts){kind,      a->payload, a->priority, a->max_attempts, a->key,
                                  a->run_id, parents,    nparents,    a->run_after};
    int rc = qpo_enqueue_batch_ex(conn, o, (size_t)a->count, ids, existed, err);
    for (int i = 0; rc == 0 && i < a->count; i++)
        printf("%lld%s\n", (long long)ids[i], existed[i] ? " (existing job with this key)" : "");
    free(o);
    free(ids);
    free(existed);
    free(parents);
    return rc;
}

static int do_list(PGconn *conn, const jobs_args *a, qpo_err *err) {
    char run[32], limit[16];
    snprintf(run, sizeof(run), "%lld", (long long)a->run_id);
    snprintf(limit, sizeof(limit), "%d", a->limit);
    const char *params[] = {a->state, a->kind, a->run_id ? run : NULL, limit};
    PGresult *res = qpo_db_named(conn, "queue_list", 4, params, err);
    if (!res)
        return -1;
    printf("%-8s %-18s %-5s %-10s %5s %9s %-16s %-19s %s\n", "id", "kind", "class", "state", "prio",
           "attempt", "lease owner", "created", "last error");
    for (int r = 0; r < PQntuples(res); r++)
        printf("%-8s %-18s %-5s %-10s %5s %4s/%-4s %-16s %-19s %s\n", PQgetvalue(res, r, 0),
               PQgetvalue(res, r, 1), PQgetvalue(res, r, 2), PQgetvalue(res, r, 3),
               PQgetvalue(res, r, 4), PQgetvalue(res, r, 5), PQgetvalue(res, r, 6),
               PQgetvalue(res, r, 7), PQgetvalue(res, r, 8), PQgetvalue(res, r, 9));
    PQclear(res);
    return 0;
}

static int do_show(PGconn *conn, int64_t id, qpo_err *err) {
    char ids[32];
    snprintf(ids, sizeof(ids), "%lld", (long long)id);
    const char *params[] = {ids};
    PGresult *res = qpo_db_named(conn, "queue_show", 1, params, err);
    if (!res)
        return -1;
    if (PQntuples(res) == 0) {
        PQclear(res);
        qpo_err_set(err, QPO_EXIT_USAGE, "job %lld does not exist", (long long)id);
        return -1;
    }
    for (int f = 0; f < PQnfields(res); f++)
        printf("%-17s %s\n", f == PQnfields(res) - 1 ? "parents" : PQfname(res, f),
               PQgetisnull(res, 0, f) ? "-" : PQgetvalue(res, 0, f));
    PQclear(res);
    res = qpo_db_named(conn, "queue_events", 1, params, err);
    if (!res)
        return -1;
    printf("\nhistory:\n");
    for (int r = 0; r < PQntuples(res); r++)
        printf("  %s  %-9s -> %-9s attempt %-3s %-16s %s\n", PQgetvalue(res, r, 0),
               PQgetvalue(res, r, 1), PQgetvalue(res, r, 2), PQgetvalue(res, r, 3),
               PQgetvalue(res, r, 4), PQgetvalue(res, r, 5));
    PQclear(res);
    return 0;
}

int qpo_cmd_jobs(int argc, char **argv) {
    jobs_args a;
    int rc = parse_args(argc, argv, &a);
    if (rc)
        return rc < 0 ? 0 : rc;
    if (optind >= argc)
        return bad_usage("missing action: enqueue, list, show, retry or cancel%s", "");
    const char *action = argv[optind];
    const char *arg = optind + 1 < argc ? argv[optind + 1] : NULL;
    int want_args = strcmp(action, "list") ? 2 : 1;
    if (argc - optind != want_args)
        return bad_usage("wrong number of arguments for '%s'", action);
    int64_t id = 0;
    if ((!strcmp(action, "show") || !strcmp(action, "retry") || !strcmp(action, "cancel")) &&
        parse_id(arg, &id))
        return QPO_EXIT_USAGE;
    if (strcmp(action, "enqueue") && strcmp(action, "list") && !id)
        return bad_usage("unknown action '%s'", action);
    qpo_err err = {0};
    PGconn *conn = qpo_db_connect(qpo_db_conninfo(a.db), "qpo jobs", &err);
    if (!conn || qpo_migrate_check(conn, &err) < 0) {
        PQfinish(conn);
        return qpo_err_print(&err);
    }
    if (!strcmp(action, "enqueue"))
        rc = do_enqueue(conn, &a, arg, &err);
    else if (!strcmp(action, "list"))
        rc = do_list(conn, &a, &err);
    else if (!strcmp(action, "show"))
        rc = do_show(conn, id, &err);
    else if (!strcmp(action, "retry"))
        rc = qpo_job_retry(conn, id, &err);
    else
        rc = qpo_job_cancel(conn, id, a.reason ? a.reason : "cancelled by qpo jobs cancel", &err);
    if (rc == 0 && (!strcmp(action, "retry") || !strcmp(action, "cancel")))
        printf("job %lld %s\n", (long long)id,
               !strcmp(action, "retry") ? "queued again" : "cancelled");
    PQfinish(conn);
    if (rc == QPO_EXIT_USAGE)
        return rc;
    return rc < 0 ? qpo_err_print(&err) : 0;
}
