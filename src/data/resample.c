/* resample.c: separable image resampling shared by the folder reader, the random
 * resized crop and the eval path (see data_internal.h for the filter). */
#include "data_internal.h"

#include <math.h>

static int axis_taps(int in_len, int out_len) {
    double support = (double)in_len / out_len;
    if (support < 1) support = 1;
    return 2 * (int)ceil(support) + 1;
}

size_t ct__axis_floats(int in_len, int out_len) {
    return (size_t)out_len * ((size_t)axis_taps(in_len, out_len) + 2);
}

void ct__axis_build(ct__axis *a, float *mem, int in_off, int in_len, int out_len, int flip) {
    int taps = axis_taps(in_len, out_len);
    a->taps = taps;
    a->start = (int *)mem;
    a->count = (int *)(mem + out_len);
    a->w = mem + 2 * (size_t)out_len;
    double scale = (double)in_len / out_len;
    double support = scale < 1 ? 1 : scale; /* filter half-width in input pixels */
    for (int o = 0; o < out_len; o++) {
        double center = (o + 0.5) * scale; /* in crop coordinates */
        int lo = (int)floor(center - support), hi = (int)ceil(center + support);
        if (lo < 0) lo = 0;
        if (hi > in_len) hi = in_len;
        if (hi - lo > taps) hi = lo + taps;
        int slot = flip ? out_len - 1 - o : o;
        float *w = a->w + (size_t)slot * taps;
        double sum = 0;
        int n = 0;
        for (int i = lo; i < hi; i++, n++) {
            double t = 1.0 - fabs((i + 0.5 - center) / support);
            w[n] = (float)(t > 0 ? t : 0);
            sum += w[n];
        }
        if (sum <= 0) { /* cannot happen for valid sizes; keep the nearest pixel */
            n = 1; lo = (int)center < in_len ? (int)center : in_len - 1; w[0] = 1; sum = 1;
        }
        for (int k = 0; k < n; k++) w[k] = (float)(w[k] / sum);
        a->start[slot] = in_off + lo;
        a->count[slot] = n;
    }
}

void ct__resample(float *out, float *tmp, const uint8_t *src, ptrdiff_t ys, ptrdiff_t xs,
                  const ct__axis *ay, int oh, const ct__axis *ax, int ow) {
    int lo = ay->start[0], hi = ay->start[0] + ay->count[0];
    for (int o = 1; o < oh; o++) {
        if (ay->start[o] < lo) lo = ay->start[o];
        if (ay->start[o] + ay->count[o] > hi) hi = ay->start[o] + ay->count[o];
    }
    /* horizontal pass over the rows the vertical taps touch */
    for (int y = lo; y < hi; y++) {
        const uint8_t *row = src + (ptrdiff_t)y * ys;
        float *t = tmp + (size_t)(y - lo) * ow;
        for (int o = 0; o < ow; o++) {
            const float *w = ax->w + (size_t)o * ax->taps;
            const uint8_t *p = row + (ptrdiff_t)ax->start[o] * xs;
            float s = 0;
            for (int k = 0; k < ax->count[o]; k++) s += w[k] * p[(ptrdiff_t)k * xs];
            t[o] = s;
        }
    }
    /* vertical pass */
    for (int o = 0; o < oh; o++) {
        const float *w = ay->w + (size_t)o * ay->taps;
        float *dst = out + (size_t)o * ow;
        const float *t0 = tmp + (size_t)(ay->start[o] - lo) * ow;
        for (int x = 0; x < ow; x++) dst[x] = w[0] * t0[x];
        for (int k = 1; k < ay->count[o]; k++) {
            const float *tk = t0 + (size_t)k * ow;
            for (int x = 0; x < ow; x++) dst[x] += w[k] * tk[x];
        }
    }
}
