/* augment.c: the SimCLR augmentation pipeline on one view, its spec strings, and the
 * eval path (resize + normalise only).
 *
 * Every random draw of a view comes from one counter-based stream keyed by (seed,
 * epoch, index, view), always in the same order and the same number of draws per
 * step whatever the probabilities, so a view never depends on which thread made it.
 * Steps follow torchvision's semantics (RandomResizedCrop, RandomHorizontalFlip,
 * RandomApply(ColorJitter), RandomGrayscale, GaussianBlur, RandomSolarize). */
#include "data_internal.h"

#include <ctype.h>
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- parameters ---------------------------------------------------------- */
void ct_augment_defaults(ct_augment *a, int channels) {
    memset(a, 0, sizeof *a);
    a->channels = channels == 3 ? 3 : 1;
    a->crop = 1;
    a->crop_scale[0] = 0.2f; a->crop_scale[1] = 1.0f;
    a->crop_ratio[0] = 3.0f / 4.0f; a->crop_ratio[1] = 4.0f / 3.0f;
    a->flip_p = 0.5f;
    a->jitter_p = 0.8f;
    a->brightness = 0.4f;
    a->contrast = 0.4f;
    a->blur_sigma[0] = 0.1f; a->blur_sigma[1] = 2.0f;
    a->solarize_threshold = 0.5f;
    if (a->channels == 3) {
        static const float m[3] = {0.4914f, 0.4822f, 0.4465f}, s[3] = {0.2470f, 0.2435f, 0.2616f};
        a->saturation = 0.4f;
        a->hue = 0.1f;
        a->gray_p = 0.2f;
        memcpy(a->mean, m, sizeof m);
        memcpy(a->std, s, sizeof s);
    } else {
        for (int c = 0; c < 3; c++) { a->mean[c] = 0.2860f; a->std[c] = 0.3530f; }
    }
}

void ct_augment_for_dataset(ct_augment *a, const ct_dataset *ds) {
    ct_augment_defaults(a, ds->c);
    if (ds->std[0] > 0)
        for (int c = 0; c < 3; c++) { a->mean[c] = ds->mean[c]; a->std[c] = ds->std[c]; }
    a->out_h = ds->h;
    a->out_w = ds->w;
}

/* Parses up to `max` numbers separated by ':' from [s, end); returns how many, or -1. */
static int parse_nums(const char *s, const char *end, float *v, int max) {
    int n = 0;
    while (s < end) {
        if (n == max) return -1;
        char buf[64];
        const char *colon = memchr(s, ':', (size_t)(end - s));
        const char *stop = colon ? colon : end;
        size_t len = (size_t)(stop - s);
        if (len == 0 || len >= sizeof buf) return -1;
        memcpy(buf, s, len);
        buf[len] = '\0';
        char *e;
        double x = strtod(buf, &e);
        if (*e || !(fabs(x) <= FLT_MAX)) return -1; /* NaN, inf, or inf once stored as float */
        v[n++] = (float)x;
        s = colon ? colon + 1 : end;
        if (colon && s == end) return -1;
    }
    return n;
}

static int is_prob(float p) { return p >= 0 && p <= 1; }

static ct_status parse_item(ct_augment *a, const char *item, size_t len) {
    char key[32];
    const char *eq = memchr(item, '=', len), *end = item + len;
    if (len == 4 && !memcmp(item, "none", 4)) {
        a->crop = 0;
        a->flip_p = a->jitter_p = a->gray_p = a->blur_p = a->solarize_p = 0;
        return CT_OK;
    }
    if (!eq || (size_t)(eq - item) >= sizeof key || eq + 1 == end)
        return ct_error(CT_ERR_ARG, "augment: '%.*s' is not key=value", (int)len, item);
    memcpy(key, item, (size_t)(eq - item));
    key[eq - item] = '\0';
    const char *val = eq + 1, *at = memchr(val, '@', (size_t)(end - val));
    const char *pend = at ? at : end;
    float v[4], p = -1;
    int n = parse_nums(val, pend, v, 4);
    if (at) {
        if (parse_nums(at + 1, end, &p, 1) != 1 || !is_prob(p))
            return ct_error(CT_ERR_ARG, "augment: '%.*s': the probability after '@' must be in [0, 1]", (int)len,
                            item);
    }
    int off = (size_t)(end - val) == 3 && !memcmp(val, "off", 3);
#define BAD(why) ct_error(CT_ERR_ARG, "augment: '%.*s': %s", (int)len, item, why)
    if (n < 0 && !off && strcmp(key, "size")) return BAD("malformed number or too many values");
    if (!strcmp(key, "crop")) {
        if (off) { a->crop = 0; return CT_OK; }
        if (at || (n != 2 && n != 4)) return BAD("expected crop=SMIN:SMAX[:RMIN:RMAX] or crop=off");
        if (!(v[0] > 0 && v[0] <= v[1] && v[1] <= 1)) return BAD("scale range must satisfy 0 < SMIN <= SMAX <= 1");
        a->crop = 1;
        a->crop_scale[0] = v[0]; a->crop_scale[1] = v[1];
        if (n == 4) {
            if (!(v[2] > 0 && v[2] <= v[3])) return BAD("ratio range must satisfy 0 < RMIN <= RMAX");
            a->crop_ratio[0] = v[2]; a->crop_ratio[1] = v[3];
        }
    } else if (!strcmp(key, "flip") || !strcmp(key, "gray")) {
        if (at || n != 1 || !is_prob(v[0])) return BAD("expected a probability in [0, 1]");
        *(key[0] == 'f' ? &a->flip_p : &a->gray_p) = v[0];
    } else if (!strcmp(key, "jitter")) {
        if (n == 1 && !at && v[0] == 0) { a->jitter_p = 0; return CT_OK; }
        if (n != 4) return BAD("expected jitter=B:C:S:H[@P]");
        if (v[0] < 0 || v[1] < 0 || v[2] < 0 || v[3] < 0 || v[3] > 0.5f)
            return BAD("strengths must be >= 0 and hue <= 0.5");
        a->brightness = v[0]; a->contrast = v[1]; a->saturation = v[2]; a->hue = v[3];
        if (at) a->jitter_p = p;
    } else if (!strcmp(key, "blur")) {
        if (!at && n == 1) {
            if (!is_prob(v[0])) return BAD("expected a probability in [0, 1]");
            a->blur_p = v[0];
        } else {
            if (n != 2 && n != 3) return BAD("expected blur=P or blur=SMIN:SMAX[:K][@P]");
            if (!(v[0] > 0 && v[0] <= v[1])) return BAD("sigma range must satisfy 0 < SMIN <= SMAX");
            a->blur_sigma[0] = v[0]; a->blur_sigma[1] = v[1];
            if (n == 3) {
                if (v[2] < 3 || v[2] > 255 || (int)v[2] != v[2] || ((int)v[2] & 1) == 0)
                    return BAD("kernel size must be an odd integer in [3, 255]");
                a->blur_kernel = (int)v[2];
            }
            if (at) a->blur_p = p;
        }
    } else if (!strcmp(key, "solarize")) {
        if (!at && n == 1) {
            if (!is_prob(v[0])) return BAD("expected a probability in [0, 1]");
            a->solarize_p = v[0];
        } else {
            if (n != 1 || !at || v[0] < 0 || v[0] > 1) return BAD("expected solarize=P or solarize=T@P, T in [0, 1]");
            a->solarize_threshold = v[0];
            a->solarize_p = p;
        }
    } else if (!strcmp(key, "size")) {
        int h = 0, w = 0;
        char buf[32];
        size_t vl = (size_t)(end - val);
        if (at || vl >= sizeof buf) return BAD("expected size=N or size=HxW");
        memcpy(buf, val, vl);
        buf[vl] = '\0';
        char tail;
        if (sscanf(buf, "%dx%d%c", &h, &w, &tail) == 2) {
        } else if (sscanf(buf, "%d%c", &h, &tail) == 1) {
            w = h;
        } else {
            return BAD("expected size=N or size=HxW");
        }
        if (h < 1 || w < 1 || h > 1024 || w > 1024) return BAD("size must be 1..1024");
        a->out_h = h; a->out_w = w;
    } else if (!strcmp(key, "mean") || !strcmp(key, "std")) {
        if (at || (n != 1 && n != 3)) return BAD("expected one value or three separated by ':'");
        float *dst = key[0] == 'm' ? a->mean : a->std;
        for (int c = 0; c < 3; c++) {
            float x = v[n == 1 ? 0 : c];
            if (key[0] == 's' && !(x > 0)) return BAD("std must be > 0");
            dst[c] = x;
        }
    } else {
        return ct_error(CT_ERR_ARG,
                        "augment: unknown key '%s' (known: crop, flip, jitter, gray, blur, solarize, size, mean, "
                        "std, none)",
                        key);
    }
#undef BAD
    return CT_OK;
}

ct_status ct_augment_parse(ct_augment *a, const char *spec) {
    if (!spec) return CT_OK;
    const char *s = spec;
    while (*s) {
        while (*s == ' ' || *s == ',') s++;
        if (!*s) break;
        const char *e = s;
        while (*e && *e != ',') e++;
        size_t len = (size_t)(e - s);
        while (len && s[len - 1] == ' ') len--;
        ct_status st = parse_item(a, s, len);
        if (st) return st;
        s = e;
    }
    return CT_OK;
}

void ct_augment_describe(const ct_augment *a, char *buf, size_t cap) {
    char crop[96];
    if (a->crop)
        snprintf(crop, sizeof crop, "crop=%g:%g:%g:%g", a->crop_scale[0], a->crop_scale[1], a->crop_ratio[0],
                 a->crop_ratio[1]);
    else
        snprintf(crop, sizeof crop, "crop=off");
    char blur[64];
    if (a->blur_kernel)
        snprintf(blur, sizeof blur, "%g:%g:%d", a->blur_sigma[0], a->blur_sigma[1], a->blur_kernel);
    else
        snprintf(blur, sizeof blur, "%g:%g", a->blur_sigma[0], a->blur_sigma[1]);
    snprintf(buf, cap,
             "size=%dx%d,%s,flip=%g,jitter=%g:%g:%g:%g@%g,gray=%g,blur=%s@%g,solarize=%g@%g,"
             "mean=%g:%g:%g,std=%g:%g:%g",
             a->out_h, a->out_w, crop, a->flip_p, a->brightness, a->contrast, a->saturation, a->hue, a->jitter_p,
             a->gray_p, blur, a->blur_p, a->solarize_threshold, a->solarize_p, a->mean[0], a->mean[1], a->mean[2],
             a->std[0], a->std[1], a->std[2]);
}

static void out_size(const ct_augment *a, const ct_dataset *ds, int *oh, int *ow) {
    *oh = a->out_h > 0 ? a->out_h : ds->h;
    *ow = a->out_w > 0 ? a->out_w : ds->w;
}

ct_status ct_augment_check(const ct_augment *a, const ct_dataset *ds) {
    if (!ds || ds->n <= 0 || !ds->images) return ct_error(CT_ERR_ARG, "augment: empty dataset");
    if (ds->c != 1 && ds->c != 3) return ct_error(CT_ERR_ARG, "augment: %d channels (expected 1 or 3)", ds->c);
    int oh, ow;
    out_size(a, ds, &oh, &ow);
    if (oh < 1 || ow < 1 || oh > 1024 || ow > 1024)
        return ct_error(CT_ERR_ARG, "augment: output size %dx%d (allowed 1..1024)", oh, ow);
    if (a->crop && !(a->crop_scale[0] > 0 && a->crop_scale[0] <= a->crop_scale[1] && a->crop_scale[1] <= 1 &&
                     a->crop_ratio[0] > 0 && a->crop_ratio[0] <= a->crop_ratio[1]))
        return ct_error(CT_ERR_ARG, "augment: bad crop ranges");
    const float ps[5] = {a->flip_p, a->jitter_p, a->gray_p, a->blur_p, a->solarize_p};
    for (int i = 0; i < 5; i++)
        if (!is_prob(ps[i])) return ct_error(CT_ERR_ARG, "augment: probability %g outside [0, 1]", ps[i]);
    if (a->blur_p > 0 && !(a->blur_sigma[0] > 0 && a->blur_sigma[0] <= a->blur_sigma[1]))
        return ct_error(CT_ERR_ARG, "augment: bad blur sigma range");
    for (int c = 0; c < ds->c; c++)
        if (!(a->std[c] > 0) || !isfinite(a->std[c]) || !isfinite(a->mean[c]))
            return ct_error(CT_ERR_ARG, "augment: channel %d needs a finite mean and a finite std > 0", c);
    return CT_OK;
}

/* ---- one view ------------------------------------------------------------- */
static int blur_kernel(const ct_augment *a, int oh, int ow) {
    if (a->blur_kernel) return a->blur_kernel;
    int k = (int)(0.1 * (oh < ow ? oh : ow));
    if ((k & 1) == 0) k++;
    return k < 3 ? 3 : k;
}

size_t ct_augment_scratch_floats(const ct_augment *a, const ct_dataset *ds) {
    int oh, ow;
    out_size(a, ds, &oh, &ow);
    /* resample tmp + both axes at the worst crop (the whole image) + one plane + kernel */
    return (size_t)ds->h * ow + ct__axis_floats(ds->w, ow) + ct__axis_floats(ds->h, oh) + (size_t)oh * ow +
           256 + 64;
}

static float uniform_in(ct_rng *r, float lo, float hi) { return lo + (hi - lo) * ct_rng_uniform(r); }

/* torchvision RandomResizedCrop.get_params: (top, left, height, width). */
static void crop_params(const ct_augment *a, int H, int W, ct_rng *r, int *ci, int *cj, int *ch, int *cw) {
    double area = (double)H * W;
    double lr0 = log(a->crop_ratio[0]), lr1 = log(a->crop_ratio[1]);
    for (int t = 0; t < 10; t++) {
        double target = area * uniform_in(r, a->crop_scale[0], a->crop_scale[1]);
        double aspect = exp(lr0 + (lr1 - lr0) * ct_rng_uniform(r));
        int w = (int)lround(sqrt(target * aspect)), h = (int)lround(sqrt(target / aspect));
        if (w > 0 && w <= W && h > 0 && h <= H) {
            *ci = (int)ct_rng_below(r, (uint64_t)(H - h + 1));
            *cj = (int)ct_rng_below(r, (uint64_t)(W - w + 1));
            *ch = h;
            *cw = w;
            return;
        }
    }
    double in_ratio = (double)W / H;
    int w = W, h = H;
    if (in_ratio < a->crop_ratio[0]) h = (int)lround(w / a->crop_ratio[0]);
    else if (in_ratio > a->crop_ratio[1]) w = (int)lround(h * a->crop_ratio[1]);
    if (h > H) h = H;
    if (w > W) w = W;
    if (h < 1) h = 1;
    if (w < 1) w = 1;
    *ci = (H - h) / 2;
    *cj = (W - w) / 2;
    *ch = h;
    *cw = w;
}

static inline float clamp01(float x) { return x < 0 ? 0 : x > 1 ? 1 : x; }

/* The grayscale of pixel q: ITU-R 601 weights, as torchvision's rgb_to_grayscale. */
static inline float luma(const float *x, size_t S, size_t q) {
    return 0.299f * x[q] + 0.587f * x[S + q] + 0.114f * x[2 * S + q];
}

static void blend(float *x, size_t n, float f, float other) {
    for (size_t q = 0; q < n; q++) x[q] = clamp01(f * x[q] + (1 - f) * other);
}

static void adjust_contrast(float *x, int c, size_t S, float f) {
    double m = 0;
    for (size_t q = 0; q < S; q++) m += c == 3 ? luma(x, S, q) : x[q];
    blend(x, (size_t)c * S, f, (float)(m / S));
}

static void adjust_saturation(float *x, size_t S, float f) {
    for (size_t q = 0; q < S; q++) {
        float g = luma(x, S, q);
        for (int c = 0; c < 3; c++) x[c * S + q] = clamp01(f * x[c * S + q] + (1 - f) * g);
    }
}

static void adjust_hue(float *x, size_t S, float shift) {
    for (size_t q = 0; q < S; q++) {
        float r = x[q], g = x[S + q], b = x[2 * S + q];
        float mx = fmaxf(r, fmaxf(g, b)), mn = fminf(r, fminf(g, b)), cr = mx - mn;
        if (cr <= 0) continue; /* gray pixel: hue has no effect */
        float h;
        if (mx == r) h = (g - b) / cr;
        else if (mx == g) h = (b - r) / cr + 2;
        else h = (r - g) / cr + 4;
        h = h / 6 + shift;
        h -= floorf(h);
        float s = cr / mx, v = mx, h6 = h * 6;
        int i = (int)h6;
        if (i > 5) i = 5;
        float f = h6 - i, p = v * (1 - s), qq = v * (1 - s * f), t = v * (1 - s * (1 - f));
        float o[3];
        switch (i) {
        case 0: o[0] = v; o[1] = t; o[2] = p; break;
        case 1: o[0] = qq; o[1] = v; o[2] = p; break;
        case 2: o[0] = p; o[1] = v; o[2] = t; break;
        case 3: o[0] = p; o[1] = qq; o[2] = v; break;
        case 4: o[0] = t; o[1] = p; o[2] = v; break;
        default: o[0] = v; o[1] = p; o[2] = qq; break;
        }
        for (int c = 0; c < 3; c++) x[c * S + q] = clamp01(o[c]);
    }
}

static inline int reflect(int i, int n) {
    if (n == 1) return 0;
    while (i < 0 || i >= n) i = i < 0 ? -i : 2 * n - 2 - i;
    return i;
}

/* Separable Gaussian blur with reflect padding; tmp: (h*w). */
static void gaussian_blur(float *x, float *tmp, int h, int w, int k, float sigma, float *kern) {
    int r = k / 2;
    double sum = 0;
    for (int i = 0; i < k; i++) {
        double d = (i - r) / (double)sigma;
        kern[i] = (float)exp(-0.5 * d * d);
        sum += kern[i];
    }
    for (int i = 0; i < k; i++) kern[i] = (float)(kern[i] / sum);
    for (int y = 0; y < h; y++)
        for (int xx = 0; xx < w; xx++) {
            float s = 0;
            for (int i = 0; i < k; i++) s += kern[i] * x[y * w + reflect(xx + i - r, w)];
            tmp[y * w + xx] = s;
        }
    for (int y = 0; y < h; y++)
        for (int xx = 0; xx < w; xx++) {
            float s = 0;
            for (int i = 0; i < k; i++) s += kern[i] * tmp[reflect(y + i - r, h) * w + xx];
            x[y * w + xx] = s;
        }
}

/* Resizes region (ci, cj, ch, cw) of sample `index` into out (c, oh, ow), in [0, 1]. */
static void crop_resize(float *out, float *scratch, const ct_dataset *ds, int64_t index, int ci, int cj, int chh,
                        int cww, int oh, int ow, int flip) {
    ct__axis ax, ay;
    float *axm = scratch, *aym = axm + ct__axis_floats(cww, ow), *tmp = aym + ct__axis_floats(chh, oh);
    ct__axis_build(&ax, axm, cj, cww, ow, flip);
    ct__axis_build(&ay, aym, ci, chh, oh, 0);
    size_t S = (size_t)oh * ow, plane = (size_t)ds->h * ds->w;
    const uint8_t *img = ds->images + (size_t)index * ds->c * plane;
    for (int c = 0; c < ds->c; c++) {
        float *o = out + c * S;
        ct__resample(o, tmp, img + c * plane, ds->w, 1, &ay, oh, &ax, ow);
        for (size_t q = 0; q < S; q++) o[q] *= 1.0f / 255.0f;
    }
}

static void normalize(float *out, const ct_augment *a, int c, size_t S) {
    for (int ch = 0; ch < c; ch++) {
        float m = a->mean[ch], inv = 1.0f / a->std[ch];
        float *o = out + ch * S;
        for (size_t q = 0; q < S; q++) o[q] = (o[q] - m) * inv;
    }
}

void ct_augment_view(float *out, float *scratch, const ct_augment *a, const ct_dataset *ds, int64_t index,
                     uint64_t key) {
    int oh, ow, C = ds->c;
    out_size(a, ds, &oh, &ow);
    size_t S = (size_t)oh * ow;
    ct_rng r = ct_rng_make(key);
    int ci = 0, cj = 0, chh = ds->h, cww = ds->w;
    if (a->crop) crop_params(a, ds->h, ds->w, &r, &ci, &cj, &chh, &cww);
    int flip = ct_rng_uniform(&r) < a->flip_p;
    crop_resize(out, scratch, ds, index, ci, cj, chh, cww, oh, ow, flip);

    /* colour jitter: always draw the order and the four factors (fixed draw count) */
    int apply = ct_rng_uniform(&r) < a->jitter_p;
    int order[4] = {0, 1, 2, 3};
    for (int i = 3; i > 0; i--) {
        int j = (int)ct_rng_below(&r, (uint64_t)i + 1), t = order[i];
        order[i] = order[j];
        order[j] = t;
    }
    float fb = uniform_in(&r, fmaxf(0, 1 - a->brightness), 1 + a->brightness);
    float fc = uniform_in(&r, fmaxf(0, 1 - a->contrast), 1 + a->contrast);
    float fs = uniform_in(&r, fmaxf(0, 1 - a->saturation), 1 + a->saturation);
    float fh = uniform_in(&r, -a->hue, a->hue);
    if (apply) {
        for (int k = 0; k < 4; k++) {
            switch (order[k]) {
            case 0: if (a->brightness > 0) blend(out, C * S, fb, 0); break;
            case 1: if (a->contrast > 0) adjust_contrast(out, C, S, fc); break;
            case 2: if (a->saturation > 0 && C == 3) adjust_saturation(out, S, fs); break;
            default: if (a->hue > 0 && C == 3) adjust_hue(out, S, fh); break;
            }
        }
    }
    if (ct_rng_uniform(&r) < a->gray_p && C == 3)
        for (size_t q = 0; q < S; q++) {
            float g = luma(out, S, q);
            out[q] = out[S + q] = out[2 * S + q] = g;
        }
    int do_blur = ct_rng_uniform(&r) < a->blur_p;
    float sigma = uniform_in(&r, a->blur_sigma[0], a->blur_sigma[1]);
    if (do_blur) {
        int k = blur_kernel(a, oh, ow);
        float *tmp = scratch, *kern = scratch + S;
        for (int c = 0; c < C; c++) gaussian_blur(out + c * S, tmp, oh, ow, k, sigma, kern);
    }
    if (ct_rng_uniform(&r) < a->solarize_p)
        for (size_t q = 0; q < (size_t)C * S; q++)
            if (out[q] >= a->solarize_threshold) out[q] = 1 - out[q];
    normalize(out, a, C, S);
}

ct_status ct_data_eval_batch(float *x, const ct_dataset *ds, const ct_augment *a, int64_t start, int64_t count) {
    if (start < 0 || count < 0 || start + count > ds->n)
        return ct_error(CT_ERR_ARG, "eval batch [%lld, %lld) outside the dataset of %lld samples",
                        (long long)start, (long long)(start + count), (long long)ds->n);
    ct_status st = ct_augment_check(a, ds);
    if (st) return st;
    int oh, ow;
    out_size(a, ds, &oh, &ow);
    size_t S = (size_t)oh * ow, nscr = ct_augment_scratch_floats(a, ds);
    int fail = 0;
#pragma omp parallel
    {
        float *scratch = ct_alloc(nscr * sizeof(float));
        if (!scratch) {
#pragma omp atomic write
            fail = 1;
        }
#pragma omp for schedule(static)
        for (int64_t i = 0; i < count; i++) {
            if (!scratch) continue;
            float *o = x + (size_t)i * ds->c * S;
            crop_resize(o, scratch, ds, start + i, 0, 0, ds->h, ds->w, oh, ow, 0);
            normalize(o, a, ds->c, S);
        }
        ct_free(scratch);
    }
    return fail ? ct_error(CT_ERR_NOMEM, "eval batch: out of memory") : CT_OK;
}
