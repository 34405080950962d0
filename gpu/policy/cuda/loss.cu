/* Cross-entropy fused with its gradient, a block per row of V logits: one read pass keeps a
 * running (max, sum of exp) per thread, the threads' pairs are combined in a fixed tree order,
 * and a second pass writes (softmax - onehot) * dscale over the logits in place. */
#include <math.h>

#include "cuda_ops.cuh"

#define CE_THREADS 512

/* (m, s) represents s * exp(m): combining rescales to the larger max. */
__device__ __forceinline__ void combine(float &m, float &s, float m2, float s2) {
    float mx = fmaxf(m, m2);
    if (mx == -INFINITY)
        return;
    s = s * expf(m - mx) + s2 * expf(m2 - mx);
    m = mx;
}

__global__ void crossentropy_kernel(float *logits, float *losses, const int32_t *targets, int V,
                                    float dscale) {
    __shared__ float sm_m[CE_THREADS / 32], sm_s[CE_THREADS / 32];
    float *x = logits + (size_t)blockIdx.x * V;
    float m = -INFINITY, s = 0.0f;
    for (int v = threadIdx.x; v < V; v += CE_THREADS) {
        float xv = x[v];
        if (xv > m) {
            s = s * expf(m - xv) + 1.0f;
            m = xv;
        } else {
            s += expf(xv - m);
        }
    }
    for (int o = 16; o > 0; o >>= 1) {
        float m2 = __shfl_xor_sync(0xffffffffu, m, o), s2 = __shfl_xor_sync(0xffffffffu, s, o);
        combine(m, s, m2, s2);
    }
    int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
    if (lane == 0)
        sm_m[warp] = m, sm_s[warp] = s;
    __syncthreads();
    if (warp == 0) {
        m = lane < CE_THREADS / 32 ? sm_m[lane] : -INFINITY;
        s = lane < CE_THREADS / 32 ? sm_s[lane] : 0.0f;
        for (int o = 16; o > 0; o >>= 1) {
            float m2 = __shfl_xor_sync(0xffffffffu, m, o), s2 = __shfl_xor_sync(0xffffffffu, s, o);
            combine(m, s, m2, s2);
        }
        if (lane == 0)
            sm_m[0] = m, sm_s[0] = s;
    }
    __syncthreads();
    m = sm_m[0], s = sm_s[0];
    int32_t tgt = targets[blockIdx.x];
    float xt = x[tgt];
    __syncthreads(); /* every thread has read x[tgt] before it is overwritten */
    if (threadIdx.x == 0)
        losses[blockIdx.x] = logf(s) - (xt - m);
    float inv = 1.0f / s;
    for (int v = threadIdx.x; v < V; v += CE_THREADS) {
        float p = expf(x[v] - m) * inv;
        x[v] = (p - (v == tgt ? 1.0f : 0.0f)) * dscale;
    }
}

void qpo_cuda_crossentropy_fused(float *logits, float *losses, const int32_t *targets, int M, int V,
                                 float dscale) {
    if (!M)
        return;
    crossentropy_kernel<<<M, CE_THREADS, 0, qpo_cuda.stream>>>(logits, losses, targets, V, dscale);
    KERNEL_CHECK();
}
