/* internal.h: helpers shared by the files of src/nn, and the plain reference
 * kernels the tests and benchmarks compare the fast paths with; not part of the
 * API (tests and bench include it as "../src/nn/internal.h"). Names shared
 * between files carry the ct_nn__ prefix so they cannot clash with public ones. */
#ifndef CT_NN_INTERNAL_H
#define CT_NN_INTERNAL_H

#include "contrast/nn.h"

#include <stddef.h>
#include <stdint.h>
#include <string.h>

/* The maximum of the 2x2 window (a b / c d) whose top-left element has index i in
 * a plane of width W, and that element's index: scan order, the first maximum
 * wins ties. Both the max pool and the BN fused with it pick windows this way,
 * so their outputs and argmax agree bit for bit. Inline, so the callers' window
 * loops still vectorise. */
static inline float max2x2(float a, float b, float c, float d, int32_t i, int32_t W, int32_t *bi) {
    float best = a;
    int32_t k = i;
    k = b > best ? i + 1 : k;
    best = b > best ? b : best;
    k = c > best ? i + W : k;
    best = c > best ? c : best;
    k = d > best ? i + W + 1 : k;
    best = d > best ? d : best;
    *bi = k;
    return best;
}

/* exp(y) for y <= 0 (clamped at -87, where it is 1.6e-38): range reduction to
 * [-ln2/2, ln2/2] and a degree-6 Taylor polynomial, relative error 2e-7 before
 * float rounding; plain arithmetic, so loops over it vectorise (GELU, softmax). */
static inline float ct_nn__exp_nonpos(float y) {
    y = y < -87.0f ? -87.0f : y;
    /* k = round(y / ln 2) by the 1.5 * 2^23 trick (floorf is a call the vectoriser
     * refuses at -O2; no -ffast-math here, so the addition is not folded away) */
    const float k = (y * 1.44269504088896341f + 12582912.0f) - 12582912.0f;
    const float r = (y - k * 0.693145751953125f) - k * 1.42860682030941723e-6f; /* ln 2 in two parts */
    const float p =
        1.0f + r * (1.0f + r * (0.5f + r * (1.0f / 6 + r * (1.0f / 24 + r * (1.0f / 120 + r * (1.0f / 720))))));
    const int32_t bits = ((int32_t)k + 127) << 23; /* 2^k, k in [-126, 0] */
    float scale;
    memcpy(&scale, &bits, sizeof scale);
    return p * scale;
}

/* Draw j (counter j + 1) of the generator ct_rng_make(key) as ct_rng_uniform gives
 * it: src/core/rng.c's SplitMix64 step, written out here so that loops over j
 * vectorise (a call per element cannot). test_transformer checks it against
 * ct_rng_uniform, so the two cannot drift apart. */
static inline float ct_nn__uniform_at(uint64_t key, uint64_t j) {
    uint64_t x = key + 0x632BE59BD9B4E019ull * (j + 1);
    x += 0x9E3779B97F4A7C15ull;
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
    x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
    x ^= x >> 31;
    return (float)(x >> 40) * (1.0f / 16777216.0f);
}

/* Dropout of n values with the first n draws of ct_rng_make(key):
 * dst[j] = src[j] * (draw j >= p ? scale : 0); dst may be src. */
static inline void ct_nn__dropout_apply(float *dst, const float *src, size_t n, float p, float scale, uint64_t key) {
#pragma omp simd
    for (size_t j = 0; j < n; j++) dst[j] = src[j] * (ct_nn__uniform_at(key, j) >= p ? scale : 0.0f);
}

/* Samples [*n0, *n1) of part p of a batch of N: the fixed partition (CT_NN_PARTS
 * parts) whose partial sums are added in part order, so reductions over the
 * batch have the same bits at any thread count. */
static inline void ct_nn__part_range(int64_t N, int p, int64_t *n0, int64_t *n1) {
    *n0 = N * p / CT_NN_PARTS;
    *n1 = N * (p + 1) / CT_NN_PARTS;
}

/* ---- conv2d.c's dispatch to winograd.c ----
 * ct_nn__wino_ok: whether s (3x3, stride 1, pad 1, enough channels and samples)
 * takes the Winograd path; the others below are valid only where it does.
 * ct_nn__wino_workspace: the floats of scratch that path needs (ct_conv2d_workspace
 * takes the larger of it and im2col's). The forward and backward have
 * ct_conv2d_forward's and ct_conv2d_backward's contracts, db aside. */
int ct_nn__wino_ok(const ct_conv2d_shape *s);
size_t ct_nn__wino_workspace(const ct_conv2d_shape *s);
void ct_nn__wino_forward(float *y,        /* (N, OC, H, W) */
                         const float *x,  /* (N, C, H, W) */
                         const float *w,  /* (OC, C, 3, 3) */
                         const float *b,  /* (OC) or NULL */
                         const ct_conv2d_shape *s, float *ws);
void ct_nn__wino_backward(float *dx,       /* (N, C, H, W) or NULL: written (overwrite) or accumulated */
                          float *dw,       /* (OC, C, 3, 3) or NULL, accumulated */
                          const float *dy, /* (N, OC, H, W) */
                          const float *x, const float *w, const ct_conv2d_shape *s, float *ws, int overwrite);

/* ---- references (tests and bench only) ----
 * Direct seven-loop convolutions, slow and plain: what ct_conv2d_forward and
 * ct_conv2d_backward (im2col and Winograd alike) are checked against. The forward
 * sums each output in double; the backward accumulates into dx, dw and db (any
 * may be NULL) like ct_conv2d_backward. */
void ct_conv2d_forward_ref(float *y, const float *x, const float *w, const float *b,
                           const ct_conv2d_shape *s);
void ct_conv2d_backward_ref(float *dx, float *dw, float *db, const float *dy, const float *x,
                            const float *w, const ct_conv2d_shape *s);

#endif
