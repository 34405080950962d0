/* Causal self-attention with a key padding mask. T is small (81 for PGDT), so plain loops
 * parallel over (batch, head) beat sgemm calls per head; each (b,h) owns disjoint slices of
 * every output, so there are no races and no order-dependent sums. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cpu_ops.h"

static inline __attribute__((always_inline)) float dot(const float *a, const float *b, int n) {
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

static inline __attribute__((always_inline)) void axpy(float *y, float a, const float *x, int n) {
    for (int i = 0; i < n; i++)
        y[i] += a * x[i];
}

/* Softmax of q against keys 0..len-1 (stride kstride) whose mask is set; p[len]. */
static inline __attribute__((always_inline)) void masked_softmax(float *p, const float *q,
                                                                 const float *k, size_t kstride,
                                                                 const int32_t *mask, int len,
                                                                 int hs, float scale) {
    float mx = -INFINITY;
    for (int j = 0; j < len; j++) {
        if (!mask[j]) {
            p[j] = 0.0f;
            continue;
        }
        p[j] = dot(q, k + (size_t)j * kstride, hs) * scale;
        if (p[j] > mx)
            mx = p[j];
    }
    float sum = 0.0f;
    for (int j = 0; j < len; j++) {
        p[j] = mask[j] ? expf(p[j] - mx) : 0.0f;
        sum += p[j];
    }
    float inv = sum > 0.0f ? 1.0f / sum : 0.0f;
    for (int j = 0; j < len; j++)
        p[j] *= inv;
}

/* One (batch row, head) of the forward pass. */
QPO_MULTIVERSION
static void head_forward(float *out, float *probs, const float *qkv, const int32_t *key_mask, int b,
                         int h, int T, int C, int NH, qpo_dropout drop) {
    int hs = C / NH;
    float scale = 1.0f / sqrtf((float)hs);
    size_t C3 = (size_t)3 * C;
    const float *base = qkv + (size_t)b * T * C3 + (size_t)h * hs;
    for (int t = 0; t < T; t++) {
        float *p = probs + (((size_t)b * NH + h) * T + t) * T;
        masked_softmax(p, base + t * C3, base + C, C3, key_mask + (size_t)b * T, t + 1, hs, scale);
        for (int j = t + 1; j < T; j++)
            p[j] = 0.0f;
        float *y = out + ((size_t)b * T + t) * C + (size_t)h * hs;
        for (int i = 0; i < hs; i++)
            y[i] = 0.0f;
        size_t row = (((size_t)b * NH + h) * T + t) * T;
        for (int j = 0; j <= t; j++) {
            if (p[j] == 0.0f)
                continue;
            float pj = drop.p > 0.0f ? p[j] * qpo_dropout_scale(drop, row + j) : p[j];
            axpy(y, pj, base + 2 * C + j * C3, hs);
        }
    }
}

void qpo_cpu_attention_forward(float *out, float *probs, const float *qkv, const int32_t *key_mask,
                               int B, int T, int C, int NH, qpo_dropout drop) {
#pragma omp parallel for collapse(2) schedule(static)
    for (int b = 0; b < B; b++)
        for (int h = 0; h < NH; h++)
            head_forward(out, probs, qkv, key_mask, b, h, T, C, NH, drop);
}

/* One (batch row, head) of the backward pass; dp is a [T] scratch row. */
QPO_MULTIVERSION
static void head_backward(float *dqkv, const float *dout, const float *qkv, const float *probs,
                          int b, int h, int T, int C, int NH, qpo_dropout drop, float *dp) {
    int hs = C / NH;
    float scale = 1.0f / sqrtf((float)hs);
    size_t C3 = (size_t)3 * C;
    const float *base = qkv + (size_t)b * T * C3 + (size_t)h * hs;
    float *dbase = dqkv + (size_t)b * T * C3 + (size_t)h * hs;
    for (int t = 0; t < T; t++) {
        const float *p = probs + (((size_t)b * NH + h) * T + t) * T;
        const float *dy = dout + ((size_t)b * T + t) * C + (size_t)h * hs;
        size_t row = (((size_t)b * NH + h) * T + t) * T;
        float s = 0.0f;
        for (int j = 0; j <= t; j++) {
            dp[j] = 0.0f;
            if (p[j] == 0.0f)
                continue;
            float keep = drop.p > 0.0f ? qpo_dropout_scale(drop, row + j) : 1.0f;
            dp[j] = dot(dy, base + 2 * C + j * C3, hs) * keep;
            axpy(dbase + 2 * C + j * C3, p[j] * keep, dy, hs);
            s += p[j] * dp[j];
        }
        const float *q = base + t * C3;
        for (int j = 0; j <= t; j++) {
            if (p[j] == 0.0f)
                continue;
            float ds = p[j] * (dp[j] - s) * scale;
            axpy(dbase + t * C3, ds, base + C + j * C3, hs);
            axpy(dbase + C + j * C3, ds, q, hs);
        }
    }
}

/* Masked keys have probability 0, so their gradients vanish without looking at the mask. */
void qpo_cpu_attention_backward(float *dqkv, const float *dout, const float *qkv,
                                const float *probs, const int32_t *key_mask, int B, int T, int C,
                                int NH, qpo_dropout drop) {
    (void)key_mask;
#pragma omp parallel
    {
        float *dp = malloc(sizeof(float) * T);
        if (!dp)
            abort();
#pragma omp for collapse(2) schedule(static)
        for (int b = 0; b < B; b++)
            for (int h = 0; h < NH; h++)
                head_backward(dqkv, dout, qkv, probs, b, h, T, C, NH, drop, dp);
        free(dp);
    }
}

QPO_MULTIVERSION
static void head_decode(float *out, const float *qkv, const float *kcache, const float *vcache,
                        const int32_t *key_mask, int b, int h, int len, int Tmax, int C, int NH,
                        float *p) {
    int hs = C / NH;
    float scale = 1.0f / sqrtf((float)hs);
    size_t off = (size_t)b * Tmax * C + (size_t)h * hs;
    masked_softmax(p, qkv + (size_t)b * 3 * C + (size_t)h * hs, kcache + off, C,
                   key_mask + (size_t)b * Tmax, len, hs, scale);
    float *y = out + (size_t)b * C + (size_t)h * hs;
    for (int i = 0; i < hs; i++)
        y[i] = 0.0f;
    for (int j = 0; j < len; j++)
        if (p[j] != 0.0f)
            axpy(y, p[j], vcache + off + (size_t)j * C, hs);
}

void qpo_cpu_attention_decode(float *out, const float *qkv, const float *kcache,
                              const float *vcache, const int32_t *key_mask, int B, int len,
                              int Tmax, int C, int NH) {
#pragma omp parallel
    {
        float *p = malloc(sizeof(float) * len);
        if (!p)
            abort();
#pragma omp for collapse(2) schedule(static)
        for (int b = 0; b < B; b++)
            for (int h = 0; h < NH; h++)
                head_decode(out, qkv, kcache, vcache, key_mask, b, h, len, Tmax, C, NH, p);
        free(p);
    }
}

void qpo_cpu_kv_store(float *kcache, float *vcache, const float *qkv, int B, int T, int pos0,
                      int Tmax, int C) {
#pragma omp parallel for collapse(2) schedule(static)
    for (int b = 0; b < B; b++)
        for (int t = 0; t < T; t++) {
            const float *src = qkv + ((size_t)b * T + t) * 3 * C;
            size_t dst = ((size_t)b * Tmax + pos0 + t) * C;
            memcpy(kcache + dst, src + C, sizeof(float) * C);
            memcpy(vcache + dst, src + 2 * C, sizeof(float) * C);
        }
}
