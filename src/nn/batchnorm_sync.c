/* batchnorm_sync.c: training-mode BatchNorm whose statistics span several
 * processes (SyncBatchNorm). The caller supplies `reduce`, an in-place sum over all
 * processes (ct_dist_reduce_cb under MPI); with a reduce that does nothing these
 * compute exactly what one process would over its own batch.
 *
 * Forward: global sums -> mean; global squared deviations -> variance (two passes
 * in double, as the local version). Backward: the parameter gradients get only the
 * local sums (the trainer's gradient all-reduce adds the other processes'), while
 * the input gradient needs the global sums of dy and dy*xhat. */
#include "contrast/nn.h"

#include <math.h>

/* scale = gamma * invstd, shift = beta - mean * scale: the expression of
 * batchnorm.c's bn_affine, so the ReLU mask here is the forward's exactly */
static void bn_affine(float m, float is, const float *gamma, const float *beta, int64_t c, float *scale,
                      float *shift) {
    float g = gamma ? gamma[c] : 1.0f, b = beta ? beta[c] : 0.0f;
    *scale = g * is;
    *shift = b - m * *scale;
}

void ct_batchnorm_forward_sync(float *y, float *mean, float *invstd, float *running_mean, float *running_var,
                               const float *x, const float *gamma, const float *beta, int64_t N, int64_t C,
                               int64_t HW, float eps, float momentum, int relu, double *scratch,
                               ct_reduce_fn reduce, void *ctx) {
    double *s = scratch; /* (C + 1): per-channel sums, then the element count */
#pragma omp parallel for schedule(static)
    for (int64_t c = 0; c < C; c++) {
        double acc = 0.0;
        for (int64_t n = 0; n < N; n++) {
            const float *xc = x + (n * C + c) * HW;
            for (int64_t i = 0; i < HW; i++) acc += xc[i];
        }
        s[c] = acc;
    }
    s[C] = (double)N * (double)HW;
    reduce(s, (size_t)C + 1, ctx);
    const double M = s[C];
    for (int64_t c = 0; c < C; c++) mean[c] = (float)(s[c] / M);
#pragma omp parallel for schedule(static)
    for (int64_t c = 0; c < C; c++) {
        double acc = 0.0, mu = s[c] / M;
        for (int64_t n = 0; n < N; n++) {
            const float *xc = x + (n * C + c) * HW;
            for (int64_t i = 0; i < HW; i++) {
                double d = xc[i] - mu;
                acc += d * d;
            }
        }
        s[C + 1 + c] = acc;
    }
    reduce(s + C + 1, (size_t)C, ctx);
#pragma omp parallel for schedule(static)
    for (int64_t c = 0; c < C; c++) {
        double mu = s[c] / M, ss = s[C + 1 + c], var = ss / M;
        if (running_mean) running_mean[c] = (float)((1.0 - momentum) * running_mean[c] + momentum * mu);
        if (running_var) running_var[c] = (float)((1.0 - momentum) * running_var[c] + momentum * (M > 1 ? ss / (M - 1) : var));
        mean[c] = (float)mu;
        invstd[c] = (float)(1.0 / sqrt(var + eps));
    }
    ct_batchnorm_apply(y, x, mean, invstd, gamma, beta, N, C, HW, relu);
}

void ct_batchnorm_backward_sync(float *dx, float *dgamma, float *dbeta, const float *dy, const float *x,
                                const float *mean, const float *invstd, const float *gamma, const float *beta,
                                int64_t N, int64_t C, int64_t HW, int relu, double *scratch, ct_reduce_fn reduce,
                                void *ctx) {
    double *s = scratch; /* (2C + 1): sum dy, sum dy*xhat, count (dy masked by the ReLU) */
#pragma omp parallel for schedule(static)
    for (int64_t c = 0; c < C; c++) {
        const float m = mean[c], is = invstd[c];
        float scale, shift;
        bn_affine(m, is, gamma, beta, c, &scale, &shift);
        double sdy = 0.0, sdyx = 0.0;
        for (int64_t n = 0; n < N; n++) {
            const float *xc = x + (n * C + c) * HW, *dyc = dy + (n * C + c) * HW;
            for (int64_t i = 0; i < HW; i++) {
                float g = relu && !(xc[i] * scale + shift > 0.0f) ? 0.0f : dyc[i];
                sdy += g;
                sdyx += (double)g * ((xc[i] - m) * is);
            }
        }
        if (dgamma) dgamma[c] += (float)sdyx;
        if (dbeta) dbeta[c] += (float)sdy;
        s[c] = sdy;
        s[C + c] = sdyx;
    }
    s[2 * C] = (double)N * (double)HW;
    reduce(s, 2 * (size_t)C + 1, ctx);
    if (!dx) return;
    const double M = s[2 * C];
#pragma omp parallel for schedule(static)
    for (int64_t c = 0; c < C; c++) {
        const float m = mean[c], is = invstd[c];
        float scale, shift;
        bn_affine(m, is, gamma, beta, c, &scale, &shift);
        float k = scale, a = (float)(s[c] / M), bcoef = (float)(s[C + c] / M);
        for (int64_t n = 0; n < N; n++) {
            const float *xc = x + (n * C + c) * HW, *dyc = dy + (n * C + c) * HW;
            float *dxc = dx + (n * C + c) * HW;
            for (int64_t i = 0; i < HW; i++) {
                float g = relu && !(xc[i] * scale + shift > 0.0f) ? 0.0f : dyc[i];
                dxc[i] += k * (g - a - (xc[i] - m) * is * bcoef);
            }
        }
    }
}
