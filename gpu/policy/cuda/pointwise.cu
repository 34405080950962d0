/* Elementwise ops: GELU (tanh approximation), ReLU, dropout, residual adds, scaling. A grid-
 * stride loop per op; each element is independent, so the results never depend on launch
 * sizes. */
#include "cuda_ops.cuh"

#define GELU_K 0.7978845608028654f /* sqrt(2/pi) */
#define THREADS 256

static unsigned blocks(size_t n) {
    size_t b = (n + THREADS - 1) / THREADS;
    return (unsigned)(b < 65536 ? (b ? b : 1) : 65536);
}

#define FOR_EACH(i, n)                                                                             \
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < (n);                        \
         i += (size_t)gridDim.x * blockDim.x)

__global__ void gelu_forward_kernel(float *out, const float *inp, size_t n) {
    FOR_EACH(i, n) {
        float x = inp[i];
        out[i] = 0.5f * x * (1.0f + tanhf(GELU_K * (x + 0.044715f * x * x * x)));
    }
}

__global__ void gelu_backward_kernel(float *dinp, const float *inp, const float *dout, size_t n) {
    FOR_EACH(i, n) {
        float x = inp[i];
        float th = tanhf(GELU_K * (x + 0.044715f * x * x * x));
        float sech2 = 1.0f - th * th;
        float du = GELU_K * (1.0f + 3.0f * 0.044715f * x * x);
        dinp[i] += dout[i] * (0.5f * (1.0f + th) + 0.5f * x * sech2 * du);
    }
}

__global__ void relu_forward_kernel(float *out, const float *inp, size_t n) {
    FOR_EACH(i, n) out[i] = inp[i] > 0.0f ? inp[i] : 0.0f;
}

__global__ void relu_backward_kernel(float *dinp, const float *out, const float *dout, size_t n) {
    FOR_EACH(i, n) {
        if (out[i] > 0.0f)
            dinp[i] += dout[i];
    }
}

__global__ void dropout_kernel(float *x, size_t n, qpo_dropout drop) {
    FOR_EACH(i, n) x[i] *= dropout_scale(drop, i);
}

__global__ void residual_kernel(float *out, const float *a, const float *b, size_t n) {
    FOR_EACH(i, n) out[i] = a[i] + b[i];
}

__global__ void accumulate_kernel(float *dst, const float *src, size_t n) {
    FOR_EACH(i, n) dst[i] += src[i];
}

__global__ void scale_kernel(float *x, size_t n, float s) {
    FOR_EACH(i, n) x[i] *= s;
}

#define LAUNCH(kernel, n, ...)                                                                     \
    do {                                                                                           \
        if ((n) == 0)                                                                              \
            break;                                                                                 \
        kernel<<<blocks(n), THREADS, 0, qpo_cuda.stream>>>(__VA_ARGS__);                           \
        KERNEL_CHECK();                                                                            \
    } while (0)

void qpo_cuda_gelu_forward(float *out, const float *inp, size_t n) {
    LAUNCH(gelu_forward_kernel, n, out, inp, n);
}

void qpo_cuda_gelu_backward(float *dinp, const float *inp, const float *dout, size_t n) {
    LAUNCH(gelu_backward_kernel, n, dinp, inp, dout, n);
}

void qpo_cuda_relu_forward(float *out, const float *inp, size_t n) {
    LAUNCH(relu_forward_kernel, n, out, inp, n);
}

void qpo_cuda_relu_backward(float *dinp, const float *out, const float *dout, size_t n) {
    LAUNCH(relu_backward_kernel, n, dinp, out, dout, n);
}

void qpo_cuda_dropout_forward(float *x, size_t n, qpo_dropout drop) {
    if (drop.p > 0.0f)
        LAUNCH(dropout_kernel, n, x, n, drop);
}

void qpo_cuda_dropout_backward(float *dx, size_t n, qpo_dropout drop) {
    qpo_cuda_dropout_forward(dx, n, drop);
}

void qpo_cuda_residual_forward(float *out, const float *a, const float *b, size_t n) {
    LAUNCH(residual_kernel, n, out, a, b, n);
}

void qpo_cuda_accumulate(float *dst, const float *src, size_t n) {
    LAUNCH(accumulate_kernel, n, dst, src, n);
}

void qpo_cuda_scale(float *x, size_t n, float s) {
    LAUNCH(scale_kernel, n, x, n, s);
}
