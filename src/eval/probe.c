/* probe.c: linear probe, multinomial logistic regression on frozen features.
 *
 * Features are standardised with the train split's mean and standard deviation,
 * then weights W (D, C) and bias b (C) minimise
 *     f = mean_i CE(softmax(x_i W + b), y_i) + ||W||^2 / (2 C_reg N)
 * (scikit-learn's LogisticRegression objective divided by N) with full-batch
 * L-BFGS and a backtracking Armijo line search. Being convex and full batch, the
 * fit needs no random initialisation and no learning-rate schedule, and it lands
 * where sklearn's lbfgs solver does. The two big products per evaluation (logits
 * and the weight gradient) go through ct_gemm; everything the optimizer sees is
 * double, and every reduction runs in a fixed order, so the result is the same at
 * any thread count. */
#include "contrast/eval.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* Loops over fewer elements than this stay on one thread. */
#define PAR_MIN 65536

void ct_probe_config_default(ct_probe_config *cfg) {
    cfg->C = 1.0;
    cfg->max_iter = 500;
    cfg->tol = 1e-5;
    cfg->history = 10;
}

typedef struct {
    const float *X;     /* (N, D) standardised train features */
    const int32_t *y;   /* (N) */
    int64_t N, D;
    int C;
    double lam;         /* L2 coefficient on W: 1 / (C_reg N) */
    float *Wf;          /* (D, C) float copy of W for the GEMMs */
    float *L;           /* (N, C) logits, then dL/dlogits * N */
    float *GW;          /* (D, C) */
    double *rowloss;    /* (N) */
    int evals;
} problem;

/* f(theta) and its gradient; theta = [W (D*C, row-major), b (C)]. */
static double evaluate(problem *p, const double *theta, double *grad) {
    int64_t N = p->N, D = p->D;
    int C = p->C;
    const double *b = theta + D * C;
    p->evals++;
    for (int64_t i = 0; i < D * C; i++) p->Wf[i] = (float)theta[i];
    ct_gemm(0, 0, N, C, D, 1.0f, p->X, D, p->Wf, C, 0.0f, p->L, C);
#pragma omp parallel for schedule(static) if (N * C >= PAR_MIN)
    for (int64_t i = 0; i < N; i++) {
        float *z = p->L + i * C;
        int yi = p->y[i];
        double zmax = -INFINITY, s = 0.0;
        for (int c = 0; c < C; c++) zmax = fmax(zmax, (double)z[c] + b[c]);
        for (int c = 0; c < C; c++) s += exp((double)z[c] + b[c] - zmax);
        double lse = zmax + log(s);
        p->rowloss[i] = lse - ((double)z[yi] + b[yi]);
        for (int c = 0; c < C; c++) z[c] = (float)(exp((double)z[c] + b[c] - lse) - (c == yi));
    }
    double f = 0.0;
    for (int64_t i = 0; i < N; i++) f += p->rowloss[i];
    f /= (double)N;
    double reg = 0.0;
    for (int64_t i = 0; i < D * C; i++) reg += theta[i] * theta[i];
    f += 0.5 * p->lam * reg;
    ct_gemm(1, 0, D, C, N, 1.0f / (float)N, p->X, D, p->L, C, 0.0f, p->GW, C);
    for (int64_t i = 0; i < D * C; i++) grad[i] = (double)p->GW[i] + p->lam * theta[i];
    double *gb = grad + D * C;
    for (int c = 0; c < C; c++) gb[c] = 0.0;
    for (int64_t i = 0; i < N; i++)
        for (int c = 0; c < C; c++) gb[c] += p->L[i * C + c];
    for (int c = 0; c < C; c++) gb[c] /= (double)N;
    return f;
}

static double dot(const double *a, const double *b, int64_t n) {
    double s = 0.0;
    for (int64_t i = 0; i < n; i++) s += a[i] * b[i];
    return s;
}

static double max_abs(const double *a, int64_t n) {
    double m = 0.0;
    for (int64_t i = 0; i < n; i++) m = fabs(a[i]) > m ? fabs(a[i]) : m;
    return m;
}

/* Minimises p's objective from theta = 0; returns the final value and iterations. */
static double lbfgs(problem *p, double *theta, int64_t P, const ct_probe_config *cfg, double *work, int *iters) {
    int M = cfg->history;
    double *g = work, *gn = g + P, *d = gn + P, *xn = d + P, *S = xn + P, *Y = S + (size_t)M * P;
    double *rho = Y + (size_t)M * P, *alpha = rho + M;
    memset(theta, 0, (size_t)P * sizeof(double));
    double f = evaluate(p, theta, g);
    int npairs = 0, newest = -1, it = 0;
    for (; it < cfg->max_iter; it++) {
        if (max_abs(g, P) <= cfg->tol) break;
        /* two-loop recursion: d = -H g */
        for (int64_t i = 0; i < P; i++) d[i] = g[i];
        for (int k = 0; k < npairs; k++) {
            int j = (newest - k + M) % M;
            alpha[j] = rho[j] * dot(S + (size_t)j * P, d, P);
            for (int64_t i = 0; i < P; i++) d[i] -= alpha[j] * Y[(size_t)j * P + i];
        }
        double gamma = 1.0;
        if (npairs > 0) {
            const double *s = S + (size_t)newest * P, *y = Y + (size_t)newest * P;
            gamma = dot(s, y, P) / dot(y, y, P);
        }
        for (int64_t i = 0; i < P; i++) d[i] *= gamma;
        for (int k = npairs - 1; k >= 0; k--) {
            int j = (newest - k + M) % M;
            double beta = rho[j] * dot(Y + (size_t)j * P, d, P);
            for (int64_t i = 0; i < P; i++) d[i] += (alpha[j] - beta) * S[(size_t)j * P + i];
        }
        for (int64_t i = 0; i < P; i++) d[i] = -d[i];
        double gd = dot(g, d, P);
        if (!(gd < 0.0)) { /* not a descent direction (numerical trouble): restart */
            for (int64_t i = 0; i < P; i++) d[i] = -g[i];
            gd = -dot(g, g, P);
            npairs = 0;
        }
        /* first step: scale so the move has unit length, as there is no curvature yet */
        double t = npairs == 0 ? fmin(1.0, 1.0 / sqrt(dot(d, d, P))) : 1.0;
        double fn = f;
        int ok = 0;
        for (int ls = 0; ls < 20; ls++) {
            for (int64_t i = 0; i < P; i++) xn[i] = theta[i] + t * d[i];
            fn = evaluate(p, xn, gn);
            if (fn <= f + 1e-4 * t * gd) { ok = 1; break; }
            t *= 0.5;
        }
        if (!ok) break; /* no decrease possible at float precision: converged */
        int j = (newest + 1) % M;
        double *s = S + (size_t)j * P, *y = Y + (size_t)j * P;
        for (int64_t i = 0; i < P; i++) s[i] = xn[i] - theta[i], y[i] = gn[i] - g[i];
        double sy = dot(s, y, P);
        if (sy > 1e-12 * dot(y, y, P)) { /* keep only pairs with positive curvature */
            rho[j] = 1.0 / sy;
            newest = j;
            if (npairs < M) npairs++;
        }
        memcpy(theta, xn, (size_t)P * sizeof(double));
        memcpy(g, gn, (size_t)P * sizeof(double));
        double df = f - fn;
        f = fn;
        /* The logits are float, so f carries ~1e-9 relative noise and the gradient
         * ~1e-6 absolute: progress below that is noise, and chasing it only costs
         * line-search evaluations without changing any prediction. */
        if (df <= 1e-9 * fmax(1.0, fabs(f))) { it++; break; }
    }
    *iters = it;
    return f;
}

/* Standardise src (n, D) into dst with per-column mean and inverse std. */
static void standardise(float *dst, const float *src, int64_t n, int64_t D, const double *mean, const double *inv) {
#pragma omp parallel for schedule(static) if (n * D >= PAR_MIN)
    for (int64_t i = 0; i < n; i++)
        for (int64_t j = 0; j < D; j++) dst[i * D + j] = (float)(((double)src[i * D + j] - mean[j]) * inv[j]);
}

/* Fraction of rows whose argmax logit (lowest class on ties) is the label. */
static double accuracy(const float *X, const int32_t *y, int64_t n, int64_t D, int C, const float *Wf, const double *b,
                       float *logits) {
    ct_gemm(0, 0, n, C, D, 1.0f, X, D, Wf, C, 0.0f, logits, C);
    int64_t hit = 0;
    for (int64_t i = 0; i < n; i++) {
        int best = 0;
        double bv = -INFINITY;
        for (int c = 0; c < C; c++) {
            double v = (double)logits[i * C + c] + b[c];
            if (v > bv) bv = v, best = c;
        }
        hit += best == y[i];
    }
    return (double)hit / (double)n;
}

ct_status ct_linear_probe(const float *train_feat, const int32_t *train_labels, int64_t ntr,
                          const float *test_feat, const int32_t *test_labels, int64_t nte, int64_t D,
                          int num_classes, const ct_probe_config *cfg_in, ct_probe_result *out) {
    ct_probe_config cfg;
    if (cfg_in) cfg = *cfg_in;
    else ct_probe_config_default(&cfg);
    if (ntr <= 0 || nte <= 0 || D <= 0 || num_classes < 2 || !out || !(cfg.C > 0) || cfg.max_iter < 0 ||
        cfg.history < 1 || !(cfg.tol >= 0))
        return ct_error(CT_ERR_ARG, "linear probe: bad arguments (ntr %lld, nte %lld, D %lld, classes %d, C %g)",
                        (long long)ntr, (long long)nte, (long long)D, num_classes, cfg.C);
    for (int64_t i = 0; i < ntr; i++)
        if (train_labels[i] < 0 || train_labels[i] >= num_classes)
            return ct_error(CT_ERR_ARG, "linear probe: train label %d at %lld outside [0, %d)", train_labels[i],
                            (long long)i, num_classes);
    for (int64_t i = 0; i < nte; i++)
        if (test_labels[i] < 0 || test_labels[i] >= num_classes)
            return ct_error(CT_ERR_ARG, "linear probe: test label %d at %lld outside [0, %d)", test_labels[i],
                            (long long)i, num_classes);
    for (int64_t i = 0; i < ntr * D; i++)
        if (!isfinite(train_feat[i])) return ct_error(CT_ERR_NUMERIC, "linear probe: train feature %lld not finite", (long long)i);
    for (int64_t i = 0; i < nte * D; i++)
        if (!isfinite(test_feat[i])) return ct_error(CT_ERR_NUMERIC, "linear probe: test feature %lld not finite", (long long)i);

    int C = num_classes;
    int64_t P = D * C + C, M = cfg.history;
    int64_t nmax = ntr > nte ? ntr : nte;
    size_t bx, bt, bl, bw;
    ct_status st = CT_OK;
    if (ct_size_mul((size_t)ntr, (size_t)D * sizeof(float), &bx) || ct_size_mul((size_t)nte, (size_t)D * sizeof(float), &bt) ||
        ct_size_mul((size_t)nmax, (size_t)C * sizeof(float), &bl) ||
        ct_size_mul((size_t)(4 + 2 * M) * (size_t)P + 2 * (size_t)M, sizeof(double), &bw))
        return ct_error(CT_ERR_NOMEM, "linear probe: sizes overflow");
    float *Xtr = ct_alloc(bx), *Xte = ct_alloc(bt), *L = ct_alloc(bl);
    float *Wf = ct_alloc((size_t)D * C * sizeof(float)), *GW = ct_alloc((size_t)D * C * sizeof(float));
    double *rowloss = ct_alloc((size_t)ntr * sizeof(double)), *theta = ct_alloc((size_t)P * sizeof(double));
    double *work = ct_alloc(bw), *mean = ct_alloc((size_t)D * sizeof(double)), *inv = ct_alloc((size_t)D * sizeof(double));
    if (!Xtr || !Xte || !L || !Wf || !GW || !rowloss || !theta || !work || !mean || !inv) {
        st = ct_error(CT_ERR_NOMEM, "linear probe: out of memory for %lld x %lld features", (long long)ntr, (long long)D);
        goto done;
    }
    /* two-pass mean and variance in double over the train split */
    for (int64_t i = 0; i < ntr; i++)
        for (int64_t j = 0; j < D; j++) mean[j] += train_feat[i * D + j];
    for (int64_t j = 0; j < D; j++) mean[j] /= (double)ntr;
    for (int64_t i = 0; i < ntr; i++)
        for (int64_t j = 0; j < D; j++) {
            double dv = train_feat[i * D + j] - mean[j];
            inv[j] += dv * dv;
        }
    for (int64_t j = 0; j < D; j++) {
        double sd = sqrt(inv[j] / (double)ntr);
        inv[j] = sd > 1e-12 ? 1.0 / sd : 1.0; /* constant feature: leave it at zero */
    }
    standardise(Xtr, train_feat, ntr, D, mean, inv);
    standardise(Xte, test_feat, nte, D, mean, inv);

    problem p = {Xtr, train_labels, ntr, D, C, 1.0 / (cfg.C * (double)ntr), Wf, L, GW, rowloss, 0};
    int iters = 0;
    out->loss = lbfgs(&p, theta, P, &cfg, work, &iters);
    out->iters = iters;
    out->evals = p.evals;
    for (int64_t i = 0; i < D * C; i++) Wf[i] = (float)theta[i];
    out->train_top1 = accuracy(Xtr, train_labels, ntr, D, C, Wf, theta + D * C, L);
    out->test_top1 = accuracy(Xte, test_labels, nte, D, C, Wf, theta + D * C, L);
done:
    ct_free(Xtr);
    ct_free(Xte);
    ct_free(L);
    ct_free(Wf);
    ct_free(GW);
    ct_free(rowloss);
    ct_free(theta);
    ct_free(work);
    ct_free(mean);
    ct_free(inv);
    return st;
}
