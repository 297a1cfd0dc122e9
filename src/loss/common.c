/* common.c: pieces every objective shares: workspace carving, the L2 normalisation
 * and its backward, the one-anchor softmax cross-entropy, and the stats reduction. */
#include "internal.h"

#include <math.h>
#include <string.h>

#define WS_ALIGN 64

void *ct_loss__take(ct_loss__ws *w, size_t count, size_t elem) {
    size_t bytes, start = w->used;
    if (ct_size_mul(count, elem, &bytes) || ct_size_add(bytes, WS_ALIGN - 1, &bytes) ||
        ct_size_add(w->used, bytes & ~(size_t)(WS_ALIGN - 1), &w->used)) {
        w->overflow = 1;
        return NULL;
    }
    return w->base ? w->base + start : NULL;
}

size_t ct_loss__ws_size(const ct_loss__ws *w) {
    return w->overflow ? SIZE_MAX : (w->used ? w->used : WS_ALIGN);
}

ct_status ct_loss__ws_acquire(void **ws, size_t ws_bytes, size_t need, void **owned,
                              const char *fn) {
    *owned = NULL;
    if (need == SIZE_MAX) return ct_error(CT_ERR_NOMEM, "%s: workspace size overflows", fn);
    if (*ws) {
        if (ws_bytes < need)
            return ct_error(CT_ERR_ARG, "%s: workspace of %zu bytes is too small, need %zu", fn,
                            ws_bytes, need);
        if ((uintptr_t)*ws % WS_ALIGN)
            return ct_error(CT_ERR_ARG, "%s: workspace must be 64-byte aligned (use ct_alloc)", fn);
        return CT_OK;
    }
    *owned = ct_alloc(need);
    if (!*owned) return CT_ERR_NOMEM;
    *ws = *owned;
    return CT_OK;
}

int64_t ct_loss__block_rows(int64_t rows) { return rows < CT_LOSS_BLOCK ? rows : CT_LOSS_BLOCK; }

ct_status ct_loss__check_tau(float tau, const char *fn) {
    if (!(tau >= CT_LOSS_MIN_TAU) || !isfinite(tau))
        return ct_error(CT_ERR_ARG, "%s: temperature must be finite and >= %g, got %g", fn,
                        CT_LOSS_MIN_TAU, tau);
    return CT_OK;
}

void ct_loss__normalize(float *u, float *norm, const float *z, int64_t rows, int64_t d) {
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < rows; i++) {
        const float *zi = z + i * d;
        double ss = 0.0;
        for (int64_t k = 0; k < d; k++) ss += (double)zi[k] * zi[k];
        double nrm = sqrt(ss);
        norm[i] = (float)nrm;
        float inv = (float)(1.0 / (nrm > CT_LOSS_EPS ? nrm : CT_LOSS_EPS));
        for (int64_t k = 0; k < d; k++) u[i * d + k] = zi[k] * inv;
    }
}

void ct_loss__normalize_backward(float *dz, const float *du, const float *u, const float *norm,
                                 int64_t rows, int64_t d) {
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < rows; i++) {
        const float *ui = u + i * d, *gi = du + i * d;
        float *o = dz + i * d;
        if (!((double)norm[i] > CT_LOSS_EPS)) {
            /* clamped: u = z / eps is linear in z, no projection */
            for (int64_t k = 0; k < d; k++) o[k] = (float)(gi[k] / CT_LOSS_EPS);
            continue;
        }
        double dot = 0.0;
        for (int64_t k = 0; k < d; k++) dot += (double)ui[k] * gi[k];
        float inv = (float)(1.0 / norm[i]), fd = (float)dot;
        for (int64_t k = 0; k < d; k++) o[k] = (gi[k] - ui[k] * fd) * inv;
    }
}

/* Splits [0, cols) minus the columns a and b (-1: none) into at most 3 spans. */
static int spans_without(int64_t cols, int64_t a, int64_t b, int64_t lo[3], int64_t hi[3]) {
    if (a > b) { int64_t t = a; a = b; b = t; }
    int64_t cut[2];
    int nc = 0, k = 0;
    if (a >= 0) cut[nc++] = a;
    if (b >= 0 && b != a) cut[nc++] = b;
    int64_t start = 0;
    for (int i = 0; i < nc; i++) {
        lo[k] = start; hi[k] = cut[i]; k++;
        start = cut[i] + 1;
    }
    lo[k] = start; hi[k] = cols; k++;
    return k;
}

/* The span loops sum in float over chunks of CHUNK columns (full-width vectors) and
 * add each chunk's sum to a double: a chunk's rounding error stays near 1e-7 relative,
 * and the fixed chunking keeps the result independent of threads. */
#define CHUNK 256

/* max and sum of row[lo, hi) */
static void span_max_sum(const float *row, int64_t lo, int64_t hi, float *mx, double *sum) {
    float m = *mx;
    for (int64_t c0 = lo; c0 < hi; c0 += CHUNK) {
        int64_t c1 = hi - c0 < CHUNK ? hi : c0 + CHUNK;
        float s = 0.0f;
#pragma omp simd reduction(max : m) reduction(+ : s)
        for (int64_t j = c0; j < c1; j++) {
            m = row[j] > m ? row[j] : m;
            s += row[j];
        }
        *sum += s;
    }
    *mx = m;
}

/* row[j] = exp(row[j] - m) over [lo, hi); sums e, e * x and, when unif_scale > 0,
 * exp(4 (x * unif_scale - 1)) (cos = x * unif_scale lies in [-1, 1], so that term
 * lies in [e^-8, 1] and needs no shift). */
static void span_exp(float *row, int64_t lo, int64_t hi, float m, float unif_scale, double *sum,
                     double *ex, double *unif) {
    for (int64_t c0 = lo; c0 < hi; c0 += CHUNK) {
        int64_t c1 = hi - c0 < CHUNK ? hi : c0 + CHUNK;
        float s = 0.0f, sx = 0.0f, su = 0.0f;
        if (unif_scale > 0.0f) {
#pragma omp simd reduction(+ : s, sx, su)
            for (int64_t j = c0; j < c1; j++) {
                float x = row[j], e = ct_loss__exp(x - m);
                s += e;
                sx += e * x;
                su += ct_loss__exp(4.0f * (x * unif_scale - 1.0f));
                row[j] = e;
            }
        } else {
#pragma omp simd reduction(+ : s, sx)
            for (int64_t j = c0; j < c1; j++) {
                float x = row[j], e = ct_loss__exp(x - m);
                s += e;
                sx += e * x;
                row[j] = e;
            }
        }
        *sum += s;
        *ex += sx;
        *unif += su;
    }
}

void ct_loss__row_ce(float *row, int64_t cols, int64_t self, int64_t target,
                     const int64_t *col_label, int64_t my_label, float per_cos, float w,
                     int want_unif, ct_loss__row *o) {
    int64_t lo[3], hi[3];
    /* pass 1: max, positive/negative sums and best scores */
    float m, best_pos = -INFINITY, best_neg = -INFINITY;
    double pos_sum = 0.0, neg_sum = 0.0;
    int64_t pos_n = 0, neg_n = 0;
    if (target >= 0) {
        int k = spans_without(cols, self, target, lo, hi);
        for (int s = 0; s < k; s++) {
            span_max_sum(row, lo[s], hi[s], &best_neg, &neg_sum);
            neg_n += hi[s] - lo[s];
        }
        best_pos = row[target];
        pos_sum = best_pos;
        pos_n = 1;
    } else {
        for (int64_t j = 0; j < cols; j++) {
            if (j == self) continue;
            float x = row[j];
            if (col_label[j] == my_label) {
                pos_sum += x; pos_n++;
                if (x > best_pos) best_pos = x;
            } else {
                neg_sum += x; neg_n++;
                if (x > best_neg) best_neg = x;
            }
        }
    }
    m = best_pos > best_neg ? best_pos : best_neg;
    /* pass 2: exponentials shifted by the max (never overflow), summed in double */
    double sum = 0.0, ex = 0.0, unif = 0.0;
    int k = spans_without(cols, self, -1, lo, hi);
    for (int s = 0; s < k; s++)
        span_exp(row, lo[s], hi[s], m, want_unif ? 1.0f / per_cos : 0.0f, &sum, &ex, &unif);
    if (self >= 0) row[self] = 0.0f;
    o->pos_sum = pos_sum / per_cos;
    o->neg_sum = neg_sum / per_cos;
    o->pos_n = pos_n;
    o->neg_n = neg_n;
    o->unif = unif;
    o->has_pos = pos_n > 0;
    o->correct = pos_n > 0 && best_pos > best_neg;
    if (pos_n == 0 || !(sum > 0.0) || !isfinite(m)) {
        /* no positive: the anchor's loss is identically 0, so is its gradient */
        for (int64_t j = 0; j < cols; j++) row[j] = 0.0f;
        o->loss = pos_n == 0 ? 0.0 : NAN;
        o->gx = 0.0;
        return;
    }
    double lse = m + log(sum), mean_pos = pos_sum / (double)pos_n;
    o->loss = lse - mean_pos;
    o->gx = w * (ex / sum - mean_pos);
    /* pass 3: w * softmax - w * [positive] / |P| */
    float ws = (float)(w / sum), wp = (float)(w / (double)pos_n);
#pragma omp simd
    for (int64_t j = 0; j < cols; j++) row[j] *= ws;
    if (target >= 0) {
        row[target] -= wp;
    } else {
        for (int64_t j = 0; j < cols; j++)
            if (j != self && col_label[j] == my_label) row[j] -= wp;
    }
}

void ct_loss__reduce(ct_loss_stats *st, const ct_loss__row *rows, int64_t n, double w,
                     double unif_pairs) {
    double loss = 0, pos = 0, neg = 0, unif = 0;
    int64_t pos_n = 0, neg_n = 0, correct = 0, anchors = 0;
    for (int64_t i = 0; i < n; i++) {
        loss += rows[i].loss;
        pos += rows[i].pos_sum; pos_n += rows[i].pos_n;
        neg += rows[i].neg_sum; neg_n += rows[i].neg_n;
        unif += rows[i].unif;
        correct += rows[i].correct;
        anchors += rows[i].has_pos;
    }
    ct_loss__sums sums = {
        .loss = loss * w,
        .top1 = anchors ? (double)correct / (double)anchors : 0.0,
        .pos_sum = pos, .pos_n = pos_n, .neg_sum = neg, .neg_n = neg_n,
        .uniform = unif_pairs > 0 ? log(unif / unif_pairs) : 0.0,
        .active = 1.0,
        .count = n,
    };
    ct_loss__stats_fill(st, &sums);
}

void ct_loss__stats_fill(ct_loss_stats *st, const ct_loss__sums *s) {
    memset(st, 0, sizeof *st);
    st->loss = s->loss;
    st->top1 = s->top1;
    st->pos_sim = s->pos_n ? s->pos_sum / (double)s->pos_n : 0.0;
    st->neg_sim = s->neg_n ? s->neg_sum / (double)s->neg_n : 0.0;
    st->align = 2.0 - 2.0 * st->pos_sim;
    st->uniform = s->uniform;
    st->active = s->active;
    st->count = s->count;
}

ct_status ct_loss__check_finite(const ct_loss_stats *st, const char *fn) {
    if (!isfinite(st->loss)) return ct_error(CT_ERR_NUMERIC, "%s: loss is not finite (%g)", fn, st->loss);
    return CT_OK;
}
