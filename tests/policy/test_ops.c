/* Op-level checks of the CPU backend, the ones a CUDA backend will be held to as well: the
 * decode matmul against sgemm and row by row (bitwise), and one decode step of attention against
 * the full causal attention. Odd sizes exercise every tail path. */
#include <math.h>
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "backend.h"
#include "fixture.h"
#include "hash.h"

static float *randv(size_t n, uint64_t seed) {
    float *x = malloc(n * sizeof(float));
    for (size_t i = 0; i < n; i++)
        x[i] = 2.0f * qpo_hash_unit(seed, i) - 1.0f;
    return x;
}

static void check_rows(int N, int C, int OC, int in_out) {
    const qpo_backend *be = qpo_backend_cpu();
    float *x = randv((size_t)N * C, 1), *w = randv((size_t)C * OC, 2), *b = randv(OC, 3);
    float *ref = malloc(sizeof(float) * N * OC), *got = malloc(sizeof(float) * N * OC);
    float *one = malloc(sizeof(float) * OC);
    be->matmul_forward(ref, x, w, b, N, C, OC, in_out);
    be->matmul_rows_forward(got, x, w, b, N, C, OC, in_out);
    double rel = rel_max_diff(got, ref, (size_t)N * OC);
    if (rel > 1e-5)
        fail_msg("matmul_rows_forward %dx%dx%d (in_out %d) differs from sgemm: %.3g", N, C, OC,
                 in_out, rel);
    for (int m = 0; m < N; m++) {
        be->matmul_rows_forward(one, x + (size_t)m * C, w, b, 1, C, OC, in_out);
        assert_memory_equal(one, got + (size_t)m * OC, sizeof(float) * OC);
    }
    free(x), free(w), free(b), free(ref), free(got), free(one);
}

static void test_matmul_rows(void **state) {
    (void)state;
    for (int in_out = 0; in_out < 2; in_out++) {
        check_rows(5, 64, 192, in_out);
        check_rows(7, 37, 301, in_out);
        check_rows(1, 16, 32, in_out);
        check_rows(9, 130, 515, in_out);
    }
}

static void test_attention_decode(void **state) {
    (void)state;
    const qpo_backend *be = qpo_backend_cpu();
    enum { B = 3, T = 9, C = 24, NH = 3 };
    float *qkv = randv((size_t)B * T * 3 * C, 4), *out = calloc(B * T * C, 4);
    float *probs = calloc(B * NH * T * T, 4), *kc = calloc(B * T * C, 4),
          *vc = calloc(B * T * C, 4);
    int32_t mask[B * T];
    for (int i = 0; i < B * T; i++)
        mask[i] = (i % T) == 0 || (i * 7) % 5 != 0; /* some pads, never the first key */
    be->attention_forward(out, probs, qkv, mask, B, T, C, NH, (qpo_dropout){0});
    be->kv_store(kc, vc, qkv, B, T, 0, T, C);
    float last_qkv[B * 3 * C], dec[B * C];
    for (int b = 0; b < B; b++)
        memcpy(last_qkv + b * 3 * C, qkv + ((size_t)b * T + T - 1) * 3 * C, sizeof(float) * 3 * C);
    be->attention_decode(dec, last_qkv, kc, vc, mask, B, T, T, C, NH);
    for (int b = 0; b < B; b++) {
        double rel = rel_max_diff(dec + b * C, out + ((size_t)b * T + T - 1) * C, C);
        if (rel > 1e-5)
            fail_msg("row %d: decode attention differs from full attention: %.3g", b, rel);
    }
    free(qkv), free(out), free(probs), free(kc), free(vc);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_matmul_rows),
        cmocka_unit_test(test_attention_decode),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
