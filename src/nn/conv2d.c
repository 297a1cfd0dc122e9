/* conv2d.c: 2-D convolution lowered to im2col + GEMM, one GEMM per sample.
 *
 * The batch is split into CT_NN_PARTS fixed blocks; each block owns its im2col
 * buffer and, in backward, its own partial weight gradient. Blocks run in
 * parallel and the partials are summed in block order, so the weight gradient has
 * the same bits at any thread count. A 1x1, stride-1, unpadded convolution skips
 * im2col (the input already is the column matrix). */
#include "contrast/nn.h"

#include <string.h>

ct_status ct_conv2d_shape_init(ct_conv2d_shape *s, int64_t N, int64_t C, int64_t H, int64_t W,
                               int64_t OC, int64_t KH, int64_t KW, int64_t stride, int64_t pad) {
    if (N < 1 || C < 1 || H < 1 || W < 1 || OC < 1 || KH < 1 || KW < 1 || stride < 1 || pad < 0)
        return ct_error(CT_ERR_ARG, "conv2d: bad shape N=%lld C=%lld H=%lld W=%lld OC=%lld k=%lldx%lld stride=%lld pad=%lld",
                        (long long)N, (long long)C, (long long)H, (long long)W, (long long)OC,
                        (long long)KH, (long long)KW, (long long)stride, (long long)pad);
    if (H + 2 * pad < KH || W + 2 * pad < KW)
        return ct_error(CT_ERR_ARG, "conv2d: kernel %lldx%lld larger than padded input %lldx%lld",
                        (long long)KH, (long long)KW, (long long)(H + 2 * pad), (long long)(W + 2 * pad));
    s->N = N; s->C = C; s->H = H; s->W = W;
    s->OC = OC; s->KH = KH; s->KW = KW; s->stride = stride; s->pad = pad;
    s->OH = (H + 2 * pad - KH) / stride + 1;
    s->OW = (W + 2 * pad - KW) / stride + 1;
    return CT_OK;
}

static int is_pointwise(const ct_conv2d_shape *s) {
    return s->KH == 1 && s->KW == 1 && s->stride == 1 && s->pad == 0;
}

/* Per-part scratch: col and dcol (CKK x OHW each) and a partial dw (OC x CKK). */
static size_t part_floats(const ct_conv2d_shape *s) {
    size_t ckk = (size_t)(s->C * s->KH * s->KW), ohw = (size_t)(s->OH * s->OW);
    return 2 * ckk * ohw + (size_t)s->OC * ckk + 32;
}

size_t ct_conv2d_workspace(const ct_conv2d_shape *s) { return CT_NN_PARTS * part_floats(s); }

/* col: (C*KH*KW, OH*OW) <- x: (C, H, W) */
static void im2col(float *col, const float *x, const ct_conv2d_shape *s) {
    const int64_t OH = s->OH, OW = s->OW, H = s->H, W = s->W, st = s->stride, pad = s->pad;
    for (int64_t c = 0; c < s->C; c++)
        for (int64_t kh = 0; kh < s->KH; kh++)
            for (int64_t kw = 0; kw < s->KW; kw++) {
                float *row = col + ((c * s->KH + kh) * s->KW + kw) * OH * OW;
                const float *xc = x + c * H * W;
                for (int64_t oh = 0; oh < OH; oh++) {
                    int64_t ih = oh * st - pad + kh;
                    float *r = row + oh * OW;
                    if (ih < 0 || ih >= H) {
                        memset(r, 0, (size_t)OW * sizeof(float));
                        continue;
                    }
                    const float *xr = xc + ih * W;
                    if (st == 1) {
                        /* contiguous run: only the borders need zeros */
                        for (int64_t ow = 0; ow < OW; ow++) {
                            int64_t iw = ow - pad + kw;
                            r[ow] = (iw >= 0 && iw < W) ? xr[iw] : 0.0f;
                        }
                    } else {
                        for (int64_t ow = 0; ow < OW; ow++) {
                            int64_t iw = ow * st - pad + kw;
                            r[ow] = (iw >= 0 && iw < W) ? xr[iw] : 0.0f;
                        }
                    }
                }
            }
}

/* dx: (C, H, W) += col2im(dcol: (C*KH*KW, OH*OW)) */
static void col2im_add(float *dx, const float *dcol, const ct_conv2d_shape *s) {
    const int64_t OH = s->OH, OW = s->OW, H = s->H, W = s->W, st = s->stride, pad = s->pad;
    for (int64_t c = 0; c < s->C; c++)
        for (int64_t kh = 0; kh < s->KH; kh++)
            for (int64_t kw = 0; kw < s->KW; kw++) {
                const float *row = dcol + ((c * s->KH + kh) * s->KW + kw) * OH * OW;
                float *dxc = dx + c * H * W;
                for (int64_t oh = 0; oh < OH; oh++) {
                    int64_t ih = oh * st - pad + kh;
                    if (ih < 0 || ih >= H) continue;
                    const float *r = row + oh * OW;
                    float *dxr = dxc + ih * W;
                    for (int64_t ow = 0; ow < OW; ow++) {
                        int64_t iw = ow * st - pad + kw;
                        if (iw >= 0 && iw < W) dxr[iw] += r[ow];
                    }
                }
            }
}

static void part_range(int64_t N, int p, int64_t *n0, int64_t *n1) {
    *n0 = N * p / CT_NN_PARTS;
    *n1 = N * (p + 1) / CT_NN_PARTS;
}

void ct_conv2d_forward(float *y, const float *x, const float *w, const float *b,
                       const ct_conv2d_shape *s, float *ws) {
    const int64_t ckk = s->C * s->KH * s->KW, ohw = s->OH * s->OW, chw = s->C * s->H * s->W;
    const size_t pf = part_floats(s);
#pragma omp parallel for schedule(dynamic, 1)
    for (int p = 0; p < CT_NN_PARTS; p++) {
        int64_t n0, n1;
        part_range(s->N, p, &n0, &n1);
        float *col = ws + p * pf;
        for (int64_t n = n0; n < n1; n++) {
            const float *xn = x + n * chw;
            float *yn = y + n * s->OC * ohw;
            const float *B = xn;
            if (!is_pointwise(s)) {
                im2col(col, xn, s);
                B = col;
            }
            ct_gemm(0, 0, s->OC, ohw, ckk, 1.0f, w, ckk, B, ohw, 0.0f, yn, ohw);
            if (b)
                for (int64_t oc = 0; oc < s->OC; oc++)
                    for (int64_t i = 0; i < ohw; i++) yn[oc * ohw + i] += b[oc];
        }
    }
}

void ct_conv2d_backward(float *dx, float *dw, float *db, const float *dy, const float *x,
                        const float *w, const ct_conv2d_shape *s, float *ws) {
    const int64_t ckk = s->C * s->KH * s->KW, ohw = s->OH * s->OW, chw = s->C * s->H * s->W;
    const int64_t wn = s->OC * ckk;
    const size_t pf = part_floats(s);
    if (db) {
#pragma omp parallel for schedule(static)
        for (int64_t oc = 0; oc < s->OC; oc++) {
            double acc = 0.0;
            for (int64_t n = 0; n < s->N; n++) {
                const float *r = dy + (n * s->OC + oc) * ohw;
                float part = 0.0f;
                for (int64_t i = 0; i < ohw; i++) part += r[i];
                acc += part;
            }
            db[oc] += (float)acc;
        }
    }
    if (!dx && !dw) return;
#pragma omp parallel for schedule(dynamic, 1)
    for (int p = 0; p < CT_NN_PARTS; p++) {
        int64_t n0, n1;
        part_range(s->N, p, &n0, &n1);
        float *col = ws + p * pf, *dcol = col + ckk * ohw, *dwp = dcol + ckk * ohw;
        if (dw) memset(dwp, 0, (size_t)wn * sizeof(float));
        for (int64_t n = n0; n < n1; n++) {
            const float *xn = x + n * chw, *dyn = dy + n * s->OC * ohw;
            if (dw) {
                const float *B = xn;
                if (!is_pointwise(s)) {
                    im2col(col, xn, s);
                    B = col;
                }
                /* dw (OC, CKK) += dy_n (OC, OHW) . col^T (OHW, CKK) */
                ct_gemm(0, 1, s->OC, ckk, ohw, 1.0f, dyn, ohw, B, ohw, 1.0f, dwp, ckk);
            }
            if (dx) {
                float *dxn = dx + n * chw;
                if (is_pointwise(s)) {
                    /* dx_n (C, HW) += W^T (C, OC) . dy_n (OC, HW) */
                    ct_gemm(1, 0, ckk, ohw, s->OC, 1.0f, w, ckk, dyn, ohw, 1.0f, dxn, ohw);
                } else {
                    ct_gemm(1, 0, ckk, ohw, s->OC, 1.0f, w, ckk, dyn, ohw, 0.0f, dcol, ohw);
                    col2im_add(dxn, dcol, s);
                }
            }
        }
    }
    if (dw) {
#pragma omp parallel for schedule(static)
        for (int64_t i = 0; i < wn; i++) {
            float acc = 0.0f;
            for (int p = 0; p < CT_NN_PARTS; p++) acc += ws[p * pf + 2 * ckk * ohw + i];
            dw[i] += acc;
        }
    }
}

void ct_conv2d_forward_ref(float *y, const float *x, const float *w, const float *b,
                           const ct_conv2d_shape *s) {
    for (int64_t n = 0; n < s->N; n++)
        for (int64_t oc = 0; oc < s->OC; oc++)
            for (int64_t oh = 0; oh < s->OH; oh++)
                for (int64_t ow = 0; ow < s->OW; ow++) {
                    double acc = b ? b[oc] : 0.0;
                    for (int64_t c = 0; c < s->C; c++)
                        for (int64_t kh = 0; kh < s->KH; kh++)
                            for (int64_t kw = 0; kw < s->KW; kw++) {
                                int64_t ih = oh * s->stride - s->pad + kh, iw = ow * s->stride - s->pad + kw;
                                if (ih < 0 || ih >= s->H || iw < 0 || iw >= s->W) continue;
                                acc += (double)x[((n * s->C + c) * s->H + ih) * s->W + iw] *
                                       w[((oc * s->C + c) * s->KH + kh) * s->KW + kw];
                            }
                    y[((n * s->OC + oc) * s->OH + oh) * s->OW + ow] = (float)acc;
                }
}

void ct_conv2d_backward_ref(float *dx, float *dw, float *db, const float *dy, const float *x,
                            const float *w, const ct_conv2d_shape *s) {
    for (int64_t n = 0; n < s->N; n++)
        for (int64_t oc = 0; oc < s->OC; oc++)
            for (int64_t oh = 0; oh < s->OH; oh++)
                for (int64_t ow = 0; ow < s->OW; ow++) {
                    float g = dy[((n * s->OC + oc) * s->OH + oh) * s->OW + ow];
                    if (db) db[oc] += g;
                    for (int64_t c = 0; c < s->C; c++)
                        for (int64_t kh = 0; kh < s->KH; kh++)
                            for (int64_t kw = 0; kw < s->KW; kw++) {
                                int64_t ih = oh * s->stride - s->pad + kh, iw = ow * s->stride - s->pad + kw;
                                if (ih < 0 || ih >= s->H || iw < 0 || iw >= s->W) continue;
                                size_t xi = (size_t)(((n * s->C + c) * s->H + ih) * s->W + iw);
                                size_t wi = (size_t)(((oc * s->C + c) * s->KH + kh) * s->KW + kw);
                                if (dx) dx[xi] += g * w[wi];
                                if (dw) dw[wi] += g * x[xi];
                            }
                }
}
