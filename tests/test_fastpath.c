/* test_fastpath.c: the speed-oriented paths against plain versions, at sizes
 * where they actually engage (the layer tests in test_nn use tiny shapes):
 *   - conv2d with several samples per im2col chunk and a ragged last chunk,
 *     forward and backward vs the direct reference, |diff| <= 1e-4 + 1e-4*|ref|;
 *   - the 2x2 stride-2 max pool vs a naive loop with the same first-max-wins rule,
 *     exact (values and argmax), with ties and odd sizes;
 *   - whole CNN and ResNet-18 training steps with every parallel loop above its
 *     one-thread threshold, bit-identical at 1, 2 and 3 threads. */
#include "harness.h"

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
    ct_conv2d_backward(dx, dw, db, dy, x, w, &s, ws);
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
    test_threads(CT_ENC_CNN, 8, 48);          /* 48x8x28x28 activations: above CT_PAR_MIN */
    test_threads(CT_ENC_RESNET18, 4, 24);
    return test_done();
}
