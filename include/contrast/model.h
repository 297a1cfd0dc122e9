/* contrast/model.h: models as an ordered list of nodes over one parameter buffer.
 *
 * A model is a small DAG in topological order: each node reads one input node
 * (two for the residual ADD) and writes one output. Forward walks the list,
 * backward walks it in reverse, accumulating gradients. Parameters live in one
 * contiguous buffer `param`, gradients in `grad` with the same layout, BatchNorm
 * running statistics in `buf`; each tensor is a row of a ct_tensor_info table
 * with its PyTorch state_dict name (encoder.layer1.0.conv1.weight, head.0.bias).
 *
 * Activations and their gradients come from one arena sized by
 * ct_model_prepare(m, batch); no allocation happens in forward or backward.
 *
 * Usage:
 *   ct_model m; ct_model_config cfg; ct_model_config_default(&cfg);
 *   ct_model_init(&m, &cfg);             // builds encoder + head, initialises
 *   ct_model_prepare(&m, 512);           // arena for up to 512 samples
 *   ct_model_forward(&m, x, 512, 1, 1);  // training mode, through the head
 *   ... loss gives dz (512, embed_dim) ...
 *   ct_model_zero_grad(&m); ct_model_backward(&m, dz);
 *
 * Transformer encoders: cfg.encoder = CT_ENC_VIT reads images like the CNNs;
 * CT_ENC_TRANSFORMER reads token ids instead:
 *   cfg.encoder = CT_ENC_TRANSFORMER; cfg.width = 256; cfg.vocab = 8192; cfg.context = 32;
 *   ct_model_init(&m, &cfg); ct_model_prepare(&m, 512);
 *   m.dropout_step = step;               // keys this step's dropout masks
 *   ct_model_forward_tokens(&m, ids, valid, 512, 1, 1);  // ids, valid: (512, 32)
 */
#ifndef CONTRAST_MODEL_H
#define CONTRAST_MODEL_H
#include "contrast/core.h"
#include "contrast/nn.h"

#ifdef __cplusplus
extern "C" {
#endif
CT_BEGIN_API

typedef enum { CT_ENC_CNN = 0, CT_ENC_RESNET18 = 1, CT_ENC_TRANSFORMER = 2, CT_ENC_VIT = 3 } ct_encoder_kind;

/* How a transformer encoder turns its tokens into the feature vector h:
 * DEFAULT is CLS for the ViT and MEAN for the text transformer. MEAN averages
 * the valid (non-padded) tokens (the ViT's CLS token included: x.mean(1)); CLS
 * takes token 0; EOT the last valid token (CLIP's text tower). */
typedef enum { CT_POOL_DEFAULT = 0, CT_POOL_MEAN = 1, CT_POOL_CLS = 2, CT_POOL_EOT = 3 } ct_pool_kind;

typedef struct {
    ct_encoder_kind encoder; /* CT_ENC_CNN (default) or CT_ENC_RESNET18 */
    int width;               /* base width: channels w, 2w, 4w, 8w (CNN default 32, ResNet 64) */
    int last_width;          /* CNN only: channels of the 4th stage, i.e. the feature size of h
                              * (0: 8w, the default; contrast train's default is 16w) */
    int in_c, in_h, in_w;    /* input image shape (default 1 x 28 x 28) */
    int head_hidden;         /* projection head hidden size; 0 = no head (z = h); -1 = a single
                              * linear projection to head_out without bias ("head.weight"
                              * (head_out, features): CLIP's towers) */
    int head_out;            /* projection output size (default 128) */
    int head_bn;             /* BatchNorm1d between the head's linears (default 1) */
    float whiten;            /* > 0: the model carries a ZCA whitening of its features h for
                              * evaluation and embeddings (buffers whiten.mean, whiten.weight),
                              * fit after training with this shrinkage (ct_whiten_fit's eps);
                              * 0 = none (default; contrast train uses 1e-4) */
    uint64_t seed;           /* initialisation seed */
    /* Transformer encoders (CT_ENC_TRANSFORMER, CT_ENC_VIT); `width` is their model
     * width C, a multiple of `heads`. The text transformer reads token ids
     * (ct_model_forward_tokens), the ViT images (in_c x in_h x in_w, multiples of
     * `patch`). Both: L pre-LayerNorm blocks (LN, attention, residual; LN, a 4C MLP
     * with exact GELU, residual), a final LayerNorm, pooling to h (C features). */
    int depth;               /* L blocks (default 4) */
    int heads;               /* H attention heads (default 4) */
    int patch;               /* ViT: p x p patches (default 4: 49 patches + CLS for 28x28) */
    int vocab;               /* text: vocabulary size V (default 8192) */
    int context;             /* text: tokens per sequence T (default 32) */
    int causal;              /* text: causal attention mask (default 0) */
    float dropout;           /* p of every dropout: embeddings, attention probabilities and
                              * both residual branches (default 0.1; 0 = no dropout nodes) */
    ct_pool_kind pool;       /* default CT_POOL_DEFAULT (CLS for the ViT, MEAN for text) */
} ct_model_config;

void ct_model_config_default(ct_model_config *cfg);
const char *ct_encoder_name(ct_encoder_kind k);
/* Parses "cnn", "resnet18", "transformer" or "vit"; CT_ERR_ARG otherwise. */
ct_status ct_encoder_parse(const char *s, ct_encoder_kind *out);
/* "default", "mean", "cls", "eot" and the inverse (CT_ERR_ARG for another name). */
const char *ct_pool_name(ct_pool_kind k);
ct_status ct_pool_parse(const char *s, ct_pool_kind *out);

typedef enum {
    CT_NODE_INPUT, CT_NODE_CONV, CT_NODE_BN, CT_NODE_RELU, CT_NODE_MAXPOOL, CT_NODE_AVGPOOL,
    CT_NODE_GAP, CT_NODE_FLATTEN, CT_NODE_LINEAR, CT_NODE_DROPOUT, CT_NODE_ADD,
    CT_NODE_TOKEN_EMBED, CT_NODE_PATCH_EMBED, CT_NODE_LAYERNORM, CT_NODE_ATTENTION, CT_NODE_GELU,
    CT_NODE_TOKPOOL,
    CT_NODE_KIND_COUNT       /* not a kind: how many there are */
} ct_node_kind;

/* One node of the graph as built: what it computes, from what, at what shape. A
 * token sequence (seq != 0) is T = h tokens of width c, token-major: sample b's
 * token t is row b*T + t of c floats (w = 1); linear, LayerNorm, GELU, dropout and
 * add work on its rows. Where
 * its output and gradient live is the activation plan's (ct_model_prepare), private
 * to the library: read outputs with ct_model_features / ct_model_embedding. */
typedef struct {
    ct_node_kind kind;
    int in0, in1;            /* input node indices (in1: ADD only, else -1) */
    int64_t c, h, w;         /* output shape of one sample (vectors: h = w = 1) */
    int64_t k, stride, pad;  /* conv / pool geometry */
    int weight, bias;        /* rows of the parameter table, -1 if none */
    int rmean, rvar;         /* rows of the buffer table (BN running stats), -1 if none */
    float eps, momentum, p;  /* BN eps and momentum, dropout probability */
    int relu;                /* BN, ADD: a fused ReLU on the output */
    int remat;               /* CONV: recompute the output in backward instead of keeping it
                              * (ct_model_recompute); BN outputs are recomputed when possible */
    int seq;                 /* the output is a token sequence (h tokens of c) */
    int pos, cls;            /* embeddings: rows of the positions (1, T, C) and the CLS token
                              * (1, 1, C), -1 if none */
    int64_t heads;           /* ATTENTION: H */
    int causal;              /* ATTENTION: causal mask */
    int mode;                /* TOKPOOL: ct_tokpool_mode */
} ct_node;

typedef struct ct_model_plan ct_model_plan; /* opaque */

typedef struct {
    ct_model_config cfg;
    ct_node *nodes;
    int nnodes, cap_nodes;
    ct_tensor_info *params;  /* parameter table, in state_dict order */
    int nparams, cap_params;
    size_t nparam_floats;
    ct_tensor_info *bufs;    /* buffer table: BN running_mean / running_var */
    int nbufs, cap_bufs;
    size_t nbuf_floats;
    float *param, *grad, *buf; /* flat buffers */
    int h_node, z_node;      /* encoder output (features) and head output (embedding) */
    int whiten_mean, whiten_weight; /* rows of the buffer table (cfg.whiten > 0), else -1 */
    int whiten_fitted;       /* the whitening buffers hold a fit for the current parameters
                              * (identity until ct_model_set_whitening) */
    ct_status build_status;  /* first error while building (sticky) */
    ct_reduce_fn bn_reduce;  /* non-NULL: training BN uses statistics over all processes (SyncBN) */
    void *bn_reduce_ctx;
    uint64_t dropout_step;   /* keys dropout masks together with cfg.seed; set by the trainer */
    /* activation arena */
    int64_t batch;           /* samples the arena holds (0 before prepare) */
    ct_arena arena;          /* arena.cap: its size in bytes */
    ct_model_plan *plan;     /* the library's: where each node's buffers are in the arena and
                              * the last forward's state (NULL before prepare) */
    int shares_slabs;        /* param/grad/buf belong to another model (ct_model_init_resized) */
} ct_model;

/* Builds the configured encoder and head, allocates and initialises parameters
 * (convolutions: Kaiming normal, fan_out, as torchvision's ResNet; linears:
 * PyTorch's default uniform; BN: gamma 1, beta 0, running var 1; transformer
 * encoders as ViT / BERT: trunc normal 0.02 linears, embeddings, positions and CLS
 * token, zero biases, LayerNorm 1 / 0). Deterministic from cfg.seed. */
ct_status ct_model_init(ct_model *m, const ct_model_config *cfg);
void ct_model_free(ct_model *m);
/* The same built-in model for another input size, sharing m's parameter, gradient
 * and buffer slabs (both end in global pooling, so the tensors are the same): e.g.
 * training on smaller views while m evaluates full images. Has its own arena; free
 * it before m. */
ct_status ct_model_init_resized(ct_model *t, const ct_model *m, int in_h, int in_w);
/* Elements in the parameters and buffers of the model `cfg` describes, without
 * allocating them (e.g. to check a checkpoint is large enough before building). */
ct_status ct_model_count(const ct_model_config *cfg, size_t *numel);

/* Sizes the activation arena for up to `batch` samples; call again only to grow. */
ct_status ct_model_prepare(ct_model *m, int64_t batch);

/* Forward over x: (N, in_c, in_h, in_w), N <= prepared batch. training != 0 uses
 * batch statistics and updates BN running stats. through_head == 0 stops at the
 * encoder output (h), e.g. for evaluation. x must stay valid until backward.
 * CT_ERR_ARG for a model that reads tokens (ct_model_takes_tokens). */
ct_status ct_model_forward(ct_model *m, const float *x, int64_t N, int training, int through_head);
/* The same for a model over token ids (the text transformer):
 *   ids:   (N, T) int32 in [0, vocab), T = cfg.context; checked first (CT_ERR_ARG)
 *   valid: (N, T) 1 for a real token, 0 for padding (keys masked in attention,
 *          skipped by MEAN / EOT pooling), or NULL: all real
 * Both must stay valid until backward. Dropout masks are keyed by (cfg.seed,
 * m->dropout_step, node, element): two forwards with different steps draw
 * different masks (SimCSE's two views of one sentence). CT_ERR_ARG for an
 * image model. */
ct_status ct_model_forward_tokens(ct_model *m, const int32_t *ids, const uint8_t *valid, int64_t N, int training,
                                  int through_head);
/* Whether the model's input is token ids (ct_model_forward_tokens) rather than images. */
int ct_model_takes_tokens(const ct_model *m);
/* Backward from dtop: (N, embed_dim) the gradient of the loss w.r.t. z, or
 * (N, feature_dim) w.r.t. h if the last forward stopped there. Accumulates into
 * m->grad (call ct_model_zero_grad first); x and the activations of the last
 * forward must be untouched since. */
ct_status ct_model_backward(ct_model *m, const float *dtop);
void ct_model_zero_grad(ct_model *m);
/* The same two passes one node at a time, for profilers: forward_begin + node_forward
 * for i = 1..top equals ct_model_forward; backward_begin + node_backward for
 * i = top..1 equals ct_model_backward, where top is z_node through the head, else h_node. */
ct_status ct_model_forward_begin(ct_model *m, const float *x, int64_t N, int training, int through_head);
ct_status ct_model_forward_tokens_begin(ct_model *m, const int32_t *ids, const uint8_t *valid, int64_t N,
                                        int training, int through_head);
void ct_model_node_forward(ct_model *m, int i);
ct_status ct_model_backward_begin(ct_model *m, const float *dtop);
void ct_model_node_backward(ct_model *m, int i);

/* Stores a whitening (mean (D), W (D, D) from ct_whiten_fit) in the model's buffers and
 * marks it fitted; CT_ERR_ARG if the model has no whitening (cfg.whiten == 0). */
ct_status ct_model_set_whitening(ct_model *m, const float *mean, const float *W);

/* After a forward: features h (N, feature_dim) and embedding z (N, embed_dim). h is
 * the encoder's raw output; the whitening is applied by ct_extract_features. */
const float *ct_model_features(const ct_model *m);
const float *ct_model_embedding(const ct_model *m);
int64_t ct_model_feature_dim(const ct_model *m);
int64_t ct_model_embed_dim(const ct_model *m);
/* Looks up a parameter (or, with buffers != 0, a buffer) by name; NULL if absent. */
const ct_tensor_info *ct_model_find(const ct_model *m, const char *name, int buffers);

/* ---- building blocks, for custom models and tests ----------------------------
 * ct_model_begin starts an empty model; each add returns the new node's index, or
 * -1 with m->build_status and the message set (an input index that is not a node
 * built so far is CT_ERR_ARG; after a failure every later add returns -1 and the
 * first error stays); ct_model_finish allocates and initialises. Names are
 * prefixes for the node's tensors ("encoder.conv1" -> "encoder.conv1.weight"). */
ct_status ct_model_begin(ct_model *m, const ct_model_config *cfg);
int ct_model_add_conv(ct_model *m, int in, int64_t oc, int64_t k, int64_t stride, int64_t pad,
                      int bias, const char *name);
int ct_model_add_bn(ct_model *m, int in, const char *name);
/* BatchNorm followed by ReLU as one node (same parameters and names as add_bn):
 * one pass forward and backward, and its output need not be kept for backward. */
int ct_model_add_bn_relu(ct_model *m, int in, const char *name);
int ct_model_add_relu(ct_model *m, int in);
int ct_model_add_maxpool(ct_model *m, int in, int64_t k, int64_t stride, int64_t pad);
int ct_model_add_avgpool(ct_model *m, int in, int64_t k, int64_t stride, int64_t pad);
int ct_model_add_gap(ct_model *m, int in);
int ct_model_add_flatten(ct_model *m, int in);
int ct_model_add_linear(ct_model *m, int in, int64_t out, int bias, const char *name);
int ct_model_add_dropout(ct_model *m, int in, float p);
int ct_model_add_add(ct_model *m, int a, int b);
/* relu(a + b) as one node (the end of a residual block). */
int ct_model_add_add_relu(ct_model *m, int a, int b);
/* Marks a node whose output the backward recomputes (its forward run again on
 * its input, just before the first backward that needs it) instead of keeping it
 * from the forward: activation checkpointing of one layer, trading that conv's
 * forward time for its output's memory. Gradients are bit-identical either way.
 * Conv, linear, LayerNorm, attention and GELU nodes can be marked (CT_ERR_ARG for
 * another kind); the planner keeps an output anyway where another node writes over
 * it (an in-place add). Call before ct_model_prepare. */
ct_status ct_model_recompute(ct_model *m, int node);
/* Marks, for ct_model_recompute, every conv whose input stays available anyway:
 * the network input's (the stem) and those whose input another node reads too (a
 * residual block's first conv and its 1x1 shortcut, whose input the residual add
 * and the other conv keep). A ResNet basic block then keeps two of its three
 * activations for backward: at width 64, batch 512 of 28x28, 1051 instead of 1622
 * MiB of activations for ~14% more step time; the CNN gains only its stem's output.
 * Returns how many convs are marked (`contrast train --recompute`). */
int ct_model_recompute_convs(ct_model *m);
/* Marks, for ct_model_recompute, every LayerNorm, attention, GELU and linear over
 * tokens of the transformer blocks: a block then keeps for its backward only its
 * two residual streams, its dropout masks and the LayerNorm statistics; the rest
 * (the normalised inputs, qkv, the (B, H, T, T) attention probabilities, the 4C
 * MLP activations) is rebuilt one block at a time, just before the backward of the
 * block's output projection and of its fc2. Costs about one more forward of the
 * blocks per step. Returns how many nodes are marked (`contrast train --recompute`). */
int ct_model_recompute_blocks(ct_model *m);
/* ResNet basic block: conv3x3(stride)-BN-ReLU-conv3x3-BN + shortcut, then ReLU.
 * The shortcut is a 1x1 conv (stride) + BN ("<name>.downsample.0/1") when the
 * stride or the channel count changes, else the identity. */
int ct_model_add_basic_block(ct_model *m, int in, int64_t planes, int64_t stride, const char *name);

/* ---- transformer building blocks ----
 * A model whose cfg.encoder is CT_ENC_TRANSFORMER starts (ct_model_begin) from a
 * token-id input node (1 x context x 1, seq); every other from an image. Linears
 * over a token sequence act on its rows (nn.Linear on (B, T, C)). Encoder tensors
 * start as ViT / BERT: linears, embeddings, positions and the CLS token trunc
 * normal (std 0.02, cut at 2 std), their biases 0, LayerNorm weight 1 and bias 0.
 *
 * Token + learned positional embedding of the token input `in` (node 0):
 * "<name>.tok_embed.weight" (V, C) and "<name>.pos_embed" (1, T, C); output T x C. */
int ct_model_add_token_embed(ct_model *m, int in, int64_t vocab, int64_t dim, const char *name);
/* Patch embedding of an image node: p x p patches (the image a multiple of p), a
 * linear map of each (nn.Conv2d(in_c, C, p, stride=p): "<name>.patch_embed.weight"
 * (C, in_c, p, p) and ".bias" (C)), a CLS token in front ("<name>.cls_token"
 * (1, 1, C)) and learned positions ("<name>.pos_embed" (1, 1 + P, C)); output
 * (1 + P) x C, P = (H / p) (W / p). */
int ct_model_add_patch_embed(ct_model *m, int in, int64_t patch, int64_t dim, const char *name);
/* nn.LayerNorm(C), eps 1e-5, over the rows of a token sequence ("<name>.weight", ".bias"). */
int ct_model_add_layernorm(ct_model *m, int in, const char *name);
/* Multi-head self-attention from a fused projection `in` (T x 3C: [q | k | v]) to
 * T x C (heads concatenated, before the output projection), with the input's key
 * padding mask (text), an optional causal mask and dropout p on the probabilities,
 * keyed by (cfg.seed, dropout_step, node). Saves the (B, H, T, T) probabilities. */
int ct_model_add_attention(ct_model *m, int in, int64_t heads, int causal, float p);
/* The exact (erf) GELU, nn.GELU(). */
int ct_model_add_gelu(ct_model *m, int in);
/* A token sequence to one vector of C per sample (ct_tokpool_mode; MEAN and LAST
 * read the input's padding mask). */
int ct_model_add_tokpool(ct_model *m, int in, ct_tokpool_mode mode);
/* One pre-LN block over T x C: x + proj(attn(qkv(ln1(x)))), then + fc2(gelu(fc1(ln2(.)))),
 * with dropout p (if > 0) on the attention probabilities and on both branches
 * before their residual add. Names "<name>.ln1", ".attn.qkv", ".attn.proj",
 * ".ln2", ".mlp.fc1" (4C), ".mlp.fc2". */
int ct_model_add_transformer_block(ct_model *m, int in, int64_t heads, int causal, float p, const char *name);
ct_status ct_model_finish(ct_model *m, int h_node, int z_node);

CT_END_API
#ifdef __cplusplus
}
#endif
#endif
