/* Trains the tiny policy for the resume test, each phase in its own process:
 *   resume_helper straight DIR   20 steps, saves DIR/straight.safetensors
 *   resume_helper first DIR      10 steps, saves DIR/ckpt.safetensors (+ .state)
 *   resume_helper second DIR     loads DIR/ckpt.*, 10 more steps, saves DIR/resumed.safetensors
 * 40 records in batches of 6 (the last batch of an epoch has 4) and StepLR every epoch, so the
 * checkpoint falls mid-epoch and the schedule moves during the run. */
#include <stdio.h>
#include <string.h>

#include "hash.h"
#include "train.h"

static void records(qpo_records *r, int vocab) {
    qpo_records_alloc(r, 40);
    for (size_t b = 0; b < r->n; b++)
        for (int t = 0; t < QPO_PGDT_QLEN; t++) {
            size_t i = b * QPO_PGDT_QLEN + t;
            int ql = 5 + (int)(b % 30), pl = 3 + (int)(b % 35);
            r->query_mask[i] = t < ql;
            r->query_ids[i] = t < ql ? (int32_t)(qpo_hash2(1, i) % (vocab - 1)) : vocab - 1;
            r->prompt_mask[i] = t < pl;
            r->prompt_ids[i] = t < pl - 1 ? (int32_t)(qpo_hash2(2, i) % (vocab - 1)) : vocab - 1;
            r->reward[b] = 100.0f * qpo_hash_unit(3, b);
        }
}

static int train(qpo_policy *p, const qpo_records *r, const char *resume, int steps,
                 const char *out, int save_state) {
    char err[512];
    qpo_train_opts o;
    qpo_train_opts_default(&o);
    o.batch_size = 6, o.lr_step_epochs = 1, o.seed = 42;
    qpo_trainer *tr = qpo_trainer_new(p, &o, r, err, sizeof err);
    int rc = !tr || (resume && qpo_trainer_load_state(tr, resume, err, sizeof err));
    for (int s = 0; !rc && s < steps; s++) {
        qpo_loss l;
        rc = qpo_trainer_step(tr, &l, err, sizeof err);
    }
    if (!rc)
        rc = save_state ? qpo_trainer_save(tr, out, err, sizeof err)
                        : qpo_policy_save(p, out, err, sizeof err);
    if (rc)
        fprintf(stderr, "resume_helper: %s\n", err);
    qpo_trainer_free(tr);
    return rc ? 1 : 0;
}

int main(int argc, char **argv) {
    if (argc != 3)
        return 2;
    char err[512], ckpt[1024], out[1024];
    qpo_policy_config cfg;
    qpo_policy_config_named("tiny", &cfg);
    qpo_records r;
    records(&r, cfg.vocab);
    snprintf(ckpt, sizeof ckpt, "%s/ckpt.safetensors", argv[2]);
    qpo_policy *p;
    int rc;
    if (!strcmp(argv[1], "second")) {
        p = qpo_policy_load(ckpt, qpo_backend_cpu(), err, sizeof err);
        if (!p) {
            fprintf(stderr, "resume_helper: %s\n", err);
            return 1;
        }
        snprintf(out, sizeof out, "%s/resumed.safetensors", argv[2]);
        rc = train(p, &r, ckpt, 10, out, 0);
    } else {
        p = qpo_policy_new(&cfg, qpo_backend_cpu(), err, sizeof err);
        qpo_policy_init_random(p, 0);
        int straight = !strcmp(argv[1], "straight");
        snprintf(out, sizeof out, "%s/straight.safetensors", argv[2]);
        rc = train(p, &r, NULL, straight ? 20 : 10, straight ? out : ckpt, !straight);
    }
    qpo_policy_free(p);
    qpo_records_free(&r);
    return rc;
}
