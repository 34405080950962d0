/* Causal attention with a key padding mask. T is small (81 for PGDT), so one thread block per
 * (batch row, head) does a whole head in shared memory: a warp per query row for the softmax,
 * then a thread per output element. Every output element is owned by one thread and summed in
 * a fixed order: no atomics, the same bits on every run. */
#include <math.h>

#include "cuda_ops.cuh"

#define ATT_WARPS 4

/* Sets a kernel's dynamic shared-memory limit when a head needs more than the default 48 KiB
 * (sm_80 and sm_90 allow far more per block). */
static void allow_smem(const void *kernel, size_t bytes) {
    if (bytes > 48 * 1024)
        CUDA_CHECK(
            cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)bytes));
}

/* smem: K [T][hs], V [T][hs], and per warp the row's dropout-scaled probabilities [T]. */
__global__ void attention_forward_kernel(float *out, float *probs, const float *qkv,
                                         const int32_t *key_mask, int T, int C, int NH,
                                         qpo_dropout drop) {
    extern __shared__ float sm[];
    int b = blockIdx.x / NH, h = blockIdx.x % NH, hs = C / NH;
    int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
    float *K = sm, *V = sm + (size_t)T * hs, *pd = V + (size_t)T * hs + (size_t)warp * T;
    size_t C3 = (size_t)3 * C;
    const float *base = qkv + (size_t)b * T * C3 + (size_t)h * hs;
    for (int e = threadIdx.x; e < T * hs; e += blockDim.x) {
        int t = e / hs, i = e % hs;
        K[e] = base[t * C3 + C + i];
        V[e] = base[t * C3 + 2 * C + i];
    }
    __syncthreads();
    const int32_t *mask = key_mask + (size_t)b * T;
    float scale = 1.0f / sqrtf((float)hs);
    for (int t = warp; t < T; t += ATT_WARPS) {
        const float *q = base + t * C3;
        float mx = -INFINITY;
        for (int j = lane; j <= t; j += 32) {
            float s = -INFINITY;
            if (mask[j]) {
                s = 0.0f;
                for (int i = 0; i < hs; i++)
                    s += q[i] * K[j * hs + i];
                s *= scale;
            }
            pd[j] = s;
            mx = fmaxf(mx, s);
        }
        mx = warp_max(mx);
        float sum = 0.0f;
        for (int j = lane; j <= t; j += 32) {
            float e = pd[j] == -INFINITY ? 0.0f : expf(pd[j] - mx);
            pd[j] = e;
            sum += e;
        }
        sum = warp_sum(sum);
        float inv = sum > 0.0f ? 1.0f / sum : 0.0f;
        size_t row = (((size_t)b * NH + h) * T + t) * T;
        for (int j = lane; j < T; j += 32) {
            float p = j <= t ? pd[j] * inv : 0.0f;
            probs[row + j] = p;
            if (j <= t)
                pd[j] = (drop.p > 0.0f && p != 0.0f) ? p * dropout_scale(drop, row + j) : p;
        }
        __syncwarp();
        float *y = out + ((size_t)b * T + t) * C + (size_t)h * hs;
        for (int i = lane; i < hs; i += 32) {
            float acc = 0.0f;
            for (int j = 0; j <= t; j++)
                acc += pd[j] * V[j * hs + i];
            y[i] = acc;
        }
        __syncwarp();
    }
}

void qpo_cuda_attention_forward(float *out, float *probs, const float *qkv, const int32_t *key_mask,
                                int B, int T, int C, int NH, qpo_dropout drop) {
    int hs = C / NH;
    size_t smem = sizeof(float) * ((size_t)2 * T * hs + (size_t)ATT_WARPS * T);
    allow_smem((const void *)attention_forward_kernel, smem);
    attention_forward_kernel<<<B * NH, 32 * ATT_WARPS, smem, qpo_cuda.stream>>>(
        out, probs, qkv, key_mask, T, C, NH, drop);
    KERNEL_CHECK();
}

/* smem: ds [T][T] (d score) and pd [T][T] (probabilities after dropout). Phase 1, a warp per
 * query row t: dp_j = dy_t . v_j (times the dropout scale), ds = p (dp - sum p dp) / sqrt(hs).
 * Phase 2, a thread per (t, i): dq, dk and dv of position t, each a fixed-order sum. */
__global__ void attention_backward_kernel(float *dqkv, const float *dout, const float *qkv,
                                          const float *probs, int T, int C, int NH,
                                          qpo_dropout drop) {
    extern __shared__ float sm[];
    float *ds = sm, *pd = sm + (size_t)T * T;
    int b = blockIdx.x / NH, h = blockIdx.x % NH, hs = C / NH;
    int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
    size_t C3 = (size_t)3 * C;
    const float *base = qkv + (size_t)b * T * C3 + (size_t)h * hs;
    const float *dybase = dout + (size_t)b * T * C + (size_t)h * hs;
    float scale = 1.0f / sqrtf((float)hs);
    for (int t = warp; t < T; t += ATT_WARPS) {
        size_t row = (((size_t)b * NH + h) * T + t) * T;
        const float *dy = dybase + (size_t)t * C;
        float s = 0.0f;
        for (int j = lane; j < T; j += 32) {
            float p = j <= t ? probs[row + j] : 0.0f, dp = 0.0f, pk = 0.0f;
            if (p != 0.0f) {
                float keep = drop.p > 0.0f ? dropout_scale(drop, row + j) : 1.0f;
                const float *v = base + (size_t)j * C3 + 2 * C;
                for (int i = 0; i < hs; i++)
                    dp += dy[i] * v[i];
                dp *= keep;
                pk = p * keep;
            }
            ds[t * T + j] = dp; /* dp for now; turned into ds below */
            pd[t * T + j] = pk;
            s += p * dp;
        }
        s = warp_sum(s);
        for (int j = lane; j < T; j += 32) {
            float p = j <= t ? probs[row + j] : 0.0f;
            ds[t * T + j] = p != 0.0f ? p * (ds[t * T + j] - s) * scale : 0.0f;
        }
    }
    __syncthreads();
    float *dbase = dqkv + (size_t)b * T * C3 + (size_t)h * hs;
    for (int e = threadIdx.x; e < T * hs; e += blockDim.x) {
        int t = e / hs, i = e % hs;
        float dq = 0.0f, dk = 0.0f, dv = 0.0f;
        for (int j = 0; j <= t; j++)
            dq += ds[t * T + j] * base[(size_t)j * C3 + C + i];
        for (int u = t; u < T; u++) {
            dk += ds[u * T + t] * base[(size_t)u * C3 + i];
            dv += pd[u * T + t] * dybase[(size_t)u * C + i];
        }
        dbase[(size_t)t * C3 + i] += dq;
        dbase[(size_t)t * C3 + C + i] += dk;
        dbase[(size_t)t * C3 + 2 * C + i] += dv;
    }
}

void qpo_cuda_attention_backward(float *dqkv, const float *dout, const float *qkv,
                                 const float *probs, const int32_t *key_mask, int B, int T, int C,
                                 int NH, qpo_dropout drop) {
    (void)key_mask; /* masked keys have probability 0: their gradients vanish */
    size_t smem = sizeof(float) * (size_t)2 * T * T;
    allow_smem((const void *)attention_backward_kernel, smem);
    attention_backward_kernel<<<B * NH, 32 * ATT_WARPS, smem, qpo_cuda.stream>>>(
        dqkv, dout, qkv, probs, T, C, NH, drop);
    KERNEL_CHECK();
}

/* Deterministic block reductions over DEC_THREADS threads: warps first, then warp 0 over the
 * warps' results, always in the same order. */
#define DEC_THREADS 128

__device__ float block_reduce(float v, float *red, bool is_max) {
    int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
    v = is_max ? warp_max(v) : warp_sum(v);
    __syncthreads();
    if (lane == 0)
        red[warp] = v;
    __syncthreads();
    if (warp == 0) {
        float x = lane < DEC_THREADS / 32 ? red[lane] : (is_max ? -INFINITY : 0.0f);
        x = is_max ? warp_max(x) : warp_sum(x);
        if (lane == 0)
            red[0] = x;
    }
    __syncthreads();
    return red[0];
}

/* One new token per row against the cache: smem p [len]. */
__global__ void attention_decode_kernel(float *out, const float *qkv, const float *kcache,
                                        const float *vcache, const int32_t *key_mask, int len,
                                        int Tmax, int C, int NH) {
    extern __shared__ float p[];
    __shared__ float red[DEC_THREADS / 32];
    int b = blockIdx.x / NH, h = blockIdx.x % NH, hs = C / NH;
    const float *q = qkv + (size_t)b * 3 * C + (size_t)h * hs;
    size_t off = (size_t)b * Tmax * C + (size_t)h * hs;
    const int32_t *mask = key_mask + (size_t)b * Tmax;
    float scale = 1.0f / sqrtf((float)hs), mx = -INFINITY;
    for (int j = threadIdx.x; j < len; j += DEC_THREADS) {
        float s = -INFINITY;
        if (mask[j]) {
            const float *k = kcache + off + (size_t)j * C;
            s = 0.0f;
            for (int i = 0; i < hs; i++)
                s += q[i] * k[i];
            s *= scale;
        }
        p[j] = s;
        mx = fmaxf(mx, s);
    }
    mx = block_reduce(mx, red, true);
    float sum = 0.0f;
    for (int j = threadIdx.x; j < len; j += DEC_THREADS) {
        float e = p[j] == -INFINITY ? 0.0f : expf(p[j] - mx);
        p[j] = e;
        sum += e;
    }
    sum = block_reduce(sum, red, false);
    float inv = sum > 0.0f ? 1.0f / sum : 0.0f;
    for (int i = threadIdx.x; i < hs; i += DEC_THREADS) {
        float acc = 0.0f;
        for (int j = 0; j < len; j++)
            acc += p[j] * vcache[off + (size_t)j * C + i];
        out[(size_t)b * C + (size_t)h * hs + i] = acc * inv;
    }
}

void qpo_cuda_attention_decode(float *out, const float *qkv, const float *kcache,
                               const float *vcache, const int32_t *key_mask, int B, int len,
                               int Tmax, int C, int NH) {
    size_t smem = sizeof(float) * (size_t)len;
    allow_smem((const void *)attention_decode_kernel, smem);
    attention_decode_kernel<<<B * NH, DEC_THREADS, smem, qpo_cuda.stream>>>(
        out, qkv, kcache, vcache, key_mask, len, Tmax, C, NH);
    KERNEL_CHECK();
}

__global__ void kv_store_kernel(float *kcache, float *vcache, const float *qkv, int B, int T,
                                int pos0, int Tmax, int C) {
    size_t e = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (e >= (size_t)B * T * C)
        return;
    int c = (int)(e % C);
    size_t bt = e / C;
    int t = (int)(bt % T), b = (int)(bt / T);
    const float *src = qkv + bt * 3 * C;
    size_t dst = ((size_t)b * Tmax + pos0 + t) * C + c;
    kcache[dst] = src[C + c];
    vcache[dst] = src[2 * C + c];
}

void qpo_cuda_kv_store(float *kcache, float *vcache, const float *qkv, int B, int T, int pos0,
                       int Tmax, int C) {
    size_t n = (size_t)B * T * C;
    kv_store_kernel<<<qpo_cdiv(n, 256), 256, 0, qpo_cuda.stream>>>(kcache, vcache, qkv, B, T, pos0,
                                                                   Tmax, C);
    KERNEL_CHECK();
}
