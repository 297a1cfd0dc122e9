/* exec.c: the forward and backward passes, node by node through the kind table
 * (nodes.c) over the buffers ct_model_prepare planned (plan.c).
 *
 * Forward runs nodes 1..top in order. Backward runs them top..1; before node i's
 * backward it rebuilds the outputs planned to be recomputed there and clears the
 * gradient buffers node i writes first (unless it overwrites them). */
#include "internal.h"

#include <string.h>

/* The checks and state common to both inputs; x or ids is the input (the other NULL). */
static ct_status begin(ct_model *m, const float *x, const int32_t *ids, const uint8_t *valid, int64_t N,
                       int training, int through_head) {
    if (m->batch == 0 || !m->plan) return ct_error(CT_ERR_STATE, "model: forward before ct_model_prepare");
    if (N < 1 || N > m->batch) return ct_error(CT_ERR_ARG, "model: batch %lld exceeds the prepared %lld", (long long)N, (long long)m->batch);
    if (training && N == 1) {
        /* BatchNorm1d in the head cannot normalise a single vector (PyTorch raises too) */
        for (int i = 0; i < m->nnodes; i++)
            if (m->nodes[i].kind == CT_NODE_BN && m->nodes[i].h * m->nodes[i].w == 1)
                return ct_error(CT_ERR_ARG, "model: training BatchNorm1d needs more than one sample");
    }
    ct_model_plan *pl = m->plan;
    if (training && pl->planned_sync != (m->bn_reduce != NULL))
        return ct_error(CT_ERR_STATE, "model: SyncBatchNorm switched %s after ct_model_prepare (call it again)",
                        m->bn_reduce ? "on" : "off");
    if (ids) { /* the embedding's gather trusts them */
        const int64_t T = m->nodes[0].h;
        for (int i = 1; i < m->nnodes; i++) {
            if (m->nodes[i].kind != CT_NODE_TOKEN_EMBED) continue;
            const int64_t V = m->params[m->nodes[i].weight].shape[0];
            for (int64_t j = 0; j < N * T; j++)
                if (ids[j] < 0 || ids[j] >= V)
                    return ct_error(CT_ERR_ARG, "model: sequence %lld, token %lld has id %d, outside the vocabulary "
                                                "[0, %lld)", (long long)(j / T), (long long)(j % T), (int)ids[j],
                                    (long long)V);
        }
    }
    pl->nodes[0].out = (float *)x;
    pl->ids = ids;
    pl->valid = valid;
    pl->dropout_step = m->dropout_step;
    pl->cur_n = N;
    pl->training = training;
    pl->last_top = through_head ? m->z_node : m->h_node;
    return CT_OK;
}

int ct_model_takes_tokens(const ct_model *m) { return m->nnodes > 0 && m->nodes[0].seq; }

ct_status ct_model_forward_begin(ct_model *m, const float *x, int64_t N, int training, int through_head) {
    if (ct_model_takes_tokens(m))
        return ct_error(CT_ERR_ARG, "model: the %s encoder reads token ids (ct_model_forward_tokens), not images",
                        ct_encoder_name(m->cfg.encoder));
    return begin(m, x, NULL, NULL, N, training, through_head);
}

ct_status ct_model_forward_tokens_begin(ct_model *m, const int32_t *ids, const uint8_t *valid, int64_t N,
                                        int training, int through_head) {
    if (!ct_model_takes_tokens(m))
        return ct_error(CT_ERR_ARG, "model: the %s encoder reads images (ct_model_forward), not token ids",
                        ct_encoder_name(m->cfg.encoder));
    if (!ids) return ct_error(CT_ERR_ARG, "model: forward over tokens without token ids");
    return begin(m, NULL, ids, valid, N, training, through_head);
}

void ct_model_node_forward(ct_model *m, int i) {
    const ct_node_kind_ops *k = kind_ops(&m->nodes[i]);
    ct_node_plan *p = &m->plan->nodes[i];
    if (!(k->flags & CT_KIND_ALIAS)) p->out = p->out_fwd; /* back from a recompute block */
    if (k->forward) k->forward(m, i);
}

ct_status ct_model_forward(ct_model *m, const float *x, int64_t N, int training, int through_head) {
    ct_status st = ct_model_forward_begin(m, x, N, training, through_head);
    if (st) return st;
    for (int i = 1; i <= m->plan->last_top; i++) ct_model_node_forward(m, i);
    return CT_OK;
}

ct_status ct_model_forward_tokens(ct_model *m, const int32_t *ids, const uint8_t *valid, int64_t N, int training,
                                  int through_head) {
    ct_status st = ct_model_forward_tokens_begin(m, ids, valid, N, training, through_head);
    if (st) return st;
    for (int i = 1; i <= m->plan->last_top; i++) ct_model_node_forward(m, i);
    return CT_OK;
}

void ct_model_zero_grad(ct_model *m) { memset(m->grad, 0, m->nparam_floats * sizeof(float)); }

ct_status ct_model_backward_begin(ct_model *m, const float *dtop) {
    if (!m->plan || m->plan->cur_n == 0) return ct_error(CT_ERR_STATE, "model: backward before forward");
    /* the last forward's top: z if it ran through the head, else h */
    const int t = m->plan->last_top;
    memcpy(m->plan->nodes[t].dout, dtop, node_elems(&m->nodes[t], m->plan->cur_n) * sizeof(float));
    return CT_OK;
}

/* Gradients accumulate, so each input's buffer (shared with other nodes') is
 * cleared right before its first writer, the input's last consumer, runs, unless
 * that writer overwrites it. */
static void zero_before_first_write(ct_model *m, int i, int input) {
    if (input <= 0) return;
    const int owner = ct_model__owner_of(m, input);
    ct_node_plan *o = &m->plan->nodes[owner];
    if (o->pool) return; /* a fused BN has no gradient buffer */
    if (o->lastc == i && !(input == m->nodes[i].in0 && overwrites_input(m, i)))
        memset(o->dout, 0, node_elems(&m->nodes[owner], m->plan->cur_n) * sizeof(float));
}

/* Before node i's backward, the outputs planned to be recomputed there (recompute_at
 * == i), in node order so that a recomputed input comes before its readers. The
 * kinds' recompute functions give the forward's bits: the same kernels on the same
 * values. */
static void recompute_outputs(ct_model *m, int i) {
    for (int j = 1; j < i; j++) {
        ct_node_plan *p = &m->plan->nodes[j];
        if (p->recompute_at != i) continue;
        p->out = p->out_bwd;
        kind_ops(&m->nodes[j])->recompute(m, j);
    }
}

void ct_model_node_backward(ct_model *m, int i) {
    recompute_outputs(m, i);
    zero_before_first_write(m, i, m->nodes[i].in0);
    zero_before_first_write(m, i, m->nodes[i].in1);
    const ct_node_kind_ops *k = kind_ops(&m->nodes[i]);
    if (k->backward) k->backward(m, i);
}

ct_status ct_model_backward(ct_model *m, const float *dtop) {
    ct_status st = ct_model_backward_begin(m, dtop);
    if (st) return st;
    for (int i = m->plan->last_top; i >= 1; i--) ct_model_node_backward(m, i);
    return CT_OK;
}

const float *ct_model_features(const ct_model *m) { return m->plan ? m->plan->nodes[m->h_node].out : NULL; }
const float *ct_model_embedding(const ct_model *m) { return m->plan ? m->plan->nodes[m->z_node].out : NULL; }
int64_t ct_model_feature_dim(const ct_model *m) { return m->nodes[m->h_node].c; }
int64_t ct_model_embed_dim(const ct_model *m) { return m->nodes[m->z_node].c; }
