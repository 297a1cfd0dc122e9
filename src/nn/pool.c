/* pool.c: max, average and global average pooling; one (sample, channel) plane
 * per loop iteration, so parallel writes never overlap. */
#include "contrast/nn.h"
#include "internal.h"

#include <math.h>

int64_t ct_pool_out(int64_t H, int64_t k, int64_t stride, int64_t pad) {
    return (H + 2 * pad - k) / stride + 1;
}

/* The common 2x2, stride 2, unpadded pool without bounds checks or branches:
 * same scan order and tie rule as the general loop (the first maximum wins). */
static void maxpool2x2(float *y, int32_t *argmax, const float *x, int64_t NC, int64_t H, int64_t W) {
    const int64_t OH = H / 2, OW = W / 2;
#pragma omp parallel for schedule(static) if (NC * H * W >= CT_PAR_MIN)
    for (int64_t nc = 0; nc < NC; nc++) {
        const float *xp = x + nc * H * W;
        float *yp = y + nc * OH * OW;
        int32_t *ap = argmax + nc * OH * OW;
        for (int64_t oh = 0; oh < OH; oh++) {
            const float *r0 = xp + 2 * oh * W, *r1 = r0 + W;
            const int32_t base = (int32_t)(2 * oh * W);
#pragma omp simd
            for (int64_t ow = 0; ow < OW; ow++) {
                int32_t bi;
                yp[oh * OW + ow] = max2x2(r0[2 * ow], r0[2 * ow + 1], r1[2 * ow], r1[2 * ow + 1],
                                          base + (int32_t)(2 * ow), (int32_t)W, &bi);
                ap[oh * OW + ow] = bi;
            }
        }
    }
}

void ct_maxpool_forward(float *y, int32_t *argmax, const float *x, int64_t N, int64_t C, int64_t H,
                        int64_t W, int64_t k, int64_t stride, int64_t pad) {
    const int64_t OH = ct_pool_out(H, k, stride, pad), OW = ct_pool_out(W, k, stride, pad);
    if (k == 2 && stride == 2 && pad == 0) {
        maxpool2x2(y, argmax, x, N * C, H, W);
        return;
    }
#pragma omp parallel for schedule(static) if (N * C * H * W >= CT_PAR_MIN)
    for (int64_t nc = 0; nc < N * C; nc++) {
        const float *xp = x + nc * H * W;
        float *yp = y + nc * OH * OW;
        int32_t *ap = argmax + nc * OH * OW;
        for (int64_t oh = 0; oh < OH; oh++)
            for (int64_t ow = 0; ow < OW; ow++) {
                float best = -INFINITY;
                int32_t bi = -1;
                for (int64_t kh = 0; kh < k; kh++) {
                    int64_t ih = oh * stride - pad + kh;
                    if (ih < 0 || ih >= H) continue;
                    for (int64_t kw = 0; kw < k; kw++) {
                        int64_t iw = ow * stride - pad + kw;
                        if (iw < 0 || iw >= W) continue;
                        float v = xp[ih * W + iw];
                        if (v > best || bi < 0) { best = v; bi = (int32_t)(ih * W + iw); }
                    }
                }
                yp[oh * OW + ow] = best;
                ap[oh * OW + ow] = bi;
            }
    }
}

void ct_maxpool_backward(float *dx, const float *dy, const int32_t *argmax, int64_t N, int64_t C,
                         int64_t OH, int64_t OW, int64_t H, int64_t W) {
#pragma omp parallel for schedule(static) if (N * C * OH * OW >= CT_PAR_MIN)
    for (int64_t nc = 0; nc < N * C; nc++) {
        float *dxp = dx + nc * H * W;
        const float *dyp = dy + nc * OH * OW;
        const int32_t *ap = argmax + nc * OH * OW;
        for (int64_t i = 0; i < OH * OW; i++) dxp[ap[i]] += dyp[i];
    }
}

void ct_avgpool_forward(float *y, const float *x, int64_t N, int64_t C, int64_t H, int64_t W,
                        int64_t k, int64_t stride, int64_t pad) {
    const int64_t OH = ct_pool_out(H, k, stride, pad), OW = ct_pool_out(W, k, stride, pad);
    const float inv = 1.0f / (float)(k * k);
#pragma omp parallel for schedule(static) if (N * C * H * W >= CT_PAR_MIN)
    for (int64_t nc = 0; nc < N * C; nc++) {
        const float *xp = x + nc * H * W;
        float *yp = y + nc * OH * OW;
        for (int64_t oh = 0; oh < OH; oh++)
            for (int64_t ow = 0; ow < OW; ow++) {
                float s = 0.0f;
                for (int64_t kh = 0; kh < k; kh++) {
                    int64_t ih = oh * stride - pad + kh;
                    if (ih < 0 || ih >= H) continue;
                    for (int64_t kw = 0; kw < k; kw++) {
                        int64_t iw = ow * stride - pad + kw;
                        if (iw >= 0 && iw < W) s += xp[ih * W + iw];
                    }
                }
                yp[oh * OW + ow] = s * inv;
            }
    }
}

void ct_avgpool_backward(float *dx, const float *dy, int64_t N, int64_t C, int64_t H, int64_t W,
                         int64_t k, int64_t stride, int64_t pad) {
    const int64_t OH = ct_pool_out(H, k, stride, pad), OW = ct_pool_out(W, k, stride, pad);
    const float inv = 1.0f / (float)(k * k);
#pragma omp parallel for schedule(static) if (N * C * H * W >= CT_PAR_MIN)
    for (int64_t nc = 0; nc < N * C; nc++) {
        float *dxp = dx + nc * H * W;
        const float *dyp = dy + nc * OH * OW;
        for (int64_t oh = 0; oh < OH; oh++)
            for (int64_t ow = 0; ow < OW; ow++) {
                float g = dyp[oh * OW + ow] * inv;
                for (int64_t kh = 0; kh < k; kh++) {
                    int64_t ih = oh * stride - pad + kh;
                    if (ih < 0 || ih >= H) continue;
                    for (int64_t kw = 0; kw < k; kw++) {
                        int64_t iw = ow * stride - pad + kw;
                        if (iw >= 0 && iw < W) dxp[ih * W + iw] += g;
                    }
                }
            }
    }
}

void ct_gap_forward(float *y, const float *x, int64_t N, int64_t C, int64_t HW) {
#pragma omp parallel for schedule(static) if (N * C * HW >= CT_PAR_MIN)
    for (int64_t nc = 0; nc < N * C; nc++) {
        const float *xp = x + nc * HW;
        float s = 0.0f;
        for (int64_t i = 0; i < HW; i++) s += xp[i];
        y[nc] = s / (float)HW;
    }
}

void ct_gap_backward(float *dx, const float *dy, int64_t N, int64_t C, int64_t HW) {
#pragma omp parallel for schedule(static) if (N * C * HW >= CT_PAR_MIN)
    for (int64_t nc = 0; nc < N * C; nc++) {
        float g = dy[nc] / (float)HW;
        float *dxp = dx + nc * HW;
        for (int64_t i = 0; i < HW; i++) dxp[i] += g;
    }
}
