/* Cross-entropy fused with its gradient: the [M,V] logits buffer becomes dlogits in place,
 * which halves the memory of the largest activation (V = 50257 for GPT-2). */
#include <math.h>

#include "cpu_ops.h"

void qpo_cpu_crossentropy_fused(float *logits, float *losses, const int32_t *targets, int M, int V,
                                float dscale) {
#pragma omp parallel for schedule(static)
    for (int i = 0; i < M; i++) {
        float *x = logits + (size_t)i * V;
        float mx = -INFINITY;
        for (int v = 0; v < V; v++)
            mx = x[v] > mx ? x[v] : mx;
        double sum = 0.0;
        for (int v = 0; v < V; v++) {
            x[v] = expf(x[v] - mx);
            sum += x[v];
        }
        float inv = (float)(1.0 / sum);
        int32_t tgt = targets[i];
        losses[i] = (float)(log(sum) - log((double)x[tgt]));
        for (int v = 0; v < V; v++)
            x[v] = x[v] * inv * dscale;
        x[tgt] -= dscale;
    }
}
