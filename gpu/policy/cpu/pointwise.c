/* Elementwise ops: GELU (tanh approximation), ReLU, dropout, residual adds, scaling. */
#include <math.h>

#include "cpu_ops.h"

#define GELU_K 0.7978845608028654f /* sqrt(2/pi) */

void qpo_cpu_gelu_forward(float *out, const float *inp, size_t n) {
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < n; i++) {
        float x = inp[i];
        out[i] = 0.5f * x * (1.0f + tanhf(GELU_K * (x + 0.044715f * x * x * x)));
    }
}

void qpo_cpu_gelu_backward(float *dinp, const float *inp, const float *dout, size_t n) {
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < n; i++) {
        float x = inp[i];
        float u = GELU_K * (x + 0.044715f * x * x * x);
        float th = tanhf(u);
        float sech2 = 1.0f - th * th;
        float du = GELU_K * (1.0f + 3.0f * 0.044715f * x * x);
        dinp[i] += dout[i] * (0.5f * (1.0f + th) + 0.5f * x * sech2 * du);
    }
}

void qpo_cpu_relu_forward(float *out, const float *inp, size_t n) {
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < n; i++)
        out[i] = inp[i] > 0.0f ? inp[i] : 0.0f;
}

void qpo_cpu_relu_backward(float *dinp, const float *out, const float *dout, size_t n) {
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < n; i++)
        if (out[i] > 0.0f)
            dinp[i] += dout[i];
}

void qpo_cpu_dropout_forward(float *x, size_t n, qpo_dropout drop) {
    if (drop.p <= 0.0f)
        return;
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < n; i++)
        x[i] *= qpo_dropout_scale(drop, i);
}

void qpo_cpu_dropout_backward(float *dx, size_t n, qpo_dropout drop) {
    qpo_cpu_dropout_forward(dx, n, drop);
}

void qpo_cpu_residual_forward(float *out, const float *a, const float *b, size_t n) {
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < n; i++)
        out[i] = a[i] + b[i];
}

void qpo_cpu_accumulate(float *dst, const float *src, size_t n) {
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < n; i++)
        dst[i] += src[i];
}

void qpo_cpu_scale(float *x, size_t n, float s) {
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < n; i++)
        x[i] *= s;
}
