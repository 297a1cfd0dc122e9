/* knn.c: similarity-based feature metrics: weighted kNN classification,
 * retrieval (Recall@k, mAP@k) and alignment / uniformity.
 *
 * All three L2-normalise copies of the features and compute cosine similarities
 * a block of query rows at a time with one ct_gemm per block, so memory stays
 * O(block * gallery) however many queries there are. Per-row work (top-k
 * selection, votes) runs in parallel over rows; every per-row result is combined
 * either as an integer count or in row order, so results do not depend on the
 * number of threads. */
#include "contrast/eval.h"

#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

/* Similarity tiles: up to 1024 query rows x 8192 gallery rows (32 MB). Tall
 * tiles keep the GEMM efficient (about 25 GFLOPS on 2 cores versus 15 for a
 * 128-row block) while the memory stays bounded whatever the data size. */
/* Loops over fewer elements than this stay on one thread: waking a team costs
 * more, especially on a busy machine. */
#define PAR_MIN 65536
#define TILE_Q 1024
#define TILE_G 8192
static int64_t min64(int64_t a, int64_t b) { return a < b ? a : b; }

static ct_status check_finite(const float *x, int64_t n, int64_t D, const char *what) {
    for (int64_t i = 0; i < n * D; i++)
        if (!isfinite(x[i]))
            return ct_error(CT_ERR_NUMERIC, "%s: feature [%lld, %lld] is not finite", what, (long long)(i / D),
                            (long long)(i % D));
    return CT_OK;
}

static ct_status check_labels(const int32_t *y, int64_t n, int num_classes, const char *what) {
    for (int64_t i = 0; i < n; i++)
        if (y[i] < 0 || y[i] >= num_classes)
            return ct_error(CT_ERR_ARG, "%s: label %d at row %lld outside [0, %d)", what, y[i], (long long)i,
                            num_classes);
    return CT_OK;
}

/* dst rows = src rows / ||row|| (zero rows stay zero). */
static void normalize_rows(float *dst, const float *src, int64_t n, int64_t D) {
#pragma omp parallel for schedule(static) if (n * D >= PAR_MIN)
    for (int64_t i = 0; i < n; i++) {
        const float *s = src + i * D;
        float *d = dst + i * D;
        double ss = 0.0;
        for (int64_t j = 0; j < D; j++) ss += (double)s[j] * s[j];
        float inv = ss > 0.0 ? (float)(1.0 / sqrt(ss)) : 0.0f;
        for (int64_t j = 0; j < D; j++) d[j] = s[j] * inv;
    }
}

static float *alloc_floats(int64_t a, int64_t b, const char *what) {
    size_t n;
    if (a <= 0 || b <= 0 || ct_size_mul((size_t)a, (size_t)b, &n) || ct_size_mul(n, sizeof(float), &n)) {
        ct_error(CT_ERR_NOMEM, "%s: size %lld x %lld overflows", what, (long long)a, (long long)b);
        return NULL;
    }
    return ct_alloc(n);
}

/* ---- top-k selection ------------------------------------------------------------ */
/* A total order on (similarity, index): higher similarity first, then lower index,
 * so the selected set never depends on scan order. The heap keeps the k best seen
 * so far with the worst at the root. */
static int worse(float sa, int64_t ia, float sb, int64_t ib) { return sa < sb || (sa == sb && ia > ib); }

static void sift_down(float *hs, int64_t *hi, int n, int i) {
    for (;;) {
        int l = 2 * i + 1, r = l + 1, w = i;
        if (l < n && worse(hs[l], hi[l], hs[w], hi[w])) w = l;
        if (r < n && worse(hs[r], hi[r], hs[w], hi[w])) w = r;
        if (w == i) return;
        float ts = hs[i]; hs[i] = hs[w]; hs[w] = ts;
        int64_t ti = hi[i]; hi[i] = hi[w]; hi[w] = ti;
        i = w;
    }
}

/* Offers sim[0..n) (gallery indices base..base+n, skipping index `skip`, -1 for
 * none) to a heap of at most k entries holding *m. Called once per gallery tile. */
static void topk_push(const float *sim, int64_t n, int64_t base, int64_t skip, int k, float *hs, int64_t *hi,
                      int *m_io) {
    int m = *m_io;
    for (int64_t jj = 0; jj < n; jj++) {
        int64_t j = base + jj;
        if (j == skip) continue;
        float s = sim[jj];
        if (m < k) { /* sift up */
            int i = m++;
            hs[i] = s, hi[i] = j;
            while (i > 0) {
                int p = (i - 1) / 2;
                if (!worse(hs[i], hi[i], hs[p], hi[p])) break;
                float ts = hs[i]; hs[i] = hs[p]; hs[p] = ts;
                int64_t ti = hi[i]; hi[i] = hi[p]; hi[p] = ti;
                i = p;
            }
        } else if (worse(hs[0], hi[0], s, j)) {
            hs[0] = s, hi[0] = j;
            sift_down(hs, hi, m, 0);
        }
    }
    *m_io = m;
}

/* Heap sort in place: repeatedly move the worst to the end, leaving best first. */
static void topk_sort(float *hs, int64_t *hi, int m) {
    for (int end = m - 1; end > 0; end--) {
        float ts = hs[0]; hs[0] = hs[end]; hs[end] = ts;
        int64_t ti = hi[0]; hi[0] = hi[end]; hi[end] = ti;
        sift_down(hs, hi, end, 0);
    }
}

/* Shared driver: for each query row, the k most similar gallery rows (cosine),
 * sorted best first, handed to `visit` in row blocks. */
typedef struct {
    float *gal;      /* (ng, D) normalised gallery */
    float *qb;       /* (TILE_Q, D) normalised query block */
    float *sim;      /* (TILE_Q, TILE_G) */
    float *hs;       /* (TILE_Q, k) */
    int64_t *hi;     /* (TILE_Q, k) */
    int *hm;         /* (TILE_Q) */
} topk_work;

static void topk_work_free(topk_work *w) {
    ct_free(w->gal), ct_free(w->qb), ct_free(w->sim), ct_free(w->hs), ct_free(w->hi), ct_free(w->hm);
    memset(w, 0, sizeof *w);
}

static ct_status topk_work_init(topk_work *w, int64_t ng, int64_t nq, int64_t D, int k, const char *what) {
    memset(w, 0, sizeof *w);
    int64_t bq = min64(nq, TILE_Q), bg = min64(ng, TILE_G);
    w->gal = alloc_floats(ng, D, what);
    w->qb = alloc_floats(bq, D, what);
    w->sim = alloc_floats(bq, bg, what);
    w->hs = alloc_floats(bq, k, what);
    w->hi = ct_alloc((size_t)bq * (size_t)k * sizeof(int64_t));
    w->hm = ct_alloc((size_t)bq * sizeof(int));
    if (!w->gal || !w->qb || !w->sim || !w->hs || !w->hi || !w->hm) {
        topk_work_free(w);
        return ct_error(CT_ERR_NOMEM, "%s: out of memory for %lld x %lld features", what, (long long)ng, (long long)D);
    }
    return CT_OK;
}

/* Fills w->hs/hi/hm for query rows [r0, r0+nb) against the whole gallery. */
static void topk_block(topk_work *w, const float *query, int64_t r0, int64_t nb, int64_t ng, int64_t D, int k,
                       int exclude_self) {
    normalize_rows(w->qb, query + r0 * D, nb, D);
    for (int64_t i = 0; i < nb; i++) w->hm[i] = 0;
    for (int64_t g0 = 0; g0 < ng; g0 += TILE_G) {
        int64_t gb = min64(ng - g0, TILE_G);
        ct_gemm(0, 1, nb, gb, D, 1.0f, w->qb, D, w->gal + g0 * D, D, 0.0f, w->sim, gb);
#pragma omp parallel for schedule(dynamic, 16) if (nb * gb >= PAR_MIN)
        for (int64_t i = 0; i < nb; i++)
            topk_push(w->sim + i * gb, gb, g0, exclude_self ? r0 + i : -1, k, w->hs + i * k, w->hi + i * k, &w->hm[i]);
    }
#pragma omp parallel for schedule(static) if (nb * k >= PAR_MIN)
    for (int64_t i = 0; i < nb; i++) topk_sort(w->hs + i * k, w->hi + i * k, w->hm[i]);
}

/* ---- kNN ---------------------------------------------------------------------------- */

ct_status ct_knn_eval(const float *train_feat, const int32_t *train_labels, int64_t ntr,
                      const float *test_feat, const int32_t *test_labels, int64_t nte, int64_t D,
                      int num_classes, int k, float T, double *top1, double *top5) {
    if (ntr <= 0 || nte <= 0 || D <= 0 || num_classes <= 0 || k <= 0 || !(T > 0.0f) || !isfinite(T) || !top1)
        return ct_error(CT_ERR_ARG, "knn: bad arguments (ntr %lld, nte %lld, D %lld, classes %d, k %d, T %g)",
                        (long long)ntr, (long long)nte, (long long)D, num_classes, k, T);
    ct_status st;
    if ((st = check_labels(train_labels, ntr, num_classes, "knn train labels")) ||
        (st = check_labels(test_labels, nte, num_classes, "knn test labels")) ||
        (st = check_finite(train_feat, ntr, D, "knn train")) || (st = check_finite(test_feat, nte, D, "knn test")))
        return st;
    if (k > ntr) k = (int)ntr;
    topk_work w;
    double *votes = NULL;
    int nth = omp_get_max_threads();
    if ((st = topk_work_init(&w, ntr, nte, D, k, "knn"))) return st;
    if (!(votes = ct_alloc((size_t)nth * (size_t)num_classes * sizeof(double)))) {
        topk_work_free(&w);
        return ct_error(CT_ERR_NOMEM, "knn: out of memory");
    }
    normalize_rows(w.gal, train_feat, ntr, D);
    int64_t c1 = 0, c5 = 0; /* integer counts: the sum is exact in any order */
    for (int64_t r0 = 0; r0 < nte; r0 += TILE_Q) {
        int64_t nb = min64(nte - r0, TILE_Q);
        topk_block(&w, test_feat, r0, nb, ntr, D, k, 0);
#pragma omp parallel for schedule(static) reduction(+ : c1, c5) if (nb * k >= PAR_MIN)
        for (int64_t i = 0; i < nb; i++) {
            double *v = votes + (size_t)omp_get_thread_num() * (size_t)num_classes;
            const float *hs = w.hs + i * k;
            const int64_t *hi = w.hi + i * k;
            memset(v, 0, (size_t)num_classes * sizeof(double));
            /* weights relative to the best neighbour: exp((s - s0)/T) ranks classes as
             * exp(s/T) does, but cannot overflow for a small T */
            for (int j = 0; j < w.hm[i]; j++) v[train_labels[hi[j]]] += exp(((double)hs[j] - hs[0]) / T);
            int y = test_labels[r0 + i];
            /* rank of the true class: classes ahead of it in (votes desc, index asc) */
            int ahead = 0;
            for (int c = 0; c < num_classes; c++) ahead += v[c] > v[y] || (v[c] == v[y] && c < y);
            c1 += ahead == 0;
            c5 += ahead < 5;
        }
    }
    *top1 = (double)c1 / (double)nte;
    if (top5) *top5 = (double)c5 / (double)nte;
    topk_work_free(&w);
    ct_free(votes);
    return CT_OK;
}

/* ---- retrieval ---------------------------------------------------------------------- */

ct_status ct_eval_retrieval(const float *gallery, const int32_t *gallery_labels, int64_t ng,
                            const float *query, const int32_t *query_labels, int64_t nq, int64_t D,
                            int exclude_self, const int *ks, int nks, double *recall, int map_k,
                            double *map) {
    if (ng <= 0 || nq <= 0 || D <= 0 || nks < 0 || (nks && (!ks || !recall)) || (map_k > 0 && !map) ||
        (exclude_self && nq != ng))
        return ct_error(CT_ERR_ARG, "retrieval: bad arguments (ng %lld, nq %lld, D %lld)", (long long)ng,
                        (long long)nq, (long long)D);
    int kmax = map_k > 0 ? map_k : 0;
    for (int i = 0; i < nks; i++) {
        if (ks[i] <= 0) return ct_error(CT_ERR_ARG, "retrieval: k = %d must be positive", ks[i]);
        if (ks[i] > kmax) kmax = ks[i];
    }
    if (kmax == 0) return CT_OK;
    int ncls = 0;
    for (int64_t i = 0; i < ng; i++) {
        if (gallery_labels[i] < 0) return ct_error(CT_ERR_ARG, "retrieval: negative gallery label at %lld", (long long)i);
        if (gallery_labels[i] >= ncls) ncls = gallery_labels[i] + 1;
    }
    ct_status st;
    if ((st = check_finite(gallery, ng, D, "retrieval gallery")) || (st = check_finite(query, nq, D, "retrieval query")))
        return st;
    int64_t avail = ng - (exclude_self ? 1 : 0);
    int keff = (int64_t)kmax < avail ? kmax : (int)avail;
    if (keff < 1) keff = 1;
    topk_work w;
    if ((st = topk_work_init(&w, ng, nq, D, keff, "retrieval"))) return st;
    int64_t *hist = ct_alloc((size_t)(ncls + 1) * sizeof(int64_t));
    int *first_hit = ct_alloc((size_t)nq * sizeof(int)); /* rank of the first same-label item, -1 if none */
    double *ap = ct_alloc((size_t)nq * sizeof(double));
    if (!hist || !first_hit || !ap) {
        st = ct_error(CT_ERR_NOMEM, "retrieval: out of memory for %lld queries", (long long)nq);
        goto done;
    }
    for (int64_t i = 0; i < ng; i++) hist[gallery_labels[i]]++;
    normalize_rows(w.gal, gallery, ng, D);
    for (int64_t r0 = 0; r0 < nq; r0 += TILE_Q) {
        int64_t nb = min64(nq - r0, TILE_Q);
        topk_block(&w, query, r0, nb, ng, D, keff, exclude_self);
#pragma omp parallel for schedule(static) if (nb * keff >= PAR_MIN)
        for (int64_t i = 0; i < nb; i++) {
            const int64_t *hi = w.hi + i * keff;
            int64_t qi = r0 + i;
            int32_t y = query_labels[qi];
            int first = -1, rel = 0;
            double sum_prec = 0.0;
            for (int j = 0; j < w.hm[i]; j++) {
                if (gallery_labels[hi[j]] != y) continue;
                if (first < 0) first = j;
                if (j < map_k) sum_prec += (double)(++rel) / (double)(j + 1);
            }
            int64_t R = (y >= 0 && y < ncls) ? hist[y] - (exclude_self ? 1 : 0) : 0;
            int64_t denom = R < map_k ? R : map_k;
            ap[qi] = denom > 0 ? sum_prec / (double)denom : 0.0;
            first_hit[qi] = first;
        }
    }
    for (int q = 0; q < nks; q++) {
        int64_t hits = 0;
        for (int64_t i = 0; i < nq; i++) hits += first_hit[i] >= 0 && first_hit[i] < ks[q];
        recall[q] = (double)hits / (double)nq;
    }
    if (map_k > 0) { /* summed in query order: the same bits at any thread count */
        double sum = 0.0;
        for (int64_t i = 0; i < nq; i++) sum += ap[i];
        *map = sum / (double)nq;
    }
    st = CT_OK;
done:
    topk_work_free(&w);
    ct_free(hist);
    ct_free(first_hit);
    ct_free(ap);
    return st;
}

/* ---- alignment and uniformity --------------------------------------------------------- */

ct_status ct_eval_align_uniform(const float *feat, const int32_t *labels, int64_t n, int64_t D,
                                int64_t max_n, uint64_t seed, double *align, double *uniform) {
    if (n < 2 || D <= 0 || max_n < 2 || !align || !uniform)
        return ct_error(CT_ERR_ARG, "align/uniform: need at least 2 rows (n %lld, max_n %lld)", (long long)n,
                        (long long)max_n);
    ct_status st = check_finite(feat, n, D, "align/uniform");
    if (st) return st;
    int64_t m = n < max_n ? n : max_n;
    int64_t B = min64(m, ((int64_t)8 << 20) / m > 0 ? ((int64_t)8 << 20) / m : 1);
    int64_t *idx = ct_alloc((size_t)n * sizeof(int64_t));
    float *f = alloc_floats(m, D, "align/uniform"), *g = alloc_floats(B, m, "align/uniform");
    double *row_u = ct_alloc((size_t)m * sizeof(double)), *row_a = ct_alloc((size_t)m * sizeof(double));
    int64_t *row_np = ct_alloc((size_t)m * sizeof(int64_t));
    int32_t *lab = ct_alloc((size_t)m * sizeof(int32_t));
    if (!idx || !f || !g || !row_u || !row_a || !row_np || !lab) {
        st = ct_error(CT_ERR_NOMEM, "align/uniform: out of memory for %lld rows", (long long)m);
        goto done;
    }
    /* the subset: a partial Fisher-Yates shuffle driven by the counter-based RNG */
    for (int64_t i = 0; i < n; i++) idx[i] = i;
    if (m < n) {
        ct_rng r = ct_rng_make(ct_rng_key(seed, 0x616c69676eULL, 0, 0));
        for (int64_t i = 0; i < m; i++) {
            int64_t j = i + (int64_t)ct_rng_below(&r, (uint64_t)(n - i));
            int64_t t = idx[i]; idx[i] = idx[j]; idx[j] = t;
        }
    }
    for (int64_t i = 0; i < m; i++) {
        normalize_rows(f + i * D, feat + idx[i] * D, 1, D);
        lab[i] = labels[idx[i]];
    }
    for (int64_t r0 = 0; r0 < m; r0 += B) {
        int64_t nb = m - r0 < B ? m - r0 : B;
        ct_gemm(0, 1, nb, m, D, 1.0f, f + r0 * D, D, f, D, 0.0f, g, m);
#pragma omp parallel for schedule(dynamic, 8) if (nb * m >= PAR_MIN)
        for (int64_t i = 0; i < nb; i++) {
            int64_t gi = r0 + i;
            double su = 0.0, sa = 0.0;
            int64_t np = 0;
            for (int64_t j = gi + 1; j < m; j++) {
                double d2 = 2.0 - 2.0 * (double)g[i * m + j];
                if (d2 < 0.0) d2 = 0.0;
                su += exp(-2.0 * d2);
                if (lab[j] == lab[gi]) sa += d2, np++;
            }
            row_u[gi] = su, row_a[gi] = sa, row_np[gi] = np;
        }
    }
    double su = 0.0, sa = 0.0;
    int64_t np = 0;
    for (int64_t i = 0; i < m; i++) su += row_u[i], sa += row_a[i], np += row_np[i];
    *uniform = log(su / ((double)m * (double)(m - 1) / 2.0));
    *align = np > 0 ? sa / (double)np : NAN;
    st = CT_OK;
done:
    ct_free(idx);
    ct_free(f);
    ct_free(g);
    ct_free(row_u);
    ct_free(row_a);
    ct_free(row_np);
    ct_free(lab);
    return st;
}
