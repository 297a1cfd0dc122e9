/* elementwise.c: ReLU, residual add (with or without its ReLU), dropout. */
#include "internal.h"

/* "parallel for simd": GCC's -O2 cost model will not vectorise loops that need
 * alias checks; these loops have no cross-iteration dependence. */
void ct_relu_forward(float *y, const float *x, size_t n) {
#pragma omp parallel for simd schedule(static) if (n >= CT_PAR_MIN)
    for (size_t i = 0; i < n; i++) y[i] = x[i] > 0.0f ? x[i] : 0.0f;
}

void ct_relu_backward(float *dx, const float *dy, const float *y, size_t n) {
    /* both loads unconditional, so the select vectorises (a branch mispredicts half the time) */
#pragma omp parallel for simd schedule(static) if (n >= CT_PAR_MIN)
    for (size_t i = 0; i < n; i++) {
        float g = dy[i], v = y[i];
        dx[i] += v > 0.0f ? g : 0.0f;
    }
}

void ct_add_forward(float *y, const float *a, const float *b, size_t n) {
#pragma omp parallel for simd schedule(static) if (n >= CT_PAR_MIN)
    for (size_t i = 0; i < n; i++) y[i] = a[i] + b[i];
}

void ct_add_relu_forward(float *y, const float *a, const float *b, size_t n) {
#pragma omp parallel for simd schedule(static) if (n >= CT_PAR_MIN)
    for (size_t i = 0; i < n; i++) {
        float v = a[i] + b[i];
        y[i] = v > 0.0f ? v : 0.0f;
    }
}

void ct_add_relu_backward(float *da, float *db, const float *dy, const float *y, size_t n) {
    if (da && db) {
#pragma omp parallel for simd schedule(static) if (n >= CT_PAR_MIN)
        for (size_t i = 0; i < n; i++) {
            float g = y[i] > 0.0f ? dy[i] : 0.0f;
            da[i] += g;
            db[i] += g;
        }
    } else if (da || db)
        ct_relu_backward(da ? da : db, dy, y, n);
}

void ct_dropout_forward(float *y, float *mask, const float *x, size_t n, float p, uint64_t key) {
    const float scale = p < 1.0f ? 1.0f / (1.0f - p) : 0.0f;
    /* one generator per block of 1024 elements, keyed by the block index; draws
     * computed from their counters in a vectorised loop */
    const size_t blk = 1024, nb = (n + blk - 1) / blk;
#pragma omp parallel for schedule(static) if (n >= CT_PAR_MIN)
    for (size_t b = 0; b < nb; b++) {
        const uint64_t k = ct_rng_key(key, b, 0, 0);
        const size_t i0 = b * blk, len = (b + 1) * blk < n ? blk : n - i0;
        float *mb = mask + i0, *yb = y + i0;
        const float *xb = x + i0;
#pragma omp simd
        for (size_t j = 0; j < len; j++) {
            mb[j] = ct_nn__uniform_at(k, j) >= p ? scale : 0.0f;
            yb[j] = xb[j] * mb[j];
        }
    }
}

void ct_dropout_backward(float *dx, const float *dy, const float *mask, size_t n) {
#pragma omp parallel for simd schedule(static) if (n >= CT_PAR_MIN)
    for (size_t i = 0; i < n; i++) dx[i] += dy[i] * mask[i];
}
