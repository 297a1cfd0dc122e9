/* internal.h: what the files of src/models share and the public header leaves out
 * (not part of the API; tests and bench/bench_step.c include it to inspect a plan).
 *
 *   model.c  building: the node list, the parameter tables, the builders, init/free
 *   nodes.c  the node kinds: each kind's forward, backward, recompute, saved
 *            buffers and initialisation, and the table ct_node_kinds[] of them
 *   plan.c   the arena planner (ct_model_prepare): where every output, gradient and
 *            saved value lives, from the kinds' planner facts
 *   exec.c   the two passes: node by node through the kind table
 *
 * The public ct_node describes the graph; everything ct_model_prepare decides about
 * a node (its buffers, who clears its gradient, in-place and fusion choices) is a
 * ct_node_plan in m->plan, as is the state the last forward left for the backward. */
#ifndef CT_MODELS_INTERNAL_H
#define CT_MODELS_INTERNAL_H

#include "contrast/model.h"

/* One node's plan, set by ct_model_prepare. */
typedef struct {
    float *out, *dout;       /* (batch, c, h, w): the output where it is now, its gradient */
    float *out_fwd;          /* where the forward writes the output */
    float *out_bwd;          /* non-NULL: recomputed here in backward (out then points here) */
    int recompute_at;        /* node whose backward first recomputes this output, or -1 */
    float *save0, *save1;    /* BN: mean, invstd (c); dropout: mask in save0 */
    int32_t *argmax;         /* max pool: (batch, c, h, w) input index of each max */
    int lastc;               /* last node that reads this one (its gradient's first writer) */
    int inplace;             /* writes over its (first) input's buffer (CT_KIND_IN_PLACE) */
    int overwrite_in;        /* its input's only reader, of a CT_KIND_OVERWRITES_DX kind: its
                              * backward writes that gradient instead of adding it to zeros */
    int pool;                /* BN: index of the 2x2 max pool fused into it (its only reader), else 0;
                              * its forward writes the pool's output and argmax, its backward reads the
                              * pool's gradient, and the pool node does nothing */
} ct_node_plan;

/* Behind ct_model's opaque `plan` pointer: made by the first ct_model_prepare. */
struct ct_model_plan {
    ct_node_plan *nodes;     /* one per node of the model */
    int cap_nodes;
    float *ws;               /* conv scratch, in the arena */
    double *bn_scratch;      /* (3 * max channels + 2) for SyncBN, in the arena */
    int planned_sync;        /* bn_reduce was set when prepare planned (SyncBN: no BN+pool fusion) */
    /* the last forward, for the backward */
    int64_t cur_n;           /* samples (0 before the first forward) */
    const int32_t *ids;      /* token models: (cur_n, T) token ids, else NULL */
    const uint8_t *valid;    /* token models: (cur_n, T) padding flags or NULL (all real) */
    uint64_t dropout_step;   /* m->dropout_step at its start (the attention's dropout key) */
    int training;            /* its mode */
    int last_top;            /* node it stopped at (z_node or h_node) */
};

/* ---- the node kinds -------------------------------------------------------------
 * Planner facts of a kind (ct_node_kind_ops.flags). */
enum {
    CT_KIND_READS_INPUT = 1 << 0,       /* backward reads its first input's output (conv, linear, BN) */
    CT_KIND_READS_OUTPUT = 1 << 1,      /* backward reads its own output (ReLU) */
    CT_KIND_READS_OUTPUT_RELU = 1 << 2, /* ... only with a fused ReLU (add) */
    CT_KIND_IN_PLACE = 1 << 3,          /* writes over its first input when it is that input's
                                         * only reader (ReLU, add) */
    CT_KIND_OVERWRITES_DX = 1 << 4,     /* as its input's only reader, its backward can write that
                                         * gradient instead of adding to it (conv, BN) */
    CT_KIND_SYNC_ACCUMULATES = 1 << 5,  /* ... except in training under SyncBN (BN) */
    CT_KIND_ALIAS = 1 << 6,             /* output and gradient are its input's buffers (flatten) */
    CT_KIND_RECOMPUTE_ALWAYS = 1 << 7,  /* output rebuilt by `recompute` before the backward that
                                         * needs it, instead of kept, whenever nothing aliases it (BN) */
    CT_KIND_RECOMPUTE_MARKED = 1 << 8,  /* the same for nodes marked by ct_model_recompute (conv,
                                         * linear, LayerNorm, attention, GELU) */
};

/* What a node saves for its backward, in elements: each block lives from the node's
 * forward (for a max pool fused into a BN: the BN's) to its backward. */
typedef struct {
    size_t save0, save1;     /* floats (save0, save1 of its plan) */
    size_t argmax;           /* int32 (argmax of its plan) */
    size_t ws;               /* floats of the shared conv scratch it needs */
} ct_node_saves;

typedef struct {
    const char *name;
    unsigned flags;          /* CT_KIND_* */
    /* Computes the plan's out from its inputs' for m->plan->cur_n samples. NULL: nothing. */
    void (*forward)(ct_model *m, int i);
    /* Accumulates into its inputs' gradients (NULL for the network input) and parameter
     * gradients from its dout (overwriting where overwrite_in allows). NULL: nothing. */
    void (*backward)(ct_model *m, int i);
    /* Rebuilds the output into out (= out_bwd) from its input (CT_KIND_RECOMPUTE_*). */
    void (*recompute)(ct_model *m, int i);
    /* Fills what it saves for a batch of B (NULL: nothing). */
    void (*saves)(const ct_model *m, int i, int64_t B, ct_node_saves *s);
    /* Initialises its parameters and buffers (called when its weight row is set), with
     * the generator keyed by that row. */
    void (*init)(ct_model *m, const ct_node *n, ct_rng *r);
} ct_node_kind_ops;

extern const ct_node_kind_ops ct_node_kinds[]; /* indexed by ct_node_kind (nodes.c) */

static inline const ct_node_kind_ops *kind_ops(const ct_node *n) { return &ct_node_kinds[n->kind]; }

/* ---- shared helpers -------------------------------------------------------------- */

static inline size_t node_elems(const ct_node *n, int64_t batch) { return (size_t)(batch * n->c * n->h * n->w); }

/* Node i's backward writes its input's gradient rather than adding to it: its
 * input's only reader, of a kind whose backward has that mode (plan's overwrite_in),
 * except a BN under SyncBN in training, whose backward only accumulates. */
static inline int overwrites_input(const ct_model *m, int i) {
    return m->plan->nodes[i].overwrite_in &&
           !((kind_ops(&m->nodes[i])->flags & CT_KIND_SYNC_ACCUMULATES) && m->plan->training && m->bn_reduce);
}

/* the BN a max pool is fused into (plan.c), or -1 */
int ct_model__fused_bn(const ct_model *m, int i);
/* the node whose gradient buffer node i's is (through flatten-like aliases) */
int ct_model__owner_of(const ct_model *m, int i);
/* how many input slots of the model's nodes read node x */
int ct_model__readers_of(const ct_model *m, int x);
/* frees m->plan (ct_model_free) */
void ct_model__plan_free(ct_model *m);

#endif
