/* Embeddings: the PGDT input tokens, positions, and row gathers for the prompt head. Their
 * backward passes scatter into shared rows, so threads own column blocks and walk tokens in
 * order. */
#include <string.h>

#include "cpu_ops.h"

void qpo_cpu_pgdt_embed_forward(float *out, const int32_t *qids, const int32_t *pids,
                                const float *reward, const float *wte, const float *seg,
                                const float *ret_w, const float *ret_b, int B, int Q, int P,
                                int C) {
    int T = 1 + Q + P;
#pragma omp parallel for schedule(static)
    for (int b = 0; b < B; b++) {
        float *o = out + (size_t)b * T * C;
        for (int c = 0; c < C; c++)
            o[c] = reward[b] * ret_w[c] + ret_b[c] + seg[c];
        for (int t = 1; t < T; t++) {
            int is_q = t <= Q;
            int32_t id = is_q ? qids[(size_t)b * Q + t - 1] : pids[(size_t)b * P + t - 1 - Q];
            const float *e = wte + (size_t)id * C, *s = seg + (size_t)(is_q ? 1 : 2) * C;
            float *ot = o + (size_t)t * C;
            for (int c = 0; c < C; c++)
                ot[c] = e[c] + s[c];
        }
    }
}

void qpo_cpu_pgdt_embed_backward(float *dwte, float *dseg, float *dret_w, float *dret_b,
                                 const float *dout, const int32_t *qids, const int32_t *pids,
                                 const float *reward, int B, int Q, int P, int C) {
    int T = 1 + Q + P;
    int nblocks = (C + QPO_CPU_COLBLOCK - 1) / QPO_CPU_COLBLOCK;
#pragma omp parallel for schedule(static)
    for (int blk = 0; blk < nblocks; blk++) {
        int c0 = blk * QPO_CPU_COLBLOCK;
        int c1 = c0 + QPO_CPU_COLBLOCK < C ? c0 + QPO_CPU_COLBLOCK : C;
        for (int b = 0; b < B; b++) {
            const float *g = dout + (size_t)b * T * C;
            for (int c = c0; c < c1; c++) {
                dret_w[c] += g[c] * reward[b];
                dret_b[c] += g[c];
                dseg[c] += g[c];
            }
            for (int t = 1; t < T; t++) {
                int is_q = t <= Q;
                int32_t id = is_q ? qids[(size_t)b * Q + t - 1] : pids[(size_t)b * P + t - 1 - Q];
                const float *gt = g + (size_t)t * C;
                float *dw = dwte + (size_t)id * C, *ds = dseg + (size_t)(is_q ? 1 : 2) * C;
                for (int c = c0; c < c1; c++) {
                    dw[c] += gt[c];
                    ds[c] += gt[c];
                }
            }
        }
    }
}

void qpo_cpu_position_forward(float *out, const float *inp, const float *wpe, int B, int T,
                              int pos0, int C) {
#pragma omp parallel for collapse(2) schedule(static)
    for (int b = 0; b < B; b++)
        for (int t = 0; t < T; t++) {
            size_t o = ((size_t)b * T + t) * C;
            const float *p = wpe + (size_t)(pos0 + t) * C;
            for (int c = 0; c < C; c++)
                out[o + c] = inp[o + c] + p[c];
        }
}

void qpo_cpu_position_backward(float *dwpe, const float *dout, int B, int T, int pos0, int C) {
#pragma omp parallel for schedule(static)
    for (int t = 0; t < T; t++) {
        float *d = dwpe + (size_t)(pos0 + t) * C;
        for (int b = 0; b < B; b++) {
            const float *g = dout + ((size_t)b * T + t) * C;
            for (int c = 0; c < C; c++)
                d[c] += g[c];
        }
    }
}

void qpo_cpu_gather_rows(float *dst, const float *src, const int32_t *idx, int M, int C) {
#pragma omp parallel for schedule(static)
    for (int i = 0; i < M; i++)
        memcpy(dst + (size_t)i * C, src + (size_t)idx[i] * C, sizeof(float) * C);
}

void qpo_cpu_gather_rows_backward(float *dsrc, const float *ddst, const int32_t *idx, int M,
                                  int C) {
    int nblocks = (C + QPO_CPU_COLBLOCK - 1) / QPO_CPU_COLBLOCK;
#pragma omp parallel for schedule(static)
    for (int blk = 0; blk < nblocks; blk++) {
        int c0 = blk * QPO_CPU_COLBLOCK;
        int c1 = c0 + QPO_CPU_COLBLOCK < C ? c0 + QPO_CPU_COLBLOCK : C;
        for (int i = 0; i < M; i++)
            for (int c = c0; c < c1; c++)
                dsrc[(size_t)idx[i] * C + c] += ddst[(size_t)i * C + c];
    }
}
