/* gelu.c: the GELU activation, y = x * Phi(x), in its two PyTorch forms:
 *   exact  (nn.GELU()):                  y = 0.5 x (1 + erf(x / sqrt 2))
 *   tanh   (nn.GELU(approximate='tanh')): y = 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))
 * The backward reads the forward's input x (not y: GELU is not invertible).
 *
 * The exact form evaluates Phi(x) = 1 - erfc(x / sqrt 2) / 2 (x >= 0) or
 * erfc(|x| / sqrt 2) / 2 (x < 0, no cancellation in the tail) with Abramowitz and
 * Stegun's 7.1.26, erfc(a) = t (a1 + t (a2 + ... + t a5)) exp(-a^2), t = 1 / (1 + p a),
 * absolute error below 1.5e-7 (float32 rounding is 6e-8 at 1), and exp by range
 * reduction to [-ln2/2, ln2/2] and a degree-6 Taylor polynomial (relative error
 * 2e-7 before float rounding; ct_nn__exp_nonpos in src/nn/internal.h). Plain arithmetic, no library call, so the loops
 * vectorise (libm's erff / expf are scalar calls, and were 10-15% of a ViT step);
 * the same code serves the backward, whose phi(x) = exp(-x^2 / 2) / sqrt(2 pi)
 * reuses the exponential. The tanh form keeps libm's tanhf. */
#include "internal.h"

#include <math.h>
#include <stdint.h>
#include <string.h>

#define GELU_K 0.7978845608028654f   /* sqrt(2 / pi) */
#define GELU_A 0.044715f
#define INV_SQRT2 0.7071067811865476f
#define INV_SQRT2PI 0.3989422804014327f /* 1 / sqrt(2 pi) */

/* Phi(x), the standard normal CDF, and (through *pdf) phi(x) */
static inline float normal_cdf(float x, float *pdf) {
    const float a = fabsf(x) * INV_SQRT2, e = ct_nn__exp_nonpos(-a * a), t = 1.0f / (1.0f + 0.3275911f * a);
    const float erfc_a =
        t * (0.254829592f + t * (-0.284496736f + t * (1.421413741f + t * (-1.453152027f + t * 1.061405429f)))) * e;
    *pdf = INV_SQRT2PI * e;
    return x >= 0.0f ? 1.0f - 0.5f * erfc_a : 0.5f * erfc_a;
}

/* the exact form over chunks of CHUNK elements, each a vectorised loop (omp simd: y
 * may be x itself, which carries no dependence between iterations; it also lifts
 * -O2's cheap cost model, which refuses a loop that needs a scalar epilogue) */
#define CHUNK 4096

static void erf_forward_chunk(float *y, const float *x, size_t n) {
#pragma omp simd
    for (size_t i = 0; i < n; i++) {
        float pdf;
        y[i] = x[i] * normal_cdf(x[i], &pdf);
    }
}

static void erf_backward_chunk(float *dx, const float *dy, const float *x, size_t n) {
#pragma omp simd
    for (size_t i = 0; i < n; i++) {
        float pdf, cdf = normal_cdf(x[i], &pdf);
        dx[i] += dy[i] * (cdf + x[i] * pdf);
    }
}

void ct_gelu_forward(float *y, const float *x, size_t n, ct_gelu_kind kind) {
    if (kind == CT_GELU_TANH) {
#pragma omp parallel for schedule(static) if (n >= CT_PAR_MIN)
        for (size_t i = 0; i < n; i++) {
            float v = x[i];
            y[i] = 0.5f * v * (1.0f + tanhf(GELU_K * (v + GELU_A * v * v * v)));
        }
    } else {
#pragma omp parallel for schedule(static) if (n >= CT_PAR_MIN)
        for (size_t c = 0; c < n; c += CHUNK) erf_forward_chunk(y + c, x + c, n - c < CHUNK ? n - c : CHUNK);
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
        for (size_t c = 0; c < n; c += CHUNK) erf_backward_chunk(dx + c, dy + c, x + c, n - c < CHUNK ? n - c : CHUNK);
    }
}
