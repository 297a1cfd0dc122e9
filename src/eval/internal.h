/* internal.h: what the evaluation files share (not part of the public API). */
#ifndef CONTRAST_EVAL_INTERNAL_H
#define CONTRAST_EVAL_INTERNAL_H
#include "contrast/core.h"

/* Eigenvalues l (n, ascending) and eigenvectors of the symmetric a (n x n, in
 * double, overwritten) by LAPACK's dsyevd from OpenBLAS: on return row k of a holds
 * eigenvector k. `who` prefixes the error message ("whiten", "pca"). */
ct_status ct_eval__sym_eigen(double *a, double *l, int n, const char *who);

/* The mean (D, float) and the covariance S (D x D, double, exactly symmetric,
 * divided by N) of the rows of X (N, D), summed over fixed blocks of rows, so the
 * bits do not depend on the thread count; `who` prefixes the error for a feature
 * that is not finite. */
ct_status ct_eval__covariance(double *S, float *mean, const float *X, int64_t N, int64_t D, const char *who);

#endif
