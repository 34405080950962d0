/* AdamW exactly as torch.optim.AdamW's single-tensor path (decay first, then the bias-corrected
 * step) with the clipping coefficient fused in, and the fixed-order sum of squares for the
 * gradient norm. */
#include <math.h>

#include "cuda_ops.cuh"

#define SUMSQ_CHUNK 65536
#define SUMSQ_THREADS 256

/* A block per chunk: per-thread strided sums, then a fixed tree; fp64 as the CPU's. */
__global__ void sumsq_partial_kernel(double *part, const float *x, size_t n) {
    __shared__ double red[SUMSQ_THREADS];
    size_t i0 = (size_t)blockIdx.x * SUMSQ_CHUNK, i1 = min(n, i0 + SUMSQ_CHUNK);
    double s = 0.0;
    for (size_t i = i0 + threadIdx.x; i < i1; i += SUMSQ_THREADS)
        s += (double)x[i] * x[i];
    red[threadIdx.x] = s;
    __syncthreads();
    for (int w = SUMSQ_THREADS / 2; w > 0; w >>= 1) {
        if (threadIdx.x < w)
            red[threadIdx.x] += red[threadIdx.x + w];
        __syncthreads();
    }
    if (threadIdx.x == 0)
        part[blockIdx.x] = red[0];
}

__global__ void sumsq_final_kernel(double *out, const double *part, size_t nchunks) {
    double s = 0.0;
    for (size_t k = 0; k < nchunks; k++)
        s += part[k];
    *out = s;
}

double qpo_cuda_sumsq(const float *x, size_t n) {
    if (!n)
        return 0.0;
    size_t nchunks = (n + SUMSQ_CHUNK - 1) / SUMSQ_CHUNK;
    double *part = (double *)qpo_cuda_scratch(QPO_SCRATCH_REDUCE, sizeof(double) * (nchunks + 1));
    sumsq_partial_kernel<<<(unsigned)nchunks, SUMSQ_THREADS, 0, qpo_cuda.stream>>>(part, x, n);
    KERNEL_CHECK();
    sumsq_final_kernel<<<1, 1, 0, qpo_cuda.stream>>>(part + nchunks, part, nchunks);
    KERNEL_CHECK();
    double total = 0.0;
    CUDA_CHECK(cudaMemcpyAsync(&total, part + nchunks, sizeof total, cudaMemcpyDeviceToHost,
                               qpo_cuda.stream));
    CUDA_CHECK(cudaStreamSynchronize(qpo_cuda.stream));
    return total;
}

__global__ void adamw_kernel(float *p, const float *g, float *m, float *v, size_t n, float gscale,
                             float beta1, float beta2, float eps, float step_size, float bc2_sqrt,
                             float decay) {
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < n;
         i += (size_t)gridDim.x * blockDim.x) {
        float gi = g[i] * gscale;
        float pi = p[i] * decay;
        float mi = m[i] * beta1 + gi * (1.0f - beta1);
        float vi = v[i] * beta2 + gi * gi * (1.0f - beta2);
        float denom = sqrtf(vi) / bc2_sqrt + eps;
        p[i] = pi - step_size * (mi / denom);
        m[i] = mi;
        v[i] = vi;
    }
}

void qpo_cuda_adamw_update(float *p, const float *g, float *m, float *v, size_t n, float gscale,
                           float lr, float beta1, float beta2, float eps, float wd, int t) {
    /* the scalars exactly as the CPU backend computes them, on the host */
    float bc1 = 1.0f - powf(beta1, (float)t);
    double bc2 = 1.0 - pow(beta2, t);
    float step_size = lr / bc1;
    float bc2_sqrt = (float)sqrt(bc2);
    float decay = 1.0f - lr * wd;
    size_t nb = (n + 255) / 256;
    adamw_kernel<<<(unsigned)(nb < 65536 ? (nb ? nb : 1) : 65536), 256, 0, qpo_cuda.stream>>>(
        p, g, m, v, n, gscale, beta1, beta2, eps, step_size, bc2_sqrt, decay);
    KERNEL_CHECK();
}
