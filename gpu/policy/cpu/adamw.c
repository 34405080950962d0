/* AdamW exactly as torch.optim.AdamW's single-tensor path (decay first, then the bias-
 * corrected step), and the chunked sum of squares used for gradient-norm clipping. */
#include <math.h>
#include <stdlib.h>

#include "cpu_ops.h"

#define SUMSQ_CHUNK 65536

double qpo_cpu_sumsq(const float *x, size_t n) {
    size_t nchunks = (n + SUMSQ_CHUNK - 1) / SUMSQ_CHUNK;
    double *part = malloc(sizeof(double) * (nchunks ? nchunks : 1));
    if (!part)
        abort();
#pragma omp parallel for schedule(static)
    for (size_t k = 0; k < nchunks; k++) {
        size_t end = (k + 1) * SUMSQ_CHUNK < n ? (k + 1) * SUMSQ_CHUNK : n;
        double s = 0.0;
        for (size_t i = k * SUMSQ_CHUNK; i < end; i++)
            s += (double)x[i] * x[i];
        part[k] = s;
    }
    double total = 0.0;
    for (size_t k = 0; k < nchunks; k++)
        total += part[k];
    free(part);
    return total;
}

void qpo_cpu_adamw_update(float *p, const float *g, float *m, float *v, size_t n, float gscale,
                          float lr, float beta1, float beta2, float eps, float wd, int t) {
    float bc1 = 1.0f - powf(beta1, (float)t);
    double bc2 = 1.0 - pow(beta2, t);
    float step_size = lr / bc1;
    float bc2_sqrt = (float)sqrt(bc2);
    float decay = 1.0f - lr * wd;
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < n; i++) {
        float gi = g[i] * gscale;
        p[i] *= decay;
        m[i] = m[i] * beta1 + gi * (1.0f - beta1);
        v[i] = v[i] * beta2 + gi * gi * (1.0f - beta2);
        float denom = sqrtf(v[i]) / bc2_sqrt + eps;
        p[i] -= step_size * (m[i] / denom);
    }
}
