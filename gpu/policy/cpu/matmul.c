/* Linear layers through OpenBLAS sgemm; weights in either storage order so checkpoints map
 * 1:1 to memory (GPT-2 Conv1D is [in,out], torch Linear heads are [out,in]).
 *
 * Threads: OpenBLAS runs single-threaded and OpenMP shares out fixed chunks of each product's
 * output. One thread pool for everything: OpenMP threads spinning between regions next to
 * OpenBLAS's own pool made small steps 30x slower. */
#include <cblas.h>
#include <string.h>

#include "cpu_ops.h"

/* Fixed chunk sizes, never derived from the thread count: the same shapes always make the
 * same sgemm calls, so results are bitwise the same with any number of threads. */
#define CHUNK 128

void qpo_cpu_blas_init(void) {
    openblas_set_num_threads(1);
}

/* C[M,N] = op(A) op(B) + beta C, row-major, cut into row or column chunks that OpenMP threads
 * share; never cut along K, so every element is one sgemm sum. */
static void par_sgemm(int ta, int tb, int M, int N, int K, const float *A, int lda, const float *B,
                      int ldb, float beta, float *C, int ldc) {
    /* the longer side is cut, so that there are enough chunks to share */
    int split = (M > N ? M : N) >= 2 * CHUNK;
    int by_rows = split && M > N, by_cols = split && !by_rows;
    int len = by_rows ? M : N, chunk = split ? CHUNK : len;
    int nchunks = (len + chunk - 1) / chunk;
#pragma omp parallel for schedule(dynamic)
    for (int c = 0; c < nchunks; c++) {
        int i0 = c * chunk, n = len - i0 < chunk ? len - i0 : chunk;
        const float *a = A, *b = B;
        float *cc = C;
        int m = M, nn = N;
        if (by_rows) {
            a = ta ? A + i0 : A + (size_t)i0 * lda;
            cc = C + (size_t)i0 * ldc;
            m = n;
        } else if (by_cols) {
            b = tb ? B + (size_t)i0 * ldb : B + i0;
            cc = C + i0;
            nn = n;
        }
        cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans,
                    m, nn, K, 1.0f, a, lda, b, ldb, beta, cc, ldc);
    }
}

void qpo_cpu_matmul_forward(float *out, const float *inp, const float *w, const float *bias, int N,
                            int C, int OC, int w_in_out) {
    float beta = 0.0f;
    if (bias) {
#pragma omp parallel for schedule(static)
        for (int n = 0; n < N; n++)
            memcpy(out + (size_t)n * OC, bias, sizeof(float) * OC);
        beta = 1.0f;
    }
    par_sgemm(0, !w_in_out, N, OC, C, inp, C, w, w_in_out ? OC : C, beta, out, OC);
}

/* dbias[o] += sum_n dout[n,o]: threads own column blocks, rows summed in order. */
static void bias_backward(float *dbias, const float *dout, int N, int OC) {
    int nblocks = (OC + QPO_CPU_COLBLOCK - 1) / QPO_CPU_COLBLOCK;
#pragma omp parallel for schedule(static)
    for (int blk = 0; blk < nblocks; blk++) {
        int o0 = blk * QPO_CPU_COLBLOCK;
        int o1 = o0 + QPO_CPU_COLBLOCK < OC ? o0 + QPO_CPU_COLBLOCK : OC;
        for (int n = 0; n < N; n++) {
            const float *row = dout + (size_t)n * OC;
            for (int o = o0; o < o1; o++)
                dbias[o] += row[o];
        }
    }
}

void qpo_cpu_matmul_backward(float *dinp, float *dw, float *dbias, const float *dout,
                             const float *inp, const float *w, int N, int C, int OC, int w_in_out) {
    if (dinp)
        par_sgemm(0, w_in_out, N, C, OC, dout, OC, w, w_in_out ? OC : C, 1.0f, dinp, C);
    if (w_in_out)
        par_sgemm(1, 0, C, OC, N, inp, C, dout, OC, 1.0f, dw, OC);
    else
        par_sgemm(1, 0, OC, C, N, dout, OC, inp, C, 1.0f, dw, C);
    if (dbias)
        bias_backward(dbias, dout, N, OC);
}
