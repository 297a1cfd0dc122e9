/* contrast/nn.h: layer kernels, each a *_forward / *_backward pair over NCHW float32.
 *
 * Argument order: outputs, saved-for-backward, inputs, parameters, shapes.
 * Every backward ACCUMULATES (+=) into its gradient outputs (din, dw, db, ...), so
 * a tensor read by two layers (a residual branch) sums both contributions, and
 * the caller zeroes gradients once per step. Any gradient pointer may be NULL to
 * skip it (e.g. din of the first layer).
 *
 * Reductions over the batch use a fixed partition (CT_NN_PARTS blocks of samples)
 * combined in a fixed order, so results are bit-identical at any thread count.
 * The plain references the fast paths are tested against (ct_conv2d_*_ref) are
 * not part of the API: they are declared in src/nn/internal.h, which the tests
 * and benchmarks include. */
#ifndef CONTRAST_NN_H
#define CONTRAST_NN_H
#include "contrast/core.h"

#ifdef __cplusplus
extern "C" {
#endif
CT_BEGIN_API

/* Number of sample blocks the batch is split into for deterministic reductions. */
#define CT_NN_PARTS 4
/* Loops over fewer elements than this run on one thread: a parallel region costs
 * a wake-up and a barrier, which on a busy machine can wait a whole scheduler
 * time slice for a descheduled thread. Results never depend on it. */
#define CT_PAR_MIN 65536

/* ---- conv2d ----------------------------------------------------------------
 * y = conv(x, w) + b, square or rectangular kernel, stride, zero padding.
 * Lowered to im2col + GEMM over chunks of samples (src/nn/conv2d.c); 3x3, stride
 * 1, pad 1 with 8+ channels in and out and a batch of 64+ use Winograd F(2x2, 3x3),
 * F(3x3, 3x3) or F(4x4, 3x3) by map size, for the forward and both gradients
 * (src/nn/winograd.c). */
typedef struct {
    int64_t N, C, H, W;     /* input  (N, C, H, W)  */
    int64_t OC, KH, KW;     /* weight (OC, C, KH, KW) */
    int64_t stride, pad;
    int64_t OH, OW;         /* output (N, OC, OH, OW), filled by ct_conv2d_shape */
} ct_conv2d_shape;

/* Fills OH, OW; returns CT_ERR_ARG if the kernel does not fit the padded input. */
ct_status ct_conv2d_shape_init(ct_conv2d_shape *s, int64_t N, int64_t C, int64_t H, int64_t W,
                               int64_t OC, int64_t KH, int64_t KW, int64_t stride, int64_t pad);
/* Floats of scratch the forward and backward need (shared, sized once per model). */
size_t ct_conv2d_workspace(const ct_conv2d_shape *s);

void ct_conv2d_forward(float *y,        /* (N, OC, OH, OW) */
                       const float *x,  /* (N, C, H, W) */
                       const float *w,  /* (OC, C, KH, KW) */
                       const float *b,  /* (OC) or NULL */
                       const ct_conv2d_shape *s, float *ws);
/* overwrite != 0: dx is written, its old contents never read (the same bits as
 * accumulating into zeros); else accumulated like dw and db. */
void ct_conv2d_backward(float *dx,       /* (N, C, H, W) or NULL, accumulated */
                        float *dw,       /* (OC, C, KH, KW) or NULL, accumulated */
                        float *db,       /* (OC) or NULL, accumulated */
                        const float *dy, /* (N, OC, OH, OW) */
                        const float *x, const float *w, const ct_conv2d_shape *s, float *ws, int overwrite);

/* ---- batch normalisation ------------------------------------------------------
 * Over (N, C, HW): BatchNorm2d with HW = H*W, BatchNorm1d with HW = 1.
 * Training: normalise with batch statistics (biased variance), save mean and
 * 1/sqrt(var+eps), and update running stats with momentum using the unbiased
 * variance, exactly as PyTorch. Eval: normalise with the running statistics.
 * relu != 0 fuses a ReLU: y = max(0, bn(x)), and backward masks dy with
 * bn(x) > 0, recomputed from x and the saved statistics, so neither bn(x) nor y
 * is needed in backward: only x, mean and invstd. */
void ct_batchnorm_forward(float *y,             /* (N, C, HW) */
                          float *mean,          /* (C) saved (training) */
                          float *invstd,        /* (C) saved (training) */
                          float *running_mean,  /* (C) updated in training */
                          float *running_var,   /* (C) updated in training */
                          const float *x,       /* (N, C, HW) */
                          const float *gamma, const float *beta, /* (C) */
                          int64_t N, int64_t C, int64_t HW, float eps, float momentum,
                          int training, int relu);
/* Recomputes the forward's y from x and the saved mean/invstd: the same bits as
 * the forward wrote (for a consumer that needs y in backward after its buffer was
 * reused). One pass over x. */
void ct_batchnorm_apply(float *y,                                /* (N, C, HW) */
                        const float *x,                          /* (N, C, HW) */
                        const float *mean, const float *invstd,  /* (C) saved by the forward */
                        const float *gamma, const float *beta,   /* (C) */
                        int64_t N, int64_t C, int64_t HW, int relu);
/* Training-mode backward (batch statistics); in eval mode pass training = 0 and
 * the running statistics' mean/invstd. beta is read only with relu. dgamma and
 * dbeta are accumulated; dx too, unless overwrite != 0, when it is written and its
 * old contents never read (the same bits as accumulating into zeros). */
void ct_batchnorm_backward(float *dx, float *dgamma, float *dbeta,
                           const float *dy, const float *x, const float *mean,
                           const float *invstd, const float *gamma, const float *beta, int64_t N,
                           int64_t C, int64_t HW, int training, int relu, int overwrite);

/* BatchNorm (+ ReLU with relu != 0) followed by a 2x2, stride 2, unpadded max pool,
 * in one pass: y and argmax equal ct_maxpool_forward(k 2, stride 2, pad 0) over
 * ct_batchnorm_forward's output, bit for bit, but the full-size BN output is never
 * written. Odd maps drop the last row / column as the pool does (they still count
 * in the statistics). Statistics, running stats and training/eval as
 * ct_batchnorm_forward. */
void ct_batchnorm_maxpool_forward(float *y,            /* (N, C, H/2, W/2) */
                                  int32_t *argmax,     /* (N, C, H/2, W/2) flat index into the H x W plane */
                                  float *mean, float *invstd,            /* (C) saved */
                                  float *running_mean, float *running_var, /* (C) updated in training */
                                  const float *x,      /* (N, C, H, W) */
                                  const float *gamma, const float *beta, /* (C) */
                                  int64_t N, int64_t C, int64_t H, int64_t W, float eps, float momentum,
                                  int training, int relu);
/* Its backward from the pooled gradient: exactly ct_batchnorm_backward given the
 * dy that ct_maxpool_backward would scatter from dy and argmax into zeros, without
 * that full-size buffer. dx, dgamma, dbeta (any may be NULL) as there: accumulated,
 * dx written instead with overwrite != 0 (one pass over x fewer: the fast case). */
void ct_batchnorm_maxpool_backward(float *dx, float *dgamma, float *dbeta, /* (N, C, H, W), (C), (C) */
                                   const float *dy,        /* (N, C, H/2, W/2) */
                                   const int32_t *argmax,  /* (N, C, H/2, W/2) from the forward */
                                   const float *x,         /* (N, C, H, W) */
                                   const float *mean, const float *invstd, const float *gamma,
                                   const float *beta, int64_t N, int64_t C, int64_t H, int64_t W, int training,
                                   int relu, int overwrite);

/* SyncBatchNorm (training mode): statistics over the samples of every process.
 * `reduce` sums a double buffer in place over all processes (a no-op for one);
 * scratch holds 3*C + 2 doubles. dgamma/dbeta receive the local sums only (the
 * gradient all-reduce adds the rest); dx uses the global ones. */
typedef void (*ct_reduce_fn)(double *buf, size_t n, void *ctx);
void ct_batchnorm_forward_sync(float *y, float *mean, float *invstd, float *running_mean, float *running_var,
                               const float *x, const float *gamma, const float *beta, int64_t N, int64_t C,
                               int64_t HW, float eps, float momentum, int relu, double *scratch,
                               ct_reduce_fn reduce, void *ctx);
void ct_batchnorm_backward_sync(float *dx, float *dgamma, float *dbeta, const float *dy, const float *x,
                                const float *mean, const float *invstd, const float *gamma, const float *beta,
                                int64_t N, int64_t C, int64_t HW, int relu, double *scratch, ct_reduce_fn reduce,
                                void *ctx);

/* ---- linear: y = x W^T + b (PyTorch layout) ---------------------------------- */
void ct_linear_forward(float *y,         /* (N, OUT) */
                       const float *x,   /* (N, IN) */
                       const float *w,   /* (OUT, IN) */
                       const float *b,   /* (OUT) or NULL */
                       int64_t N, int64_t IN, int64_t OUT);
void ct_linear_backward(float *dx, float *dw, float *db, const float *dy, const float *x,
                        const float *w, int64_t N, int64_t IN, int64_t OUT);

/* ---- elementwise --------------------------------------------------------------- */
void ct_relu_forward(float *y, const float *x, size_t n);
/* Uses the forward output y (y > 0 exactly where x > 0). */
void ct_relu_backward(float *dx, const float *dy, const float *y, size_t n);
/* out = a + b (residual join); backward adds dy to both inputs. */
void ct_add_forward(float *y, const float *a, const float *b, size_t n);
/* y = max(0, a + b), the residual join and its ReLU in one pass (y may alias a or
 * b); backward adds dy where y > 0 to da and db (either may be NULL). */
void ct_add_relu_forward(float *y, const float *a, const float *b, size_t n);
void ct_add_relu_backward(float *da, float *db, const float *dy, const float *y, size_t n);
/* Inverted dropout: keep with probability 1-p and scale by 1/(1-p). The mask is
 * drawn from the counter-based generator keyed by `key` (e.g. seed, step, layer),
 * so it is the same at any thread count. mask: (n) saved scale factors (0 or 1/(1-p)). */
void ct_dropout_forward(float *y, float *mask, const float *x, size_t n, float p, uint64_t key);
void ct_dropout_backward(float *dx, const float *dy, const float *mask, size_t n);

/* ---- pooling ------------------------------------------------------------------
 * Max pool saves the flat input index of each output's maximum (argmax). Average
 * pool counts padded zeros (PyTorch's count_include_pad=True). Output size
 * floor((H + 2*pad - k) / stride) + 1. */
int64_t ct_pool_out(int64_t H, int64_t k, int64_t stride, int64_t pad);
void ct_maxpool_forward(float *y, int32_t *argmax, const float *x, int64_t N, int64_t C,
                        int64_t H, int64_t W, int64_t k, int64_t stride, int64_t pad);
void ct_maxpool_backward(float *dx, const float *dy, const int32_t *argmax, int64_t N, int64_t C,
                         int64_t OH, int64_t OW, int64_t H, int64_t W);
void ct_avgpool_forward(float *y, const float *x, int64_t N, int64_t C, int64_t H, int64_t W,
                        int64_t k, int64_t stride, int64_t pad);
void ct_avgpool_backward(float *dx, const float *dy, int64_t N, int64_t C, int64_t H, int64_t W,
                         int64_t k, int64_t stride, int64_t pad);
/* Global average pool (N, C, H, W) -> (N, C). */
void ct_gap_forward(float *y, const float *x, int64_t N, int64_t C, int64_t HW);
void ct_gap_backward(float *dx, const float *dy, int64_t N, int64_t C, int64_t HW);

/* ==== transformer layers ==========================================================
 * Token-major tensors: (B, T, C) is B sequences of T tokens of width C, row
 * b*T + t; the linear layers over tokens are ct_linear_* with N = B*T rows, the
 * residual join ct_add_forward, hidden-state dropout ct_dropout_*. valid: (B, T)
 * key-padding flags, 1 for a real token, 0 for padding; NULL means all real. */

/* ---- token and positional embeddings ----
 * y[n] = table[ids[n]]. Returns CT_ERR_ARG (writing nothing) if an id is outside
 * [0, V). The backward scatter-adds dy into the rows of dtable (accumulated),
 * deterministic at any thread count (threads split the columns). */
ct_status ct_embedding_forward(float *y,             /* (N, C) */
                               const int32_t *ids,   /* (N) in [0, V) */
                               const float *table,   /* (V, C) */
                               int64_t N, int64_t V, int64_t C);
void ct_embedding_backward(float *dtable,      /* (V, C) accumulated */
                           const float *dy,    /* (N, C) */
                           const int32_t *ids, /* (N) as given to the forward */
                           int64_t N, int64_t V, int64_t C);
/* Learned positions: y[b, t] = x[b, t] + pos[t]; y may alias x. pos is the first
 * T rows of a (T_max, C) table. Backward: dx += dy, dpos[t] += sum_b dy[b, t]
 * (summed in batch order); either may be NULL. */
void ct_posembed_forward(float *y,          /* (B, T, C) */
                         const float *x,    /* (B, T, C) */
                         const float *pos,  /* (T, C) */
                         int64_t B, int64_t T, int64_t C);
void ct_posembed_backward(float *dx,        /* (B, T, C) or NULL, accumulated */
                          float *dpos,      /* (T, C) or NULL, accumulated */
                          const float *dy,  /* (B, T, C) */
                          int64_t B, int64_t T, int64_t C);

/* ---- LayerNorm over the last dimension (nn.LayerNorm(C)) ----
 * y = (x - mean) * rstd * gamma + beta per row, biased variance, rstd =
 * 1/sqrt(var + eps). mean and rstd are saved for the backward (NULL to skip, e.g.
 * in eval); gamma / beta NULL mean 1 / 0. Backward: dx, dgamma, dbeta (any may
 * be NULL) accumulated; dgamma / dbeta sum the rows in row order. */
void ct_layernorm_forward(float *y,            /* (N, C) */
                          float *mean,         /* (N) saved or NULL */
                          float *rstd,         /* (N) saved or NULL */
                          const float *x,      /* (N, C) */
                          const float *gamma,  /* (C) or NULL */
                          const float *beta,   /* (C) or NULL */
                          int64_t N, int64_t C, float eps);
void ct_layernorm_backward(float *dx,           /* (N, C) or NULL, accumulated */
                           float *dgamma,       /* (C) or NULL, accumulated */
                           float *dbeta,        /* (C) or NULL, accumulated */
                           const float *dy,     /* (N, C) */
                           const float *x,      /* (N, C) */
                           const float *mean, const float *rstd, /* (N) from the forward */
                           const float *gamma,  /* (C) or NULL */
                           int64_t N, int64_t C);

/* ---- GELU ----
 * CT_GELU_ERF: x * Phi(x), PyTorch's nn.GELU() (Phi within 2e-7 absolute: a vectorised
 * erfc, see gelu.c); CT_GELU_TANH: the tanh
 * approximation, nn.GELU(approximate='tanh'). y may alias x in the forward; the
 * backward needs the forward's input x. dx accumulated. */
typedef enum { CT_GELU_ERF = 0, CT_GELU_TANH = 1 } ct_gelu_kind;
void ct_gelu_forward(float *y, const float *x, size_t n, ct_gelu_kind kind);
void ct_gelu_backward(float *dx, const float *dy, const float *x, size_t n, ct_gelu_kind kind);

/* ---- multi-head self-attention ----
 * qkv: (B, T, 3C) the fused projection, [q | k | v] per token, head h in columns
 * h*D .. h*D+D-1 of each (D = C / H; C must be a multiple of H). Per head:
 * y = dropout(softmax(Q K^T / sqrt(D) + masks)) V, heads concatenated into (B, T, C)
 * (before the output projection). Keys with valid[b, j] == 0 are masked, and
 * with causal != 0 keys j > i; softmax subtracts the row maximum, and a query
 * with no visible key gets all-zero probabilities and output (not NaN).
 * Dropout on the probabilities, keep 1-p and scale 1/(1-p), 0 <= p < 1: the mask
 * of (b, h, i, j) comes from the counter-based generator keyed by (key, b*H + h,
 * i), so it is the same at any thread count and differs between keys; it is
 * never stored (the backward regenerates it from the same p and key).
 * att (saved): the probabilities before dropout. ws: scratch, needed only when
 * p > 0 (may be NULL otherwise); on return it holds the probabilities after
 * dropout. Complexity O(B H T^2 D), through ct_gemm. */
void ct_attention_forward(float *y,             /* (B, T, C) */
                          float *att,           /* (B, H, T, T) saved */
                          float *ws,            /* (B, H, T, T) scratch, or NULL when p == 0 */
                          const float *qkv,     /* (B, T, 3C) */
                          const uint8_t *valid, /* (B, T) or NULL */
                          int64_t B, int64_t T, int64_t C, int64_t H, int causal, float p, uint64_t key);
/* dqkv accumulated. p and key as given to the forward (the dropout mask is
 * regenerated from them); the padding and causal masks are not passed again:
 * masked probabilities are 0 in att and pass no gradient. ws: scratch, always
 * needed, overwritten. */
void ct_attention_backward(float *dqkv,         /* (B, T, 3C) accumulated */
                           float *ws,           /* (B, H, T, T) scratch */
                           const float *dy,     /* (B, T, C) */
                           const float *att,    /* (B, H, T, T) from the forward */
                           const float *qkv,    /* (B, T, 3C) */
                           int64_t B, int64_t T, int64_t C, int64_t H, float p, uint64_t key);

/* ---- pooling over tokens: (B, T, C) -> (B, C) ----
 * MEAN: the mean over valid tokens; FIRST: token 0 (a CLS token, whatever the
 * mask says); LAST: the last valid token (EOT, with right padding). A sequence
 * with no valid token gives zeros and no gradient under MEAN and LAST. dx
 * accumulated. */
typedef enum { CT_TOKPOOL_MEAN = 0, CT_TOKPOOL_FIRST = 1, CT_TOKPOOL_LAST = 2 } ct_tokpool_mode;
void ct_tokpool_forward(float *y,             /* (B, C) */
                        const float *x,       /* (B, T, C) */
                        const uint8_t *valid, /* (B, T) or NULL */
                        int64_t B, int64_t T, int64_t C, ct_tokpool_mode mode);
void ct_tokpool_backward(float *dx,            /* (B, T, C) accumulated */
                         const float *dy,      /* (B, C) */
                         const uint8_t *valid, /* (B, T) or NULL */
                         int64_t B, int64_t T, int64_t C, ct_tokpool_mode mode);

CT_END_API
#ifdef __cplusplus
}
#endif
#endif
