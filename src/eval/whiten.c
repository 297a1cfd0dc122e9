/* whiten.c: ZCA whitening of feature matrices.
 *
 * Contrastive encoders spread their features over few directions: on the default
 * SimCLR run the covariance of the 256 encoder features has its largest eigenvalue
 * 43 times the mean one, three directions hold 37% of the variance and eight none
 * (the "dimensional collapse" of Jing et al. 2022). Cosine similarity in that
 * space is dominated by the few large directions, so neighbours are hard to tell
 * apart (the 1st and the 200th neighbour of a test image sit at cosine 0.96 and
 * 0.89). Whitening, x -> (x - mean) W with
 * W = (S + eps lmax I)^(-1/2) for the features' covariance S, gives every direction
 * the same weight, as PCA whitening does for descriptors in image retrieval (Jegou
 * and Chum 2012). It is linear, fit on unlabelled training features, and changes
 * no information a linear probe can use.
 *
 * W comes from the eigendecomposition S = U diag(l) U^T in double precision by
 * LAPACK's dsyevd (OpenBLAS's, single-threaded as every OpenBLAS call here:
 * ct_set_threads; a fit of 60,000 x 512 features takes 1.8 s, where cyclic Jacobi
 * rotations took 25 s). Everything runs in a fixed order, so the bits do not
 * depend on the thread count: the covariance is summed over fixed blocks of rows,
 * each block one ct_gemm, in double. */
#include "contrast/eval.h"
#include "internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* rows per covariance block and per apply block */
#define WHITEN_ROWS 1024

/* LAPACK's symmetric eigensolver (divide and conquer), from OpenBLAS, which the
 * project links anyway. A Fortran routine: arguments by reference, and one hidden
 * length per character argument at the end (gfortran's ABI). */
extern void dsyevd_(const char *jobz, const char *uplo, const int *n, double *a, const int *lda, double *w,
                    double *work, const int *lwork, int *iwork, const int *liwork, int *info, size_t ljobz,
                    size_t luplo);

/* Declared in internal.h; the whitening and the PCA layout (layout.c) share it. */
ct_status ct_eval__sym_eigen(double *a, double *l, int n, const char *who) {
    int info = 0, lwork = -1, liwork = -1, iw = 0;
    double wq = 0;
    dsyevd_("V", "U", &n, a, &n, l, &wq, &lwork, &iw, &liwork, &info, 1, 1);
    if (info) return ct_error(CT_ERR_NUMERIC, "%s: dsyevd workspace query failed (info %d)", who, info);
    lwork = (int)wq;
    liwork = iw;
    double *work = ct_alloc((size_t)lwork * sizeof(double));
    int *iwork = ct_alloc((size_t)liwork * sizeof(int));
    ct_status st = CT_OK;
    if (!work || !iwork) st = CT_ERR_NOMEM;
    else {
        dsyevd_("V", "U", &n, a, &n, l, work, &lwork, iwork, &liwork, &info, 1, 1);
        if (info) st = ct_error(CT_ERR_NUMERIC, "%s: the covariance's eigendecomposition failed (info %d)", who, info);
    }
    ct_free(work);
    ct_free(iwork);
    return st;
}

/* Declared in internal.h: the mean and covariance behind the whitening and the PCA layout. */
ct_status ct_eval__covariance(double *S, float *mean, const float *X, int64_t N, int64_t D, const char *who) {
    const size_t dd = (size_t)D * (size_t)D;
    double *mu = ct_alloc((size_t)D * sizeof(double));
    float *blk = ct_alloc((size_t)WHITEN_ROWS * (size_t)D * sizeof(float)), *P = ct_alloc(dd * sizeof(float));
    ct_status st = CT_OK;
    if (!mu || !blk || !P) {
        st = CT_ERR_NOMEM;
        goto out;
    }
    for (int64_t j = 0; j < D; j++) mu[j] = 0.0;
    for (int64_t i = 0; i < N; i++)
        for (int64_t j = 0; j < D; j++) mu[j] += X[i * D + j];
    for (int64_t j = 0; j < D; j++) {
        mu[j] /= (double)N;
        if (!isfinite(mu[j])) {
            st = ct_error(CT_ERR_NUMERIC, "%s: feature %lld is not finite", who, (long long)j);
            goto out;
        }
        mean[j] = (float)mu[j];
    }
    /* S = sum over blocks of (X_b - mean)^T (X_b - mean) / N */
    for (size_t i = 0; i < dd; i++) S[i] = 0.0;
    for (int64_t r0 = 0; r0 < N; r0 += WHITEN_ROWS) {
        const int64_t nb = N - r0 < WHITEN_ROWS ? N - r0 : WHITEN_ROWS;
        for (int64_t i = 0; i < nb; i++)
            for (int64_t j = 0; j < D; j++) blk[i * D + j] = X[(r0 + i) * D + j] - mean[j];
        ct_gemm(1, 0, D, D, nb, 1.0f, blk, D, blk, D, 0.0f, P, D);
        for (size_t i = 0; i < dd; i++) S[i] += P[i];
    }
    for (int64_t i = 0; i < D; i++) /* exactly symmetric */
        for (int64_t j = 0; j < i; j++) S[i * D + j] = S[j * D + i] = 0.5 * (S[i * D + j] + S[j * D + i]) / (double)N;
    for (int64_t i = 0; i < D; i++) S[i * D + i] /= (double)N;
out:
    ct_free(mu);
    ct_free(blk);
    ct_free(P);
    return st;
}

ct_status ct_whiten_fit(const float *X, int64_t N, int64_t D, float eps, float *mean, float *W) {
    if (N < 2 || D < 1 || D > 16384 || !(eps > 0) || !isfinite(eps))
        return ct_error(CT_ERR_ARG, "whiten: need N >= 2 rows, 1 <= D <= 16384 and eps > 0 (got %lld, %lld, %g)",
                        (long long)N, (long long)D, eps);
    const size_t dd = (size_t)D * (size_t)D;
    double *S = ct_alloc(dd * sizeof(double)), *l = ct_alloc((size_t)D * sizeof(double));
    ct_status st = CT_OK;
    if (!S || !l) {
        st = CT_ERR_NOMEM;
        goto out;
    }
    if ((st = ct_eval__covariance(S, mean, X, N, D, "whiten"))) goto out;
    if ((st = ct_eval__sym_eigen(S, l, (int)D, "whiten"))) goto out;
    double lmax = 0.0;
    for (int64_t i = 0; i < D; i++) lmax = l[i] > lmax ? l[i] : lmax;
    if (!(lmax > 0)) {
        st = ct_error(CT_ERR_NUMERIC, "whiten: the features do not vary (largest variance %g)", lmax);
        goto out;
    }
    /* W = V diag((l + eps lmax)^(-1/2)) V^T, V's columns the eigenvectors (rows of S
     * now); eigenvalues below zero are rounding */
    for (int64_t k = 0; k < D; k++) l[k] = 1.0 / sqrt((l[k] > 0 ? l[k] : 0.0) + (double)eps * lmax);
    for (int64_t i = 0; i < D; i++)
        for (int64_t j = i; j < D; j++) {
            double acc = 0.0;
            for (int64_t k = 0; k < D; k++) acc += S[k * D + i] * l[k] * S[k * D + j];
            W[i * D + j] = W[j * D + i] = (float)acc;
        }
out:
    ct_free(S);
    ct_free(l);
    return st;
}

ct_status ct_whiten_apply(float *X, int64_t N, int64_t D, const float *mean, const float *W) {
    float *blk = ct_alloc((size_t)WHITEN_ROWS * (size_t)D * sizeof(float));
    if (!blk) return CT_ERR_NOMEM;
    for (int64_t r0 = 0; r0 < N; r0 += WHITEN_ROWS) {
        const int64_t nb = N - r0 < WHITEN_ROWS ? N - r0 : WHITEN_ROWS;
        float *x = X + r0 * D;
        for (int64_t i = 0; i < nb; i++)
            for (int64_t j = 0; j < D; j++) blk[i * D + j] = x[i * D + j] - mean[j];
        ct_gemm(0, 0, nb, D, D, 1.0f, blk, D, W, D, 0.0f, x, D);
    }
    ct_free(blk);
    return CT_OK;
}
