/* batchnorm.c: BatchNorm over (N, C, HW), 1d (HW = 1) and 2d alike.
 *
 * Statistics take two passes (mean, then squared deviations), one channel per
 * loop iteration: no cross-thread reduction, so the result does not depend on
 * the thread count. Each (sample, channel) plane is summed in float over eight
 * fixed lanes (so the compiler can vectorise it; the order is still fixed), and
 * the plane sums are accumulated in double. */
#include "contrast/nn.h"
#include "internal.h"

#include <math.h>
#include <string.h>
#ifdef __AVX2__
#include <immintrin.h>
#endif

#define LANES 8

/* Channel-major loops visit planes C * HW apart, too short a stream for the
 * hardware prefetcher to ramp up on: fetch the next plane while this one runs. */
static inline void prefetch_plane(const void *p, int64_t bytes) {
    for (int64_t o = 0; o < bytes; o += 64) __builtin_prefetch((const char *)p + o);
}


static double plane_sum(const float *x, int64_t n) {
    float acc[LANES] = {0};
    int64_t i = 0;
    for (; i + LANES <= n; i += LANES)
        for (int l = 0; l < LANES; l++) acc[l] += x[i + l];
    for (int l = 0; i < n; i++, l++) acc[l] += x[i];
    double s = 0.0;
    for (int l = 0; l < LANES; l++) s += acc[l];
    return s;
}

static double plane_sqdev(const float *x, int64_t n, float mu) {
    float acc[LANES] = {0};
    int64_t i = 0;
    for (; i + LANES <= n; i += LANES)
        for (int l = 0; l < LANES; l++) {
            float d = x[i + l] - mu;
            acc[l] += d * d;
        }
    for (int l = 0; i < n; i++, l++) {
        float d = x[i] - mu;
        acc[l] += d * d;
    }
    double s = 0.0;
    for (int l = 0; l < LANES; l++) s += acc[l];
    return s;
}

/* The normalised value of one element, v = x * scale + shift with the channel's
 * scale = gamma * invstd and shift = beta - mean * scale. Forward, recompute and
 * the ReLU mask in backward all evaluate this same expression (no FMA contraction
 * under -std=c11), so the mask backward recomputes equals the forward's exactly. */
static void bn_affine(float m, float is, const float *gamma, const float *beta, int64_t c, float *scale,
                      float *shift) {
    float g = gamma ? gamma[c] : 1.0f, b = beta ? beta[c] : 0.0f;
    *scale = g * is;
    *shift = b - m * *scale;
}

/* Lane sums of a stretch of one plane, element i of the plane in lane i % LANES
 * (so `n` must be a multiple of LANES except at the plane's end, and a plane may be
 * fed in such stretches without changing a bit): a[l] += g, b[l] += g * (x - m),
 * with g = dy, or with relu the masked dy (dy where x * scale + shift > 0, else 0;
 * dy loaded unconditionally so the select vectorises instead of branching). */
static void lanes_dots(float *restrict a, float *restrict b, const float *dy, const float *x, int64_t n, float m,
                       float scale, float shift, int relu) {
    /* the sums in locals (registers), not through a and b on every element */
    float sa[LANES], sb[LANES];
    memcpy(sa, a, sizeof sa);
    memcpy(sb, b, sizeof sb);
    int64_t i = 0;
    if (relu) {
        for (; i + LANES <= n; i += LANES)
            for (int l = 0; l < LANES; l++) {
                float d = dy[i + l], v = x[i + l] * scale + shift, g = v > 0.0f ? d : 0.0f;
                sa[l] += g;
                sb[l] += g * (x[i + l] - m);
            }
        for (int l = 0; i < n; i++, l++) {
            float d = dy[i], v = x[i] * scale + shift, g = v > 0.0f ? d : 0.0f;
            sa[l] += g;
            sb[l] += g * (x[i] - m);
        }
    } else {
        for (; i + LANES <= n; i += LANES)
            for (int l = 0; l < LANES; l++) {
                sa[l] += dy[i + l];
                sb[l] += dy[i + l] * (x[i + l] - m);
            }
        for (int l = 0; i < n; i++, l++) {
            sa[l] += dy[i];
            sb[l] += dy[i] * (x[i] - m);
        }
    }
    memcpy(a, sa, sizeof sa);
    memcpy(b, sb, sizeof sb);
}

/* the plane's lane sums into the channel's running double sums, in lane order */
static void lanes_flush(const float *a, const float *b, double *sdy, double *sdyx) {
    for (int l = 0; l < LANES; l++) {
        *sdy += a[l];
        *sdyx += b[l];
    }
}

/* dx += (or with overwrite, =) scale * (g - a - (x - m) * is * bcoef) over a
 * stretch, g the (masked) dy */
static void dx_stretch(float *dx, const float *dy, const float *x, int64_t n, float m, float is, float scale,
                       float shift, float a, float bcoef, int relu, int overwrite) {
    if (relu && overwrite) {
#pragma omp simd
        for (int64_t i = 0; i < n; i++) {
            float d = dy[i], v = x[i] * scale + shift, g = v > 0.0f ? d : 0.0f;
            dx[i] = scale * (g - a - (x[i] - m) * is * bcoef);
        }
    } else if (relu) {
#pragma omp simd
        for (int64_t i = 0; i < n; i++) {
            float d = dy[i], v = x[i] * scale + shift, g = v > 0.0f ? d : 0.0f;
            dx[i] += scale * (g - a - (x[i] - m) * is * bcoef);
        }
    } else if (overwrite) {
#pragma omp simd
        for (int64_t i = 0; i < n; i++) dx[i] = scale * (dy[i] - a - (x[i] - m) * is * bcoef);
    } else {
#pragma omp simd
        for (int64_t i = 0; i < n; i++) dx[i] += scale * (dy[i] - a - (x[i] - m) * is * bcoef);
    }
}

/* y = v or relu(v) for channel c of every sample */
static void apply_channel(float *y, const float *x, int64_t N, int64_t C, int64_t HW, int64_t c, float scale,
                          float shift, int relu) {
    for (int64_t n = 0; n < N; n++) {
        const float *xc = x + (n * C + c) * HW;
        float *yc = y + (n * C + c) * HW;
        if (n + 1 < N) prefetch_plane(xc + C * HW, HW * 4);
        if (relu) {
#pragma omp simd
            for (int64_t i = 0; i < HW; i++) {
                float v = xc[i] * scale + shift;
                yc[i] = v > 0.0f ? v : 0.0f;
            }
        } else {
#pragma omp simd
            for (int64_t i = 0; i < HW; i++) yc[i] = xc[i] * scale + shift;
        }
    }
}

/* Channel c's mean and 1/sqrt(var + eps): batch statistics (updating the running
 * ones) in training, the running ones in eval. */
static void channel_stats(float *mean, float *invstd, float *running_mean, float *running_var, const float *x,
                          int64_t N, int64_t C, int64_t HW, int64_t c, float eps, float momentum, int training) {
    const double M = (double)N * (double)HW;
    double mu, var;
    if (training) {
        double s = 0.0;
        for (int64_t n = 0; n < N; n++) {
            if (n + 1 < N) prefetch_plane(x + ((n + 1) * C + c) * HW, HW * 4);
            s += plane_sum(x + (n * C + c) * HW, HW);
        }
        mu = s / M;
        double ss = 0.0;
        for (int64_t n = 0; n < N; n++) {
            if (n + 1 < N) prefetch_plane(x + ((n + 1) * C + c) * HW, HW * 4);
            ss += plane_sqdev(x + (n * C + c) * HW, HW, (float)mu);
        }
        var = ss / M;
        if (running_mean) running_mean[c] = (float)((1.0 - momentum) * running_mean[c] + momentum * mu);
        if (running_var) {
            double unbiased = M > 1 ? ss / (M - 1) : var;
            running_var[c] = (float)((1.0 - momentum) * running_var[c] + momentum * unbiased);
        }
    } else {
        mu = running_mean[c];
        var = running_var[c];
    }
    mean[c] = (float)mu;
    invstd[c] = (float)(1.0 / sqrt(var + eps));
}

void ct_batchnorm_forward(float *y, float *mean, float *invstd, float *running_mean,
                          float *running_var, const float *x, const float *gamma,
                          const float *beta, int64_t N, int64_t C, int64_t HW, float eps,
                          float momentum, int training, int relu) {
#pragma omp parallel for schedule(dynamic, 1) if (N * C * HW >= CT_PAR_MIN)
    for (int64_t c = 0; c < C; c++) {
        channel_stats(mean, invstd, running_mean, running_var, x, N, C, HW, c, eps, momentum, training);
        float scale, shift;
        bn_affine(mean[c], invstd[c], gamma, beta, c, &scale, &shift);
        apply_channel(y, x, N, C, HW, c, scale, shift, relu);
    }
}

void ct_batchnorm_apply(float *y, const float *x, const float *mean, const float *invstd, const float *gamma,
                        const float *beta, int64_t N, int64_t C, int64_t HW, int relu) {
#pragma omp parallel for schedule(dynamic, 1) if (N * C * HW >= CT_PAR_MIN)
    for (int64_t c = 0; c < C; c++) {
        float scale, shift;
        bn_affine(mean[c], invstd[c], gamma, beta, c, &scale, &shift);
        apply_channel(y, x, N, C, HW, c, scale, shift, relu);
    }
}

/* The backward passes take channels in blocks of CB, each block's planes sample by
 * sample: the block's planes of one sample are contiguous, so the loads run as
 * long streams that the hardware prefetcher follows (one channel at a time, planes
 * C * HW apart, is a new short stream per plane: 1.5-2x slower at 28x28 even with
 * software prefetch). Each channel's sums still run over n in order, so the bits
 * do not depend on the blocking or the thread count. (The forwards keep one
 * channel at a time with prefetch: blocked, they measured no faster.) */
#define CB 8

/* the channel block of loop index blk: its first channel (returned), its size and
 * its channels' affine coefficients */
static int64_t block_of(int64_t blk, int64_t C, int64_t *nc, const float *mean, const float *invstd,
                        const float *gamma, const float *beta, float *scale, float *shift) {
    const int64_t c0 = blk * CB;
    *nc = C - c0 < CB ? C - c0 : CB;
    for (int64_t j = 0; j < *nc; j++)
        bn_affine(mean[c0 + j], invstd[c0 + j], gamma, beta, c0 + j, &scale[j], &shift[j]);
    return c0;
}

/* From a block's sums of g and g * (x - m): dgamma and dbeta (accumulated), and the
 * coefficients of dx = scale * (g - a - (x - m) * invstd * bcoef) (zero in eval). */
static void block_grads(float *dgamma, float *dbeta, float *a, float *bcoef, const double *sdy, double *sdyx,
                        const float *invstd, int64_t c0, int64_t nc, double M, int training) {
    for (int64_t j = 0; j < nc; j++) {
        sdyx[j] *= invstd[c0 + j];
        if (dgamma) dgamma[c0 + j] += (float)sdyx[j];
        if (dbeta) dbeta[c0 + j] += (float)sdy[j];
        a[j] = training ? (float)(sdy[j] / M) : 0.0f;
        bcoef[j] = training ? (float)(sdyx[j] / M) : 0.0f;
    }
}

void ct_batchnorm_backward(float *dx, float *dgamma, float *dbeta, const float *dy, const float *x,
                           const float *mean, const float *invstd, const float *gamma, const float *beta,
                           int64_t N, int64_t C, int64_t HW, int training, int relu, int overwrite) {
    const double M = (double)N * (double)HW;
#pragma omp parallel for schedule(dynamic, 1) if (N * C * HW >= CT_PAR_MIN)
    for (int64_t blk = 0; blk < (C + CB - 1) / CB; blk++) {
        int64_t nc;
        float scale[CB], shift[CB], a[CB], bcoef[CB];
        const int64_t c0 = block_of(blk, C, &nc, mean, invstd, gamma, beta, scale, shift);
        double sdy[CB] = {0}, sdyx[CB] = {0};
        for (int64_t n = 0; n < N; n++)
            for (int64_t j = 0; j < nc; j++) {
                const int64_t o = (n * C + c0 + j) * HW;
                float la[LANES] = {0}, lb[LANES] = {0};
                lanes_dots(la, lb, dy + o, x + o, HW, mean[c0 + j], scale[j], shift[j], relu);
                lanes_flush(la, lb, &sdy[j], &sdyx[j]);
            }
        /* training: dx = g*is * (dy - mean(dy) - xhat * mean(dy*xhat)), dy masked by the ReLU;
         * eval: dx = g*is * dy (a and bcoef are zero) */
        block_grads(dgamma, dbeta, a, bcoef, sdy, sdyx, invstd, c0, nc, M, training);
        if (!dx) continue;
        for (int64_t n = 0; n < N; n++)
            for (int64_t j = 0; j < nc; j++) {
                const int64_t o = (n * C + c0 + j) * HW;
                dx_stretch(dx + o, dy + o, x + o, HW, mean[c0 + j], invstd[c0 + j], scale[j], shift[j], a[j],
                           bcoef[j], relu, overwrite);
            }
    }
}

/* ---- BatchNorm (+ ReLU) fused with the 2x2, stride 2 max pool ----------------
 * The forward pools the normalised values as they are computed, with the scan
 * order and tie rule of pool.c's 2x2 path (the first maximum wins), so output and
 * argmax equal ct_maxpool_forward over ct_batchnorm_forward's y. The backward
 * expands the pooled gradient into the full-size dy the unfused path would have
 * scattered (dpool at each argmax, 0 elsewhere), a stretch of STRETCH elements of
 * one plane at a time into a small buffer that stays in L1, and runs the same lane
 * sums and dx expression over it: adding the zeros changes no bit, so every
 * result equals the unfused path's exactly. When dx is overwritten (the model's
 * case) its pass needs no expansion: every element as if its gradient were 0, then
 * the window maxima again with theirs. (Visiting only the maxima for the lane sums
 * too, in the order that keeps every lane's sum, ran 1.3-1.7x slower than the
 * vectorised dense pass: a scalar loop on scattered lanes.) */
#define STRETCH 4096 /* a multiple of LANES: whole planes up to 64x64 */

/* The normalised (+ ReLU) value, as apply_channel computes it. */
static inline float bn_value(float x, float scale, float shift, int relu) {
    float v = x * scale + shift;
    return relu ? (v > 0.0f ? v : 0.0f) : v;
}

static void pool_plane(float *y, int32_t *argmax, const float *x, int64_t H, int64_t W, float scale, float shift,
                       int relu) {
    const int64_t OH = H / 2, OW = W / 2;
    for (int64_t oh = 0; oh < OH; oh++) {
        const float *r0 = x + 2 * oh * W, *r1 = r0 + W;
        const int32_t base = (int32_t)(2 * oh * W);
        float *yo = y + oh * OW;
        int32_t *ao = argmax + oh * OW;
#pragma omp simd
        for (int64_t ow = 0; ow < OW; ow++) {
            float a = bn_value(r0[2 * ow], scale, shift, relu), b = bn_value(r0[2 * ow + 1], scale, shift, relu);
            float c = bn_value(r1[2 * ow], scale, shift, relu), d = bn_value(r1[2 * ow + 1], scale, shift, relu);
            int32_t bi;
            yo[ow] = max2x2(a, b, c, d, base + (int32_t)(2 * ow), (int32_t)W, &bi);
            ao[ow] = bi;
        }
    }
}

/* The same for an even width, pairs first: the horizontal pairs of the first 2*OH
 * rows are consecutive pairs of the flat plane, so one long loop (which vectorises
 * well, unlike rows of 7 or 14 windows) keeps each pair's larger value and its
 * index (the left one on a tie), into hv, hi (OH * W / 2); then each window is
 * the larger of its top and bottom pair (the top one on a tie). Ties go to the
 * smaller index at each step, so the result is the first maximum in scan order,
 * as pool_plane finds it. */
static void pool_plane_even(float *y, int32_t *argmax, float *hv, int32_t *hi, const float *x, int64_t H, int64_t W,
                            float scale, float shift, int relu) {
    const int64_t OH = H / 2, OW = W / 2, np = OH * W;
    if (relu) {
#pragma omp simd
        for (int32_t k = 0; k < (int32_t)np; k++) {
            float a = x[2 * k] * scale + shift, b = x[2 * k + 1] * scale + shift;
            a = a > 0.0f ? a : 0.0f;
            b = b > 0.0f ? b : 0.0f;
            hv[k] = b > a ? b : a;
            hi[k] = b > a ? 2 * k + 1 : 2 * k;
        }
    } else {
#pragma omp simd
        for (int32_t k = 0; k < (int32_t)np; k++) {
            float a = x[2 * k] * scale + shift, b = x[2 * k + 1] * scale + shift;
            hv[k] = b > a ? b : a;
            hi[k] = b > a ? 2 * k + 1 : 2 * k;
        }
    }
    for (int64_t oh = 0; oh < OH; oh++) {
        const float *t = hv + 2 * oh * OW, *u = t + OW;
        const int32_t *ti = hi + 2 * oh * OW, *ui = ti + OW;
        float *yo = y + oh * OW;
        int32_t *ao = argmax + oh * OW;
#pragma omp simd
        for (int64_t ow = 0; ow < OW; ow++) {
            yo[ow] = u[ow] > t[ow] ? u[ow] : t[ow];
            ao[ow] = u[ow] > t[ow] ? ui[ow] : ti[ow];
        }
    }
}

#ifdef __AVX2__
/* pool_plane for maps at least 12 wide, 8 (or on maps under 16 wide, 4) windows a
 * step: each row's values split into the windows' left and right columns by a
 * shuffle, then the same mul, add, ReLU and max2x2 comparisons in lanes (max_ps(v,
 * 0) is v > 0 ? v : 0, -0 and NaN included), so the same bits. A row whose window
 * count is not a multiple of the step ends with a step that overlaps the previous
 * one (it rewrites equal values). */
/* the windows' values a (top left), b, c, d (bottom right) in lanes -> y, argmax at ow */
#define POOL_STEP(V, I, PFX, BITS)                                                                                  \
    do {                                                                                                            \
        a = PFX##_add_ps(PFX##_mul_ps(a, sc), sh);                                                                  \
        b = PFX##_add_ps(PFX##_mul_ps(b, sc), sh);                                                                  \
        c = PFX##_add_ps(PFX##_mul_ps(c, sc), sh);                                                                  \
        d = PFX##_add_ps(PFX##_mul_ps(d, sc), sh);                                                                  \
        if (relu) {                                                                                                 \
            a = PFX##_max_ps(a, zero);                                                                              \
            b = PFX##_max_ps(b, zero);                                                                              \
            c = PFX##_max_ps(c, zero);                                                                              \
            d = PFX##_max_ps(d, zero);                                                                              \
        }                                                                                                           \
        const I i0 = PFX##_add_epi32(PFX##_set1_epi32((int32_t)(2 * oh * W + 2 * ow)), two);                        \
        V best = a, m = PFX##_cmp_ps(b, best, _CMP_GT_OQ);                                                          \
        I k = PFX##_blendv_epi8(i0, PFX##_add_epi32(i0, one), PFX##_castps_si##BITS(m));                            \
        best = PFX##_blendv_ps(best, b, m);                                                                         \
        m = PFX##_cmp_ps(c, best, _CMP_GT_OQ);                                                                      \
        k = PFX##_blendv_epi8(k, PFX##_add_epi32(i0, wv), PFX##_castps_si##BITS(m));                                \
        best = PFX##_blendv_ps(best, c, m);                                                                         \
        m = PFX##_cmp_ps(d, best, _CMP_GT_OQ);                                                                      \
        k = PFX##_blendv_epi8(k, PFX##_add_epi32(PFX##_add_epi32(i0, wv), one), PFX##_castps_si##BITS(m));          \
        best = PFX##_blendv_ps(best, d, m);                                                                         \
        PFX##_storeu_ps(y + oh * OW + ow, best);                                                                    \
        PFX##_storeu_si##BITS((I *)(argmax + oh * OW + ow), k);                                                     \
    } while (0)

/* the even and odd columns of 16 floats at p, in order (shuffles work within 128-bit halves) */
static inline __m256 even8(const float *p) {
    __m256 e = _mm256_shuffle_ps(_mm256_loadu_ps(p), _mm256_loadu_ps(p + 8), 0x88);
    return _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(e), 0xD8));
}
static inline __m256 odd8(const float *p) {
    __m256 o = _mm256_shuffle_ps(_mm256_loadu_ps(p), _mm256_loadu_ps(p + 8), 0xDD);
    return _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(o), 0xD8));
}

static void pool_plane_simd(float *y, int32_t *argmax, const float *x, int64_t H, int64_t W, float scale,
                            float shift, int relu) {
    const int64_t OH = H / 2, OW = W / 2;
    if (OW >= 8) {
        const __m256 sc = _mm256_set1_ps(scale), sh = _mm256_set1_ps(shift), zero = _mm256_setzero_ps();
        const __m256i two = _mm256_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14), one = _mm256_set1_epi32(1),
                      wv = _mm256_set1_epi32((int32_t)W);
        for (int64_t oh = 0; oh < OH; oh++) {
            const float *r0 = x + 2 * oh * W, *r1 = r0 + W;
            for (int64_t o = 0; o < OW; o += 8) {
                const int64_t ow = o + 8 <= OW ? o : OW - 8;
                __m256 a = even8(r0 + 2 * ow), b = odd8(r0 + 2 * ow), c = even8(r1 + 2 * ow), d = odd8(r1 + 2 * ow);
                POOL_STEP(__m256, __m256i, _mm256, 256);
            }
        }
        return;
    }
    const __m128 sc = _mm_set1_ps(scale), sh = _mm_set1_ps(shift), zero = _mm_setzero_ps();
    const __m128i two = _mm_setr_epi32(0, 2, 4, 6), one = _mm_set1_epi32(1), wv = _mm_set1_epi32((int32_t)W);
    for (int64_t oh = 0; oh < OH; oh++) {
        const float *r0 = x + 2 * oh * W, *r1 = r0 + W;
        for (int64_t o = 0; o < OW; o += 4) {
            const int64_t ow = o + 4 <= OW ? o : OW - 4;
            const __m128 t0 = _mm_loadu_ps(r0 + 2 * ow), t1 = _mm_loadu_ps(r0 + 2 * ow + 4);
            const __m128 b0 = _mm_loadu_ps(r1 + 2 * ow), b1 = _mm_loadu_ps(r1 + 2 * ow + 4);
            __m128 a = _mm_shuffle_ps(t0, t1, 0x88), b = _mm_shuffle_ps(t0, t1, 0xDD);
            __m128 c = _mm_shuffle_ps(b0, b1, 0x88), d = _mm_shuffle_ps(b0, b1, 0xDD);
            POOL_STEP(__m128, __m128i, _mm, 128);
        }
    }
}
#undef POOL_STEP
#endif

void ct_batchnorm_maxpool_forward(float *y, int32_t *argmax, float *mean, float *invstd, float *running_mean,
                                  float *running_var, const float *x, const float *gamma, const float *beta,
                                  int64_t N, int64_t C, int64_t H, int64_t W, float eps, float momentum,
                                  int training, int relu) {
    const int64_t HW = H * W, OHW = (H / 2) * (W / 2);
#pragma omp parallel for schedule(dynamic, 1) if (N * C * HW >= CT_PAR_MIN)
    for (int64_t c = 0; c < C; c++) {
        float hv[STRETCH / 2];
        int32_t hi[STRETCH / 2];
        channel_stats(mean, invstd, running_mean, running_var, x, N, C, HW, c, eps, momentum, training);
        float scale, shift;
        bn_affine(mean[c], invstd[c], gamma, beta, c, &scale, &shift);
        for (int64_t n = 0; n < N; n++) {
            if (n + 1 < N) prefetch_plane(x + ((n + 1) * C + c) * HW, HW * 4);
#ifdef __AVX2__
            if (W >= 12) {
                pool_plane_simd(y + (n * C + c) * OHW, argmax + (n * C + c) * OHW, x + (n * C + c) * HW, H, W, scale,
                            shift, relu);
                continue;
            }
#endif
            if (W % 2 == 0 && HW <= STRETCH)
                pool_plane_even(y + (n * C + c) * OHW, argmax + (n * C + c) * OHW, hv, hi, x + (n * C + c) * HW, H,
                                W, scale, shift, relu);
            else
                pool_plane(y + (n * C + c) * OHW, argmax + (n * C + c) * OHW, x + (n * C + c) * HW, H, W, scale, shift,
                       relu);
        }
    }
}

/* buf[0, len) = elements [s, s + len) of the plane's full-size gradient: dy[j] at
 * argmax[j] for the pool cells j whose window meets those rows, 0 elsewhere
 * (including the odd last row and column no window covers). */
static void expand_stretch(float *buf, int64_t s, int64_t len, const float *dy, const int32_t *argmax, int64_t W,
                           int64_t OH, int64_t OW) {
    memset(buf, 0, (size_t)len * sizeof(float));
#ifdef __AVX2__
    if (s == 0 && len == W * (len / W) && len / W >= 2 * OH && OW >= 8) {
        /* the whole plane, 8 windows a step: each window's four cells get dy where
         * argmax points, else 0, interleaved back into the two rows (the inverse
         * of pool_plane_simd's split); a last overlapping step rewrites equal values */
        const __m256i two = _mm256_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14), one = _mm256_set1_epi32(1),
                      wv = _mm256_set1_epi32((int32_t)W);
        for (int64_t oh = 0; oh < OH; oh++)
            for (int64_t o = 0; o < OW; o += 8) {
                const int64_t ow = o + 8 <= OW ? o : OW - 8;
                const __m256 g = _mm256_loadu_ps(dy + oh * OW + ow);
                const __m256i k = _mm256_loadu_si256((const __m256i *)(argmax + oh * OW + ow));
                const __m256i i0 = _mm256_add_epi32(_mm256_set1_epi32((int32_t)(2 * oh * W + 2 * ow)), two);
                const __m256i i2 = _mm256_add_epi32(i0, wv);
                const __m256 a = _mm256_and_ps(g, _mm256_castsi256_ps(_mm256_cmpeq_epi32(k, i0)));
                const __m256i i1 = _mm256_add_epi32(i0, one), i3 = _mm256_add_epi32(i2, one);
                const __m256 b = _mm256_and_ps(g, _mm256_castsi256_ps(_mm256_cmpeq_epi32(k, i1)));
                const __m256 c = _mm256_and_ps(g, _mm256_castsi256_ps(_mm256_cmpeq_epi32(k, i2)));
                const __m256 d = _mm256_and_ps(g, _mm256_castsi256_ps(_mm256_cmpeq_epi32(k, i3)));
                /* (a0 b0 a1 b1 ...): unpack within halves, then reorder the halves */
                const __m256 t0 = _mm256_unpacklo_ps(a, b), t1 = _mm256_unpackhi_ps(a, b);
                const __m256 u0 = _mm256_unpacklo_ps(c, d), u1 = _mm256_unpackhi_ps(c, d);
                float *r0 = buf + 2 * oh * W + 2 * ow, *r1 = r0 + W;
                _mm256_storeu_ps(r0, _mm256_permute2f128_ps(t0, t1, 0x20));
                _mm256_storeu_ps(r0 + 8, _mm256_permute2f128_ps(t0, t1, 0x31));
                _mm256_storeu_ps(r1, _mm256_permute2f128_ps(u0, u1, 0x20));
                _mm256_storeu_ps(r1 + 8, _mm256_permute2f128_ps(u0, u1, 0x31));
            }
        return;
    }
#endif
    int64_t oh0 = s / W / 2, oh1 = (s + len - 1) / W / 2;
    if (oh1 > OH - 1) oh1 = OH - 1;
    for (int64_t j = oh0 * OW; j < (oh1 + 1) * OW; j++) {
        int64_t p = (int64_t)argmax[j] - s;
        if (p >= 0 && p < len) buf[p] = dy[j];
    }
}

/* The (masked) gradient at a window's maximum x: dy, or with relu dy where the
 * normalised value is positive, else 0 (the select lanes_dots and dx_stretch make). */
static inline float pooled_g(float d, float x, float scale, float shift, int relu) {
    float v = x * scale + shift;
    return relu ? (v > 0.0f ? d : 0.0f) : d;
}

/* dx = dx_stretch's expression over one plane, overwriting: every element as if its
 * gradient were 0 (one vectorised pass, no full-size gradient), then the window
 * maxima again with theirs; the same expression on the same values, so the same bits. */
static void dx_plane_pooled(float *dx, const float *dy, const int32_t *argmax, const float *x, int64_t HW,
                            int64_t OHW, float m, float is, float scale, float shift, float a, float bcoef, int relu) {
    const float g0 = 0.0f;
#pragma omp simd
    for (int64_t i = 0; i < HW; i++) dx[i] = scale * (g0 - a - (x[i] - m) * is * bcoef);
    for (int64_t j = 0; j < OHW; j++) {
        const int32_t p = argmax[j];
        float g = pooled_g(dy[j], x[p], scale, shift, relu);
        dx[p] = scale * (g - a - (x[p] - m) * is * bcoef);
    }
}

void ct_batchnorm_maxpool_backward(float *dx, float *dgamma, float *dbeta, const float *dy, const int32_t *argmax,
                                   const float *x, const float *mean, const float *invstd, const float *gamma,
                                   const float *beta, int64_t N, int64_t C, int64_t H, int64_t W, int training,
                                   int relu, int overwrite) {
    const int64_t HW = H * W, OH = H / 2, OW = W / 2, OHW = OH * OW;
    const double M = (double)N * (double)HW;
#pragma omp parallel for schedule(dynamic, 1) if (N * C * HW >= CT_PAR_MIN)
    for (int64_t blk = 0; blk < (C + CB - 1) / CB; blk++) {
        int64_t nc;
        float buf[STRETCH], scale[CB], shift[CB], a[CB], bcoef[CB];
        const int64_t c0 = block_of(blk, C, &nc, mean, invstd, gamma, beta, scale, shift);
        double sdy[CB] = {0}, sdyx[CB] = {0};
        for (int64_t n = 0; n < N; n++)
            for (int64_t j = 0; j < nc; j++) {
                const int64_t c = c0 + j;
                const float *xc = x + (n * C + c) * HW, *dyc = dy + (n * C + c) * OHW;
                const int32_t *ac = argmax + (n * C + c) * OHW;
                float la[LANES] = {0}, lb[LANES] = {0};
                for (int64_t s = 0; s < HW; s += STRETCH) {
                    int64_t len = HW - s < STRETCH ? HW - s : STRETCH;
                    expand_stretch(buf, s, len, dyc, ac, W, OH, OW);
                    lanes_dots(la, lb, buf, xc + s, len, mean[c], scale[j], shift[j], relu);
                }
                lanes_flush(la, lb, &sdy[j], &sdyx[j]);
            }
        block_grads(dgamma, dbeta, a, bcoef, sdy, sdyx, invstd, c0, nc, M, training);
        if (!dx) continue;
        for (int64_t n = 0; n < N; n++)
            for (int64_t j = 0; j < nc; j++) {
                const int64_t c = c0 + j;
                const float *xc = x + (n * C + c) * HW, *dyc = dy + (n * C + c) * OHW;
                const int32_t *ac = argmax + (n * C + c) * OHW;
                float *dxc = dx + (n * C + c) * HW;
                const float m = mean[c], is = invstd[c];
                if (overwrite) {
                    dx_plane_pooled(dxc, dyc, ac, xc, HW, OHW, m, is, scale[j], shift[j], a[j], bcoef[j], relu);
                    continue;
                }
                for (int64_t s = 0; s < HW; s += STRETCH) {
                    int64_t len = HW - s < STRETCH ? HW - s : STRETCH;
                    expand_stretch(buf, s, len, dyc, ac, W, OH, OW);
                    dx_stretch(dxc + s, buf, xc + s, len, m, is, scale[j], shift[j], a[j], bcoef[j], relu, 0);
                }
            }
    }
}
