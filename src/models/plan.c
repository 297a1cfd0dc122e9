/* plan.c: the activation arena planner (ct_model_prepare), kept apart from the
 * graph and the passes as ggml keeps ggml-alloc.c.
 *
 * Memory plan, fixed per model (made in prepare, never in a step). Everything it
 * decides lands in m->plan (internal.h); what it knows of a node kind comes from
 * ct_node_kinds[] (flags and `saves`), plus the one fusion below.
 *
 * Every block the arena holds is live over an interval of steps: node i's forward
 * runs at step i, the top's gradient is copied in at step nn (the node count) and
 * node i's backward runs at step 2nn - i. Blocks whose intervals do not meet may
 * share memory; placement is greedy by size (largest first, each at the lowest
 * offset free over its whole interval), as in TFLite's arena planner.
 *  - A node of an in-place kind (ReLU, residual add) whose (first) input feeds
 *    nothing else writes over that input, so a conv -> BN -> add -> ReLU chain is
 *    one buffer. An alias kind (flatten) has no buffers of its own.
 *  - An output lives from its forward to its last forward reader, and on to its
 *    earliest backward reader if a backward needs it: CT_KIND_READS_INPUT kinds
 *    (conv, linear, BN) read their input, CT_KIND_READS_OUTPUT ones (ReLU, a fused
 *    add+ReLU) their own output; pools, GAP, add and dropout read neither. So a
 *    BN+ReLU output that only feeds a max pool is freed as soon as the pool ran.
 *  - A BN output that a backward needs (a BN+ReLU feeding a conv) is not kept
 *    either (CT_KIND_RECOMPUTE_ALWAYS): the backward of its last reader first
 *    recomputes it from the BN's input and saved statistics (one elementwise pass)
 *    into a block that lives only until its earliest backward reader ran.
 *  - So is the output of a conv marked for recompute (ct_model_recompute,
 *    CT_KIND_RECOMPUTE_MARKED), by its forward run again on its input. Recomputing
 *    a node reads its input, so an input that is itself recomputed must be back by
 *    then (a chain such as stem conv -> BN+ReLU -> block conv1 -> BN+ReLU is rebuilt
 *    in node order before one backward); nodes are planned last to first so that
 *    each knows when its readers are recomputed.
 *  - A gradient is first written by its last consumer's backward (lastc) and last
 *    read by its own node's, and is zeroed just before that first write.
 *  - What a kind saves for backward (`saves`: BN statistics, dropout mask, max pool
 *    argmax) lives from its forward to its backward; one conv scratch block, sized
 *    to the largest need, lives throughout.
 *  - A BN (+ ReLU) whose only reader is a 2x2, stride 2, unpadded max pool is fused
 *    with it (BN plan's `pool`, unless SyncBN is on): the BN's forward writes the
 *    pool's output and argmax, its backward reads the pool's gradient, so the BN
 *    has neither an output nor a gradient block, and the pool's blocks live from
 *    the BN's forward to the BN's backward. */
#include "internal.h"

#include <stdlib.h>
#include <string.h>

static unsigned flags_of(const ct_model *m, int i) { return kind_ops(&m->nodes[i])->flags; }

int ct_model__owner_of(const ct_model *m, int i) {
    while (i > 0 && (flags_of(m, i) & CT_KIND_ALIAS)) i = m->nodes[i].in0;
    return i;
}

/* the node whose buffer holds node i's output (through in-place nodes and aliases) */
static int root_of(const ct_model *m, int i) {
    while (i > 0 && (m->plan->nodes[i].inplace || (flags_of(m, i) & CT_KIND_ALIAS))) i = m->nodes[i].in0;
    return i;
}

int ct_model__readers_of(const ct_model *m, int x) {
    int k = 0;
    for (int j = 1; j < m->nnodes; j++) k += (m->nodes[j].in0 == x) + (m->nodes[j].in1 == x);
    return k;
}

int ct_model__fused_bn(const ct_model *m, int i) {
    const ct_node *n = &m->nodes[i];
    return n->kind == CT_NODE_MAXPOOL && n->in0 > 0 && m->plan->nodes[n->in0].pool > 0 ? n->in0 : -1;
}

static int reads_output_in_backward(const ct_model *m, int i) {
    const unsigned f = flags_of(m, i);
    return (f & CT_KIND_READS_OUTPUT) || ((f & CT_KIND_READS_OUTPUT_RELU) && m->nodes[i].relu);
}

/* lastc, inplace, overwrite_in and the BN + max pool fusion of every node */
static void plan_nodes(ct_model *m) {
    ct_node_plan *pl = m->plan->nodes;
    for (int i = 0; i < m->nnodes; i++) pl[i].lastc = -1;
    for (int i = 1; i < m->nnodes; i++) {
        const ct_node *n = &m->nodes[i];
        int ins[2] = {n->in0, n->in1};
        for (int k = 0; k < 2; k++)
            if (ins[k] > 0) {
                ct_node_plan *o = &pl[ct_model__owner_of(m, ins[k])];
                if (!(flags_of(m, i) & CT_KIND_ALIAS) && i > o->lastc) o->lastc = i;
            }
    }
    /* the outputs are written by the caller (dtop) before backward starts */
    pl[m->z_node].lastc = m->nnodes;
    if (pl[m->h_node].lastc < 0) pl[m->h_node].lastc = m->nnodes;
    for (int i = 1; i < m->nnodes; i++) {
        const ct_node *n = &m->nodes[i];
        pl[i].inplace = 0;
        if (!(flags_of(m, i) & CT_KIND_IN_PLACE) || n->in0 <= 0 || n->in0 == m->h_node || n->in0 == m->z_node)
            continue;
        pl[i].inplace = ct_model__readers_of(m, n->in0) == 1 && !(flags_of(m, n->in0) & CT_KIND_ALIAS);
    }
    /* a node that is its input's only reader writes that gradient instead of adding
     * to zeros (its backward's overwrite mode), so the buffer needs no clearing */
    for (int i = 1; i < m->nnodes; i++) {
        const ct_node *n = &m->nodes[i];
        pl[i].overwrite_in = 0;
        if (!(flags_of(m, i) & CT_KIND_OVERWRITES_DX) || n->in0 <= 0 || (flags_of(m, n->in0) & CT_KIND_ALIAS))
            continue;
        pl[i].overwrite_in = ct_model__readers_of(m, n->in0) == 1;
    }
    /* BN + max pool fusion (ct_batchnorm_maxpool_forward has no SyncBN variant) */
    for (int i = 1; i < m->nnodes; i++) pl[i].pool = 0;
    m->plan->planned_sync = m->bn_reduce != NULL;
    for (int i = 1; i < m->nnodes && !m->plan->planned_sync; i++) {
        const ct_node *p = &m->nodes[i];
        int b = p->in0;
        if (p->kind != CT_NODE_MAXPOOL || p->k != 2 || p->stride != 2 || p->pad != 0 || b <= 0 ||
            m->nodes[b].kind != CT_NODE_BN || b == m->h_node || b == m->z_node)
            continue;
        if (ct_model__readers_of(m, b) == 1) pl[b].pool = i;
    }
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

/* Lists the arena's blocks for batch B; returns how many (bl holds 5 * nnodes + 2).
 * Over 80 lines: the output intervals (the rules above, last node to first) and the
 * gradient and saved-value intervals read more easily in one place. */
static int list_blocks(ct_model *m, int64_t B, block *bl) {
    const int nn = m->nnodes, forever = 2 * nn + 1;
    ct_node_plan *pl = m->plan->nodes;
    int nb = 0;
#define ADD_BLOCK(k, i, f, l, nfl) (bl[nb++] = (block){(f), (l), (nfl), 0, (k), (i)})
    plan_nodes(m);
    const int hr = root_of(m, m->h_node), zr = root_of(m, m->z_node);
    for (int i = 0; i < nn; i++) pl[i].recompute_at = -1;
    /* last to first, so that when r is planned every later node's recompute_at is known */
    for (int r = nn - 1; r >= 1; r--) {
        const ct_node *n = &m->nodes[r];
        const unsigned f = flags_of(m, r);
        if ((f & CT_KIND_ALIAS) || pl[r].inplace || pl[r].pool) continue;
        const int fused = ct_model__fused_bn(m, r);
        const int start = fused > 0 ? fused : r; /* a fused pool's output: from the BN's forward */
        /* forward readers, the nodes before whose backward r must be valid (lo..hi),
         * and whether anything aliases r's buffer */
        int fwd_last = r, hi = -1, lo = nn, aliased = 0;
        for (int j = r; j < nn; j++) {
            const ct_node *c = &m->nodes[j];
            if (j > r && root_of(m, j) == r) aliased = 1;
            int need = -1;
            if (root_of(m, j) == r && reads_output_in_backward(m, j)) need = j;
            if (j > r && ((c->in0 > 0 && root_of(m, c->in0) == r) || (c->in1 > 0 && root_of(m, c->in1) == r))) {
                fwd_last = j;
                if (root_of(m, c->in0) == r) {
                    if (flags_of(m, j) & CT_KIND_READS_INPUT) need = j;
                    /* recomputing j reads its input (need from there on, down to j's own backward) */
                    if (pl[j].recompute_at > need) need = pl[j].recompute_at;
                }
            }
            if (need >= 0) {
                hi = need > hi ? need : hi;
                lo = j < lo ? j : lo;
            }
        }
        size_t ne = node_elems(n, B);
        int recompute = !aliased && ((f & CT_KIND_RECOMPUTE_ALWAYS) || ((f & CT_KIND_RECOMPUTE_MARKED) && n->remat));
        if (r == hr || r == zr) {
            ADD_BLOCK(B_OUT, r, start, forever, ne); /* the caller reads h and z */
        } else if (hi < 0) {
            ADD_BLOCK(B_OUT, r, start, fwd_last, ne);
        } else if (recompute) {
            ADD_BLOCK(B_OUT, r, r, fwd_last, ne);
            ADD_BLOCK(B_OUT_BWD, r, 2 * nn - hi, 2 * nn - lo, ne);
            pl[r].recompute_at = hi;
        } else {
            ADD_BLOCK(B_OUT, r, start, 2 * nn - lo, ne);
        }
    }
    size_t ws = 1;
    int64_t maxc = 1;
    for (int x = 1; x < nn; x++) {
        const ct_node *n = &m->nodes[x];
        if (n->c > maxc) maxc = n->c;
        if (flags_of(m, x) & CT_KIND_ALIAS) continue;
        /* a fused pool's gradient and argmax are read by the BN's backward */
        const int fused = ct_model__fused_bn(m, x);
        const int reader = fused > 0 ? fused : x;
        if (pl[x].lastc >= 0 && !pl[x].pool) {
            int first = 2 * nn - pl[x].lastc;
            if ((x == m->h_node || x == m->z_node) && first > nn) first = nn; /* dtop lands at step nn */
            ADD_BLOCK(B_GRAD, x, first, 2 * nn - reader, node_elems(n, B));
        }
        ct_node_saves sv = {0, 0, 0, 0};
        if (kind_ops(n)->saves) kind_ops(n)->saves(m, x, B, &sv);
        if (sv.save0) ADD_BLOCK(B_SAVE0, x, reader, 2 * nn - reader, sv.save0);
        if (sv.save1) ADD_BLOCK(B_SAVE1, x, reader, 2 * nn - reader, sv.save1);
        if (sv.argmax) ADD_BLOCK(B_ARGMAX, x, reader, 2 * nn - reader, sv.argmax); /* int32, float: same size */
        if (sv.ws > ws) ws = sv.ws;
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
        ct_model_plan *plan = m->plan;
        float *base = ct_arena_floats(&m->arena, total);
        for (int i = 0; i < m->nnodes; i++) {
            ct_node_plan *p = &plan->nodes[i];
            p->out_bwd = NULL;
            if (p->pool) p->out = p->out_fwd = p->dout = NULL; /* it has no blocks */
        }
        for (int i = 0; i < nb; i++) {
            ct_node_plan *p = &plan->nodes[bl[i].node];
            float *q = base + bl[i].offset;
            switch (bl[i].kind) {
            case B_OUT: p->out = p->out_fwd = q; break;
            case B_OUT_BWD: p->out_bwd = q; break;
            case B_GRAD: p->dout = q; break;
            case B_SAVE0: p->save0 = q; break;
            case B_SAVE1: p->save1 = q; break;
            case B_ARGMAX: p->argmax = (int32_t *)q; break;
            case B_WS: plan->ws = q; break;
            case B_BN_SCRATCH: plan->bn_scratch = (double *)q; break;
            }
        }
        /* in-place nodes and aliases point at their input's buffers, in node order */
        for (int i = 1; i < m->nnodes; i++) {
            ct_node_plan *p = &plan->nodes[i];
            const ct_node_plan *a = &plan->nodes[m->nodes[i].in0];
            if (p->inplace) p->out = p->out_fwd = a->out_fwd;
            if (flags_of(m, i) & CT_KIND_ALIAS) {
                p->out = a->out;
                p->dout = a->dout;
            }
        }
    }
    total = ct_arena_need(total);
out:
    ct_free(bl);
    ct_free(scratch);
    return total;
}

/* The plan's per-node array, one per node (nodes are not added after finish, but
 * a model built by hand may be prepared between adds). */
static ct_status ensure_plan(ct_model *m) {
    if (!m->plan) {
        m->plan = ct_alloc(sizeof *m->plan);
        if (!m->plan) return CT_ERR_NOMEM;
        memset(m->plan, 0, sizeof *m->plan);
    }
    if (m->plan->cap_nodes < m->nnodes) {
        ct_node_plan *p = ct_alloc((size_t)m->nnodes * sizeof *p);
        if (!p) return CT_ERR_NOMEM;
        memset(p, 0, (size_t)m->nnodes * sizeof *p);
        ct_free(m->plan->nodes);
        m->plan->nodes = p;
        m->plan->cap_nodes = m->nnodes;
    }
    return CT_OK;
}

void ct_model__plan_free(ct_model *m) {
    if (!m->plan) return;
    ct_free(m->plan->nodes);
    ct_free(m->plan);
    m->plan = NULL;
}

ct_status ct_model_prepare(ct_model *m, int64_t batch) {
    if (!m->param) return ct_error(CT_ERR_STATE, "model: prepare before init");
    if (batch < 1 || batch > (1 << 24)) return ct_error(CT_ERR_ARG, "model: batch %lld out of range", (long long)batch);
    if (m->plan && batch <= m->batch && m->plan->planned_sync == (m->bn_reduce != NULL)) return CT_OK;
    if (batch < m->batch) batch = m->batch; /* re-planned for SyncBN switched on or off */
    /* rough overflow guard: every activation sized for this batch must fit size_t */
    double est = 0;
    for (int i = 0; i < m->nnodes; i++) est += (double)batch * (double)(m->nodes[i].c * m->nodes[i].h * m->nodes[i].w);
    if (est * 4 * sizeof(float) > 1e15) return ct_error(CT_ERR_NOMEM, "model: batch %lld needs too much memory", (long long)batch);
    ct_status st = ensure_plan(m);
    if (st) return st;
    size_t need = layout(m, batch, 0);
    if (need == SIZE_MAX) return CT_ERR_NOMEM;
    ct_arena_free(&m->arena);
    m->batch = 0; /* no arena now: a failed allocation below must not leave forward a freed one */
    st = ct_arena_init(&m->arena, need);
    if (st) return ct_error(st, "model: cannot allocate %.1f MiB of activations for batch %lld", need / 1048576.0,
                            (long long)batch);
    layout(m, batch, 1);
    m->batch = batch;
    return CT_OK;
}
