/* The training set of loop t: D_0 of (task, setting, target) plus the run's records merged by
 * loops before t, tokenised, with r_norm from D_0's raw reward range. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>

#include "db.h"
#include "records.h"
#include "train_data.h"

int qpo_d0_range(PGconn *conn, const qpo_trun *run, double *min_raw, double *max_raw,
                 qpo_err *err) {
    const char *params[3] = {run->task, run->setting, run->target};
    PGresult *res = qpo_db_named(conn, "trainer_d0_range", 3, params, err);
    if (!res)
        return -1;
    long long n = atoll(PQgetvalue(res, 0, 2));
    if (n > 0) {
        *min_raw = atof(PQgetvalue(res, 0, 0));
        *max_raw = atof(PQgetvalue(res, 0, 1));
    }
    PQclear(res);
    if (n == 0) {
        qpo_err_set(err, QPO_EXIT_USAGE,
                    "no D_0 for task %s, setting %s, target %s (run %" PRId64 ")", run->task,
                    run->setting, run->target, run->id);
        qpo_err_detail(err, "qpo.d0_records holds no row for them");
        qpo_err_hint(err,
                     "import it: qpo data import-d0 FILE --task %s --setting %s --target %s; "
                     "or plan the experiment with \"d0\": {\"source\": \"build\"}; then "
                     "'qpo resume'",
                     run->task, run->setting, run->target);
        return -1;
    }
    if (!(*max_raw > *min_raw)) {
        qpo_err_set(err, QPO_EXIT_USAGE,
                    "D_0 of task %s, setting %s, target %s has one raw "
                    "reward (%g) for all %lld records: r_norm is undefined",
                    run->task, run->setting, run->target, *min_raw, n);
        qpo_err_hint(err, "D_0 needs records with different rewards; rebuild or re-import it");
        return -1;
    }
    return 0;
}

static int append_rows(PGresult *res, qpo_text_record **recs, size_t *n) {
    size_t add = (size_t)PQntuples(res);
    qpo_text_record *r = realloc(*recs, (*n + add + 1) * sizeof *r);
    if (!r)
        return -1;
    for (size_t i = 0; i < add; i++) {
        r[*n + i] = (qpo_text_record){.query = PQgetvalue(res, (int)i, 0),
                                      .prompt = PQgetvalue(res, (int)i, 1),
                                      .raw_reward = atof(PQgetvalue(res, (int)i, 2))};
    }
    *recs = r;
    *n += add;
    return 0;
}

int qpo_query_held_out(const char *query, int run_seed, double share) {
    uint64_t h = 0xcbf29ce484222325ull; /* FNV-1a */
    for (const unsigned char *c = (const unsigned char *)query; *c; c++)
        h = (h ^ *c) * 0x100000001b3ull;
    uint64_t mixed = qpo_trainer_seed((uint64_t)run_seed ^ 0x68656c646f7574ull, h);
    return (double)(mixed >> 11) * 0x1.0p-53 < share;
}

/* Moves the held-out records to the end, keeping each side's order; returns how many. A split
 * that would leave nothing to train on holds nothing out. */
static size_t split_heldout(const qpo_trun *run, qpo_text_record *recs, size_t n) {
    if (!(run->heldout > 0) || n == 0)
        return 0;
    qpo_text_record *tmp = malloc(n * sizeof *tmp);
    if (!tmp)
        return 0;
    size_t kept = 0, held = 0;
    for (size_t i = 0; i < n; i++)
        if (!qpo_query_held_out(recs[i].query, run->seed, run->heldout))
            recs[kept++] = recs[i];
        else
            tmp[held++] = recs[i];
    memcpy(recs + kept, tmp, held * sizeof *tmp);
    free(tmp);
    return kept ? held : 0;
}

int qpo_train_data_load(PGconn *conn, const qpo_trun *run, int loop, const qpo_tokenizer *tok,
                        int vocab, qpo_train_data *out, qpo_err *err) {
    memset(out, 0, sizeof *out);
    if (qpo_d0_range(conn, run, &out->min_raw, &out->max_raw, err))
        return -1;
    const char *d0p[3] = {run->task, run->setting, run->target};
    char rs[24], ls[16];
    snprintf(rs, sizeof rs, "%" PRId64, run->id);
    snprintf(ls, sizeof ls, "%d", loop);
    const char *rrp[2] = {rs, ls};
    PGresult *d0 = qpo_db_named(conn, "trainer_d0_records", 3, d0p, err);
    PGresult *rr = d0 ? qpo_db_named(conn, "trainer_run_records_before", 2, rrp, err) : NULL;
    qpo_text_record *recs = NULL;
    size_t n = 0;
    int rc = -1;
    if (rr && (append_rows(d0, &recs, &n) || append_rows(rr, &recs, &n))) {
        qpo_err_set(err, QPO_EXIT_RUNTIME, "out of memory for the training records");
    } else if (rr) {
        out->d0_records = PQntuples(d0);
        out->run_records = PQntuples(rr);
        size_t held = split_heldout(run, recs, n);
        char msg[512] = "";
        if (qpo_records_from_text(tok, vocab, recs, n - held, out->min_raw, out->max_raw,
                                  &out->records, msg, sizeof msg) ||
            (held && qpo_records_from_text(tok, vocab, recs + (n - held), held, out->min_raw,
                                           out->max_raw, &out->heldout, msg, sizeof msg))) {
            qpo_err_set(err, QPO_EXIT_USAGE,
                        "cannot build the training records of run %" PRId64 " loop %d", run->id,
                        loop);
            qpo_err_detail(err, "%s", msg);
        } else {
            rc = 0;
        }
    }
    free(recs);
    PQclear(d0);
    PQclear(rr);
    return rc;
}

void qpo_train_data_free(qpo_train_data *d) {
    qpo_records_free(&d->records);
    qpo_records_free(&d->heldout);
}
