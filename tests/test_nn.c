/* test_nn.c: every layer's backward against central finite differences, the fast
 * convolution against its direct reference, model-level gradient checks through a
 * ResNet basic block with its projection shortcut, and thread-count invariance.
 *
 * Tolerances (float32 forward, loss L = sum(y * r) accumulated in double):
 *   smooth ops (conv, linear, pools, add, BN):  eps 1e-2 (BN, BN+pool 1e-3; conv 0.25, exact for
 *                                               its linear loss), |num-ana| <= 2e-3 + 2e-2*|num|
 *   whole models (ReLU kinks, BN curvature):    eps 1e-4, |num-ana| <= 5e-3 + 5e-2*|num|
 *   (deep tiny ResNets are too curved for float differences; ResNet-18 is checked
 *   exactly against PyTorch autograd in test_reference instead)
 *   conv fast path vs direct reference:        |diff| <= 1e-4 + 1e-4*|ref| */
#include "harness.h"
#include "../src/nn/internal.h" /* ct_conv2d_*_ref */

#include <omp.h>

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
    float *x = calloc(n, sizeof(float));
    fill_uniform(x, n, seed, lo, hi);
    return x;
}

/* ---- conv2d ------------------------------------------------------------------ */
typedef struct {
    gc_ctx g;
    float *x, *w, *b, *ws;
    ct_conv2d_shape s;
} conv_ctx;

static void conv_fwd(void *p) {
    conv_ctx *c = p;
    ct_conv2d_forward(c->g.y, c->x, c->w, c->b, &c->s, c->ws);
}

static void test_conv(int64_t N, int64_t C, int64_t H, int64_t W, int64_t OC, int64_t K, int64_t stride,
                      int64_t pad, int bias) {
    conv_ctx c;
    memset(&c, 0, sizeof c);
    CHECK_OK(ct_conv2d_shape_init(&c.s, N, C, H, W, OC, K, K, stride, pad));
    size_t nx = (size_t)(N * C * H * W), nw = (size_t)(OC * C * K * K), ny = (size_t)(N * OC * c.s.OH * c.s.OW);
    c.x = rnd(nx, 1, -1, 1);
    c.w = rnd(nw, 2, -1, 1);
    c.b = bias ? rnd((size_t)OC, 3, -1, 1) : NULL;
    c.ws = calloc(ct_conv2d_workspace(&c.s), sizeof(float));
    c.g.y = calloc(ny, sizeof(float));
    c.g.r = rnd(ny, 4, -1, 1);
    c.g.ny = ny;
    c.g.fwd = conv_fwd;
    char what[128];
    snprintf(what, sizeof what, "conv N%lld C%lld %lldx%lld OC%lld k%lld s%lld p%lld b%d", (long long)N,
             (long long)C, (long long)H, (long long)W, (long long)OC, (long long)K, (long long)stride,
             (long long)pad, bias);

    /* fast path vs direct reference, forward and backward */
    float *yref = calloc(ny, sizeof(float));
    conv_fwd(&c);
    ct_conv2d_forward_ref(yref, c.x, c.w, c.b, &c.s);
    check_close(what, c.g.y, yref, ny, 1e-4, 1e-4);
    float *dx = calloc(nx, 4), *dw = calloc(nw, 4), *db = calloc((size_t)OC, 4);
    float *dxr = calloc(nx, 4), *dwr = calloc(nw, 4), *dbr = calloc((size_t)OC, 4);
    /* accumulate semantics: start from non-zero gradients */
    fill_uniform(dx, nx, 9, -1, 1); memcpy(dxr, dx, nx * 4);
    fill_uniform(dw, nw, 10, -1, 1); memcpy(dwr, dw, nw * 4);
    ct_conv2d_backward(dx, dw, bias ? db : NULL, c.g.r, c.x, c.w, &c.s, c.ws, 0);
    ct_conv2d_backward_ref(dxr, dwr, bias ? dbr : NULL, c.g.r, c.x, c.w, &c.s);
    check_close("conv dx vs ref (accumulating)", dx, dxr, nx, 1e-4, 1e-4);
    check_close("conv dw vs ref (accumulating)", dw, dwr, nw, 1e-4, 1e-4);
    if (bias) check_close("conv db vs ref", db, dbr, (size_t)OC, 1e-4, 1e-4);

    /* finite differences on fresh gradients, on one thread: hundreds of forwards,
     * each a parallel region whose barrier spins whole time slices on a busy machine
     * (measured at load 4: 30 s instead of 120 for this file; the results do not
     * depend on the thread count, test_conv_threads) */
    memset(dw, 0, nw * 4); memset(db, 0, (size_t)OC * 4);
    for (size_t i = 0; i < nx; i++) dx[i] = 1e6f; /* overwrite mode: garbage it must ignore */
    ct_conv2d_backward(dx, dw, bias ? db : NULL, c.g.r, c.x, c.w, &c.s, c.ws, 1);
    ct_set_threads(1);
    /* The loss sum(y * r) is linear in x, w and b, so a central difference is exact
     * at any step: a large one (0.25) keeps the forward's rounding (F(4x4) Winograd:
     * ~1e-5 of each output, summed over every output a weight touches) far below the
     * difference it divides. */
    gradcheck(what, c.x, dx, nx, gc_loss, &c, 0.25f, 2e-3, 2e-2, 200);
    gradcheck("conv dw", c.w, dw, nw, gc_loss, &c, 0.25f, 2e-3, 2e-2, 200);
    if (bias) gradcheck("conv db", c.b, db, (size_t)OC, gc_loss, &c, 0.25f, 2e-3, 2e-2, 200);
    ct_set_threads(0);
    free(yref); free(dx); free(dw); free(db); free(dxr); free(dwr); free(dbr);
    free(c.x); free(c.w); free(c.b); free(c.ws); free(c.g.y); free(c.g.r);
}

/* ---- batchnorm ------------------------------------------------------------- */
typedef struct {
    gc_ctx g;
    float *x, *gamma, *beta, *mean, *invstd, *rm, *rv;
    int64_t N, C, HW;
    int training, relu;
} bn_ctx;

static void bn_fwd(void *p) {
    bn_ctx *c = p;
    ct_batchnorm_forward(c->g.y, c->mean, c->invstd, c->rm, c->rv, c->x, c->gamma, c->beta, c->N, c->C, c->HW,
                         1e-5f, 0.1f, c->training, c->relu);
}

/* With relu, x is built so that no normalised value lies near ReLU's kink (where
 * a finite difference would straddle it): per channel, pairs centre +- (0.5 + u)
 * around the centre the normalisation subtracts (the batch mean in training, the
 * running mean in eval), and |beta| <= 0.1 moves the kink at most 0.3 from it. */
static void test_bn(int64_t N, int64_t C, int64_t HW, int training, int relu) {
    bn_ctx c;
    memset(&c, 0, sizeof c);
    c.N = N; c.C = C; c.HW = HW; c.training = training; c.relu = relu;
    size_t n = (size_t)(N * C * HW);
    c.x = rnd(n, 11, -2, 3);
    c.gamma = rnd((size_t)C, 12, 0.5f, 1.5f);
    c.beta = rnd((size_t)C, 13, relu ? -0.1f : -1.0f, relu ? 0.1f : 1.0f);
    c.mean = calloc((size_t)C, 4); c.invstd = calloc((size_t)C, 4);
    c.rm = rnd((size_t)C, 14, -0.5f, 0.5f); c.rv = rnd((size_t)C, 15, 0.5f, 2.0f);
    if (relu) {
        CHECK((N * HW) % 2 == 0, "BN+ReLU test needs an even count per channel");
        for (int64_t ch = 0; ch < C; ch++)
            for (int64_t e = 0; e < N * HW; e += 2) {
                float centre = training ? 0.3f * (float)ch - 0.2f : c.rm[ch], d = 0.5f + c.x[(size_t)e] * 0.2f + 0.4f;
                int64_t i0 = ((e / HW) * C + ch) * HW + e % HW, i1 = (((e + 1) / HW) * C + ch) * HW + (e + 1) % HW;
                c.x[i0] = centre + d;
                c.x[i1] = centre - d;
            }
    }
    c.g.y = calloc(n, 4); c.g.r = rnd(n, 16, -1, 1); c.g.ny = n; c.g.fwd = bn_fwd;
    float *rm0 = malloc((size_t)C * 4), *rv0 = malloc((size_t)C * 4);
    memcpy(rm0, c.rm, (size_t)C * 4); memcpy(rv0, c.rv, (size_t)C * 4);
    bn_fwd(&c);
    if (relu) {
        /* the fused output is relu of the plain one, and ct_batchnorm_apply
         * recomputes it bit for bit from the saved statistics */
        float *plain = calloc(n, 4), *again = calloc(n, 4), *mean = calloc((size_t)C, 4), *invstd = calloc((size_t)C, 4);
        ct_batchnorm_forward(plain, mean, invstd, rm0, rv0, c.x, c.gamma, c.beta, N, C, HW, 1e-5f, 0.1f, training, 0);
        size_t bad = 0;
        for (size_t i = 0; i < n; i++) bad += c.g.y[i] != (plain[i] > 0.0f ? plain[i] : 0.0f);
        CHECK(bad == 0, "BN+ReLU output equals relu(BN output): %zu differ", bad);
        ct_batchnorm_apply(again, c.x, c.mean, c.invstd, c.gamma, c.beta, N, C, HW, 1);
        CHECK(memcmp(again, c.g.y, n * 4) == 0, "ct_batchnorm_apply recomputes the forward's bits");
        free(plain); free(again); free(mean); free(invstd);
    }
    float *dx = calloc(n, 4), *dg = calloc((size_t)C, 4), *dbt = calloc((size_t)C, 4);
    /* with relu, the overwrite mode (dx holding garbage it must ignore) */
    for (size_t i = 0; relu && i < n; i++) dx[i] = 1e6f;
    ct_batchnorm_backward(dx, dg, dbt, c.g.r, c.x, c.mean, c.invstd, c.gamma, c.beta, N, C, HW, training, relu, relu);
    char what[96];
    snprintf(what, sizeof what, "batchnorm%s N%lld C%lld HW%lld %s dx", relu ? "+relu" : "", (long long)N,
             (long long)C, (long long)HW, training ? "train" : "eval");
    gradcheck(what, c.x, dx, n, gc_loss, &c, 1e-3f, 2e-3, 2e-2, 200);
    gradcheck("batchnorm dgamma", c.gamma, dg, (size_t)C, gc_loss, &c, 1e-3f, 2e-3, 2e-2, 200);
    gradcheck("batchnorm dbeta", c.beta, dbt, (size_t)C, gc_loss, &c, 1e-3f, 2e-3, 2e-2, 200);
    free(rm0); free(rv0);
    if (training && !relu) {
        /* normalised output: per-channel mean beta, std gamma; running stats moved by momentum */
        double s = 0, ss = 0;
        for (int64_t i = 0; i < N; i++)
            for (int64_t j = 0; j < HW; j++) {
                double v = c.g.y[(i * C) * HW + j];
                s += v; ss += v * v;
            }
        double M = (double)(N * HW), mu = s / M, sd = sqrt(ss / M - mu * mu);
        CHECK(fabs(mu - c.beta[0]) < 1e-4 && fabs(sd - c.gamma[0]) < 1e-3, "BN output mean %g std %g", mu, sd);
    }
    free(dx); free(dg); free(dbt); free(c.x); free(c.gamma); free(c.beta); free(c.mean); free(c.invstd);
    free(c.rm); free(c.rv); free(c.g.y); free(c.g.r);
}

static void test_bn_running_stats(void) {
    /* one channel, values 1..4: mean 2.5, unbiased var 5/3; momentum 0.1 from (0, 1) */
    float x[4] = {1, 2, 3, 4}, y[4], mean, invstd, rm = 0, rv = 1, g = 1, b = 0;
    ct_batchnorm_forward(y, &mean, &invstd, &rm, &rv, x, &g, &b, 4, 1, 1, 1e-5f, 0.1f, 1, 0);
    CHECK(fabs(rm - 0.25f) < 1e-6, "running mean %g, expected 0.25", rm);
    CHECK(fabs(rv - (0.9f + 0.1f * 5.0f / 3.0f)) < 1e-6, "running var %g", rv);
    CHECK(fabs(invstd - 1.0f / sqrtf(1.25f + 1e-5f)) < 1e-6, "invstd uses the biased variance");
    /* eval mode uses the running statistics */
    ct_batchnorm_forward(y, &mean, &invstd, &rm, &rv, x, &g, &b, 4, 1, 1, 1e-5f, 0.1f, 0, 0);
    CHECK(fabs(y[0] - (1 - rm) / sqrtf(rv + 1e-5f)) < 1e-6, "eval output %g", y[0]);
}

/* ---- batchnorm fused with the 2x2 max pool ------------------------------------ */
typedef struct {
    gc_ctx g;
    float *x, *gamma, *beta, *mean, *invstd, *rm, *rv;
    int32_t *argmax;
    int64_t N, C, H, W;
    int training, relu;
} bnpool_ctx;

static void bnpool_fwd(void *p) {
    bnpool_ctx *c = p;
    ct_batchnorm_maxpool_forward(c->g.y, c->argmax, c->mean, c->invstd, c->rm, c->rv, c->x, c->gamma, c->beta, c->N,
                                 c->C, c->H, c->W, 1e-5f, 0.1f, c->training, c->relu);
}

/* x: distinct values 0.04 apart in a scrambled order, so no pool window holds two
 * within reach of the 1e-3 differences (which move a normalised value by at most
 * ~7e-4); with relu each channel's beta is then moved (by < 0.05) to keep every
 * normalised value at least 3e-3 from ReLU's kink, which the test checks. */
static double kink_distance(const bnpool_ctx *c, int64_t ch, float beta) {
    double near = INFINITY;
    for (int64_t n = 0; n < c->N; n++)
        for (int64_t i = 0; i < c->H * c->W; i++) {
            float x = c->x[(n * c->C + ch) * c->H * c->W + i];
            double v = ((double)x - c->mean[ch]) * c->invstd[ch] * c->gamma[ch] + beta;
            if (fabs(v) < near) near = fabs(v);
        }
    return near;
}

static void test_bn_maxpool_grad(int64_t N, int64_t C, int64_t H, int64_t W, int training, int relu) {
    bnpool_ctx c;
    memset(&c, 0, sizeof c);
    c.N = N; c.C = C; c.H = H; c.W = W; c.training = training; c.relu = relu;
    const size_t nx = (size_t)(N * C * H * W), ny = (size_t)(N * C * (H / 2) * (W / 2));
    c.x = calloc(nx, 4);
    for (size_t i = 0; i < nx; i++) c.x[i] = (float)((i * 7919) % nx) * 0.04f - (float)nx * 0.017f;
    c.gamma = rnd((size_t)C, 12, 0.5f, 1.5f);
    c.beta = rnd((size_t)C, 13, -0.3f, 0.3f);
    c.mean = calloc((size_t)C, 4); c.invstd = calloc((size_t)C, 4);
    c.rm = rnd((size_t)C, 14, -0.5f, 0.5f); c.rv = rnd((size_t)C, 15, 4.0f, 9.0f);
    c.argmax = calloc(ny, 4);
    c.g.y = calloc(ny, 4); c.g.r = rnd(ny, 16, -1, 1); c.g.ny = ny; c.g.fwd = bnpool_fwd;
    bnpool_fwd(&c);
    double near = INFINITY;
    for (int64_t ch = 0; relu && ch < C; ch++) {
        float best = c.beta[ch];
        for (int k = -100; k <= 100; k++) {
            float b = c.beta[ch] + 5e-4f * (float)k;
            if (kink_distance(&c, ch, b) > kink_distance(&c, ch, best)) best = b;
        }
        c.beta[ch] = best;
        double d = kink_distance(&c, ch, best);
        if (d < near) near = d;
    }
    CHECK(!relu || near > 3e-3, "bn+maxpool gradcheck input: nearest normalised value to the kink %.4f", near);
    bnpool_fwd(&c);
    float *dx = calloc(nx, 4), *dg = calloc((size_t)C, 4), *dbt = calloc((size_t)C, 4);
    /* with relu, the overwrite mode (dx holding garbage it must ignore) */
    for (size_t i = 0; relu && i < nx; i++) dx[i] = 1e6f;
    ct_batchnorm_maxpool_backward(dx, dg, dbt, c.g.r, c.argmax, c.x, c.mean, c.invstd, c.gamma, c.beta, N, C, H, W,
                                  training, relu, relu);
    char what[96];
    snprintf(what, sizeof what, "batchnorm%s+maxpool N%lld C%lld %lldx%lld %s", relu ? "+relu" : "", (long long)N,
             (long long)C, (long long)H, (long long)W, training ? "train" : "eval");
    size_t nz = 0;
    for (size_t i = 0; i < nx; i++) nz += dx[i] != 0.0f;
    CHECK(nz > 0, "%s: a nonzero dx", what);
    gradcheck(what, c.x, dx, nx, gc_loss, &c, 1e-3f, 2e-3, 2e-2, 200);
    gradcheck("batchnorm+maxpool dgamma", c.gamma, dg, (size_t)C, gc_loss, &c, 1e-3f, 2e-3, 2e-2, 200);
    gradcheck("batchnorm+maxpool dbeta", c.beta, dbt, (size_t)C, gc_loss, &c, 1e-3f, 2e-3, 2e-2, 200);
    free(dx); free(dg); free(dbt); free(c.x); free(c.gamma); free(c.beta); free(c.mean); free(c.invstd);
    free(c.rm); free(c.rv); free(c.argmax); free(c.g.y); free(c.g.r);
}

/* ---- linear ------------------------------------------------------------------- */
typedef struct {
    gc_ctx g;
    float *x, *w, *b;
    int64_t N, IN, OUT;
} lin_ctx;

static void lin_fwd(void *p) {
    lin_ctx *c = p;
    ct_linear_forward(c->g.y, c->x, c->w, c->b, c->N, c->IN, c->OUT);
}

static void test_linear(int64_t N, int64_t IN, int64_t OUT) {
    lin_ctx c;
    memset(&c, 0, sizeof c);
    c.N = N; c.IN = IN; c.OUT = OUT;
    size_t nx = (size_t)(N * IN), nw = (size_t)(OUT * IN), ny = (size_t)(N * OUT);
    c.x = rnd(nx, 21, -1, 1); c.w = rnd(nw, 22, -1, 1); c.b = rnd((size_t)OUT, 23, -1, 1);
    c.g.y = calloc(ny, 4); c.g.r = rnd(ny, 24, -1, 1); c.g.ny = ny; c.g.fwd = lin_fwd;
    float *dx = calloc(nx, 4), *dw = calloc(nw, 4), *db = calloc((size_t)OUT, 4);
    ct_linear_backward(dx, dw, db, c.g.r, c.x, c.w, N, IN, OUT);
    gradcheck("linear dx", c.x, dx, nx, gc_loss, &c, 1e-2f, 2e-3, 2e-2, 200);
    gradcheck("linear dw", c.w, dw, nw, gc_loss, &c, 1e-2f, 2e-3, 2e-2, 200);
    gradcheck("linear db", c.b, db, (size_t)OUT, gc_loss, &c, 1e-2f, 2e-3, 2e-2, 200);
    free(dx); free(dw); free(db); free(c.x); free(c.w); free(c.b); free(c.g.y); free(c.g.r);
}

/* ---- pooling, relu, add, dropout ---------------------------------------------- */
typedef struct {
    gc_ctx g;
    float *x, *x2, *mask;
    int32_t *argmax;
    int64_t N, C, H, W, k, stride, pad;
    int op; /* 0 max, 1 avg, 2 gap, 3 relu, 4 add, 5 dropout, 6 add+relu */
} pool_ctx;

static void pool_fwd(void *p) {
    pool_ctx *c = p;
    size_t n = (size_t)(c->N * c->C * c->H * c->W);
    switch (c->op) {
    case 0: ct_maxpool_forward(c->g.y, c->argmax, c->x, c->N, c->C, c->H, c->W, c->k, c->stride, c->pad); break;
    case 1: ct_avgpool_forward(c->g.y, c->x, c->N, c->C, c->H, c->W, c->k, c->stride, c->pad); break;
    case 2: ct_gap_forward(c->g.y, c->x, c->N, c->C, c->H * c->W); break;
    case 3: ct_relu_forward(c->g.y, c->x, n); break;
    case 4: ct_add_forward(c->g.y, c->x, c->x2, n); break;
    case 5: ct_dropout_forward(c->g.y, c->mask, c->x, n, 0.3f, 77); break;
    case 6: ct_add_relu_forward(c->g.y, c->x, c->x2, n); break;
    }
}

static void test_pointwise_and_pool(int op, int64_t N, int64_t C, int64_t H, int64_t W, int64_t k, int64_t stride,
                                    int64_t pad) {
    static const char *names[] = {"maxpool", "avgpool", "global avgpool", "relu", "add", "dropout", "add+relu"};
    pool_ctx c;
    memset(&c, 0, sizeof c);
    c.N = N; c.C = C; c.H = H; c.W = W; c.k = k; c.stride = stride; c.pad = pad; c.op = op;
    size_t nx = (size_t)(N * C * H * W);
    int64_t OH = op <= 1 ? ct_pool_out(H, k, stride, pad) : (op == 2 ? 1 : H);
    int64_t OW = op <= 1 ? ct_pool_out(W, k, stride, pad) : (op == 2 ? 1 : W);
    size_t ny = (size_t)(N * C * OH * OW);
    c.x = rnd(nx, 31, -1, 1);
    /* keep inputs away from ReLU's kink and max-pool ties (finite differences of 1e-2) */
    for (size_t i = 0; i < nx; i++) c.x[i] += c.x[i] >= 0 ? 0.05f : -0.05f;
    if (op == 0)
        for (size_t i = 0; i < nx; i++) c.x[i] = (float)((i * 7919) % nx) * 0.05f - (float)nx * 0.02f;
    c.x2 = rnd(nx, 32, -1, 1);
    /* add+relu: x + x2 = x * (1 + |x2| / 2) keeps x's distance from the kink */
    if (op == 6)
        for (size_t i = 0; i < nx; i++) c.x2[i] = 0.5f * c.x[i] * fabsf(c.x2[i]);
    c.mask = calloc(nx, 4);
    c.argmax = calloc(ny, 4);
    c.g.y = calloc(ny, 4); c.g.r = rnd(ny, 33, -1, 1); c.g.ny = ny; c.g.fwd = pool_fwd;
    pool_fwd(&c);
    float *dx = calloc(nx, 4), *dx2 = calloc(nx, 4);
    switch (op) {
    case 0: ct_maxpool_backward(dx, c.g.r, c.argmax, N, C, OH, OW, H, W); break;
    case 1: ct_avgpool_backward(dx, c.g.r, N, C, H, W, k, stride, pad); break;
    case 2: ct_gap_backward(dx, c.g.r, N, C, H * W); break;
    case 3: ct_relu_backward(dx, c.g.r, c.g.y, nx); break;
    case 4: for (size_t i = 0; i < nx; i++) { dx[i] += c.g.r[i]; dx2[i] += c.g.r[i]; } break;
    case 5: ct_dropout_backward(dx, c.g.r, c.mask, nx); break;
    case 6: ct_add_relu_backward(dx, dx2, c.g.r, c.g.y, nx); break;
    }
    char what[96];
    snprintf(what, sizeof what, "%s N%lld C%lld %lldx%lld k%lld s%lld p%lld", names[op], (long long)N, (long long)C,
             (long long)H, (long long)W, (long long)k, (long long)stride, (long long)pad);
    gradcheck(what, c.x, dx, nx, gc_loss, &c, 1e-2f, 2e-3, 2e-2, 300);
    if (op == 4 || op == 6) gradcheck("add second input", c.x2, dx2, nx, gc_loss, &c, 1e-2f, 2e-3, 2e-2, 300);
    if (op == 5) {
        size_t kept = 0;
        for (size_t i = 0; i < nx; i++) kept += c.mask[i] != 0;
        double frac = (double)kept / nx;
        CHECK(fabs(frac - 0.7) < 0.1, "dropout keeps %.2f, expected about 0.7", frac);
    }
    free(dx); free(dx2); free(c.x); free(c.x2); free(c.mask); free(c.argmax); free(c.g.y); free(c.g.r);
}

/* ---- whole models -------------------------------------------------------------- */
typedef struct {
    gc_ctx g;
    ct_model *m;
    float *x;
    int64_t N;
} model_ctx;

static void model_fwd(void *p) {
    model_ctx *c = p;
    ct_model_forward(c->m, c->x, c->N, 1, 1);
    memcpy(c->g.y, ct_model_embedding(c->m), c->g.ny * sizeof(float));
}

/* Gradient check of every parameter tensor of a model (sampled points per tensor). */
static void gradcheck_model(const char *label, ct_model *m, int64_t N) {
    size_t nin = (size_t)(N * m->cfg.in_c * m->cfg.in_h * m->cfg.in_w);
    model_ctx c;
    memset(&c, 0, sizeof c);
    c.m = m; c.N = N;
    c.x = rnd(nin, 41, -1, 1);
    c.g.ny = (size_t)(N * ct_model_embed_dim(m));
    c.g.y = calloc(c.g.ny, 4); c.g.r = rnd(c.g.ny, 42, -1, 1); c.g.fwd = model_fwd;
    CHECK_OK(ct_model_prepare(m, N));
    model_fwd(&c);
    ct_model_zero_grad(m);
    CHECK_OK(ct_model_backward(m, c.g.r));
    float *g = malloc(m->nparam_floats * 4);
    memcpy(g, m->grad, m->nparam_floats * 4);
    for (int i = 0; i < m->nparams; i++) {
        char what[160];
        snprintf(what, sizeof what, "%s %s", label, m->params[i].name);
        gradcheck(what, m->param + m->params[i].offset, g + m->params[i].offset, m->params[i].numel, gc_loss, &c,
                  1e-4f, 5e-3, 5e-2, 12);
    }
    free(g); free(c.x); free(c.g.y); free(c.g.r);
}

static void test_basic_block_model(void) {
    /* conv -> basic block with projection shortcut (stride 2, 4 -> 6 channels) ->
     * identity block -> gap -> linear; odd 7x7 input, batch 3. The front conv's
     * weight gradient only comes out right if the block's input gradient is right. */
    ct_model m;
    ct_model_config cfg;
    ct_model_config_default(&cfg);
    cfg.in_c = 2; cfg.in_h = 7; cfg.in_w = 7; cfg.seed = 5;
    CHECK_OK(ct_model_begin(&m, &cfg));
    int x = ct_model_add_conv(&m, 0, 4, 3, 1, 1, 1, "stem");
    x = ct_model_add_basic_block(&m, x, 6, 2, "layer1.0");
    x = ct_model_add_basic_block(&m, x, 6, 1, "layer1.1");
    int h = ct_model_add_gap(&m, x);
    int z = ct_model_add_linear(&m, ct_model_add_dropout(&m, ct_model_add_flatten(&m, h), 0.2f), 5, 1, "fc");
    CHECK_OK(ct_model_finish(&m, h, z));
    CHECK(ct_model_find(&m, "layer1.0.downsample.0.weight", 0) != NULL, "projection shortcut present");
    CHECK(ct_model_find(&m, "layer1.1.downsample.0.weight", 0) == NULL, "identity shortcut has no conv");
    CHECK(ct_model_find(&m, "layer1.0.bn1.running_var", 1) != NULL, "BN running stats are buffers");
    gradcheck_model("basic block", &m, 6);
    ct_model_free(&m);
}

static void test_small_models(void) {
    /* the default CNN + head and a ResNet-18 at width 2 with its real topology */
    ct_model m;
    ct_model_config cfg;
    ct_model_config_default(&cfg);
    cfg.width = 2; cfg.head_hidden = 6; cfg.head_out = 3; cfg.in_h = cfg.in_w = 11;
    CHECK_OK(ct_model_init(&m, &cfg));
    CHECK(ct_model_feature_dim(&m) == 16 && ct_model_embed_dim(&m) == 3, "cnn dims");
    gradcheck_model("cnn", &m, 4);
    ct_model_free(&m);
    /* a wider last stage (contrast train's 16w) and a whitening buffer pair */
    cfg.last_width = 32;
    cfg.whiten = 1e-4f;
    CHECK_OK(ct_model_init(&m, &cfg));
    const ct_tensor_info *w4 = ct_model_find(&m, "encoder.conv4.weight", 0), *wh = ct_model_find(&m, "whiten.weight", 1);
    CHECK(ct_model_feature_dim(&m) == 32 && w4 && w4->shape[0] == 32 && w4->shape[1] == 8, "last width 32: h has 32 features");
    CHECK(wh && wh->shape[0] == 32 && wh->shape[1] == 32 && m.buf[wh->offset] == 1.0f && m.buf[wh->offset + 1] == 0.0f,
          "whiten.weight is 32 x 32, the identity until fitted");
    gradcheck_model("cnn, last width 32", &m, 4);
    ct_model_free(&m);
    cfg.last_width = 0;
    cfg.whiten = 0;
    cfg.encoder = CT_ENC_RESNET18; cfg.in_c = 3; cfg.in_h = cfg.in_w = 9;
    CHECK_OK(ct_model_init(&m, &cfg));
    CHECK(m.nparams == 62 + 4, "resnet18 has 62 encoder tensors + 4 head tensors, got %d", m.nparams);
    CHECK(m.nbufs == 2 * 20 + 2, "resnet18 has 20 BN layers + 1 in the head, got %d buffers", m.nbufs);
    ct_model_free(&m);
}

static void test_model_errors(void) {
    ct_model m;
    ct_model_config cfg;
    ct_model_config_default(&cfg);
    cfg.in_h = cfg.in_w = 1; /* too small for a 2x2 max pool after conv: builds no pool, still valid */
    CHECK_OK(ct_model_init(&m, &cfg));
    ct_model_free(&m);
    cfg.in_h = cfg.in_w = 28; cfg.width = 0;
    CHECK(ct_model_init(&m, &cfg) == CT_ERR_ARG, "width 0 refused");
    ct_model_config_default(&cfg);
    cfg.encoder = CT_ENC_RESNET18; cfg.last_width = 64;
    CHECK(ct_model_init(&m, &cfg) == CT_ERR_ARG, "last width on a resnet18 refused");
    ct_model_config_default(&cfg);
    cfg.last_width = -1;
    CHECK(ct_model_init(&m, &cfg) == CT_ERR_ARG, "negative last width refused");
    ct_model_config_default(&cfg);
    cfg.whiten = 1.0f;
    CHECK(ct_model_init(&m, &cfg) == CT_ERR_ARG, "whitening shrinkage 1 refused");
    ct_model_config_default(&cfg);
    CHECK_OK(ct_model_init(&m, &cfg));
    float x[784] = {0};
    CHECK(ct_model_forward(&m, x, 1, 1, 1) == CT_ERR_STATE, "forward before prepare refused: %s", ct_errmsg());
    CHECK_OK(ct_model_prepare(&m, 2));
    CHECK(ct_model_forward(&m, x, 3, 1, 1) == CT_ERR_ARG, "batch larger than prepared refused");
    CHECK(ct_model_forward(&m, x, 1, 1, 1) == CT_ERR_ARG, "BatchNorm1d on one sample refused");
    ct_model_free(&m);
    ct_encoder_kind k;
    CHECK(ct_encoder_parse("vgg", &k) == CT_ERR_ARG && strstr(ct_errmsg(), "vgg"), "unknown encoder named");
}

/* Node `what` of the building blocks on input `in` (the residual adds: as either input). */
static int add_on(ct_model *m, int what, int in) {
    switch (what) {
    case 0: return ct_model_add_conv(m, in, 2, 3, 1, 1, 0, "bad");
    case 1: return ct_model_add_bn(m, in, "bad");
    case 2: return ct_model_add_bn_relu(m, in, "bad");
    case 3: return ct_model_add_relu(m, in);
    case 4: return ct_model_add_maxpool(m, in, 2, 2, 0);
    case 5: return ct_model_add_avgpool(m, in, 2, 2, 0);
    case 6: return ct_model_add_gap(m, in);
    case 7: return ct_model_add_flatten(m, in);
    case 8: return ct_model_add_linear(m, in, 3, 1, "bad");
    case 9: return ct_model_add_dropout(m, in, 0.1f);
    case 10: return ct_model_add_add(m, 1, in);
    case 11: return ct_model_add_add_relu(m, in, 1);
    default: return ct_model_add_basic_block(m, in, 2, 1, "bad");
    }
}

/* Every ct_model_add_* checks its input index before reading m->nodes[in]: one that
 * is not a node built so far (just past the end, far past it, negative) returns -1
 * with CT_ERR_ARG and a message naming it, sticky: later adds fail too and
 * ct_model_finish reports it. */
static void test_model_bad_input(void) {
    ct_model_config cfg;
    ct_model_config_default(&cfg);
    cfg.in_h = cfg.in_w = 6;
    for (int what = 0; what <= 12; what++)
        for (int bad = 0; bad < 3; bad++) {
            ct_model m;
            CHECK_OK(ct_model_begin(&m, &cfg));
            CHECK(ct_model_add_conv(&m, 0, 2, 3, 1, 1, 0, "c") == 1, "a conv on the input is node 1");
            const int in = bad == 0 ? m.nnodes : bad == 1 ? 1 << 28 : -3;
            char want[48];
            snprintf(want, sizeof want, "input node %d ", in);
            const int id = add_on(&m, what, in);
            CHECK(id == -1 && m.build_status == CT_ERR_ARG && strstr(ct_errmsg(), want),
                  "add #%d on node %d of 2: %d, %s: %s", what, in, id, ct_status_name(m.build_status), ct_errmsg());
            CHECK(ct_model_add_relu(&m, 1) == -1 && m.build_status == CT_ERR_ARG, "add #%d: the error is sticky", what);
            CHECK(ct_model_finish(&m, 1, 1) == CT_ERR_ARG, "add #%d: finish reports it", what);
            ct_model_free(&m);
        }
    /* a model whose begin failed has no input node */
    ct_model m;
    cfg.in_c = 0;
    CHECK(ct_model_begin(&m, &cfg) == CT_ERR_ARG, "0 input channels refused");
    CHECK(ct_model_add_conv(&m, 0, 2, 3, 1, 1, 0, "c") == -1 && strstr(ct_errmsg(), "input node 0 "),
          "add after a failed begin: %s", ct_errmsg());
    ct_model_free(&m);
}

/* A training-mode forward + backward at 1 and 2 threads gives identical bits. */
static void test_thread_invariance(void) {
    ct_model_config cfg;
    ct_model_config_default(&cfg);
    cfg.encoder = CT_ENC_RESNET18; cfg.width = 4; cfg.head_hidden = 16; cfg.head_out = 8;
    cfg.in_h = cfg.in_w = 12;
    int64_t N = 10;
    float *x = rnd((size_t)(N * 144), 51, -1, 1), *dz = rnd((size_t)(N * 8), 52, -1, 1);
    float *g[2], *z[2];
    for (int t = 0; t < 2; t++) {
        ct_model m;
        CHECK_OK(ct_model_init(&m, &cfg));
        ct_set_threads(t + 1);
        CHECK_OK(ct_model_prepare(&m, N));
        CHECK_OK(ct_model_forward(&m, x, N, 1, 1));
        ct_model_zero_grad(&m);
        CHECK_OK(ct_model_backward(&m, dz));
        g[t] = malloc(m.nparam_floats * 4);
        memcpy(g[t], m.grad, m.nparam_floats * 4);
        z[t] = malloc((size_t)(N * 8) * 4);
        memcpy(z[t], ct_model_embedding(&m), (size_t)(N * 8) * 4);
        if (t == 1) {
            CHECK(memcmp(g[0], g[1], m.nparam_floats * 4) == 0, "gradients identical at 1 and 2 threads");
            CHECK(memcmp(z[0], z[1], (size_t)(N * 8) * 4) == 0, "embeddings identical at 1 and 2 threads");
        }
        ct_model_free(&m);
    }
    ct_set_threads(0);
    free(g[0]); free(g[1]); free(z[0]); free(z[1]); free(x); free(dz);
}

/* The Winograd path: its forward and input gradient do not depend on which thread
 * takes which chunk, its weight gradient sums fixed parts in order, so the bits are
 * the same at 1, 2 and 5 threads (odd maps, a partial group of lanes in every part;
 * F(3x3) on the 5x3 map, F(2x2) on the 7x4 one). So does im2col on a few input
 * channels (the grayscale stem, RGB on an odd map): its weight gradient sums each
 * part, the parts in order. */
static void test_conv_threads(int64_t C, int64_t H, int64_t W) {
    ct_conv2d_shape s;
    CHECK_OK(ct_conv2d_shape_init(&s, 70, C, H, W, 16, 3, 3, 1, 1));
    size_t nx = (size_t)(70 * C * H * W), ny = (size_t)(70 * 16 * H * W), nw = (size_t)(16 * C * 9);
    float *x = rnd(nx, 61, -1, 1), *w = rnd(nw, 62, -1, 1), *dy = rnd(ny, 63, -1, 1);
    /* 5 threads: more than CT_NN_PARTS, the number of scratch areas */
    float *ws = calloc(ct_conv2d_workspace(&s), 4), *out[3][3];
    const int threads[3] = {1, 2, CT_NN_PARTS + 1};
    for (int t = 0; t < 3; t++) {
        ct_set_threads(threads[t]);
        out[t][0] = calloc(ny, 4); out[t][1] = calloc(nx, 4); out[t][2] = calloc(nw, 4);
        ct_conv2d_forward(out[t][0], x, w, NULL, &s, ws);
        ct_conv2d_backward(out[t][1], out[t][2], NULL, dy, x, w, &s, ws, 0);
    }
    ct_set_threads(0);
    for (int t = 1; t < 3; t++)
        CHECK(memcmp(out[0][0], out[t][0], ny * 4) == 0 && memcmp(out[0][1], out[t][1], nx * 4) == 0 &&
                  memcmp(out[0][2], out[t][2], nw * 4) == 0,
              "conv C%lld %lldx%lld: forward, dx and dw identical at 1 and %d threads", (long long)C, (long long)H,
              (long long)W, threads[t]);
    for (int t = 0; t < 3; t++)
        for (int k = 0; k < 3; k++) free(out[t][k]);
    free(x); free(w); free(dy); free(ws);
}

int main(void) {
    ct_set_threads(0);
    test_conv(2, 3, 7, 7, 4, 3, 1, 1, 1);   /* odd size, padding, bias */
    test_conv(1, 2, 8, 9, 3, 3, 2, 1, 0);   /* stride 2, batch 1, non-square */
    test_conv(5, 4, 6, 6, 5, 1, 1, 0, 0);   /* pointwise (no im2col) */
    test_conv(3, 3, 7, 5, 2, 1, 2, 0, 1);   /* strided 1x1 (projection shortcut) */
    test_conv(2, 1, 5, 5, 2, 5, 1, 2, 1);   /* 5x5 kernel */
    test_conv(3, 2, 1, 1, 3, 3, 1, 1, 0);   /* "same" 3x3 on a 1x1 map: most kernel rows miss it */
    test_conv(2, 2, 2, 3, 3, 3, 1, 1, 1);   /* "same" 3x3 on a map narrower than the kernel */
    test_conv(3, 64, 4, 6, 65, 3, 1, 1, 1); /* 64+ channels, batch too small for Winograd */
    /* one input channel, 3x3, stride 1, pad 1: the grayscale stem's shapes (28x28, 20x16),
     * a map narrower than a vector, one pixel; batches under and over the part count */
    test_conv(6, 1, 28, 28, 5, 3, 1, 1, 0);
    test_conv(9, 1, 20, 16, 3, 3, 1, 1, 1);
    test_conv(2, 1, 3, 5, 4, 3, 1, 1, 1);
    test_conv(5, 1, 1, 1, 2, 3, 1, 1, 0);
    /* Winograd (3x3, stride 1, pad 1, 8+ channels, batch 64+): the parts hold whole
     * groups of 8 lanes, or end in a partial group (batch 67, 70); maps even, odd,
     * non-square, of one tile and the CNN's at 20x20 and 28x28 inputs. F(2x2): */
    test_conv(64, 8, 6, 4, 8, 3, 1, 1, 1);   /* even, non-square, bias */
    test_conv(67, 9, 5, 7, 8, 3, 1, 1, 0);   /* odd, non-square, partial groups */
    test_conv(64, 16, 2, 2, 24, 3, 1, 1, 1); /* one tile */
    test_conv(70, 8, 1, 1, 8, 3, 1, 1, 0);   /* a 1x1 map padded to a tile */
    test_conv(64, 16, 10, 10, 8, 3, 1, 1, 0); /* the CNN's 10x10 and 14x14 maps */
    test_conv(64, 8, 14, 14, 8, 3, 1, 1, 0);
    /* F(3x3): */
    test_conv(64, 8, 5, 5, 16, 3, 1, 1, 0);  /* the CNN's 5x5 and 3x3 maps */
    test_conv(64, 8, 3, 3, 8, 3, 1, 1, 0);
    test_conv(67, 8, 3, 5, 8, 3, 1, 1, 1);   /* non-square, partial groups, bias */
    test_conv(64, 8, 9, 9, 8, 3, 1, 1, 0);   /* 3x3 tiles */
    test_conv(64, 9, 6, 6, 10, 3, 1, 1, 0);  /* 9 and 10 channels: every GEMM kernel's edge blocks */
    test_conv(64, 7, 4, 4, 8, 3, 1, 1, 0);   /* 7 channels: im2col */
    /* F(4x4): */
    test_conv(64, 32, 7, 7, 8, 3, 1, 1, 1);  /* the CNN's 7x7 map (partial tiles), bias */
    test_conv(67, 8, 8, 7, 8, 3, 1, 1, 0);   /* non-square, partial groups */
    test_conv(64, 16, 4, 4, 24, 3, 1, 1, 0); /* one tile: ResNet-18's 4x4 maps */
    test_conv(64, 8, 12, 12, 8, 3, 1, 1, 0); /* 3x3 tiles, as on 28x28 maps (7x7 tiles) */
    test_bn(4, 3, 5, 1, 0);
    test_bn(1, 2, 9, 1, 0);                 /* batch 1 (2d: statistics over H*W) */
    test_bn(6, 5, 1, 1, 0);                 /* BatchNorm1d */
    test_bn(3, 3, 4, 0, 0);                 /* eval mode */
    test_bn(4, 3, 5, 1, 1);                 /* BN+ReLU fused */
    test_bn(6, 5, 1, 1, 1);                 /* BN1d+ReLU */
    test_bn(3, 3, 4, 0, 1);                 /* BN+ReLU, eval mode */
    test_bn_running_stats();
    test_bn_maxpool_grad(3, 2, 5, 6, 1, 1);  /* odd rows: the last one only in the statistics */
    test_bn_maxpool_grad(2, 3, 4, 7, 1, 0);  /* odd columns, no ReLU */
    test_bn_maxpool_grad(3, 2, 6, 4, 0, 1);  /* eval mode */
    test_linear(3, 7, 5);
    test_linear(1, 4, 9);
    test_pointwise_and_pool(0, 2, 3, 7, 7, 2, 2, 0);
    test_pointwise_and_pool(0, 1, 2, 6, 5, 3, 2, 1);
    test_pointwise_and_pool(1, 2, 3, 7, 7, 2, 2, 0);
    test_pointwise_and_pool(1, 1, 2, 5, 6, 3, 2, 1);
    test_pointwise_and_pool(2, 3, 4, 5, 3, 0, 0, 0);
    test_pointwise_and_pool(3, 2, 3, 4, 5, 0, 0, 0);
    test_pointwise_and_pool(4, 2, 3, 4, 5, 0, 0, 0);
    test_pointwise_and_pool(5, 2, 3, 4, 5, 0, 0, 0);
    test_pointwise_and_pool(6, 2, 3, 4, 5, 0, 0, 0);
    test_basic_block_model();
    test_small_models();
    test_model_errors();
    test_model_bad_input();
    test_thread_invariance();
    test_conv_threads(16, 5, 3);
    test_conv_threads(16, 7, 4);
    test_conv_threads(16, 28, 28); /* F(4x4), 9 chunks of 8 samples: more than the threads */
    test_conv_threads(1, 28, 28); /* im2col: the grayscale stem, RGB on an odd map */
    test_conv_threads(3, 9, 13);
    return test_done();
}
