/* tokenpool.c: pooling a sequence of token vectors (B, T, C) into one vector per
 * sequence (B, C): the mean over the valid (non-padded) tokens, the first token
 * (a CLS token), or the last valid token (the EOT token of CLIP's text tower,
 * with right padding). A sequence with no valid token pools to zeros, and passes
 * no gradient, under mean and last; first ignores the mask. */
#include "contrast/nn.h"

#include <string.h>

/* The token row that `first` / `last` reads for sequence b, or -1 for none. */
static int64_t picked(const uint8_t *valid, int64_t b, int64_t T, ct_tokpool_mode mode) {
    if (mode == CT_TOKPOOL_FIRST) return 0;
    for (int64_t t = T - 1; t >= 0; t--)
        if (!valid || valid[b * T + t]) return t;
    return -1;
}

void ct_tokpool_forward(float *y, const float *x, const uint8_t *valid, int64_t B, int64_t T, int64_t C,
                        ct_tokpool_mode mode) {
#pragma omp parallel for schedule(static) if (B * T * C >= CT_PAR_MIN)
    for (int64_t b = 0; b < B; b++) {
        float *yb = y + b * C;
        const float *xb = x + b * T * C;
        if (mode == CT_TOKPOOL_MEAN) {
            int64_t cnt = 0;
            for (int64_t t = 0; t < T; t++) cnt += !valid || valid[b * T + t];
            for (int64_t c = 0; c < C; c++) {
                double s = 0.0;
                for (int64_t t = 0; t < T; t++)
                    if (!valid || valid[b * T + t]) s += xb[t * C + c];
                yb[c] = cnt ? (float)(s / (double)cnt) : 0.0f;
            }
        } else {
            int64_t t = picked(valid, b, T, mode);
            if (t < 0)
                memset(yb, 0, (size_t)C * sizeof(float));
            else
                memcpy(yb, xb + t * C, (size_t)C * sizeof(float));
        }
    }
}

void ct_tokpool_backward(float *dx, const float *dy, const uint8_t *valid, int64_t B, int64_t T, int64_t C,
                         ct_tokpool_mode mode) {
#pragma omp parallel for schedule(static) if (B * T * C >= CT_PAR_MIN)
    for (int64_t b = 0; b < B; b++) {
        const float *dyb = dy + b * C;
        float *dxb = dx + b * T * C;
        if (mode == CT_TOKPOOL_MEAN) {
            int64_t cnt = 0;
            for (int64_t t = 0; t < T; t++) cnt += !valid || valid[b * T + t];
            if (!cnt) continue;
            const float inv = (float)(1.0 / (double)cnt);
            for (int64_t t = 0; t < T; t++)
                if (!valid || valid[b * T + t])
                    for (int64_t c = 0; c < C; c++) dxb[t * C + c] += dyb[c] * inv;
        } else {
            int64_t t = picked(valid, b, T, mode);
            if (t >= 0)
                for (int64_t c = 0; c < C; c++) dxb[t * C + c] += dyb[c];
        }
    }
}
