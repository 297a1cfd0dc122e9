/* embedding.c: token embedding (a gather of table rows) and learned positional
 * embedding (one table row added per position).
 *
 * The token embedding's backward is a scatter-add: a token that occurs k times
 * sums k gradient rows into its table row. Threads never share a table row
 * element: they split the columns, and each walks the tokens in order, so every
 * element's sum has one fixed order at any thread count (no atomics). */
#include "contrast/nn.h"

#include <string.h>

/* columns per block of the scatter-add: one 64-byte line of a table row */
#define COLS 16

ct_status ct_embedding_forward(float *y, const int32_t *ids, const float *table, int64_t N, int64_t V,
                               int64_t C) {
    for (int64_t n = 0; n < N; n++)
        if (ids[n] < 0 || ids[n] >= V)
            return ct_error(CT_ERR_ARG, "ct_embedding_forward: token %lld has id %d, outside the vocabulary [0, %lld)",
                            (long long)n, (int)ids[n], (long long)V);
#pragma omp parallel for schedule(static) if (N * C >= CT_PAR_MIN)
    for (int64_t n = 0; n < N; n++) memcpy(y + n * C, table + (int64_t)ids[n] * C, (size_t)C * sizeof(float));
    return CT_OK;
}

void ct_embedding_backward(float *dtable, const float *dy, const int32_t *ids, int64_t N, int64_t V, int64_t C) {
    (void)V; /* ids were checked against it by the forward */
    const int64_t nblk = (C + COLS - 1) / COLS;
#pragma omp parallel for schedule(static) if (N * C >= CT_PAR_MIN)
    for (int64_t blk = 0; blk < nblk; blk++) {
        const int64_t c0 = blk * COLS, w = C - c0 < COLS ? C - c0 : COLS;
        for (int64_t n = 0; n < N; n++) {
            float *d = dtable + (int64_t)ids[n] * C + c0;
            const float *g = dy + n * C + c0;
            for (int64_t j = 0; j < w; j++) d[j] += g[j];
        }
    }
}

void ct_posembed_forward(float *y, const float *x, const float *pos, int64_t B, int64_t T, int64_t C) {
#pragma omp parallel for schedule(static) if (B * T * C >= CT_PAR_MIN)
    for (int64_t bt = 0; bt < B * T; bt++) {
        const float *p = pos + (bt % T) * C;
        for (int64_t c = 0; c < C; c++) y[bt * C + c] = x[bt * C + c] + p[c];
    }
}

void ct_posembed_backward(float *dx, float *dpos, const float *dy, int64_t B, int64_t T, int64_t C) {
    if (dx) ct_add_forward(dx, dx, dy, (size_t)(B * T * C));
    if (dpos) {
        /* one position per iteration, the batch summed in order */
#pragma omp parallel for schedule(static) if (B * T * C >= CT_PAR_MIN)
        for (int64_t t = 0; t < T; t++)
            for (int64_t c = 0; c < C; c++) {
                double s = 0.0;
                for (int64_t b = 0; b < B; b++) s += dy[(b * T + t) * C + c];
                dpos[t * C + c] += (float)s;
            }
    }
}
