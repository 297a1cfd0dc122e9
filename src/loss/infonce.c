/* infonce.c: InfoNCE with one positive and K shared negatives, and MoCo on top of it
 * (the queue as a ring buffer of keys, the momentum update of the key encoder).
 *
 * Row i of the logits is [u_i . p_i, u_i . n_1 .. u_i . n_K] / tau with target 0.
 * The K negative columns of a block of queries come from one ct_gemm written at
 * column 1 of the block (ldc = K + 1), the positive column from a dot product. */
#include "internal.h"

#include <math.h>
#include <string.h>

typedef struct {
    float *uq, *up, *un, *nq, *np, *nn, *duq, *dup, *dun, *blk;
    ct_loss__row *rows;
} nce_ws;

/* own_neg: negatives are normalised into the workspace and get a gradient (InfoNCE);
 * otherwise they are used as given, already unit rows (the MoCo queue). */
static size_t nce_layout(ct_loss__ws *w, nce_ws *p, int64_t n, int64_t k, int64_t d, int own_neg) {
    if (n < 1 || k < 1 || d < 1 || k == INT64_MAX) return SIZE_MAX;
    size_t nd, kd, blk;
    if (ct_size_mul((size_t)n, (size_t)d, &nd) || ct_size_mul((size_t)k, (size_t)d, &kd) ||
        ct_size_mul((size_t)ct_loss__block_rows(n), (size_t)k + 1, &blk))
        return SIZE_MAX;
    memset(p, 0, sizeof *p);
    p->uq = ct_loss__take(w, nd, sizeof(float));
    p->up = ct_loss__take(w, nd, sizeof(float));
    p->duq = ct_loss__take(w, nd, sizeof(float));
    p->dup = ct_loss__take(w, nd, sizeof(float));
    p->nq = ct_loss__take(w, (size_t)n, sizeof(float));
    p->np = ct_loss__take(w, (size_t)n, sizeof(float));
    p->rows = ct_loss__take(w, (size_t)n, sizeof(ct_loss__row));
    p->blk = ct_loss__take(w, blk, sizeof(float));
    if (own_neg) {
        p->un = ct_loss__take(w, kd, sizeof(float));
        p->dun = ct_loss__take(w, kd, sizeof(float));
        p->nn = ct_loss__take(w, (size_t)k, sizeof(float));
    }
    return ct_loss__ws_size(w);
}

static size_t nce_size(int64_t n, int64_t k, int64_t d, int own_neg) {
    ct_loss__ws w = {0};
    nce_ws p;
    return nce_layout(&w, &p, n, k, d, own_neg);
}

size_t ct_infonce_workspace_size(int64_t n, int64_t k, int64_t d) { return nce_size(n, k, d, 1); }
size_t ct_moco_workspace_size(int64_t n, int64_t k, int64_t d) { return nce_size(n, k, d, 0); }

static ct_status nce(ct_loss_stats *st, float *dq, float *dpos, float *dneg, const float *q,
                     const float *pos, const float *neg, int64_t n, int64_t k, int64_t d,
                     float tau, int own_neg, void *ws, size_t ws_bytes, const char *fn) {
    if (!q || !pos || !neg || n < 1 || k < 1 || d < 1)
        return ct_error(CT_ERR_ARG, "%s: bad arguments (n=%lld, k=%lld, d=%lld)", fn, (long long)n,
                        (long long)k, (long long)d);
    ct_status s = ct_loss__check_tau(tau, fn);
    if (s) return s;
    void *owned;
    s = ct_loss__ws_acquire(&ws, ws_bytes, nce_size(n, k, d, own_neg), &owned, fn);
    if (s) return s;
    ct_loss__ws w = {.base = ws};
    nce_ws p;
    nce_layout(&w, &p, n, k, d, own_neg);

    ct_loss__normalize(p.uq, p.nq, q, n, d);
    ct_loss__normalize(p.up, p.np, pos, n, d);
    const float *un = neg;
    if (own_neg) {
        ct_loss__normalize(p.un, p.nn, neg, k, d);
        un = p.un;
        if (dneg) memset(p.dun, 0, (size_t)k * (size_t)d * sizeof(float));
    }
    int grad = dq || dpos || (own_neg && dneg);
    float inv_t = 1.0f / tau, wrow = (float)(1.0 / (double)n);
    int64_t B = ct_loss__block_rows(n), ld = k + 1;
    for (int64_t r0 = 0; r0 < n; r0 += B) {
        int64_t b = n - r0 < B ? n - r0 : B;
        const float *uqb = p.uq + r0 * d;
        ct_gemm(0, 1, b, k, d, inv_t, uqb, d, un, d, 0.0f, p.blk + 1, ld);
#pragma omp parallel for schedule(static)
        for (int64_t i = 0; i < b; i++) {
            const float *a = uqb + i * d, *c = p.up + (r0 + i) * d;
            double dot = 0.0;
            for (int64_t t = 0; t < d; t++) dot += (double)a[t] * c[t];
            float *row = p.blk + i * ld;
            row[0] = (float)dot * inv_t;
            ct_loss__row_ce(row, ld, -1, 0, NULL, 0, inv_t, wrow, 0, &p.rows[r0 + i]);
        }
        if (!grad) continue;
        /* dUq = G[:,1:] Un / tau + G[:,0] Up / tau;  dUp = G[:,0] Uq / tau */
        ct_gemm(0, 0, b, d, k, inv_t, p.blk + 1, ld, un, d, 0.0f, p.duq + r0 * d, d);
#pragma omp parallel for schedule(static)
        for (int64_t i = 0; i < b; i++) {
            float g0 = p.blk[i * ld] * inv_t;
            const float *a = uqb + i * d, *c = p.up + (r0 + i) * d;
            float *gq = p.duq + (r0 + i) * d, *gp = p.dup + (r0 + i) * d;
            for (int64_t t = 0; t < d; t++) {
                gq[t] += g0 * c[t];
                gp[t] = g0 * a[t];
            }
        }
        /* dUn += G[:,1:]^T Uq[block] / tau */
        if (own_neg && dneg) ct_gemm(1, 0, k, d, b, inv_t, p.blk + 1, ld, uqb, d, 1.0f, p.dun, d);
    }
    ct_loss_stats local;
    if (!st) st = &local;
    ct_loss__reduce(st, p.rows, n, 1.0 / (double)n, 0.0);
    if (dq) ct_loss__normalize_backward(dq, p.duq, p.uq, p.nq, n, d);
    if (dpos) ct_loss__normalize_backward(dpos, p.dup, p.up, p.np, n, d);
    if (own_neg && dneg) ct_loss__normalize_backward(dneg, p.dun, p.un, p.nn, k, d);
    ct_free(owned);
    return ct_loss__check_finite(st, fn);
}

ct_status ct_infonce_loss(ct_loss_stats *st, float *dq, float *dpos, float *dneg, const float *q,
                          const float *pos, const float *neg, int64_t n, int64_t k, int64_t d,
                          float tau, void *ws, size_t ws_bytes) {
    return nce(st, dq, dpos, dneg, q, pos, neg, n, k, d, tau, 1, ws, ws_bytes, "ct_infonce_loss");
}

/* ---- MoCo ------------------------------------------------------------------ */

ct_status ct_moco_queue_init(ct_moco_queue *q, int64_t k, int64_t d, uint64_t seed) {
    memset(q, 0, sizeof *q);
    size_t kd;
    if (k < 1 || d < 1 || ct_size_mul((size_t)k, (size_t)d, &kd) || kd > SIZE_MAX / sizeof(float))
        return ct_error(CT_ERR_ARG, "ct_moco_queue_init: bad size k=%lld d=%lld", (long long)k,
                        (long long)d);
    q->keys = ct_alloc(kd * sizeof(float));
    if (!q->keys) return CT_ERR_NOMEM;
    q->k = k;
    q->d = d;
    /* Random unit rows; each row draws from its own counter stream. */
    for (int64_t i = 0; i < k; i++) {
        ct_rng r = ct_rng_make(ct_rng_key(seed, 0x6d6f636fULL, (uint64_t)i, 0));
        float *row = q->keys + i * d;
        double ss = 0.0;
        for (int64_t t = 0; t < d; t++) {
            row[t] = ct_rng_normal(&r);
            ss += (double)row[t] * row[t];
        }
        float inv = (float)(1.0 / (sqrt(ss) > CT_LOSS_EPS ? sqrt(ss) : CT_LOSS_EPS));
        for (int64_t t = 0; t < d; t++) row[t] *= inv;
    }
    return CT_OK;
}

void ct_moco_queue_free(ct_moco_queue *q) {
    ct_free(q->keys);
    memset(q, 0, sizeof *q);
}

ct_status ct_moco_queue_push(ct_moco_queue *q, const float *keys, int64_t n) {
    if (!q->keys || !keys || n < 0) return ct_error(CT_ERR_ARG, "ct_moco_queue_push: bad arguments");
    int64_t skip = n > q->k ? n - q->k : 0; /* keys that would be overwritten at once */
    q->ptr = (q->ptr + skip) % q->k;
    for (int64_t i = skip; i < n; i++) {
        const float *src = keys + i * q->d;
        float *dst = q->keys + q->ptr * q->d;
        double ss = 0.0;
        for (int64_t t = 0; t < q->d; t++) ss += (double)src[t] * src[t];
        float inv = (float)(1.0 / (sqrt(ss) > CT_LOSS_EPS ? sqrt(ss) : CT_LOSS_EPS));
        for (int64_t t = 0; t < q->d; t++) dst[t] = src[t] * inv;
        q->ptr = (q->ptr + 1) % q->k;
    }
    q->pushed += (uint64_t)n;
    return CT_OK;
}

const float *ct_moco_queue_row(const ct_moco_queue *q, int64_t j) {
    if (!q->keys || j < 0 || j >= q->k) return NULL;
    return q->keys + ((q->ptr + j) % q->k) * q->d;
}

ct_status ct_moco_loss(ct_loss_stats *st, float *dq, const float *q, const float *k,
                       const ct_moco_queue *queue, int64_t n, float tau, void *ws,
                       size_t ws_bytes) {
    if (!queue || !queue->keys) return ct_error(CT_ERR_ARG, "ct_moco_loss: queue not initialised");
    return nce(st, dq, NULL, NULL, q, k, queue->keys, n, queue->k, queue->d, tau, 0, ws, ws_bytes,
               "ct_moco_loss");
}

void ct_momentum_update(float *key_params, const float *query_params, size_t n, float m) {
    float a = 1.0f - m;
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < n; i++) key_params[i] = m * key_params[i] + a * query_params[i];
}
