/* contrast/eval.h: how good are learned features? Metrics on labelled feature
 * matrices, independent of any model or training code.
 *
 *   ct_knn_eval           weighted kNN top-1/top-5 (Wu et al. 2018, "Unsupervised feature
 *                         learning via non-parametric instance discrimination")
 *   ct_linear_probe       multinomial logistic regression on frozen, standardised features
 *   ct_eval_retrieval     Recall@k and mAP@k of queries against a gallery (cosine)
 *   ct_eval_align_uniform alignment (same-label pairs) and uniformity (Wang & Isola 2020)
 *   ct_whiten_fit/apply   ZCA whitening of features (fit on unlabelled training features)
 *
 * Features are row-major float matrices, one row per sample: (N, D). Labels are
 * int32 in [0, num_classes). Every function is deterministic: the same inputs give
 * the same bits at any thread count. None allocates in proportion to N^2: similarity
 * matrices are computed in blocks of rows through ct_gemm.
 */
#ifndef CONTRAST_EVAL_H
#define CONTRAST_EVAL_H
#include "contrast/core.h"

#ifdef __cplusplus
extern "C" {
#endif
CT_BEGIN_API

/* Weighted k-nearest-neighbour classification by cosine similarity.
 *   train_feat: (ntr, D)   test_feat: (nte, D)   labels in [0, num_classes)
 * Rows are L2-normalised internally (inputs are not modified; zero rows stay zero).
 * For each test row the k most similar train rows vote for their class with weight
 * exp(sim / T); the prediction is the class with the largest total. Ties between
 * neighbours of equal similarity go to the lower train index, ties between classes
 * to the lower class index. k is clamped to ntr.
 * Defaults used by the CLI: k = 200, T = 0.1.
 * Outputs fractions in [0, 1]: *top1, and *top5 (class ranked in the top 5) if not NULL.
 * Memory: O((ntr + nte) * D + block * ntr) with the block sized to ~32 MB. */
ct_status ct_knn_eval(const float *train_feat, const int32_t *train_labels, int64_t ntr,
                      const float *test_feat, const int32_t *test_labels, int64_t nte, int64_t D,
                      int num_classes, int k, float T, double *top1, double *top5);

/* Linear probe: standardise features with the train split's per-dimension mean and
 * standard deviation, fit multinomial logistic regression (weights and bias) on the
 * train split by full-batch L-BFGS, report accuracy on the test split.
 * Objective, as scikit-learn's LogisticRegression(C) divided by N:
 *   mean_i CE(softmax(W x_i + b), y_i) + ||W||^2 / (2 C N)      (bias not penalised)
 * Also stops when an iteration lowers the objective by less than 1e-9 relative
 * (the float noise floor of the logits). Deterministic (no randomness: zero
 * initialisation, full batch). Matches a double-precision PyTorch L-BFGS fit of
 * the same objective to 8 digits of loss (checked by hand, see docs). */
typedef struct {
    double C;       /* inverse regularisation strength, as sklearn          default 1.0  */
    int max_iter;   /* L-BFGS iterations                                    default 500  */
    double tol;     /* stop when max |gradient| of the objective <= tol     default 1e-5 */
    int history;    /* L-BFGS memory (pairs)                                default 10   */
} ct_probe_config;

typedef struct {
    double test_top1;   /* fraction of test rows classified correctly  */
    double train_top1;  /* the same on the train split                 */
    double loss;        /* final objective value                       */
    int iters;          /* L-BFGS iterations taken                     */
    int evals;          /* objective + gradient evaluations            */
} ct_probe_result;

void ct_probe_config_default(ct_probe_config *cfg);
/*   train_feat: (ntr, D)   test_feat: (nte, D); cfg NULL means the defaults.
 * Memory: a standardised copy of both splits plus O(ntr * num_classes). */
ct_status ct_linear_probe(const float *train_feat, const int32_t *train_labels, int64_t ntr,
                          const float *test_feat, const int32_t *test_labels, int64_t nte, int64_t D,
                          int num_classes, const ct_probe_config *cfg, ct_probe_result *out);

/* ZCA whitening: mean (D) and W (D, D, symmetric) = (S + eps * lmax * I)^(-1/2), S the
 * covariance of X's rows (divided by N), lmax its largest eigenvalue; eps > 0 bounds
 * the gain of directions that barely vary (1e-4 in contrast train). Then
 * ct_whiten_apply maps each row x to (x - mean) W in place, so the rows of X have
 * (nearly) identity covariance. Deterministic: eigenvectors by LAPACK's dsyevd in
 * double, the covariance summed over fixed blocks of rows. Memory O(D^2). */
ct_status ct_whiten_fit(const float *X, int64_t N, int64_t D, float eps, float *mean, float *W);
ct_status ct_whiten_apply(float *X, int64_t N, int64_t D, const float *mean, const float *W);

/* Retrieval by cosine similarity: each query ranks the gallery.
 *   gallery: (ng, D)   query: (nq, D)
 *   ks: (nks) values of k; recall[i] = fraction of queries with at least one
 *       same-label gallery item among the top ks[i] (the "Recall@k" of metric learning)
 *   map_k > 0: *map = mean over queries of AP@map_k =
 *       (1 / min(map_k, R)) * sum_{i <= map_k} precision@i * rel_i,
 *       R = number of same-label gallery items (queries with R = 0 count as 0)
 *   exclude_self: the query set IS the gallery (same rows, same order): skip each
 *       query's own row (leave-one-out).
 * Ranking ties go to the lower gallery index. recall and map may be NULL. */
ct_status ct_eval_retrieval(const float *gallery, const int32_t *gallery_labels, int64_t ng,
                            const float *query, const int32_t *query_labels, int64_t nq, int64_t D,
                            int exclude_self, const int *ks, int nks, double *recall, int map_k,
                            double *map);

/* Alignment and uniformity of L2-normalised labelled features (Wang & Isola 2020):
 *   align   = mean over same-label pairs i < j of ||f_i - f_j||^2           (lower is better)
 *   uniform = log mean over all pairs i < j of exp(-2 ||f_i - f_j||^2)      (lower is better)
 * Uses at most max_n rows (a subset drawn with ct_rng from `seed` when n > max_n),
 * so the cost is O(max_n^2 D). feat: (n, D). align is NaN when no pair shares a label. */
ct_status ct_eval_align_uniform(const float *feat, const int32_t *labels, int64_t n, int64_t D,
                                int64_t max_n, uint64_t seed, double *align, double *uniform);

CT_END_API
#ifdef __cplusplus
}
#endif
#endif
