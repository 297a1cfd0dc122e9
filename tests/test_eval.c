/* test_eval.c: kNN on a hand-computed example (where the temperature flips the
 * answer), against a plain reference implementation, on clustered (near 100%) and
 * random-label (near chance) data; linear probe on separable vs random labels and
 * at its optimum; retrieval metrics on a hand-computed example; alignment and
 * uniformity against direct formulas; ZCA whitening against a covariance computed
 * in the test; thread-count independence. */
#include "harness.h"

/* Gaussian clusters: class c has a random centre; rows = centre + noise * N(0, 1). */
static void clustered(float *x, int32_t *y, int64_t n, int64_t D, int C, float noise, uint64_t seed,
                      uint64_t centre_seed) {
    ct_rng rc = ct_rng_make(ct_mix64(centre_seed));
    float *centre = malloc((size_t)(C * D) * 4);
    for (int64_t i = 0; i < C * D; i++) centre[i] = ct_rng_normal(&rc);
    ct_rng r = ct_rng_make(ct_mix64(seed));
    for (int64_t i = 0; i < n; i++) {
        y[i] = (int32_t)ct_rng_below(&r, (uint64_t)C);
        for (int64_t j = 0; j < D; j++) x[i * D + j] = centre[y[i] * D + j] + noise * ct_rng_normal(&r);
    }
    free(centre);
}

static void random_labels(int32_t *y, int64_t n, int C, uint64_t seed) {
    ct_rng r = ct_rng_make(ct_mix64(seed));
    for (int64_t i = 0; i < n; i++) y[i] = (int32_t)ct_rng_below(&r, (uint64_t)C);
}

static void test_knn_hand(void) {
    /* train rows (already unit length except the scaled one) and labels */
    float tr[5][2] = {{1, 0}, {4, 3} /* = 5 * (0.8, 0.6) */, {0.6f, 0.8f}, {0, 1}, {-1, 0}};
    int32_t ytr[5] = {0, 1, 1, 0, 0};
    float te[1][2] = {{2, 0}};
    int32_t yte[1] = {0};
    double t1, t5;
    /* k = 3 neighbours: sims 1 (class 0), 0.8 and 0.6 (class 1).
     * T = 1:   class 0: e^1 = 2.72 < class 1: e^0.8 + e^0.6 = 4.05  -> wrong
     * T = 0.1: class 0: e^10 = 22026 > class 1: e^8 + e^6 = 3384   -> right */
    CHECK_OK(ct_knn_eval(&tr[0][0], ytr, 5, &te[0][0], yte, 1, 2, 2, 3, 1.0f, &t1, &t5));
    CHECK(t1 == 0.0 && t5 == 1.0, "T=1: top1 %g (want 0), top5 %g (want 1)", t1, t5);
    CHECK_OK(ct_knn_eval(&tr[0][0], ytr, 5, &te[0][0], yte, 1, 2, 2, 3, 0.1f, &t1, NULL));
    CHECK(t1 == 1.0, "T=0.1: top1 %g (want 1)", t1);
    /* k = 1: the nearest row alone decides; k larger than ntr is clamped */
    CHECK_OK(ct_knn_eval(&tr[0][0], ytr, 5, &te[0][0], yte, 1, 2, 2, 1, 1.0f, &t1, NULL));
    CHECK(t1 == 1.0, "k=1: top1 %g", t1);
    CHECK_OK(ct_knn_eval(&tr[0][0], ytr, 5, &te[0][0], yte, 1, 2, 2, 1000, 1.0f, &t1, NULL));
    /* all 5: class 0: e^1 + e^0 + e^-1 = 4.09 > class 1: 4.05 -> right */
    CHECK(t1 == 1.0, "k clamped to 5: top1 %g", t1);
    /* a tiny temperature must not overflow: exp(1/1e-3) is inf in double, the
     * nearest neighbour must simply dominate */
    float te2[2] = {1.6f, 1.2f}; /* nearest: row 1 (sim 1, class 1), row 2 (0.96, class 1), row 0 (0.8) */
    int32_t yte2[1] = {1};
    CHECK_OK(ct_knn_eval(&tr[0][0], ytr, 5, te2, yte2, 1, 2, 2, 3, 1e-3f, &t1, NULL));
    CHECK(t1 == 1.0, "T=1e-3: top1 %g (want 1; inf == inf votes would tie to class 0)", t1);
    int32_t bad[1] = {2};
    CHECK(ct_knn_eval(&tr[0][0], ytr, 5, &te[0][0], bad, 1, 2, 2, 3, 0.1f, &t1, NULL) == CT_ERR_ARG,
          "label out of range refused");
}

/* Plain reference: double similarities, full sort by (sim desc, index asc). */
static void knn_ref(const float *tr, const int32_t *ytr, int64_t ntr, const float *te, const int32_t *yte,
                    int64_t nte, int64_t D, int C, int k, double T, double *top1, double *top5) {
    double *sim = malloc((size_t)ntr * 8), *votes = malloc((size_t)C * 8);
    int64_t *ord = malloc((size_t)ntr * 8);
    int64_t c1 = 0, c5 = 0;
    for (int64_t q = 0; q < nte; q++) {
        double nq = 0;
        for (int64_t d = 0; d < D; d++) nq += (double)te[q * D + d] * te[q * D + d];
        for (int64_t j = 0; j < ntr; j++) {
            double s = 0, nj = 0;
            for (int64_t d = 0; d < D; d++) s += (double)te[q * D + d] * tr[j * D + d], nj += (double)tr[j * D + d] * tr[j * D + d];
            sim[j] = s / sqrt(nq * nj);
            ord[j] = j;
        }
        for (int64_t a = 1; a < ntr; a++) /* insertion sort, stable: ties keep the lower index first */
            for (int64_t b = a; b > 0 && sim[ord[b]] > sim[ord[b - 1]]; b--) {
                int64_t t = ord[b]; ord[b] = ord[b - 1]; ord[b - 1] = t;
            }
        memset(votes, 0, (size_t)C * 8);
        for (int j = 0; j < k; j++) votes[ytr[ord[j]]] += exp(sim[ord[j]] / T);
        int ahead = 0;
        for (int c = 0; c < C; c++) ahead += votes[c] > votes[yte[q]] || (votes[c] == votes[yte[q]] && c < yte[q]);
        c1 += ahead == 0, c5 += ahead < 5;
    }
    *top1 = (double)c1 / nte, *top5 = (double)c5 / nte;
    free(sim), free(votes), free(ord);
}

static void test_knn_data(void) {
    int64_t ntr = 2000, nte = 600, D = 32;
    int C = 10;
    float *xtr = malloc((size_t)(ntr * D) * 4), *xte = malloc((size_t)(nte * D) * 4);
    int32_t *ytr = malloc((size_t)ntr * 4), *yte = malloc((size_t)nte * 4);
    clustered(xtr, ytr, ntr, D, C, 0.5f, 1, 99);
    clustered(xte, yte, nte, D, C, 0.5f, 2, 99);
    double t1, t5, r1, r5;
    CHECK_OK(ct_knn_eval(xtr, ytr, ntr, xte, yte, nte, D, C, 200, 0.1f, &t1, &t5));
    CHECK(t1 > 0.98 && t5 >= t1, "clustered data: kNN top1 %.4f (want > 0.98), top5 %.4f", t1, t5);

    /* same features, labels unrelated to them: chance is 0.1; 600 test rows give
     * a standard deviation of 0.012, so [0.05, 0.15] is about 4 sigma */
    random_labels(ytr, ntr, C, 3);
    random_labels(yte, nte, C, 4);
    CHECK_OK(ct_knn_eval(xtr, ytr, ntr, xte, yte, nte, D, C, 200, 0.1f, &t1, &t5));
    CHECK(t1 > 0.05 && t1 < 0.15, "random labels: kNN top1 %.4f should be near chance 0.1", t1);
    CHECK(t5 > 0.40 && t5 < 0.60, "random labels: kNN top5 %.4f should be near 0.5", t5);

    /* against the plain reference on a smaller noisy problem, and at 1 vs 2 threads */
    int64_t sn = 300, sq = 120;
    clustered(xtr, ytr, sn, 16, 5, 2.0f, 5, 77);
    clustered(xte, yte, sq, 16, 5, 2.0f, 6, 77);
    knn_ref(xtr, ytr, sn, xte, yte, sq, 16, 5, 20, 0.1, &r1, &r5);
    ct_set_threads(1);
    CHECK_OK(ct_knn_eval(xtr, ytr, sn, xte, yte, sq, 16, 5, 20, 0.1f, &t1, &t5));
    ct_set_threads(2);
    double u1, u5;
    CHECK_OK(ct_knn_eval(xtr, ytr, sn, xte, yte, sq, 16, 5, 20, 0.1f, &u1, &u5));
    ct_set_threads(0);
    CHECK(t1 == r1 && t5 == r5, "kNN %.4f/%.4f vs reference %.4f/%.4f", t1, t5, r1, r5);
    CHECK(t1 == u1 && t5 == u5, "kNN differs between 1 and 2 threads");
    CHECK(r1 > 0.3 && r1 < 0.95, "the reference case should be neither trivial nor chance: %.3f", r1);
    free(xtr), free(xte), free(ytr), free(yte);
}

static void test_probe(void) {
    int64_t ntr = 3000, nte = 1000, D = 64;
    int C = 10;
    float *xtr = malloc((size_t)(ntr * D) * 4), *xte = malloc((size_t)(nte * D) * 4);
    int32_t *ytr = malloc((size_t)ntr * 4), *yte = malloc((size_t)nte * 4);
    /* noise 1.5 against unit centres in 64 dims: separable by a linear map, not trivially */
    clustered(xtr, ytr, ntr, D, C, 1.5f, 11, 123);
    clustered(xte, yte, nte, D, C, 1.5f, 12, 123);
    /* an affine distortion the standardisation must undo */
    for (int64_t i = 0; i < ntr * D; i++) xtr[i] = 100.0f + 50.0f * xtr[i];
    for (int64_t i = 0; i < nte * D; i++) xte[i] = 100.0f + 50.0f * xte[i];
    ct_probe_result res, res2;
    CHECK_OK(ct_linear_probe(xtr, ytr, ntr, xte, yte, nte, D, C, NULL, &res));
    CHECK(res.test_top1 > 0.95, "separable clusters: probe test top1 %.4f (want > 0.95)", res.test_top1);
    CHECK(res.train_top1 >= res.test_top1 - 0.02, "train %.4f vs test %.4f", res.train_top1, res.test_top1);
    CHECK(res.iters > 0 && res.iters < 500 && isfinite(res.loss), "converged in %d iterations, loss %g", res.iters,
          res.loss);
    /* thread independence */
    ct_set_threads(1);
    CHECK_OK(ct_linear_probe(xtr, ytr, ntr, xte, yte, nte, D, C, NULL, &res2));
    ct_set_threads(0);
    CHECK(res.loss == res2.loss && res.test_top1 == res2.test_top1, "probe differs between thread counts");

    /* random labels: the test split is at chance (sd 0.0095 for 1000 rows) */
    random_labels(ytr, ntr, C, 13);
    random_labels(yte, nte, C, 14);
    CHECK_OK(ct_linear_probe(xtr, ytr, ntr, xte, yte, nte, D, C, NULL, &res));
    CHECK(res.test_top1 > 0.06 && res.test_top1 < 0.14, "random labels: probe test top1 %.4f near 0.1",
          res.test_top1);

    /* optimality: on a tiny problem with strong regularisation the objective
     * cannot be lowered by nudging any weight (checked through the loss by
     * comparing against runs with fewer iterations) */
    ct_probe_config cfg;
    ct_probe_config_default(&cfg);
    cfg.C = 0.01;
    clustered(xtr, ytr, 400, 8, 3, 1.0f, 15, 5);
    clustered(xte, yte, 200, 8, 3, 1.0f, 16, 5);
    CHECK_OK(ct_linear_probe(xtr, ytr, 400, xte, yte, 200, 8, 3, &cfg, &res));
    cfg.max_iter = 3;
    CHECK_OK(ct_linear_probe(xtr, ytr, 400, xte, yte, 200, 8, 3, &cfg, &res2));
    CHECK(res.loss <= res2.loss && res.loss < log(3.0), "loss %g after convergence vs %g after 3 iterations",
          res.loss, res2.loss);
    free(xtr), free(xte), free(ytr), free(yte);
}

static void test_retrieval(void) {
    float g[4][2] = {{1, 0}, {0.8f, 0.6f}, {0, 1}, {-1, 0}};
    int32_t yg[4] = {0, 1, 1, 0};
    float q[2][2] = {{1, 0.1f}, {0, 1}};
    int32_t yq[2] = {1, 0};
    int ks[3] = {1, 2, 3};
    double rec[3], map;
    /* q0 ranks g0(0) g1(1) g2(1) g3: first hit at rank 2; AP@3 = (1/2 + 2/3) / 2 = 7/12
     * q1 ranks g2(1) g1(1) g0(0) g3(0) (tie at 0 -> lower index): hit at rank 3; AP@3 = (1/3) / 2 */
    CHECK_OK(ct_eval_retrieval(&g[0][0], yg, 4, &q[0][0], yq, 2, 2, 0, ks, 3, rec, 3, &map));
    CHECK(rec[0] == 0.0 && rec[1] == 0.5 && rec[2] == 1.0, "recall@1,2,3 = %g %g %g (want 0 0.5 1)", rec[0], rec[1],
          rec[2]);
    CHECK(fabs(map - 0.375) < 1e-12, "mAP@3 %.6f (want 0.375)", map);

    /* leave-one-out on clustered data: near-perfect recall */
    int64_t n = 500, D = 16;
    float *x = malloc((size_t)(n * D) * 4);
    int32_t *y = malloc((size_t)n * 4);
    clustered(x, y, n, D, 5, 0.3f, 21, 22);
    int k1 = 1;
    CHECK_OK(ct_eval_retrieval(x, y, n, x, y, n, D, 1, &k1, 1, rec, 10, &map));
    CHECK(rec[0] > 0.99 && map > 0.99, "clustered leave-one-out: R@1 %.4f mAP@10 %.4f", rec[0], map);
    /* without exclusion each query finds itself first */
    random_labels(y, n, 5, 23);
    CHECK_OK(ct_eval_retrieval(x, y, n, x, y, n, D, 0, &k1, 1, rec, 0, NULL));
    CHECK(rec[0] == 1.0, "self-retrieval R@1 %.4f", rec[0]);
    CHECK_OK(ct_eval_retrieval(x, y, n, x, y, n, D, 1, &k1, 1, rec, 0, NULL));
    CHECK(rec[0] > 0.1 && rec[0] < 0.3, "random labels leave-one-out R@1 %.4f near 0.2", rec[0]);
    free(x), free(y);
}

static void test_align_uniform(void) {
    float two[2][2] = {{3, 0}, {1, 0}};
    int32_t same[2] = {4, 4}, diff[2] = {0, 1};
    double a, u;
    CHECK_OK(ct_eval_align_uniform(&two[0][0], same, 2, 2, 100, 1, &a, &u));
    CHECK(fabs(a) < 1e-7 && fabs(u) < 1e-7, "identical directions: align %g uniform %g (want 0, 0)", a, u);
    float opp[2][2] = {{1, 0}, {-2, 0}};
    CHECK_OK(ct_eval_align_uniform(&opp[0][0], diff, 2, 2, 100, 1, &a, &u));
    CHECK(isnan(a) && fabs(u + 8.0) < 1e-6, "opposite points: align NaN (got %g), uniform -8 (got %g)", a, u);

    /* direct O(n^2) formulas in double on random data */
    int64_t n = 60, D = 5;
    float *x = malloc((size_t)(n * D) * 4);
    int32_t *y = malloc((size_t)n * 4);
    fill_uniform(x, (size_t)(n * D), 31, -1, 1);
    random_labels(y, n, 3, 32);
    double sa = 0, su = 0;
    int64_t np = 0;
    for (int64_t i = 0; i < n; i++)
        for (int64_t j = i + 1; j < n; j++) {
            double ni = 0, nj = 0, d2 = 0;
            for (int64_t d = 0; d < D; d++) ni += (double)x[i * D + d] * x[i * D + d], nj += (double)x[j * D + d] * x[j * D + d];
            for (int64_t d = 0; d < D; d++) {
                double t = x[i * D + d] / sqrt(ni) - x[j * D + d] / sqrt(nj);
                d2 += t * t;
            }
            su += exp(-2 * d2);
            if (y[i] == y[j]) sa += d2, np++;
        }
    double ra = sa / np, ru = log(su / (n * (n - 1) / 2.0));
    CHECK_OK(ct_eval_align_uniform(x, y, n, D, 1000, 1, &a, &u));
    CHECK(fabs(a - ra) < 1e-5 && fabs(u - ru) < 1e-5, "align %.7f vs %.7f, uniform %.7f vs %.7f (tol 1e-5)", a, ra, u,
          ru);
    double a2, u2, a3, u3;
    CHECK_OK(ct_eval_align_uniform(x, y, n, D, 20, 7, &a2, &u2));
    CHECK_OK(ct_eval_align_uniform(x, y, n, D, 20, 7, &a3, &u3));
    CHECK(a2 == a3 && u2 == u3 && u2 != u, "subset is deterministic for a seed and differs from the full set");
    free(x), free(y);
}

/* Whitening: on correlated features with scales from 0.1 to 100 and one constant
 * feature, W (S + eps lmax I) W = I against a covariance computed here in double;
 * whitened rows have zero mean and identity covariance; the same bits at 1 and 2
 * threads; bad input is an error. Then its purpose: classes told apart only along a
 * low-variance direction, drowned by a high-variance nuisance for cosine kNN,
 * separate once whitened. */
static void test_whiten(void) {
    const int64_t N = 3000, D = 12;
    float *x = malloc((size_t)(N * D) * 4), *A = malloc((size_t)(D * D) * 4);
    float mean[12], W[144], W2[144];
    ct_rng r = ct_rng_make(ct_mix64(41));
    for (int64_t i = 0; i < D * D; i++) A[i] = ct_rng_normal(&r);
    for (int64_t i = 0; i < N; i++) {
        float z[12];
        for (int64_t k = 0; k < D; k++) z[k] = ct_rng_normal(&r) * (float)pow(10.0, -0.5 + 1.5 * (double)k / (D - 2));
        for (int64_t j = 0; j < D; j++) {
            double acc = 3.0 + j; /* offsets: the mean must come out */
            for (int64_t k = 0; k < D - 1; k++) acc += z[k] * A[k * D + j];
            x[i * D + j] = j == D - 1 ? 7.0f : (float)acc;
        }
    }
    const float eps = 1e-5f;
    CHECK_OK(ct_whiten_fit(x, N, D, eps, mean, W));
    double S[144] = {0}, mu[12] = {0}, lmax = 0;
    for (int64_t i = 0; i < N; i++)
        for (int64_t j = 0; j < D; j++) mu[j] += x[i * D + j] / (double)N;
    for (int64_t i = 0; i < N; i++)
        for (int64_t a = 0; a < D; a++)
            for (int64_t b = 0; b < D; b++) S[a * D + b] += (x[i * D + a] - mu[a]) * (x[i * D + b] - mu[b]) / N;
    double v[12], vn[12];
    for (int64_t j = 0; j < D; j++) v[j] = 1.0;
    for (int it = 0; it < 500; it++) { /* lmax by power iteration */
        double nrm = 0;
        for (int64_t a = 0; a < D; a++) {
            vn[a] = 0;
            for (int64_t b = 0; b < D; b++) vn[a] += S[a * D + b] * v[b];
            nrm += vn[a] * vn[a];
        }
        lmax = sqrt(nrm);
        for (int64_t a = 0; a < D; a++) v[a] = vn[a] / lmax;
    }
    int sym = 1;
    double worst = 0, worst_mu = 0;
    for (int64_t a = 0; a < D; a++) {
        worst_mu = fmax(worst_mu, fabs(mean[a] - mu[a]) / (1 + fabs(mu[a])));
        for (int64_t b = 0; b < D; b++) sym &= W[a * D + b] == W[b * D + a];
    }
    /* W (S + eps lmax I) W = I, over the features that vary */
    for (int64_t a = 0; a < D - 1; a++)
        for (int64_t b = 0; b < D - 1; b++) {
            double acc = 0;
            for (int64_t p = 0; p < D; p++)
                for (int64_t q = 0; q < D; q++) acc += W[a * D + p] * (S[p * D + q] + (p == q) * eps * lmax) * W[q * D + b];
            worst = fmax(worst, fabs(acc - (a == b)));
        }
    CHECK(sym, "W is not symmetric");
    CHECK(worst_mu < 1e-5, "mean off by %g", worst_mu);
    CHECK(worst < 1e-3, "W (S + eps lmax I) W differs from I by %g", worst);
    float *y = malloc((size_t)(N * D) * 4);
    memcpy(y, x, (size_t)(N * D) * 4);
    CHECK_OK(ct_whiten_apply(y, N, D, mean, W));
    /* apply agrees with fit: the rows' covariance is W S W, which is I but for the shrinkage */
    double cworst = 0, mworst = 0;
    for (int64_t a = 0; a < D; a++) {
        double m = 0;
        for (int64_t i = 0; i < N; i++) m += y[i * D + a] / (double)N;
        mworst = fmax(mworst, fabs(m));
        for (int64_t b = 0; b < D; b++) {
            double c = 0, want = 0;
            for (int64_t i = 0; i < N; i++) c += (double)y[i * D + a] * y[i * D + b] / N;
            for (int64_t p = 0; p < D; p++)
                for (int64_t q = 0; q < D; q++) want += W[a * D + p] * S[p * D + q] * W[q * D + b];
            cworst = fmax(cworst, fabs(c - want));
        }
    }
    CHECK(mworst < 1e-3 && cworst < 5e-3, "whitened rows: mean %g, covariance off W S W by %g", mworst, cworst);
    ct_set_threads(1);
    CHECK_OK(ct_whiten_fit(x, N, D, eps, mean, W2));
    ct_set_threads(0);
    CHECK(!memcmp(W, W2, sizeof W), "whitening differs between thread counts");
    CHECK(ct_whiten_fit(x, 1, D, eps, mean, W) == CT_ERR_ARG, "one row must be refused");
    CHECK(ct_whiten_fit(x, N, D, 0.0f, mean, W) == CT_ERR_ARG, "eps 0 must be refused");
    x[5] = NAN;
    CHECK(ct_whiten_fit(x, N, D, eps, mean, W) == CT_ERR_NUMERIC, "NaN features must be refused");
    for (int64_t i = 0; i < N * D; i++) x[i] = 1.5f;
    CHECK(ct_whiten_fit(x, N, D, eps, mean, W) == CT_ERR_NUMERIC, "constant features must be refused");

    /* the purpose: 4 classes at +-0.3 along two low-variance axes, a nuisance of
     * scale 30 along another, and a common offset */
    const int64_t ntr = 1200, nte = 400, E = 6;
    float *xtr = malloc((size_t)(ntr * E) * 4), *xte = malloc((size_t)(nte * E) * 4), m6[6], W6[36];
    int32_t *ytr = malloc((size_t)ntr * 4), *yte = malloc((size_t)nte * 4);
    for (int s = 0; s < 2; s++) {
        float *f = s ? xte : xtr;
        int32_t *l = s ? yte : ytr;
        for (int64_t i = 0; i < (s ? nte : ntr); i++) {
            l[i] = (int32_t)ct_rng_below(&r, 4);
            f[i * E + 0] = ((l[i] & 1) ? 0.3f : -0.3f) + 0.05f * ct_rng_normal(&r);
            f[i * E + 1] = ((l[i] & 2) ? 0.3f : -0.3f) + 0.05f * ct_rng_normal(&r);
            f[i * E + 2] = 30.0f * ct_rng_normal(&r);
            for (int64_t j = 3; j < E; j++) f[i * E + j] = 5.0f + ct_rng_normal(&r);
        }
    }
    double raw1, wh1;
    CHECK_OK(ct_knn_eval(xtr, ytr, ntr, xte, yte, nte, E, 4, 50, 0.1f, &raw1, NULL));
    CHECK_OK(ct_whiten_fit(xtr, ntr, E, 1e-4f, m6, W6));
    CHECK_OK(ct_whiten_apply(xtr, ntr, E, m6, W6));
    CHECK_OK(ct_whiten_apply(xte, nte, E, m6, W6));
    CHECK_OK(ct_knn_eval(xtr, ytr, ntr, xte, yte, nte, E, 4, 50, 0.1f, &wh1, NULL));
    CHECK(raw1 < 0.6 && wh1 > 0.95, "kNN on raw features %.3f (want < 0.6), whitened %.3f (want > 0.95)", raw1, wh1);
    free(x), free(A), free(y), free(xtr), free(xte), free(ytr), free(yte);
}

int main(void) {
    test_knn_hand();
    test_knn_data();
    test_probe();
    test_retrieval();
    test_align_uniform();
    test_whiten();
    return test_done();
}
