/* nodes.c: the node kinds, one section each, and the table ct_node_kinds[] that the
 * planner (plan.c) and the two passes (exec.c) read; model.c says how to add a kind.
 *
 * A kind's functions see the node's plan (m->plan->nodes[i]): out and dout where
 * the planner put them, save0/save1/argmax for what its `saves` asked for, and the
 * last forward's batch and mode in m->plan. Forward writes out; backward adds to its
 * inputs' dout (da is NULL for the network input, which needs no gradient) and to
 * its parameters' gradients. */
#include "internal.h"

#include <math.h>
#include <string.h>

static float *P(const ct_model *m, int idx) { return idx >= 0 ? m->param + m->params[idx].offset : NULL; }
static float *G(const ct_model *m, int idx) { return idx >= 0 ? m->grad + m->params[idx].offset : NULL; }
static float *BUF(const ct_model *m, int idx) { return idx >= 0 ? m->buf + m->bufs[idx].offset : NULL; }

static ct_conv2d_shape conv_shape(const ct_model *m, const ct_node *n, int64_t N) {
    const ct_node *src = &m->nodes[n->in0];
    ct_conv2d_shape s;
    ct_conv2d_shape_init(&s, N, src->c, src->h, src->w, n->c, n->k, n->k, n->stride, n->pad);
    return s;
}

/* node i's plan, and its first input's */
static ct_node_plan *PL(const ct_model *m, int i) { return &m->plan->nodes[i]; }
static ct_node_plan *IN0(const ct_model *m, int i) { return &m->plan->nodes[m->nodes[i].in0]; }
/* the gradient node i's backward adds to for its first input (NULL for the network input) */
static float *DA(const ct_model *m, int i) { return m->nodes[i].in0 > 0 ? IN0(m, i)->dout : NULL; }

/* ---- convolution ----------------------------------------------------------------- */

static void conv_forward(ct_model *m, int i) {
    const ct_node *n = &m->nodes[i];
    ct_conv2d_shape s = conv_shape(m, n, m->plan->cur_n);
    ct_conv2d_forward(PL(m, i)->out, IN0(m, i)->out, P(m, n->weight), P(m, n->bias), &s, m->plan->ws);
}

static void conv_backward(ct_model *m, int i) {
    const ct_node *n = &m->nodes[i];
    ct_conv2d_shape s = conv_shape(m, n, m->plan->cur_n);
    ct_conv2d_backward(DA(m, i), G(m, n->weight), G(m, n->bias), PL(m, i)->dout, IN0(m, i)->out, P(m, n->weight), &s,
                       m->plan->ws, overwrites_input(m, i));
}

static void conv_saves(const ct_model *m, int i, int64_t B, ct_node_saves *sv) {
    ct_conv2d_shape s = conv_shape(m, &m->nodes[i], B);
    sv->ws = ct_conv2d_workspace(&s);
}

/* Kaiming normal, mode fan_out, gain sqrt(2) (torchvision ResNet); the bias as PyTorch's default */
static void conv_init(ct_model *m, const ct_node *n, ct_rng *r) {
    const ct_tensor_info *w = &m->params[n->weight];
    float *pw = m->param + w->offset;
    double fan_out = (double)w->shape[0] * (double)w->shape[2] * (double)w->shape[3];
    float std = (float)sqrt(2.0 / fan_out);
    for (size_t j = 0; j < w->numel; j++) pw[j] = std * ct_rng_normal(r);
    if (n->bias >= 0) {
        const ct_tensor_info *b = &m->params[n->bias];
        double fan_in = (double)w->shape[1] * (double)w->shape[2] * (double)w->shape[3];
        float bound = (float)(1.0 / sqrt(fan_in));
        for (size_t j = 0; j < b->numel; j++) m->param[b->offset + j] = bound * (2.0f * ct_rng_uniform(r) - 1.0f);
    }
}

/* ---- batch normalisation (+ ReLU, + a fused 2x2 max pool) --------------------------- */

static void bn_forward(ct_model *m, int i) {
    const ct_node *n = &m->nodes[i];
    ct_node_plan *p = PL(m, i);
    const float *x = IN0(m, i)->out;
    const int64_t N = m->plan->cur_n;
    if (p->pool) {
        ct_node_plan *q = PL(m, p->pool);
        q->out = q->out_fwd;
        ct_batchnorm_maxpool_forward(q->out, q->argmax, p->save0, p->save1, BUF(m, n->rmean), BUF(m, n->rvar), x,
                                     P(m, n->weight), P(m, n->bias), N, n->c, n->h, n->w, n->eps, n->momentum,
                                     m->plan->training, n->relu);
        return;
    }
    if (m->plan->training && m->bn_reduce) {
        ct_batchnorm_forward_sync(p->out, p->save0, p->save1, BUF(m, n->rmean), BUF(m, n->rvar), x, P(m, n->weight),
                                  P(m, n->bias), N, n->c, n->h * n->w, n->eps, n->momentum, n->relu,
                                  m->plan->bn_scratch, m->bn_reduce, m->bn_reduce_ctx);
        return;
    }
    ct_batchnorm_forward(p->out, p->save0, p->save1, BUF(m, n->rmean), BUF(m, n->rvar), x, P(m, n->weight),
                         P(m, n->bias), N, n->c, n->h * n->w, n->eps, n->momentum, m->plan->training, n->relu);
}

static void bn_backward(ct_model *m, int i) {
    const ct_node *n = &m->nodes[i];
    const ct_node_plan *p = PL(m, i);
    const float *x = IN0(m, i)->out;
    float *da = DA(m, i);
    const int64_t N = m->plan->cur_n;
    if (p->pool) {
        const ct_node_plan *q = PL(m, p->pool);
        ct_batchnorm_maxpool_backward(da, G(m, n->weight), G(m, n->bias), q->dout, q->argmax, x, p->save0, p->save1,
                                      P(m, n->weight), P(m, n->bias), N, n->c, n->h, n->w, m->plan->training,
                                      n->relu, overwrites_input(m, i));
        return;
    }
    if (m->plan->training && m->bn_reduce) {
        ct_batchnorm_backward_sync(da, G(m, n->weight), G(m, n->bias), p->dout, x, p->save0, p->save1,
                                   P(m, n->weight), P(m, n->bias), N, n->c, n->h * n->w, n->relu,
                                   m->plan->bn_scratch, m->bn_reduce, m->bn_reduce_ctx);
        return;
    }
    ct_batchnorm_backward(da, G(m, n->weight), G(m, n->bias), p->dout, x, p->save0, p->save1, P(m, n->weight),
                          P(m, n->bias), N, n->c, n->h * n->w, m->plan->training, n->relu, overwrites_input(m, i));
}

/* from its input and the saved statistics: one elementwise pass, the forward's bits */
static void bn_recompute(ct_model *m, int i) {
    const ct_node *n = &m->nodes[i];
    const ct_node_plan *p = PL(m, i);
    ct_batchnorm_apply(p->out, IN0(m, i)->out, p->save0, p->save1, P(m, n->weight), P(m, n->bias), m->plan->cur_n,
                       n->c, n->h * n->w, n->relu);
}

static void bn_saves(const ct_model *m, int i, int64_t B, ct_node_saves *sv) {
    (void)B;
    sv->save0 = sv->save1 = (size_t)m->nodes[i].c; /* mean, invstd */
}

/* gamma 1, beta 0, running mean 0, running var 1 */
static void bn_init(ct_model *m, const ct_node *n, ct_rng *r) {
    (void)r;
    const ct_tensor_info *w = &m->params[n->weight], *rv = &m->bufs[n->rvar];
    for (size_t j = 0; j < w->numel; j++) m->param[w->offset + j] = 1.0f;
    for (size_t j = 0; j < rv->numel; j++) m->buf[rv->offset + j] = 1.0f;
}

/* ---- ReLU ------------------------------------------------------------------------- */

static void relu_forward(ct_model *m, int i) {
    ct_relu_forward(PL(m, i)->out, IN0(m, i)->out, node_elems(&m->nodes[i], m->plan->cur_n));
}

static void relu_backward(ct_model *m, int i) {
    float *da = DA(m, i);
    if (da) ct_relu_backward(da, PL(m, i)->dout, PL(m, i)->out, node_elems(&m->nodes[i], m->plan->cur_n));
}

/* ---- pooling ---------------------------------------------------------------------- */

static void maxpool_forward(ct_model *m, int i) {
    if (ct_model__fused_bn(m, i) > 0) return; /* the BN's forward wrote it */
    const ct_node *n = &m->nodes[i], *a = &m->nodes[n->in0];
    ct_maxpool_forward(PL(m, i)->out, PL(m, i)->argmax, IN0(m, i)->out, m->plan->cur_n, a->c, a->h, a->w, n->k,
                       n->stride, n->pad);
}

static void maxpool_backward(ct_model *m, int i) {
    const ct_node *n = &m->nodes[i], *a = &m->nodes[n->in0];
    float *da = DA(m, i);
    if (da && ct_model__fused_bn(m, i) < 0) /* else the BN's backward reads the gradient */
        ct_maxpool_backward(da, PL(m, i)->dout, PL(m, i)->argmax, m->plan->cur_n, a->c, n->h, n->w, a->h, a->w);
}

static void maxpool_saves(const ct_model *m, int i, int64_t B, ct_node_saves *sv) {
    sv->argmax = node_elems(&m->nodes[i], B);
}

static void avgpool_forward(ct_model *m, int i) {
    const ct_node *n = &m->nodes[i], *a = &m->nodes[n->in0];
    ct_avgpool_forward(PL(m, i)->out, IN0(m, i)->out, m->plan->cur_n, a->c, a->h, a->w, n->k, n->stride, n->pad);
}

static void avgpool_backward(ct_model *m, int i) {
    const ct_node *n = &m->nodes[i], *a = &m->nodes[n->in0];
    float *da = DA(m, i);
    if (da) ct_avgpool_backward(da, PL(m, i)->dout, m->plan->cur_n, a->c, a->h, a->w, n->k, n->stride, n->pad);
}

static void gap_forward(ct_model *m, int i) {
    const ct_node *a = &m->nodes[m->nodes[i].in0];
    ct_gap_forward(PL(m, i)->out, IN0(m, i)->out, m->plan->cur_n, a->c, a->h * a->w);
}

static void gap_backward(ct_model *m, int i) {
    const ct_node *a = &m->nodes[m->nodes[i].in0];
    float *da = DA(m, i);
    if (da) ct_gap_backward(da, PL(m, i)->dout, m->plan->cur_n, a->c, a->h * a->w);
}

/* ---- flatten: its input's buffers under another shape ------------------------------ */

static void flatten_forward(ct_model *m, int i) {
    PL(m, i)->out = IN0(m, i)->out; /* node 0 (x) may move between calls */
}

/* ---- linear ----------------------------------------------------------------------- */

static void linear_forward(ct_model *m, int i) {
    const ct_node *n = &m->nodes[i], *a = &m->nodes[n->in0];
    ct_linear_forward(PL(m, i)->out, IN0(m, i)->out, P(m, n->weight), P(m, n->bias), m->plan->cur_n, a->c, n->c);
}

static void linear_backward(ct_model *m, int i) {
    const ct_node *n = &m->nodes[i], *a = &m->nodes[n->in0];
    ct_linear_backward(DA(m, i), G(m, n->weight), G(m, n->bias), PL(m, i)->dout, IN0(m, i)->out, P(m, n->weight),
                       m->plan->cur_n, a->c, n->c);
}

/* PyTorch's default: U(-1/sqrt(fan_in), 1/sqrt(fan_in)) for weight and bias */
static void linear_init(ct_model *m, const ct_node *n, ct_rng *r) {
    const ct_tensor_info *w = &m->params[n->weight];
    float *pw = m->param + w->offset;
    float bound = (float)(1.0 / sqrt((double)w->shape[1]));
    for (size_t j = 0; j < w->numel; j++) pw[j] = bound * (2.0f * ct_rng_uniform(r) - 1.0f);
    if (n->bias >= 0) {
        const ct_tensor_info *b = &m->params[n->bias];
        for (size_t j = 0; j < b->numel; j++) m->param[b->offset + j] = bound * (2.0f * ct_rng_uniform(r) - 1.0f);
    }
}

/* ---- dropout ---------------------------------------------------------------------- */

static void dropout_forward(ct_model *m, int i) {
    const ct_node *n = &m->nodes[i];
    ct_node_plan *p = PL(m, i);
    const size_t ne = node_elems(n, m->plan->cur_n);
    if (m->plan->training)
        ct_dropout_forward(p->out, p->save0, IN0(m, i)->out, ne, n->p,
                           ct_rng_key(m->cfg.seed, 0xD409, m->dropout_step, (uint64_t)i));
    else
        memcpy(p->out, IN0(m, i)->out, ne * sizeof(float));
}

static void dropout_backward(ct_model *m, int i) {
    const ct_node_plan *p = PL(m, i);
    const size_t ne = node_elems(&m->nodes[i], m->plan->cur_n);
    float *da = DA(m, i);
    if (!da) return;
    if (m->plan->training) ct_dropout_backward(da, p->dout, p->save0, ne);
    else for (size_t j = 0; j < ne; j++) da[j] += p->dout[j];
}

static void dropout_saves(const ct_model *m, int i, int64_t B, ct_node_saves *sv) {
    sv->save0 = node_elems(&m->nodes[i], B); /* the mask */
}

/* ---- residual add (+ ReLU) --------------------------------------------------------- */

static void add_forward(ct_model *m, int i) {
    const ct_node *n = &m->nodes[i];
    const size_t ne = node_elems(n, m->plan->cur_n);
    const float *a = IN0(m, i)->out, *b = PL(m, n->in1)->out;
    if (n->relu) ct_add_relu_forward(PL(m, i)->out, a, b, ne);
    else ct_add_forward(PL(m, i)->out, a, b, ne);
}

static void add_backward(ct_model *m, int i) {
    const ct_node *n = &m->nodes[i];
    const ct_node_plan *p = PL(m, i);
    const size_t ne = node_elems(n, m->plan->cur_n);
    float *da = DA(m, i), *db = n->in1 > 0 ? PL(m, n->in1)->dout : NULL;
    if (n->relu) {
        ct_add_relu_backward(da, db, p->dout, p->out, ne);
        return;
    }
    for (size_t j = 0; j < ne; j++) {
        if (da) da[j] += p->dout[j];
        if (db) db[j] += p->dout[j];
    }
}

/* ---- the table ------------------------------------------------------------------- */

const ct_node_kind_ops ct_node_kinds[] = {
    [CT_NODE_INPUT] = {.name = "input"},
    [CT_NODE_CONV] = {.name = "conv",
                      .flags = CT_KIND_READS_INPUT | CT_KIND_OVERWRITES_DX | CT_KIND_RECOMPUTE_MARKED,
                      .forward = conv_forward, .backward = conv_backward, .recompute = conv_forward,
                      .saves = conv_saves, .init = conv_init},
    [CT_NODE_BN] = {.name = "batchnorm",
                    .flags = CT_KIND_READS_INPUT | CT_KIND_OVERWRITES_DX | CT_KIND_SYNC_ACCUMULATES |
                             CT_KIND_RECOMPUTE_ALWAYS,
                    .forward = bn_forward, .backward = bn_backward, .recompute = bn_recompute, .saves = bn_saves,
                    .init = bn_init},
    [CT_NODE_RELU] = {.name = "relu", .flags = CT_KIND_READS_OUTPUT | CT_KIND_IN_PLACE,
                      .forward = relu_forward, .backward = relu_backward},
    [CT_NODE_MAXPOOL] = {.name = "maxpool", .forward = maxpool_forward, .backward = maxpool_backward,
                         .saves = maxpool_saves},
    [CT_NODE_AVGPOOL] = {.name = "avgpool", .forward = avgpool_forward, .backward = avgpool_backward},
    [CT_NODE_GAP] = {.name = "gap", .forward = gap_forward, .backward = gap_backward},
    [CT_NODE_FLATTEN] = {.name = "flatten", .flags = CT_KIND_ALIAS, .forward = flatten_forward},
    [CT_NODE_LINEAR] = {.name = "linear", .flags = CT_KIND_READS_INPUT, .forward = linear_forward,
                        .backward = linear_backward, .init = linear_init},
    [CT_NODE_DROPOUT] = {.name = "dropout", .forward = dropout_forward, .backward = dropout_backward,
                         .saves = dropout_saves},
    [CT_NODE_ADD] = {.name = "add", .flags = CT_KIND_READS_OUTPUT_RELU | CT_KIND_IN_PLACE,
                     .forward = add_forward, .backward = add_backward},
};

_Static_assert(sizeof ct_node_kinds / sizeof ct_node_kinds[0] == CT_NODE_KIND_COUNT,
               "ct_node_kinds: one row per ct_node_kind");
