/* batchnorm.c: BatchNorm over (N, C, HW), 1d (HW = 1) and 2d alike.
 *
 * Statistics take two passes (mean, then squared deviations), one channel per
 * loop iteration: no cross-thread reduction, so the result does not depend on
 * the thread count. Each (sample, channel) plane is summed in float over eight
 * fixed lanes (so the compiler can vectorise it; the order is still fixed), and
 * the plane sums are accumulated in double. */
#include "contrast/nn.h"

#include <math.h>

#define LANES 8

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

/* sdy += sum(dy), sdyx += sum(dy * (x - m)) (the caller scales by invstd) */
static void plane_dots(const float *dy, const float *x, int64_t n, float m, double *sdy, double *sdyx) {
    float a[LANES] = {0}, b[LANES] = {0};
    int64_t i = 0;
    for (; i + LANES <= n; i += LANES)
        for (int l = 0; l < LANES; l++) {
            a[l] += dy[i + l];
            b[l] += dy[i + l] * (x[i + l] - m);
        }
    for (int l = 0; i < n; i++, l++) {
        a[l] += dy[i];
        b[l] += dy[i] * (x[i] - m);
    }
    for (int l = 0; l < LANES; l++) {
        *sdy += a[l];
        *sdyx += b[l];
    }
}

/* plane_dots of the ReLU-masked gradient: dy where x * scale + shift > 0, else 0
 * (dy loaded unconditionally so the select vectorises instead of branching) */
static void plane_dots_relu(const float *dy, const float *x, int64_t n, float m, float scale, float shift,
                            double *sdy, double *sdyx) {
    float a[LANES] = {0}, b[LANES] = {0};
    int64_t i = 0;
    for (; i + LANES <= n; i += LANES)
        for (int l = 0; l < LANES; l++) {
            float d = dy[i + l], v = x[i + l] * scale + shift, g = v > 0.0f ? d : 0.0f;
            a[l] += g;
            b[l] += g * (x[i + l] - m);
        }
    for (int l = 0; i < n; i++, l++) {
        float d = dy[i], v = x[i] * scale + shift, g = v > 0.0f ? d : 0.0f;
        a[l] += g;
        b[l] += g * (x[i] - m);
    }
    for (int l = 0; l < LANES; l++) {
        *sdy += a[l];
        *sdyx += b[l];
    }
}

/* y = v or relu(v) for channel c of every sample */
static void apply_channel(float *y, const float *x, int64_t N, int64_t C, int64_t HW, int64_t c, float scale,
                          float shift, int relu) {
    for (int64_t n = 0; n < N; n++) {
        const float *xc = x + (n * C + c) * HW;
        float *yc = y + (n * C + c) * HW;
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

void ct_batchnorm_forward(float *y, float *mean, float *invstd, float *running_mean,
                          float *running_var, const float *x, const float *gamma,
                          const float *beta, int64_t N, int64_t C, int64_t HW, float eps,
                          float momentum, int training, int relu) {
    const double M = (double)N * (double)HW;
#pragma omp parallel for schedule(static) if (N * C * HW >= CT_PAR_MIN)
    for (int64_t c = 0; c < C; c++) {
        double mu, var;
        if (training) {
            double s = 0.0;
            for (int64_t n = 0; n < N; n++) s += plane_sum(x + (n * C + c) * HW, HW);
            mu = s / M;
            double ss = 0.0;
            for (int64_t n = 0; n < N; n++) ss += plane_sqdev(x + (n * C + c) * HW, HW, (float)mu);
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
        float m = (float)mu, is = (float)(1.0 / sqrt(var + eps)), scale, shift;
        mean[c] = m;
        invstd[c] = is;
        bn_affine(m, is, gamma, beta, c, &scale, &shift);
        apply_channel(y, x, N, C, HW, c, scale, shift, relu);
    }
}

void ct_batchnorm_apply(float *y, const float *x, const float *mean, const float *invstd, const float *gamma,
                        const float *beta, int64_t N, int64_t C, int64_t HW, int relu) {
#pragma omp parallel for schedule(static) if (N * C * HW >= CT_PAR_MIN)
    for (int64_t c = 0; c < C; c++) {
        float scale, shift;
        bn_affine(mean[c], invstd[c], gamma, beta, c, &scale, &shift);
        apply_channel(y, x, N, C, HW, c, scale, shift, relu);
    }
}

void ct_batchnorm_backward(float *dx, float *dgamma, float *dbeta, const float *dy, const float *x,
                           const float *mean, const float *invstd, const float *gamma, const float *beta,
                           int64_t N, int64_t C, int64_t HW, int training, int relu) {
    const double M = (double)N * (double)HW;
#pragma omp parallel for schedule(static) if (N * C * HW >= CT_PAR_MIN)
    for (int64_t c = 0; c < C; c++) {
        const float m = mean[c], is = invstd[c];
        float scale, shift;
        bn_affine(m, is, gamma, beta, c, &scale, &shift);
        double sdy = 0.0, sdyx = 0.0;
        for (int64_t n = 0; n < N; n++) {
            const float *dyc = dy + (n * C + c) * HW, *xc = x + (n * C + c) * HW;
            if (relu) plane_dots_relu(dyc, xc, HW, m, scale, shift, &sdy, &sdyx);
            else plane_dots(dyc, xc, HW, m, &sdy, &sdyx);
        }
        sdyx *= is;
        if (dgamma) dgamma[c] += (float)sdyx;
        if (dbeta) dbeta[c] += (float)sdy;
        if (!dx) continue;
        /* training: dx = g*is * (dy - mean(dy) - xhat * mean(dy*xhat)), dy masked by the ReLU;
         * eval: dx = g*is * dy (a and bcoef are zero) */
        float k = scale, a = training ? (float)(sdy / M) : 0.0f, bcoef = training ? (float)(sdyx / M) : 0.0f;
        for (int64_t n = 0; n < N; n++) {
            const float *xc = x + (n * C + c) * HW, *dyc = dy + (n * C + c) * HW;
            float *dxc = dx + (n * C + c) * HW;
            if (relu) {
#pragma omp simd
                for (int64_t i = 0; i < HW; i++) {
                    float d = dyc[i], v = xc[i] * scale + shift, g = v > 0.0f ? d : 0.0f;
                    dxc[i] += k * (g - a - (xc[i] - m) * is * bcoef);
                }
            } else {
#pragma omp simd
                for (int64_t i = 0; i < HW; i++) dxc[i] += k * (dyc[i] - a - (xc[i] - m) * is * bcoef);
            }
        }
    }
}
