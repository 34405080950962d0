/* Matmul for decoding (a handful of rows): sgemm would repack the whole weight matrix for
 * every token, and its blocking may depend on the row count. Here each weight is streamed once
 * per call, and every output element is summed over k in the same order whatever the number of
 * rows, so batched and one-at-a-time decoding agree bit for bit. */
#include <string.h>

#include "cpu_ops.h"

#define OBLOCK 256

/* One block of output columns: out[m, o0..o0+len) += inp[m,k] * W[k, ...], k ascending. */
QPO_MULTIVERSION
static void in_out_block(float *out, const float *inp, const float *w, const float *bias, int N,
                         int C, int OC, int o0, int len) {
    {
        for (int m = 0; m < N; m++) {
            float *y = out + (size_t)m * OC + o0;
            if (bias)
                memcpy(y, bias + o0, sizeof(float) * len);
            else
                memset(y, 0, sizeof(float) * len);
        }
        for (int k = 0; k < C; k++) {
            const float *wk = w + (size_t)k * OC + o0;
            for (int m = 0; m < N; m++) {
                float a = inp[(size_t)m * C + k];
                float *y = out + (size_t)m * OC + o0;
                for (int o = 0; o < len; o++)
                    y[o] += a * wk[o];
            }
        }
    }
}

static void rows_in_out(float *out, const float *inp, const float *w, const float *bias, int N,
                        int C, int OC) {
    int nblocks = (OC + OBLOCK - 1) / OBLOCK;
#pragma omp parallel for schedule(static)
    for (int blk = 0; blk < nblocks; blk++) {
        int o0 = blk * OBLOCK;
        in_out_block(out, inp, w, bias, N, C, OC, o0, OC - o0 < OBLOCK ? OC - o0 : OBLOCK);
    }
}

static inline __attribute__((always_inline)) float dot8(const float *a, const float *b, int n) {
    float acc[8] = {0};
    int i = 0;
    for (; i + 8 <= n; i += 8)
        for (int k = 0; k < 8; k++)
            acc[k] += a[i + k] * b[i + k];
    float s = ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
    for (; i < n; i++)
        s += a[i] * b[i];
    return s;
}

/* out[m, o] = bias[o] + dot(inp[m], W[o]) for o in [o0, o1). */
QPO_MULTIVERSION
static void out_in_block(float *out, const float *inp, const float *w, const float *bias, int N,
                         int C, int OC, int o0, int o1) {
    for (int o = o0; o < o1; o++) {
        const float *wo = w + (size_t)o * C;
        for (int m = 0; m < N; m++)
            out[(size_t)m * OC + o] = dot8(inp + (size_t)m * C, wo, C) + (bias ? bias[o] : 0.0f);
    }
}

/* W [OC, C] */
static void rows_out_in(float *out, const float *inp, const float *w, const float *bias, int N,
                        int C, int OC) {
    int nblocks = (OC + OBLOCK - 1) / OBLOCK;
#pragma omp parallel for schedule(static)
    for (int blk = 0; blk < nblocks; blk++) {
        int o0 = blk * OBLOCK;
        out_in_block(out, inp, w, bias, N, C, OC, o0, o0 + OBLOCK < OC ? o0 + OBLOCK : OC);
    }
}

void qpo_cpu_matmul_rows_forward(float *out, const float *inp, const float *w, const float *bias,
                                 int N, int C, int OC, int w_in_out) {
    if (w_in_out)
        rows_in_out(out, inp, w, bias, N, C, OC);
    else
        rows_out_in(out, inp, w, bias, N, C, OC);
}
