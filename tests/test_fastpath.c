/* test_fastpath.c: the speed-oriented paths against plain versions, at sizes
 * where they actually engage (the layer tests in test_nn use tiny shapes):
 *   - conv2d with several samples per im2col chunk and a ragged last chunk,
 *     forward and backward vs the direct reference, |diff| <= 1e-4 + 1e-4*|ref|;
 *   - the 2x2 stride-2 max pool vs a naive loop with the same first-max-wins rule,
 *     exact (values and argmax), with ties and odd sizes;
 *   - BN (+ ReLU) fused with the 2x2 max pool vs BN then pool, exact (pooled
 *     output, argmax, statistics, and every gradient from the pooled one), with
 *     ties, odd and even maps, planes over one backward stretch, training and eval,
 *     at 1 and 2 threads; and the same at model level (the builder's BN+ReLU ->
 *     pool, which prepare fuses, vs BN -> ReLU -> pool, which it does not), with
 *     SyncBN falling back to the unfused path;
 *   - recomputed conv outputs (ct_model_recompute_convs, ct_model_recompute) vs kept
 *     ones, exact, in ResNet-18 and the CNN with the preset marks or every conv marked;
 *   - whole CNN and ResNet-18 training steps with every parallel loop above its
 *     one-thread threshold, bit-identical at 1, 2 and 3 threads. */
#include "harness.h"
#include "../src/nn/internal.h" /* ct_conv2d_*_ref */
#include "../src/models/internal.h" /* the activation plan: fused BN + pools, recomputed convs */

#include <math.h>

static float *rnd(size_t n, uint64_t seed, float lo, float hi) {
    float *x = calloc(n, sizeof(float));
    fill_uniform(x, n, seed, lo, hi);
    return x;
}

static void test_conv_chunks(int64_t N, int64_t C, int64_t H, int64_t OC, int64_t K, int64_t stride,
                             int64_t pad) {
    ct_conv2d_shape s;
    CHECK_OK(ct_conv2d_shape_init(&s, N, C, H, H, OC, K, K, stride, pad));
    size_t nx = (size_t)(N * C * H * H), nw = (size_t)(OC * C * K * K), ny = (size_t)(N * OC * s.OH * s.OW);
    float *x = rnd(nx, 1, -1, 1), *w = rnd(nw, 2, -1, 1), *b = rnd((size_t)OC, 3, -1, 1);
    float *ws = calloc(ct_conv2d_workspace(&s), sizeof(float));
    float *y = calloc(ny, 4), *yr = calloc(ny, 4), *dy = rnd(ny, 4, -1, 1);
    float *dx = rnd(nx, 5, -1, 1), *dxr = calloc(nx, 4), *dw = rnd(nw, 6, -1, 1), *dwr = calloc(nw, 4);
    float *db = calloc((size_t)OC, 4), *dbr = calloc((size_t)OC, 4);
    memcpy(dxr, dx, nx * 4);
    memcpy(dwr, dw, nw * 4);
    char what[96];
    snprintf(what, sizeof what, "conv chunks N%lld C%lld %lldx%lld OC%lld k%lld s%lld", (long long)N, (long long)C,
             (long long)H, (long long)H, (long long)OC, (long long)K, (long long)stride);
    ct_conv2d_forward(y, x, w, b, &s, ws);
    ct_conv2d_forward_ref(yr, x, w, b, &s);
    check_close(what, y, yr, ny, 1e-4, 1e-4);
    ct_conv2d_backward(dx, dw, db, dy, x, w, &s, ws, 0);
    ct_conv2d_backward_ref(dxr, dwr, dbr, dy, x, w, &s);
    check_close("conv chunks dx (accumulating)", dx, dxr, nx, 1e-4, 1e-4);
    check_close("conv chunks dw (accumulating)", dw, dwr, nw, 1e-4, 1e-4);
    check_close("conv chunks db", db, dbr, (size_t)OC, 1e-4, 1e-4);
    free(x); free(w); free(b); free(ws); free(y); free(yr); free(dy);
    free(dx); free(dxr); free(dw); free(dwr); free(db); free(dbr);
}

static void test_maxpool2x2(int64_t N, int64_t C, int64_t H, int64_t W) {
    const int64_t OH = H / 2, OW = W / 2;
    size_t nx = (size_t)(N * C * H * W), ny = (size_t)(N * C * OH * OW);
    float *x = rnd(nx, 7, -1, 1);
    for (size_t i = 0; i < nx; i++) x[i] = roundf(x[i] * 2.0f); /* values in {-2..2}: many ties */
    float *y = calloc(ny, 4);
    int32_t *am = calloc(ny, 4);
    ct_maxpool_forward(y, am, x, N, C, H, W, 2, 2, 0);
    int bad = 0;
    for (int64_t p = 0; p < N * C; p++)
        for (int64_t oh = 0; oh < OH; oh++)
            for (int64_t ow = 0; ow < OW; ow++) {
                const float *xp = x + p * H * W;
                float best = -INFINITY;
                int32_t bi = -1;
                for (int kh = 0; kh < 2; kh++)
                    for (int kw = 0; kw < 2; kw++) {
                        int32_t i = (int32_t)((2 * oh + kh) * W + 2 * ow + kw);
                        if (xp[i] > best || bi < 0) { best = xp[i]; bi = i; }
                    }
                size_t o = (size_t)((p * OH + oh) * OW + ow);
                bad += y[o] != best || am[o] != bi;
            }
    CHECK(bad == 0, "maxpool 2x2 fast path = naive first-max-wins (%lldx%lld): %d mismatches", (long long)H,
          (long long)W, bad);
    free(x); free(y); free(am);
}

/* ct_batchnorm_maxpool_* against ct_batchnorm_* + ct_maxpool_* (must be bit-identical) */
static void test_bn_maxpool(int64_t N, int64_t C, int64_t H, int64_t W, int training, int relu) {
    const int64_t OH = H / 2, OW = W / 2;
    const size_t nx = (size_t)(N * C * H * W), ny = (size_t)(N * C * OH * OW), nc = (size_t)C;
    float *x = rnd(nx, 31, -2, 3);
    for (size_t i = 0; i < nx; i++) x[i] = roundf(x[i] * 4.0f) / 4.0f; /* ties inside pool windows */
    float *gamma = rnd(nc, 32, 0.5f, 1.5f), *beta = rnd(nc, 33, -0.5f, 0.5f);
    float *rm0 = rnd(nc, 34, -0.5f, 0.5f), *rv0 = rnd(nc, 35, 0.5f, 2.0f), *dy = rnd(ny, 36, -1, 1);
    float *dx0 = rnd(nx, 37, -1, 1), *dg0 = rnd(nc, 38, -1, 1), *db0 = rnd(nc, 39, -1, 1); /* accumulated into */
    /* reference: the unfused path at one thread */
    ct_set_threads(1);
    float *yfull = calloc(nx, 4), *yr = calloc(ny, 4), *dyfull = calloc(nx, 4);
    int32_t *ar = calloc(ny, 4);
    float *mr = calloc(nc, 4), *ir = calloc(nc, 4), *rmr = malloc(nc * 4), *rvr = malloc(nc * 4);
    float *dxr = malloc(nx * 4), *dgr = malloc(nc * 4), *dbr = malloc(nc * 4);
    memcpy(rmr, rm0, nc * 4); memcpy(rvr, rv0, nc * 4);
    memcpy(dxr, dx0, nx * 4); memcpy(dgr, dg0, nc * 4); memcpy(dbr, db0, nc * 4);
    ct_batchnorm_forward(yfull, mr, ir, rmr, rvr, x, gamma, beta, N, C, H * W, 1e-5f, 0.1f, training, relu);
    ct_maxpool_forward(yr, ar, yfull, N, C, H, W, 2, 2, 0);
    ct_maxpool_backward(dyfull, dy, ar, N, C, OH, OW, H, W);
    ct_batchnorm_backward(dxr, dgr, dbr, dyfull, x, mr, ir, gamma, beta, N, C, H * W, training, relu, 0);
    /* overwrite mode: the dx accumulated into zeros, whatever dx held */
    float *dxz = calloc(nx, 4), *dxo = rnd(nx, 42, -9, 9), *dgs = malloc(nc * 4), *dbs = malloc(nc * 4);
    memcpy(dgs, dg0, nc * 4); memcpy(dbs, db0, nc * 4);
    ct_batchnorm_backward(dxz, dgs, dbs, dyfull, x, mr, ir, gamma, beta, N, C, H * W, training, relu, 0);
    memcpy(dgs, dg0, nc * 4); memcpy(dbs, db0, nc * 4);
    ct_batchnorm_backward(dxo, dgs, dbs, dyfull, x, mr, ir, gamma, beta, N, C, H * W, training, relu, 1);
    CHECK(!memcmp(dxo, dxz, nx * 4) && !memcmp(dgs, dgr, nc * 4) && !memcmp(dbs, dbr, nc * 4),
          "BN backward overwriting dx = accumulating into zeros");
    for (int t = 1; t <= 2; t++) {
        ct_set_threads(t);
        float *y = calloc(ny, 4), *m = calloc(nc, 4), *is = calloc(nc, 4), *rm = malloc(nc * 4), *rv = malloc(nc * 4);
        int32_t *am = calloc(ny, 4);
        float *dx = malloc(nx * 4), *dg = malloc(nc * 4), *db = malloc(nc * 4);
        memcpy(rm, rm0, nc * 4); memcpy(rv, rv0, nc * 4);
        memcpy(dx, dx0, nx * 4); memcpy(dg, dg0, nc * 4); memcpy(db, db0, nc * 4);
        ct_batchnorm_maxpool_forward(y, am, m, is, rm, rv, x, gamma, beta, N, C, H, W, 1e-5f, 0.1f, training, relu);
        ct_batchnorm_maxpool_backward(dx, dg, db, dy, am, x, m, is, gamma, beta, N, C, H, W, training, relu, 0);
        int same_fwd = !memcmp(y, yr, ny * 4) && !memcmp(am, ar, ny * 4) && !memcmp(m, mr, nc * 4) &&
                       !memcmp(is, ir, nc * 4) && !memcmp(rm, rmr, nc * 4) && !memcmp(rv, rvr, nc * 4);
        int same_bwd = !memcmp(dx, dxr, nx * 4) && !memcmp(dg, dgr, nc * 4) && !memcmp(db, dbr, nc * 4);
        CHECK(same_fwd && same_bwd,
              "BN%s+maxpool fused = unfused, %s N%lld C%lld %lldx%lld, %d thread(s): forward %s, backward %s",
              relu ? "+ReLU" : "", training ? "train" : "eval", (long long)N, (long long)C, (long long)H,
              (long long)W, t, same_fwd ? "same" : "DIFFERS", same_bwd ? "same" : "DIFFERS");
        /* without dx only the parameter gradients */
        memcpy(dg, dg0, nc * 4); memcpy(db, db0, nc * 4);
        ct_batchnorm_maxpool_backward(NULL, dg, db, dy, am, x, m, is, gamma, beta, N, C, H, W, training, relu, 0);
        CHECK(!memcmp(dg, dgr, nc * 4) && !memcmp(db, dbr, nc * 4), "fused backward without dx: same dgamma, dbeta");
        /* overwriting dx (the model's case): garbage in dx, the unfused result into zeros out */
        memcpy(dg, dg0, nc * 4); memcpy(db, db0, nc * 4);
        for (size_t i = 0; i < nx; i++) dx[i] = (float)(i % 7) - 3.0f;
        ct_batchnorm_maxpool_backward(dx, dg, db, dy, am, x, m, is, gamma, beta, N, C, H, W, training, relu, 1);
        CHECK(!memcmp(dx, dxz, nx * 4) && !memcmp(dg, dgr, nc * 4) && !memcmp(db, dbr, nc * 4),
              "BN%s+maxpool fused, overwriting dx = unfused into zeros, %s %lldx%lld, %d thread(s)", relu ? "+ReLU" : "",
              training ? "train" : "eval", (long long)H, (long long)W, t);
        free(y); free(m); free(is); free(rm); free(rv); free(am); free(dx); free(dg); free(db);
    }
    ct_set_threads(0);
    free(x); free(gamma); free(beta); free(rm0); free(rv0); free(dy); free(dx0); free(dg0); free(db0);
    free(yfull); free(yr); free(dyfull); free(ar); free(mr); free(ir); free(rmr); free(rvr);
    free(dxr); free(dgr); free(dbr); free(dxz); free(dxo); free(dgs); free(dbs);
}

static void reduce_nothing(double *buf, size_t n, void *ctx) { (void)buf; (void)n; (void)ctx; }

/* conv -> BN+ReLU -> pool -> conv -> BN+ReLU -> pool -> gap -> linear; relu_node != 0
 * builds each BN+ReLU as BN then a ReLU node, which prepare does not fuse */
static int small_cnn(ct_model *m, int in_hw, int relu_node) {
    ct_model_config cfg;
    ct_model_config_default(&cfg);
    cfg.in_h = cfg.in_w = in_hw; cfg.seed = 9;
    if (ct_model_begin(m, &cfg)) return -1;
    int x = 0;
    for (int i = 1; i <= 2; i++) {
        char name[32];
        snprintf(name, sizeof name, "conv%d", i);
        x = ct_model_add_conv(m, x, 4 * i, 3, 1, 1, 0, name);
        snprintf(name, sizeof name, "bn%d", i);
        x = relu_node ? ct_model_add_relu(m, ct_model_add_bn(m, x, name)) : ct_model_add_bn_relu(m, x, name);
        x = ct_model_add_maxpool(m, x, 2, 2, 0);
    }
    int h = ct_model_add_gap(m, x);
    int z = ct_model_add_linear(m, ct_model_add_flatten(m, h), 5, 1, "fc");
    return ct_model_finish(m, h, z) ? -1 : 0;
}

static int count_fused(const ct_model *m) {
    int k = 0;
    for (int i = 0; i < m->nnodes; i++) k += m->plan->nodes[i].pool > 0;
    return k;
}

/* One forward (through the head) and backward of both models on the same x and dz,
 * from zeroed gradients: the step whose results the model-level tests compare. */
static void step_both(ct_model *a, ct_model *b, const float *x, const float *dz, int64_t N, int training) {
    CHECK_OK(ct_model_forward(a, x, N, training, 1));
    CHECK_OK(ct_model_forward(b, x, N, training, 1));
    ct_model_zero_grad(a);
    ct_model_zero_grad(b);
    CHECK_OK(ct_model_backward(a, dz));
    CHECK_OK(ct_model_backward(b, dz));
}

static void test_model_bn_maxpool(int in_hw, int sync) {
    const int64_t N = 6;
    ct_model f, u;
    CHECK(small_cnn(&f, in_hw, 0) == 0 && small_cnn(&u, in_hw, 1) == 0, "small CNNs build");
    if (sync) f.bn_reduce = u.bn_reduce = reduce_nothing;
    CHECK_OK(ct_model_prepare(&f, N));
    CHECK_OK(ct_model_prepare(&u, N));
    CHECK(count_fused(&f) == (sync ? 0 : 2) && count_fused(&u) == 0, "%s: %d BN+pool fused (want %d), %d unfused",
          sync ? "SyncBN" : "local BN", count_fused(&f), sync ? 0 : 2, count_fused(&u));
    const size_t img = (size_t)(in_hw * in_hw), nz = (size_t)(N * 5), nh = (size_t)(N * 8);
    float *x = rnd((size_t)N * img, 40, -1, 1), *dz = rnd(nz, 41, -1, 1);
    for (int step = 0; step < 2; step++) { /* the second step sees updated running stats */
        step_both(&f, &u, x, dz, N, 1);
        CHECK(!memcmp(ct_model_embedding(&f), ct_model_embedding(&u), nz * 4) &&
                  !memcmp(f.grad, u.grad, f.nparam_floats * 4) && !memcmp(f.buf, u.buf, f.nbuf_floats * 4),
              "%dx%d%s step %d: fused model = unfused (embeddings, gradients, running stats)", in_hw, in_hw,
              sync ? " SyncBN" : "", step);
    }
    CHECK_OK(ct_model_forward(&f, x, N, 0, 0));
    CHECK_OK(ct_model_forward(&u, x, N, 0, 0));
    CHECK(!memcmp(ct_model_features(&f), ct_model_features(&u), nh * 4), "%dx%d: eval features fused = unfused",
          in_hw, in_hw);
    /* eval-mode backward (e.g. a probe through a frozen encoder) */
    step_both(&f, &u, x, dz, N, 0);
    CHECK(!memcmp(f.grad, u.grad, f.nparam_floats * 4), "%dx%d: eval-mode gradients fused = unfused", in_hw, in_hw);
    if (!sync) {
        /* switching SyncBN on after prepare: refused until prepare re-plans (unfused) */
        f.bn_reduce = reduce_nothing;
        CHECK(ct_model_forward(&f, x, N, 1, 1) == CT_ERR_STATE, "SyncBN on after prepare refused: %s", ct_errmsg());
        CHECK_OK(ct_model_prepare(&f, N));
        CHECK(count_fused(&f) == 0, "prepare again: SyncBN unfuses");
        CHECK_OK(ct_model_forward(&f, x, N, 1, 1));
    }
    free(x); free(dz);
    ct_model_free(&f);
    ct_model_free(&u);
}

/* Recomputed conv outputs (ct_model_recompute_convs: the stem, every block's conv1
 * and the shortcuts) against the same model keeping them: the
 * arena shrinks and every number stays the same bits, over training steps (running
 * statistics included), under SyncBN, in eval mode and in an eval-mode backward.
 * mark_all != 0 also marks every other conv (chains of recomputes). */
static void test_model_recompute(ct_encoder_kind enc, int in_hw, int sync, int mark_all) {
    const int64_t N = 8;
    ct_model_config cfg;
    ct_model_config_default(&cfg);
    cfg.encoder = enc;
    cfg.width = 4;
    cfg.head_hidden = 16;
    cfg.head_out = 6;
    cfg.in_h = cfg.in_w = in_hw;
    ct_model r, k;
    CHECK_OK(ct_model_init(&r, &cfg));
    CHECK_OK(ct_model_init(&k, &cfg));
    int convs = 0, built = 0;
    for (int i = 1; i < k.nnodes; i++) {
        convs += k.nodes[i].kind == CT_NODE_CONV;
        built += k.nodes[i].remat + r.nodes[i].remat;
    }
    CHECK(built == 0, "the builders mark nothing for recompute (%d)", built);
    const int marked = ct_model_recompute_convs(&r);
    /* ResNet-18: the stem, 8 block conv1s, 3 shortcuts; the CNN: its stem */
    CHECK(marked == (enc == CT_ENC_RESNET18 ? 12 : 1), "%s: ct_model_recompute_convs marks %d convs",
          ct_encoder_name(enc), marked);
    for (int i = 1; mark_all && i < r.nnodes; i++)
        if (r.nodes[i].kind == CT_NODE_CONV) CHECK_OK(ct_model_recompute(&r, i));
    CHECK(ct_model_recompute(&r, r.h_node) == CT_ERR_ARG, "only convs can be marked: %s", ct_errmsg());
    if (sync) r.bn_reduce = k.bn_reduce = reduce_nothing;
    CHECK_OK(ct_model_prepare(&r, N));
    CHECK_OK(ct_model_prepare(&k, N));
    int planned = 0;
    for (int i = 1; i < r.nnodes; i++) planned += r.nodes[i].kind == CT_NODE_CONV && r.plan->nodes[i].recompute_at >= 0;
    const int want = mark_all ? convs : marked;
    CHECK(planned == want && r.arena.cap < k.arena.cap,
          "%s %dx%d%s%s: %d of %d marked convs recomputed, arena %zu < %zu bytes", ct_encoder_name(enc), in_hw,
          in_hw, sync ? " SyncBN" : "", mark_all ? " all marked" : "", planned, want, r.arena.cap, k.arena.cap);
    const size_t nz = (size_t)(N * 6), nh = (size_t)(N * ct_model_feature_dim(&r));
    float *x = rnd((size_t)(N * in_hw * in_hw), 50, -1, 1), *dz = rnd(nz, 51, -1, 1);
    for (int step = 0; step < 2; step++) {
        step_both(&r, &k, x, dz, N, 1);
        CHECK(!memcmp(ct_model_embedding(&r), ct_model_embedding(&k), nz * 4) &&
                  !memcmp(r.grad, k.grad, r.nparam_floats * 4) && !memcmp(r.buf, k.buf, r.nbuf_floats * 4),
              "%s step %d: recomputed = kept (embeddings, gradients, running stats)", ct_encoder_name(enc), step);
        for (size_t j = 0; j < r.nparam_floats; j++) r.param[j] = k.param[j] -= 0.05f * k.grad[j];
    }
    step_both(&r, &k, x, dz, N, 0);
    CHECK(!memcmp(ct_model_features(&r), ct_model_features(&k), nh * 4), "%s: eval features recomputed = kept",
          ct_encoder_name(enc));
    CHECK(!memcmp(r.grad, k.grad, r.nparam_floats * 4), "%s: eval-mode gradients recomputed = kept",
          ct_encoder_name(enc));
    free(x); free(dz);
    ct_model_free(&r);
    ct_model_free(&k);
}

static void test_threads(ct_encoder_kind enc, int width, int64_t N) {
    ct_model_config cfg;
    ct_model_config_default(&cfg);
    cfg.encoder = enc;
    cfg.width = width;
    cfg.head_hidden = 64;
    cfg.head_out = 16;
    const size_t img = 28 * 28;
    float *x = rnd((size_t)N * img, 21, -1, 1), *dz = rnd((size_t)(N * 16), 22, -1, 1);
    float *g0 = NULL, *z0 = NULL, *h0 = NULL;
    for (int t = 1; t <= 3; t++) {
        ct_model m;
        CHECK_OK(ct_model_init(&m, &cfg));
        ct_set_threads(t);
        CHECK_OK(ct_model_prepare(&m, N));
        CHECK_OK(ct_model_forward(&m, x, N, 1, 1));
        ct_model_zero_grad(&m);
        CHECK_OK(ct_model_backward(&m, dz));
        size_t nz = (size_t)(N * 16) * 4, ng = m.nparam_floats * 4;
        float *g = malloc(ng), *z = malloc(nz);
        memcpy(g, m.grad, ng);
        memcpy(z, ct_model_embedding(&m), nz);
        CHECK_OK(ct_model_forward(&m, x, N, 0, 0)); /* eval forward */
        size_t nh = (size_t)(N * ct_model_feature_dim(&m)) * 4;
        float *h = malloc(nh);
        memcpy(h, ct_model_features(&m), nh);
        if (t == 1) {
            g0 = g; z0 = z; h0 = h;
        } else {
            CHECK(memcmp(g0, g, ng) == 0, "%s width %d: gradients identical at 1 and %d threads",
                  ct_encoder_name(enc), width, t);
            CHECK(memcmp(z0, z, nz) == 0, "%s: embeddings identical at 1 and %d threads", ct_encoder_name(enc), t);
            CHECK(memcmp(h0, h, nh) == 0, "%s: eval features identical at 1 and %d threads", ct_encoder_name(enc), t);
            free(g); free(z); free(h);
        }
        ct_model_free(&m);
    }
    ct_set_threads(0);
    free(g0); free(z0); free(h0); free(x); free(dz);
}

int main(void) {
    ct_set_threads(0);
    test_conv_chunks(13, 3, 9, 5, 3, 1, 1);   /* 12 samples per chunk, 4 per part: ragged */
    test_conv_chunks(40, 4, 14, 6, 3, 1, 1);  /* 5 per chunk, 10 per part: two chunks per part */
    test_conv_chunks(23, 3, 8, 4, 1, 2, 0);   /* strided 1x1 (projection shortcut) */
    test_conv_chunks(9, 2, 11, 3, 3, 2, 1);   /* stride 2, odd size */
    test_maxpool2x2(3, 5, 28, 28);
    test_maxpool2x2(2, 3, 7, 7);              /* odd: last row and column unused */
    test_maxpool2x2(1, 2, 3, 6);
    for (int relu = 0; relu <= 1; relu++)
        for (int training = 0; training <= 1; training++) {
            test_bn_maxpool(5, 3, 7, 9, training, relu);    /* odd maps */
            test_bn_maxpool(4, 2, 8, 6, training, relu);    /* even */
            test_bn_maxpool(2, 3, 3, 2, training, relu);    /* one window row, an unused row */
            test_bn_maxpool(3, 2, 17, 40, training, relu);  /* 8 windows a step (AVX2): 20 a row, the last overlapping */
            test_bn_maxpool(2, 2, 4, 16, training, relu);   /* exactly one step a row */
            test_bn_maxpool(3, 2, 5, 14, training, relu);   /* 4 windows a step: 7 a row, overlapping */
            test_bn_maxpool(2, 3, 6, 13, training, relu);   /* 6 a row, an unused column */
        }
    test_bn_maxpool(48, 3, 28, 28, 1, 1);     /* the CNN's stage 1: parallel, planes over two stretches */
    test_bn_maxpool(64, 4, 25, 23, 1, 1);     /* odd, parallel, a ragged last stretch */
    test_bn_maxpool(64, 4, 25, 23, 0, 1);
    test_model_bn_maxpool(11, 0);             /* odd maps: 11 -> 5 -> 2 */
    test_model_bn_maxpool(12, 0);             /* even: 12 -> 6 -> 3 */
    test_model_bn_maxpool(11, 1);             /* SyncBN: not fused */
    test_model_recompute(CT_ENC_RESNET18, 12, 0, 0);
    test_model_recompute(CT_ENC_RESNET18, 9, 1, 0);   /* SyncBN, odd maps */
    test_model_recompute(CT_ENC_RESNET18, 12, 0, 1);
    test_model_recompute(CT_ENC_CNN, 12, 0, 0);       /* the stem only */
    test_model_recompute(CT_ENC_CNN, 12, 0, 1);       /* through the fused BN+pools */
    test_threads(CT_ENC_CNN, 8, 48);          /* 48x8x28x28 activations: above CT_PAR_MIN */
    test_threads(CT_ENC_RESNET18, 4, 24);
    return test_done();
}
