/* clip.c: CLIP's symmetric cross-entropy over the image-text similarity matrix.
 *
 * logits = c * Ui Ut^T with c = min(exp(s), 100). The column cross-entropy is the
 * row cross-entropy of the transposed product Ut Ui^T, so both directions run the
 * same blocked pass with the roles of the two modalities swapped:
 *   pass(A, B): rows of c * A B^T, target the diagonal, weight 1/(2n);
 *               dA += c G B,  dB += c G^T A,  dL/dc += sum(G * cos).
 * With c = exp(s): dL/ds = c dL/dc = sum(G * logits), and 0 when the clamp holds. */
#include "internal.h"

#include <math.h>
#include <string.h>

typedef struct {
    float *ui, *ut, *ni, *nt, *dui, *dut, *blk;
    ct_loss__row *rows; /* (2n): image rows, then text rows */
} clip_ws;

static size_t clip_layout(ct_loss__ws *w, clip_ws *p, int64_t n, int64_t d) {
    if (n < 1 || d < 1 || n > INT64_MAX / 2) return SIZE_MAX;
    size_t nd, blk;
    if (ct_size_mul((size_t)n, (size_t)d, &nd) ||
        ct_size_mul((size_t)ct_loss__block_rows(n), (size_t)n, &blk))
        return SIZE_MAX;
    p->ui = ct_loss__take(w, nd, sizeof(float));
    p->ut = ct_loss__take(w, nd, sizeof(float));
    p->dui = ct_loss__take(w, nd, sizeof(float));
    p->dut = ct_loss__take(w, nd, sizeof(float));
    p->ni = ct_loss__take(w, (size_t)n, sizeof(float));
    p->nt = ct_loss__take(w, (size_t)n, sizeof(float));
    p->rows = ct_loss__take(w, 2 * (size_t)n, sizeof(ct_loss__row));
    p->blk = ct_loss__take(w, blk, sizeof(float));
    return ct_loss__ws_size(w);
}

size_t ct_clip_workspace_size(int64_t n, int64_t d) {
    ct_loss__ws w = {0};
    clip_ws p;
    return clip_layout(&w, &p, n, d);
}

/* wrow: each row's weight in the mean (1/(2n) for both directions, 1/n for one) */
static void clip_pass(const float *a, const float *b, float *da, float *db, float *blk,
                      ct_loss__row *rows, int64_t n, int64_t d, float c, float wrow, int grad) {
    int64_t B = ct_loss__block_rows(n);
    for (int64_t r0 = 0; r0 < n; r0 += B) {
        int64_t bn = n - r0 < B ? n - r0 : B;
        ct_gemm(0, 1, bn, n, d, c, a + r0 * d, d, b, d, 0.0f, blk, n);
#pragma omp parallel for schedule(static)
        for (int64_t i = 0; i < bn; i++)
            ct_loss__row_ce(blk + i * n, n, -1, r0 + i, NULL, 0, c, wrow, 0, &rows[r0 + i]);
        if (!grad) continue;
        ct_gemm(0, 0, bn, d, n, c, blk, n, b, d, 1.0f, da + r0 * d, d);
        ct_gemm(1, 0, n, d, bn, c, blk, n, a + r0 * d, d, 1.0f, db, d);
    }
}

ct_status ct_clip_loss(ct_loss_stats *st, float *dimg, float *dtxt, float *ds, const float *img,
                       const float *txt, float s, int64_t n, int64_t d, void *ws,
                       size_t ws_bytes) {
    const char *fn = "ct_clip_loss";
    if (!img || !txt || n < 1 || d < 1 || n > INT64_MAX / 2)
        return ct_error(CT_ERR_ARG, "%s: bad arguments (n=%lld, d=%lld)", fn, (long long)n, (long long)d);
    if (!isfinite(s)) return ct_error(CT_ERR_ARG, "%s: logit scale parameter s is not finite", fn);
    void *owned;
    ct_status st_ = ct_loss__ws_acquire(&ws, ws_bytes, ct_clip_workspace_size(n, d), &owned, fn);
    if (st_) return st_;
    ct_loss__ws w = {.base = ws};
    clip_ws p;
    clip_layout(&w, &p, n, d);

    double e = exp((double)s);
    int clamped = e > CT_CLIP_MAX_SCALE;
    float c = clamped ? CT_CLIP_MAX_SCALE : (float)e;
    int grad = dimg || dtxt;
    ct_loss__normalize(p.ui, p.ni, img, n, d);
    ct_loss__normalize(p.ut, p.nt, txt, n, d);
    if (grad) {
        memset(p.dui, 0, (size_t)n * (size_t)d * sizeof(float));
        memset(p.dut, 0, (size_t)n * (size_t)d * sizeof(float));
    }
    const float half = (float)(0.5 / (double)n);
    clip_pass(p.ui, p.ut, p.dui, p.dut, p.blk, p.rows, n, d, c, half, grad);
    clip_pass(p.ut, p.ui, p.dut, p.dui, p.blk, p.rows + n, n, d, c, half, grad);

    ct_loss_stats local;
    if (!st) st = &local;
    ct_loss__reduce(st, p.rows, 2 * n, 0.5 / (double)n, 0.0);
    st->count = n;
    if (ds) {
        double gs = 0.0;
        for (int64_t i = 0; i < 2 * n; i++) gs += p.rows[i].gx;
        *ds = clamped ? 0.0f : (float)gs;
    }
    if (dimg) ct_loss__normalize_backward(dimg, p.dui, p.ui, p.ni, n, d);
    if (dtxt) ct_loss__normalize_backward(dtxt, p.dut, p.ut, p.nt, n, d);
    ct_free(owned);
    return ct_loss__check_finite(st, fn);
}

/* Multiple negatives ranking: the image-to-text pass alone (or both, symmetric) at a
 * fixed scale 1/tau; the same blocked pass and workspace as CLIP's. */
ct_status ct_mnrl_loss(ct_loss_stats *st, float *da, float *dp, const float *a, const float *pos, float tau,
                       int symmetric, int64_t n, int64_t d, void *ws, size_t ws_bytes) {
    const char *fn = "ct_mnrl_loss";
    if (!a || !pos || n < 1 || d < 1 || n > INT64_MAX / 2)
        return ct_error(CT_ERR_ARG, "%s: bad arguments (n=%lld, d=%lld)", fn, (long long)n, (long long)d);
    if (!(tau >= CT_LOSS_MIN_TAU)) return ct_error(CT_ERR_ARG, "%s: temperature %g below %g", fn, tau, CT_LOSS_MIN_TAU);
    void *owned;
    ct_status st_ = ct_loss__ws_acquire(&ws, ws_bytes, ct_clip_workspace_size(n, d), &owned, fn);
    if (st_) return st_;
    ct_loss__ws w = {.base = ws};
    clip_ws p;
    clip_layout(&w, &p, n, d);
    const float c = 1.0f / tau;
    const int grad = da || dp, dirs = symmetric ? 2 : 1;
    const float wrow = (float)(1.0 / ((double)dirs * (double)n));
    ct_loss__normalize(p.ui, p.ni, a, n, d);
    ct_loss__normalize(p.ut, p.nt, pos, n, d);
    if (grad) {
        memset(p.dui, 0, (size_t)n * (size_t)d * sizeof(float));
        memset(p.dut, 0, (size_t)n * (size_t)d * sizeof(float));
    }
    clip_pass(p.ui, p.ut, p.dui, p.dut, p.blk, p.rows, n, d, c, wrow, grad);
    if (symmetric) clip_pass(p.ut, p.ui, p.dut, p.dui, p.blk, p.rows + n, n, d, c, wrow, grad);
    ct_loss_stats local;
    if (!st) st = &local;
    ct_loss__reduce(st, p.rows, dirs * n, 1.0 / ((double)dirs * (double)n), 0.0);
    st->count = n;
    if (da) ct_loss__normalize_backward(da, p.dui, p.ui, p.ni, n, d);
    if (dp) ct_loss__normalize_backward(dp, p.dut, p.ut, p.nt, n, d);
    ct_free(owned);
    return ct_loss__check_finite(st, fn);
}
