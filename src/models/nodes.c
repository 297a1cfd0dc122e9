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

/* rows of c floats in a batch of B of node n: its tokens, or one vector per sample */
static int64_t rows_of(const ct_node *n, int64_t B) { return n->seq ? B * n->h : B; }

/* trunc normal: N(0, std^2) redrawn outside 2 std (timm's trunc_normal_ at +-2 std) */
static float trunc_normal(ct_rng *r, float std) {
    float z;
    do z = ct_rng_normal(r);
    while (z < -2.0f || z > 2.0f);
    return std * z;
}

static void fill_trunc_normal(ct_model *m, int row, ct_rng *r) {
    const ct_tensor_info *t = &m->params[row];
    for (size_t j = 0; j < t->numel; j++) m->param[t->offset + j] = trunc_normal(r, 0.02f);
}

static void fill_const(ct_model *m, int row, float v) {
    const ct_tensor_info *t = &m->params[row];
    for (size_t j = 0; j < t->numel; j++) m->param[t->offset + j] = v;
}

/* ---- linear (over vectors, or over the rows of a token sequence) -------------------- */

static void linear_forward(ct_model *m, int i) {
    const ct_node *n = &m->nodes[i], *a = &m->nodes[n->in0];
    ct_linear_forward(PL(m, i)->out, IN0(m, i)->out, P(m, n->weight), P(m, n->bias), rows_of(a, m->plan->cur_n),
                      a->c, n->c);
}

/* db += the column sums of dy (R, OUT): each column's rows in order in double. By
 * blocks of 64 columns (eight AVX-512 double registers of sums), one vectorised
 * pass over the block's lines, so no sum is split between threads and the bits do
 * not depend on the thread count. */
#define SUM_COLS 64
static void column_sums(float *db, const float *dy, int64_t R, int64_t OUT) {
    const int64_t nblk = (OUT + SUM_COLS - 1) / SUM_COLS;
#pragma omp parallel for schedule(static) if (R * OUT >= CT_PAR_MIN)
    for (int64_t blk = 0; blk < nblk; blk++) {
        const int64_t c0 = blk * SUM_COLS, w = OUT - c0 < SUM_COLS ? OUT - c0 : SUM_COLS;
        double s[SUM_COLS] = {0};
        if (w == SUM_COLS) { /* a constant trip count: the sums stay in registers */
            for (int64_t r = 0; r < R; r++) {
                const float *row = dy + r * OUT + c0;
#pragma omp simd
                for (int64_t j = 0; j < SUM_COLS; j++) s[j] += row[j];
            }
        } else {
            for (int64_t r = 0; r < R; r++)
                for (int64_t j = 0; j < w; j++) s[j] += dy[r * OUT + c0 + j];
        }
        for (int64_t j = 0; j < w; j++) db[c0 + j] += (float)s[j];
    }
}

static void linear_backward(ct_model *m, int i) {
    const ct_node *n = &m->nodes[i], *a = &m->nodes[n->in0];
    const int64_t R = rows_of(a, m->plan->cur_n);
    /* over tokens (B*T rows) the bias sum goes by lines (ct_linear_backward's column
     * loop strides through all rows per column); the head keeps its bits */
    float *db = G(m, n->bias);
    ct_linear_backward(DA(m, i), G(m, n->weight), a->seq ? NULL : db, PL(m, i)->dout, IN0(m, i)->out,
                       P(m, n->weight), R, a->c, n->c);
    if (a->seq && db) column_sums(db, PL(m, i)->dout, R, n->c);
}

/* Over vectors (the projection head), PyTorch's default: U(-1/sqrt(fan_in),
 * 1/sqrt(fan_in)) for weight and bias; over tokens (inside a transformer), trunc
 * normal 0.02 and a zero bias as ViT and BERT */
static void linear_init(ct_model *m, const ct_node *n, ct_rng *r) {
    if (m->nodes[n->in0].seq) {
        fill_trunc_normal(m, n->weight, r);
        if (n->bias >= 0) fill_const(m, n->bias, 0.0f);
        return;
    }
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
    const float *dy = p->dout;
    /* branch-free loops so that they vectorise (the residual joins of a transformer) */
    if (da && db) {
#pragma omp parallel for simd schedule(static) if (ne >= CT_PAR_MIN)
        for (size_t j = 0; j < ne; j++) {
            da[j] += dy[j];
            db[j] += dy[j];
        }
    } else if (da || db) {
        float *d = da ? da : db;
#pragma omp parallel for simd schedule(static) if (ne >= CT_PAR_MIN)
        for (size_t j = 0; j < ne; j++) d[j] += dy[j];
    }
}

/* ---- token + positional embedding -------------------------------------------------- */

static void tokembed_forward(ct_model *m, int i) {
    const ct_node *n = &m->nodes[i];
    const int64_t B = m->plan->cur_n, T = n->h, C = n->c;
    float *y = PL(m, i)->out;
    /* the ids were checked by ct_model_forward_tokens_begin, so this cannot fail */
    (void)ct_embedding_forward(y, m->plan->ids, P(m, n->weight), B * T, m->params[n->weight].shape[0], C);
    ct_posembed_forward(y, y, P(m, n->pos), B, T, C);
}

static void tokembed_backward(ct_model *m, int i) {
    const ct_node *n = &m->nodes[i];
    const int64_t B = m->plan->cur_n, T = n->h, C = n->c;
    ct_embedding_backward(G(m, n->weight), PL(m, i)->dout, m->plan->ids, B * T, m->params[n->weight].shape[0], C);
    ct_posembed_backward(NULL, G(m, n->pos), PL(m, i)->dout, B, T, C);
}

static void tokembed_init(ct_model *m, const ct_node *n, ct_rng *r) {
    fill_trunc_normal(m, n->weight, r);
    fill_trunc_normal(m, n->pos, r);
}

/* ---- patch embedding: p x p patches, a linear map, CLS token, positions -------------
 * Patch j = py * (W / p) + px of sample b is row b * np + j of a (N * np, K) matrix,
 * K = in_c * p * p in the order of a conv weight (channel, row, column), so the
 * (C, in_c, p, p) weight is nn.Conv2d(in_c, C, p, stride=p)'s. Output row 0 of a
 * sample is cls + pos[0], row 1 + j is patch j's projection + bias + pos[1 + j].
 * The patch matrix and the projected rows live in the shared scratch; the backward
 * gathers them again from x and dy. */

typedef struct {
    int64_t N, Cin, H, W, p, np, K, C;
} patch_geom;

static patch_geom patch_of(const ct_model *m, int i) {
    const ct_node *n = &m->nodes[i], *a = &m->nodes[n->in0];
    patch_geom g = {m->plan->cur_n, a->c, a->h, a->w, n->k, n->h - 1, a->c * n->k * n->k, n->c};
    return g;
}

/* dir 0: pat = patches of x; dir 1: x += pat scattered back (the adjoint) */
static void patch_move(float *pat, float *x, const patch_geom *g, int dir) {
    const int64_t pw = g->W / g->p;
#pragma omp parallel for schedule(static) if (g->N * g->np * g->K >= CT_PAR_MIN)
    for (int64_t r = 0; r < g->N * g->np; r++) {
        const int64_t b = r / g->np, j = r % g->np, y0 = (j / pw) * g->p, x0 = (j % pw) * g->p;
        float *row = pat + r * g->K;
        for (int64_t c = 0; c < g->Cin; c++)
            for (int64_t ky = 0; ky < g->p; ky++) {
                float *px = x + ((b * g->Cin + c) * g->H + y0 + ky) * g->W + x0;
                float *pr = row + (c * g->p + ky) * g->p;
                for (int64_t kx = 0; kx < g->p; kx++) {
                    if (dir == 0) pr[kx] = px[kx];
                    else px[kx] += pr[kx];
                }
            }
    }
}

static void patch_forward(ct_model *m, int i) {
    const ct_node *n = &m->nodes[i];
    const patch_geom g = patch_of(m, i);
    float *pat = m->plan->ws, *proj = pat + g.N * g.np * g.K, *y = PL(m, i)->out;
    const float *bias = P(m, n->bias), *cls = P(m, n->cls), *pos = P(m, n->pos);
    patch_move(pat, (float *)IN0(m, i)->out, &g, 0); /* dir 0 only reads x */
    ct_gemm(0, 1, g.N * g.np, g.C, g.K, 1.0f, pat, g.K, P(m, n->weight), g.K, 0.0f, proj, g.C);
#pragma omp parallel for schedule(static) if (g.N * (g.np + 1) * g.C >= CT_PAR_MIN)
    for (int64_t b = 0; b < g.N; b++) {
        float *yb = y + b * (g.np + 1) * g.C;
        for (int64_t c = 0; c < g.C; c++) yb[c] = cls[c] + pos[c];
        for (int64_t j = 0; j < g.np; j++) {
            const float *pr = proj + (b * g.np + j) * g.C, *pp = pos + (1 + j) * g.C;
            float *yr = yb + (1 + j) * g.C;
            for (int64_t c = 0; c < g.C; c++) yr[c] = pr[c] + bias[c] + pp[c];
        }
    }
}

static void patch_backward(ct_model *m, int i) {
    const ct_node *n = &m->nodes[i];
    const patch_geom g = patch_of(m, i);
    float *pat = m->plan->ws, *dproj = pat + g.N * g.np * g.K, *da = DA(m, i);
    const float *dy = PL(m, i)->dout;
    const int64_t T = g.np + 1;
    for (int64_t b = 0; b < g.N; b++) /* the patch rows of dy, without the CLS rows */
        memcpy(dproj + b * g.np * g.C, dy + (b * T + 1) * g.C, (size_t)(g.np * g.C) * sizeof(float));
    patch_move(pat, (float *)IN0(m, i)->out, &g, 0);
    ct_gemm(1, 0, g.C, g.K, g.N * g.np, 1.0f, dproj, g.C, pat, g.K, 1.0f, G(m, n->weight), g.K); /* dW += dP^T X */
    float *db = G(m, n->bias), *dcls = G(m, n->cls);
#pragma omp parallel for schedule(static) if (g.N * T * g.C >= CT_PAR_MIN)
    for (int64_t c = 0; c < g.C; c++) {
        double sb = 0.0, sc = 0.0;
        for (int64_t r = 0; r < g.N * g.np; r++) sb += dproj[r * g.C + c];
        for (int64_t b = 0; b < g.N; b++) sc += dy[b * T * g.C + c];
        db[c] += (float)sb;
        dcls[c] += (float)sc;
    }
    ct_posembed_backward(NULL, G(m, n->pos), dy, g.N, T, g.C);
    if (da) { /* dX = scatter(dP W) */
        ct_gemm(0, 0, g.N * g.np, g.K, g.C, 1.0f, dproj, g.C, P(m, n->weight), g.K, 0.0f, pat, g.K);
        patch_move(pat, da, &g, 1);
    }
}

static void patch_saves(const ct_model *m, int i, int64_t B, ct_node_saves *sv) {
    const ct_node *n = &m->nodes[i], *a = &m->nodes[n->in0];
    sv->ws = (size_t)(B * (n->h - 1) * (a->c * n->k * n->k + n->c));
}

static void patch_init(ct_model *m, const ct_node *n, ct_rng *r) {
    fill_trunc_normal(m, n->weight, r);
    fill_const(m, n->bias, 0.0f);
    fill_trunc_normal(m, n->cls, r);
    fill_trunc_normal(m, n->pos, r);
}

/* ---- LayerNorm over rows ----------------------------------------------------------- */

static void layernorm_forward(ct_model *m, int i) {
    const ct_node *n = &m->nodes[i];
    ct_node_plan *p = PL(m, i);
    ct_layernorm_forward(p->out, p->save0, p->save1, IN0(m, i)->out, P(m, n->weight), P(m, n->bias),
                         rows_of(n, m->plan->cur_n), n->c, n->eps);
}

static void layernorm_backward(ct_model *m, int i) {
    const ct_node *n = &m->nodes[i];
    const ct_node_plan *p = PL(m, i);
    ct_layernorm_backward(DA(m, i), G(m, n->weight), G(m, n->bias), p->dout, IN0(m, i)->out, p->save0, p->save1,
                          P(m, n->weight), rows_of(n, m->plan->cur_n), n->c);
}

static void layernorm_saves(const ct_model *m, int i, int64_t B, ct_node_saves *sv) {
    sv->save0 = sv->save1 = (size_t)rows_of(&m->nodes[i], B); /* mean, rstd */
}

static void layernorm_init(ct_model *m, const ct_node *n, ct_rng *r) {
    (void)r;
    fill_const(m, n->weight, 1.0f);
    fill_const(m, n->bias, 0.0f);
}

/* ---- attention ----------------------------------------------------------------------
 * The probabilities' dropout key: (seed, node, the dropout step of the forward), so
 * the backward regenerates the forward's masks. */

static uint64_t attention_key(const ct_model *m, int i) {
    return ct_rng_key(m->cfg.seed, 0xA77E, m->plan->dropout_step, (uint64_t)i);
}

/* Where the probabilities are: a saved block, or, for an output the backward
 * recomputes (contrast train --recompute), the first half of the shared scratch,
 * whose second half is the dropout / gradient scratch. The recompute runs just
 * before the output projection's backward (the only reader of the attention's
 * output) and the attention's backward right after it; a linear's backward uses no
 * scratch, so the probabilities are still there. The (B, H, T, T) block then lives
 * only from the recompute to the backward instead of from forward to backward. */
static int attention_recomputed(const ct_model *m, int i) { return m->plan->nodes[i].recompute_at >= 0; }

static float *attention_probs(const ct_model *m, int i) {
    return attention_recomputed(m, i) ? m->plan->ws : m->plan->nodes[i].save0;
}

static float *attention_scratch(const ct_model *m, int i) {
    const ct_node *n = &m->nodes[i];
    return attention_recomputed(m, i) ? m->plan->ws + (size_t)(m->plan->cur_n * n->heads * n->h * n->h) : m->plan->ws;
}

static void attention_forward(ct_model *m, int i) {
    const ct_node *n = &m->nodes[i];
    ct_attention_forward(PL(m, i)->out, attention_probs(m, i), attention_scratch(m, i), IN0(m, i)->out,
                         m->plan->valid, m->plan->cur_n, n->h, n->c, n->heads, n->causal,
                         m->plan->training ? n->p : 0.0f, attention_key(m, i));
}

static void attention_backward(ct_model *m, int i) {
    const ct_node *n = &m->nodes[i];
    float *da = DA(m, i);
    if (da)
        ct_attention_backward(da, attention_scratch(m, i), PL(m, i)->dout, attention_probs(m, i), IN0(m, i)->out,
                              m->plan->cur_n, n->h, n->c, n->heads, m->plan->training ? n->p : 0.0f,
                              attention_key(m, i));
}

static void attention_saves(const ct_model *m, int i, int64_t B, ct_node_saves *sv) {
    const ct_node *n = &m->nodes[i];
    const size_t bhtt = (size_t)(B * n->heads * n->h * n->h);
    if (attention_recomputed(m, i)) {
        sv->ws = 2 * bhtt; /* probabilities, then the scratch */
    } else {
        sv->save0 = sv->ws = bhtt;
    }
}

/* ---- GELU (exact) ------------------------------------------------------------------ */

static void gelu_forward(ct_model *m, int i) {
    ct_gelu_forward(PL(m, i)->out, IN0(m, i)->out, node_elems(&m->nodes[i], m->plan->cur_n), CT_GELU_ERF);
}

static void gelu_backward(ct_model *m, int i) {
    float *da = DA(m, i);
    if (da)
        ct_gelu_backward(da, PL(m, i)->dout, IN0(m, i)->out, node_elems(&m->nodes[i], m->plan->cur_n), CT_GELU_ERF);
}

/* ---- pooling over tokens ----------------------------------------------------------- */

static void tokpool_forward(ct_model *m, int i) {
    const ct_node *n = &m->nodes[i], *a = &m->nodes[n->in0];
    ct_tokpool_forward(PL(m, i)->out, IN0(m, i)->out, m->plan->valid, m->plan->cur_n, a->h, a->c,
                       (ct_tokpool_mode)n->mode);
}

static void tokpool_backward(ct_model *m, int i) {
    const ct_node *n = &m->nodes[i], *a = &m->nodes[n->in0];
    float *da = DA(m, i);
    if (da)
        ct_tokpool_backward(da, PL(m, i)->dout, m->plan->valid, m->plan->cur_n, a->h, a->c,
                            (ct_tokpool_mode)n->mode);
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
    [CT_NODE_LINEAR] = {.name = "linear", .flags = CT_KIND_READS_INPUT | CT_KIND_RECOMPUTE_MARKED,
                        .forward = linear_forward, .backward = linear_backward, .recompute = linear_forward,
                        .init = linear_init},
    [CT_NODE_DROPOUT] = {.name = "dropout", .forward = dropout_forward, .backward = dropout_backward,
                         .saves = dropout_saves},
    [CT_NODE_ADD] = {.name = "add", .flags = CT_KIND_READS_OUTPUT_RELU | CT_KIND_IN_PLACE,
                     .forward = add_forward, .backward = add_backward},
    [CT_NODE_TOKEN_EMBED] = {.name = "token_embed", .forward = tokembed_forward, .backward = tokembed_backward,
                             .init = tokembed_init},
    [CT_NODE_PATCH_EMBED] = {.name = "patch_embed", .flags = CT_KIND_READS_INPUT, .forward = patch_forward,
                             .backward = patch_backward, .saves = patch_saves, .init = patch_init},
    [CT_NODE_LAYERNORM] = {.name = "layernorm", .flags = CT_KIND_READS_INPUT | CT_KIND_RECOMPUTE_MARKED,
                           .forward = layernorm_forward, .backward = layernorm_backward,
                           .recompute = layernorm_forward, .saves = layernorm_saves, .init = layernorm_init},
    [CT_NODE_ATTENTION] = {.name = "attention", .flags = CT_KIND_READS_INPUT | CT_KIND_RECOMPUTE_MARKED,
                           .forward = attention_forward, .backward = attention_backward,
                           .recompute = attention_forward, .saves = attention_saves},
    [CT_NODE_GELU] = {.name = "gelu", .flags = CT_KIND_READS_INPUT | CT_KIND_RECOMPUTE_MARKED,
                      .forward = gelu_forward, .backward = gelu_backward, .recompute = gelu_forward},
    [CT_NODE_TOKPOOL] = {.name = "tokpool", .forward = tokpool_forward, .backward = tokpool_backward},
};

_Static_assert(sizeof ct_node_kinds / sizeof ct_node_kinds[0] == CT_NODE_KIND_COUNT,
               "ct_node_kinds: one row per ct_node_kind");
