/* harness.h: the tiny test harness every tests/test_*.c includes.
 *
 * CHECK counts a pass or prints the failure with file and line; test_done() prints
 * "N passed, N failed" (the line tests/run.sh and CI read) and returns the exit
 * code. check_close compares arrays with atol + rtol*|ref| and prints the worst
 * element; gradcheck compares an analytic gradient to central differences. */
#ifndef CONTRAST_TEST_HARNESS_H
#define CONTRAST_TEST_HARNESS_H

#include "contrast.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int g_pass, g_fail;

#define CHECK(cond, ...)                                                       \
    do {                                                                       \
        if (cond) {                                                            \
            g_pass++;                                                          \
        } else {                                                               \
            g_fail++;                                                          \
            fprintf(stderr, "FAIL %s:%d: ", __FILE__, __LINE__);               \
            fprintf(stderr, __VA_ARGS__);                                      \
            fputc('\n', stderr);                                               \
        }                                                                      \
    } while (0)

/* A call that must succeed; on failure prints the library's message. */
#define CHECK_OK(expr)                                                         \
    do {                                                                       \
        ct_status st_ = (expr);                                                \
        CHECK(st_ == CT_OK, "%s -> %s: %s", #expr, ct_status_name(st_), ct_errmsg()); \
    } while (0)

static inline int test_done(void) {
    printf("%d passed, %d failed\n", g_pass, g_fail);
    return g_fail ? 1 : 0;
}

static inline void fill_uniform(float *x, size_t n, uint64_t seed, float lo, float hi) {
    ct_rng r = ct_rng_make(ct_mix64(seed));
    for (size_t i = 0; i < n; i++) x[i] = lo + (hi - lo) * ct_rng_uniform(&r);
}

/* Returns 1 when every |got-ref| <= atol + rtol*|ref|; always reports the worst
 * element so a near miss is visible in the log. Counts one CHECK. */
static inline int check_close(const char *what, const float *got, const float *ref, size_t n,
                              double atol, double rtol) {
    double worst = -1, worst_excess = -INFINITY;
    size_t wi = 0;
    int nonfinite = 0;
    for (size_t i = 0; i < n; i++) {
        if (!isfinite(got[i]) && isfinite(ref[i])) nonfinite = 1;
        double d = fabs((double)got[i] - ref[i]);
        double excess = d - (atol + rtol * fabs((double)ref[i]));
        if (excess > worst_excess || nonfinite) { worst_excess = excess; worst = d; wi = i; }
        if (nonfinite) break;
    }
    int ok = !nonfinite && worst_excess <= 0;
    if (n == 0) ok = 1;
    CHECK(ok, "%s: worst |diff| %.3g at [%zu] (got %.8g, ref %.8g), tol %.1g + %.1g*|ref|", what,
          worst, wi, n ? got[wi] : 0.0, n ? ref[wi] : 0.0, atol, rtol);
    return ok;
}

/* Central-difference gradient check.
 *   x: (n) the input being perturbed in place (restored afterwards)
 *   g: (n) the analytic gradient dL/dx to verify
 *   loss(ctx): recomputes the scalar loss from the current x (in double)
 * Checks up to `max_points` evenly spread elements (all if n is small). */
static inline int gradcheck(const char *what, float *x, const float *g, size_t n,
                            double (*loss)(void *), void *ctx, float eps, double atol,
                            double rtol, size_t max_points) {
    size_t step = n > max_points ? n / max_points : 1;
    double worst_excess = -INFINITY, worst_num = 0, worst_ana = 0;
    size_t wi = 0;
    for (size_t i = 0; i < n; i += step) {
        float keep = x[i];
        x[i] = keep + eps;
        double lp = loss(ctx);
        x[i] = keep - eps;
        double lm = loss(ctx);
        x[i] = keep;
        double num = (lp - lm) / (2.0 * (double)eps);
        double excess = fabs(num - g[i]) - (atol + rtol * fabs(num));
        if (!isfinite(g[i])) excess = INFINITY;
        if (excess > worst_excess) { worst_excess = excess; worst_num = num; worst_ana = g[i]; wi = i; }
    }
    int ok = worst_excess <= 0;
    CHECK(ok, "gradcheck %s: worst at [%zu]: analytic %.8g, numeric %.8g, tol %.1g + %.1g*|num|",
          what, wi, worst_ana, worst_num, atol, rtol);
    return ok;
}

/* Whole file into a malloc'd buffer (*n bytes); NULL if it cannot be opened. */
static inline unsigned char *slurp(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long sz = ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *b = malloc((size_t)(sz > 0 ? sz : 0) + 1);
    *n = b ? fread(b, 1, (size_t)sz, f) : 0;
    fclose(f);
    return b;
}

/* Writes n bytes to path (tests build their hostile files with it). */
static inline void spit(const char *path, const void *b, size_t n) {
    FILE *f = fopen(path, "wb");
    if (!f) return;
    fwrite(b, 1, n, f);
    fclose(f);
}

/* Parameters followed by BN running statistics of dir/checkpoint.safetensors, as
 * one malloc'd array of *n floats (*nparams of them parameters); NULL on error. */
static inline float *checkpoint_values(const char *dir, size_t *n, size_t *nparams) {
    char path[1100];
    snprintf(path, sizeof path, "%s/checkpoint.safetensors", dir);
    ct_model m;
    if (ct_checkpoint_load_model(&m, path)) {
        fprintf(stderr, "%s\n", ct_errmsg());
        return NULL;
    }
    *nparams = m.nparam_floats;
    *n = m.nparam_floats + m.nbuf_floats;
    float *p = malloc(*n * sizeof(float));
    memcpy(p, m.param, m.nparam_floats * sizeof(float));
    memcpy(p + m.nparam_floats, m.buf, m.nbuf_floats * sizeof(float));
    ct_model_free(&m);
    return p;
}

#endif
