/* canvas.c: an RGB image in memory with the few primitives figures need:
 * rectangles, anti-aliased lines (Xiaolin Wu for hairlines, coverage of a
 * round-capped stroke for wider ones), discs with their edge coverage rounded to
 * half steps (smooth enough, and few distinct colours for the PNG), alpha blending, and
 * PNG output through the project's writer (src/io/png.c). */
#include "contrast/plot.h"
#include "contrast/data.h"

#include <math.h>
#include <string.h>

ct_status ct_canvas_init(ct_canvas *c, int w, int h, uint32_t background) {
    memset(c, 0, sizeof *c);
    if (w < 1 || h < 1 || w > 16384 || h > 16384)
        return ct_error(CT_ERR_ARG, "canvas: size %dx%d outside 1..16384", w, h);
    c->rgb = ct_alloc((size_t)w * (size_t)h * 3);
    if (!c->rgb) return CT_ERR_NOMEM;
    c->w = w;
    c->h = h;
    ct_canvas_fill_rect(c, 0, 0, w, h, background);
    return CT_OK;
}

void ct_canvas_free(ct_canvas *c) {
    ct_free(c->rgb);
    memset(c, 0, sizeof *c);
}

uint32_t ct_canvas_get(const ct_canvas *c, int x, int y) {
    if (x < 0 || y < 0 || x >= c->w || y >= c->h) return 0;
    const uint8_t *p = c->rgb + ((size_t)y * (size_t)c->w + (size_t)x) * 3;
    return (uint32_t)p[0] << 16 | (uint32_t)p[1] << 8 | p[2];
}

void ct_canvas_blend(ct_canvas *c, int x, int y, uint32_t color, float alpha) {
    if (x < 0 || y < 0 || x >= c->w || y >= c->h || !(alpha > 0)) return;
    if (alpha > 1) alpha = 1;
    uint8_t *p = c->rgb + ((size_t)y * (size_t)c->w + (size_t)x) * 3;
    for (int k = 0; k < 3; k++) {
        float src = (float)((color >> (16 - 8 * k)) & 0xff);
        p[k] = (uint8_t)lrintf(p[k] + alpha * (src - p[k]));
    }
}

void ct_canvas_fill_rect(ct_canvas *c, int x, int y, int w, int h, uint32_t color) {
    int x0 = x < 0 ? 0 : x, y0 = y < 0 ? 0 : y;
    int x1 = x + w > c->w ? c->w : x + w, y1 = y + h > c->h ? c->h : y + h;
    for (int j = y0; j < y1; j++)
        for (int i = x0; i < x1; i++) {
            uint8_t *p = c->rgb + ((size_t)j * (size_t)c->w + (size_t)i) * 3;
            p[0] = (uint8_t)(color >> 16);
            p[1] = (uint8_t)(color >> 8);
            p[2] = (uint8_t)color;
        }
}

/* Xiaolin Wu's line: along the major axis one step per pixel, the two pixels
 * straddling the exact line share the ink by distance. Coordinates here have
 * pixel centres at integers. */
static void plot_wu(ct_canvas *c, int steep, int a, int b, uint32_t color, double ink) {
    if (steep) ct_canvas_blend(c, b, a, color, (float)ink);
    else ct_canvas_blend(c, a, b, color, (float)ink);
}

static void line_wu(ct_canvas *c, double x0, double y0, double x1, double y1, uint32_t color) {
    int steep = fabs(y1 - y0) > fabs(x1 - x0);
    double t;
    if (steep) {
        t = x0, x0 = y0, y0 = t;
        t = x1, x1 = y1, y1 = t;
    }
    if (x0 > x1) {
        t = x0, x0 = x1, x1 = t;
        t = y0, y0 = y1, y1 = t;
    }
    double dx = x1 - x0, grad = dx > 0 ? (y1 - y0) / dx : 0.0;
    /* end points: the ink of the pixel column they fall in, weighted by how much of
     * that column the segment covers */
    double xe = floor(x0 + 0.5), ye = y0 + grad * (xe - x0), gap = 1.0 - (x0 + 0.5 - xe);
    int xa = (int)xe;
    plot_wu(c, steep, xa, (int)floor(ye), color, (1.0 - (ye - floor(ye))) * gap);
    plot_wu(c, steep, xa, (int)floor(ye) + 1, color, (ye - floor(ye)) * gap);
    double inter = ye + grad;
    xe = floor(x1 + 0.5);
    double ye2 = y1 + grad * (xe - x1);
    gap = x1 + 0.5 - xe;
    int xb = (int)xe;
    if (xb != xa) {
        plot_wu(c, steep, xb, (int)floor(ye2), color, (1.0 - (ye2 - floor(ye2))) * gap);
        plot_wu(c, steep, xb, (int)floor(ye2) + 1, color, (ye2 - floor(ye2)) * gap);
    }
    for (int x = xa + 1; x < xb; x++, inter += grad) {
        double f = inter - floor(inter);
        plot_wu(c, steep, x, (int)floor(inter), color, 1.0 - f);
        plot_wu(c, steep, x, (int)floor(inter) + 1, color, f);
    }
}

void ct_canvas_line(ct_canvas *c, double x0, double y0, double x1, double y1, double width, uint32_t color) {
    if (!isfinite(x0) || !isfinite(y0) || !isfinite(x1) || !isfinite(y1) || !(width > 0)) return;
    /* far outside: nothing to draw (and no huge loops over off-canvas pixels) */
    double lim = 4.0 * (c->w + c->h);
    if (fabs(x0) > lim || fabs(x1) > lim || fabs(y0) > lim || fabs(y1) > lim) return;
    if (width <= 1.0) {
        line_wu(c, x0 - 0.5, y0 - 0.5, x1 - 0.5, y1 - 0.5, color);
        return;
    }
    /* coverage of a capsule: each pixel centre's distance to the segment */
    double r = 0.5 * width, dx = x1 - x0, dy = y1 - y0, len2 = dx * dx + dy * dy;
    int ia = (int)floor(fmin(x0, x1) - r - 1), ib = (int)ceil(fmax(x0, x1) + r + 1);
    int ja = (int)floor(fmin(y0, y1) - r - 1), jb = (int)ceil(fmax(y0, y1) + r + 1);
    if (ia < 0) ia = 0;
    if (ja < 0) ja = 0;
    if (ib > c->w - 1) ib = c->w - 1;
    if (jb > c->h - 1) jb = c->h - 1;
    for (int j = ja; j <= jb; j++)
        for (int i = ia; i <= ib; i++) {
            double px = i + 0.5 - x0, py = j + 0.5 - y0;
            double t = len2 > 0 ? (px * dx + py * dy) / len2 : 0.0;
            t = t < 0 ? 0 : t > 1 ? 1 : t;
            double ex = px - t * dx, ey = py - t * dy;
            double cov = r + 0.5 - sqrt(ex * ex + ey * ey);
            if (cov > 0) ct_canvas_blend(c, i, j, color, (float)(cov > 1 ? 1 : cov));
        }
}

void ct_canvas_disc(ct_canvas *c, double cx, double cy, double r, uint32_t color, float alpha) {
    if (!isfinite(cx) || !isfinite(cy) || !(r > 0) || !(alpha > 0)) return;
    if (cx < -r - 1 || cy < -r - 1 || cx > c->w + r + 1 || cy > c->h + r + 1) return;
    int ia = (int)floor(cx - r - 1), ib = (int)ceil(cx + r + 1);
    int ja = (int)floor(cy - r - 1), jb = (int)ceil(cy + r + 1);
    for (int j = ja; j <= jb; j++)
        for (int i = ia; i <= ib; i++) {
            double ex = i + 0.5 - cx, ey = j + 0.5 - cy;
            double cov = r + 0.5 - sqrt(ex * ex + ey * ey);
            cov = floor(cov * 2 + 0.5) / 2; /* half steps: a map of 5,000 discs compresses to 130 KB, not 300 */
            if (cov > 0) ct_canvas_blend(c, i, j, color, alpha * (float)(cov > 1 ? 1 : cov));
        }
}

ct_status ct_canvas_write_png(const ct_canvas *c, const char *path) {
    if (!c->rgb) return ct_error(CT_ERR_ARG, "%s: no canvas to write", path);
    return ct_png_write(path, c->rgb, c->w, c->h, 3);
}

uint32_t ct_palette(int i) {
    /* Tableau 10 (Maureen Stone's palette, matplotlib's default colours since 2.0) */
    static const uint32_t tab10[10] = {0x1f77b4, 0xff7f0e, 0x2ca02c, 0xd62728, 0x9467bd,
                                       0x8c564b, 0xe377c2, 0x7f7f7f, 0xbcbd22, 0x17becf};
    if (i < 0) i = -i;
    if (i < 10) return tab10[i];
    /* then hues by the golden angle at two lightness levels, from HSV */
    double hdeg = fmod((i - 10) * 137.50776, 360.0), s = 0.65, v = (i & 1) ? 0.75 : 0.55;
    double hh = hdeg / 60.0, f = hh - floor(hh);
    double p = v * (1 - s), q = v * (1 - s * f), t = v * (1 - s * (1 - f)), r, g, b;
    switch ((int)hh % 6) {
    case 0: r = v, g = t, b = p; break;
    case 1: r = q, g = v, b = p; break;
    case 2: r = p, g = v, b = t; break;
    case 3: r = p, g = q, b = v; break;
    case 4: r = t, g = p, b = v; break;
    default: r = v, g = p, b = q; break;
    }
    return (uint32_t)lrint(r * 255) << 16 | (uint32_t)lrint(g * 255) << 8 | (uint32_t)lrint(b * 255);
}
