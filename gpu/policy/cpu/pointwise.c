/* Elementwise ops: GELU (tanh approximation), ReLU, dropout, residual adds, scaling. */
#include <math.h>

#include "cpu_ops.h"

#define GELU_K 0.7978845608028654f /* sqrt(2/pi) */
#define CHUNK 4096

/* exp(x) for x <= 0: 2^n * e^r with |r| <= ln2/2 and a degree-6 polynomial (relative error
 * about 2e-7). Plain arithmetic, so it vectorises where libm's tanhf would not; tanhf was a
 * third of a small model's step. */
static inline __attribute__((always_inline)) float exp_neg(float x) {
    x = fmaxf(x, -87.0f);
    float fn = (float)(int)(x * 1.44269504f - 0.5f);
    float r = x - fn * 0.693145752f - fn * 1.42860677e-6f;
    float p = 1.0f + r * (1.0f + r * (0.5f + r * (0.166666672f +
                                                  r * (0.0416666679f + r * (0.00833333377f +
                                                                            r * 0.00138888892f)))));
    union {
        float f;
        int32_t i;
    } scale = {.i = ((int32_t)fn + 127) << 23};
    return p * scale.f;
}

static inline __attribute__((always_inline)) float tanh_fast(float u) {
    float t = exp_neg(-2.0f * fabsf(u));
    return copysignf((1.0f - t) / (1.0f + t), u);
}

QPO_MULTIVERSION
static void gelu_chunk(float *out, const float *inp, size_t n) {
    for (size_t i = 0; i < n; i++) {
        float x = inp[i];
        out[i] = 0.5f * x * (1.0f + tanh_fast(GELU_K * (x + 0.044715f * x * x * x)));
    }
}

QPO_MULTIVERSION
static void gelu_backward_chunk(float *dinp, const float *inp, const float *dout, size_t n) {
    for (size_t i = 0; i < n; i++) {
        float x = inp[i];
        float th = tanh_fast(GELU_K * (x + 0.044715f * x * x * x));
        float sech2 = 1.0f - th * th;
        float du = GELU_K * (1.0f + 3.0f * 0.044715f * x * x);
        dinp[i] += dout[i] * (0.5f * (1.0f + th) + 0.5f * x * sech2 * du);
    }
}

void qpo_cpu_gelu_forward(float *out, const float *inp, size_t n) {
#pragma omp parallel for schedule(static)
    for (size_t c = 0; c < n; c += CHUNK)
        gelu_chunk(out + c, inp + c, n - c < CHUNK ? n - c : CHUNK);
}

void qpo_cpu_gelu_backward(float *dinp, const float *inp, const float *dout, size_t n) {
#pragma omp parallel for schedule(static)
    for (size_t c = 0; c < n; c += CHUNK)
        gelu_backward_chunk(dinp + c, inp + c, dout + c, n - c < CHUNK ? n - c : CHUNK);
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

QPO_MULTIVERSION
static void dropout_chunk(float *x, size_t i0, size_t n, qpo_dropout drop) {
    for (size_t i = 0; i < n; i++)
        x[i] *= qpo_dropout_scale(drop, i0 + i);
}

void qpo_cpu_dropout_forward(float *x, size_t n, qpo_dropout drop) {
    if (drop.p <= 0.0f)
        return;
#pragma omp parallel for schedule(static)
    for (size_t c = 0; c < n; c += CHUNK)
        dropout_chunk(x + c, c, n - c < CHUNK ? n - c : CHUNK, drop);
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
