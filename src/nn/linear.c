/* linear.c: fully connected layer, y = x W^T + b with W stored (OUT, IN) as in PyTorch. */
#include "contrast/nn.h"

void ct_linear_forward(float *y, const float *x, const float *w, const float *b, int64_t N,
                       int64_t IN, int64_t OUT) {
    ct_gemm(0, 1, N, OUT, IN, 1.0f, x, IN, w, IN, 0.0f, y, OUT);
    if (b) {
#pragma omp parallel for schedule(static) if (N * OUT >= CT_PAR_MIN)
        for (int64_t n = 0; n < N; n++)
            for (int64_t o = 0; o < OUT; o++) y[n * OUT + o] += b[o];
    }
}

void ct_linear_backward(float *dx, float *dw, float *db, const float *dy, const float *x,
                        const float *w, int64_t N, int64_t IN, int64_t OUT) {
    if (dx) ct_gemm(0, 0, N, IN, OUT, 1.0f, dy, OUT, w, IN, 1.0f, dx, IN);  /* dx += dy W   */
    if (dw) ct_gemm(1, 0, OUT, IN, N, 1.0f, dy, OUT, x, IN, 1.0f, dw, IN);  /* dW += dy^T x */
    if (db) {
#pragma omp parallel for schedule(static) if (N * OUT >= CT_PAR_MIN)
        for (int64_t o = 0; o < OUT; o++) {
            double acc = 0.0;
            for (int64_t n = 0; n < N; n++) acc += dy[n * OUT + o];
            db[o] += (float)acc;
        }
    }
}
