/* Linear layers. Training matmuls go to cuBLAS (fp32, or bf16 operands with fp32 accumulation
 * in bf16 mode); the decoding matmul is a tiled kernel of our own whose sums run over k in
 * ascending order whatever the number of rows, so a query decodes to the same tokens in any
 * batch (cuBLAS may pick another algorithm, and another summation order, per shape).
 *
 * Row-major [N,C] is column-major [C,N] with leading dimension C, so each product below is the
 * transposed product in cuBLAS's column-major terms. */
#include <cuda_bf16.h>

#include "cuda_ops.cuh"

/* out[n,o] = bias[o] */
__global__ void bias_fill_kernel(float *out, const float *bias, int N, int OC) {
    size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i < (size_t)N * OC)
        out[i] = bias[i % OC];
}

__global__ void to_bf16_kernel(__nv_bfloat16 *dst, const float *src, size_t n) {
    size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n)
        dst[i] = __float2bfloat16_rn(src[i]);
}

static const __nv_bfloat16 *to_bf16(int slot, const float *src, size_t n) {
    __nv_bfloat16 *dst = (__nv_bfloat16 *)qpo_cuda_scratch(slot, n * sizeof(__nv_bfloat16));
    to_bf16_kernel<<<qpo_cdiv(n, 256), 256, 0, qpo_cuda.stream>>>(dst, src, n);
    KERNEL_CHECK();
    return dst;
}

/* C (m x n, column-major, ldc) = op(A) op(B) + beta C. In bf16 mode A and B are rounded to bf16
 * first (slots A and B); C stays fp32 and so does the accumulation. */
static void gemm(bool bf16, cublasOperation_t ta, cublasOperation_t tb, int m, int n, int k,
                 const float *A, size_t a_elems, int lda, const float *B, size_t b_elems, int ldb,
                 float beta, float *C, int ldc) {
    const float one = 1.0f;
    if (!bf16) {
        CUBLAS_CHECK(
            cublasSgemm(qpo_cuda.blas, ta, tb, m, n, k, &one, A, lda, B, ldb, &beta, C, ldc));
        return;
    }
    const __nv_bfloat16 *a16 = to_bf16(QPO_SCRATCH_A, A, a_elems);
    const __nv_bfloat16 *b16 = to_bf16(QPO_SCRATCH_B, B, b_elems);
    CUBLAS_CHECK(cublasGemmEx(qpo_cuda.blas, ta, tb, m, n, k, &one, a16, CUDA_R_16BF, lda, b16,
                              CUDA_R_16BF, ldb, &beta, C, CUDA_R_32F, ldc, CUBLAS_COMPUTE_32F,
                              CUBLAS_GEMM_DEFAULT));
}

static void forward(bool bf16, float *out, const float *inp, const float *w, const float *bias,
                    int N, int C, int OC, int w_in_out) {
    float beta = 0.0f;
    if (bias) {
        bias_fill_kernel<<<qpo_cdiv((size_t)N * OC, 256), 256, 0, qpo_cuda.stream>>>(out, bias, N,
                                                                                     OC);
        KERNEL_CHECK();
        beta = 1.0f;
    }
    /* out^T [OC,N] = W^T [OC,C] inp^T [C,N] */
    size_t wn = (size_t)C * OC, in = (size_t)N * C;
    if (w_in_out)
        gemm(bf16, CUBLAS_OP_N, CUBLAS_OP_N, OC, N, C, w, wn, OC, inp, in, C, beta, out, OC);
    else
        gemm(bf16, CUBLAS_OP_T, CUBLAS_OP_N, OC, N, C, w, wn, C, inp, in, C, beta, out, OC);
}

static void backward(bool bf16, float *dinp, float *dw, float *dbias, const float *dout,
                     const float *inp, const float *w, int N, int C, int OC, int w_in_out) {
    size_t wn = (size_t)C * OC, in = (size_t)N * C, on = (size_t)N * OC;
    if (dinp) { /* dinp^T [C,N] += W [C,OC] dout^T [OC,N] */
        if (w_in_out)
            gemm(bf16, CUBLAS_OP_T, CUBLAS_OP_N, C, N, OC, w, wn, OC, dout, on, OC, 1.0f, dinp, C);
        else
            gemm(bf16, CUBLAS_OP_N, CUBLAS_OP_N, C, N, OC, w, wn, C, dout, on, OC, 1.0f, dinp, C);
    }
    if (w_in_out) /* dW [C,OC] += inp^T dout, i.e. dW^T [OC,C] += dout^T inp */
        gemm(bf16, CUBLAS_OP_N, CUBLAS_OP_T, OC, C, N, dout, on, OC, inp, in, C, 1.0f, dw, OC);
    else /* dW [OC,C] += dout^T inp, i.e. dW^T [C,OC] += inp^T dout */
        gemm(bf16, CUBLAS_OP_N, CUBLAS_OP_T, C, OC, N, inp, in, C, dout, on, OC, 1.0f, dw, C);
    if (dbias)
        qpo_cuda_colsum(dbias, dout, NULL, NULL, NULL, N, OC);
}

void qpo_cuda_matmul_forward(float *out, const float *inp, const float *w, const float *bias, int N,
                             int C, int OC, int w_in_out) {
    forward(false, out, inp, w, bias, N, C, OC, w_in_out);
}

void qpo_cuda_matmul_forward_bf16(float *out, const float *inp, const float *w, const float *bias,
                                  int N, int C, int OC, int w_in_out) {
    forward(true, out, inp, w, bias, N, C, OC, w_in_out);
}

void qpo_cuda_matmul_backward(float *dinp, float *dw, float *dbias, const float *dout,
                              const float *inp, const float *w, int N, int C, int OC,
                              int w_in_out) {
    backward(false, dinp, dw, dbias, dout, inp, w, N, C, OC, w_in_out);
}

void qpo_cuda_matmul_backward_bf16(float *dinp, float *dw, float *dbias, const float *dout,
                                   const float *inp, const float *w, int N, int C, int OC,
                                   int w_in_out) {
    backward(true, dinp, dw, dbias, dout, inp, w, N, C, OC, w_in_out);
}

/* Column sums in two fixed-order stages: each (column, chunk of ROWS rows) sums its rows in
 * order into a partial, then each column sums its partials in order. No atomics, so the result
 * is the same on every run. */
#define COLSUM_ROWS 64

__global__ void colsum_partial_kernel(float *part, const float *g, const float *x,
                                      const float *mean, const float *rstd, int N, int C) {
    int c = blockIdx.x * blockDim.x + threadIdx.x, chunk = blockIdx.y;
    if (c >= C)
        return;
    int n0 = chunk * COLSUM_ROWS, n1 = min(N, n0 + COLSUM_ROWS);
    float s = 0.0f;
    for (int n = n0; n < n1; n++) {
        float v = g[(size_t)n * C + c];
        if (x)
            v *= (x[(size_t)n * C + c] - mean[n]) * rstd[n];
        s += v;
    }
    part[(size_t)chunk * C + c] = s;
}

__global__ void colsum_final_kernel(float *dst, const float *part, int nchunks, int C) {
    int c = blockIdx.x * blockDim.x + threadIdx.x;
    if (c >= C)
        return;
    float s = 0.0f;
    for (int k = 0; k < nchunks; k++)
        s += part[(size_t)k * C + c];
    dst[c] += s;
}

void qpo_cuda_colsum(float *dst, const float *g, const float *x, const float *mean,
                     const float *rstd, int N, int C) {
    int nchunks = (N + COLSUM_ROWS - 1) / COLSUM_ROWS;
    float *part = (float *)qpo_cuda_scratch(QPO_SCRATCH_REDUCE, sizeof(float) * nchunks * C);
    dim3 grid(qpo_cdiv(C, 128), nchunks);
    colsum_partial_kernel<<<grid, 128, 0, qpo_cuda.stream>>>(part, g, x, mean, rstd, N, C);
    KERNEL_CHECK();
    colsum_final_kernel<<<qpo_cdiv(C, 128), 128, 0, qpo_cuda.stream>>>(dst, part, nchunks, C);
    KERNEL_CHECK();
}

/* Decoding matmul: a TILE x TILE block of outputs per thread block, k walked in TILE-wide
 * slabs staged in shared memory; each output's sum runs over k = 0..C-1 in order, independent
 * of N and of where the row sits in the batch. */
#define TILE 32

__global__ void rows_kernel(float *out, const float *inp, const float *w, const float *bias, int N,
                            int C, int OC, int w_in_out) {
    __shared__ float xs[TILE][TILE + 1], ws[TILE][TILE + 1];
    int tx = threadIdx.x, ty = threadIdx.y; /* tx: output column, ty: row */
    int o = blockIdx.x * TILE + tx, m = blockIdx.y * TILE + ty;
    float s = 0.0f;
    for (int k0 = 0; k0 < C; k0 += TILE) {
        int kx = k0 + tx;
        xs[ty][tx] = (m < N && kx < C) ? inp[(size_t)m * C + kx] : 0.0f;
        /* ws[kk][oo] = W(k0+kk, o0+oo) */
        int oo = blockIdx.x * TILE, kk = k0;
        if (w_in_out) { /* W [C,OC]: consecutive threads read consecutive o */
            int k = kk + ty, oc = oo + tx;
            ws[ty][tx] = (k < C && oc < OC) ? w[(size_t)k * OC + oc] : 0.0f;
        } else { /* W [OC,C]: consecutive threads read consecutive k */
            int k = kk + tx, oc = oo + ty;
            ws[tx][ty] = (k < C && oc < OC) ? w[(size_t)oc * C + k] : 0.0f;
        }
        __syncthreads();
        int kmax = min(TILE, C - k0);
        for (int k = 0; k < kmax; k++)
            s += xs[ty][k] * ws[k][tx];
        __syncthreads();
    }
    if (m < N && o < OC)
        out[(size_t)m * OC + o] = (bias ? bias[o] : 0.0f) + s;
}

void qpo_cuda_matmul_rows_forward(float *out, const float *inp, const float *w, const float *bias,
                                  int N, int C, int OC, int w_in_out) {
    dim3 block(TILE, TILE), grid(qpo_cdiv(OC, TILE), qpo_cdiv(N, TILE));
    rows_kernel<<<grid, block, 0, qpo_cuda.stream>>>(out, inp, w, bias, N, C, OC, w_in_out);
    KERNEL_CHECK();
}
