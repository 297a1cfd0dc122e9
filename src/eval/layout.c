/* layout.c: 2-D layouts of feature matrices for maps: principal components, and
 * Barnes-Hut t-SNE (van der Maaten and Hinton 2008; van der Maaten 2014).
 *
 * PCA: the covariance in double over fixed blocks of rows (one ct_gemm each), its
 * eigenvectors by LAPACK's dsyevd, signs fixed so each component's largest entry
 * is positive; the same bits at any thread count (OpenBLAS runs one thread per
 * caller, see ct_set_threads).
 *
 * t-SNE: the input affinities come from the exact 3 * perplexity nearest
 * neighbours (after a PCA to 50 dimensions), in fixed blocks of rows, each row's
 * bandwidth found by bisection to the perplexity, then symmetrised,
 * P = (P_j|i + P_i|j) / 2n. The layout starts at the first two principal
 * components scaled to standard deviation 1e-4 (no randomness) and follows the
 * gradient
 *   dC/dy_i = 4 (ex * sum_j P_ij q_ij (y_i - y_j) - sum_j q_ij^2 (y_i - y_j) / Z),
 *   q_ij = 1 / (1 + |y_i - y_j|^2), Z = sum_{k != l} q_kl,
 * with momentum 0.5 then 0.8, per-coordinate gains (+0.2 / x0.8), early
 * exaggeration ex = 12 for the first 250 steps, and the repulsion from a quadtree
 * (a cell of width w at distance d counts as one point at its centre of mass when
 * w < theta d). Each point's sums run over its neighbours and the tree in a fixed
 * order, in parallel over points; Z and the centring add over points serially,
 * so the result does not depend on the thread count. */
#include "contrast/plot.h"
#include "internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define LAYOUT_ROWS 512 /* rows per covariance / distance block (fixed: results must not depend on threads) */

/* C = op(A) B in fixed chunks of CHUNK rows of C, on the threads: each chunk is
 * one single-threaded ct_gemm of a shape that does not depend on the thread count,
 * so neither do the bits (ct_gemm alone splits rows by the thread count).
 *   transA 0: A (M, K), lda;  transA 1: A (K, M), lda (column i of A is row i of op(A)) */
#define CHUNK 64
static void gemm_fixed(int transA, int64_t M, int64_t N, int64_t K, const float *A, int64_t lda, const float *B,
                       int64_t ldb, float *C, int64_t ldc) {
#pragma omp parallel for schedule(dynamic, 1)
    for (int64_t r0 = 0; r0 < M; r0 += CHUNK) {
        const int64_t m = M - r0 < CHUNK ? M - r0 : CHUNK;
        ct_gemm(transA, 0, m, N, K, 1.0f, transA ? A + r0 : A + r0 * lda, lda, B, ldb, 0.0f, C + r0 * ldc, ldc);
    }
}

ct_status ct_layout_pca(float *Y, double *explained, const float *X, int64_t n, int64_t d, int k) {
    if (n < 2 || d < 1 || d > 16384 || k < 1 || k > d)
        return ct_error(CT_ERR_ARG, "pca: need n >= 2 rows and 1 <= k <= d <= 16384 (got n %lld, d %lld, k %d)",
                        (long long)n, (long long)d, k);
    const size_t dd = (size_t)d * (size_t)d;
    double *S = ct_alloc(dd * sizeof(double)), *l = ct_alloc((size_t)d * sizeof(double));
    float *blk = ct_alloc((size_t)LAYOUT_ROWS * (size_t)d * sizeof(float));
    float *V = ct_alloc((size_t)d * (size_t)k * sizeof(float)), *meanf = ct_alloc((size_t)d * sizeof(float));
    ct_status st = CT_OK;
    if (!S || !l || !blk || !V || !meanf) {
        st = CT_ERR_NOMEM;
        goto out;
    }
    if ((st = ct_eval__covariance(S, meanf, X, n, d, "pca"))) goto out;
    if ((st = ct_eval__sym_eigen(S, l, (int)d, "pca"))) goto out;
    double total = 0;
    for (int64_t j = 0; j < d; j++) total += l[j] > 0 ? l[j] : 0;
    for (int c = 0; c < k; c++) {
        const double *v = S + (size_t)(d - 1 - c) * (size_t)d; /* descending */
        int64_t big = 0;
        for (int64_t j = 1; j < d; j++)
            if (fabs(v[j]) > fabs(v[big]) * (1 + 1e-12)) big = j;
        double sign = v[big] < 0 ? -1.0 : 1.0;
        for (int64_t j = 0; j < d; j++) V[j * k + c] = (float)(sign * v[j]);
        if (explained) explained[c] = total > 0 ? fmax(l[d - 1 - c], 0.0) / total : 0.0;
    }
    for (int64_t r0 = 0; r0 < n; r0 += LAYOUT_ROWS) {
        const int64_t nb = n - r0 < LAYOUT_ROWS ? n - r0 : LAYOUT_ROWS;
        for (int64_t i = 0; i < nb; i++)
            for (int64_t j = 0; j < d; j++) blk[i * d + j] = X[(r0 + i) * d + j] - meanf[j];
        gemm_fixed(0, nb, k, d, blk, d, V, k, Y + r0 * k, k);
    }
out:
    ct_free(S);
    ct_free(l);
    ct_free(blk);
    ct_free(V);
    ct_free(meanf);
    return st;
}

ct_status ct_subsample(int64_t *idx, int64_t n, int64_t m, uint64_t seed) {
    if (m < 0 || m > n) return ct_error(CT_ERR_ARG, "subsample: cannot draw %lld of %lld", (long long)m, (long long)n);
    /* Floyd's algorithm needs a set; a marks array of n bytes is simpler and O(n) */
    unsigned char *mark = calloc((size_t)(n > 0 ? n : 1), 1);
    if (!mark) return ct_error(CT_ERR_NOMEM, "subsample: out of memory for %lld marks", (long long)n);
    ct_rng r = ct_rng_make(ct_rng_key(seed, 0x5a3b1e, 0, 0));
    for (int64_t j = n - m; j < n; j++) {
        int64_t t = (int64_t)ct_rng_below(&r, (uint64_t)j + 1);
        mark[mark[t] ? j : t] = 1;
    }
    int64_t c = 0;
    for (int64_t i = 0; i < n; i++)
        if (mark[i]) idx[c++] = i;
    free(mark);
    return CT_OK;
}

/* ---- t-SNE -------------------------------------------------------------------------- */
void ct_tsne_config_default(ct_tsne_config *cfg) {
    cfg->perplexity = 30;
    cfg->iters = 750;
    cfg->exag_iters = 250;
    cfg->exaggeration = 12;
    cfg->theta = 0.5;
    cfg->learning_rate = 0;
    cfg->pca_dims = 50;
}

/* Sparse symmetric P in CSR form. */
typedef struct {
    int64_t *rowptr;  /* (n + 1) */
    int32_t *col;     /* (nnz)   */
    double *val;      /* (nnz)   */
} csr;

/* k nearest neighbours of every row of Z (n, d) by squared Euclidean distance,
 * ties to the lower index: nbr (n, k), dist (n, k) ascending. */
static ct_status knn_exact(int32_t *nbr, double *dist, const float *Z, int64_t n, int64_t d, int k) {
    float *sq = ct_alloc((size_t)n * sizeof(float)), *G = ct_alloc((size_t)LAYOUT_ROWS * (size_t)n * sizeof(float));
    if (!sq || !G) {
        ct_free(sq);
        ct_free(G);
        return CT_ERR_NOMEM;
    }
    for (int64_t i = 0; i < n; i++) {
        double s = 0;
        for (int64_t j = 0; j < d; j++) s += (double)Z[i * d + j] * Z[i * d + j];
        sq[i] = (float)s;
    }
    for (int64_t r0 = 0; r0 < n; r0 += LAYOUT_ROWS) {
        const int64_t nb = n - r0 < LAYOUT_ROWS ? n - r0 : LAYOUT_ROWS;
        /* G = Z_b Z^T, computed in column blocks on the threads: each block's bits are
         * those of one fixed-shape ct_gemm, whichever thread runs it */
        const int64_t cb = 2048;
#pragma omp parallel for schedule(dynamic, 1)
        for (int64_t c0 = 0; c0 < n; c0 += cb) {
            const int64_t nc = n - c0 < cb ? n - c0 : cb;
            ct_gemm(0, 1, nb, nc, d, 1.0f, Z + r0 * d, d, Z + c0 * d, d, 0.0f, G + c0, n);
        }
#pragma omp parallel for schedule(dynamic, 16)
        for (int64_t i = 0; i < nb; i++) {
            const int64_t gi = r0 + i;
            int32_t *nb_i = nbr + gi * k;
            double *d_i = dist + gi * k;
            int cnt = 0;
            /* insertion into a sorted list of k: fine for k ~ 90 */
            for (int64_t j = 0; j < n; j++) {
                if (j == gi) continue;
                double dj = (double)sq[gi] + sq[j] - 2.0 * G[i * n + j];
                if (dj < 0) dj = 0;
                if (cnt == k && !(dj < d_i[k - 1])) continue;
                int pos = cnt < k ? cnt++ : k - 1;
                while (pos > 0 && d_i[pos - 1] > dj) {
                    d_i[pos] = d_i[pos - 1];
                    nb_i[pos] = nb_i[pos - 1];
                    pos--;
                }
                d_i[pos] = dj;
                nb_i[pos] = (int32_t)j;
            }
        }
    }
    ct_free(sq);
    ct_free(G);
    return CT_OK;
}

/* Conditional p_j|i over the k neighbours with the bandwidth that gives
 * entropy log(perplexity), by bisection on beta = 1 / (2 sigma^2). */
static void row_affinities(double *p, const double *dist, int k, double perplexity) {
    double beta = 1.0, lo = 0, hi = INFINITY, target = log(perplexity);
    /* distances relative to the nearest, so exp never underflows for all */
    double d0 = dist[0];
    for (int it = 0; it < 200; it++) {
        double sum = 0, hsum = 0;
        for (int j = 0; j < k; j++) {
            p[j] = exp(-beta * (dist[j] - d0));
            sum += p[j];
            hsum += beta * (dist[j] - d0) * p[j];
        }
        double H = log(sum) + hsum / sum;
        if (fabs(H - target) < 1e-5) break;
        if (H > target) {
            lo = beta;
            beta = isinf(hi) ? beta * 2 : 0.5 * (beta + hi);
        } else {
            hi = beta;
            beta = 0.5 * (beta + lo);
        }
    }
    double sum = 0;
    for (int j = 0; j < k; j++) sum += p[j];
    for (int j = 0; j < k; j++) p[j] /= sum;
}

typedef struct {
    int32_t j;
    double v;
} entry;

static int entry_cmp(const void *a, const void *b) {
    const entry *p = a, *q = b;
    return p->j < q->j ? -1 : p->j > q->j;
}

/* P = (C + C^T) / 2n from the conditional affinities C (n, k) on nbr (n, k). */
static ct_status symmetrize(csr *P, const int32_t *nbr, const double *cond, int64_t n, int k) {
    int64_t *cnt = calloc((size_t)n + 1, sizeof(int64_t));
    if (!cnt) return CT_ERR_NOMEM;
    for (int64_t i = 0; i < n; i++)
        for (int j = 0; j < k; j++) cnt[i + 1]++, cnt[nbr[i * k + j] + 1]++;
    for (int64_t i = 0; i < n; i++) cnt[i + 1] += cnt[i];
    entry *e = malloc((size_t)cnt[n] * sizeof(entry));
    int64_t *fill = malloc((size_t)n * sizeof(int64_t));
    P->rowptr = malloc(((size_t)n + 1) * sizeof(int64_t));
    P->col = malloc((size_t)cnt[n] * sizeof(int32_t));
    P->val = malloc((size_t)cnt[n] * sizeof(double));
    if (!e || !fill || !P->rowptr || !P->col || !P->val) {
        free(cnt), free(e), free(fill);
        return CT_ERR_NOMEM;
    }
    memcpy(fill, cnt, (size_t)n * sizeof(int64_t));
    for (int64_t i = 0; i < n; i++)
        for (int j = 0; j < k; j++) {
            int32_t t = nbr[i * k + j];
            double v = cond[i * k + j] / (2.0 * (double)n);
            e[fill[i]++] = (entry){t, v};
            e[fill[t]++] = (entry){(int32_t)i, v};
        }
    int64_t nnz = 0;
    P->rowptr[0] = 0;
    for (int64_t i = 0; i < n; i++) {
        entry *row = e + cnt[i];
        int64_t len = cnt[i + 1] - cnt[i];
        /* sorting by column fixes the summation order of duplicates (i <-> j) */
        qsort(row, (size_t)len, sizeof(entry), entry_cmp);
        for (int64_t a = 0; a < len; a++) {
            if (nnz > P->rowptr[i] && P->col[nnz - 1] == row[a].j) {
                P->val[nnz - 1] += row[a].v;
            } else {
                P->col[nnz] = row[a].j;
                P->val[nnz++] = row[a].v;
            }
        }
        P->rowptr[i + 1] = nnz;
    }
    free(cnt), free(e), free(fill);
    return CT_OK;
}

/* Quadtree over the points, each node a contiguous range of a permutation of them. */
typedef struct {
    double cx, cy;        /* centre of mass */
    double width;         /* side of the square cell */
    int64_t start, count; /* range in the permutation */
    int32_t child[4];     /* -1: none */
    int leaf;             /* no children: its points are summed one by one */
} qnode;

typedef struct {
    qnode *node;
    int64_t nnodes, cap;
    int64_t *perm;
    const double *Y;
} qtree;

/* Builds the node for perm[start, start + count) in the square cell at (x0, y0)
 * of side w; returns its index, -1 when out of memory. */
static int64_t tree_build(qtree *t, int64_t start, int64_t count, double x0, double y0, double w, int depth) {
    if (t->nnodes == t->cap) {
        qnode *nn = realloc(t->node, (size_t)t->cap * 2 * sizeof(qnode));
        if (!nn) return -1;
        t->node = nn;
        t->cap *= 2;
    }
    int64_t id = t->nnodes++;
    qnode *q = &t->node[id];
    double sx = 0, sy = 0;
    for (int64_t a = start; a < start + count; a++) sx += t->Y[2 * t->perm[a]], sy += t->Y[2 * t->perm[a] + 1];
    q->cx = sx / (double)count;
    q->cy = sy / (double)count;
    q->width = w;
    q->start = start;
    q->count = count;
    for (int c = 0; c < 4; c++) q->child[c] = -1;
    /* leaf: one point, or many at (nearly) one place (depth <= 40 bounds the
     * traversal stack: at most 3 siblings wait per level) */
    q->leaf = count == 1 || depth >= 40;
    if (q->leaf) return id;
    double mx = x0 + w / 2, my = y0 + w / 2;
    /* partition the range into the quadrants (y low/high, then x low/high) */
    int64_t *p = t->perm + start, lo = 0, hi = count;
    while (lo < hi) {
        if (t->Y[2 * p[lo] + 1] < my) lo++;
        else {
            int64_t tmp = p[lo];
            p[lo] = p[--hi];
            p[hi] = tmp;
        }
    }
    int64_t split_y = lo, bounds[5];
    bounds[0] = 0, bounds[2] = split_y, bounds[4] = count;
    for (int half = 0; half < 2; half++) {
        int64_t a = bounds[2 * half], b = bounds[2 * half + 2];
        while (a < b) {
            if (t->Y[2 * p[a]] < mx) a++;
            else {
                int64_t tmp = p[a];
                p[a] = p[--b];
                p[b] = tmp;
            }
        }
        bounds[2 * half + 1] = a;
    }
    for (int c = 0; c < 4; c++) {
        int64_t cnt = bounds[c + 1] - bounds[c];
        if (!cnt) continue;
        double cx0 = (c & 1) ? mx : x0, cy0 = (c & 2) ? my : y0;
        int64_t ch = tree_build(t, start + bounds[c], cnt, cx0, cy0, w / 2, depth + 1);
        if (ch < 0) return -1;
        t->node[id].child[c] = (int32_t)ch; /* t->node may have moved: no pointer kept across the call */
    }
    return id;
}

/* Repulsion on point i: sums over the others of q^2 (y_i - y_j) and of q, the
 * tree walked depth-first in child order with an explicit stack (a fixed order:
 * the same sums at any thread count). */
static void repulse(const qtree *t, int64_t i, double yi0, double yi1, double theta2, double *fx, double *fy,
                    double *z) {
    int32_t stack[4 * 64 + 8];
    int sp = 0;
    double sx = 0, sy = 0, sz = 0;
    stack[sp++] = 0;
    while (sp) {
        const qnode *q = &t->node[stack[--sp]];
        double dx = yi0 - q->cx, dy = yi1 - q->cy, d2 = dx * dx + dy * dy;
        if (q->leaf) {
            for (int64_t a = q->start; a < q->start + q->count; a++) {
                int64_t j = t->perm[a];
                if (j == i) continue;
                double ex = yi0 - t->Y[2 * j], ey = yi1 - t->Y[2 * j + 1], qq = 1.0 / (1.0 + ex * ex + ey * ey);
                sz += qq;
                sx += qq * qq * ex;
                sy += qq * qq * ey;
            }
        } else if (q->width * q->width < theta2 * d2) {
            double qq = 1.0 / (1.0 + d2), m = (double)q->count * qq;
            sz += m;
            sx += m * qq * dx;
            sy += m * qq * dy;
        } else {
            /* pushed in reverse so child 0 is visited first */
            for (int c = 3; c >= 0; c--)
                if (q->child[c] >= 0) stack[sp++] = q->child[c];
        }
    }
    *fx = sx, *fy = sy, *z = sz;
}

ct_status ct_layout_tsne(float *Yout, const float *X, int64_t n, int64_t d, const ct_tsne_config *cfg_in) {
    ct_tsne_config cfg;
    if (cfg_in) cfg = *cfg_in;
    else ct_tsne_config_default(&cfg);
    if (n < 4 || d < 2 || n > INT32_MAX)
        return ct_error(CT_ERR_ARG, "tsne: need at least 4 points of 2 or more features (got %lld x %lld)", (long long)n,
                        (long long)d);
    if (!(cfg.perplexity >= 1) || cfg.iters < 1 || cfg.exag_iters < 0 || !(cfg.exaggeration >= 1) ||
        !(cfg.theta >= 0 && cfg.theta <= 0.7) || cfg.pca_dims < 2)
        return ct_error(CT_ERR_ARG, "tsne: bad settings (perplexity %g >= 1, iters %d >= 1, theta %g in [0, 0.7], "
                                    "exaggeration %g >= 1, pca_dims %d >= 2)",
                        cfg.perplexity, cfg.iters, cfg.theta, cfg.exaggeration, cfg.pca_dims);
    int k = (int)fmin(3.0 * cfg.perplexity, (double)(n - 1));
    double perp = fmin(cfg.perplexity, (double)k / 3.0 > 1 ? (double)k / 3.0 : 1.0);
    int64_t dz = d < cfg.pca_dims ? d : cfg.pca_dims;
    float *Z = ct_alloc((size_t)n * (size_t)dz * sizeof(float));
    int32_t *nbr = malloc((size_t)n * (size_t)k * sizeof(int32_t));
    double *dist = malloc((size_t)n * (size_t)k * sizeof(double));
    double *Y = malloc((size_t)n * 2 * sizeof(double)), *upd = calloc((size_t)n * 2, sizeof(double));
    double *gain = malloc((size_t)n * 2 * sizeof(double)), *att = malloc((size_t)n * 2 * sizeof(double));
    double *rep = malloc((size_t)n * 2 * sizeof(double));
    double *zi = malloc((size_t)n * sizeof(double));
    float *init = ct_alloc((size_t)n * 2 * sizeof(float));
    qtree t = {0};
    t.cap = 2 * n + 64; /* grows when clustered points make chains of one-child cells */
    t.node = malloc((size_t)t.cap * sizeof(qnode));
    t.perm = malloc((size_t)n * sizeof(int64_t));
    csr P = {0};
    ct_status st = CT_OK;
    if (!Z || !nbr || !dist || !Y || !upd || !gain || !att || !rep || !zi || !init || !t.node || !t.perm) {
        st = ct_error(CT_ERR_NOMEM, "tsne: out of memory for %lld points", (long long)n);
        goto out;
    }
    /* reduce, then neighbours and affinities on the reduction */
    if (dz < d) {
        if ((st = ct_layout_pca(Z, NULL, X, n, d, (int)dz))) goto out;
    } else {
        memcpy(Z, X, (size_t)n * (size_t)d * sizeof(float));
        for (size_t i = 0; i < (size_t)n * (size_t)d; i++)
            if (!isfinite(Z[i])) {
                st = ct_error(CT_ERR_NUMERIC, "tsne: value %zu of the input is not finite", i);
                goto out;
            }
    }
    if ((st = knn_exact(nbr, dist, Z, n, dz, k))) goto out;
    {
        double *cond = malloc((size_t)n * (size_t)k * sizeof(double));
        if (!cond) {
            st = CT_ERR_NOMEM;
            goto out;
        }
#pragma omp parallel for schedule(static)
        for (int64_t i = 0; i < n; i++) row_affinities(cond + i * k, dist + i * k, k, perp);
        st = symmetrize(&P, nbr, cond, n, k);
        free(cond);
        if (st) goto out;
    }
    /* PCA start, scaled to standard deviation 1e-4 along the first axis */
    if ((st = ct_layout_pca(init, NULL, Z, n, dz, 2))) goto out;
    {
        double s = 0;
        for (int64_t i = 0; i < n; i++) s += (double)init[2 * i] * init[2 * i];
        s = sqrt(s / (double)n);
        double f = s > 0 ? 1e-4 / s : 1.0;
        for (int64_t i = 0; i < 2 * n; i++) Y[i] = init[i] * f, gain[i] = 1.0;
    }
    double eta = cfg.learning_rate > 0 ? cfg.learning_rate : fmax(200.0, (double)n / 12.0);
    double theta2 = cfg.theta * cfg.theta;
    t.Y = Y;
    for (int it = 0; it < cfg.iters; it++) {
        double ex = it < cfg.exag_iters ? cfg.exaggeration : 1.0, mom = it < cfg.exag_iters ? 0.5 : 0.8;
        /* the tree over the current layout (serial: O(n log n)) */
        double x0 = INFINITY, x1 = -INFINITY, y0 = INFINITY, y1 = -INFINITY;
        for (int64_t i = 0; i < n; i++) {
            x0 = fmin(x0, Y[2 * i]), x1 = fmax(x1, Y[2 * i]);
            y0 = fmin(y0, Y[2 * i + 1]), y1 = fmax(y1, Y[2 * i + 1]);
        }
        if (!isfinite(x0 + x1 + y0 + y1)) {
            st = ct_error(CT_ERR_NUMERIC, "tsne: the layout diverged at step %d", it);
            goto out;
        }
        double w = fmax(x1 - x0, y1 - y0) * (1 + 1e-9) + 1e-300;
        for (int64_t i = 0; i < n; i++) t.perm[i] = i;
        t.nnodes = 0;
        if (tree_build(&t, 0, n, x0, y0, w, 0) < 0) {
            st = ct_error(CT_ERR_NOMEM, "tsne: out of memory for the quadtree");
            goto out;
        }
#pragma omp parallel for schedule(dynamic, 64)
        for (int64_t i = 0; i < n; i++) {
            double fx = 0, fy = 0, z = 0, ax = 0, ay = 0;
            repulse(&t, i, Y[2 * i], Y[2 * i + 1], theta2, &fx, &fy, &z);
            for (int64_t a = P.rowptr[i]; a < P.rowptr[i + 1]; a++) {
                int64_t j = P.col[a];
                double dx = Y[2 * i] - Y[2 * j], dy = Y[2 * i + 1] - Y[2 * j + 1];
                double q = P.val[a] / (1.0 + dx * dx + dy * dy);
                ax += q * dx;
                ay += q * dy;
            }
            att[2 * i] = ax, att[2 * i + 1] = ay;
            rep[2 * i] = fx, rep[2 * i + 1] = fy;
            zi[i] = z;
        }
        double Zs = 0;
        for (int64_t i = 0; i < n; i++) Zs += zi[i];
        if (!(Zs > 0)) Zs = 1e-300;
        for (int64_t i = 0; i < 2 * n; i++) {
            double g = 4.0 * (ex * att[i] - rep[i] / Zs);
            gain[i] = (g > 0) != (upd[i] > 0) ? gain[i] + 0.2 : gain[i] * 0.8;
            if (gain[i] < 0.01) gain[i] = 0.01;
            upd[i] = mom * upd[i] - eta * gain[i] * g;
            Y[i] += upd[i];
        }
        /* keep the layout centred */
        double mx = 0, my = 0;
        for (int64_t i = 0; i < n; i++) mx += Y[2 * i], my += Y[2 * i + 1];
        mx /= (double)n, my /= (double)n;
        for (int64_t i = 0; i < n; i++) Y[2 * i] -= mx, Y[2 * i + 1] -= my;
    }
    for (int64_t i = 0; i < 2 * n; i++) Yout[i] = (float)Y[i];
out:
    ct_free(Z);
    free(nbr), free(dist), free(Y), free(upd), free(gain), free(att), free(rep), free(zi);
    ct_free(init);
    free(t.node), free(t.perm);
    free(P.rowptr), free(P.col), free(P.val);
    return st;
}
