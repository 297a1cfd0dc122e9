/* metric.c: the Euclidean objectives (margin contrastive loss, triplet loss with
 * in-batch mining), pair construction from labels, and Wang & Isola's alignment and
 * uniformity metrics. */
#include "internal.h"

#include <math.h>
#include <string.h>

/* ---- pairs ----------------------------------------------------------------- */

int64_t ct_pairs_max(int64_t n) { return n < 2 ? 0 : n * (n - 1) / 2; }

int64_t ct_pairs_all(ct_pair *out, const int32_t *labels, int64_t n) {
    int64_t c = 0;
    for (int64_t i = 0; i < n; i++)
        for (int64_t j = i + 1; j < n; j++)
            out[c++] = (ct_pair){i, j, labels[i] == labels[j]};
    return c;
}

int64_t ct_pairs_balanced(ct_pair *out, const int32_t *labels, int64_t n, int64_t max_pairs,
                          uint64_t seed) {
    int64_t n_same = 0, total = ct_pairs_max(n);
    for (int64_t i = 0; i < n; i++)
        for (int64_t j = i + 1; j < n; j++) n_same += labels[i] == labels[j];
    int64_t n_diff = total - n_same;
    int64_t p = n_same < n_diff ? n_same : n_diff;
    if (max_pairs > 0 && p > max_pairs / 2) p = max_pairs / 2;
    /* Selection sampling (Knuth's Algorithm S) per class: walking the pairs in order,
     * take each with probability (still needed) / (still left); one counter-based
     * stream per class so the draw depends only on the seed. */
    ct_rng rng[2] = {ct_rng_make(ct_rng_key(seed, 0x70616972ULL, 0, 0)),
                     ct_rng_make(ct_rng_key(seed, 0x70616972ULL, 1, 0))};
    int64_t need[2] = {p, p}, left[2] = {n_diff, n_same}, c = 0;
    for (int64_t i = 0; i < n; i++)
        for (int64_t j = i + 1; j < n; j++) {
            int same = labels[i] == labels[j];
            if (need[same] > 0 &&
                (double)left[same] * ct_rng_uniform(&rng[same]) < (double)need[same]) {
                out[c++] = (ct_pair){i, j, same};
                need[same]--;
            }
            left[same]--;
        }
    return c;
}

/* ---- margin contrastive loss ----------------------------------------------- */

ct_status ct_margin_loss(ct_loss_stats *st, float *dx, const float *x, const ct_pair *pairs,
                         int64_t n_pairs, int64_t n, int64_t d, float margin) {
    const char *fn = "ct_margin_loss";
    if (!x || !pairs || n_pairs < 1 || n < 2 || d < 1 || !(margin >= 0.0f) || !isfinite(margin))
        return ct_error(CT_ERR_ARG, "%s: bad arguments (pairs=%lld, n=%lld, d=%lld, margin=%g)", fn,
                        (long long)n_pairs, (long long)n, (long long)d, margin);
    for (int64_t q = 0; q < n_pairs; q++)
        if (pairs[q].a < 0 || pairs[q].a >= n || pairs[q].b < 0 || pairs[q].b >= n || pairs[q].a == pairs[q].b)
            return ct_error(CT_ERR_ARG, "%s: pair %lld = (%lld, %lld) is not two distinct rows of %lld", fn,
                            (long long)q, (long long)pairs[q].a, (long long)pairs[q].b, (long long)n);
    if (dx) memset(dx, 0, (size_t)n * (size_t)d * sizeof(float));
    double loss = 0, pos = 0, neg = 0, m = margin, inv_p = 1.0 / (double)n_pairs;
    int64_t pos_n = 0, neg_n = 0, right = 0, active = 0;
    /* Serial on purpose: rows are shared between pairs, and a fixed order keeps the
     * accumulation reproducible; the work is O(pairs * d). */
    for (int64_t q = 0; q < n_pairs; q++) {
        const float *xa = x + pairs[q].a * d, *xb = x + pairs[q].b * d;
        double d2 = 0, dot = 0, na = 0, nb = 0;
        for (int64_t t = 0; t < d; t++) {
            double diff = (double)xa[t] - xb[t];
            d2 += diff * diff;
            dot += (double)xa[t] * xb[t];
            na += (double)xa[t] * xa[t];
            nb += (double)xb[t] * xb[t];
        }
        double dist = sqrt(d2);
        double cosv = dot / (fmax(sqrt(na), CT_LOSS_EPS) * fmax(sqrt(nb), CT_LOSS_EPS));
        double coef; /* dL_q / d(x_a - x_b), times (x_a - x_b) */
        if (pairs[q].same) {
            loss += 0.5 * d2;
            coef = 1.0;
            pos += cosv; pos_n++;
            right += dist < 0.5 * m;
            active += d2 > 0;
        } else {
            double h = m - dist;
            neg += cosv; neg_n++;
            right += dist >= 0.5 * m;
            if (h > 0) {
                loss += 0.5 * h * h;
                active++;
                /* d/dx of h^2/2 = -h * (x_a - x_b) / dist; dist -> eps keeps x_a == x_b finite (0) */
                coef = -h / fmax(dist, CT_LOSS_EPS);
            } else {
                coef = 0.0;
            }
        }
        if (dx && coef != 0.0) {
            float *ga = dx + pairs[q].a * d, *gb = dx + pairs[q].b * d;
            float cf = (float)(coef * inv_p);
            for (int64_t t = 0; t < d; t++) {
                float g = cf * (xa[t] - xb[t]);
                ga[t] += g;
                gb[t] -= g;
            }
        }
    }
    ct_loss_stats local;
    if (!st) st = &local;
    ct_loss__sums sums = {
        .loss = loss * inv_p,
        .top1 = (double)right * inv_p,
        .pos_sum = pos, .pos_n = pos_n, .neg_sum = neg, .neg_n = neg_n,
        .active = (double)active * inv_p,
        .count = n_pairs,
    };
    ct_loss__stats_fill(st, &sums);
    return ct_loss__check_finite(st, fn);
}

/* ---- triplet loss ------------------------------------------------------------ */

typedef struct {
    float *dist, *w;  /* (n, n): distances; then per-pair weights dL/dd, then GEMM coefficients */
    double *sq;       /* (n): squared norms */
    double *aloss;    /* (n): per-anchor loss sums */
    int64_t *acount, *avalid, *acorrect; /* (n) */
    double *apos, *aneg;                 /* (n): per-anchor cosine sums */
    int64_t *aposn, *anegn;
} trip_ws;

static size_t trip_layout(ct_loss__ws *w, trip_ws *p, int64_t n, int64_t d) {
    if (n < 1 || d < 1) return SIZE_MAX;
    size_t nn;
    if (ct_size_mul((size_t)n, (size_t)n, &nn)) return SIZE_MAX;
    p->dist = ct_loss__take(w, nn, sizeof(float));
    p->w = ct_loss__take(w, nn, sizeof(float));
    p->sq = ct_loss__take(w, (size_t)n, sizeof(double));
    p->aloss = ct_loss__take(w, (size_t)n, sizeof(double));
    p->apos = ct_loss__take(w, (size_t)n, sizeof(double));
    p->aneg = ct_loss__take(w, (size_t)n, sizeof(double));
    p->acount = ct_loss__take(w, (size_t)n, sizeof(int64_t));
    p->avalid = ct_loss__take(w, (size_t)n, sizeof(int64_t));
    p->acorrect = ct_loss__take(w, (size_t)n, sizeof(int64_t));
    p->aposn = ct_loss__take(w, (size_t)n, sizeof(int64_t));
    p->anegn = ct_loss__take(w, (size_t)n, sizeof(int64_t));
    return ct_loss__ws_size(w);
}

size_t ct_triplet_workspace_size(int64_t n, int64_t d) {
    ct_loss__ws w = {0};
    trip_ws p;
    return trip_layout(&w, &p, n, d);
}

ct_status ct_triplet_loss(ct_loss_stats *st, float *dx, const float *x, const int32_t *labels,
                          int64_t n, int64_t d, float margin, ct_mining mining, int squared,
                          void *ws, size_t ws_bytes) {
    const char *fn = "ct_triplet_loss";
    if (!x || !labels || n < 2 || d < 1 || !(margin >= 0.0f) || !isfinite(margin) ||
        (mining != CT_MINE_ALL && mining != CT_MINE_HARD && mining != CT_MINE_SEMIHARD))
        return ct_error(CT_ERR_ARG, "%s: bad arguments (n=%lld, d=%lld, margin=%g, mining=%d)", fn,
                        (long long)n, (long long)d, margin, (int)mining);
    void *owned;
    ct_status s = ct_loss__ws_acquire(&ws, ws_bytes, ct_triplet_workspace_size(n, d), &owned, fn);
    if (s) return s;
    ct_loss__ws w = {.base = ws};
    trip_ws p;
    trip_layout(&w, &p, n, d);
    float *D = p.dist, *W = p.w;

    /* d^2_ij = |x_i|^2 + |x_j|^2 - 2 x_i.x_j from one GEMM, clamped at 0. */
    ct_gemm(0, 1, n, n, d, 1.0f, x, d, x, d, 0.0f, D, n);
    for (int64_t i = 0; i < n; i++) p.sq[i] = D[i * n + i];
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < n; i++) {
        double apos = 0, aneg = 0;
        int64_t pn = 0, nn = 0;
        for (int64_t j = 0; j < n; j++) {
            float g = D[i * n + j];
            if (j != i) {
                double c = g / (fmax(sqrt(p.sq[i]), CT_LOSS_EPS) * fmax(sqrt(p.sq[j]), CT_LOSS_EPS));
                if (labels[j] == labels[i]) { apos += c; pn++; } else { aneg += c; nn++; }
            }
        }
        p.apos[i] = apos; p.aneg[i] = aneg; p.aposn[i] = pn; p.anegn[i] = nn;
    }
    /* Where the expansion cancels (close points: d^2 small against the norms) the GEMM
     * form has lost most digits, so such pairs are recomputed directly, in double;
     * identical rows then get exactly 0. */
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < n; i++)
        for (int64_t j = 0; j < n; j++) {
            double d2 = i == j ? 0.0 : p.sq[i] + p.sq[j] - 2.0 * D[i * n + j];
            if (i != j && d2 < 1e-3 * (p.sq[i] + p.sq[j])) {
                d2 = 0.0;
                for (int64_t t = 0; t < d; t++) {
                    double diff = (double)x[i * d + t] - x[j * d + t];
                    d2 += diff * diff;
                }
            }
            D[i * n + j] = (float)(squared ? d2 : sqrt(d2));
        }
    memset(W, 0, (size_t)n * (size_t)n * sizeof(float));

    /* Mining, one anchor per iteration: anchor a writes only row a of W. */
    float m = margin;
#pragma omp parallel for schedule(dynamic, 4)
    for (int64_t a = 0; a < n; a++) {
        const float *da = D + a * n;
        float *wa = W + a * n;
        double loss = 0;
        int64_t count = 0, valid = 0;
        float hp = -INFINITY, hn = INFINITY; /* farthest positive, nearest negative */
        int64_t ip = -1, in = -1;
        for (int64_t j = 0; j < n; j++) {
            if (j == a) continue;
            if (labels[j] == labels[a]) { if (da[j] > hp) { hp = da[j]; ip = j; } }
            else if (da[j] < hn) { hn = da[j]; in = j; }
        }
        p.acorrect[a] = 0;
        if (ip < 0 || in < 0) { /* no triplet with this anchor */
            p.aloss[a] = 0; p.acount[a] = 0; p.avalid[a] = 0;
            continue;
        }
        /* top-1: the nearest other row shares the anchor's label */
        float np_ = INFINITY;
        for (int64_t j = 0; j < n; j++)
            if (j != a && labels[j] == labels[a] && da[j] < np_) np_ = da[j];
        p.acorrect[a] = np_ < hn;
        if (mining == CT_MINE_HARD) {
            float l = hp - hn + m;
            valid = 1;
            if (l > 0) { loss = l; count = 1; wa[ip] += 1.0f; wa[in] -= 1.0f; }
        } else {
            for (int64_t pi = 0; pi < n; pi++) {
                if (pi == a || labels[pi] != labels[a]) continue;
                float dp = da[pi];
                if (mining == CT_MINE_ALL) {
                    for (int64_t ni = 0; ni < n; ni++) {
                        if (labels[ni] == labels[a]) continue;
                        valid++;
                        float l = dp - da[ni] + m;
                        if (l > 0) { loss += l; count++; wa[pi] += 1.0f; wa[ni] -= 1.0f; }
                    }
                } else { /* semi-hard: nearest negative beyond the positive, else the farthest */
                    float best_out = INFINITY, far = -INFINITY;
                    int64_t io = -1, iff = -1;
                    for (int64_t ni = 0; ni < n; ni++) {
                        if (labels[ni] == labels[a]) continue;
                        float dn = da[ni];
                        if (dn > dp && dn < best_out) { best_out = dn; io = ni; }
                        if (dn > far) { far = dn; iff = ni; }
                    }
                    int64_t sel = io >= 0 ? io : iff;
                    float l = dp - da[sel] + m;
                    valid++;
                    if (l > 0) { loss += l; count++; wa[pi] += 1.0f; wa[sel] -= 1.0f; }
                }
            }
        }
        p.aloss[a] = loss; p.acount[a] = count; p.avalid[a] = valid;
    }
    double loss = 0, pos = 0, neg = 0;
    int64_t count = 0, valid = 0, correct = 0, anchors = 0, pos_n = 0, neg_n = 0;
    for (int64_t a = 0; a < n; a++) {
        loss += p.aloss[a]; count += p.acount[a]; valid += p.avalid[a];
        correct += p.acorrect[a]; anchors += p.avalid[a] > 0;
        pos += p.apos[a]; neg += p.aneg[a]; pos_n += p.aposn[a]; neg_n += p.anegn[a];
    }
    /* batch-all averages over the triplets with non-zero loss; the others over all */
    int64_t denom = mining == CT_MINE_ALL ? count : valid;
    double scale = denom > 0 ? 1.0 / (double)denom : 0.0;

    ct_loss_stats local;
    if (!st) st = &local;
    ct_loss__sums sums = {
        .loss = loss * scale,
        .top1 = anchors ? (double)correct / (double)anchors : 0.0,
        .pos_sum = pos, .pos_n = pos_n, .neg_sum = neg, .neg_n = neg_n,
        .active = valid ? (double)count / (double)valid : 0.0,
        .count = denom,
    };
    ct_loss__stats_fill(st, &sums);

    if (dx) {
        /* dL/dx_i = sum_j C_ij (x_i - x_j),  C_ij = scale (W_ij + W_ji) dd_ij/d(x_i - x_j)
         * factor: 2 for squared distances, 1/d_ij otherwise; as a GEMM:
         * dx = diag(rowsum C) X - C X. C overwrites W (symmetric, filled upper then mirrored). */
        for (int64_t i = 0; i < n; i++)
            for (int64_t j = i; j < n; j++) {
                double c = 0.0;
                if (j != i) {
                    double wsum = (double)W[i * n + j] + W[j * n + i];
                    /* identical rows (distance exactly 0): subgradient 0 */
                    if (wsum != 0.0 && (squared || D[i * n + j] > 0.0f))
                        c = scale * wsum * (squared ? 2.0 : 1.0 / D[i * n + j]);
                }
                W[i * n + j] = W[j * n + i] = (float)c;
            }
        ct_gemm(0, 0, n, d, n, -1.0f, W, n, x, d, 0.0f, dx, d);
#pragma omp parallel for schedule(static)
        for (int64_t i = 0; i < n; i++) {
            double rs = 0.0;
            for (int64_t j = 0; j < n; j++) rs += W[i * n + j];
            for (int64_t t = 0; t < d; t++) dx[i * d + t] += (float)rs * x[i * d + t];
        }
    }
    ct_free(owned);
    return ct_loss__check_finite(st, fn);
}

/* ---- alignment and uniformity ------------------------------------------------ */

double ct_alignment(const float *x, const float *y, int64_t n, int64_t d, double alpha) {
    if (n < 1) return 0.0;
    double sum = 0.0;
    for (int64_t i = 0; i < n; i++) {
        double d2 = 0.0;
        for (int64_t t = 0; t < d; t++) {
            double diff = (double)x[i * d + t] - y[i * d + t];
            d2 += diff * diff;
        }
        sum += alpha == 2.0 ? d2 : pow(sqrt(d2), alpha);
    }
    return sum / (double)n;
}

ct_status ct_uniformity(double *out, const float *x, int64_t n, int64_t d, double t) {
    if (!out || !x || n < 2 || d < 1 || !isfinite(t))
        return ct_error(CT_ERR_ARG, "ct_uniformity: bad arguments (n=%lld, d=%lld)", (long long)n, (long long)d);
    int64_t B = ct_loss__block_rows(n);
    size_t nb, bytes;
    if (ct_size_mul((size_t)B, (size_t)n, &nb) || ct_size_add(nb, 3 * (size_t)n, &nb) ||
        ct_size_mul(nb, sizeof(double), &bytes))
        return ct_error(CT_ERR_NOMEM, "ct_uniformity: size overflows");
    double *sq = ct_alloc(bytes);
    if (!sq) return CT_ERR_NOMEM;
    double *rmax = sq + n, *rsum = rmax + n;
    float *blk = (float *)(rsum + n);
    for (int64_t i = 0; i < n; i++) {
        double s2 = 0.0;
        for (int64_t k = 0; k < d; k++) s2 += (double)x[i * d + k] * x[i * d + k];
        sq[i] = s2;
    }
    /* row i holds the pairs (i, j > i); per-row log-sum-exp, combined in row order */
    for (int64_t r0 = 0; r0 < n; r0 += B) {
        int64_t b = n - r0 < B ? n - r0 : B;
        ct_gemm(0, 1, b, n, d, 1.0f, x + r0 * d, d, x, d, 0.0f, blk, n);
#pragma omp parallel for schedule(static)
        for (int64_t ii = 0; ii < b; ii++) {
            int64_t i = r0 + ii;
            const float *g = blk + ii * n;
            double mx = -INFINITY, s = 0.0;
            for (int64_t j = i + 1; j < n; j++) {
                double v = -t * fmax(sq[i] + sq[j] - 2.0 * g[j], 0.0);
                if (v > mx) mx = v;
            }
            for (int64_t j = i + 1; j < n; j++) s += exp(-t * fmax(sq[i] + sq[j] - 2.0 * g[j], 0.0) - mx);
            rmax[i] = mx;
            rsum[i] = s;
        }
    }
    double mx = -INFINITY, s = 0.0;
    for (int64_t i = 0; i < n - 1; i++) if (rmax[i] > mx) mx = rmax[i];
    for (int64_t i = 0; i < n - 1; i++) s += rsum[i] * exp(rmax[i] - mx);
    *out = mx + log(s) - log((double)ct_pairs_max(n));
    ct_free(sq);
    return CT_OK;
}
