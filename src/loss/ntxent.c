/* ntxent.c: NT-Xent (SimCLR) and supervised contrastive loss (SupCon).
 *
 * Both are a softmax over one row of the rows x rows cosine-similarity matrix of a
 * multi-view batch, self excluded, with the positives given by labels (NT-Xent: the
 * sample index, so the only positive is the other view; that case takes the
 * single-target path of the row kernel, which vectorises). The matrix is produced by
 * ct_gemm CT_LOSS_BLOCK rows at a time; each block's logits are turned in place into
 * dL/dlogits and multiplied back at once, so scratch is O(block * rows):
 *   S = U U^T / tau   =>   dU = (G + G^T) U / tau, accumulated block by block. */
#include "internal.h"

#include <math.h>
#include <string.h>

typedef struct {
    float *u, *du, *norm, *blk;
    int64_t *lab;
    ct_loss__row *rows;
} selfsim_ws;

static size_t selfsim_layout(ct_loss__ws *w, selfsim_ws *p, int64_t rows, int64_t d) {
    if (rows < 1 || d < 1) return SIZE_MAX;
    size_t r = (size_t)rows, rd;
    if (ct_size_mul(r, (size_t)d, &rd)) return SIZE_MAX;
    p->u = ct_loss__take(w, rd, sizeof(float));
    p->du = ct_loss__take(w, rd, sizeof(float));
    p->norm = ct_loss__take(w, r, sizeof(float));
    p->lab = ct_loss__take(w, r, sizeof(int64_t));
    p->rows = ct_loss__take(w, r, sizeof(ct_loss__row));
    size_t blk;
    if (ct_size_mul((size_t)ct_loss__block_rows(rows), r, &blk)) return SIZE_MAX;
    p->blk = ct_loss__take(w, blk, sizeof(float));
    return ct_loss__ws_size(w);
}

static size_t selfsim_size(int64_t rows, int64_t d) {
    ct_loss__ws w = {0};
    selfsim_ws p;
    return selfsim_layout(&w, &p, rows, d);
}

size_t ct_ntxent_workspace_size(int64_t n, int64_t d) {
    if (n < 1 || n > INT64_MAX / 2) return SIZE_MAX;
    return selfsim_size(2 * n, d);
}

size_t ct_supcon_workspace_size(int64_t n, int64_t views, int64_t d) {
    if (n < 1 || views < 1 || n > INT64_MAX / views) return SIZE_MAX;
    return selfsim_size(n * views, d);
}

static ct_status selfsim(ct_loss_stats *st, float *dz, const float *z, const int32_t *labels,
                         int64_t n, int64_t views, int64_t d, float tau, void *ws,
                         size_t ws_bytes, const char *fn) {
    if (!z || n < 1 || views < 1 || d < 1 || n > INT64_MAX / views)
        return ct_error(CT_ERR_ARG, "%s: bad arguments (n=%lld, views=%lld, d=%lld)", fn,
                        (long long)n, (long long)views, (long long)d);
    int64_t rows = n * views;
    if (rows < 2) return ct_error(CT_ERR_ARG, "%s: need at least 2 rows, got %lld", fn, (long long)rows);
    ct_status s = ct_loss__check_tau(tau, fn);
    if (s) return s;
    void *owned;
    s = ct_loss__ws_acquire(&ws, ws_bytes, selfsim_size(rows, d), &owned, fn);
    if (s) return s;
    ct_loss__ws w = {.base = ws};
    selfsim_ws p;
    selfsim_layout(&w, &p, rows, d);

    ct_loss__normalize(p.u, p.norm, z, rows, d);
    for (int64_t r = 0; r < rows; r++) p.lab[r] = labels ? (int64_t)labels[r % n] : r % n;
    if (dz) memset(p.du, 0, (size_t)rows * (size_t)d * sizeof(float));

    float inv_t = 1.0f / tau, wrow = (float)(1.0 / (double)rows);
    int64_t B = ct_loss__block_rows(rows);
    for (int64_t r0 = 0; r0 < rows; r0 += B) {
        int64_t b = rows - r0 < B ? rows - r0 : B;
        ct_gemm(0, 1, b, rows, d, inv_t, p.u + r0 * d, d, p.u, d, 0.0f, p.blk, rows);
#pragma omp parallel for schedule(static)
        for (int64_t i = 0; i < b; i++)
            ct_loss__row_ce(p.blk + i * rows, rows, r0 + i, labels ? -1 : (r0 + i + n) % rows,
                            p.lab, p.lab[r0 + i], inv_t, wrow, 1, &p.rows[r0 + i]);
        if (dz) {
            /* dU[block] += G U / tau ;  dU += G^T U[block] / tau */
            ct_gemm(0, 0, b, d, rows, inv_t, p.blk, rows, p.u, d, 1.0f, p.du + r0 * d, d);
            ct_gemm(1, 0, rows, d, b, inv_t, p.blk, rows, p.u + r0 * d, d, 1.0f, p.du, d);
        }
    }
    ct_loss_stats local;
    if (!st) st = &local;
    ct_loss__reduce(st, p.rows, rows, 1.0 / (double)rows, (double)rows * (double)(rows - 1));
    if (dz) ct_loss__normalize_backward(dz, p.du, p.u, p.norm, rows, d);
    ct_free(owned);
    return ct_loss__check_finite(st, fn);
}

ct_status ct_ntxent_loss(ct_loss_stats *st, float *dz, const float *z, int64_t n, int64_t d,
                         float tau, void *ws, size_t ws_bytes) {
    return selfsim(st, dz, z, NULL, n, 2, d, tau, ws, ws_bytes, "ct_ntxent_loss");
}

ct_status ct_supcon_loss(ct_loss_stats *st, float *dz, const float *z, const int32_t *labels,
                         int64_t n, int64_t views, int64_t d, float tau, void *ws,
                         size_t ws_bytes) {
    if (!labels) return ct_error(CT_ERR_ARG, "ct_supcon_loss: labels are required");
    return selfsim(st, dz, z, labels, n, views, d, tau, ws, ws_bytes, "ct_supcon_loss");
}
