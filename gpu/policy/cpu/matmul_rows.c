/* Matmul for decoding (a handful of rows): sgemm would repack the whole weight matrix for
 * every token, and its blocking may depend on the row count. Here each weight is streamed once
 * per call, and every output element is summed over k in the same order whatever the number of
 * rows, so batched and one-at-a-time decoding agree bit for bit. */
#include <string.h>

#include "cpu_ops.h"

#define OBLOCK 256
#define RGROUP 4

#define OLANES 32

/* 16 floats as one value, so the accumulators below live in registers (arrays of floats were
 * kept on the stack). Element-wise IEEE arithmetic: the same sums as scalar code. */
typedef float v16 __attribute__((vector_size(64)));

/* Unaligned moves as memcpy (macros: passing 64-byte vectors to functions changes the ABI). */
#define LOAD16(v, p) __builtin_memcpy(&(v), (p), sizeof(v16))
#define STORE16(p, v) __builtin_memcpy((p), &(v), sizeof(v16))

/* out[r, o..o+OLANES) for 4 rows kept in registers across the whole k loop (k ascending):
 * the weights are read once and the outputs written once. Rows past nr alias row 0. */
static inline __attribute__((always_inline)) void in_out_tile(const float *const *x, int nr,
                                                              const float *w, const float *bias,
                                                              int C, int OC, int o, float *out,
                                                              int m0) {
    v16 b0 = {0}, b1 = {0};
    if (bias) {
        LOAD16(b0, bias + o);
        LOAD16(b1, bias + o + 16);
    }
    v16 a[RGROUP][2] = {{b0, b1}, {b0, b1}, {b0, b1}, {b0, b1}};
    for (int k = 0; k < C; k++) {
        const float *wk = w + (size_t)k * OC + o;
        v16 w0, w1;
        LOAD16(w0, wk);
        LOAD16(w1, wk + 16);
        for (int r = 0; r < RGROUP; r++) {
            float xv = x[r][k];
            a[r][0] += xv * w0;
            a[r][1] += xv * w1;
        }
    }
    for (int r = 0; r < nr; r++) {
        STORE16(out + (size_t)(m0 + r) * OC + o, a[r][0]);
        STORE16(out + (size_t)(m0 + r) * OC + o + 16, a[r][1]);
    }
}

/* Output columns o with no full tile left: the same sums, one element at a time. */
static void in_out_tail(const float *inp, int N, const float *w, const float *bias, int C, int OC,
                        int o0, float *out) {
    for (int m = 0; m < N; m++)
        for (int o = o0; o < OC; o++) {
            float s = bias ? bias[o] : 0.0f;
            for (int k = 0; k < C; k++)
                s += inp[(size_t)m * C + k] * w[(size_t)k * OC + o];
            out[(size_t)m * OC + o] = s;
        }
}

/* Columns [o0, o0 + len), len a multiple of OLANES. */
QPO_MULTIVERSION
static void in_out_block(float *out, const float *inp, const float *w, const float *bias, int N,
                         int C, int OC, int o0, int len) {
    for (int m0 = 0; m0 < N; m0 += RGROUP) {
        int nr = N - m0 < RGROUP ? N - m0 : RGROUP;
        const float *x[RGROUP];
        for (int r = 0; r < RGROUP; r++)
            x[r] = inp + (size_t)(m0 + (r < nr ? r : 0)) * C;
        for (int o = o0; o < o0 + len; o += OLANES)
            in_out_tile(x, nr, w, bias, C, OC, o, out, m0);
    }
}

static void rows_in_out(float *out, const float *inp, const float *w, const float *bias, int N,
                        int C, int OC) {
    int full = OC / OLANES * OLANES, nblocks = (full + OBLOCK - 1) / OBLOCK;
#pragma omp parallel for schedule(static)
    for (int blk = 0; blk < nblocks; blk++) {
        int o0 = blk * OBLOCK;
        in_out_block(out, inp, w, bias, N, C, OC, o0, full - o0 < OBLOCK ? full - o0 : OBLOCK);
    }
    in_out_tail(inp, N, w, bias, C, OC, full, out);
}

#define LANES 16

/* Dots of up to 4 input rows with one weight row, as 4 independent chains (a single chain is
 * bound by add latency). Each row's sum runs over the same lanes in the same order whatever
 * rows share its group; rows past nr alias row 0 and are discarded. */
static inline __attribute__((always_inline)) void dot_group(const float *const *x, int nr,
                                                            const float *w, int C, float *res) {
    float a0[LANES] = {0}, a1[LANES] = {0}, a2[LANES] = {0}, a3[LANES] = {0};
    const float *x0 = x[0], *x1 = x[1], *x2 = x[2], *x3 = x[3];
    int i = 0;
    for (; i + LANES <= C; i += LANES) {
        for (int l = 0; l < LANES; l++) {
            float wl = w[i + l];
            a0[l] += x0[i + l] * wl;
            a1[l] += x1[i + l] * wl;
            a2[l] += x2[i + l] * wl;
            a3[l] += x3[i + l] * wl;
        }
    }
    float *acc[RGROUP] = {a0, a1, a2, a3};
    for (int r = 0; r < nr; r++) {
        float *a = acc[r];
        for (int h = LANES / 2; h > 0; h /= 2)
            for (int l = 0; l < h; l++)
                a[l] += a[l + h];
        float sum = a[0];
        for (int k = i; k < C; k++)
            sum += x[r][k] * w[k];
        res[r] = sum;
    }
}

/* out[m, o] = bias[o] + dot(inp[m], W[o]) for o in [o0, o1). */
QPO_MULTIVERSION
static void out_in_block(float *out, const float *inp, const float *w, const float *bias, int N,
                         int C, int OC, int o0, int o1) {
    for (int m0 = 0; m0 < N; m0 += RGROUP) {
        int nr = N - m0 < RGROUP ? N - m0 : RGROUP;
        const float *x[RGROUP];
        for (int r = 0; r < RGROUP; r++)
            x[r] = inp + (size_t)(m0 + (r < nr ? r : 0)) * C;
        for (int o = o0; o < o1; o++) {
            float res[RGROUP];
            dot_group(x, nr, w + (size_t)o * C, C, res);
            for (int r = 0; r < nr; r++)
                out[(size_t)(m0 + r) * OC + o] = res[r] + (bias ? bias[o] : 0.0f);
        }
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
