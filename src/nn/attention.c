/* attention.c: multi-head scaled-dot-product self-attention from a fused QKV buffer.
 *
 * qkv holds, for each token, [q | k | v], each C = H * D wide with head h in
 * columns h*D .. h*D + D - 1 (the layout of PyTorch's fused in_proj and of
 * nn.MultiheadAttention's head split). For each (batch b, head h):
 *   S = Q K^T / sqrt(D)                       (T, T), two GEMMs per head
 *   P = softmax over the keys each query may see: valid keys (valid[b, j] != 0),
 *       and with causal only keys j <= i; the row maximum is subtracted before
 *       exp, and a row with no visible key is all zeros (its output is zero),
 *       where PyTorch would give NaN
 *   Pd = P * M, M the dropout scale factors (0 or 1/(1-p)) of each (b, h, i, j)
 *   y[:, h] = Pd V
 * Only P is saved. M is never stored: element j of row i of head (b, h) is draw j
 * of a generator keyed by (key, b*H + h, i), which the backward regenerates, the
 * same at any thread count. One (b, h) pair per loop iteration, each writing its
 * own columns, so the results do not depend on the thread count. */
#include "internal.h"

#include <math.h>
#include <string.h>

/* Softmax of row s (T scores) in place over the keys j < n with valid[j] (or
 * every j < n when valid is NULL); every other entry becomes 0. Masked keys are
 * first set to -inf, so the loops after that see floats only and vectorise (with
 * the byte mask in them GCC picks 64 lanes, more than a row of 32 or 50 keys, and
 * ran the rows in scalar epilogues). exp by ct_nn__exp_nonpos (its argument
 * s - max <= 0), the sum in float lanes (at most T terms of at most 1 each);
 * libm's expf is a call per element, and the scalar loops were a third of the
 * attention's time. */
static void masked_softmax(float *s, int64_t T, int64_t n, const uint8_t *valid) {
    if (valid)
        for (int64_t j = 0; j < n; j++) s[j] = valid[j] ? s[j] : -INFINITY;
    float mx = -INFINITY;
#pragma omp simd reduction(max : mx)
    for (int64_t j = 0; j < n; j++) mx = s[j] > mx ? s[j] : mx;
    if (mx == -INFINITY) { /* no visible key (or -inf scores, which finite inputs never give) */
        memset(s, 0, (size_t)T * sizeof(float));
        return;
    }
    float sum = 0.0f;
#pragma omp simd reduction(+ : sum)
    for (int64_t j = 0; j < n; j++) {
        const float v = s[j], e = ct_nn__exp_nonpos(v - mx); /* -inf - mx: clamped inside */
        s[j] = v == -INFINITY ? 0.0f : e;
        sum += s[j];
    }
    if (n < T) memset(s + n, 0, (size_t)(T - n) * sizeof(float));
    const float inv = 1.0f / sum;
#pragma omp simd
    for (int64_t j = 0; j < n; j++) s[j] *= inv;
}

/* row i of head bh: dst[j] = src[j] * M[j] (the drops of ct_attention_forward) */
static void dropout_row(float *dst, const float *src, int64_t T, float p, uint64_t key, int64_t bh, int64_t i) {
    ct_nn__dropout_apply(dst, src, (size_t)T, p, 1.0f / (1.0f - p), ct_rng_key(key, (uint64_t)bh, (uint64_t)i, 0));
}

void ct_attention_forward(float *y, float *att, float *ws, const float *qkv, const uint8_t *valid, int64_t B,
                          int64_t T, int64_t C, int64_t H, int causal, float p, uint64_t key) {
    const int64_t D = C / H, C3 = 3 * C, TT = T * T;
    const float scale = 1.0f / sqrtf((float)D);
#pragma omp parallel for schedule(static) if (B * H * TT * D >= CT_PAR_MIN)
    for (int64_t bh = 0; bh < B * H; bh++) {
        const int64_t b = bh / H, h = bh % H;
        const float *q = qkv + b * T * C3 + h * D, *k = q + C, *v = q + 2 * C;
        const uint8_t *vb = valid ? valid + b * T : NULL;
        float *P = att + bh * TT;
        ct_gemm(0, 1, T, T, D, scale, q, C3, k, C3, 0.0f, P, T); /* S = Q K^T / sqrt(D) */
        for (int64_t i = 0; i < T; i++) masked_softmax(P + i * T, T, causal ? i + 1 : T, vb);
        const float *Pd = P;
        if (p > 0.0f) {
            float *W = ws + bh * TT;
            for (int64_t i = 0; i < T; i++) dropout_row(W + i * T, P + i * T, T, p, key, bh, i);
            Pd = W;
        }
        ct_gemm(0, 0, T, D, T, 1.0f, Pd, T, v, C3, 0.0f, y + b * T * C + h * D, C); /* y_h = Pd V */
    }
}

void ct_attention_backward(float *dqkv, float *ws, const float *dy, const float *att, const float *qkv, int64_t B,
                           int64_t T, int64_t C, int64_t H, float p, uint64_t key) {
    const int64_t D = C / H, C3 = 3 * C, TT = T * T;
    const float scale = 1.0f / sqrtf((float)D);
#pragma omp parallel for schedule(static) if (B * H * TT * D >= CT_PAR_MIN)
    for (int64_t bh = 0; bh < B * H; bh++) {
        const int64_t b = bh / H, h = bh % H;
        const float *q = qkv + b * T * C3 + h * D, *k = q + C, *v = q + 2 * C;
        float *dq = dqkv + b * T * C3 + h * D, *dk = dq + C, *dv = dq + 2 * C;
        const float *P = att + bh * TT, *dyh = dy + b * T * C + h * D;
        float *G = ws + bh * TT;
        /* dV += Pd^T dY, with Pd rebuilt in the scratch when there is dropout */
        const float *Pd = P;
        if (p > 0.0f) {
            for (int64_t i = 0; i < T; i++) dropout_row(G + i * T, P + i * T, T, p, key, bh, i);
            Pd = G;
        }
        ct_gemm(1, 0, T, D, T, 1.0f, Pd, T, dyh, C, 1.0f, dv, C3);
        /* dPd = dY V^T, then dP = dPd * M */
        ct_gemm(0, 1, T, T, D, 1.0f, dyh, C, v, C3, 0.0f, G, T);
        if (p > 0.0f)
            for (int64_t i = 0; i < T; i++) dropout_row(G + i * T, G + i * T, T, p, key, bh, i);
        /* softmax: dS_ij = P_ij (dP_ij - sum_k P_ik dP_ik); zero wherever P is (masked keys) */
        for (int64_t i = 0; i < T; i++) {
            const float *Pr = P + i * T;
            float *Gr = G + i * T;
            float d = 0.0f;
#pragma omp simd reduction(+ : d)
            for (int64_t j = 0; j < T; j++) d += Pr[j] * Gr[j];
#pragma omp simd
            for (int64_t j = 0; j < T; j++) Gr[j] = Pr[j] * (Gr[j] - d);
        }
        /* S = Q K^T * scale: dQ += scale dS K, dK += scale dS^T Q */
        ct_gemm(0, 0, T, D, T, scale, G, T, k, C3, 1.0f, dq, C3);
        ct_gemm(1, 0, T, D, T, scale, G, T, q, C3, 1.0f, dk, C3);
    }
}
