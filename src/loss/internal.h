/* internal.h: helpers shared by the files of src/loss; not part of the public API.
 * Names carry the ct_loss__ prefix so they cannot clash with public ones. */
#ifndef CONTRAST_LOSS_INTERNAL_H
#define CONTRAST_LOSS_INTERNAL_H

#include "contrast/loss.h"

#include <math.h>
#include <string.h>

/* exp(x) written so that the loops around it vectorise (glibc's expf does not
 * without -ffast-math, and float compares block if-conversion under the default
 * -ftrapping-math, so every select here is on integers):
 *   n = round(x / ln2) via the 1.5 * 2^23 trick (adding it leaves n in the low
 *   mantissa bits), r = x - n ln2 in two parts (Cephes), e^r by Cephes' degree-6
 *   polynomial, 2^n built in the exponent bits.
 * Relative error below 2 ulp for x in [-87, 88]; results below 2^-126 are flushed to
 * 0; NaN stays NaN. Valid for |x| < 2^21 (our arguments are differences of logits,
 * bounded by 2/tau with tau >= CT_LOSS_MIN_TAU). Checked against exp() in test_loss. */
static inline float ct_loss__exp(float x) {
    union { float f; int32_t i; } t = {.f = x * 1.44269504088896341f + 12582912.0f};
    float n = t.f - 12582912.0f;
    int32_t ni = (t.i & 0x7fffff) - 0x400000;
    float r = x - n * 0.693359375f + n * 2.12194440e-4f;
    float y = 1.9875691500e-4f;
    y = y * r + 1.3981999507e-3f;
    y = y * r + 8.3334519073e-3f;
    y = y * r + 4.1665795894e-2f;
    y = y * r + 1.6666665459e-1f;
    y = y * r + 5.0000001201e-1f;
    y = y * r * r + r + 1.0f;
    ni = ni < 127 ? ni : 127;
    ni = ni > -127 ? ni : -127; /* -127 gives the bit pattern of 0.0f */
    union { int32_t i; float f; } scale = {.i = (ni + 127) << 23};
    return y * scale.f;
}

/* Rows of a similarity matrix computed per ct_gemm call: min(rows, CT_LOSS_BLOCK).
 * Sizes the blocked scratch (block x columns) and steps the blocked loops. */
int64_t ct_loss__block_rows(int64_t rows);

/* Workspace carving. The same layout code runs twice: with base == NULL it only
 * measures (for *_workspace_size), with a base it hands out 64-aligned pieces. */
typedef struct {
    char *base;
    size_t used;
    int overflow;
} ct_loss__ws;

void *ct_loss__take(ct_loss__ws *w, size_t count, size_t elem);
/* Bytes a layout measured, SIZE_MAX when it overflowed. */
size_t ct_loss__ws_size(const ct_loss__ws *w);

/* Checks that a caller workspace is big enough, or allocates one when ws == NULL
 * (*owned then gets the pointer to free). */
ct_status ct_loss__ws_acquire(void **ws, size_t ws_bytes, size_t need, void **owned,
                              const char *fn);

/* u = z / max(||z||, CT_LOSS_EPS) row by row; norm[i] = ||z_i|| (before the clamp).
 *   u: (rows, d)   norm: (rows)   z: (rows, d) */
void ct_loss__normalize(float *u, float *norm, const float *z, int64_t rows, int64_t d);
/* dz = d(normalise)^T du:  (du - u (u.du)) / ||z||, or du / eps where the clamp held.
 *   dz: (rows, d), overwritten   du, u: (rows, d)   norm: (rows) */
void ct_loss__normalize_backward(float *dz, const float *du, const float *u, const float *norm,
                                 int64_t rows, int64_t d);

/* One anchor's softmax cross-entropy over a row of logits.
 * Positives: column `target` when target >= 0, else every column j != self with
 * col_label[j] == my_label. Column `self` (or -1) is left out of the softmax.
 * The loss is lse - mean(positive logits); the row is overwritten with
 * w * (softmax - [positive]/|P|) (0 at self), i.e. w * dloss/dlogit.
 * `per_cos` is logits per unit cosine (1/tau or the CLIP scale), for the stats;
 * when want_unif, also sums exp(4 (cos - 1)) over columns (uniformity with t = 2). */
typedef struct {
    double loss;     /* this anchor's loss, unweighted; 0 without a positive         */
    double gx;       /* sum_j grad_j * logit_j (for the gradient of a logit scale)   */
    double pos_sum;  /* sums of cosine similarities                                  */
    double neg_sum;
    double unif;     /* sum over columns of exp(4(cos - 1))                          */
    int64_t pos_n, neg_n;
    int correct;     /* best positive beats every negative                           */
    int has_pos;
} ct_loss__row;

void ct_loss__row_ce(float *row, int64_t cols, int64_t self, int64_t target,
                     const int64_t *col_label, int64_t my_label, float per_cos, float w,
                     int want_unif, ct_loss__row *o);

/* Sums rows[0..n) in order into stats (loss weighted by w); uniformity over
 * unif_pairs pairs when > 0. */
void ct_loss__reduce(ct_loss_stats *st, const ct_loss__row *rows, int64_t n, double w,
                     double unif_pairs);

/* The tail every objective ends with, in one place: clears *st and fills it from
 * the sums. pos_sim/neg_sim are the sums over their counts (0 without any), align
 * is 2 - 2 pos_sim; loss, top1, uniform, active and count are stored as given. */
typedef struct {
    double loss, top1;
    double pos_sum, neg_sum; /* cosine similarities summed over pos_n / neg_n pairs */
    int64_t pos_n, neg_n;
    double uniform, active;
    int64_t count;
} ct_loss__sums;
void ct_loss__stats_fill(ct_loss_stats *st, const ct_loss__sums *s);

/* CT_OK, or CT_ERR_NUMERIC naming fn when the loss is not finite. */
ct_status ct_loss__check_finite(const ct_loss_stats *st, const char *fn);

/* Argument checks shared by the cosine losses. */
ct_status ct_loss__check_tau(float tau, const char *fn);

#endif
