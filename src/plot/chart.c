/* chart.c: line-chart panels, the training-curves figure of a run, and scatter
 * maps of labelled 2-D points, drawn on a ct_canvas with the built-in font.
 *
 * Sizes follow the canvas: text is drawn at scale ts (2 on figures 900 pixels
 * wide or more, else 1), titles at ts + 1, so a figure reads the same at any size
 * it is made. Axes take 1-2-5 steps; a panel's y axis extends to whole steps
 * around the data, a scatter's axes share one scale. */
#include "contrast/plot.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define INK 0x222222u
#define GRID 0xe4e4e4u
#define FRAME 0x888888u
#define MUTED 0x777777u
#define PAPER 0xffffffu

static int text_scale(const ct_canvas *c) { return c->w >= 900 ? 2 : 1; }

/* Draws a title centred in [x, x + w) at the largest of scales big, big - 1 that
 * fits, cut short with "..." when even that does not; returns the scale used. */
static int draw_fitted(ct_canvas *c, int x, int y, int w, const char *s, int big, uint32_t color) {
    int sc = big;
    if (ct_text_width(s, sc) > w && sc > 1) sc--;
    char buf[512];
    snprintf(buf, sizeof buf, "%s", s);
    size_t n = strlen(buf);
    while (n > 3 && ct_text_width(buf, sc) > w) {
        n--;
        memcpy(buf + n - 3, "...", 4);
    }
    ct_text_draw(c, x + (w - ct_text_width(buf, sc)) / 2, y, buf, sc, color);
    return sc;
}

/* ---- axes --------------------------------------------------------------------------- */
typedef struct {
    double lo, hi;   /* the axis spans [lo, hi] */
    double step;     /* ticks at the multiples of step inside it */
    int decimals;    /* of the tick labels; -1: %g */
} axis;

static double nice_step(double range, int target) {
    double raw = range / target, mag = pow(10.0, floor(log10(raw))), f = raw / mag;
    return (f < 1.5 ? 1 : f < 3.5 ? 2 : f < 7.5 ? 5 : 10) * mag;
}

static void axis_decimals(axis *a) {
    double big = fmax(fabs(a->lo), fabs(a->hi));
    int d = a->step >= 1 ? 0 : (int)ceil(-log10(a->step) - 1e-9);
    a->decimals = (d > 5 || big >= 1e6) ? -1 : d;
}

/* An axis over [lo, hi] (finite, lo <= hi) with about `target` steps: `expand`
 * widens it to whole steps, integer keeps steps >= 1. */
static axis axis_make(double lo, double hi, int target, int expand, int integer) {
    axis a;
    if (!(hi - lo > 1e-12 * fmax(1.0, fabs(lo)))) {
        double pad = integer ? 1.0 : lo != 0 ? fabs(lo) * 0.1 : 1.0;
        lo -= pad;
        hi += pad;
    }
    a.step = nice_step(hi - lo, target);
    if (integer && a.step < 1) a.step = 1;
    if (expand) {
        lo = floor(lo / a.step + 1e-9) * a.step;
        hi = ceil(hi / a.step - 1e-9) * a.step;
    }
    a.lo = lo;
    a.hi = hi;
    axis_decimals(&a);
    return a;
}

static void tick_label(char *buf, size_t cap, const axis *a, double v) {
    if (fabs(v) < a->step * 1e-6) v = 0; /* no "-0.0" */
    if (a->decimals < 0) snprintf(buf, cap, "%g", v);
    else snprintf(buf, cap, "%.*f", a->decimals, v);
}

/* first tick index k (tick = k * step) at or after lo, and the count up to hi */
static int ticks(const axis *a, double *first) {
    *first = 0;
    if (!isfinite(a->step)) return 0; /* an axis without ticks */
    double k0 = ceil(a->lo / a->step - 1e-9);
    int n = (int)floor(a->hi / a->step + 1e-9 - k0) + 1;
    *first = k0;
    return n < 0 ? 0 : n > 100 ? 100 : n;
}

static int tick_label_width(const axis *a, int ts) {
    double k0;
    int n = ticks(a, &k0), w = 0;
    for (int i = 0; i < n; i++) {
        char b[64];
        tick_label(b, sizeof b, a, (k0 + i) * a->step);
        int tw = ct_text_width(b, ts);
        w = tw > w ? tw : w;
    }
    return w;
}

/* the plot area and the data -> pixel maps */
typedef struct {
    int x, y, w, h;
    axis ax, ay;
} frame;

static double px_x(const frame *f, double v) { return f->x + (v - f->ax.lo) / (f->ax.hi - f->ax.lo) * f->w; }
static double px_y(const frame *f, double v) { return f->y + f->h - (v - f->ay.lo) / (f->ay.hi - f->ay.lo) * f->h; }

/* Grid, frame, ticks, tick labels and axis labels around the plot area. */
static void draw_axes(ct_canvas *c, const frame *f, const char *xlabel, const char *ylabel, int ts, int ylabel_x) {
    double k0;
    int n = ticks(&f->ay, &k0), tl = 3 * ts;
    for (int i = 0; i < n; i++) {
        double v = (k0 + i) * f->ay.step;
        int y = (int)lrint(px_y(f, v));
        char b[64];
        ct_canvas_fill_rect(c, f->x, y, f->w, 1, GRID);
        ct_canvas_fill_rect(c, f->x - tl, y, tl, 1, FRAME);
        tick_label(b, sizeof b, &f->ay, v);
        ct_text_draw(c, f->x - tl - 2 * ts - ct_text_width(b, ts), y - 7 * ts / 2, b, ts, INK);
    }
    n = ticks(&f->ax, &k0);
    for (int i = 0; i < n; i++) {
        double v = (k0 + i) * f->ax.step;
        int x = (int)lrint(px_x(f, v));
        char b[64];
        ct_canvas_fill_rect(c, x, f->y, 1, f->h, GRID);
        ct_canvas_fill_rect(c, x, f->y + f->h, 1, tl, FRAME);
        tick_label(b, sizeof b, &f->ax, v);
        ct_text_draw(c, x - ct_text_width(b, ts) / 2, f->y + f->h + tl + 2 * ts, b, ts, INK);
    }
    /* frame */
    ct_canvas_fill_rect(c, f->x, f->y, f->w + 1, 1, FRAME);
    ct_canvas_fill_rect(c, f->x, f->y + f->h, f->w + 1, 1, FRAME);
    ct_canvas_fill_rect(c, f->x, f->y, 1, f->h + 1, FRAME);
    ct_canvas_fill_rect(c, f->x + f->w, f->y, 1, f->h + 1, FRAME);
    if (xlabel && *xlabel)
        ct_text_draw(c, f->x + (f->w - ct_text_width(xlabel, ts)) / 2, f->y + f->h + tl + 13 * ts, xlabel, ts, INK);
    if (ylabel && *ylabel)
        ct_text_draw_up(c, ylabel_x, f->y + (f->h + ct_text_width(ylabel, ts)) / 2, ylabel, ts, INK);
}

/* ---- line-chart panels ------------------------------------------------------------ */
static int legend_entries(const ct_chart_panel *p) {
    int n = 0;
    for (int s = 0; s < p->nseries; s++) n += p->series[s].label && p->series[s].n > 0;
    return n;
}

static void draw_swatch(ct_canvas *c, int x, int ymid, int ts, const ct_chart_series *s) {
    if (s->style & CT_SERIES_LINE) ct_canvas_line(c, x, ymid + 0.5, x + 10 * ts, ymid + 0.5, 1.25 * ts, s->color);
    if (s->style & CT_SERIES_MARKERS) ct_canvas_disc(c, x + 5 * ts, ymid + 0.5, 2.0 * ts + 1, s->color, 1.0f);
}

static void draw_panel(ct_canvas *c, int x0, int y0, int w, int h, const ct_chart_panel *p, int ts) {
    double xmin = INFINITY, xmax = -INFINITY, ymin = INFINITY, ymax = -INFINITY;
    for (int s = 0; s < p->nseries; s++)
        for (int64_t i = 0; i < p->series[s].n; i++) {
            /* the x range covers NaN values too, so a leading or trailing gap shows */
            double xv = p->series[s].x[i], yv = p->series[s].y[i];
            if (!isfinite(xv)) continue;
            xmin = fmin(xmin, xv), xmax = fmax(xmax, xv);
            if (!isfinite(yv)) continue;
            ymin = fmin(ymin, yv), ymax = fmax(ymax, yv);
        }
    int have = ymin <= ymax, pad = 6 * ts, cy = y0 + pad;
    if (p->title) {
        draw_fitted(c, x0 + pad, cy, w - 2 * pad, p->title, ts + 1, INK);
        cy += 8 * (ts + 1) + 4 * ts;
    }
    /* legend: one centred row above the plot area */
    if (legend_entries(p) >= 2) {
        int lw = 0;
        for (int s = 0; s < p->nseries; s++)
            if (p->series[s].label && p->series[s].n > 0) lw += 14 * ts + ct_text_width(p->series[s].label, ts) + 8 * ts;
        int lx = x0 + (w - lw + 8 * ts) / 2;
        for (int s = 0; s < p->nseries; s++) {
            const ct_chart_series *sr = &p->series[s];
            if (!sr->label || sr->n <= 0) continue;
            draw_swatch(c, lx, cy + 7 * ts / 2, ts, sr);
            lx += 14 * ts;
            lx += ct_text_draw(c, lx, cy, sr->label, ts, INK) + 8 * ts;
        }
        cy += 8 * ts + 4 * ts;
    }
    frame f;
    /* 3% room above and below, so no point sits on the frame, but no negative
     * axis for data that are not (a learning rate decayed to 0) */
    double ypad = 0.03 * (ymax - ymin), ylo = ymin - ypad;
    if (ymin >= 0 && ylo < 0) ylo = 0;
    f.ay = have ? axis_make(ylo, ymax + ypad, 5, 1, 0) : axis_make(0, 1, 5, 1, 0);
    double xpad = 0.02 * (xmax - xmin);
    f.ax = have ? axis_make(xmin - xpad, xmax + xpad, 6, 0, p->x_integer) : axis_make(0, 1, 5, 0, 0);
    int ylabel_x = x0 + pad, left = ylabel_x + (p->ylabel ? 8 * ts + 4 * ts : 0) + tick_label_width(&f.ay, ts) + 5 * ts;
    f.x = left;
    f.y = cy + 4 * ts;
    f.w = x0 + w - pad - 4 * ts - f.x;
    f.h = y0 + h - pad - (p->xlabel ? 8 * ts + 4 * ts : 0) - 13 * ts - f.y;
    if (f.w < 10 || f.h < 10) return; /* panel too small to draw in */
    if (!have) {
        f.ay.step = f.ax.step = INFINITY; /* no ticks */
        draw_axes(c, &f, p->xlabel, p->ylabel, ts, ylabel_x);
        const char *msg = "no data";
        ct_text_draw(c, f.x + (f.w - ct_text_width(msg, ts + 1)) / 2, f.y + (f.h - 7 * (ts + 1)) / 2, msg, ts + 1, MUTED);
        return;
    }
    draw_axes(c, &f, p->xlabel, p->ylabel, ts, ylabel_x);
    for (int s = 0; s < p->nseries; s++) {
        const ct_chart_series *sr = &p->series[s];
        if (sr->style & CT_SERIES_LINE)
            for (int64_t i = 1; i < sr->n; i++) {
                double xa = sr->x[i - 1], ya = sr->y[i - 1], xb = sr->x[i], yb = sr->y[i];
                if (isfinite(xa) && isfinite(ya) && isfinite(xb) && isfinite(yb))
                    ct_canvas_line(c, px_x(&f, xa), px_y(&f, ya), px_x(&f, xb), px_y(&f, yb), 1.25 * ts, sr->color);
            }
        /* markers where asked, and for points no segment reaches */
        for (int64_t i = 0; i < sr->n; i++) {
            if (!isfinite(sr->x[i]) || !isfinite(sr->y[i])) continue;
            int alone = (i == 0 || !isfinite(sr->y[i - 1]) || !isfinite(sr->x[i - 1])) &&
                        (i + 1 == sr->n || !isfinite(sr->y[i + 1]) || !isfinite(sr->x[i + 1]));
            if ((sr->style & CT_SERIES_MARKERS) || alone)
                ct_canvas_disc(c, px_x(&f, sr->x[i]), px_y(&f, sr->y[i]), 2.0 * ts + 1, sr->color, 1.0f);
        }
    }
}

ct_status ct_plot_chart(ct_canvas *c, const char *title, const ct_chart_panel *panels, int npanels, int cols) {
    if (!c->rgb || npanels < 1 || cols < 1) return ct_error(CT_ERR_ARG, "plot: no canvas or no panels");
    int ts = text_scale(c), top = 0;
    if (title && *title) {
        top = 8 * ts + 8 * (ts + 1);
        draw_fitted(c, 6 * ts, 6 * ts, c->w - 12 * ts, title, ts + 1, INK);
    }
    int rows = (npanels + cols - 1) / cols;
    int pw = c->w / cols, ph = (c->h - top) / rows;
    if (pw < 120 || ph < 100) return ct_error(CT_ERR_ARG, "plot: a %dx%d canvas is too small for %d panels", c->w, c->h, npanels);
    for (int i = 0; i < npanels; i++) draw_panel(c, (i % cols) * pw, top + (i / cols) * ph, pw, ph, &panels[i], ts);
    return CT_OK;
}

/* ---- the training-curves figure ------------------------------------------------------ */
/* x and y of rows that have `key` (and, when positive_only, a value >= 0: the trainer
 * writes -1 for "not measured"), y scaled by `mul`. */
static int64_t column_series(const ct_metrics *m, const char *key, double mul, int positive_only, double *x,
                             double *y) {
    int col = ct_metrics_col(m, key), xc = ct_metrics_col(m, "epoch");
    int64_t n = 0;
    if (col < 0) return 0;
    for (int64_t r = 0; r < m->nrows; r++) {
        if (!ct_metrics_has(m, r, col)) continue;
        double v = ct_metrics_get(m, r, col);
        if (positive_only && v < 0) continue;
        x[n] = xc >= 0 ? ct_metrics_get(m, r, xc) : (double)(r + 1);
        y[n++] = v * mul;
    }
    return n;
}

ct_status ct_plot_metrics(ct_canvas *c, const ct_metrics *m, const char *title) {
    if (!c->rgb || c->w < 400 || c->h < 300) return ct_error(CT_ERR_ARG, "plot: the curves need a canvas of at least 400x300");
    int64_t n = m->nrows > 0 ? m->nrows : 1;
    double *buf = malloc((size_t)n * 10 * sizeof(double));
    if (!buf) return ct_error(CT_ERR_NOMEM, "plot: out of memory for %lld metric rows", (long long)n);
    double *xs[5], *ys[5];
    for (int k = 0; k < 5; k++) xs[k] = buf + (size_t)n * (2 * k), ys[k] = buf + (size_t)n * (2 * k + 1);
    int64_t nl = column_series(m, "loss", 1, 0, xs[0], ys[0]);
    int64_t nt = column_series(m, "top1", 100, 0, xs[1], ys[1]);
    int64_t nr = column_series(m, "lr", 1, 0, xs[2], ys[2]);
    int64_t nk = column_series(m, "knn_top1", 100, 1, xs[3], ys[3]);
    int64_t np = column_series(m, "probe_top1", 100, 1, xs[4], ys[4]);
    int few = 40; /* up to this many points, mark each one */
    int xint = 1; /* epochs, or line numbers without an "epoch" key */
    ct_chart_series s[5] = {
        {"loss", xs[0], ys[0], nl, ct_palette(0), CT_SERIES_LINE | (nl <= few ? CT_SERIES_MARKERS : 0)},
        {"top-1", xs[1], ys[1], nt, ct_palette(1), CT_SERIES_LINE | (nt <= few ? CT_SERIES_MARKERS : 0)},
        {"lr", xs[2], ys[2], nr, ct_palette(2), CT_SERIES_LINE | (nr <= few ? CT_SERIES_MARKERS : 0)},
        {"kNN monitor", xs[3], ys[3], nk, ct_palette(3), CT_SERIES_LINE | CT_SERIES_MARKERS},
        {"linear probe (final)", xs[4], ys[4], np, ct_palette(4), CT_SERIES_MARKERS},
    };
    ct_chart_panel p[4] = {
        {"Loss", "epoch", "loss", &s[0], 1, xint},
        {"Contrastive top-1", "epoch", "top-1 (%)", &s[1], 1, xint},
        {"Learning rate", "epoch", "learning rate", &s[2], 1, xint},
        {"kNN monitor", "epoch", "top-1 (%)", &s[3], 2, xint},
    };
    ct_status st = ct_plot_chart(c, title, p, 4, 2);
    free(buf);
    return st;
}

/* ---- scatter maps -------------------------------------------------------------------- */
typedef struct {
    uint64_t key;
    int64_t i;
} order_item;

static int order_cmp(const void *a, const void *b) {
    const order_item *p = a, *q = b;
    if (p->key != q->key) return p->key < q->key ? -1 : 1;
    return p->i < q->i ? -1 : p->i > q->i;
}

ct_status ct_plot_scatter(ct_canvas *c, const char *title, const char *xlabel, const char *ylabel, const float *xy,
                          const int32_t *labels, int64_t n, const char *const *names, int nclasses) {
    if (!c->rgb || c->w < 300 || c->h < 200) return ct_error(CT_ERR_ARG, "plot: a scatter map needs a canvas of at least 300x200");
    if (n < 1 || nclasses < 1 || !xy || !labels) return ct_error(CT_ERR_ARG, "plot: no points to draw (n %lld)", (long long)n);
    double xmin = INFINITY, xmax = -INFINITY, ymin = INFINITY, ymax = -INFINITY;
    for (int64_t i = 0; i < n; i++) {
        if (labels[i] < 0 || labels[i] >= nclasses)
            return ct_error(CT_ERR_ARG, "plot: label %d of point %lld is outside [0, %d)", labels[i], (long long)i, nclasses);
        if (!isfinite(xy[2 * i]) || !isfinite(xy[2 * i + 1]))
            return ct_error(CT_ERR_NUMERIC, "plot: point %lld is not finite", (long long)i);
        xmin = fmin(xmin, xy[2 * i]), xmax = fmax(xmax, xy[2 * i]);
        ymin = fmin(ymin, xy[2 * i + 1]), ymax = fmax(ymax, xy[2 * i + 1]);
    }
    int ts = text_scale(c), pad = 8 * ts, top = pad;
    if (title && *title) {
        draw_fitted(c, pad, pad, c->w - 2 * pad, title, ts + 1, INK);
        top += 8 * (ts + 1) + 8 * ts;
    }
    /* legend column on the right: as many rows as fit, the rest summarised */
    char num[16];
    int legend_w = 0, row_h = 12 * ts;
    for (int k = 0; k < nclasses; k++) {
        const char *nm = names && names[k] ? names[k] : (snprintf(num, sizeof num, "%d", k), num);
        int tw = ct_text_width(nm, ts);
        legend_w = tw > legend_w ? tw : legend_w;
    }
    legend_w += 14 * ts;
    if (legend_w > c->w / 3) legend_w = c->w / 3;
    /* data ranges with 3% margins, then one scale for both axes */
    double dx = xmax - xmin, dy = ymax - ymin;
    if (!(dx > 0)) dx = dy > 0 ? dy : 1;
    if (!(dy > 0)) dy = dx;
    double cxd = 0.5 * (xmin + xmax), cyd = 0.5 * (ymin + ymax);
    dx *= 1.06, dy *= 1.06;
    frame f;
    axis ay0 = axis_make(cyd - dy / 2, cyd + dy / 2, 6, 0, 0);
    int ylabel_x = pad, left = ylabel_x + 12 * ts + tick_label_width(&ay0, ts) + 6 * ts;
    int right = c->w - pad - legend_w - 10 * ts, bottom = c->h - pad - 8 * ts - 4 * ts - 14 * ts;
    int aw = right - left, ah = bottom - top;
    if (aw < 50 || ah < 50) return ct_error(CT_ERR_ARG, "plot: the canvas is too small for the map and its legend");
    /* pixels per unit, the same on both axes; the frame spans the space, the data
     * sit centred in it */
    double scale = fmin(aw / dx, ah / dy);
    f.w = aw;
    f.h = ah;
    f.x = left;
    f.y = top;
    f.ax = axis_make(cxd - aw / scale / 2, cxd + aw / scale / 2, 6, 0, 0);
    f.ay = axis_make(cyd - ah / scale / 2, cyd + ah / scale / 2, 6, 0, 0);
    /* one step for both axes, so equal distances look equal */
    double step = fmax(f.ax.step, f.ay.step);
    f.ax.step = f.ay.step = step;
    axis_decimals(&f.ax);
    axis_decimals(&f.ay);
    draw_axes(c, &f, xlabel, ylabel, ts, ylabel_x);
    /* points in a fixed pseudo-random order */
    order_item *ord = malloc((size_t)n * sizeof *ord);
    if (!ord) return ct_error(CT_ERR_NOMEM, "plot: out of memory for %lld points", (long long)n);
    for (int64_t i = 0; i < n; i++) ord[i].key = ct_mix64((uint64_t)i * 0x9e3779b97f4a7c15ull + 1), ord[i].i = i;
    qsort(ord, (size_t)n, sizeof *ord, order_cmp);
    double area = (double)f.w * f.h, r = 0.28 * sqrt(area / (double)n);
    r = r < 1.2 ? 1.2 : r > 4.0 * ts ? 4.0 * ts : r;
    float alpha = n > 20000 ? 0.55f : 1.0f;
    for (int64_t k = 0; k < n; k++) {
        int64_t i = ord[k].i;
        ct_canvas_disc(c, px_x(&f, xy[2 * i]), px_y(&f, xy[2 * i + 1]), r, ct_palette(labels[i]), alpha);
    }
    free(ord);
    /* redraw the frame over points that touch it */
    ct_canvas_fill_rect(c, f.x, f.y, f.w + 1, 1, FRAME);
    ct_canvas_fill_rect(c, f.x, f.y + f.h, f.w + 1, 1, FRAME);
    ct_canvas_fill_rect(c, f.x, f.y, 1, f.h + 1, FRAME);
    ct_canvas_fill_rect(c, f.x + f.w, f.y, 1, f.h + 1, FRAME);
    /* legend */
    int lx = f.x + f.w + 10 * ts, ly = f.y, maxrows = f.h / row_h;
    for (int k = 0; k < nclasses; k++) {
        if (k == maxrows - 1 && nclasses > maxrows) {
            char more[48];
            snprintf(more, sizeof more, "+%d more", nclasses - k);
            ct_text_draw(c, lx, ly + k * row_h, more, ts, MUTED);
            break;
        }
        const char *nm = names && names[k] ? names[k] : (snprintf(num, sizeof num, "%d", k), num);
        ct_canvas_disc(c, lx + 4 * ts, ly + k * row_h + 3.5 * ts, 3.5 * ts, ct_palette(k), 1.0f);
        ct_text_draw(c, lx + 11 * ts, ly + k * row_h, nm, ts, INK);
    }
    return CT_OK;
}
