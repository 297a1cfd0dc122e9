/* layernorm.c: LayerNorm over the last dimension of (N, C) rows (PyTorch's
 * nn.LayerNorm(C): biased variance, eps inside the square root).
 *
 * Each row's statistics take two passes (mean, then squared deviations) in
 * double, one row per loop iteration. dgamma and dbeta are sums over all rows:
 * they are computed by blocks of columns, each block summing its rows in row
 * order, so no sum is split between threads and the bits do not depend on the
 * thread count. */
#include "contrast/nn.h"

#include <math.h>

/* columns per block of the dgamma / dbeta sums: one 64-byte line of a row */
#define COLS 16

void ct_layernorm_forward(float *y, float *mean, float *rstd, const float *x, const float *gamma,
                          const float *beta, int64_t N, int64_t C, float eps) {
#pragma omp parallel for schedule(static) if (N * C >= CT_PAR_MIN)
    for (int64_t n = 0; n < N; n++) {
        const float *xr = x + n * C;
        float *yr = y + n * C;
        double s = 0.0;
        for (int64_t c = 0; c < C; c++) s += xr[c];
        float m = (float)(s / (double)C);
        double ss = 0.0;
        for (int64_t c = 0; c < C; c++) {
            double d = (double)xr[c] - m;
            ss += d * d;
        }
        float r = (float)(1.0 / sqrt(ss / (double)C + (double)eps));
        for (int64_t c = 0; c < C; c++) {
            float v = (xr[c] - m) * r;
            yr[c] = v * (gamma ? gamma[c] : 1.0f) + (beta ? beta[c] : 0.0f);
        }
        if (mean) mean[n] = m;
        if (rstd) rstd[n] = r;
    }
}

void ct_layernorm_backward(float *dx, float *dgamma, float *dbeta, const float *dy, const float *x,
                           const float *mean, const float *rstd, const float *gamma, int64_t N, int64_t C) {
    if (dx) {
        /* dx = rstd * (g - mean(g) - xhat * mean(g * xhat)), g = dy * gamma */
#pragma omp parallel for schedule(static) if (N * C >= CT_PAR_MIN)
        for (int64_t n = 0; n < N; n++) {
            const float *xr = x + n * C, *dyr = dy + n * C;
            const float m = mean[n], r = rstd[n];
            double sg = 0.0, sgx = 0.0;
            for (int64_t c = 0; c < C; c++) {
                float g = dyr[c] * (gamma ? gamma[c] : 1.0f), xh = (xr[c] - m) * r;
                sg += g;
                sgx += (double)g * xh;
            }
            float a = (float)(sg / (double)C), b = (float)(sgx / (double)C);
            float *dxr = dx + n * C;
            for (int64_t c = 0; c < C; c++) {
                float g = dyr[c] * (gamma ? gamma[c] : 1.0f), xh = (xr[c] - m) * r;
                dxr[c] += r * (g - a - xh * b);
            }
        }
    }
    if (dgamma || dbeta) {
        const int64_t nblk = (C + COLS - 1) / COLS;
#pragma omp parallel for schedule(static) if (N * C >= CT_PAR_MIN)
        for (int64_t blk = 0; blk < nblk; blk++) {
            const int64_t c0 = blk * COLS, w = C - c0 < COLS ? C - c0 : COLS;
            double sg[COLS] = {0}, sb[COLS] = {0};
            for (int64_t n = 0; n < N; n++) {
                const float *xr = x + n * C + c0, *dyr = dy + n * C + c0;
                const float m = mean[n], r = rstd[n];
                for (int64_t j = 0; j < w; j++) {
                    sg[j] += (double)dyr[j] * ((xr[j] - m) * r);
                    sb[j] += dyr[j];
                }
            }
            for (int64_t j = 0; j < w; j++) {
                if (dgamma) dgamma[c0 + j] += (float)sg[j];
                if (dbeta) dbeta[c0 + j] += (float)sb[j];
            }
        }
    }
}
