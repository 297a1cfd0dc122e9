/* test_transformer.c: the transformer layers (src/nn: embedding.c, layernorm.c,
 * gelu.c, attention.c, tokenpool.c) against central finite differences, their
 * determinism (thread counts, dropout keys), and a pre-LN block against PyTorch.
 *
 * Finite differences (float32 forward, loss L = sum(y * r) accumulated in double;
 * every backward starts from non-zero gradients and the start is subtracted, so
 * an overwriting backward fails):
 *   linear in the input (embedding, positions, pooling): eps 0.25, exact
 *   smooth (LayerNorm, GELU, attention):                 eps 1e-2
 *   tolerance for all:                                   |num - ana| <= 1e-4 + 1e-3 * |num|
 * (the worst element seen is 2.4e-5 off, LayerNorm and attention: all pass at
 * 3e-5 + 3e-4; a 1% error in one term of a backward fails, e.g. dK scaled by 1.01) 
 * PyTorch fixture (tests/fixtures/transformer_ref.bin, written by
 * tests/reference/make_transformer_reference.py in float64 from float32 inputs):
 *   |got - ref| <= 1e-5 * max|ref| + 1e-5 * |ref| per tensor, the worst element
 *   printed as its share of that tolerance (about 2%: float32 rounding alone). The
 *   script only writes a fixture where PyTorch's own float32 run uses under 25% of
 *   it (it uses about 3%), and the test checks that the comparison rejects each
 *   gradient with its largest element moved by 1e-4 * max|ref| (five times the
 *   loosest tolerance any element gets). */
#include "harness.h"
#include "../src/nn/internal.h" /* ct_nn__uniform_at */

#include <errno.h>
#include <omp.h>

#define FD_ATOL 1e-4
#define FD_RTOL 1e-3
#define REF_RTOL 1e-5
#define REF_ATOL_REL 1e-5
#define FIXTURE_DEFAULT "tests/fixtures/transformer_ref.bin"
#define REGEN "regenerate with: /usr/bin/python3 tests/reference/make_transformer_reference.py"

typedef struct {
    void (*fwd)(void *);
    float *y, *r;
    size_t ny;
} gc_ctx;

static double gc_loss(void *p) {
    gc_ctx *c = p;
    c->fwd(c);
    double s = 0;
    for (size_t i = 0; i < c->ny; i++) s += (double)c->y[i] * c->r[i];
    return s;
}

static float *rnd(size_t n, uint64_t seed, float lo, float hi) {
    float *x = calloc(n ? n : 1, sizeof(float));
    fill_uniform(x, n, seed, lo, hi);
    return x;
}

/* A gradient buffer pre-filled with a known start, so the test sees what the
 * backward added; grad_added() turns it into that difference. */
static float *grad_start(size_t n) { return rnd(n, 999, -0.5f, 0.5f); }
static void grad_added(float *g, size_t n) {
    float *s = grad_start(n);
    for (size_t i = 0; i < n; i++) g[i] -= s[i];
    free(s);
}

/* (B, T) flags from per-sequence [first, last) real-token ranges */
static uint8_t *make_valid(int64_t B, int64_t T, const int64_t *first, const int64_t *end) {
    uint8_t *v = calloc((size_t)(B * T), 1);
    for (int64_t b = 0; b < B; b++)
        for (int64_t t = first[b]; t < end[b]; t++) v[b * T + t] = 1;
    return v;
}

/* ---- token embedding ---------------------------------------------------------- */
typedef struct {
    gc_ctx g;
    float *table;
    int32_t *ids;
    int64_t N, V, C;
} emb_ctx;

static void emb_fwd(void *p) {
    emb_ctx *c = p;
    ct_embedding_forward(c->g.y, c->ids, c->table, c->N, c->V, c->C);
}

static void test_embedding(int64_t N, int64_t V, int64_t C) {
    emb_ctx c;
    memset(&c, 0, sizeof c);
    c.N = N; c.V = V; c.C = C;
    size_t nt = (size_t)(V * C), ny = (size_t)(N * C);
    c.table = rnd(nt, 1, -1, 1);
    c.ids = calloc((size_t)N, sizeof(int32_t));
    ct_rng r = ct_rng_make(5);
    for (int64_t n = 0; n < N; n++) c.ids[n] = (int32_t)ct_rng_below(&r, (uint64_t)V); /* repeats when N > V */
    c.g.y = calloc(ny, 4); c.g.r = rnd(ny, 2, -1, 1); c.g.ny = ny; c.g.fwd = emb_fwd;
    CHECK_OK(ct_embedding_forward(c.g.y, c.ids, c.table, N, V, C));
    size_t bad = 0;
    for (int64_t n = 0; n < N; n++) bad += memcmp(c.g.y + n * C, c.table + (int64_t)c.ids[n] * C, (size_t)C * 4) != 0;
    CHECK(bad == 0, "embedding rows are copies of table rows: %zu differ", bad);
    float *dt = grad_start(nt);
    ct_embedding_backward(dt, c.g.r, c.ids, N, V, C);
    grad_added(dt, nt);
    char what[80];
    snprintf(what, sizeof what, "embedding N%lld V%lld C%lld dtable", (long long)N, (long long)V, (long long)C);
    gradcheck(what, c.table, dt, nt, gc_loss, &c, 0.25f, FD_ATOL, FD_RTOL, 300);

    /* an id outside the vocabulary is an error, and nothing is written */
    c.ids[N - 1] = (int32_t)V;
    memset(c.g.y, 0, ny * 4);
    ct_status st = ct_embedding_forward(c.g.y, c.ids, c.table, N, V, C);
    CHECK(st == CT_ERR_ARG && strstr(ct_errmsg(), "outside the vocabulary"), "id V rejected: %s", ct_errmsg());
    c.ids[N - 1] = -1;
    st = ct_embedding_forward(c.g.y, c.ids, c.table, N, V, C);
    CHECK(st == CT_ERR_ARG, "id -1 rejected");
    size_t nz = 0;
    for (size_t i = 0; i < ny; i++) nz += c.g.y[i] != 0.0f;
    CHECK(nz == 0, "a rejected forward writes nothing (%zu written)", nz);
    free(dt); free(c.table); free(c.ids); free(c.g.y); free(c.g.r);
}

/* The scatter-add gives the same bits at 1 and 2 threads, with many repeats of
 * each id (large enough for the parallel path). */
static void test_embedding_threads(void) {
    const int64_t N = 4099, V = 37, C = 41;
    int32_t *ids = calloc((size_t)N, sizeof(int32_t));
    ct_rng r = ct_rng_make(8);
    for (int64_t n = 0; n < N; n++) ids[n] = (int32_t)ct_rng_below(&r, (uint64_t)V);
    float *dy = rnd((size_t)(N * C), 9, -1, 1), *d[2];
    for (int t = 0; t < 2; t++) {
        ct_set_threads(t + 1);
        d[t] = calloc((size_t)(V * C), 4);
        ct_embedding_backward(d[t], dy, ids, N, V, C);
    }
    ct_set_threads(0);
    CHECK(memcmp(d[0], d[1], (size_t)(V * C) * 4) == 0, "embedding backward identical at 1 and 2 threads");
    free(ids); free(dy); free(d[0]); free(d[1]);
}

/* ---- positional embedding --------------------------------------------------------- */
typedef struct {
    gc_ctx g;
    float *x, *pos;
    int64_t B, T, C;
} pos_ctx;

static void pos_fwd(void *p) {
    pos_ctx *c = p;
    ct_posembed_forward(c->g.y, c->x, c->pos, c->B, c->T, c->C);
}

static void test_posembed(int64_t B, int64_t T, int64_t C) {
    pos_ctx c;
    memset(&c, 0, sizeof c);
    c.B = B; c.T = T; c.C = C;
    size_t n = (size_t)(B * T * C), np = (size_t)(T * C);
    c.x = rnd(n, 11, -1, 1); c.pos = rnd(np, 12, -1, 1);
    c.g.y = calloc(n, 4); c.g.r = rnd(n, 13, -1, 1); c.g.ny = n; c.g.fwd = pos_fwd;
    float *dx = grad_start(n), *dp = grad_start(np);
    ct_posembed_backward(dx, dp, c.g.r, B, T, C);
    grad_added(dx, n); grad_added(dp, np);
    gradcheck("posembed dx", c.x, dx, n, gc_loss, &c, 0.25f, FD_ATOL, FD_RTOL, 300);
    gradcheck("posembed dpos", c.pos, dp, np, gc_loss, &c, 0.25f, FD_ATOL, FD_RTOL, 300);
    /* in place */
    pos_fwd(&c);
    float *inplace = malloc(n * 4);
    memcpy(inplace, c.x, n * 4);
    ct_posembed_forward(inplace, inplace, c.pos, B, T, C);
    CHECK(memcmp(inplace, c.g.y, n * 4) == 0, "posembed in place gives the same bits");
    free(inplace); free(dx); free(dp); free(c.x); free(c.pos); free(c.g.y); free(c.g.r);
}

/* ---- LayerNorm ------------------------------------------------------------------- */
typedef struct {
    gc_ctx g;
    float *x, *gamma, *beta, *mean, *rstd;
    int64_t N, C;
} ln_ctx;

static void ln_fwd(void *p) {
    ln_ctx *c = p;
    ct_layernorm_forward(c->g.y, c->mean, c->rstd, c->x, c->gamma, c->beta, c->N, c->C, 1e-5f);
}

static void test_layernorm(int64_t N, int64_t C, int affine) {
    ln_ctx c;
    memset(&c, 0, sizeof c);
    c.N = N; c.C = C;
    size_t n = (size_t)(N * C);
    c.x = rnd(n, 21, -2, 3);
    if (affine) { c.gamma = rnd((size_t)C, 22, 0.5f, 1.5f); c.beta = rnd((size_t)C, 23, -1, 1); }
    c.mean = calloc((size_t)N, 4); c.rstd = calloc((size_t)N, 4);
    c.g.y = calloc(n, 4); c.g.r = rnd(n, 24, -1, 1); c.g.ny = n; c.g.fwd = ln_fwd;
    ln_fwd(&c);
    if (!affine && C > 1) { /* each row normalised: mean 0, variance 1 - eps/var ~ 1 */
        double worst = 0;
        for (int64_t i = 0; i < N; i++) {
            double s = 0, ss = 0;
            for (int64_t j = 0; j < C; j++) { s += c.g.y[i * C + j]; ss += (double)c.g.y[i * C + j] * c.g.y[i * C + j]; }
            double m = s / (double)C, v = ss / (double)C - m * m;
            worst = fmax(worst, fmax(fabs(m), fabs(v - 1)));
        }
        CHECK(worst < 1e-4, "layernorm rows have mean 0, variance 1 (worst deviation %g)", worst);
    }
    float *dx = grad_start(n), *dg = grad_start((size_t)C), *db = grad_start((size_t)C);
    ct_layernorm_backward(dx, affine ? dg : NULL, affine ? db : NULL, c.g.r, c.x, c.mean, c.rstd, c.gamma, N, C);
    grad_added(dx, n);
    char what[80];
    snprintf(what, sizeof what, "layernorm N%lld C%lld%s dx", (long long)N, (long long)C, affine ? "" : " (no affine)");
    gradcheck(what, c.x, dx, n, gc_loss, &c, 1e-2f, FD_ATOL, FD_RTOL, 300);
    if (affine) {
        grad_added(dg, (size_t)C); grad_added(db, (size_t)C);
        gradcheck("layernorm dgamma", c.gamma, dg, (size_t)C, gc_loss, &c, 1e-2f, FD_ATOL, FD_RTOL, 300);
        gradcheck("layernorm dbeta", c.beta, db, (size_t)C, gc_loss, &c, 1e-2f, FD_ATOL, FD_RTOL, 300);
    }
    free(dx); free(dg); free(db); free(c.x); free(c.gamma); free(c.beta); free(c.mean); free(c.rstd);
    free(c.g.y); free(c.g.r);
}

/* LayerNorm forward and backward give the same bits at 1 and 2 threads (large
 * enough for the parallel paths; dgamma / dbeta sum 700 rows). */
static void test_layernorm_threads(void) {
    const int64_t N = 700, C = 101;
    const size_t n = (size_t)(N * C);
    float *x = rnd(n, 25, -2, 2), *gm = rnd((size_t)C, 26, 0.5f, 1.5f), *bt = rnd((size_t)C, 27, -1, 1);
    float *dy = rnd(n, 28, -1, 1), *out[2][4];
    float *mean = calloc((size_t)N, 4), *rstd = calloc((size_t)N, 4);
    for (int t = 0; t < 2; t++) {
        ct_set_threads(t + 1);
        out[t][0] = calloc(n, 4); out[t][1] = calloc(n, 4);
        out[t][2] = calloc((size_t)C, 4); out[t][3] = calloc((size_t)C, 4);
        ct_layernorm_forward(out[t][0], mean, rstd, x, gm, bt, N, C, 1e-5f);
        ct_layernorm_backward(out[t][1], out[t][2], out[t][3], dy, x, mean, rstd, gm, N, C);
    }
    ct_set_threads(0);
    CHECK(memcmp(out[0][0], out[1][0], n * 4) == 0 && memcmp(out[0][1], out[1][1], n * 4) == 0 &&
              memcmp(out[0][2], out[1][2], (size_t)C * 4) == 0 && memcmp(out[0][3], out[1][3], (size_t)C * 4) == 0,
          "layernorm y, dx, dgamma, dbeta identical at 1 and 2 threads");
    for (int t = 0; t < 2; t++)
        for (int k = 0; k < 4; k++) free(out[t][k]);
    free(x); free(gm); free(bt); free(dy); free(mean); free(rstd);
}

/* ---- GELU ------------------------------------------------------------------------ */
typedef struct {
    gc_ctx g;
    float *x;
    ct_gelu_kind kind;
} gelu_ctx;

static void gelu_fwd(void *p) {
    gelu_ctx *c = p;
    ct_gelu_forward(c->g.y, c->x, c->g.ny, c->kind);
}

static void test_gelu(ct_gelu_kind kind) {
    /* values from the closed forms in double: gelu(1) and gelu(-2) */
    const float x0[2] = {1.0f, -2.0f};
    const double want[2][2] = {{0.8413447460685429, -0.04550026389635842},   /* erf */
                               {0.8411919906082768, -0.04540230591222334}};  /* tanh */
    float y0[2];
    ct_gelu_forward(y0, x0, 2, kind);
    CHECK(fabs(y0[0] - want[kind][0]) < 1e-6 && fabs(y0[1] - want[kind][1]) < 1e-6,
          "gelu %s: gelu(1) = %.8f, gelu(-2) = %.8f", kind == CT_GELU_TANH ? "tanh" : "erf", y0[0], y0[1]);
    gelu_ctx c;
    memset(&c, 0, sizeof c);
    const size_t n = 203;
    c.kind = kind;
    c.x = rnd(n, 31, -5, 5);
    c.g.y = calloc(n, 4); c.g.r = rnd(n, 32, -1, 1); c.g.ny = n; c.g.fwd = gelu_fwd;
    float *dx = grad_start(n);
    ct_gelu_backward(dx, c.g.r, c.x, n, kind);
    grad_added(dx, n);
    gradcheck(kind == CT_GELU_TANH ? "gelu tanh dx" : "gelu erf dx", c.x, dx, n, gc_loss, &c, 1e-2f, FD_ATOL,
              FD_RTOL, 300);
    free(dx); free(c.x); free(c.g.y); free(c.g.r);
}

/* ---- attention --------------------------------------------------------------------- */
typedef struct {
    gc_ctx g;
    float *qkv, *att, *ws;
    const uint8_t *valid;
    int64_t B, T, C, H;
    int causal;
    float p;
    uint64_t key;
} att_ctx;

static void att_fwd(void *p) {
    att_ctx *c = p;
    ct_attention_forward(c->g.y, c->att, c->ws, c->qkv, c->valid, c->B, c->T, c->C, c->H, c->causal, c->p, c->key);
}

static void att_setup(att_ctx *c, int64_t B, int64_t T, int64_t C, int64_t H, const uint8_t *valid, int causal,
                      float p, uint64_t key) {
    memset(c, 0, sizeof *c);
    c->B = B; c->T = T; c->C = C; c->H = H; c->valid = valid; c->causal = causal; c->p = p; c->key = key;
    size_t nq = (size_t)(B * T * 3 * C), na = (size_t)(B * H * T * T), ny = (size_t)(B * T * C);
    /* scores of order 1: softmax far from uniform, so the test sees its curvature */
    c->qkv = rnd(nq, 41, -1.5f, 1.5f);
    c->att = calloc(na, 4); c->ws = calloc(na, 4);
    c->g.y = calloc(ny, 4); c->g.r = rnd(ny, 42, -1, 1); c->g.ny = ny; c->g.fwd = att_fwd;
}

static void att_free(att_ctx *c) {
    free(c->qkv); free(c->att); free(c->ws); free(c->g.y); free(c->g.r);
}

/* Query (b, i) sees no key: no valid key at or (if causal) before i. */
static int no_key(const att_ctx *c, int64_t b, int64_t i) {
    int64_t n = c->causal ? i + 1 : c->T;
    for (int64_t j = 0; j < n; j++)
        if (!c->valid || c->valid[b * c->T + j]) return 0;
    return 1;
}

static void test_attention(const char *what, int64_t B, int64_t T, int64_t C, int64_t H, const uint8_t *valid,
                           int causal, float p) {
    att_ctx c;
    att_setup(&c, B, T, C, H, valid, causal, p, 1234);
    att_fwd(&c);
    /* probabilities: finite, zero on masked keys, rows summing to 1 (0 for a query with no key) */
    size_t bad = 0, nonfinite = 0;
    for (int64_t b = 0; b < B; b++)
        for (int64_t h = 0; h < H; h++)
            for (int64_t i = 0; i < T; i++) {
                const float *P = c.att + ((b * H + h) * T + i) * T;
                double s = 0;
                for (int64_t j = 0; j < T; j++) {
                    nonfinite += !isfinite(P[j]);
                    int masked = (valid && !valid[b * T + j]) || (causal && j > i);
                    bad += masked && P[j] != 0.0f;
                    s += P[j];
                }
                bad += fabs(s - (no_key(&c, b, i) ? 0.0 : 1.0)) > 1e-5;
            }
    size_t zero_rows_bad = 0;
    for (int64_t b = 0; b < B; b++)
        for (int64_t i = 0; i < T; i++)
            for (int64_t j = 0; j < C && no_key(&c, b, i); j++) zero_rows_bad += c.g.y[(b * T + i) * C + j] != 0.0f;
    for (size_t i = 0; i < c.g.ny; i++) nonfinite += !isfinite(c.g.y[i]);
    CHECK(bad == 0 && nonfinite == 0 && zero_rows_bad == 0,
          "%s: probabilities masked and normalised (%zu bad, %zu non-finite, %zu non-zero outputs of keyless queries)",
          what, bad, nonfinite, zero_rows_bad);

    size_t nq = (size_t)(B * T * 3 * C);
    float *dq = grad_start(nq);
    ct_attention_backward(dq, c.ws, c.g.r, c.att, c.qkv, B, T, C, H, p, c.key);
    grad_added(dq, nq);
    char name[160];
    snprintf(name, sizeof name, "attention %s B%lld T%lld C%lld H%lld dqkv", what, (long long)B, (long long)T,
             (long long)C, (long long)H);
    ct_set_threads(1); /* hundreds of tiny forwards; the thread count changes no bit (test_attention_dropout) */
    gradcheck(name, c.qkv, dq, nq, gc_loss, &c, 1e-2f, FD_ATOL, FD_RTOL, 400);
    if (p > 0.0f) {
        /* the backward must regenerate the forward's mask: with another key it
         * gives another gradient, which this same check rejects */
        float *wrong = calloc(nq, 4);
        ct_attention_backward(wrong, c.ws, c.g.r, c.att, c.qkv, B, T, C, H, p, c.key + 1);
        double diff = 0;
        for (size_t i = 0; i < nq; i++) diff = fmax(diff, fabs(wrong[i] - dq[i]));
        CHECK(diff > 1e-2, "%s: a backward with another dropout key differs (max %g)", what, diff);
        free(wrong);
    }
    ct_set_threads(0);
    free(dq);
    att_free(&c);
}

/* Dropout on the probabilities: the kept share, the kept values, the mask's
 * dependence on the key alone (not on the thread count), and its regeneration in
 * backward. */
static void test_attention_dropout(void) {
    /* B H T^2 D above CT_PAR_MIN, so 2 threads really split the heads */
    const int64_t B = 4, T = 33, C = 24, H = 3, TT = T * T;
    const float p = 0.25f;
    const int64_t first[4] = {0, 0, 0, 0}, end[4] = {33, 20, 1, 33};
    uint8_t *valid = make_valid(B, T, first, end);
    size_t na = (size_t)(B * H * TT), nq = (size_t)(B * T * 3 * C), ny = (size_t)(B * T * C);
    att_ctx c[2];
    float *dq[2], *pd[2]; /* pd: the dropped probabilities, from ws before the backward reuses it */
    for (int t = 0; t < 2; t++) {
        ct_set_threads(t + 1);
        att_setup(&c[t], B, T, C, H, valid, 1, p, 0xC0FFEE);
        att_fwd(&c[t]);
        pd[t] = malloc(na * 4);
        memcpy(pd[t], c[t].ws, na * 4);
        dq[t] = calloc(nq, 4);
        ct_attention_backward(dq[t], c[t].ws, c[t].g.r, c[t].att, c[t].qkv, B, T, C, H, p, c[t].key);
    }
    ct_set_threads(0);
    CHECK(memcmp(c[0].g.y, c[1].g.y, ny * 4) == 0 && memcmp(c[0].att, c[1].att, na * 4) == 0 &&
              memcmp(pd[0], pd[1], na * 4) == 0 && memcmp(dq[0], dq[1], nq * 4) == 0,
          "attention with dropout: y, att, dropped att and dqkv identical at 1 and 2 threads");
    /* entries with P > 0: dropped about p of the time, the others exactly P / (1 - p) */
    size_t live = 0, dropped = 0, wrong = 0;
    const float scale = 1.0f / (1.0f - p);
    for (size_t i = 0; i < na; i++) {
        if (c[0].att[i] == 0.0f) { wrong += pd[0][i] != 0.0f; continue; }
        live++;
        if (pd[0][i] == 0.0f) dropped++;
        else wrong += pd[0][i] != c[0].att[i] * scale;
    }
    double frac = (double)dropped / (double)live; /* ~7000 live entries: sd of frac ~0.005 */
    CHECK(fabs(frac - p) < 0.03 && wrong == 0, "attention dropout drops %.3f of %zu (p %.2f), %zu kept values wrong",
          frac, live, p, wrong);
    /* another key: another mask (about 2p(1-p) = 37.5% of live entries differ) and output */
    att_ctx o;
    att_setup(&o, B, T, C, H, valid, 1, p, 0xC0FFEE + 1);
    att_fwd(&o);
    size_t differ = 0;
    for (size_t i = 0; i < na; i++) differ += (pd[0][i] == 0.0f) != (o.ws[i] == 0.0f);
    CHECK(differ > live / 4 && memcmp(o.g.y, c[0].g.y, ny * 4) != 0,
          "two dropout keys give different masks (%zu of %zu live entries differ) and outputs", differ, live);
    /* the same key again: the same bits */
    memset(o.ws, 0, na * 4);
    o.key = c[0].key;
    att_fwd(&o);
    CHECK(memcmp(o.ws, pd[0], na * 4) == 0 && memcmp(o.g.y, c[0].g.y, ny * 4) == 0,
          "the same key gives the same mask and output");
    att_free(&o);
    for (int t = 0; t < 2; t++) { att_free(&c[t]); free(dq[t]); free(pd[t]); }
    free(valid);
}

/* ---- pooling over tokens --------------------------------------------------------------- */
typedef struct {
    gc_ctx g;
    float *x;
    const uint8_t *valid;
    int64_t B, T, C;
    ct_tokpool_mode mode;
} tp_ctx;

static void tp_fwd(void *p) {
    tp_ctx *c = p;
    ct_tokpool_forward(c->g.y, c->x, c->valid, c->B, c->T, c->C, c->mode);
}

static void test_tokpool(ct_tokpool_mode mode) {
    static const char *names[] = {"mean", "first (CLS)", "last (EOT)"};
    const int64_t B = 4, T = 6, C = 5;
    /* all real; one real token; none (zeros, no gradient); real tokens 0..3 */
    const int64_t first[4] = {0, 0, 0, 0}, end[4] = {6, 1, 0, 4};
    uint8_t *valid = make_valid(B, T, first, end);
    tp_ctx c;
    memset(&c, 0, sizeof c);
    c.B = B; c.T = T; c.C = C; c.valid = valid; c.mode = mode;
    size_t n = (size_t)(B * T * C), ny = (size_t)(B * C);
    c.x = rnd(n, 51, -1, 1);
    c.g.y = calloc(ny, 4); c.g.r = rnd(ny, 52, -1, 1); c.g.ny = ny; c.g.fwd = tp_fwd;
    tp_fwd(&c);
    /* direct expectations for sequence 3 (tokens 0..3 real) and 2 (none) */
    int ok = 1;
    for (int64_t j = 0; j < C; j++) {
        const float *x3 = c.x + 3 * T * C;
        double want = mode == CT_TOKPOOL_FIRST ? x3[j] : mode == CT_TOKPOOL_LAST ? x3[3 * C + j]
                      : ((double)x3[j] + x3[C + j] + x3[2 * C + j] + x3[3 * C + j]) / 4.0;
        ok &= fabs(c.g.y[3 * C + j] - want) < 1e-6;
        if (mode != CT_TOKPOOL_FIRST) ok &= c.g.y[2 * C + j] == 0.0f;
    }
    CHECK(ok, "tokpool %s: pooled values as defined (padded tokens ignored, empty sequence zero)", names[mode]);
    float *dx = grad_start(n);
    ct_tokpool_backward(dx, c.g.r, valid, B, T, C, mode);
    grad_added(dx, n);
    char what[64];
    snprintf(what, sizeof what, "tokpool %s dx", names[mode]);
    gradcheck(what, c.x, dx, n, gc_loss, &c, 0.25f, FD_ATOL, FD_RTOL, 1000);
    free(dx); free(c.x); free(c.g.y); free(c.g.r); free(valid);
}

/* ---- PyTorch fixture ------------------------------------------------------------------
 * Format (little endian, see make_transformer_reference.py): "CTTFMv01", int32 version
 * 1, int32 nconfig 5, B T C H seed, int32 ntensors, then per tensor int32 name_len,
 * name, int32 ndim, int64 shape[ndim], float32 data; "CTTFMEND". Every length is
 * checked against the bytes left before it is used. */
typedef struct {
    char name[96];
    size_t numel;
    float *data;
} fx_tensor;

typedef struct {
    int32_t conf[5];
    int n;
    fx_tensor *t;
} fixture;

typedef struct {
    const unsigned char *p;
    size_t left;
} cursor;

static int take(cursor *c, void *dst, size_t n) {
    if (c->left < n) return 0;
    memcpy(dst, c->p, n); /* the format is little endian, like every machine we build for */
    c->p += n;
    c->left -= n;
    return 1;
}

static void fixture_free(fixture *fx) {
    for (int i = 0; i < fx->n; i++) free(fx->t[i].data);
    free(fx->t);
    memset(fx, 0, sizeof *fx);
}

static ct_status fixture_load(fixture *fx, const char *path) {
    memset(fx, 0, sizeof *fx);
    size_t size;
    unsigned char *bytes = slurp(path, &size);
    if (!bytes) return ct_error(CT_ERR_IO, "%s: cannot open (%s); %s", path, strerror(errno), REGEN);
    cursor c = {bytes, size};
    char magic[8];
    int32_t version, nconf, nt;
    ct_status st = CT_OK;
    if (!take(&c, magic, 8) || memcmp(magic, "CTTFMv01", 8) || !take(&c, &version, 4) || version != 1 ||
        !take(&c, &nconf, 4) || nconf != 5 || !take(&c, fx->conf, 20) || !take(&c, &nt, 4) || nt < 1 || nt > 10000) {
        st = ct_error(CT_ERR_FORMAT, "%s: bad header (not a version 1 transformer fixture); %s", path, REGEN);
        goto done;
    }
    fx->t = calloc((size_t)nt, sizeof(fx_tensor));
    for (int i = 0; i < nt; i++) {
        fx_tensor *t = &fx->t[i];
        int32_t len, ndim;
        if (!take(&c, &len, 4) || len < 1 || len >= (int32_t)sizeof t->name || !take(&c, t->name, (size_t)len) ||
            !take(&c, &ndim, 4) || ndim < 0 || ndim > 4) {
            st = ct_error(CT_ERR_FORMAT, "%s: tensor %d: bad or truncated name or rank; %s", path, i, REGEN);
            goto done;
        }
        size_t numel = 1;
        for (int d = 0; d < ndim; d++) {
            int64_t s;
            if (!take(&c, &s, 8) || s < 0 || ct_size_mul(numel, (size_t)s, &numel)) {
                st = ct_error(CT_ERR_FORMAT, "%s: %s: bad or truncated shape; %s", path, t->name, REGEN);
                goto done;
            }
        }
        t->numel = numel;
        t->data = malloc(numel ? numel * 4 : 4);
        fx->n = i + 1;
        if (numel > c.left / 4 || !take(&c, t->data, numel * 4)) {
            st = ct_error(CT_ERR_FORMAT, "%s: %s: truncated; %s", path, t->name, REGEN);
            goto done;
        }
    }
    if (!take(&c, magic, 8) || memcmp(magic, "CTTFMEND", 8) || c.left)
        st = ct_error(CT_ERR_FORMAT, "%s: missing end marker or trailing bytes; %s", path, REGEN);
done:
    free(bytes);
    if (st) fixture_free(fx);
    return st;
}

/* "<variant>.<name>" with exactly n floats, or NULL (counted as a failure). */
static const float *fx_get(const fixture *fx, const char *variant, const char *name, size_t n) {
    char full[128];
    snprintf(full, sizeof full, "%s.%s", variant, name);
    for (int i = 0; i < fx->n; i++)
        if (!strcmp(fx->t[i].name, full)) {
            CHECK(fx->t[i].numel == n, "fixture tensor %s has %zu floats, expected %zu", full, fx->t[i].numel, n);
            return fx->t[i].numel == n ? fx->t[i].data : NULL;
        }
    CHECK(0, "fixture tensor %s missing; %s", full, REGEN);
    return NULL;
}

/* The one comparison rule: worst share of |got - ref| / (atol_rel * max|ref| + rtol * |ref|). */
static double tol_ratio(const float *got, const float *ref, size_t n, size_t *at) {
    double scale = 0, worst = 0;
    for (size_t i = 0; i < n; i++) scale = fmax(scale, fabs(ref[i]));
    *at = 0;
    for (size_t i = 0; i < n; i++) {
        double r = fabs((double)got[i] - ref[i]) / (REF_ATOL_REL * scale + REF_RTOL * fabs(ref[i]) + 1e-30);
        if (!isfinite(got[i])) r = INFINITY;
        if (r > worst) { worst = r; *at = i; }
    }
    return worst;
}

static double g_ref_worst;

static void expect_ref(const char *variant, const char *name, const float *got, const fixture *fx, size_t n) {
    const float *ref = fx_get(fx, variant, name, n);
    if (!ref) return;
    size_t at;
    double r = tol_ratio(got, ref, n, &at);
    g_ref_worst = fmax(g_ref_worst, r);
    CHECK(r <= 1.0, "%s.%s vs PyTorch: worst at [%zu] got %.8g ref %.8g, %.2f of the tolerance", variant, name, at,
          got[at], ref[at], r);
    /* the rule rejects the largest gradient element moved by 1e-4 * max|ref| */
    if (!strncmp(name, "grad.", 5)) {
        float *bent = malloc(n * 4);
        memcpy(bent, got, n * 4);
        size_t big = 0;
        for (size_t i = 0; i < n; i++) big = fabs(ref[i]) > fabs(ref[big]) ? i : big;
        bent[big] += 1e-4f * fabsf(ref[big]);
        CHECK(tol_ratio(bent, ref, n, &at) > 1.0, "%s.%s: a perturbed gradient is rejected", variant, name);
        free(bent);
    }
}

/* One pre-LN block through our kernels, as the fixture script runs it in PyTorch. */
static void run_variant(const fixture *fx, const char *variant) {
    const int64_t B = fx->conf[0], T = fx->conf[1], C = fx->conf[2], H = fx->conf[3], N = B * T, C4 = 4 * C;
    const size_t nbtc = (size_t)(N * C), nqkv = 3 * nbtc, natt = (size_t)(B * H * T * T), nf = (size_t)(N * C4);
    const float *flags = fx_get(fx, variant, "flags", 2), *x = fx_get(fx, variant, "x", nbtc),
                *validf = fx_get(fx, variant, "valid", (size_t)N), *dout = fx_get(fx, variant, "dout", nbtc);
    static const char *pn[12] = {"ln1.weight", "ln1.bias", "attn.qkv.weight", "attn.qkv.bias", "attn.proj.weight",
                                 "attn.proj.bias", "ln2.weight", "ln2.bias", "mlp.fc1.weight", "mlp.fc1.bias",
                                 "mlp.fc2.weight", "mlp.fc2.bias"};
    const size_t psz[12] = {(size_t)C, (size_t)C, (size_t)(3 * C * C), (size_t)(3 * C), (size_t)(C * C), (size_t)C,
                            (size_t)C, (size_t)C, (size_t)(C4 * C), (size_t)C4, (size_t)(C * C4), (size_t)C};
    const float *w[12];
    char name[64];
    int ok = flags && x && validf && dout;
    for (int i = 0; i < 12; i++) {
        snprintf(name, sizeof name, "param.%s", pn[i]);
        w[i] = fx_get(fx, variant, name, psz[i]);
        ok &= w[i] != NULL;
    }
    if (!ok) return;
    const ct_gelu_kind gk = flags[0] != 0.0f ? CT_GELU_TANH : CT_GELU_ERF;
    const int causal = flags[1] != 0.0f;
    uint8_t *valid = malloc((size_t)N);
    for (int64_t i = 0; i < N; i++) valid[i] = validf[i] != 0.0f;

    /* forward */
    float *a = calloc(nbtc, 4), *m1 = calloc((size_t)N, 4), *r1 = calloc((size_t)N, 4), *qkv = calloc(nqkv, 4),
          *att = calloc(natt, 4), *ws = calloc(natt, 4), *o = calloc(nbtc, 4), *h = calloc(nbtc, 4),
          *m = calloc(nbtc, 4), *m2 = calloc((size_t)N, 4), *r2 = calloc((size_t)N, 4), *f = calloc(nf, 4),
          *g = calloc(nf, 4), *out = calloc(nbtc, 4), *tmp = calloc(nbtc, 4);
    ct_layernorm_forward(a, m1, r1, x, w[0], w[1], N, C, 1e-5f);
    ct_linear_forward(qkv, a, w[2], w[3], N, C, 3 * C);
    ct_attention_forward(o, att, NULL, qkv, valid, B, T, C, H, causal, 0.0f, 0);
    ct_linear_forward(tmp, o, w[4], w[5], N, C, C);
    ct_add_forward(h, x, tmp, nbtc);
    ct_layernorm_forward(m, m2, r2, h, w[6], w[7], N, C, 1e-5f);
    ct_linear_forward(f, m, w[8], w[9], N, C, C4);
    ct_gelu_forward(g, f, nf, gk);
    ct_linear_forward(tmp, g, w[10], w[11], N, C4, C);
    ct_add_forward(out, h, tmp, nbtc);
    expect_ref(variant, "ln1", a, fx, nbtc);
    expect_ref(variant, "qkv", qkv, fx, nqkv);
    expect_ref(variant, "att", att, fx, natt);
    expect_ref(variant, "attn", o, fx, nbtc);
    expect_ref(variant, "h", h, fx, nbtc);
    expect_ref(variant, "ln2", m, fx, nbtc);
    expect_ref(variant, "fc1", f, fx, nf);
    expect_ref(variant, "gelu", g, fx, nf);
    expect_ref(variant, "out", out, fx, nbtc);

    /* backward of L = sum(out * dout): out = h + fc2(gelu(fc1(ln2(h)))), h = x + proj(attn(qkv(ln1(x)))) */
    float *dw[12];
    for (int i = 0; i < 12; i++) dw[i] = calloc(psz[i], 4);
    float *dh = calloc(nbtc, 4), *dg = calloc(nf, 4), *df = calloc(nf, 4), *dm = calloc(nbtc, 4),
          *dx = calloc(nbtc, 4), *do_ = calloc(nbtc, 4), *dqkv = calloc(nqkv, 4), *da = calloc(nbtc, 4);
    memcpy(dh, dout, nbtc * 4); /* the residual branch */
    ct_linear_backward(dg, dw[10], dw[11], dout, g, w[10], N, C4, C);
    ct_gelu_backward(df, dg, f, nf, gk);
    ct_linear_backward(dm, dw[8], dw[9], df, m, w[8], N, C, C4);
    ct_layernorm_backward(dh, dw[6], dw[7], dm, h, m2, r2, w[6], N, C);
    memcpy(dx, dh, nbtc * 4);
    ct_linear_backward(do_, dw[4], dw[5], dh, o, w[4], N, C, C);
    ct_attention_backward(dqkv, ws, do_, att, qkv, B, T, C, H, 0.0f, 0);
    ct_linear_backward(da, dw[2], dw[3], dqkv, a, w[2], N, C, 3 * C);
    ct_layernorm_backward(dx, dw[0], dw[1], da, x, m1, r1, w[0], N, C);
    expect_ref(variant, "grad.fc1", df, fx, nf);
    expect_ref(variant, "grad.attn", do_, fx, nbtc);
    expect_ref(variant, "grad.qkv", dqkv, fx, nqkv);
    expect_ref(variant, "grad.x", dx, fx, nbtc);
    for (int i = 0; i < 12; i++) {
        snprintf(name, sizeof name, "grad.%s", pn[i]);
        expect_ref(variant, name, dw[i], fx, psz[i]);
    }
    for (int i = 0; i < 12; i++) free(dw[i]);
    free(dh); free(dg); free(df); free(dm); free(dx); free(do_); free(dqkv); free(da);
    free(a); free(m1); free(r1); free(qkv); free(att); free(ws); free(o); free(h); free(m); free(m2); free(r2);
    free(f); free(g); free(out); free(tmp); free(valid);
}

static void test_reference(const char *path) {
    fixture fx;
    ct_status st = fixture_load(&fx, path);
    CHECK(st == CT_OK, "%s", ct_errmsg());
    if (st) return;
    CHECK(fx.conf[2] % fx.conf[3] == 0, "%s: C %d not a multiple of H %d", path, fx.conf[2], fx.conf[3]);
    g_ref_worst = 0;
    run_variant(&fx, "tanh");
    run_variant(&fx, "erf");
    printf("PyTorch pre-LN block (B %d, T %d, C %d, H %d): worst element uses %.1f%% of the tolerance\n", fx.conf[0],
           fx.conf[1], fx.conf[2], fx.conf[3], 100 * g_ref_worst);
    fixture_free(&fx);
}

/* A missing, truncated or foreign fixture is an error naming the file, never a crash. */
static void test_bad_fixture(const char *path) {
    fixture fx;
    ct_status st = fixture_load(&fx, "tests/fixtures/no_such_transformer_ref.bin");
    CHECK(st == CT_ERR_IO && strstr(ct_errmsg(), "no_such_transformer_ref.bin"), "missing fixture: %s", ct_errmsg());
    size_t n;
    unsigned char *b = slurp(path, &n);
    if (!b) return; /* test_reference already reported it */
    const char *tmp = "/tmp/contrast_test_transformer_bad.bin";
    const size_t cuts[4] = {4, 40, n / 2, n - 1};
    for (int i = 0; i < 4; i++) {
        spit(tmp, b, cuts[i]);
        st = fixture_load(&fx, tmp);
        CHECK(st == CT_ERR_FORMAT && strstr(ct_errmsg(), tmp), "fixture cut at %zu of %zu bytes: %s", cuts[i], n,
              ct_errmsg());
    }
    b[0] = 'X';
    spit(tmp, b, n);
    st = fixture_load(&fx, tmp);
    CHECK(st == CT_ERR_FORMAT, "fixture with a bad magic: %s", ct_errmsg());
    remove(tmp);
    free(b);
}

/* The vectorised draws (ct_nn__uniform_at, a copy of rng.c's step) are
 * ct_rng_uniform's, and ct_dropout_forward's mask is the per-block generator's:
 * element i is draw i % 1024 of ct_rng_key(key, i / 1024, 0, 0), kept at >= p. */
static void test_dropout_draws(void) {
    size_t bad = 0;
    for (uint64_t k = 0; k < 4; k++) {
        const uint64_t key = ct_rng_key(0xD409 + k, k, 7, 0);
        ct_rng r = ct_rng_make(key);
        for (uint64_t j = 0; j < 3000; j++) bad += ct_nn__uniform_at(key, j) != ct_rng_uniform(&r);
    }
    CHECK(bad == 0, "vectorised draws equal ct_rng_uniform's (%zu differ)", bad);
    const size_t n = 2500; /* two whole blocks and a part */
    const float p = 0.3f, scale = 1.0f / (1.0f - p);
    float *x = rnd(n, 31, -1, 1), *y = calloc(n, 4), *mask = calloc(n, 4);
    ct_dropout_forward(y, mask, x, n, p, 77);
    size_t wrong = 0;
    for (size_t b = 0; b * 1024 < n; b++) {
        ct_rng r = ct_rng_make(ct_rng_key(77, b, 0, 0));
        for (size_t i = b * 1024; i < n && i < (b + 1) * 1024; i++) {
            const float m = ct_rng_uniform(&r) >= p ? scale : 0.0f;
            wrong += mask[i] != m || y[i] != x[i] * m;
        }
    }
    CHECK(wrong == 0, "dropout mask and output from the per-block generators (%zu of %zu wrong)", wrong, n);
    free(x); free(y); free(mask);
}

int main(int argc, char **argv) {
    ct_set_threads(0);
    test_embedding(11, 5, 7);   /* repeats */
    test_embedding(3, 40, 19);  /* a partial column block */
    test_embedding_threads();
    test_posembed(3, 5, 7);
    test_posembed(2, 1, 3);     /* T = 1 */
    test_layernorm(7, 13, 1);
    test_layernorm(5, 33, 0);
    test_layernorm(3, 1, 1);    /* C = 1: y = beta, dx = 0 */
    test_layernorm_threads();
    test_dropout_draws();
    test_gelu(CT_GELU_ERF);
    test_gelu(CT_GELU_TANH);

    /* attention: odd sizes, masks, T = 1, keyless queries, dropout */
    test_attention("plain", 2, 5, 12, 3, NULL, 0, 0.0f);
    test_attention("causal", 2, 7, 10, 2, NULL, 1, 0.0f);
    test_attention("one head D 7", 3, 4, 7, 1, NULL, 0, 0.0f);
    test_attention("T 1", 3, 1, 8, 2, NULL, 1, 0.0f);
    {
        /* all real; all padded but token 0; padded but token 3 (left padding, so with
         * causal the queries before it see no key); none real */
        const int64_t first[4] = {0, 0, 3, 0}, end[4] = {6, 1, 4, 0};
        uint8_t *v = make_valid(4, 6, first, end);
        test_attention("padding", 4, 6, 8, 2, v, 0, 0.0f);
        test_attention("padding + causal", 4, 6, 8, 2, v, 1, 0.0f);
        test_attention("padding + causal + dropout", 4, 6, 8, 2, v, 1, 0.3f);
        free(v);
    }
    test_attention("dropout", 2, 5, 12, 3, NULL, 0, 0.5f);
    test_attention_dropout();

    test_tokpool(CT_TOKPOOL_MEAN);
    test_tokpool(CT_TOKPOOL_FIRST);
    test_tokpool(CT_TOKPOOL_LAST);

    const char *path = argc > 1 ? argv[1] : getenv("CONTRAST_TRANSFORMER_FIXTURE");
    test_reference(path ? path : FIXTURE_DEFAULT);
    test_bad_fixture(path ? path : FIXTURE_DEFAULT);
    return test_done();
}
