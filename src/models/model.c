/* model.c: building a model: the node list, its parameter and buffer tables, the
 * building blocks (ct_model_add_*), the built-in encoders and head, initialisation.
 *
 * Building records shapes and table rows only; ct_model_finish allocates the flat
 * parameter, gradient and buffer slabs once. ct_model_prepare (plan.c) lays every
 * node's output, its gradient and its saved values into one arena, and the passes
 * (exec.c) run each node through its kind's functions (nodes.c); internal.h has the
 * map of these files.
 *
 * Adding a node kind (say CT_NODE_GELU):
 *  1. model.h: its CT_NODE_* value before CT_NODE_KIND_COUNT, any new geometry it
 *     needs in ct_node (e.g. a head count), and a ct_model_add_gelu declaration.
 *  2. here: ct_model_add_gelu, which checks its input (check_input), works out the
 *     output shape, calls new_node and adds its parameter rows with add_tensor.
 *  3. nodes.c: a section with its forward and backward (and, if it has them, its
 *     recompute, its saved buffers `saves` and its parameter `init`), and its row in
 *     ct_node_kinds[] with the planner facts (CT_KIND_* in internal.h): does its
 *     backward read its input or its own output, can it run in place, may it
 *     overwrite its input's gradient. The planner and the passes need no edit.
 *  4. tests/test_nn.c: a finite-difference check of a small model using it. */
#include "internal.h"

#include <stdio.h>
#include <string.h>

/* ---- building ---------------------------------------------------------------- */

static void *grow(void *p, int *cap, int need, size_t elem) {
    if (need <= *cap) return p;
    int nc = *cap ? *cap * 2 : 32;
    while (nc < need) nc *= 2;
    void *q = ct_alloc((size_t)nc * elem);
    if (!q) return NULL;
    if (p) memcpy(q, p, (size_t)*cap * elem);
    ct_free(p);
    *cap = nc;
    return q;
}

static int fail(ct_model *m, ct_status st) {
    if (m->build_status == CT_OK) m->build_status = st;
    return -1;
}

/* Checks the input index of an add before anything reads m->nodes[in]: after an
 * earlier failure (whose add returned -1) that first error stays; otherwise an index
 * that is not a node built so far sets CT_ERR_ARG. Returns 1 if m->nodes[in] may be read. */
static int check_input(ct_model *m, int in, const char *what) {
    if (m->build_status != CT_OK) return 0;
    if (in >= 0 && in < m->nnodes) return 1;
    fail(m, ct_error(CT_ERR_ARG, "model: %s: input node %d is not one of the %d nodes built so far", what, in,
                     m->nnodes));
    return 0;
}

/* check_input, and that `in` is an image or vector, not a token sequence (kinds
 * whose kernels read NCHW maps) */
static int check_image(ct_model *m, int in, const char *what) {
    if (!check_input(m, in, what)) return 0;
    if (!m->nodes[in].seq) return 1;
    fail(m, ct_error(CT_ERR_ARG, "model: %s: input node %d is a token sequence (an NCHW map is expected)", what, in));
    return 0;
}

/* check_input, and that `in` is rows of C: a token sequence or a vector */
static int check_rows(ct_model *m, int in, const char *what) {
    if (!check_input(m, in, what)) return 0;
    if (m->nodes[in].seq || (m->nodes[in].h == 1 && m->nodes[in].w == 1)) return 1;
    fail(m, ct_error(CT_ERR_ARG, "model: %s: input is %lldx%lldx%lld, flatten it first", what,
                     (long long)m->nodes[in].c, (long long)m->nodes[in].h, (long long)m->nodes[in].w));
    return 0;
}

/* Appends a node reading `in` (checked by the caller, -1 for the network input). */
static int new_node(ct_model *m, ct_node_kind kind, int in, int64_t c, int64_t h, int64_t w) {
    if (m->build_status != CT_OK) return -1;
    ct_node *nodes = grow(m->nodes, &m->cap_nodes, m->nnodes + 1, sizeof(ct_node));
    if (!nodes) return fail(m, CT_ERR_NOMEM);
    m->nodes = nodes;
    ct_node *n = &m->nodes[m->nnodes];
    memset(n, 0, sizeof *n);
    n->kind = kind;
    n->in0 = in;
    n->in1 = -1;
    n->c = c; n->h = h; n->w = w;
    n->weight = n->bias = n->rmean = n->rvar = -1;
    return m->nnodes++;
}

/* Adds a row to the parameter (or buffer) table; returns its index or -1. */
static int add_tensor(ct_model *m, int buffer, const char *prefix, const char *suffix, int ndim,
                      const int64_t *shape, int flags) {
    if (m->build_status != CT_OK) return -1;
    ct_tensor_info **tab = buffer ? &m->bufs : &m->params;
    int *count = buffer ? &m->nbufs : &m->nparams, *cap = buffer ? &m->cap_bufs : &m->cap_params;
    size_t *total = buffer ? &m->nbuf_floats : &m->nparam_floats;
    ct_tensor_info *t = grow(*tab, cap, *count + 1, sizeof(ct_tensor_info));
    if (!t) return fail(m, CT_ERR_NOMEM);
    *tab = t;
    ct_tensor_info *ti = &t[*count];
    memset(ti, 0, sizeof *ti);
    if ((size_t)snprintf(ti->name, CT_MAX_NAME, "%s.%s", prefix, suffix) >= CT_MAX_NAME)
        return fail(m, ct_error(CT_ERR_ARG, "model: tensor name '%s.%s' too long", prefix, suffix));
    ti->ndim = ndim;
    size_t numel = 1;
    for (int i = 0; i < ndim; i++) {
        ti->shape[i] = shape[i];
        numel *= (size_t)shape[i];
    }
    ti->numel = numel;
    /* keep every tensor 64-byte aligned inside the slab (16 floats) */
    ti->offset = (*total + 15) & ~(size_t)15;
    *total = ti->offset + numel;
    ti->flags = flags;
    return (*count)++;
}

ct_status ct_model_begin(ct_model *m, const ct_model_config *cfg) {
    memset(m, 0, sizeof *m);
    m->cfg = *cfg;
    m->h_node = m->z_node = -1;
    m->whiten_mean = m->whiten_weight = -1;
    if (cfg->encoder == CT_ENC_TRANSFORMER) { /* token ids: one int32 per token */
        if (cfg->context < 1 || cfg->context > 65536)
            return ct_error(CT_ERR_ARG, "model: context %d out of range (1-65536 tokens)", cfg->context);
        if (new_node(m, CT_NODE_INPUT, -1, 1, cfg->context, 1) == 0) m->nodes[0].seq = 1;
        return m->build_status;
    }
    if (cfg->in_c < 1 || cfg->in_h < 1 || cfg->in_w < 1 || cfg->in_c > 4096 || cfg->in_h > 8192 || cfg->in_w > 8192)
        return ct_error(CT_ERR_ARG, "model: bad input shape %dx%dx%d", cfg->in_c, cfg->in_h, cfg->in_w);
    new_node(m, CT_NODE_INPUT, -1, cfg->in_c, cfg->in_h, cfg->in_w);
    return m->build_status;
}

int ct_model_add_conv(ct_model *m, int in, int64_t oc, int64_t k, int64_t stride, int64_t pad,
                      int bias, const char *name) {
    if (!check_image(m, in, "conv")) return -1;
    const int64_t in_c = m->nodes[in].c; /* a copy: new_node may move m->nodes */
    ct_conv2d_shape s;
    ct_status st = ct_conv2d_shape_init(&s, 1, in_c, m->nodes[in].h, m->nodes[in].w, oc, k, k, stride, pad);
    if (st) return fail(m, st);
    int id = new_node(m, CT_NODE_CONV, in, oc, s.OH, s.OW);
    if (id < 0) return -1;
    int64_t wshape[4] = {oc, in_c, k, k}, bshape[1] = {oc};
    int wi = add_tensor(m, 0, name, "weight", 4, wshape, 0);
    int bi = bias ? add_tensor(m, 0, name, "bias", 1, bshape, CT_TENSOR_NO_DECAY) : -1;
    ct_node *n = &m->nodes[id];
    n->k = k; n->stride = stride; n->pad = pad;
    n->weight = wi; n->bias = bi;
    return m->build_status ? -1 : id;
}

int ct_model_add_bn(ct_model *m, int in, const char *name) {
    if (!check_image(m, in, "batchnorm")) return -1;
    const ct_node src = m->nodes[in];
    int id = new_node(m, CT_NODE_BN, in, src.c, src.h, src.w);
    if (id < 0) return -1;
    int64_t shape[1] = {src.c};
    int wi = add_tensor(m, 0, name, "weight", 1, shape, CT_TENSOR_NO_DECAY);
    int bi = add_tensor(m, 0, name, "bias", 1, shape, CT_TENSOR_NO_DECAY);
    int rm = add_tensor(m, 1, name, "running_mean", 1, shape, 0);
    int rv = add_tensor(m, 1, name, "running_var", 1, shape, 0);
    ct_node *n = &m->nodes[id];
    n->weight = wi; n->bias = bi; n->rmean = rm; n->rvar = rv;
    n->eps = 1e-5f;
    n->momentum = 0.1f;
    return m->build_status ? -1 : id;
}

int ct_model_add_bn_relu(ct_model *m, int in, const char *name) {
    int id = ct_model_add_bn(m, in, name);
    if (id >= 0) m->nodes[id].relu = 1;
    return id;
}

static int same_shape(ct_model *m, ct_node_kind kind, int in) {
    if (!check_input(m, in, ct_node_kinds[kind].name)) return -1;
    const ct_node src = m->nodes[in];
    int id = new_node(m, kind, in, src.c, src.h, src.w);
    if (id >= 0) m->nodes[id].seq = src.seq;
    return id;
}

int ct_model_add_relu(ct_model *m, int in) { return same_shape(m, CT_NODE_RELU, in); }

int ct_model_add_dropout(ct_model *m, int in, float p) {
    if (!(p >= 0.0f && p < 1.0f)) return fail(m, ct_error(CT_ERR_ARG, "dropout: p=%g not in [0, 1)", p));
    int id = same_shape(m, CT_NODE_DROPOUT, in);
    if (id >= 0) m->nodes[id].p = p;
    return id;
}

static int add_pool(ct_model *m, ct_node_kind kind, int in, int64_t k, int64_t stride, int64_t pad) {
    if (!check_image(m, in, ct_node_kinds[kind].name)) return -1;
    const ct_node src = m->nodes[in];
    if (k < 1 || stride < 1 || pad < 0 || 2 * pad > k || src.h + 2 * pad < k || src.w + 2 * pad < k)
        return fail(m, ct_error(CT_ERR_ARG, "pool: kernel %lld stride %lld pad %lld does not fit %lldx%lld",
                                (long long)k, (long long)stride, (long long)pad, (long long)src.h, (long long)src.w));
    int id = new_node(m, kind, in, src.c, ct_pool_out(src.h, k, stride, pad), ct_pool_out(src.w, k, stride, pad));
    if (id < 0) return -1;
    m->nodes[id].k = k; m->nodes[id].stride = stride; m->nodes[id].pad = pad;
    return id;
}

int ct_model_add_maxpool(ct_model *m, int in, int64_t k, int64_t stride, int64_t pad) {
    return add_pool(m, CT_NODE_MAXPOOL, in, k, stride, pad);
}

int ct_model_add_avgpool(ct_model *m, int in, int64_t k, int64_t stride, int64_t pad) {
    return add_pool(m, CT_NODE_AVGPOOL, in, k, stride, pad);
}

int ct_model_add_gap(ct_model *m, int in) {
    if (!check_image(m, in, "gap")) return -1;
    return new_node(m, CT_NODE_GAP, in, m->nodes[in].c, 1, 1);
}

int ct_model_add_flatten(ct_model *m, int in) {
    if (!check_image(m, in, "flatten")) return -1;
    const ct_node src = m->nodes[in];
    return new_node(m, CT_NODE_FLATTEN, in, src.c * src.h * src.w, 1, 1);
}

int ct_model_add_linear(ct_model *m, int in, int64_t out, int bias, const char *name) {
    if (!check_rows(m, in, "linear")) return -1;
    const ct_node src = m->nodes[in];
    if (out < 1) return fail(m, ct_error(CT_ERR_ARG, "linear '%s': %lld outputs", name, (long long)out));
    int id = new_node(m, CT_NODE_LINEAR, in, out, src.h, 1); /* over the rows of a sequence */
    if (id < 0) return -1;
    m->nodes[id].seq = src.seq;
    int64_t wshape[2] = {out, src.c}, bshape[1] = {out};
    m->nodes[id].weight = add_tensor(m, 0, name, "weight", 2, wshape, 0);
    m->nodes[id].bias = bias ? add_tensor(m, 0, name, "bias", 1, bshape, CT_TENSOR_NO_DECAY) : -1;
    return m->build_status ? -1 : id;
}

int ct_model_add_add(ct_model *m, int a, int b) {
    if (!check_input(m, a, "add") || !check_input(m, b, "add")) return -1;
    const ct_node na = m->nodes[a], nb = m->nodes[b];
    if (na.c != nb.c || na.h != nb.h || na.w != nb.w || na.seq != nb.seq)
        return fail(m, ct_error(CT_ERR_ARG, "add: shapes %lldx%lldx%lld and %lldx%lldx%lld differ",
                                (long long)na.c, (long long)na.h, (long long)na.w, (long long)nb.c,
                                (long long)nb.h, (long long)nb.w));
    int id = new_node(m, CT_NODE_ADD, a, na.c, na.h, na.w);
    if (id >= 0) {
        m->nodes[id].in1 = b;
        m->nodes[id].seq = na.seq;
    }
    return id;
}

int ct_model_add_add_relu(ct_model *m, int a, int b) {
    int id = ct_model_add_add(m, a, b);
    if (id >= 0) m->nodes[id].relu = 1;
    return id;
}

ct_status ct_model_recompute(ct_model *m, int node) {
    if (node <= 0 || node >= m->nnodes)
        return ct_error(CT_ERR_ARG, "model: node %d is not a node of the model (1-%d)", node, m->nnodes - 1);
    if (!(kind_ops(&m->nodes[node])->flags & CT_KIND_RECOMPUTE_MARKED))
        return ct_error(CT_ERR_ARG, "model: node %d is a %s (only conv, linear, layernorm, attention and gelu outputs "
                                                "are marked for recompute)", node,
                        kind_ops(&m->nodes[node])->name);
    m->nodes[node].remat = 1;
    return CT_OK;
}

int ct_model_recompute_convs(ct_model *m) {
    int marked = 0;
    for (int i = 1; i < m->nnodes; i++) {
        ct_node *n = &m->nodes[i];
        if (n->kind != CT_NODE_CONV) continue;
        if (n->in0 == 0 || ct_model__readers_of(m, n->in0) > 1) {
            n->remat = 1;
            marked++;
        }
    }
    return marked;
}

int ct_model_recompute_blocks(ct_model *m) {
    int marked = 0;
    for (int i = 1; i < m->nnodes; i++) {
        ct_node *n = &m->nodes[i];
        const int in_block = n->kind == CT_NODE_LAYERNORM || n->kind == CT_NODE_ATTENTION || n->kind == CT_NODE_GELU ||
                             (n->kind == CT_NODE_LINEAR && m->nodes[n->in0].seq);
        if (in_block && i != m->h_node && i != m->z_node) {
            n->remat = 1;
            marked++;
        }
    }
    return marked;
}

int ct_model_add_basic_block(ct_model *m, int in, int64_t planes, int64_t stride, const char *name) {
    if (!check_input(m, in, "basic block")) return -1;
    char buf[CT_MAX_NAME];
    int64_t in_c = m->nodes[in].c;
    snprintf(buf, sizeof buf, "%s.conv1", name);
    int x = ct_model_add_conv(m, in, planes, 3, stride, 1, 0, buf);
    snprintf(buf, sizeof buf, "%s.bn1", name);
    x = ct_model_add_bn_relu(m, x, buf);
    snprintf(buf, sizeof buf, "%s.conv2", name);
    x = ct_model_add_conv(m, x, planes, 3, 1, 1, 0, buf);
    snprintf(buf, sizeof buf, "%s.bn2", name);
    x = ct_model_add_bn(m, x, buf);
    int sc = in;
    if (stride != 1 || in_c != planes) {
        snprintf(buf, sizeof buf, "%s.downsample.0", name);
        sc = ct_model_add_conv(m, in, planes, 1, stride, 0, 0, buf);
        snprintf(buf, sizeof buf, "%s.downsample.1", name);
        sc = ct_model_add_bn(m, sc, buf);
    }
    return ct_model_add_add_relu(m, x, sc);
}

/* ---- transformer blocks ------------------------------------------------------- */

int ct_model_add_token_embed(ct_model *m, int in, int64_t vocab, int64_t dim, const char *name) {
    if (!check_input(m, in, "token embedding")) return -1;
    if (in != 0 || !m->nodes[0].seq)
        return fail(m, ct_error(CT_ERR_ARG, "model: token embedding '%s' must read the token input (node 0 of a "
                                            "model with cfg.encoder = transformer)", name));
    if (vocab < 1 || vocab > (1 << 30) || dim < 1)
        return fail(m, ct_error(CT_ERR_ARG, "model: token embedding '%s': vocabulary %lld, width %lld", name,
                                (long long)vocab, (long long)dim));
    const int64_t T = m->nodes[0].h;
    int id = new_node(m, CT_NODE_TOKEN_EMBED, in, dim, T, 1);
    if (id < 0) return -1;
    char pre[CT_MAX_NAME];
    snprintf(pre, sizeof pre, "%s.tok_embed", name);
    int64_t tshape[2] = {vocab, dim}, pshape[3] = {1, T, dim};
    int wi = add_tensor(m, 0, pre, "weight", 2, tshape, 0);
    int pi = add_tensor(m, 0, name, "pos_embed", 3, pshape, CT_TENSOR_NO_DECAY);
    ct_node *n = &m->nodes[id];
    n->seq = 1;
    n->weight = wi;
    n->pos = pi;
    return m->build_status ? -1 : id;
}

int ct_model_add_patch_embed(ct_model *m, int in, int64_t patch, int64_t dim, const char *name) {
    if (!check_image(m, in, "patch embedding")) return -1;
    const ct_node src = m->nodes[in];
    if (patch < 1 || src.h % patch || src.w % patch || dim < 1)
        return fail(m, ct_error(CT_ERR_ARG, "model: patch embedding '%s': %lldx%lld input is not a whole number of "
                                            "%lldx%lld patches (or width %lld)", name, (long long)src.h,
                                (long long)src.w, (long long)patch, (long long)patch, (long long)dim));
    const int64_t T = 1 + (src.h / patch) * (src.w / patch);
    int id = new_node(m, CT_NODE_PATCH_EMBED, in, dim, T, 1);
    if (id < 0) return -1;
    char pre[CT_MAX_NAME];
    snprintf(pre, sizeof pre, "%s.patch_embed", name);
    int64_t wshape[4] = {dim, src.c, patch, patch}, bshape[1] = {dim}, cshape[3] = {1, 1, dim},
            pshape[3] = {1, T, dim};
    int wi = add_tensor(m, 0, pre, "weight", 4, wshape, 0);
    int bi = add_tensor(m, 0, pre, "bias", 1, bshape, CT_TENSOR_NO_DECAY);
    int ci = add_tensor(m, 0, name, "cls_token", 3, cshape, CT_TENSOR_NO_DECAY);
    int pi = add_tensor(m, 0, name, "pos_embed", 3, pshape, CT_TENSOR_NO_DECAY);
    ct_node *n = &m->nodes[id];
    n->seq = 1;
    n->k = patch;
    n->weight = wi; n->bias = bi; n->cls = ci; n->pos = pi;
    return m->build_status ? -1 : id;
}

int ct_model_add_layernorm(ct_model *m, int in, const char *name) {
    if (!check_rows(m, in, "layernorm")) return -1;
    const ct_node src = m->nodes[in];
    int id = new_node(m, CT_NODE_LAYERNORM, in, src.c, src.h, 1);
    if (id < 0) return -1;
    int64_t shape[1] = {src.c};
    int wi = add_tensor(m, 0, name, "weight", 1, shape, CT_TENSOR_NO_DECAY);
    int bi = add_tensor(m, 0, name, "bias", 1, shape, CT_TENSOR_NO_DECAY);
    ct_node *n = &m->nodes[id];
    n->seq = src.seq;
    n->weight = wi; n->bias = bi;
    n->eps = 1e-5f;
    return m->build_status ? -1 : id;
}

int ct_model_add_attention(ct_model *m, int in, int64_t heads, int causal, float p) {
    if (!check_input(m, in, "attention")) return -1;
    const ct_node src = m->nodes[in];
    if (!src.seq || src.c % 3 || heads < 1 || (src.c / 3) % heads)
        return fail(m, ct_error(CT_ERR_ARG, "model: attention: input of width %lld is not a fused [q | k | v] "
                                            "sequence with %lld heads (3C, C a multiple of the heads)",
                                (long long)src.c, (long long)heads));
    if (!(p >= 0.0f && p < 1.0f)) return fail(m, ct_error(CT_ERR_ARG, "attention: dropout p=%g not in [0, 1)", p));
    int id = new_node(m, CT_NODE_ATTENTION, in, src.c / 3, src.h, 1);
    if (id < 0) return -1;
    ct_node *n = &m->nodes[id];
    n->seq = 1;
    n->heads = heads;
    n->causal = causal != 0;
    n->p = p;
    return id;
}

int ct_model_add_gelu(ct_model *m, int in) { return same_shape(m, CT_NODE_GELU, in); }

int ct_model_add_tokpool(ct_model *m, int in, ct_tokpool_mode mode) {
    if (!check_input(m, in, "token pooling")) return -1;
    if (!m->nodes[in].seq || mode < CT_TOKPOOL_MEAN || mode > CT_TOKPOOL_LAST)
        return fail(m, ct_error(CT_ERR_ARG, "model: token pooling: input node %d is not a token sequence (or mode "
                                            "%d is not a ct_tokpool_mode)", in, (int)mode));
    int id = new_node(m, CT_NODE_TOKPOOL, in, m->nodes[in].c, 1, 1);
    if (id >= 0) m->nodes[id].mode = (int)mode;
    return id;
}

/* dropout p after node x, or x itself when p is 0 */
static int maybe_dropout(ct_model *m, int x, float p) { return p > 0.0f ? ct_model_add_dropout(m, x, p) : x; }

int ct_model_add_transformer_block(ct_model *m, int in, int64_t heads, int causal, float p, const char *name) {
    if (!check_input(m, in, "transformer block")) return -1;
    const int64_t C = m->nodes[in].c;
    char buf[CT_MAX_NAME];
    snprintf(buf, sizeof buf, "%s.ln1", name);
    int x = ct_model_add_layernorm(m, in, buf);
    snprintf(buf, sizeof buf, "%s.attn.qkv", name);
    x = ct_model_add_linear(m, x, 3 * C, 1, buf);
    x = ct_model_add_attention(m, x, heads, causal, p);
    snprintf(buf, sizeof buf, "%s.attn.proj", name);
    x = ct_model_add_linear(m, x, C, 1, buf);
    x = maybe_dropout(m, x, p);
    const int r = ct_model_add_add(m, x, in); /* in place over the branch, `in` is read twice */
    snprintf(buf, sizeof buf, "%s.ln2", name);
    x = ct_model_add_layernorm(m, r, buf);
    snprintf(buf, sizeof buf, "%s.mlp.fc1", name);
    x = ct_model_add_linear(m, x, 4 * C, 1, buf);
    x = ct_model_add_gelu(m, x);
    snprintf(buf, sizeof buf, "%s.mlp.fc2", name);
    x = ct_model_add_linear(m, x, C, 1, buf);
    x = maybe_dropout(m, x, p);
    return ct_model_add_add(m, x, r);
}

/* ---- initialisation ---------------------------------------------------------- */

static void init_params(ct_model *m) {
    for (int i = 0; i < m->nnodes; i++) {
        const ct_node *n = &m->nodes[i];
        if (n->weight < 0 || !kind_ops(n)->init) continue;
        ct_rng r = ct_rng_make(ct_rng_key(m->cfg.seed, 0x1417, (uint64_t)n->weight, 0));
        kind_ops(n)->init(m, n, &r);
    }
}

/* Checks and records the output nodes of a built model (no allocation). */
static ct_status set_outputs(ct_model *m, int h_node, int z_node) {
    if (m->build_status != CT_OK) return m->build_status;
    if (h_node < 0 || h_node >= m->nnodes || z_node < 0 || z_node >= m->nnodes)
        return ct_error(CT_ERR_ARG, "model: bad output nodes %d, %d", h_node, z_node);
    if (m->nodes[h_node].h != 1 || m->nodes[h_node].w != 1 || m->nodes[z_node].h != 1 || m->nodes[z_node].w != 1)
        return ct_error(CT_ERR_ARG, "model: outputs must be vectors (use global average pooling)");
    m->h_node = h_node;
    m->z_node = z_node;
    return CT_OK;
}

ct_status ct_model_finish(ct_model *m, int h_node, int z_node) {
    ct_status st = set_outputs(m, h_node, z_node);
    if (st) return st;
    size_t np = m->nparam_floats ? m->nparam_floats : 1, nb = m->nbuf_floats ? m->nbuf_floats : 1;
    m->param = ct_alloc(np * sizeof(float));
    m->grad = ct_alloc(np * sizeof(float));
    m->buf = ct_alloc(nb * sizeof(float));
    if (!m->param || !m->grad || !m->buf) return CT_ERR_NOMEM;
    init_params(m);
    if (m->whiten_weight >= 0) { /* identity until fitted */
        const ct_tensor_info *w = &m->bufs[m->whiten_weight];
        for (int64_t i = 0; i < w->shape[0]; i++) m->buf[w->offset + (size_t)(i * w->shape[0] + i)] = 1.0f;
    }
    return CT_OK;
}

/* ---- the encoders and the head ----------------------------------------------- */

void ct_model_config_default(ct_model_config *cfg) {
    memset(cfg, 0, sizeof *cfg);
    cfg->encoder = CT_ENC_CNN;
    cfg->width = 32;
    cfg->in_c = 1;
    cfg->in_h = cfg->in_w = 28;
    cfg->head_hidden = 512;
    cfg->head_out = 128;
    cfg->head_bn = 1;
    cfg->seed = 0;
    cfg->depth = 4;
    cfg->heads = 4;
    cfg->patch = 4;
    cfg->vocab = 8192;
    cfg->context = 32;
    cfg->causal = 0;
    cfg->dropout = 0.1f;
    cfg->pool = CT_POOL_DEFAULT;
}

static const char *const encoder_names[] = {"cnn", "resnet18", "transformer", "vit"};
static const char *const pool_names[] = {"default", "mean", "cls", "eot"};

const char *ct_encoder_name(ct_encoder_kind k) {
    return k >= CT_ENC_CNN && k <= CT_ENC_VIT ? encoder_names[k] : "cnn";
}

ct_status ct_encoder_parse(const char *s, ct_encoder_kind *out) {
    for (int k = CT_ENC_CNN; k <= CT_ENC_VIT; k++)
        if (!strcmp(s, encoder_names[k])) {
            *out = (ct_encoder_kind)k;
            return CT_OK;
        }
    return ct_error(CT_ERR_ARG, "unknown encoder '%s' (expected cnn, resnet18, transformer or vit)", s);
}

const char *ct_pool_name(ct_pool_kind k) { return k >= CT_POOL_DEFAULT && k <= CT_POOL_EOT ? pool_names[k] : "?"; }

ct_status ct_pool_parse(const char *s, ct_pool_kind *out) {
    for (int k = CT_POOL_DEFAULT; k <= CT_POOL_EOT; k++)
        if (!strcmp(s, pool_names[k])) {
            *out = (ct_pool_kind)k;
            return CT_OK;
        }
    return ct_error(CT_ERR_ARG, "unknown pooling '%s' (expected mean, cls or eot)", s);
}

/* Four conv3x3-BN-ReLU stages of widths w, 2w, 4w, 8w (cfg.last_width, if set,
 * replaces 8w); 2x2 max pools after the first three (28 -> 14 -> 7 -> 3), then global
 * average pooling: h has 8w (or last_width) features. */
static int build_cnn(ct_model *m, int x) {
    int64_t w = m->cfg.width;
    char name[32];
    for (int i = 1; i <= 4; i++) {
        snprintf(name, sizeof name, "encoder.conv%d", i);
        x = ct_model_add_conv(m, x, i == 4 && m->cfg.last_width > 0 ? m->cfg.last_width : w << (i - 1), 3, 1, 1, 0,
                              name);
        snprintf(name, sizeof name, "encoder.bn%d", i);
        x = ct_model_add_bn_relu(m, x, name);
        if (i < 4 && x >= 0 && m->nodes[x].h >= 2) x = ct_model_add_maxpool(m, x, 2, 2, 0);
    }
    return ct_model_add_gap(m, x);
}

/* ResNet-18 with the CIFAR stem (3x3 conv, stride 1, no max pool), torchvision names. */
static int build_resnet18(ct_model *m, int x) {
    int64_t w = m->cfg.width;
    x = ct_model_add_conv(m, x, w, 3, 1, 1, 0, "encoder.conv1");
    x = ct_model_add_bn_relu(m, x, "encoder.bn1");
    char name[48];
    for (int layer = 1; layer <= 4; layer++)
        for (int b = 0; b < 2; b++) {
            snprintf(name, sizeof name, "encoder.layer%d.%d", layer, b);
            x = ct_model_add_basic_block(m, x, w << (layer - 1), (layer > 1 && b == 0) ? 2 : 1, name);
        }
    return ct_model_add_gap(m, x);
}

/* The transformer encoders' settings, checked before anything is built. */
static ct_status check_transformer(const ct_model_config *cfg) {
    const int vit = cfg->encoder == CT_ENC_VIT;
    if (cfg->depth < 1 || cfg->depth > 1024) return ct_error(CT_ERR_ARG, "model: depth %d out of range (1-1024)", cfg->depth);
    if (cfg->heads < 1 || cfg->width % cfg->heads)
        return ct_error(CT_ERR_ARG, "model: width %d is not a multiple of %d heads", cfg->width, cfg->heads);
    if (!(cfg->dropout >= 0.0f && cfg->dropout < 1.0f))
        return ct_error(CT_ERR_ARG, "model: dropout %g outside [0, 1)", cfg->dropout);
    if (cfg->pool < CT_POOL_DEFAULT || cfg->pool > CT_POOL_EOT || (vit && cfg->pool == CT_POOL_EOT))
        return ct_error(CT_ERR_ARG, "model: pooling %d is not one of %s", (int)cfg->pool,
                        vit ? "cls, mean" : "mean, cls, eot");
    if (vit && (cfg->patch < 1 || cfg->in_h % cfg->patch || cfg->in_w % cfg->patch))
        return ct_error(CT_ERR_ARG, "model: %dx%d images are not a whole number of %dx%d patches", cfg->in_h,
                        cfg->in_w, cfg->patch, cfg->patch);
    if (!vit && (cfg->vocab < 1 || cfg->vocab > (1 << 30)))
        return ct_error(CT_ERR_ARG, "model: vocabulary %d out of range (1-2^30)", cfg->vocab);
    return CT_OK;
}

/* The text transformer or the ViT: embeddings, L pre-LN blocks, final LayerNorm
 * ("encoder.ln_f"), pooling. */
static int build_transformer(ct_model *m, int x) {
    const ct_model_config *c = &m->cfg;
    const int vit = c->encoder == CT_ENC_VIT;
    x = vit ? ct_model_add_patch_embed(m, x, c->patch, c->width, "encoder")
            : ct_model_add_token_embed(m, x, c->vocab, c->width, "encoder");
    x = maybe_dropout(m, x, c->dropout);
    char name[48];
    for (int l = 0; l < c->depth; l++) {
        snprintf(name, sizeof name, "encoder.blocks.%d", l);
        x = ct_model_add_transformer_block(m, x, c->heads, !vit && c->causal, c->dropout, name);
    }
    x = ct_model_add_layernorm(m, x, "encoder.ln_f");
    ct_pool_kind pool = c->pool != CT_POOL_DEFAULT ? c->pool : vit ? CT_POOL_CLS : CT_POOL_MEAN;
    return ct_model_add_tokpool(m, x, pool == CT_POOL_MEAN ? CT_TOKPOOL_MEAN
                                      : pool == CT_POOL_CLS ? CT_TOKPOOL_FIRST : CT_TOKPOOL_LAST);
}

/* Records the configured model's nodes and tensor tables; allocates no slabs. */
static ct_status build_model(ct_model *m, const ct_model_config *cfg, int *h_out, int *z_out) {
    if (cfg->width < 1 || cfg->width > 4096) return ct_error(CT_ERR_ARG, "model: width %d out of range", cfg->width);
    if (cfg->head_hidden < -1 || cfg->head_out < 0 || (cfg->head_hidden != 0 && cfg->head_out < 1))
        return ct_error(CT_ERR_ARG, "model: bad head sizes %d, %d", cfg->head_hidden, cfg->head_out);
    if (cfg->last_width < 0 || cfg->last_width > 65536 || (cfg->last_width > 0 && cfg->encoder != CT_ENC_CNN))
        return ct_error(CT_ERR_ARG, "model: last width %d (the cnn encoder's only, 1-65536; 0 = 8 x width)",
                        cfg->last_width);
    if (!(cfg->whiten >= 0 && cfg->whiten < 1))
        return ct_error(CT_ERR_ARG, "model: whitening shrinkage %g outside [0, 1)", cfg->whiten);
    if (cfg->encoder < CT_ENC_CNN || cfg->encoder > CT_ENC_VIT)
        return ct_error(CT_ERR_ARG, "model: unknown encoder %d", (int)cfg->encoder);
    const int tfm = cfg->encoder == CT_ENC_TRANSFORMER || cfg->encoder == CT_ENC_VIT;
    ct_status st = tfm ? check_transformer(cfg) : CT_OK;
    if (st) return st;
    st = ct_model_begin(m, cfg);
    if (st) return st;
    int h = tfm ? build_transformer(m, 0) : cfg->encoder == CT_ENC_RESNET18 ? build_resnet18(m, 0) : build_cnn(m, 0);
    int z = h;
    if (cfg->head_hidden == -1) /* a single projection without bias (CLIP's towers) */
        z = ct_model_add_linear(m, h, cfg->head_out, 0, "head");
    if (cfg->head_hidden > 0) {
        z = ct_model_add_linear(m, h, cfg->head_hidden, 1, "head.0");
        if (cfg->head_bn) {
            z = ct_model_add_bn_relu(m, z, "head.1");
            z = ct_model_add_linear(m, z, cfg->head_out, 1, "head.3");
        } else {
            z = ct_model_add_relu(m, z);
            z = ct_model_add_linear(m, z, cfg->head_out, 1, "head.2");
        }
    }
    if (cfg->whiten > 0 && h >= 0) {
        const int64_t D = m->nodes[h].c, shape[2] = {D, D};
        m->whiten_mean = add_tensor(m, 1, "whiten", "mean", 1, shape, 0);
        m->whiten_weight = add_tensor(m, 1, "whiten", "weight", 2, shape, 0);
    }
    *h_out = h;
    *z_out = z;
    return m->build_status;
}

ct_status ct_model_init(ct_model *m, const ct_model_config *cfg) {
    int h = -1, z = -1;
    memset(m, 0, sizeof *m);
    ct_status st = build_model(m, cfg, &h, &z);
    if (!st) st = ct_model_finish(m, h, z);
    if (st) ct_model_free(m);
    return st;
}

ct_status ct_model_init_resized(ct_model *t, const ct_model *m, int in_h, int in_w) {
    ct_model_config cfg = m->cfg;
    cfg.in_h = in_h;
    cfg.in_w = in_w;
    int h = -1, z = -1;
    memset(t, 0, sizeof *t);
    ct_status st = in_h < 1 || in_w < 1 ? ct_error(CT_ERR_ARG, "model: input size %dx%d", in_h, in_w)
                                        : build_model(t, &cfg, &h, &z);
    if (!st) st = set_outputs(t, h, z);
    if (!st && (t->nparam_floats != m->nparam_floats || t->nbuf_floats != m->nbuf_floats))
        st = ct_error(CT_ERR_ARG, "model: input %dx%d does not give the same tensors as %dx%d%s", in_h, in_w,
                      m->cfg.in_h, m->cfg.in_w,
                      cfg.encoder == CT_ENC_VIT ? " (a ViT learns one position per patch: train it on views of the "
                                                  "images' size, --view-size 0, and without local crops)" : "");
    if (st) {
        ct_model_free(t);
        return st;
    }
    t->param = m->param;
    t->grad = m->grad;
    t->buf = m->buf;
    t->shares_slabs = 1;
    t->bn_reduce = m->bn_reduce;
    t->bn_reduce_ctx = m->bn_reduce_ctx;
    return CT_OK;
}

ct_status ct_model_count(const ct_model_config *cfg, size_t *numel) {
    ct_model m;
    int h = -1, z = -1;
    memset(&m, 0, sizeof m);
    ct_status st = build_model(&m, cfg, &h, &z);
    size_t n = 0;
    for (int i = 0; !st && i < m.nparams + m.nbufs; i++) {
        const ct_tensor_info *t = i < m.nparams ? &m.params[i] : &m.bufs[i - m.nparams];
        if (ct_size_add(n, t->numel, &n)) st = ct_error(CT_ERR_ARG, "model: parameter count overflows");
    }
    ct_model_free(&m);
    *numel = st ? 0 : n;
    return st;
}

void ct_model_free(ct_model *m) {
    ct_free(m->nodes);
    ct_free(m->params);
    ct_free(m->bufs);
    if (!m->shares_slabs) {
        ct_free(m->param);
        ct_free(m->grad);
        ct_free(m->buf);
    }
    ct_arena_free(&m->arena);
    ct_model__plan_free(m);
    memset(m, 0, sizeof *m);
}

ct_status ct_model_set_whitening(ct_model *m, const float *mean, const float *W) {
    if (m->whiten_mean < 0) return ct_error(CT_ERR_ARG, "model: built without whitening (cfg.whiten = 0)");
    const ct_tensor_info *mu = &m->bufs[m->whiten_mean], *w = &m->bufs[m->whiten_weight];
    memcpy(m->buf + mu->offset, mean, mu->numel * sizeof(float));
    memcpy(m->buf + w->offset, W, w->numel * sizeof(float));
    m->whiten_fitted = 1;
    return CT_OK;
}

const ct_tensor_info *ct_model_find(const ct_model *m, const char *name, int buffers) {
    const ct_tensor_info *t = buffers ? m->bufs : m->params;
    int n = buffers ? m->nbufs : m->nparams;
    for (int i = 0; i < n; i++)
        if (!strcmp(t[i].name, name)) return &t[i];
    return NULL;
}
