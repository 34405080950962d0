/* LayerNorm (eps 1e-5, biased variance, as torch): one warp per row, fp32 statistics reduced
 * in a fixed butterfly order; parameter gradients by fixed-order column sums (no atomics). */
#include "cuda_ops.cuh"

#define ROWS_PER_BLOCK 4 /* warps per block */

__global__ void layernorm_forward_kernel(float *out, float *mean, float *rstd, const float *inp,
                                         const float *w, const float *b, int N, int C) {
    int lane = threadIdx.x % 32, n = blockIdx.x * ROWS_PER_BLOCK + threadIdx.x / 32;
    if (n >= N)
        return;
    const float *x = inp + (size_t)n * C;
    float s = 0.0f;
    for (int c = lane; c < C; c += 32)
        s += x[c];
    float m = warp_sum(s) / C;
    float ss = 0.0f;
    for (int c = lane; c < C; c += 32) {
        float d = x[c] - m;
        ss += d * d;
    }
    float r = rsqrtf(warp_sum(ss) / C + 1e-5f);
    float *y = out + (size_t)n * C;
    for (int c = lane; c < C; c += 32)
        y[c] = (x[c] - m) * r * w[c] + b[c];
    if (lane == 0) {
        mean[n] = m;
        rstd[n] = r;
    }
}

void qpo_cuda_layernorm_forward(float *out, float *mean, float *rstd, const float *inp,
                                const float *w, const float *b, int N, int C) {
    layernorm_forward_kernel<<<qpo_cdiv(N, ROWS_PER_BLOCK), 32 * ROWS_PER_BLOCK, 0,
                               qpo_cuda.stream>>>(out, mean, rstd, inp, w, b, N, C);
    KERNEL_CHECK();
}

__global__ void layernorm_backward_kernel(float *dinp, const float *dout, const float *inp,
                                          const float *w, const float *mean, const float *rstd,
                                          int N, int C) {
    int lane = threadIdx.x % 32, n = blockIdx.x * ROWS_PER_BLOCK + threadIdx.x / 32;
    if (n >= N)
        return;
    const float *x = inp + (size_t)n * C, *g = dout + (size_t)n * C;
    float m = mean[n], r = rstd[n];
    float a = 0.0f, bsum = 0.0f;
    for (int c = lane; c < C; c += 32) {
        float dn = g[c] * w[c];
        a += dn;
        bsum += dn * (x[c] - m) * r;
    }
    float mean_dn = warp_sum(a) / C, mean_dn_xhat = warp_sum(bsum) / C;
    float *dx = dinp + (size_t)n * C;
    for (int c = lane; c < C; c += 32) {
        float xhat = (x[c] - m) * r;
        dx[c] += (g[c] * w[c] - mean_dn - xhat * mean_dn_xhat) * r;
    }
}

void qpo_cuda_layernorm_backward(float *dinp, float *dw, float *db, const float *dout,
                                 const float *inp, const float *w, const float *mean,
                                 const float *rstd, int N, int C) {
    qpo_cuda_colsum(dw, dout, inp, mean, rstd, N, C);
    qpo_cuda_colsum(db, dout, NULL, NULL, NULL, N, C);
    layernorm_backward_kernel<<<qpo_cdiv(N, ROWS_PER_BLOCK), 32 * ROWS_PER_BLOCK, 0,
                                qpo_cuda.stream>>>(dinp, dout, inp, w, mean, rstd, N, C);
    KERNEL_CHECK();
}
