/* model.c: the node list, its parameter table, arena sizing, forward and backward.
 *
 * Building records shapes and table rows only; ct_model_finish allocates the flat
 * parameter, gradient and buffer slabs once. ct_model_prepare lays every node's
 * output, its gradient and its saved values into one arena. */
#include "contrast/model.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
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

static int new_node(ct_model *m, ct_node_kind kind, int in, int64_t c, int64_t h, int64_t w) {
    if (m->build_status != CT_OK) return -1;
    if (in < 0 && kind != CT_NODE_INPUT) return fail(m, ct_error(CT_ERR_ARG, "model: node built on a failed input"));
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
    if (cfg->in_c < 1 || cfg->in_h < 1 || cfg->in_w < 1 || cfg->in_c > 4096 || cfg->in_h > 8192 || cfg->in_w > 8192)
        return ct_error(CT_ERR_ARG, "model: bad input shape %dx%dx%d", cfg->in_c, cfg->in_h, cfg->in_w);
    new_node(m, CT_NODE_INPUT, -1, cfg->in_c, cfg->in_h, cfg->in_w);
    return m->build_status;
}

int ct_model_add_conv(ct_model *m, int in, int64_t oc, int64_t k, int64_t stride, int64_t pad,
                      int bias, const char *name) {
    if (in < 0 || m->build_status) return fail(m, m->build_status ? m->build_status : CT_ERR_ARG);
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
    if (in < 0) return fail(m, CT_ERR_ARG);
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
    if (in < 0) return fail(m, CT_ERR_ARG);
    const ct_node src = m->nodes[in];
    return new_node(m, kind, in, src.c, src.h, src.w);
}

int ct_model_add_relu(ct_model *m, int in) { return same_shape(m, CT_NODE_RELU, in); }

int ct_model_add_dropout(ct_model *m, int in, float p) {
    if (!(p >= 0.0f && p < 1.0f)) return fail(m, ct_error(CT_ERR_ARG, "dropout: p=%g not in [0, 1)", p));
    int id = same_shape(m, CT_NODE_DROPOUT, in);
    if (id >= 0) m->nodes[id].p = p;
    return id;
}

static int add_pool(ct_model *m, ct_node_kind kind, int in, int64_t k, int64_t stride, int64_t pad) {
    if (in < 0) return fail(m, CT_ERR_ARG);
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
    if (in < 0) return fail(m, CT_ERR_ARG);
    return new_node(m, CT_NODE_GAP, in, m->nodes[in].c, 1, 1);
}

int ct_model_add_flatten(ct_model *m, int in) {
    if (in < 0) return fail(m, CT_ERR_ARG);
    const ct_node src = m->nodes[in];
    return new_node(m, CT_NODE_FLATTEN, in, src.c * src.h * src.w, 1, 1);
}

int ct_model_add_linear(ct_model *m, int in, int64_t out, int bias, const char *name) {
    if (in < 0) return fail(m, CT_ERR_ARG);
    const ct_node src = m->nodes[in];
    if (src.h != 1 || src.w != 1)
        return fail(m, ct_error(CT_ERR_ARG, "linear '%s': input is %lldx%lldx%lld, flatten it first", name,
                                (long long)src.c, (long long)src.h, (long long)src.w));
    int id = new_node(m, CT_NODE_LINEAR, in, out, 1, 1);
    if (id < 0) return -1;
    int64_t wshape[2] = {out, src.c}, bshape[1] = {out};
    m->nodes[id].weight = add_tensor(m, 0, name, "weight", 2, wshape, 0);
    m->nodes[id].bias = bias ? add_tensor(m, 0, name, "bias", 1, bshape, CT_TENSOR_NO_DECAY) : -1;
    return m->build_status ? -1 : id;
}

int ct_model_add_add(ct_model *m, int a, int b) {
    if (a < 0 || b < 0) return fail(m, CT_ERR_ARG);
    const ct_node na = m->nodes[a], nb = m->nodes[b];
    if (na.c != nb.c || na.h != nb.h || na.w != nb.w)
        return fail(m, ct_error(CT_ERR_ARG, "add: shapes %lldx%lldx%lld and %lldx%lldx%lld differ",
                                (long long)na.c, (long long)na.h, (long long)na.w, (long long)nb.c,
                                (long long)nb.h, (long long)nb.w));
    int id = new_node(m, CT_NODE_ADD, a, na.c, na.h, na.w);
    if (id >= 0) m->nodes[id].in1 = b;
    return id;
}

int ct_model_add_add_relu(ct_model *m, int a, int b) {
    int id = ct_model_add_add(m, a, b);
    if (id >= 0) m->nodes[id].relu = 1;
    return id;
}

/* how many input slots of the model's nodes read node x */
static int readers_of(const ct_model *m, int x) {
    int k = 0;
    for (int j = 1; j < m->nnodes; j++) k += (m->nodes[j].in0 == x) + (m->nodes[j].in1 == x);
    return k;
}

ct_status ct_model_recompute(ct_model *m, int node) {
    if (node <= 0 || node >= m->nnodes || m->nodes[node].kind != CT_NODE_CONV)
        return ct_error(CT_ERR_ARG, "model: node %d is not a conv (only conv outputs are marked for recompute)", node);
    m->nodes[node].remat = 1;
    return CT_OK;
}

int ct_model_recompute_convs(ct_model *m) {
    int marked = 0;
    for (int i = 1; i < m->nnodes; i++) {
        ct_node *n = &m->nodes[i];
        if (n->kind != CT_NODE_CONV) continue;
        if (n->in0 == 0 || readers_of(m, n->in0) > 1) {
            n->remat = 1;
            marked++;
        }
    }
    return marked;
}

int ct_model_add_basic_block(ct_model *m, int in, int64_t planes, int64_t stride, const char *name) {
    if (in < 0) return fail(m, CT_ERR_ARG);
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

/* ---- initialisation ---------------------------------------------------------- */

static void init_params(ct_model *m) {
    for (int i = 0; i < m->nnodes; i++) {
        const ct_node *n = &m->nodes[i];
        if (n->weight < 0) continue;
        const ct_tensor_info *w = &m->params[n->weight];
        float *pw = m->param + w->offset;
        ct_rng r = ct_rng_make(ct_rng_key(m->cfg.seed, 0x1417, (uint64_t)n->weight, 0));
        if (n->kind == CT_NODE_CONV) {
            /* Kaiming normal, mode fan_out, gain sqrt(2) (torchvision ResNet) */
            double fan_out = (double)w->shape[0] * (double)w->shape[2] * (double)w->shape[3];
            float std = (float)sqrt(2.0 / fan_out);
            for (size_t j = 0; j < w->numel; j++) pw[j] = std * ct_rng_normal(&r);
        } else if (n->kind == CT_NODE_LINEAR) {
            /* PyTorch's default: U(-1/sqrt(fan_in), 1/sqrt(fan_in)) for weight and bias */
            float bound = (float)(1.0 / sqrt((double)w->shape[1]));
            for (size_t j = 0; j < w->numel; j++) pw[j] = bound * (2.0f * ct_rng_uniform(&r) - 1.0f);
            if (n->bias >= 0) {
                const ct_tensor_info *b = &m->params[n->bias];
                for (size_t j = 0; j < b->numel; j++)
                    m->param[b->offset + j] = bound * (2.0f * ct_rng_uniform(&r) - 1.0f);
            }
        } else if (n->kind == CT_NODE_BN) {
            for (size_t j = 0; j < w->numel; j++) pw[j] = 1.0f;
            const ct_tensor_info *rv = &m->bufs[n->rvar];
            for (size_t j = 0; j < rv->numel; j++) m->buf[rv->offset + j] = 1.0f;
        }
        if (n->kind == CT_NODE_CONV && n->bias >= 0) {
            const ct_tensor_info *b = &m->params[n->bias];
            double fan_in = (double)w->shape[1] * (double)w->shape[2] * (double)w->shape[3];
            float bound = (float)(1.0 / sqrt(fan_in));
            for (size_t j = 0; j < b->numel; j++) m->param[b->offset + j] = bound * (2.0f * ct_rng_uniform(&r) - 1.0f);
        }
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
}

const char *ct_encoder_name(ct_encoder_kind k) { return k == CT_ENC_RESNET18 ? "resnet18" : "cnn"; }

ct_status ct_encoder_parse(const char *s, ct_encoder_kind *out) {
    if (!strcmp(s, "cnn")) *out = CT_ENC_CNN;
    else if (!strcmp(s, "resnet18")) *out = CT_ENC_RESNET18;
    else return ct_error(CT_ERR_ARG, "unknown encoder '%s' (expected cnn or resnet18)", s);
    return CT_OK;
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

/* Records the configured model's nodes and tensor tables; allocates no slabs. */
static ct_status build_model(ct_model *m, const ct_model_config *cfg, int *h_out, int *z_out) {
    if (cfg->width < 1 || cfg->width > 4096) return ct_error(CT_ERR_ARG, "model: width %d out of range", cfg->width);
    if (cfg->head_hidden < 0 || cfg->head_out < 0 || (cfg->head_hidden > 0 && cfg->head_out < 1))
        return ct_error(CT_ERR_ARG, "model: bad head sizes %d, %d", cfg->head_hidden, cfg->head_out);
    if (cfg->last_width < 0 || cfg->last_width > 65536 || (cfg->last_width > 0 && cfg->encoder != CT_ENC_CNN))
        return ct_error(CT_ERR_ARG, "model: last width %d (the cnn encoder's only, 1-65536; 0 = 8 x width)",
                        cfg->last_width);
    if (!(cfg->whiten >= 0 && cfg->whiten < 1))
        return ct_error(CT_ERR_ARG, "model: whitening shrinkage %g outside [0, 1)", cfg->whiten);
    ct_status st = ct_model_begin(m, cfg);
    if (st) return st;
    int h = cfg->encoder == CT_ENC_RESNET18 ? build_resnet18(m, 0) : build_cnn(m, 0);
    int z = h;
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
        st = ct_error(CT_ERR_ARG, "model: input %dx%d does not give the same tensors as %dx%d", in_h, in_w,
                      m->cfg.in_h, m->cfg.in_w);
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

/* ---- arena ------------------------------------------------------------------- */

static size_t node_elems(const ct_node *n, int64_t batch) { return (size_t)(batch * n->c * n->h * n->w); }

static ct_conv2d_shape conv_shape(const ct_model *m, const ct_node *n, int64_t N) {
    const ct_node *src = &m->nodes[n->in0];
    ct_conv2d_shape s;
    ct_conv2d_shape_init(&s, N, src->c, src->h, src->w, n->c, n->k, n->k, n->stride, n->pad);
    return s;
}

/* Memory plan, fixed per model (made in prepare, never in a step).
 *
 * Every block the arena holds is live over an interval of steps: node i's forward
 * runs at step i, the top's gradient is copied in at step nn (the node count) and
 * node i's backward runs at step 2nn - i. Blocks whose intervals do not meet may
 * share memory; placement is greedy by size (largest first, each at the lowest
 * offset free over its whole interval), as in TFLite's arena planner.
 *  - A ReLU or a residual add whose (first) input feeds nothing else writes in
 *    place over that input, so a conv -> BN -> add -> ReLU chain is one buffer.
 *  - An output lives from its forward to its last forward reader, and on to its
 *    earliest backward reader if a backward needs it: a conv, linear or BN reads
 *    its input, a ReLU or a fused add+ReLU its own output; pools, GAP, add and
 *    dropout read neither. So a BN+ReLU output that only feeds a max pool is freed
 *    as soon as the pool ran.
 *  - A BN output that a backward needs (a BN+ReLU feeding a conv) is not kept
 *    either: the backward of its last reader first recomputes it from the BN's input
 *    and saved statistics (ct_batchnorm_apply, one elementwise pass) into a block
 *    that lives only until its earliest backward reader ran.
 *  - So is the output of a conv marked for recompute (ct_model_recompute), by its
 *    forward run again on its input. Recomputing a node reads its input, so an
 *    input that is itself recomputed must be back by then (a chain such as
 *    stem conv -> BN+ReLU -> block conv1 -> BN+ReLU is rebuilt in node order before
 *    one backward); nodes are planned last to first so that each knows when its
 *    readers are recomputed.
 *  - A gradient is first written by its last consumer's backward (lastc) and last
 *    read by its own node's, and is zeroed just before that first write.
 *  - A BN (+ ReLU) whose only reader is a 2x2, stride 2, unpadded max pool is fused
 *    with it (BN node's `pool`, unless SyncBN is on): the BN's forward writes the
 *    pool's output and argmax, its backward reads the pool's gradient, so the BN
 *    has neither an output nor a gradient block, and the pool's blocks live from
 *    the BN's forward to the BN's backward. */
static int owner_of(const ct_model *m, int i) {
    while (i > 0 && m->nodes[i].kind == CT_NODE_FLATTEN) i = m->nodes[i].in0;
    return i;
}

/* the node whose buffer holds node i's output (through in-place nodes and flattens) */
static int root_of(const ct_model *m, int i) {
    while (i > 0 && (m->nodes[i].inplace || m->nodes[i].kind == CT_NODE_FLATTEN)) i = m->nodes[i].in0;
    return i;
}

static int reads_input_in_backward(ct_node_kind k) {
    return k == CT_NODE_CONV || k == CT_NODE_LINEAR || k == CT_NODE_BN;
}

static int reads_output_in_backward(const ct_node *n) {
    return n->kind == CT_NODE_RELU || (n->kind == CT_NODE_ADD && n->relu);
}

static void plan_nodes(ct_model *m) {
    for (int i = 0; i < m->nnodes; i++) m->nodes[i].lastc = -1;
    for (int i = 1; i < m->nnodes; i++) {
        const ct_node *n = &m->nodes[i];
        int ins[2] = {n->in0, n->in1};
        for (int k = 0; k < 2; k++)
            if (ins[k] > 0) {
                ct_node *o = &m->nodes[owner_of(m, ins[k])];
                if (n->kind != CT_NODE_FLATTEN && i > o->lastc) o->lastc = i;
            }
    }
    /* the outputs are written by the caller (dtop) before backward starts */
    m->nodes[m->z_node].lastc = m->nnodes;
    if (m->nodes[m->h_node].lastc < 0) m->nodes[m->h_node].lastc = m->nnodes;
    for (int i = 1; i < m->nnodes; i++) {
        ct_node *n = &m->nodes[i];
        n->inplace = 0;
        if ((n->kind != CT_NODE_RELU && n->kind != CT_NODE_ADD) || n->in0 <= 0 || n->in0 == m->h_node ||
            n->in0 == m->z_node)
            continue;
        n->inplace = readers_of(m, n->in0) == 1 && m->nodes[n->in0].kind != CT_NODE_FLATTEN;
    }
    /* a conv or BN that is its input's only reader writes that gradient instead of
     * adding to zeros (its backward's overwrite mode), so the buffer needs no clearing */
    for (int i = 1; i < m->nnodes; i++) {
        ct_node *n = &m->nodes[i];
        n->overwrite_in = 0;
        if ((n->kind != CT_NODE_BN && n->kind != CT_NODE_CONV) || n->in0 <= 0 ||
            m->nodes[n->in0].kind == CT_NODE_FLATTEN)
            continue;
        n->overwrite_in = readers_of(m, n->in0) == 1;
    }
    /* BN + max pool fusion (ct_batchnorm_maxpool_forward has no SyncBN variant) */
    for (int i = 1; i < m->nnodes; i++) m->nodes[i].pool = 0;
    m->planned_sync = m->bn_reduce != NULL;
    for (int i = 1; i < m->nnodes && !m->planned_sync; i++) {
        const ct_node *p = &m->nodes[i];
        int b = p->in0;
        if (p->kind != CT_NODE_MAXPOOL || p->k != 2 || p->stride != 2 || p->pad != 0 || b <= 0 ||
            m->nodes[b].kind != CT_NODE_BN || b == m->h_node || b == m->z_node)
            continue;
        if (readers_of(m, b) == 1) m->nodes[b].pool = i;
    }
}

/* the BN a max pool is fused into, or -1 */
static int fused_bn(const ct_model *m, const ct_node *n) {
    return n->kind == CT_NODE_MAXPOOL && n->in0 > 0 && m->nodes[n->in0].pool > 0 ? n->in0 : -1;
}

typedef enum { B_OUT, B_OUT_BWD, B_GRAD, B_SAVE0, B_SAVE1, B_ARGMAX, B_WS, B_BN_SCRATCH } block_kind;

typedef struct {
    int first, last;   /* steps over which the block is live, inclusive */
    size_t floats, offset;
    block_kind kind;
    int node;
} block;

static int cmp_block_size(const void *pa, const void *pb) {
    const block *a = pa, *b = pb;
    if (a->floats != b->floats) return a->floats < b->floats ? 1 : -1;
    return (a->first > b->first) - (a->first < b->first);
}

static int cmp_block_offset(const void *pa, const void *pb) {
    const block *a = *(const block *const *)pa, *b = *(const block *const *)pb;
    return (a->offset > b->offset) - (a->offset < b->offset);
}

/* Places blocks (in size order) at the lowest offset free over their interval,
 * preferring the tightest gap that fits; returns the arena size in floats. */
static size_t place_blocks(block *bl, int nb, const block **scratch) {
    qsort(bl, (size_t)nb, sizeof *bl, cmp_block_size);
    size_t total = 0;
    for (int i = 0; i < nb; i++) {
        int nov = 0;
        for (int j = 0; j < i; j++)
            if (bl[j].first <= bl[i].last && bl[i].first <= bl[j].last) scratch[nov++] = &bl[j];
        qsort(scratch, (size_t)nov, sizeof *scratch, cmp_block_offset);
        size_t need = (bl[i].floats + 15) & ~(size_t)15, end = 0, best = SIZE_MAX, best_gap = SIZE_MAX;
        for (int j = 0; j < nov; j++) {
            if (scratch[j]->offset >= end && scratch[j]->offset - end >= need && scratch[j]->offset - end < best_gap) {
                best = end;
                best_gap = scratch[j]->offset - end;
            }
            size_t e = scratch[j]->offset + ((scratch[j]->floats + 15) & ~(size_t)15);
            if (e > end) end = e;
        }
        bl[i].offset = best != SIZE_MAX ? best : end;
        if (bl[i].offset + need > total) total = bl[i].offset + need;
    }
    return total;
}

/* Lists the arena's blocks for batch B; returns how many (bl holds 5 * nnodes + 2). */
static int list_blocks(ct_model *m, int64_t B, block *bl) {
    const int nn = m->nnodes, forever = 2 * nn + 1;
    int nb = 0;
#define ADD_BLOCK(k, i, f, l, nfl) (bl[nb++] = (block){(f), (l), (nfl), 0, (k), (i)})
    plan_nodes(m);
    const int hr = root_of(m, m->h_node), zr = root_of(m, m->z_node);
    for (int i = 0; i < nn; i++) m->nodes[i].recompute_at = -1;
    /* last to first, so that when r is planned every later node's recompute_at is known */
    for (int r = nn - 1; r >= 1; r--) {
        ct_node *n = &m->nodes[r];
        if (n->kind == CT_NODE_FLATTEN || n->inplace || n->pool) continue;
        const int start = fused_bn(m, n) > 0 ? fused_bn(m, n) : r; /* a fused pool's output: from the BN's forward */
        /* forward readers, the nodes before whose backward r must be valid (lo..hi),
         * and whether anything aliases r's buffer */
        int fwd_last = r, hi = -1, lo = nn, aliased = 0;
        for (int j = r; j < nn; j++) {
            const ct_node *c = &m->nodes[j];
            if (j > r && root_of(m, j) == r) aliased = 1;
            int need = -1;
            if (root_of(m, j) == r && reads_output_in_backward(c)) need = j;
            if (j > r && ((c->in0 > 0 && root_of(m, c->in0) == r) || (c->in1 > 0 && root_of(m, c->in1) == r))) {
                fwd_last = j;
                if (root_of(m, c->in0) == r) {
                    if (reads_input_in_backward(c->kind)) need = j;
                    /* recomputing j reads its input (need from there on, down to j's own backward) */
                    if (c->recompute_at > need) need = c->recompute_at;
                }
            }
            if (need >= 0) {
                hi = need > hi ? need : hi;
                lo = j < lo ? j : lo;
            }
        }
        size_t ne = node_elems(n, B);
        int recompute = !aliased && (n->kind == CT_NODE_BN || (n->kind == CT_NODE_CONV && n->remat));
        if (r == hr || r == zr) {
            ADD_BLOCK(B_OUT, r, start, forever, ne); /* the caller reads h and z */
        } else if (hi < 0) {
            ADD_BLOCK(B_OUT, r, start, fwd_last, ne);
        } else if (recompute) {
            ADD_BLOCK(B_OUT, r, r, fwd_last, ne);
            ADD_BLOCK(B_OUT_BWD, r, 2 * nn - hi, 2 * nn - lo, ne);
            n->recompute_at = hi;
        } else {
            ADD_BLOCK(B_OUT, r, start, 2 * nn - lo, ne);
        }
    }
    size_t ws = 1;
    int64_t maxc = 1;
    for (int x = 1; x < nn; x++) {
        ct_node *n = &m->nodes[x];
        if (n->c > maxc) maxc = n->c;
        if (n->kind == CT_NODE_FLATTEN) continue;
        /* a fused pool's gradient and argmax are read by the BN's backward */
        const int reader = fused_bn(m, n) > 0 ? fused_bn(m, n) : x;
        if (n->lastc >= 0 && !n->pool) {
            int first = 2 * nn - n->lastc;
            if ((x == m->h_node || x == m->z_node) && first > nn) first = nn; /* dtop lands at step nn */
            ADD_BLOCK(B_GRAD, x, first, 2 * nn - reader, node_elems(n, B));
        }
        if (n->kind == CT_NODE_BN) {
            ADD_BLOCK(B_SAVE0, x, x, 2 * nn - x, (size_t)n->c);
            ADD_BLOCK(B_SAVE1, x, x, 2 * nn - x, (size_t)n->c);
        } else if (n->kind == CT_NODE_DROPOUT) {
            ADD_BLOCK(B_SAVE0, x, x, 2 * nn - x, node_elems(n, B));
        } else if (n->kind == CT_NODE_MAXPOOL) {
            ADD_BLOCK(B_ARGMAX, x, reader, 2 * nn - reader, node_elems(n, B)); /* int32, float: same size */
        } else if (n->kind == CT_NODE_CONV) {
            ct_conv2d_shape s = conv_shape(m, n, B);
            size_t need = ct_conv2d_workspace(&s);
            if (need > ws) ws = need;
        }
    }
    ADD_BLOCK(B_WS, 0, 0, forever, ws);
    ADD_BLOCK(B_BN_SCRATCH, 0, 0, forever, (size_t)(3 * maxc + 2) * 2); /* doubles */
#undef ADD_BLOCK
    return nb;
}

/* Plans the arena for batch B: its size in bytes (SIZE_MAX if out of memory), and
 * with carve != 0 points every node's buffers into m->arena. */
static size_t layout(ct_model *m, int64_t B, int carve) {
    int cap = 5 * m->nnodes + 2;
    block *bl = ct_alloc((size_t)cap * sizeof *bl);
    const block **scratch = ct_alloc((size_t)cap * sizeof *scratch);
    size_t total = SIZE_MAX;
    if (!bl || !scratch) goto out;
    int nb = list_blocks(m, B, bl);
    total = place_blocks(bl, nb, scratch);
    if (carve) {
        float *base = ct_arena_floats(&m->arena, total);
        for (int i = 0; i < m->nnodes; i++) {
            ct_node *n = &m->nodes[i];
            n->out_bwd = NULL;
            if (n->pool) n->out = n->out_fwd = n->dout = NULL; /* it has no blocks */
        }
        for (int i = 0; i < nb; i++) {
            ct_node *n = &m->nodes[bl[i].node];
            float *p = base + bl[i].offset;
            switch (bl[i].kind) {
            case B_OUT: n->out = n->out_fwd = p; break;
            case B_OUT_BWD: n->out_bwd = p; break;
            case B_GRAD: n->dout = p; break;
            case B_SAVE0: n->save0 = p; break;
            case B_SAVE1: n->save1 = p; break;
            case B_ARGMAX: n->argmax = (int32_t *)p; break;
            case B_WS: m->ws = p; break;
            case B_BN_SCRATCH: m->bn_scratch = (double *)p; break;
            }
        }
        /* in-place nodes and flatten nodes alias their input, in node order */
        for (int i = 1; i < m->nnodes; i++) {
            ct_node *n = &m->nodes[i];
            if (n->inplace) n->out = n->out_fwd = m->nodes[n->in0].out_fwd;
            if (n->kind == CT_NODE_FLATTEN) {
                n->out = m->nodes[n->in0].out;
                n->dout = m->nodes[n->in0].dout;
            }
        }
    }
    total = ct_arena_need(total);
out:
    ct_free(bl);
    ct_free(scratch);
    return total;
}

ct_status ct_model_prepare(ct_model *m, int64_t batch) {
    if (!m->param) return ct_error(CT_ERR_STATE, "model: prepare before init");
    if (batch < 1 || batch > (1 << 24)) return ct_error(CT_ERR_ARG, "model: batch %lld out of range", (long long)batch);
    if (batch <= m->batch && m->planned_sync == (m->bn_reduce != NULL)) return CT_OK;
    if (batch < m->batch) batch = m->batch; /* re-planned for SyncBN switched on or off */
    /* rough overflow guard: every activation sized for this batch must fit size_t */
    double est = 0;
    for (int i = 0; i < m->nnodes; i++) est += (double)batch * (double)(m->nodes[i].c * m->nodes[i].h * m->nodes[i].w);
    if (est * 4 * sizeof(float) > 1e15) return ct_error(CT_ERR_NOMEM, "model: batch %lld needs too much memory", (long long)batch);
    size_t need = layout(m, batch, 0);
    if (need == SIZE_MAX) return CT_ERR_NOMEM;
    ct_arena_free(&m->arena);
    ct_status st = ct_arena_init(&m->arena, need);
    if (st) return ct_error(st, "model: cannot allocate %.1f MiB of activations for batch %lld", need / 1048576.0,
                            (long long)batch);
    layout(m, batch, 1);
    m->batch = batch;
    return CT_OK;
}

/* ---- forward / backward ------------------------------------------------------- */

static float *P(const ct_model *m, int idx) { return idx >= 0 ? m->param + m->params[idx].offset : NULL; }
static float *G(const ct_model *m, int idx) { return idx >= 0 ? m->grad + m->params[idx].offset : NULL; }
static float *BUF(const ct_model *m, int idx) { return idx >= 0 ? m->buf + m->bufs[idx].offset : NULL; }

ct_status ct_model_forward_begin(ct_model *m, const float *x, int64_t N, int training, int through_head) {
    if (m->batch == 0) return ct_error(CT_ERR_STATE, "model: forward before ct_model_prepare");
    if (N < 1 || N > m->batch) return ct_error(CT_ERR_ARG, "model: batch %lld exceeds the prepared %lld", (long long)N, (long long)m->batch);
    if (training && N == 1) {
        /* BatchNorm1d in the head cannot normalise a single vector (PyTorch raises too) */
        for (int i = 0; i < m->nnodes; i++)
            if (m->nodes[i].kind == CT_NODE_BN && m->nodes[i].h * m->nodes[i].w == 1)
                return ct_error(CT_ERR_ARG, "model: training BatchNorm1d needs more than one sample");
    }
    if (training && m->planned_sync != (m->bn_reduce != NULL))
        return ct_error(CT_ERR_STATE, "model: SyncBatchNorm switched %s after ct_model_prepare (call it again)",
                        m->bn_reduce ? "on" : "off");
    m->nodes[0].out = (float *)x;
    m->cur_n = N;
    m->last_training = training;
    int last = through_head ? m->z_node : m->h_node;
    m->last_top = last;
    return CT_OK;
}

void ct_model_node_forward(ct_model *m, int i) {
    const int64_t N = m->cur_n;
    const int training = m->last_training;
    ct_node *n = &m->nodes[i];
    const ct_node *a = &m->nodes[n->in0];
    size_t ne = node_elems(n, N);
    if (n->kind != CT_NODE_FLATTEN) n->out = n->out_fwd; /* back from a recompute block */
    switch (n->kind) {
    case CT_NODE_CONV: {
        ct_conv2d_shape s = conv_shape(m, n, N);
        ct_conv2d_forward(n->out, a->out, P(m, n->weight), P(m, n->bias), &s, m->ws);
    } break;
    case CT_NODE_BN:
        if (n->pool) {
            ct_node *p = &m->nodes[n->pool];
            p->out = p->out_fwd;
            ct_batchnorm_maxpool_forward(p->out, p->argmax, n->save0, n->save1, BUF(m, n->rmean), BUF(m, n->rvar),
                                         a->out, P(m, n->weight), P(m, n->bias), N, n->c, n->h, n->w, n->eps,
                                         n->momentum, training, n->relu);
            break;
        }
        if (training && m->bn_reduce) {
            ct_batchnorm_forward_sync(n->out, n->save0, n->save1, BUF(m, n->rmean), BUF(m, n->rvar), a->out,
                                      P(m, n->weight), P(m, n->bias), N, n->c, n->h * n->w, n->eps, n->momentum,
                                      n->relu, m->bn_scratch, m->bn_reduce, m->bn_reduce_ctx);
            break;
        }
        ct_batchnorm_forward(n->out, n->save0, n->save1, BUF(m, n->rmean), BUF(m, n->rvar), a->out,
                             P(m, n->weight), P(m, n->bias), N, n->c, n->h * n->w, n->eps, n->momentum,
                             training, n->relu);
        break;
    case CT_NODE_RELU: ct_relu_forward(n->out, a->out, ne); break;
    case CT_NODE_MAXPOOL:
        if (fused_bn(m, n) > 0) break; /* the BN's forward wrote it */
        ct_maxpool_forward(n->out, n->argmax, a->out, N, a->c, a->h, a->w, n->k, n->stride, n->pad);
        break;
    case CT_NODE_AVGPOOL:
        ct_avgpool_forward(n->out, a->out, N, a->c, a->h, a->w, n->k, n->stride, n->pad);
        break;
    case CT_NODE_GAP: ct_gap_forward(n->out, a->out, N, a->c, a->h * a->w); break;
    case CT_NODE_FLATTEN: n->out = a->out; break; /* node 0 (x) may move between calls */
    case CT_NODE_LINEAR:
        ct_linear_forward(n->out, a->out, P(m, n->weight), P(m, n->bias), N, a->c, n->c);
        break;
    case CT_NODE_DROPOUT:
        if (training)
            ct_dropout_forward(n->out, n->save0, a->out, ne, n->p,
                               ct_rng_key(m->cfg.seed, 0xD409, m->dropout_step, (uint64_t)i));
        else
            memcpy(n->out, a->out, ne * sizeof(float));
        break;
    case CT_NODE_ADD:
        if (n->relu) ct_add_relu_forward(n->out, a->out, m->nodes[n->in1].out, ne);
        else ct_add_forward(n->out, a->out, m->nodes[n->in1].out, ne);
        break;
    case CT_NODE_INPUT: break;
    }
}

ct_status ct_model_forward(ct_model *m, const float *x, int64_t N, int training, int through_head) {
    ct_status st = ct_model_forward_begin(m, x, N, training, through_head);
    if (st) return st;
    for (int i = 1; i <= m->last_top; i++) ct_model_node_forward(m, i);
    return CT_OK;
}

void ct_model_zero_grad(ct_model *m) { memset(m->grad, 0, m->nparam_floats * sizeof(float)); }

ct_status ct_model_backward_begin(ct_model *m, const float *dtop) {
    if (m->cur_n == 0) return ct_error(CT_ERR_STATE, "model: backward before forward");
    /* the last forward's top: z if it ran through the head, else h */
    const ct_node *t = &m->nodes[m->last_top];
    memcpy(t->dout, dtop, node_elems(t, m->cur_n) * sizeof(float));
    return CT_OK;
}

/* Node i's backward writes its input's gradient rather than adding to it: a conv
 * or BN that is the input's only reader (prepare's overwrite_in), except a BN under
 * SyncBN in training, whose backward only accumulates. */
static int overwrites_input(const ct_model *m, int i) {
    const ct_node *n = &m->nodes[i];
    return n->overwrite_in && !(n->kind == CT_NODE_BN && m->last_training && m->bn_reduce);
}

/* Gradients accumulate, so each input's buffer (shared with other nodes') is
 * cleared right before its first writer, the input's last consumer, runs, unless
 * that writer overwrites it. */
static void zero_before_first_write(ct_model *m, int i, int input) {
    if (input <= 0) return;
    ct_node *o = &m->nodes[owner_of(m, input)];
    if (o->pool) return; /* a fused BN has no gradient buffer */
    if (o->lastc == i && !(input == m->nodes[i].in0 && overwrites_input(m, i)))
        memset(o->dout, 0, node_elems(o, m->cur_n) * sizeof(float));
}

/* Before node i's backward, the outputs planned to be recomputed there (recompute_at
 * == i), in node order so that a recomputed input comes before its readers: a BN's
 * from its input and saved statistics (ct_batchnorm_apply, one elementwise pass), a
 * marked conv's by running its forward again on its input. Both give the forward's
 * bits: the same kernels on the same values. */
static void recompute_outputs(ct_model *m, int i) {
    for (int j = 1; j < i; j++) {
        ct_node *n = &m->nodes[j];
        if (n->recompute_at != i) continue;
        const ct_node *a = &m->nodes[n->in0];
        n->out = n->out_bwd;
        if (n->kind == CT_NODE_CONV) {
            ct_conv2d_shape s = conv_shape(m, n, m->cur_n);
            ct_conv2d_forward(n->out, a->out, P(m, n->weight), P(m, n->bias), &s, m->ws);
        } else {
            ct_batchnorm_apply(n->out, a->out, n->save0, n->save1, P(m, n->weight), P(m, n->bias), m->cur_n, n->c,
                               n->h * n->w, n->relu);
        }
    }
}

void ct_model_node_backward(ct_model *m, int i) {
    const int64_t N = m->cur_n;
    recompute_outputs(m, i);
    zero_before_first_write(m, i, m->nodes[i].in0);
    zero_before_first_write(m, i, m->nodes[i].in1);
    ct_node *n = &m->nodes[i];
    ct_node *a = &m->nodes[n->in0];
    float *da = n->in0 > 0 ? a->dout : NULL;
    size_t ne = node_elems(n, N);
    switch (n->kind) {
    case CT_NODE_CONV: {
        ct_conv2d_shape s = conv_shape(m, n, N);
        ct_conv2d_backward(da, G(m, n->weight), G(m, n->bias), n->dout, a->out, P(m, n->weight), &s, m->ws,
                           overwrites_input(m, i));
    } break;
    case CT_NODE_BN:
        if (n->pool) {
            const ct_node *p = &m->nodes[n->pool];
            ct_batchnorm_maxpool_backward(da, G(m, n->weight), G(m, n->bias), p->dout, p->argmax, a->out, n->save0,
                                          n->save1, P(m, n->weight), P(m, n->bias), N, n->c, n->h, n->w,
                                          m->last_training, n->relu, overwrites_input(m, i));
            break;
        }
        if (m->last_training && m->bn_reduce) {
            ct_batchnorm_backward_sync(da, G(m, n->weight), G(m, n->bias), n->dout, a->out, n->save0, n->save1,
                                       P(m, n->weight), P(m, n->bias), N, n->c, n->h * n->w, n->relu,
                                       m->bn_scratch, m->bn_reduce, m->bn_reduce_ctx);
            break;
        }
        ct_batchnorm_backward(da, G(m, n->weight), G(m, n->bias), n->dout, a->out, n->save0, n->save1,
                              P(m, n->weight), P(m, n->bias), N, n->c, n->h * n->w, m->last_training, n->relu,
                              overwrites_input(m, i));
        break;
    case CT_NODE_RELU:
        if (da) ct_relu_backward(da, n->dout, n->out, ne);
        break;
    case CT_NODE_MAXPOOL:
        if (da && fused_bn(m, n) < 0) ct_maxpool_backward(da, n->dout, n->argmax, N, a->c, n->h, n->w, a->h, a->w);
        break;
    case CT_NODE_AVGPOOL:
        if (da) ct_avgpool_backward(da, n->dout, N, a->c, a->h, a->w, n->k, n->stride, n->pad);
        break;
    case CT_NODE_GAP:
        if (da) ct_gap_backward(da, n->dout, N, a->c, a->h * a->w);
        break;
    case CT_NODE_FLATTEN: break; /* shares its input's gradient buffer */
    case CT_NODE_LINEAR:
        ct_linear_backward(da, G(m, n->weight), G(m, n->bias), n->dout, a->out, P(m, n->weight), N, a->c, n->c);
        break;
    case CT_NODE_DROPOUT:
        if (da) {
            if (m->last_training) ct_dropout_backward(da, n->dout, n->save0, ne);
            else for (size_t j = 0; j < ne; j++) da[j] += n->dout[j];
        }
        break;
    case CT_NODE_ADD: {
        float *db = n->in1 > 0 ? m->nodes[n->in1].dout : NULL;
        if (n->relu) {
            ct_add_relu_backward(da, db, n->dout, n->out, ne);
        } else {
            for (size_t j = 0; j < ne; j++) {
                if (da) da[j] += n->dout[j];
                if (db) db[j] += n->dout[j];
            }
        }
    } break;
    case CT_NODE_INPUT: break;
    }
}

ct_status ct_model_backward(ct_model *m, const float *dtop) {
    ct_status st = ct_model_backward_begin(m, dtop);
    if (st) return st;
    for (int i = m->last_top; i >= 1; i--) ct_model_node_backward(m, i);
    return CT_OK;
}

const float *ct_model_features(const ct_model *m) { return m->nodes[m->h_node].out; }
const float *ct_model_embedding(const ct_model *m) { return m->nodes[m->z_node].out; }
int64_t ct_model_feature_dim(const ct_model *m) { return m->nodes[m->h_node].c; }
int64_t ct_model_embed_dim(const ct_model *m) { return m->nodes[m->z_node].c; }
