/* contrast/eval.h: how good are learned features? Metrics on labelled feature
 * matrices, independent of any model or training code.
 *
 *   ct_knn_eval           weighted kNN top-1/top-5 (Wu et al. 2018, "Unsupervised feature
 *                         learning via non-parametric instance discrimination")
 *   ct_linear_probe       multinomial logistic regression on frozen, standardised features
 *   ct_eval_retrieval     Recall@k and mAP@k of queries against a gallery (cosine)
 *   ct_eval_align_uniform alignment (same-label pairs) and uniformity (Wang & Isola 2020)
 *   ct_whiten_fit/apply   ZCA whitening of features (fit on unlabelled training features)
 *   ct_zeroshot_*         zero-shot classification from prompt embeddings (CLIP), with
 *                         the class-name and template files the CLI reads
 *   ct_eval_image_text    image <-> text retrieval R@k, captions and images many-to-many
 *   ct_eval_topk          the k gallery rows nearest a query (search)
 *
 * Features are row-major float matrices, one row per sample: (N, D). Labels are
 * int32 in [0, num_classes). Every function is deterministic: the same inputs give
 * the same bits at any thread count. None allocates in proportion to N^2: similarity
 * matrices are computed in blocks of rows through ct_gemm.
 */
#ifndef CONTRAST_EVAL_H
#define CONTRAST_EVAL_H
#include "contrast/captions.h"
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

/* ---- zero-shot classification and image <-> text retrieval (src/eval/zeroshot.c) ----
 * These work on embeddings (e.g. ct_clip_embed_images / ct_clip_embed_texts); no
 * model is involved. Rankings use one total order, score descending then index
 * ascending, so every result is a function of the inputs alone. */

/* Limits of the files below (bytes): a class name, a template, the whole file. */
#define CT_ZS_MAX_NAME     256
#define CT_ZS_MAX_TEMPLATE 1024
#define CT_ZS_MAX_FILE     ((int64_t)64 << 20)

/* The built-in prompt templates for emoji ("an emoji of {}", "{}", "a {} emoji",
 * "an icon of {}", ...): *templates points to static strings; returns their count. */
int ct_zeroshot_default_templates(const char *const **templates);
/* One class name per line (--classes FILE) / one template per line, each holding
 * exactly one "{}" where the name goes (--templates FILE). UTF-8; "\r\n" accepted;
 * spaces and tabs around an entry trimmed; a final newline optional. An empty line,
 * an entry over CT_ZS_MAX_NAME / CT_ZS_MAX_TEMPLATE bytes, invalid UTF-8, a NUL, a
 * duplicate, a template without exactly one "{}", or no entry at all fail with
 * "FILE:LINE: problem" (CT_ERR_FORMAT). *v (n strings) is freed with
 * ct_zeroshot_strings_free. */
ct_status ct_zeroshot_read_classes(char ***names, int64_t *n, const char *path);
ct_status ct_zeroshot_read_templates(char ***templates, int64_t *n, const char *path);
void ct_zeroshot_strings_free(char **v, int64_t n); /* NULL-safe */
/* The K * T prompts, class-major: (*prompts)[k * T + t] = templates[t] with its "{}"
 * replaced by names[k]. Free with ct_zeroshot_strings_free(*prompts, K * T). */
ct_status ct_zeroshot_prompts(char ***prompts, const char *const *names, int64_t K, const char *const *templates,
                              int64_t T);
/* Zero-shot classifier, as open_clip's build_zero_shot_classifier: for each class k,
 *   W[k] = normalise(mean_t normalise(E[k * T + t]))
 *   E: (K * T, D) prompt embeddings, class-major (the order of ct_zeroshot_prompts)
 *   W: (K, D) out, unit rows (a zero mean stays zero). Sums in double, templates in
 * order. CT_ERR_NUMERIC for a non-finite value in E. */
ct_status ct_zeroshot_weights(float *W, const float *E, int64_t K, int64_t T, int64_t D);
/* Zero-shot accuracy: image i is scored against every class by cosine(img[i], W[k]);
 * it counts for top-1 when its class labels[i] ranks first, for top-5 when it ranks
 * among the first 5 (ties: the lower class index first; so with K <= 5, top-5 is 1).
 *   img: (n, D)   labels: (n) in [0, K)   W: (K, D) (rows normalised here)
 *   top1, top5: fractions over the n images (either may be NULL)
 *   class_n, class_top1, class_top5: (K) per class: its images, those right at top-1,
 *       at top-5 (each may be NULL). */
ct_status ct_zeroshot_eval(const float *img, const int32_t *labels, int64_t n, const float *W, int64_t K, int64_t D,
                           double *top1, double *top5, int64_t *class_n, int64_t *class_top1, int64_t *class_top5);

/* Image <-> text retrieval by cosine similarity when the relation is many-to-many:
 * an image may carry several captions, and one caption text may describe several
 * images (two art styles of one emoji share its name).
 *   img: (ni, D)   txt: (nt, D): distinct texts
 *   rel_start: (nt + 1), rel_start[0] = 0; text t describes the images
 *       rel_img[rel_start[t] .. rel_start[t + 1]) (at least one; each in [0, ni))
 *   image -> text: each image ranks all nt texts; i2t[j] = fraction of images (those
 *       described by at least one text; NaN when none is) with one of their texts
 *       among the first ks[j]
 *   text -> image: each text ranks all ni images; t2i[j] = fraction of the nt texts
 *       with one of their images among the first ks[j]
 * This is the COCO/Flickr R@K of CLIP papers where "its caption" / "its image" is
 * widened to any related one. i2t_chance, t2i_chance: the same means for a uniformly
 * random ranking, 1 - C(N - m, k) / C(N, k) for a query with m related items among N.
 * i2t, t2i, i2t_chance, t2i_chance: (nks), each may be NULL.
 * Cost O(ni * nt * D), memory O((ni + nt) D + 256 max(ni, nt)). */
ct_status ct_eval_image_text(const float *img, int64_t ni, const float *txt, int64_t nt, int64_t D,
                             const int64_t *rel_start, const int64_t *rel_img, const int *ks, int nks, double *i2t,
                             double *t2i, double *i2t_chance, double *t2i_chance);
/* The relation above for a caption dataset: its distinct caption strings in
 * first-seen order (*texts, nt of them, pointing into ds: valid while ds is), and for
 * each the images carrying it (ascending, each once). Free *texts, *rel_start and
 * *rel_img with free(). */
ct_status ct_caption_texts(const ct_caption_dataset *ds, const char ***texts, int64_t *nt, int64_t **rel_start,
                           int64_t **rel_img);
/* The min(k, ng) gallery rows most similar (cosine) to query, best first (ties: lower
 * index): idx and score (may be NULL) receive them, *found their count.
 *   gallery: (ng, D)   query: (D)   idx, score: (k). */
ct_status ct_eval_topk(int64_t *idx, float *score, int64_t *found, const float *gallery, int64_t ng, int64_t D,
                       const float *query, int64_t k);

CT_END_API
#ifdef __cplusplus
}
#endif
#endif
