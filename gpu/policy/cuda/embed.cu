/* Embeddings: the PGDT input tokens, positions, and row gathers for the heads. Backward passes
 * scatter into shared rows (a token id seen twice, a position in every sequence), so instead
 * of atomics each thread owns one column of the rows whose id falls in its slice (id % SLICES)
 * and walks the tokens in the CPU backend's order: deterministic, the reference's summation
 * order, and SLICES times the threads of one walker per column. */
#include "cuda_ops.cuh"

#define THREADS 256
#define SLICES 32

__global__ void pgdt_embed_forward_kernel(float *out, const int32_t *qids, const int32_t *pids,
                                          const float *reward, const float *wte, const float *seg,
                                          const float *ret_w, const float *ret_b, int B, int Q,
                                          int P, int C) {
    int T = 1 + Q + P;
    size_t e = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (e >= (size_t)B * T * C)
        return;
    int c = (int)(e % C), t = (int)(e / C % T), b = (int)(e / C / T);
    if (t == 0) {
        out[e] = reward[b] * ret_w[c] + ret_b[c] + seg[c];
        return;
    }
    int is_q = t <= Q;
    int32_t id = is_q ? qids[(size_t)b * Q + t - 1] : pids[(size_t)b * P + t - 1 - Q];
    out[e] = wte[(size_t)id * C + c] + seg[(size_t)(is_q ? 1 : 2) * C + c];
}

void qpo_cuda_pgdt_embed_forward(float *out, const int32_t *qids, const int32_t *pids,
                                 const float *reward, const float *wte, const float *seg,
                                 const float *ret_w, const float *ret_b, int B, int Q, int P,
                                 int C) {
    size_t n = (size_t)B * (1 + Q + P) * C;
    pgdt_embed_forward_kernel<<<qpo_cdiv(n, THREADS), THREADS, 0, qpo_cuda.stream>>>(
        out, qids, pids, reward, wte, seg, ret_w, ret_b, B, Q, P, C);
    KERNEL_CHECK();
}

__global__ void pgdt_embed_backward_kernel(float *dwte, float *dseg, float *dret_w, float *dret_b,
                                           const float *dout, const int32_t *qids,
                                           const int32_t *pids, const float *reward, int B, int Q,
                                           int P, int C) {
    int c = blockIdx.x * blockDim.x + threadIdx.x, slice = blockIdx.y;
    if (c >= C)
        return;
    int T = 1 + Q + P;
    /* slice 0 also owns the reward token and the segment rows */
    float sret_w = 0.0f, sret_b = 0.0f, seg0 = 0.0f, seg1 = 0.0f, seg2 = 0.0f;
    if (slice == 0)
        sret_w = dret_w[c], sret_b = dret_b[c], seg0 = dseg[c], seg1 = dseg[C + c],
        seg2 = dseg[2 * C + c];
    for (int b = 0; b < B; b++) {
        const float *g = dout + (size_t)b * T * C;
        if (slice == 0) {
            sret_w += g[c] * reward[b];
            sret_b += g[c];
            seg0 += g[c];
        }
        for (int t = 1; t < T; t++) {
            int is_q = t <= Q;
            int32_t id = is_q ? qids[(size_t)b * Q + t - 1] : pids[(size_t)b * P + t - 1 - Q];
            float gt = 0.0f;
            if (slice == 0 || id % SLICES == slice)
                gt = g[(size_t)t * C + c];
            if (id % SLICES == slice)
                dwte[(size_t)id * C + c] += gt;
            if (slice == 0) {
                if (is_q)
                    seg1 += gt;
                else
                    seg2 += gt;
            }
        }
    }
    if (slice == 0)
        dret_w[c] = sret_w, dret_b[c] = sret_b, dseg[c] = seg0, dseg[C + c] = seg1,
        dseg[2 * C + c] = seg2;
}

void qpo_cuda_pgdt_embed_backward(float *dwte, float *dseg, float *dret_w, float *dret_b,
                                  const float *dout, const int32_t *qids, const int32_t *pids,
                                  const float *reward, int B, int Q, int P, int C) {
    dim3 grid(qpo_cdiv(C, 32), SLICES);
    pgdt_embed_backward_kernel<<<grid, 32, 0, qpo_cuda.stream>>>(dwte, dseg, dret_w, dret_b, dout,
                                                                 qids, pids, reward, B, Q, P, C);
    KERNEL_CHECK();
}

__global__ void position_forward_kernel(float *out, const float *inp, const float *wpe, int B,
                                        int T, int pos0, int C) {
    size_t e = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (e >= (size_t)B * T * C)
        return;
    int c = (int)(e % C), t = (int)(e / C % T);
    out[e] = inp[e] + wpe[(size_t)(pos0 + t) * C + c];
}

void qpo_cuda_position_forward(float *out, const float *inp, const float *wpe, int B, int T,
                               int pos0, int C) {
    size_t n = (size_t)B * T * C;
    position_forward_kernel<<<qpo_cdiv(n, THREADS), THREADS, 0, qpo_cuda.stream>>>(out, inp, wpe, B,
                                                                                   T, pos0, C);
    KERNEL_CHECK();
}

/* A thread per (t, c), summing the batch in order. */
__global__ void position_backward_kernel(float *dwpe, const float *dout, int B, int T, int pos0,
                                         int C) {
    size_t e = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (e >= (size_t)T * C)
        return;
    int c = (int)(e % C), t = (int)(e / C);
    float s = dwpe[(size_t)(pos0 + t) * C + c];
    for (int b = 0; b < B; b++)
        s += dout[((size_t)b * T + t) * C + c];
    dwpe[(size_t)(pos0 + t) * C + c] = s;
}

void qpo_cuda_position_backward(float *dwpe, const float *dout, int B, int T, int pos0, int C) {
    size_t n = (size_t)T * C;
    position_backward_kernel<<<qpo_cdiv(n, THREADS), THREADS, 0, qpo_cuda.stream>>>(dwpe, dout, B,
                                                                                    T, pos0, C);
    KERNEL_CHECK();
}

__global__ void gather_rows_kernel(float *dst, const float *src, const int32_t *idx, int M, int C) {
    size_t e = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (e >= (size_t)M * C)
        return;
    size_t i = e / C;
    int c = (int)(e % C);
    dst[e] = src[(size_t)idx[i] * C + c];
}

void qpo_cuda_gather_rows(float *dst, const float *src, const int32_t *idx, int M, int C) {
    size_t n = (size_t)M * C;
    if (!n)
        return;
    gather_rows_kernel<<<qpo_cdiv(n, THREADS), THREADS, 0, qpo_cuda.stream>>>(dst, src, idx, M, C);
    KERNEL_CHECK();
}

/* Rows may repeat in idx, so a thread per (column, slice of rows by idx % SLICES) walks the
 * rows in order. */
__global__ void gather_rows_backward_kernel(float *dsrc, const float *ddst, const int32_t *idx,
                                            int M, int C) {
    int c = blockIdx.x * blockDim.x + threadIdx.x, slice = blockIdx.y;
    if (c >= C)
        return;
    for (int i = 0; i < M; i++)
        if (idx[i] % SLICES == slice)
            dsrc[(size_t)idx[i] * C + c] += ddst[(size_t)i * C + c];
}

void qpo_cuda_gather_rows_backward(float *dsrc, const float *ddst, const int32_t *idx, int M,
                                   int C) {
    if (!M)
        return;
    dim3 grid(qpo_cdiv(C, 32), SLICES);
    gather_rows_backward_kernel<<<grid, 32, 0, qpo_cuda.stream>>>(dsrc, ddst, idx, M, C);
    KERNEL_CHECK();
}
