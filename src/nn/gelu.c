/* gelu.c: the GELU activation, y = x * Phi(x), in its two PyTorch forms:
 *   exact  (nn.GELU()):                  y = 0.5 x (1 + erf(x / sqrt 2))
 *   tanh   (nn.GELU(approximate='tanh')): y = 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))
 * The backward reads the forward's input x (not y: GELU is not invertible). */
#include "contrast/nn.h"

#include <math.h>

#define GELU_K 0.7978845608028654f   /* sqrt(2 / pi) */
#define GELU_A 0.044715f
#define INV_SQRT2 0.7071067811865476f
#define INV_SQRT2PI 0.3989422804014327f /* 1 / sqrt(2 pi) */

void ct_gelu_forward(float *y, const float *x, size_t n, ct_gelu_kind kind) {
    if (kind == CT_GELU_TANH) {
#pragma omp parallel for schedule(static) if (n >= CT_PAR_MIN)
        for (size_t i = 0; i < n; i++) {
            float v = x[i];
            y[i] = 0.5f * v * (1.0f + tanhf(GELU_K * (v + GELU_A * v * v * v)));
        }
    } else {
#pragma omp parallel for schedule(static) if (n >= CT_PAR_MIN)
        for (size_t i = 0; i < n; i++) {
            float v = x[i];
            y[i] = 0.5f * v * (1.0f + erff(v * INV_SQRT2));
        }
    }
}

void ct_gelu_backward(float *dx, const float *dy, const float *x, size_t n, ct_gelu_kind kind) {
    if (kind == CT_GELU_TANH) {
        /* d/dx = 0.5 (1 + t) + 0.5 x (1 - t^2) sqrt(2/pi) (1 + 3 a x^2), t = tanh(u) */
#pragma omp parallel for schedule(static) if (n >= CT_PAR_MIN)
        for (size_t i = 0; i < n; i++) {
            float v = x[i], t = tanhf(GELU_K * (v + GELU_A * v * v * v));
            float d = 0.5f * (1.0f + t) + 0.5f * v * (1.0f - t * t) * GELU_K * (1.0f + 3.0f * GELU_A * v * v);
            dx[i] += dy[i] * d;
        }
    } else {
        /* d/dx = Phi(x) + x phi(x) */
#pragma omp parallel for schedule(static) if (n >= CT_PAR_MIN)
        for (size_t i = 0; i < n; i++) {
            float v = x[i];
            float d = 0.5f * (1.0f + erff(v * INV_SQRT2)) + v * INV_SQRT2PI * expf(-0.5f * v * v);
            dx[i] += dy[i] * d;
        }
    }
}
