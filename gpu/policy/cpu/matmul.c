/* Linear layers through OpenBLAS sgemm; weights in either storage order so checkpoints map
 * 1:1 to memory (GPT-2 Conv1D is [in,out], torch Linear heads are [out,in]). */
#include <cblas.h>
#include <string.h>

#include "cpu_ops.h"

void qpo_cpu_matmul_forward(float *out, const float *inp, const float *w, const float *bias, int N,
                            int C, int OC, int w_in_out) {
    float beta = 0.0f;
    if (bias) {
#pragma omp parallel for schedule(static)
        for (int n = 0; n < N; n++)
            memcpy(out + (size_t)n * OC, bias, sizeof(float) * OC);
        beta = 1.0f;
    }
    cblas_sgemm(CblasRowMajor, CblasNoTrans, w_in_out ? CblasNoTrans : CblasTrans, N, OC, C, 1.0f,
                inp, C, w, w_in_out ? OC : C, beta, out, OC);
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
    if (dinp) {
        cblas_sgemm(CblasRowMajor, CblasNoTrans, w_in_out ? CblasTrans : CblasNoTrans, N, C, OC,
                    1.0f, dout, OC, w, w_in_out ? OC : C, 1.0f, dinp, C);
    }
    if (w_in_out)
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, C, OC, N, 1.0f, inp, C, dout, OC, 1.0f,
                    dw, OC);
    else
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, OC, C, N, 1.0f, dout, OC, inp, C, 1.0f,
                    dw, C);
    if (dbias)
        bias_backward(dbias, dout, N, OC);
}
