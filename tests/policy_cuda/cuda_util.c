/* Helpers for the CUDA tests (cuda_util.h). */
#include <math.h>
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "cuda_util.h"
#include "fixture.h"
#include "hash.h"

const qpo_backend *cuda_or_skip(qpo_dtype dtype) {
    char err[256];
    const qpo_backend *be = qpo_backend_cuda(dtype, err, sizeof err);
    if (!be) {
        printf("SKIP: needs a CUDA device: %s\n", err);
        fflush(stdout);
        exit(SKIP_CODE);
    }
    return be;
}

float *rand_host(size_t n, uint64_t seed) {
    float *x = malloc(n * sizeof(float));
    if (!x)
        abort();
    for (size_t i = 0; i < n; i++)
        x[i] = 2.0f * qpo_hash_unit(seed, i) - 1.0f;
    return x;
}

void *to_dev(const qpo_backend *be, const void *host, size_t bytes) {
    void *d = be->alloc(bytes);
    if (!d)
        abort();
    if (host)
        be->upload(d, host, bytes);
    return d;
}

float *from_dev(const qpo_backend *be, const float *dev, size_t n) {
    float *h = malloc(n * sizeof(float) + 1);
    if (!h)
        abort();
    be->download(h, dev, n * sizeof(float));
    return h;
}

void expect_close(const qpo_backend *be, const char *what, const float *got_dev, const float *want,
                  size_t n, double tol) {
    float *got = from_dev(be, got_dev, n);
    double rel = rel_max_diff(got, want, n);
    int finite = 1;
    for (size_t i = 0; i < n; i++)
        finite &= isfinite(got[i]);
    free(got);
    if (!finite || !(rel <= tol))
        fail_msg("%s: CUDA differs from the CPU backend by %.3g relative (tolerance %.1g)%s", what,
                 rel, tol, finite ? "" : ", with non-finite values");
}
