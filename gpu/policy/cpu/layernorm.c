/* LayerNorm (eps 1e-5, biased variance, as torch). */
#include <math.h>

#include "cpu_ops.h"

void qpo_cpu_layernorm_forward(float *out, float *mean, float *rstd, const float *inp,
                               const float *w, const float *b, int N, int C) {
#pragma omp parallel for schedule(static)
    for (int n = 0; n < N; n++) {
        const float *x = inp + (size_t)n * C;
        float *y = out + (size_t)n * C;
        double s = 0.0, ss = 0.0;
        for (int c = 0; c < C; c++)
            s += x[c];
        float m = (float)(s / C);
        for (int c = 0; c < C; c++) {
            float d = x[c] - m;
            ss += (double)d * d;
        }
        float r = (float)(1.0 / sqrt(ss / C + 1e-5));
        for (int c = 0; c < C; c++)
            y[c] = (x[c] - m) * r * w[c] + b[c];
        mean[n] = m;
        rstd[n] = r;
    }
}

static void layernorm_param_grads(float *dw, float *db, const float *dout, const float *inp,
                                  const float *mean, const float *rstd, int N, int C) {
    int nblocks = (C + QPO_CPU_COLBLOCK - 1) / QPO_CPU_COLBLOCK;
#pragma omp parallel for schedule(static)
    for (int blk = 0; blk < nblocks; blk++) {
        int c0 = blk * QPO_CPU_COLBLOCK;
        int c1 = c0 + QPO_CPU_COLBLOCK < C ? c0 + QPO_CPU_COLBLOCK : C;
        for (int n = 0; n < N; n++) {
            const float *x = inp + (size_t)n * C, *g = dout + (size_t)n * C;
            for (int c = c0; c < c1; c++) {
                dw[c] += g[c] * (x[c] - mean[n]) * rstd[n];
                db[c] += g[c];
            }
        }
    }
}

void qpo_cpu_layernorm_backward(float *dinp, float *dw, float *db, const float *dout,
                                const float *inp, const float *w, const float *mean,
                                const float *rstd, int N, int C) {
    layernorm_param_grads(dw, db, dout, inp, mean, rstd, N, C);
#pragma omp parallel for schedule(static)
    for (int n = 0; n < N; n++) {
        const float *x = inp + (size_t)n * C, *g = dout + (size_t)n * C;
        float *dx = dinp + (size_t)n * C;
        float m = mean[n], r = rstd[n];
        float mean_dn = 0.0f, mean_dn_xhat = 0.0f;
        for (int c = 0; c < C; c++) {
            float dn = g[c] * w[c];
            mean_dn += dn;
            mean_dn_xhat += dn * (x[c] - m) * r;
        }
        mean_dn /= C;
        mean_dn_xhat /= C;
        for (int c = 0; c < C; c++) {
            float xhat = (x[c] - m) * r;
            dx[c] += (g[c] * w[c] - mean_dn - xhat * mean_dn_xhat) * r;
        }
    }
}
