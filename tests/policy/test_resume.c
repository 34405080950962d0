/* Resumed training is bitwise equal to straight training: 20 steps in one process against 10
 * steps, a checkpoint, and 10 more steps in a new process (resume_helper) with another thread
 * count. A state file that
 * does not belong to the weights or the options is refused. */
#include <math.h>
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "fixture.h"
#include "safetensors.h"
#include "train.h"

static char *dir;

/* threads: OMP_NUM_THREADS for the phase (0: inherited) */
static void run_helper(const char *phase, int threads) {
    char cmd[2048], env[64] = "";
    if (threads)
        snprintf(env, sizeof env, "OMP_NUM_THREADS=%d ", threads);
    snprintf(cmd, sizeof cmd, "%s'%s' %s '%s'", env, RESUME_HELPER, phase, dir);
    int rc = system(cmd);
    if (rc != 0)
        fail_msg("%s exited with %d", cmd, rc);
}

static unsigned char *slurp(const char *name, size_t *n) {
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    fseek(f, 0, SEEK_END);
    *n = (size_t)ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *b = malloc(*n);
    assert_int_equal(fread(b, 1, *n, f), *n);
    fclose(f);
    return b;
}

static void test_bitwise_resume(void **state) {
    (void)state;
    run_helper("straight", 2);
    run_helper("first", 2);
    run_helper("second", 1); /* another thread count: the ops' results do not depend on it */
    size_t a, b, c;
    unsigned char *straight = slurp("straight.safetensors", &a);
    unsigned char *resumed = slurp("resumed.safetensors", &b);
    unsigned char *half = slurp("ckpt.safetensors", &c);
    assert_int_equal(a, b);
    assert_memory_equal(straight, resumed, a);
    assert_memory_not_equal(straight, half, a); /* the second half did train */
    free(straight), free(resumed), free(half);
}

static void test_mismatched_state_refused(void **state) {
    (void)state;
    char err[512], ckpt[1024];
    snprintf(ckpt, sizeof ckpt, "%s/ckpt.safetensors", dir);
    qpo_policy *p = qpo_policy_load(ckpt, qpo_backend_cpu(), err, sizeof err);
    assert_non_null(p);
    qpo_records r;
    qpo_records_alloc(&r, 40);
    for (size_t i = 0; i < 40 * QPO_PGDT_PLEN; i++)
        r.prompt_mask[i] = 1;
    qpo_train_opts o;
    qpo_train_opts_default(&o);
    o.batch_size = 6, o.lr_step_epochs = 1, o.seed = 43; /* not the saved seed */
    qpo_trainer *tr = qpo_trainer_new(p, &o, &r, err, sizeof err);
    assert_int_equal(qpo_trainer_load_state(tr, ckpt, err, sizeof err), -1);
    assert_non_null(strstr(err, "options"));
    qpo_trainer_free(tr);
    o.seed = 42;
    qpo_policy_params(p)[0] += 1.0f; /* weights that are not the saved ones */
    tr = qpo_trainer_new(p, &o, &r, err, sizeof err);
    assert_int_equal(qpo_trainer_load_state(tr, ckpt, err, sizeof err), -1);
    assert_non_null(strstr(err, "weights"));
    qpo_trainer_free(tr);
    qpo_records_free(&r);
    qpo_policy_free(p);
}

/* Copies ckpt's state to poison.safetensors.state with one AdamW moment set to NaN. */
static void write_poisoned_state(qpo_policy *p) {
    char err[512], path[1024];
    snprintf(path, sizeof path, "%s/ckpt.safetensors.state", dir);
    qpo_st_file *f = qpo_st_open(path, err, sizeof err);
    assert_non_null(f);
    qpo_st_writer *w = qpo_st_writer_new();
    for (size_t i = 0; i < qpo_st_count(f); i++) {
        const qpo_st_tensor *t = qpo_st_at(f, i);
        void *copy = malloc(t->nbytes);
        memcpy(copy, t->data, t->nbytes);
        if (!strcmp(t->name, "adamw.exp_avg_sq"))
            ((float *)copy)[7] = NAN;
        assert_int_equal(qpo_st_writer_add(w, t->name, t->dtype, t->ndim, t->shape, copy), 0);
        free(copy);
    }
    qpo_st_writer_metadata(w, "trainer", qpo_st_metadata(f, "trainer"));
    snprintf(path, sizeof path, "%s/poison.safetensors.state", dir);
    assert_int_equal(qpo_st_writer_write(w, path, err, sizeof err), 0);
    qpo_st_writer_free(w);
    qpo_st_close(f);
    snprintf(path, sizeof path, "%s/poison.safetensors", dir);
    assert_int_equal(qpo_policy_save(p, path, err, sizeof err), 0);
}

static void test_non_finite_state_refused(void **state) {
    (void)state;
    char err[512], ckpt[1024];
    snprintf(ckpt, sizeof ckpt, "%s/ckpt.safetensors", dir);
    qpo_policy *p = qpo_policy_load(ckpt, qpo_backend_cpu(), err, sizeof err);
    assert_non_null(p);
    write_poisoned_state(p);
    qpo_records r;
    qpo_records_alloc(&r, 40);
    for (size_t i = 0; i < 40 * QPO_PGDT_PLEN; i++)
        r.prompt_mask[i] = 1;
    qpo_train_opts o;
    qpo_train_opts_default(&o);
    o.batch_size = 6, o.lr_step_epochs = 1, o.seed = 42;
    qpo_trainer *tr = qpo_trainer_new(p, &o, &r, err, sizeof err);
    assert_int_equal(qpo_trainer_load_state(tr, ckpt, err, sizeof err), 0); /* the clean one */
    snprintf(ckpt, sizeof ckpt, "%s/poison.safetensors", dir);
    assert_int_equal(qpo_trainer_load_state(tr, ckpt, err, sizeof err), -1);
    if (!strstr(err, "poison.safetensors.state: tensor 'adamw.exp_avg_sq' holds a non-finite "
                     "value at element 7"))
        fail_msg("unexpected error: %s", err);
    qpo_trainer_free(tr);
    qpo_records_free(&r);
    qpo_policy_free(p);
}

int main(void) {
    dir = temp_dir();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bitwise_resume),
        cmocka_unit_test(test_mismatched_state_refused),
        cmocka_unit_test(test_non_finite_state_refused),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        rc = 1;
    free(dir);
    return rc;
}
