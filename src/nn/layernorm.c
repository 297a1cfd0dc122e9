/* layernorm.c: LayerNorm over the last dimension of (N, C) rows (PyTorch's
 * nn.LayerNorm(C): biased variance, eps inside the square root).
 *
 * Each row's statistics take two passes (mean, then squared deviations), one row
 * per loop iteration; a row's sums run in LANES float partial sums (a vectorised
 * loop: a plain double accumulator is a serial chain the compiler may not reorder)
 * combined in double, so each partial sum adds only C / LANES terms. dgamma and dbeta are sums over all rows:
 * they are computed by blocks of columns, each block summing its rows in row
 * order, so no sum is split between threads and the bits do not depend on the
 * thread count. */
#include "contrast/nn.h"

#include <math.h>

/* columns per block of the dgamma / dbeta sums: two sets of 32 double sums, which
 * fit AVX-512's registers (16 columns made the pass a strided walk: 280 ms of a
 * 4.3 s text-transformer step at one thread) */
#define COLS 32
/* partial sums of a row's reductions */
#define LANES 16

/* sum of x[c] over a row */
static double row_sum(const float *x, int64_t C) {
    float acc[LANES] = {0};
    int64_t c = 0;
    for (; c + LANES <= C; c += LANES)
        for (int j = 0; j < LANES; j++) acc[j] += x[c + j];
    double s = 0.0;
    for (; c < C; c++) s += x[c];
    for (int j = 0; j < LANES; j++) s += acc[j];
    return s;
}

/* sum of (x[c] - m)^2 over a row */
static double row_sqdev(const float *x, float m, int64_t C) {
    float acc[LANES] = {0};
    int64_t c = 0;
    for (; c + LANES <= C; c += LANES)
        for (int j = 0; j < LANES; j++) {
            const float d = x[c + j] - m;
            acc[j] += d * d;
        }
    double s = 0.0;
    for (; c < C; c++) {
        const double d = (double)x[c] - m;
        s += d * d;
    }
    for (int j = 0; j < LANES; j++) s += acc[j];
    return s;
}

void ct_layernorm_forward(float *y, float *mean, float *rstd, const float *x, const float *gamma,
                          const float *beta, int64_t N, int64_t C, float eps) {
#pragma omp parallel for schedule(static) if (N * C >= CT_PAR_MIN)
    for (int64_t n = 0; n < N; n++) {
        const float *xr = x + n * C;
        float *yr = y + n * C;
        const float m = (float)(row_sum(xr, C) / (double)C);
        const float r = (float)(1.0 / sqrt(row_sqdev(xr, m, C) / (double)C + (double)eps));
        if (gamma && beta) { /* the affine case apart, so that its loop vectorises */
#pragma omp simd
            for (int64_t c = 0; c < C; c++) yr[c] = (xr[c] - m) * r * gamma[c] + beta[c];
        } else {
            for (int64_t c = 0; c < C; c++) {
                float v = (xr[c] - m) * r;
                yr[c] = v * (gamma ? gamma[c] : 1.0f) + (beta ? beta[c] : 0.0f);
            }
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
            float sg[LANES] = {0}, sgx[LANES] = {0};
            double tg = 0.0, tgx = 0.0;
            int64_t c = 0;
            for (; c + LANES <= C; c += LANES)
                if (gamma) {
                    for (int j = 0; j < LANES; j++) {
                        const float g = dyr[c + j] * gamma[c + j];
                        sg[j] += g;
                        sgx[j] += g * ((xr[c + j] - m) * r);
                    }
                } else {
                    for (int j = 0; j < LANES; j++) {
                        sg[j] += dyr[c + j];
                        sgx[j] += dyr[c + j] * ((xr[c + j] - m) * r);
                    }
                }
            for (; c < C; c++) {
                const float g = dyr[c] * (gamma ? gamma[c] : 1.0f), xh = (xr[c] - m) * r;
                tg += g;
                tgx += (double)g * xh;
            }
            for (int j = 0; j < LANES; j++) {
                tg += sg[j];
                tgx += sgx[j];
            }
            float a = (float)(tg / (double)C), b = (float)(tgx / (double)C);
            float *dxr = dx + n * C;
            if (gamma) {
#pragma omp simd
                for (c = 0; c < C; c++) dxr[c] += r * (dyr[c] * gamma[c] - a - (xr[c] - m) * r * b);
            } else {
#pragma omp simd
                for (c = 0; c < C; c++) dxr[c] += r * (dyr[c] - a - (xr[c] - m) * r * b);
            }
        }
    }
    if (dgamma || dbeta) {
        const int64_t nblk = (C + COLS - 1) / COLS;
#pragma omp parallel for schedule(static) if (N * C >= CT_PAR_MIN)
        for (int64_t blk = 0; blk < nblk; blk++) {
            const int64_t c0 = blk * COLS, w = C - c0 < COLS ? C - c0 : COLS;
            double sg[COLS] = {0}, sb[COLS] = {0};
            if (w == COLS) { /* a constant trip count: the sums stay in registers */
                for (int64_t n = 0; n < N; n++) {
                    const float *xr = x + n * C + c0, *dyr = dy + n * C + c0;
                    const float m = mean[n], r = rstd[n];
#pragma omp simd
                    for (int64_t j = 0; j < COLS; j++) {
                        sg[j] += (double)dyr[j] * ((xr[j] - m) * r);
                        sb[j] += dyr[j];
                    }
                }
            } else {
                for (int64_t n = 0; n < N; n++) {
                    const float *xr = x + n * C + c0, *dyr = dy + n * C + c0;
                    const float m = mean[n], r = rstd[n];
                    for (int64_t j = 0; j < w; j++) {
                        sg[j] += (double)dyr[j] * ((xr[j] - m) * r);
                        sb[j] += dyr[j];
                    }
                }
            }
            for (int64_t j = 0; j < w; j++) {
                if (dgamma) dgamma[c0 + j] += (float)sg[j];
                if (dbeta) dbeta[c0 + j] += (float)sb[j];
            }
        }
    }
}
