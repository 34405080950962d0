#include "fixture.h"

#include <math.h>
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "hash.h"
#include "safetensors.h"

const char *fixture_dir(void) {
    return QPO_REF_DIR;
}

char *fixture_path(const char *name) {
    size_t n = strlen(QPO_REF_DIR) + strlen(name) + 2;
    char *s = malloc(n);
    snprintf(s, n, "%s/%s", QPO_REF_DIR, name);
    return s;
}

static void *read_i32(const qpo_st_file *f, const char *name, size_t n) {
    const qpo_st_tensor *t = qpo_st_find(f, name);
    assert_non_null(t);
    assert_int_equal(t->nbytes, n * 4);
    void *dst = malloc(n * 4);
    memcpy(dst, t->data, n * 4);
    return dst;
}

void fixture_batch_load(const char *path, fixture_batch *fb) {
    char err[256];
    qpo_st_file *f = qpo_st_open(path, err, sizeof err);
    if (!f)
        fail_msg("%s", err);
    const qpo_st_tensor *r = qpo_st_find(f, "reward");
    assert_non_null(r);
    int B = (int)r->shape[0];
    size_t n = (size_t)B * QPO_PGDT_QLEN;
    fb->qi = read_i32(f, "query_ids", n);
    fb->qm = read_i32(f, "query_mask", n);
    fb->pi = read_i32(f, "prompt_ids", n);
    fb->pm = read_i32(f, "prompt_mask", n);
    fb->r = read_i32(f, "reward", B);
    fb->b = (qpo_batch){B, fb->qi, fb->qm, fb->pi, fb->pm, fb->r};
    qpo_st_close(f);
}

void fixture_batch_random(fixture_batch *fb, int B, int vocab, uint64_t seed) {
    size_t n = (size_t)B * QPO_PGDT_QLEN;
    fb->qi = malloc(n * 4), fb->qm = malloc(n * 4), fb->pi = malloc(n * 4);
    fb->pm = malloc(n * 4), fb->r = malloc(B * 4);
    int eos = vocab - 1;
    for (int b = 0; b < B; b++) {
        int qlen = 5 + (int)(qpo_hash2(seed, 4 * b) % 36);
        int plen = 3 + (int)(qpo_hash2(seed, 4 * b + 1) % 38);
        for (int t = 0; t < QPO_PGDT_QLEN; t++) {
            size_t i = (size_t)b * QPO_PGDT_QLEN + t;
            fb->qm[i] = t < qlen;
            fb->qi[i] = t < qlen ? (int)(qpo_hash2(seed + 1, i) % (vocab - 1)) : eos;
            fb->pm[i] = t < plen;
            fb->pi[i] = t < plen - 1 ? (int)(qpo_hash2(seed + 2, i) % (vocab - 1)) : eos;
        }
        fb->r[b] = 100.0f * qpo_hash_unit(seed + 3, b);
    }
    fb->b = (qpo_batch){B, fb->qi, fb->qm, fb->pi, fb->pm, fb->r};
}

void fixture_batch_free(fixture_batch *fb) {
    free(fb->qi), free(fb->qm), free(fb->pi), free(fb->pm), free(fb->r);
}

double rel_max_diff(const float *a, const float *b, size_t n) {
    double md = 0.0, mb = 0.0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - b[i]);
        md = d > md ? d : md;
        mb = fabs(b[i]) > mb ? fabs(b[i]) : mb;
    }
    return mb > 0 ? md / mb : md;
}

char *temp_dir(void) {
    char *t = strdup("/tmp/qpo-policy-test-XXXXXX");
    assert_non_null(mkdtemp(t));
    return t;
}
