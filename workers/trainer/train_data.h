#ifndef QPO_TRAINER_TRAIN_DATA_H
#define QPO_TRAINER_TRAIN_DATA_H

/* Loop t's training set (D_0 + the run's records of loops < t) and D_0's raw reward range,
 * less a held-out slice of its queries when the run selects its checkpoint on held-out data. */

#include <string.h>

#include "trainer_internal.h"

typedef struct qpo_train_data {
    qpo_records records; /* trained on */
    qpo_records heldout; /* run->heldout's share of the queries, never trained on (may be 0) */
    double min_raw, max_raw;
    int d0_records, run_records;
} qpo_train_data;

/* D_0's range; QPO_EXIT_USAGE with a hint naming the import when D_0 is missing or flat. */
int qpo_d0_range(PGconn *conn, const qpo_trun *run, double *min_raw, double *max_raw, qpo_err *err);
int qpo_train_data_load(PGconn *conn, const qpo_trun *run, int loop, const qpo_tokenizer *tok,
                        int vocab, qpo_train_data *out, qpo_err *err);
void qpo_train_data_free(qpo_train_data *d);

/* Whether a query is held out: a hash of its text and the run's seed below `share`, so every
 * record of a query, in every loop and attempt, falls on the same side. */
int qpo_query_held_out(const char *query, int run_seed, double share);

#endif
