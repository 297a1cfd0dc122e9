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

void ct_batchnorm_forward(float *y, float *mean, float *invstd, float *running_mean,
                          float *running_var, const float *x, const float *gamma,
                          const float *beta, int64_t N, int64_t C, int64_t HW, float eps,
                          float momentum, int training) {
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
        float m = (float)mu, is = (float)(1.0 / sqrt(var + eps));
        mean[c] = m;
        invstd[c] = is;
        float g = gamma ? gamma[c] : 1.0f, b = beta ? beta[c] : 0.0f;
        float scale = g * is, shift = b - m * scale;
        for (int64_t n = 0; n < N; n++) {
            const float *xc = x + (n * C + c) * HW;
            float *yc = y + (n * C + c) * HW;
#pragma omp simd
            for (int64_t i = 0; i < HW; i++) yc[i] = xc[i] * scale + shift;
        }
    }
}

void ct_batchnorm_backward(float *dx, float *dgamma, float *dbeta, const float *dy, const float *x,
                           const float *mean, const float *invstd, const float *gamma, int64_t N,
                           int64_t C, int64_t HW, int training) {
    const double M = (double)N * (double)HW;
#pragma omp parallel for schedule(static) if (N * C * HW >= CT_PAR_MIN)
    for (int64_t c = 0; c < C; c++) {
        const float m = mean[c], is = invstd[c];
        double sdy = 0.0, sdyx = 0.0;
        for (int64_t n = 0; n < N; n++)
            plane_dots(dy + (n * C + c) * HW, x + (n * C + c) * HW, HW, m, &sdy, &sdyx);
        sdyx *= is;
        if (dgamma) dgamma[c] += (float)sdyx;
        if (dbeta) dbeta[c] += (float)sdy;
        if (!dx) continue;
        float g = gamma ? gamma[c] : 1.0f;
        if (training) {
            /* dx = g*is * (dy - mean(dy) - xhat * mean(dy*xhat)) */
            float k = g * is, a = (float)(sdy / M), bcoef = (float)(sdyx / M);
            for (int64_t n = 0; n < N; n++) {
                const float *xc = x + (n * C + c) * HW, *dyc = dy + (n * C + c) * HW;
                float *dxc = dx + (n * C + c) * HW;
#pragma omp simd
                for (int64_t i = 0; i < HW; i++) dxc[i] += k * (dyc[i] - a - (xc[i] - m) * is * bcoef);
            }
        } else {
            float k = g * is;
            for (int64_t n = 0; n < N; n++) {
                const float *dyc = dy + (n * C + c) * HW;
                float *dxc = dx + (n * C + c) * HW;
#pragma omp simd
                for (int64_t i = 0; i < HW; i++) dxc[i] += k * dyc[i];
            }
        }
    }
}
