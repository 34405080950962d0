/* Every op of the CUDA backend (fp32) against the CPU backend's op of the same name, on the same
 * random inputs, within 1e-5 relative (1e-4 where a long sum runs in another order). Sizes are
 * odd so tails are exercised; T = 81 as PGDT's sequences, with padded keys and dropout. */
#include <math.h>
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "cuda_util.h"
#include "hash.h"

#define TOL 1e-5
#define TOL_SUM 1e-4

static const qpo_backend *cpu, *gpu;

/* Runs a backward-style op that accumulates into an initially random buffer on both sides and
 * compares, so that "+=" (not "=") is checked too. */
typedef struct pair {
    float *h, *d;
    size_t n;
} pair;

static pair mk(size_t n, uint64_t seed) {
    pair p = {rand_host(n, seed), NULL, n};
    p.d = to_dev(gpu, p.h, n * sizeof(float));
    return p;
}

static void drop(pair *p) {
    free(p->h);
    gpu->free(p->d);
}

static void check(const char *what, pair *p, double tol) {
    expect_close(gpu, what, p->d, p->h, p->n, tol);
}

static void test_matmul(void **state) {
    (void)state;
    int shapes[][3] = {{7, 37, 301}, {81 * 3, 96, 288}, {5, 64, 1}, {130, 130, 515}};
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        int N = shapes[s][0], C = shapes[s][1], OC = shapes[s][2];
        for (int io = 0; io < 2; io++) {
            pair x = mk((size_t)N * C, 1), w = mk((size_t)C * OC, 2), b = mk(OC, 3);
            pair out = mk((size_t)N * OC, 4), dout = mk((size_t)N * OC, 5);
            pair dx = mk((size_t)N * C, 6), dw = mk((size_t)C * OC, 7), db = mk(OC, 8);
            cpu->matmul_forward(out.h, x.h, w.h, b.h, N, C, OC, io);
            gpu->matmul_forward(out.d, x.d, w.d, b.d, N, C, OC, io);
            check("matmul_forward", &out, TOL_SUM);
            cpu->matmul_rows_forward(out.h, x.h, w.h, NULL, N, C, OC, io);
            gpu->matmul_rows_forward(out.d, x.d, w.d, NULL, N, C, OC, io);
            check("matmul_rows_forward", &out, TOL_SUM);
            cpu->matmul_backward(dx.h, dw.h, db.h, dout.h, x.h, w.h, N, C, OC, io);
            gpu->matmul_backward(dx.d, dw.d, db.d, dout.d, x.d, w.d, N, C, OC, io);
            check("matmul_backward dinp", &dx, TOL_SUM);
            check("matmul_backward dw", &dw, TOL_SUM);
            check("matmul_backward dbias", &db, TOL_SUM);
            pair *all[] = {&x, &w, &b, &out, &dout, &dx, &dw, &db};
            for (size_t i = 0; i < 8; i++)
                drop(all[i]);
        }
    }
}

/* A row decoded alone equals the same row decoded in a batch, bit for bit. */
static void test_matmul_rows_batch_invariant(void **state) {
    (void)state;
    int N = 37, C = 96, OC = 515;
    for (int io = 0; io < 2; io++) {
        pair x = mk((size_t)N * C, 11), w = mk((size_t)C * OC, 12), b = mk(OC, 13);
        pair out = mk((size_t)N * OC, 14), one = mk(OC, 15);
        gpu->matmul_rows_forward(out.d, x.d, w.d, b.d, N, C, OC, io);
        float *all = from_dev(gpu, out.d, (size_t)N * OC);
        for (int m = 0; m < N; m += 7) {
            gpu->matmul_rows_forward(one.d, x.d + (size_t)m * C, w.d, b.d, 1, C, OC, io);
            float *row = from_dev(gpu, one.d, OC);
            assert_memory_equal(row, all + (size_t)m * OC, sizeof(float) * OC);
            free(row);
        }
        free(all);
        drop(&x), drop(&w), drop(&b), drop(&out), drop(&one);
    }
}

static void test_layernorm(void **state) {
    (void)state;
    int N = 81 * 3, C = 96;
    pair x = mk((size_t)N * C, 21), w = mk(C, 22), b = mk(C, 23), out = mk((size_t)N * C, 24);
    pair mean = mk(N, 25), rstd = mk(N, 26), dout = mk((size_t)N * C, 27);
    pair dx = mk((size_t)N * C, 28), dw = mk(C, 29), db = mk(C, 30);
    cpu->layernorm_forward(out.h, mean.h, rstd.h, x.h, w.h, b.h, N, C);
    gpu->layernorm_forward(out.d, mean.d, rstd.d, x.d, w.d, b.d, N, C);
    check("layernorm_forward out", &out, TOL);
    check("layernorm_forward mean", &mean, TOL);
    check("layernorm_forward rstd", &rstd, TOL);
    cpu->layernorm_backward(dx.h, dw.h, db.h, dout.h, x.h, w.h, mean.h, rstd.h, N, C);
    gpu->layernorm_backward(dx.d, dw.d, db.d, dout.d, x.d, w.d, mean.d, rstd.d, N, C);
    check("layernorm_backward dinp", &dx, TOL);
    check("layernorm_backward dw", &dw, TOL_SUM);
    check("layernorm_backward db", &db, TOL_SUM);
    pair *all[] = {&x, &w, &b, &out, &mean, &rstd, &dout, &dx, &dw, &db};
    for (size_t i = 0; i < 10; i++)
        drop(all[i]);
}

static void attention_case(int B, int T, int C, int NH, float p) {
    qpo_dropout dr = {p, 0x1234abcdULL};
    int32_t *mask = malloc(sizeof(int32_t) * B * T);
    for (int i = 0; i < B * T; i++) /* position 0 (the reward) is always real */
        mask[i] = i % T == 0 || qpo_hash_unit(77, i) > 0.25f;
    int32_t *dmask = to_dev(gpu, mask, sizeof(int32_t) * B * T);
    pair qkv = mk((size_t)B * T * 3 * C, 31), out = mk((size_t)B * T * C, 32);
    pair probs = mk((size_t)B * NH * T * T, 33), dout = mk((size_t)B * T * C, 34);
    pair dqkv = mk((size_t)B * T * 3 * C, 35);
    cpu->attention_forward(out.h, probs.h, qkv.h, mask, B, T, C, NH, dr);
    gpu->attention_forward(out.d, probs.d, qkv.d, dmask, B, T, C, NH, dr);
    check("attention_forward out", &out, TOL);
    check("attention_forward probs", &probs, TOL);
    cpu->attention_backward(dqkv.h, dout.h, qkv.h, probs.h, mask, B, T, C, NH, dr);
    gpu->attention_backward(dqkv.d, dout.d, qkv.d, probs.d, dmask, B, T, C, NH, dr);
    check("attention_backward", &dqkv, TOL_SUM);
    /* decode: the last position against caches filled by kv_store */
    int Tmax = T + 3, len = T;
    pair kc = mk((size_t)B * Tmax * C, 36), vc = mk((size_t)B * Tmax * C, 37);
    pair dec = mk((size_t)B * C, 38), q1 = mk((size_t)B * 3 * C, 39);
    int32_t *mask2 = malloc(sizeof(int32_t) * B * Tmax);
    for (int b = 0; b < B; b++)
        for (int t = 0; t < Tmax; t++)
            mask2[b * Tmax + t] = t < T ? mask[b * T + t] : 1;
    int32_t *dmask2 = to_dev(gpu, mask2, sizeof(int32_t) * B * Tmax);
    cpu->kv_store(kc.h, vc.h, qkv.h, B, T, 0, Tmax, C);
    gpu->kv_store(kc.d, vc.d, qkv.d, B, T, 0, Tmax, C);
    check("kv_store k", &kc, 0.0);
    check("kv_store v", &vc, 0.0);
    cpu->attention_decode(dec.h, q1.h, kc.h, vc.h, mask2, B, len, Tmax, C, NH);
    gpu->attention_decode(dec.d, q1.d, kc.d, vc.d, dmask2, B, len, Tmax, C, NH);
    check("attention_decode", &dec, TOL);
    pair *all[] = {&qkv, &out, &probs, &dout, &dqkv, &kc, &vc, &dec, &q1};
    for (size_t i = 0; i < 9; i++)
        drop(all[i]);
    gpu->free(dmask), gpu->free(dmask2);
    free(mask), free(mask2);
}

static void test_attention(void **state) {
    (void)state;
    attention_case(3, 81, 96, 4, 0.0f);
    attention_case(2, 81, 96, 4, 0.1f);
    attention_case(2, 81, 768, 12, 0.1f); /* gpt2's head size 64 */
    attention_case(1, 9, 24, 3, 0.0f);
}

static void test_pointwise(void **state) {
    (void)state;
    size_t n = 100003;
    qpo_dropout dr = {0.1f, 987654321ULL};
    pair x = mk(n, 41), y = mk(n, 42), g = mk(n, 43), dx = mk(n, 44);
    for (size_t i = 0; i < n; i++) /* GELU on activations of a realistic range */
        x.h[i] *= 4.0f;
    gpu->upload(x.d, x.h, n * sizeof(float));
    cpu->gelu_forward(y.h, x.h, n), gpu->gelu_forward(y.d, x.d, n);
    check("gelu_forward", &y, TOL);
    cpu->gelu_backward(dx.h, x.h, g.h, n), gpu->gelu_backward(dx.d, x.d, g.d, n);
    check("gelu_backward", &dx, TOL);
    cpu->relu_forward(y.h, x.h, n), gpu->relu_forward(y.d, x.d, n);
    check("relu_forward", &y, 0.0);
    cpu->relu_backward(dx.h, y.h, g.h, n), gpu->relu_backward(dx.d, y.d, g.d, n);
    check("relu_backward", &dx, 0.0);
    cpu->dropout_forward(y.h, n, dr), gpu->dropout_forward(y.d, n, dr);
    check("dropout_forward (the same bits as the CPU)", &y, 0.0);
    cpu->dropout_backward(g.h, n, dr), gpu->dropout_backward(g.d, n, dr);
    check("dropout_backward", &g, 0.0);
    cpu->residual_forward(y.h, y.h, x.h, n), gpu->residual_forward(y.d, y.d, x.d, n);
    check("residual_forward", &y, 0.0);
    cpu->accumulate(dx.h, y.h, n), gpu->accumulate(dx.d, y.d, n);
    check("accumulate", &dx, 0.0);
    cpu->scale(dx.h, n, 0.37f), gpu->scale(dx.d, n, 0.37f);
    check("scale", &dx, 0.0);
    double s_cpu = cpu->sumsq(x.h, n), s_gpu = gpu->sumsq(x.d, n);
    assert_true(fabs(s_cpu - s_gpu) <= 1e-9 * s_cpu);
    drop(&x), drop(&y), drop(&g), drop(&dx);
}

static void test_adamw(void **state) {
    (void)state;
    size_t n = 70001;
    pair p = mk(n, 51), g = mk(n, 52), m = mk(n, 53), v = mk(n, 54);
    for (size_t i = 0; i < n; i++)
        v.h[i] = fabsf(v.h[i]) * 1e-3f;
    gpu->upload(v.d, v.h, n * sizeof(float));
    for (int t = 1; t <= 3; t++) {
        cpu->adamw_update(p.h, g.h, m.h, v.h, n, 0.5f, 1e-3f, 0.9f, 0.999f, 1e-8f, 1e-4f, t);
        gpu->adamw_update(p.d, g.d, m.d, v.d, n, 0.5f, 1e-3f, 0.9f, 0.999f, 1e-8f, 1e-4f, t);
    }
    check("adamw params", &p, TOL);
    check("adamw exp_avg", &m, TOL);
    check("adamw exp_avg_sq", &v, TOL);
    drop(&p), drop(&g), drop(&m), drop(&v);
}

static void test_embeddings(void **state) {
    (void)state;
    int B = 5, Q = 40, P = 40, T = 1 + Q + P, C = 96, V = 300;
    int32_t *qids = malloc(sizeof(int32_t) * B * Q), *pids = malloc(sizeof(int32_t) * B * P);
    for (int i = 0; i < B * Q; i++) /* few distinct ids, so rows repeat in the scatter */
        qids[i] = (int32_t)(qpo_hash2(61, i) % 17), pids[i] = (int32_t)(qpo_hash2(62, i) % V);
    int32_t *dq = to_dev(gpu, qids, sizeof(int32_t) * B * Q),
            *dp = to_dev(gpu, pids, sizeof(int32_t) * B * P);
    pair rw = mk(B, 63), wte = mk((size_t)V * C, 64), seg = mk(3 * C, 65), rw_w = mk(C, 66),
         rw_b = mk(C, 67), out = mk((size_t)B * T * C, 68), dout = mk((size_t)B * T * C, 69);
    pair dwte = mk((size_t)V * C, 70), dseg = mk(3 * C, 71), drw = mk(C, 72), drb = mk(C, 73);
    pair wpe = mk((size_t)(T + 5) * C, 74), dwpe = mk((size_t)(T + 5) * C, 75);
    cpu->pgdt_embed_forward(out.h, qids, pids, rw.h, wte.h, seg.h, rw_w.h, rw_b.h, B, Q, P, C);
    gpu->pgdt_embed_forward(out.d, dq, dp, rw.d, wte.d, seg.d, rw_w.d, rw_b.d, B, Q, P, C);
    check("pgdt_embed_forward", &out, TOL);
    cpu->pgdt_embed_backward(dwte.h, dseg.h, drw.h, drb.h, dout.h, qids, pids, rw.h, B, Q, P, C);
    gpu->pgdt_embed_backward(dwte.d, dseg.d, drw.d, drb.d, dout.d, dq, dp, rw.d, B, Q, P, C);
    check("pgdt_embed_backward dwte", &dwte, TOL);
    check("pgdt_embed_backward dseg", &dseg, TOL);
    check("pgdt_embed_backward dret_w", &drw, TOL);
    check("pgdt_embed_backward dret_b", &drb, TOL);
    cpu->position_forward(out.h, out.h, wpe.h, B, T, 3, C);
    gpu->position_forward(out.d, out.d, wpe.d, B, T, 3, C);
    check("position_forward (in place)", &out, TOL);
    cpu->position_backward(dwpe.h, dout.h, B, T, 3, C);
    gpu->position_backward(dwpe.d, dout.d, B, T, 3, C);
    check("position_backward", &dwpe, TOL);
    /* gather with repeated rows */
    int M = 50;
    int32_t idx[50];
    for (int i = 0; i < M; i++)
        idx[i] = (int32_t)(qpo_hash2(76, i) % 20);
    int32_t *didx = to_dev(gpu, idx, sizeof idx);
    pair g = mk((size_t)M * C, 77), dsrc = mk((size_t)V * C, 78);
    cpu->gather_rows(g.h, wte.h, idx, M, C), gpu->gather_rows(g.d, wte.d, didx, M, C);
    check("gather_rows", &g, 0.0);
    cpu->gather_rows_backward(dsrc.h, g.h, idx, M, C);
    gpu->gather_rows_backward(dsrc.d, g.d, didx, M, C);
    check("gather_rows_backward", &dsrc, TOL);
    pair *all[] = {&rw,   &wte, &seg, &rw_w, &rw_b, &out, &dout, &dwte,
                   &dseg, &drw, &drb, &wpe,  &dwpe, &g,   &dsrc};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
        drop(all[i]);
    gpu->free(dq), gpu->free(dp), gpu->free(didx);
    free(qids), free(pids);
}

static void test_crossentropy(void **state) {
    (void)state;
    int M = 37, V = 50257;
    pair x = mk((size_t)M * V, 81), loss = mk(M, 82);
    for (size_t i = 0; i < x.n; i++)
        x.h[i] *= 8.0f;
    gpu->upload(x.d, x.h, x.n * sizeof(float));
    int32_t tg[37];
    for (int i = 0; i < M; i++)
        tg[i] = (int32_t)(qpo_hash2(83, i) % V);
    tg[0] = V - 1;
    int32_t *dtg = to_dev(gpu, tg, sizeof tg);
    cpu->crossentropy_fused(x.h, loss.h, tg, M, V, 1.0f / M);
    gpu->crossentropy_fused(x.d, loss.d, dtg, M, V, 1.0f / M);
    check("crossentropy_fused losses", &loss, TOL);
    check("crossentropy_fused dlogits", &x, TOL);
    drop(&x), drop(&loss);
    gpu->free(dtg);
}

int main(void) {
    gpu = cuda_or_skip(QPO_DTYPE_FP32);
    cpu = qpo_backend_cpu();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_matmul),     cmocka_unit_test(test_matmul_rows_batch_invariant),
        cmocka_unit_test(test_layernorm),  cmocka_unit_test(test_attention),
        cmocka_unit_test(test_pointwise),  cmocka_unit_test(test_adamw),
        cmocka_unit_test(test_embeddings), cmocka_unit_test(test_crossentropy),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
