/* conv2d.c: 2-D convolution lowered to im2col + GEMM over chunks of samples, and
 * the dispatch: 3x3 stride-1 pad-1 convolutions that fill Winograd's lanes
 * (ct_nn__wino_ok) go to winograd.c instead. The plain seven-loop references of
 * both paths (ct_conv2d_*_ref, declared in internal.h) close the file.
 *
 * The batch is split into CT_NN_PARTS fixed blocks; each block owns its scratch
 * and, in backward, its own partial weight gradient. Blocks run in parallel and
 * the partials are summed in block order, so the weight gradient has the same
 * bits at any thread count. Inside a block, a chunk of samples is lowered into
 * one wide column matrix so each GEMM is large (one GEMM per sample of a 7x7
 * map has only 49 columns and runs at a third of the kernel's speed). */
#include "internal.h"

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

/* Columns of one chunk: a chunk is a run of consecutive samples whose im2col
 * matrices sit side by side, so each GEMM has N = chunk * OH*OW columns (wide
 * enough for the BLAS kernel to run near peak) instead of one sample's OH*OW.
 * The chunk size depends only on the per-sample shape, never on the thread
 * count, and is capped by the part size at run time (which only shrinks it). */
#define CONV_COLS 512
static int64_t chunk_samples(const ct_conv2d_shape *s) {
    int64_t ohw = s->OH * s->OW, cs = CONV_COLS / ohw;
    return cs < 1 ? 1 : cs;
}

static int64_t part_chunk(const ct_conv2d_shape *s) {
    int64_t cs = chunk_samples(s), per = (s->N + CT_NN_PARTS - 1) / CT_NN_PARTS;
    return cs < per ? cs : per;
}

/* Per-part scratch: col (CKK x cols), tmp (OC x cols), partial dw (OC x CKK). */
static size_t part_floats(const ct_conv2d_shape *s) {
    size_t ckk = (size_t)(s->C * s->KH * s->KW), cols = (size_t)(part_chunk(s) * s->OH * s->OW);
    size_t f = ckk * cols + (size_t)s->OC * cols + (size_t)s->OC * ckk;
    return (f + 15) & ~(size_t)15;
}

size_t ct_conv2d_workspace(const ct_conv2d_shape *s) {
    size_t im2col = CT_NN_PARTS * part_floats(s);
    if (!ct_nn__wino_ok(s)) return im2col;
    size_t wino = ct_nn__wino_workspace(s);
    return wino > im2col ? wino : im2col;
}

/* "Same" stride-1 convolutions (3x3 pad 1, 5x5 pad 2) keep the map size, so the
 * im2col row of (c, kh, kw) is the input plane shifted by dh = kh - pad rows and
 * off = kw - pad columns: one long copy over the output rows that have an input
 * row, after which the |off| columns per row that wrapped around from the
 * neighbouring row are zeroed. This replaces OH short copies per row (28 floats
 * each on a 28x28 map), where call overhead dominated. */
static int same_stride1(const ct_conv2d_shape *s) { return s->stride == 1 && s->OH == s->H && s->OW == s->W; }

/* The destination range [*d0, *d1) of row (kh, kw) whose source index is dst + sh,
 * clipped so the source stays inside the plane. */
static void shifted_range(const ct_conv2d_shape *s, int64_t kh, int64_t kw, int64_t *d0, int64_t *d1, int64_t *sh) {
    const int64_t H = s->H, W = s->W, dh = kh - s->pad, off = kw - s->pad;
    int64_t lo = dh < 0 ? -dh : 0, hi = H - dh < s->OH ? H - dh : s->OH;
    if (hi < lo) hi = lo;
    *sh = dh * W + off;
    *d0 = lo * W;
    *d1 = hi * W;
    if (*d0 + *sh < 0) *d0 = -*sh;
    if (*d1 + *sh > H * W) *d1 = H * W - *sh;
    if (*d1 <= *d0) *d0 = *d1 = 0; /* no input row reaches this kernel row */
}

/* zeroes, in rows of row r, the columns whose input column lies outside the map */
static void zero_wrapped(float *r, const ct_conv2d_shape *s, int64_t kw, int64_t d0, int64_t d1) {
    const int64_t W = s->W, off = kw - s->pad;
    if (off == 0) return;
    for (int64_t row = d0 / W; row * W < d1; row++) {
        float *rr = r + row * W;
        if (off < 0)
            for (int64_t ow = 0; ow < -off; ow++) rr[ow] = 0.0f;
        else
            for (int64_t ow = W - off; ow < W; ow++) rr[ow] = 0.0f;
    }
}

static void im2col_same(float *col, int64_t ld, const float *x, const ct_conv2d_shape *s) {
    const int64_t HW = s->H * s->W;
    for (int64_t c = 0; c < s->C; c++)
        for (int64_t kh = 0; kh < s->KH; kh++)
            for (int64_t kw = 0; kw < s->KW; kw++) {
                float *r = col + ((c * s->KH + kh) * s->KW + kw) * ld;
                int64_t d0, d1, sh;
                shifted_range(s, kh, kw, &d0, &d1, &sh);
                memset(r, 0, (size_t)d0 * sizeof(float));
                memcpy(r + d0, x + c * HW + d0 + sh, (size_t)(d1 - d0) * sizeof(float));
                memset(r + d1, 0, (size_t)(HW - d1) * sizeof(float));
                zero_wrapped(r, s, kw, d0, d1);
            }
}

/* col2im_add for "same" stride-1 convolutions. dcol is scratch: its wrapped
 * columns are zeroed first, so one long add per row puts only zeros in the wrong
 * places; every dx element still receives its terms in (c, kh, kw) order. */
static void col2im_add_same(float *dx, float *dcol, int64_t ld, const ct_conv2d_shape *s) {
    const int64_t HW = s->H * s->W;
    for (int64_t c = 0; c < s->C; c++)
        for (int64_t kh = 0; kh < s->KH; kh++)
            for (int64_t kw = 0; kw < s->KW; kw++) {
                float *r = dcol + ((c * s->KH + kh) * s->KW + kw) * ld;
                int64_t d0, d1, sh;
                shifted_range(s, kh, kw, &d0, &d1, &sh);
                zero_wrapped(r, s, kw, d0, d1);
                float *dxc = dx + c * HW + sh;
#pragma omp simd
                for (int64_t i = d0; i < d1; i++) dxc[i] += r[i];
            }
}

/* col: (C*KH*KW, ld) columns [0, OH*OW) <- x: (C, H, W) of one sample. */
static void im2col(float *col, int64_t ld, const float *x, const ct_conv2d_shape *s) {
    if (same_stride1(s)) {
        im2col_same(col, ld, x, s);
        return;
    }
    const int64_t OH = s->OH, OW = s->OW, H = s->H, W = s->W, st = s->stride, pad = s->pad;
    for (int64_t c = 0; c < s->C; c++)
        for (int64_t kh = 0; kh < s->KH; kh++)
            for (int64_t kw = 0; kw < s->KW; kw++) {
                float *row = col + ((c * s->KH + kh) * s->KW + kw) * ld;
                const float *xc = x + c * H * W;
                /* valid output columns: 0 <= ow*st - pad + kw < W */
                int64_t lo = pad - kw > 0 ? (pad - kw + st - 1) / st : 0;
                int64_t hi = (W - 1 + pad - kw) >= 0 ? (W - 1 + pad - kw) / st + 1 : 0;
                if (hi > OW) hi = OW;
                if (lo > hi) lo = hi;
                for (int64_t oh = 0; oh < OH; oh++) {
                    int64_t ih = oh * st - pad + kh;
                    float *r = row + oh * OW;
                    if (ih < 0 || ih >= H) {
                        memset(r, 0, (size_t)OW * sizeof(float));
                        continue;
                    }
                    /* input column of output column ow is ow*st + off (>= 0 for ow >= lo) */
                    const float *xr = xc + ih * W;
                    const int64_t off = kw - pad;
                    for (int64_t ow = 0; ow < lo; ow++) r[ow] = 0.0f;
                    if (st == 1)
                        memcpy(r + lo, xr + lo + off, (size_t)(hi - lo) * sizeof(float));
                    else
                        for (int64_t ow = lo; ow < hi; ow++) r[ow] = xr[ow * st + off];
                    for (int64_t ow = hi; ow < OW; ow++) r[ow] = 0.0f;
                }
            }
}

/* dx: (C, H, W) += col2im(dcol: (C*KH*KW, ld) columns [0, OH*OW)); may clobber dcol */
static void col2im_add(float *dx, float *dcol, int64_t ld, const ct_conv2d_shape *s) {
    if (same_stride1(s)) {
        col2im_add_same(dx, dcol, ld, s);
        return;
    }
    const int64_t OH = s->OH, OW = s->OW, H = s->H, W = s->W, st = s->stride, pad = s->pad;
    for (int64_t c = 0; c < s->C; c++)
        for (int64_t kh = 0; kh < s->KH; kh++)
            for (int64_t kw = 0; kw < s->KW; kw++) {
                const float *row = dcol + ((c * s->KH + kh) * s->KW + kw) * ld;
                float *dxc = dx + c * H * W;
                int64_t lo = pad - kw > 0 ? (pad - kw + st - 1) / st : 0;
                int64_t hi = (W - 1 + pad - kw) >= 0 ? (W - 1 + pad - kw) / st + 1 : 0;
                if (hi > OW) hi = OW;
                for (int64_t oh = 0; oh < OH; oh++) {
                    int64_t ih = oh * st - pad + kh;
                    if (ih < 0 || ih >= H) continue;
                    const float *r = row + oh * OW;
                    float *dxr = dxc + ih * W;
                    const int64_t off = kw - pad;
                    if (st == 1) {
#pragma omp simd
                        for (int64_t ow = lo; ow < hi; ow++) dxr[ow + off] += r[ow];
                    } else
                        for (int64_t ow = lo; ow < hi; ow++) dxr[ow * st + off] += r[ow];
                }
            }
}

void ct_conv2d_forward(float *y, const float *x, const float *w, const float *b,
                       const ct_conv2d_shape *s, float *ws) {
    if (ct_nn__wino_ok(s)) {
        ct_nn__wino_forward(y, x, w, b, s, ws);
        return;
    }
    const int64_t ckk = s->C * s->KH * s->KW, ohw = s->OH * s->OW, chw = s->C * s->H * s->W;
    const int64_t OC = s->OC, cs = part_chunk(s);
    const size_t pf = part_floats(s);
#pragma omp parallel for schedule(dynamic, 1)
    for (int p = 0; p < CT_NN_PARTS; p++) {
        int64_t n0, n1;
        ct_nn__part_range(s->N, p, &n0, &n1);
        float *col = ws + p * pf, *tmp = col + ckk * cs * ohw;
        for (int64_t c0 = n0; c0 < n1; c0 += cs) {
            const int64_t nb = c0 + cs < n1 ? cs : n1 - c0, ld = nb * ohw;
            for (int64_t j = 0; j < nb; j++) im2col(col + j * ohw, ld, x + (c0 + j) * chw, s);
            if (nb == 1) {
                /* one sample: its (OC, OHW) product is already NCHW, no scatter */
                float *yn = y + c0 * OC * ohw;
                ct_gemm(0, 0, OC, ohw, ckk, 1.0f, w, ckk, col, ohw, 0.0f, yn, ohw);
                for (int64_t oc = 0; b && oc < OC; oc++) {
                    float *yr = yn + oc * ohw, bo = b[oc];
#pragma omp simd
                    for (int64_t i = 0; i < ohw; i++) yr[i] += bo;
                }
                continue;
            }
            ct_gemm(0, 0, OC, ld, ckk, 1.0f, w, ckk, col, ld, 0.0f, tmp, ld);
            /* scatter (OC, nb, OHW) -> (nb, OC, OHW), adding the bias */
            for (int64_t j = 0; j < nb; j++) {
                float *yn = y + (c0 + j) * OC * ohw;
                for (int64_t oc = 0; oc < OC; oc++) {
                    const float *t = tmp + oc * ld + j * ohw;
                    float *yr = yn + oc * ohw, bo = b ? b[oc] : 0.0f;
                    if (b) {
#pragma omp simd
                        for (int64_t i = 0; i < ohw; i++) yr[i] = t[i] + bo;
                    } else
                        memcpy(yr, t, (size_t)ohw * sizeof(float));
                }
            }
        }
    }
}

void ct_conv2d_backward(float *dx, float *dw, float *db, const float *dy, const float *x,
                        const float *w, const ct_conv2d_shape *s, float *ws, int overwrite) {
    const int64_t ckk = s->C * s->KH * s->KW, ohw = s->OH * s->OW, chw = s->C * s->H * s->W;
    const int64_t OC = s->OC, wn = OC * ckk, cs = part_chunk(s);
    const size_t pf = part_floats(s);
    if (db) {
#pragma omp parallel for schedule(static) if (s->N * OC * ohw >= CT_PAR_MIN)
        for (int64_t oc = 0; oc < OC; oc++) {
            double acc = 0.0;
            for (int64_t n = 0; n < s->N; n++) {
                const float *r = dy + (n * OC + oc) * ohw;
                float part = 0.0f;
                for (int64_t i = 0; i < ohw; i++) part += r[i];
                acc += part;
            }
            db[oc] += (float)acc;
        }
    }
    if (ct_nn__wino_ok(s)) {
        ct_nn__wino_backward(dx, dw, dy, x, w, s, ws, overwrite);
        return;
    }
    /* col2im only adds, so an overwritten dx is cleared first */
    if (dx && overwrite) memset(dx, 0, (size_t)(s->N * chw) * sizeof(float));
    if (!dx && !dw) return;
#pragma omp parallel for schedule(dynamic, 1)
    for (int p = 0; p < CT_NN_PARTS; p++) {
        int64_t n0, n1;
        ct_nn__part_range(s->N, p, &n0, &n1);
        float *col = ws + p * pf, *dyc = col + ckk * cs * ohw, *dwp = dyc + OC * cs * ohw;
        if (dw) memset(dwp, 0, (size_t)wn * sizeof(float));
        for (int64_t c0 = n0; c0 < n1; c0 += cs) {
            const int64_t nb = c0 + cs < n1 ? cs : n1 - c0, ld = nb * ohw;
            /* gather dy (nb, OC, OHW) -> (OC, nb, OHW); one sample's is already that */
            const float *g = dy + c0 * OC * ohw;
            if (nb > 1) {
                for (int64_t j = 0; j < nb; j++) {
                    const float *dyn = dy + (c0 + j) * OC * ohw;
                    for (int64_t oc = 0; oc < OC; oc++)
                        memcpy(dyc + oc * ld + j * ohw, dyn + oc * ohw, (size_t)ohw * sizeof(float));
                }
                g = dyc;
            }
            if (dw) {
                for (int64_t j = 0; j < nb; j++) im2col(col + j * ohw, ld, x + (c0 + j) * chw, s);
                /* dw (OC, CKK) += dy (OC, cols) . col^T (cols, CKK) */
                ct_gemm(0, 1, OC, ckk, ld, 1.0f, g, ld, col, ld, 1.0f, dwp, ckk);
            }
            if (dx) {
                /* dcol (CKK, cols) = W^T (CKK, OC) . dy (OC, cols), reusing col */
                ct_gemm(1, 0, ckk, ld, OC, 1.0f, w, ckk, g, ld, 0.0f, col, ld);
                for (int64_t j = 0; j < nb; j++) col2im_add(dx + (c0 + j) * chw, col + j * ohw, ld, s);
            }
        }
    }
    if (dw) {
#pragma omp parallel for schedule(static) if (wn * CT_NN_PARTS >= CT_PAR_MIN)
        for (int64_t i = 0; i < wn; i++) {
            float acc = 0.0f;
            for (int p = 0; p < CT_NN_PARTS; p++) acc += ws[p * pf + (ckk + OC) * cs * ohw + i];
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
