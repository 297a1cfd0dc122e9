/* contrast/loss.h: the contrastive objectives and their exact gradients.
 *
 * Usage guide
 *   Every objective takes embeddings (row-major float, one row per sample) and, where
 *   it applies, labels, a queue or a second modality; it returns the loss and writes
 *   dL/d(embeddings) so the trainer can back-propagate through any encoder.
 *
 *   - The loss is the MEAN over anchors (pairs, triplets), as PyTorch's default
 *     reduction would compute it.
 *   - Gradient outputs are OVERWRITTEN, not accumulated (unlike the nn backward ops).
 *     Any gradient pointer may be NULL: that gradient is then not computed.
 *   - Scratch: functions that need it take (ws, ws_bytes) sized by the matching
 *     *_workspace_size(...) call and 64-byte aligned (ct_alloc), so a trainer allocates
 *     once and nothing is allocated per step. Passing ws == NULL makes the call allocate and free its own scratch
 *     (convenient for tests and evaluation; not meant for the training loop).
 *     A workspace that is too small is a CT_ERR_ARG, never an overrun.
 *     *_workspace_size returns bytes, or SIZE_MAX when the size overflows.
 *   - Cosine objectives L2-normalise inside (u = z / max(||z||, CT_LOSS_EPS), as
 *     torch.nn.functional.normalize) and back-propagate through the normalisation.
 *     A zero vector gives u = 0: finite loss and a finite (large, 1/eps-scaled)
 *     gradient, exactly as PyTorch.
 *   - Numerics: every softmax is a log-sum-exp with the row maximum subtracted; sums
 *     of exponentials run in float per 256 columns, then in double. Similarity
 *     matrices come from ct_gemm in row blocks of CT_LOSS_BLOCK rows, so scratch is
 *     O(block * columns), not O(N^2), except for the triplet loss's N x N distance
 *     matrix (N = batch).
 *   - Threads: OpenMP over rows; every reduction runs in a fixed order, so results are
 *     bit-identical at any thread count.
 *   - Returns CT_ERR_ARG for bad shapes/temperatures, CT_ERR_NUMERIC when the loss is
 *     not finite (NaN/Inf in the inputs); stats are still filled in that case.
 *
 *   The formulas and options are in docs/objectives.md.
 */
#ifndef CONTRAST_LOSS_H
#define CONTRAST_LOSS_H
#include "contrast/core.h"

#ifdef __cplusplus
extern "C" {
#endif
CT_BEGIN_API

#define CT_LOSS_EPS 1e-12        /* norm clamp of the L2 normalisation (F.normalize's default) */
#define CT_LOSS_BLOCK 256        /* rows of the similarity matrix held at once                 */
#define CT_LOSS_MIN_TAU 1e-4     /* smallest temperature accepted (logits stay below 1e4)       */
#define CT_CLIP_MAX_SCALE 100.0f /* CLIP's logit scale exp(s) is clamped at this value         */

/* Filled by every loss call (pass NULL to skip). Cosine similarities are of the
 * L2-normalised embeddings, for every objective, so numbers compare across runs. */
typedef struct {
    double loss;    /* the mean loss the gradient is of                                      */
    double top1;    /* fraction of anchors whose positive outranks every negative (see docs) */
    double pos_sim; /* mean cosine similarity over positive pairs                            */
    double neg_sim; /* mean cosine similarity over negative pairs                            */
    double align;   /* Wang & Isola alignment, alpha=2: mean ||u - u+||^2 = 2 - 2 pos_sim     */
    double uniform; /* Wang & Isola uniformity, t=2, over distinct rows (NT-Xent, SupCon; 0 else) */
    double active;  /* hinge losses: fraction of pairs/triplets with non-zero loss; 1 else    */
    int64_t count;  /* how many anchors / pairs / triplets the mean is over                   */
} ct_loss_stats;

/* ---- NT-Xent (SimCLR) ------------------------------------------------------ */
size_t ct_ntxent_workspace_size(int64_t n, int64_t d);
/* NT-Xent over 2n embeddings: rows [0,n) are view 1, [n,2n) view 2; row i's positive
 * is i+n (mod 2n), the other 2n-2 rows are its negatives; logits cos/tau; mean over
 * all 2n anchors.
 *   dz: (2n, d) or NULL   z: (2n, d)   n >= 1, d >= 1, tau >= CT_LOSS_MIN_TAU. */
ct_status ct_ntxent_loss(ct_loss_stats *st, float *dz, const float *z, int64_t n, int64_t d,
                         float tau, void *ws, size_t ws_bytes);

/* ---- Supervised contrastive (Khosla et al. 2020, L^sup_out) ------------------ */
size_t ct_supcon_workspace_size(int64_t n, int64_t views, int64_t d);
/* z holds `views` views of n samples, view-major: row v*n + i is view v of sample i,
 * whose label is labels[i]. Every other row with the same label is a positive, every
 * other row is in the denominator. An anchor with no positive (possible only when
 * views == 1) contributes 0 to the sum and still counts in the mean, as the authors'
 * reference code does (see docs); it is left out of top1.
 * With views == 2 and all labels distinct this is exactly NT-Xent.
 *   dz: (views*n, d) or NULL   z: (views*n, d)   labels: (n)   views*n >= 2. */
ct_status ct_supcon_loss(ct_loss_stats *st, float *dz, const float *z, const int32_t *labels,
                         int64_t n, int64_t views, int64_t d, float tau, void *ws,
                         size_t ws_bytes);

/* ---- InfoNCE: one query, one positive, K shared negatives -------------------- */
size_t ct_infonce_workspace_size(int64_t n, int64_t k, int64_t d);
/* For each of n queries: logits [cos(q_i, p_i), cos(q_i, neg_1..k)] / tau, target 0;
 * mean over the n queries. All three inputs are normalised inside.
 *   dq: (n, d)   dpos: (n, d)   dneg: (k, d), each may be NULL
 *   q: (n, d)    pos: (n, d)    neg: (k, d)   n >= 1, k >= 1. */
ct_status ct_infonce_loss(ct_loss_stats *st, float *dq, float *dpos, float *dneg, const float *q,
                          const float *pos, const float *neg, int64_t n, int64_t k, int64_t d,
                          float tau, void *ws, size_t ws_bytes);

/* ---- MoCo (He et al. 2020) ------------------------------------------------- */
/* Ring buffer of the last k keys. Rows are unit vectors (push normalises). Row `ptr`
 * is the oldest and the next to be overwritten. Init fills it with random unit
 * vectors (as MoCo's torch.randn + normalize), deterministic in `seed`. */
typedef struct {
    int64_t k, d;
    float *keys;     /* (k, d) */
    int64_t ptr;     /* next row to overwrite == oldest row */
    uint64_t pushed; /* keys pushed since init */
} ct_moco_queue;

ct_status ct_moco_queue_init(ct_moco_queue *q, int64_t k, int64_t d, uint64_t seed);
void ct_moco_queue_free(ct_moco_queue *q);
/* Enqueues n keys (oldest first), dequeuing the n oldest: O(n d). When n > k only the
 * last k keys are kept. keys: (n, d); each row is L2-normalised on the way in. */
ct_status ct_moco_queue_push(ct_moco_queue *q, const float *keys, int64_t n);
/* Row j of the queue in age order: j = 0 the oldest, j = k-1 the newest. */
const float *ct_moco_queue_row(const ct_moco_queue *q, int64_t j);

size_t ct_moco_workspace_size(int64_t n, int64_t k, int64_t d);
/* InfoNCE of queries q against their keys k (positives) and the queue (negatives).
 * No gradient flows to the keys or the queue (they come from the momentum encoder).
 * Call this before pushing this step's keys, as MoCo's Algorithm 1 does.
 *   dq: (n, d) or NULL   q: (n, d)   k: (n, d)   queue: (queue->k, d), d == queue->d. */
ct_status ct_moco_loss(ct_loss_stats *st, float *dq, const float *q, const float *k,
                       const ct_moco_queue *queue, int64_t n, float tau, void *ws,
                       size_t ws_bytes);
/* theta_k <- m * theta_k + (1 - m) * theta_q, elementwise over n floats (any m). */
void ct_momentum_update(float *key_params, const float *query_params, size_t n, float m);

/* ---- CLIP (Radford et al. 2021) ---------------------------------------------- */
size_t ct_clip_workspace_size(int64_t n, int64_t d);
/* logits = min(exp(s), 100) * cos(img_i, txt_j); loss = (CE(rows) + CE(columns)) / 2
 * with targets on the diagonal. ds gets dL/ds, which is 0 when exp(s) > 100 (the
 * clamp is active), as torch.clamp's gradient.
 *   dimg, dtxt: (n, d) or NULL   ds: (1) or NULL   img, txt: (n, d)   s: scalar. */
ct_status ct_clip_loss(ct_loss_stats *st, float *dimg, float *dtxt, float *ds, const float *img,
                       const float *txt, float s, int64_t n, int64_t d, void *ws,
                       size_t ws_bytes);

/* ---- Multiple negatives ranking (sentence-transformers' MultipleNegativesRankingLoss) --
 * In-batch negatives for pairs: logits = cos(a_i, p_j) / tau, target j = i, the mean
 * cross-entropy over the n anchors (InfoNCE with the other positives as negatives).
 * symmetric != 0 also takes the positive -> anchor direction (columns) and returns
 * the mean of both, which is ct_clip_loss at the fixed scale s = log(1/tau).
 * Workspace: ct_clip_workspace_size(n, d).
 *   da, dp: (n, d) or NULL   a, pos: (n, d)   tau >= CT_LOSS_MIN_TAU. */
ct_status ct_mnrl_loss(ct_loss_stats *st, float *da, float *dp, const float *a, const float *pos, float tau,
                       int symmetric, int64_t n, int64_t d, void *ws, size_t ws_bytes);

/* ---- Margin contrastive loss (Hadsell, Chopra, LeCun 2006) -------------------- */
typedef struct {
    int64_t a, b;  /* row indices, a != b */
    int32_t same;  /* 1: same label (pulled together), 0: different (pushed beyond m) */
} ct_pair;

/* n(n-1)/2, the number of pairs ct_pairs_all writes and the capacity both builders need. */
int64_t ct_pairs_max(int64_t n);
/* Every pair (i < j) of n labelled rows, in row-major order. out: (ct_pairs_max(n)).
 * Returns the count. */
int64_t ct_pairs_all(ct_pair *out, const int32_t *labels, int64_t n);
/* A balanced sample: the same number p of same-label and different-label pairs,
 * p = min(#same, #different, max_pairs/2) (max_pairs <= 0: no cap), drawn uniformly
 * without replacement (selection sampling), deterministic in seed, listed in (i<j)
 * order. out: (ct_pairs_max(n)). Returns 2p. */
int64_t ct_pairs_balanced(ct_pair *out, const int32_t *labels, int64_t n, int64_t max_pairs,
                          uint64_t seed);
/* Per pair with Euclidean distance d = ||x_a - x_b|| (no normalisation):
 *   same: d^2 / 2      different: max(0, margin - d)^2 / 2;  mean over the pairs.
 *   dx: (n, d) or NULL   x: (n, d)   pairs: (n_pairs)   n_pairs >= 1.
 * Needs no workspace; O(n_pairs * d). */
ct_status ct_margin_loss(ct_loss_stats *st, float *dx, const float *x, const ct_pair *pairs,
                         int64_t n_pairs, int64_t n, int64_t d, float margin);

/* ---- Triplet loss with in-batch mining --------------------------------------- */
typedef enum {
    CT_MINE_ALL = 0,  /* every valid (a,p,n); mean over the triplets with non-zero loss      */
    CT_MINE_HARD,     /* per anchor: farthest positive, nearest negative; mean over anchors  */
    CT_MINE_SEMIHARD  /* per (a,p): nearest negative farther than p, else the farthest one   */
} ct_mining;

size_t ct_triplet_workspace_size(int64_t n, int64_t d);
/* loss(a,p,n) = max(0, d(a,p) - d(a,n) + margin), d Euclidean (squared when
 * `squared`), distances from one GEMM; triplets mined from labels (docs/objectives.md).
 *   dx: (n, d) or NULL   x: (n, d)   labels: (n)   n >= 2. O(n^2) scratch, O(n^3) for ALL. */
ct_status ct_triplet_loss(ct_loss_stats *st, float *dx, const float *x, const int32_t *labels,
                          int64_t n, int64_t d, float margin, ct_mining mining, int squared,
                          void *ws, size_t ws_bytes);

/* ---- Alignment and uniformity (Wang & Isola 2020), on unit-norm rows ---------- */
/* mean_i ||x_i - y_i||^alpha.   x, y: (n, d). Computed in double. */
double ct_alignment(const float *x, const float *y, int64_t n, int64_t d, double alpha);
/* log mean_{i<j} exp(-t ||x_i - x_j||^2) over the n(n-1)/2 distinct pairs, via ct_gemm
 * in row blocks and log-sum-exp. Allocates O(CT_LOSS_BLOCK * n) scratch itself (an
 * evaluation call, not a training-step one).   x: (n, d), n >= 2. */
ct_status ct_uniformity(double *out, const float *x, int64_t n, int64_t d, double t);

CT_END_API
#ifdef __cplusplus
}
#endif
#endif
