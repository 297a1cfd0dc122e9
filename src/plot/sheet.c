/* sheet.c: a contact sheet of search results: the top images in a grid, each
 * enlarged (nearest neighbour, so small images stay crisp pixel art) to a readable
 * tile, with its rank, score and name beneath, in the built-in font. */
#include "contrast/plot.h"

#include <stdio.h>
#include <string.h>

#define MARGIN 8
#define GAP 8
#define LINE_H 10 /* one text line at scale 1 (8 px) and 2 px of leading */

/* s as ASCII for the font: each UTF-8 sequence (or stray byte >= 0x80) becomes one
 * '?'; then cut to `max` characters, the last two replaced by ".." when cut. */
static void label_ascii(char *out, size_t cap, const char *s, int max) {
    size_t n = 0;
    for (const unsigned char *p = (const unsigned char *)s; *p && n + 1 < cap;) {
        if (*p < 0x80) {
            out[n++] = (char)*p++;
        } else {
            out[n++] = '?';
            p++;
            while ((*p & 0xC0) == 0x80) p++;
        }
    }
    out[n] = '\0';
    if (max < 1) max = 1;
    if ((int)n > max) {
        if (max >= 3) {
            out[max - 2] = '.';
            out[max - 1] = '.';
        }
        out[max] = '\0';
    }
}

ct_status ct_plot_contact_sheet(ct_canvas *c, const char *title, const uint8_t *images, int64_t n, int ch, int size,
                                const int64_t *idx, const float *scores, const char *const *names, int64_t k,
                                int tile, int cols) {
    memset(c, 0, sizeof *c);
    if (n < 1 || k < 1 || (ch != 1 && ch != 3) || size < 1 || tile < 8 || tile > 1024 || cols < 1)
        return ct_error(CT_ERR_ARG, "contact sheet: n=%lld, k=%lld, channels %d, size %d, tile %d (8..1024), cols %d",
                        (long long)n, (long long)k, ch, size, tile, cols);
    for (int64_t j = 0; j < k; j++)
        if (idx[j] < 0 || idx[j] >= n)
            return ct_error(CT_ERR_ARG, "contact sheet: result %lld names image %lld outside [0, %lld)",
                            (long long)j, (long long)idx[j], (long long)n);
    if (cols > k) cols = (int)k;
    const int64_t rows = (k + cols - 1) / cols;
    const int nlines = 1 + (names != NULL);
    const int title_h = title && *title ? 2 * CT_FONT_CELL_H + GAP : 0;
    const int cell_w = tile, cell_h = tile + 4 + nlines * LINE_H;
    const int64_t W = 2 * MARGIN + (int64_t)cols * cell_w + (int64_t)(cols - 1) * GAP;
    const int64_t H = 2 * MARGIN + title_h + rows * cell_h + (rows - 1) * GAP;
    if (W > 16384 || H > 16384)
        return ct_error(CT_ERR_ARG, "contact sheet: %lld x %lld pixels for %lld images of %d px, over 16384",
                        (long long)W, (long long)H, (long long)k, tile);
    ct_status st = ct_canvas_init(c, (int)W, (int)H, 0xffffff);
    if (st) return st;
    if (title_h) {
        char t[512];
        label_ascii(t, sizeof t, title, (int)((W - 2 * MARGIN + 2) / (2 * CT_FONT_CELL_W)));
        ct_text_draw(c, MARGIN, MARGIN, t, 2, 0x202020);
    }
    const size_t plane = (size_t)size * (size_t)size;
    const int maxch = (tile + 1) / CT_FONT_CELL_W;
    for (int64_t j = 0; j < k; j++) {
        const int x0 = MARGIN + (int)(j % cols) * (cell_w + GAP);
        const int y0 = MARGIN + title_h + (int)(j / cols) * (cell_h + GAP);
        const uint8_t *im = images + (size_t)idx[j] * (size_t)ch * plane;
        for (int y = 0; y < tile; y++) {
            const size_t sy = (size_t)y * (size_t)size / (size_t)tile;
            for (int x = 0; x < tile; x++) {
                const size_t sx = (size_t)x * (size_t)size / (size_t)tile, o = sy * (size_t)size + sx;
                uint8_t *p = c->rgb + ((size_t)(y0 + y) * (size_t)c->w + (size_t)(x0 + x)) * 3;
                for (int q = 0; q < 3; q++) p[q] = im[(ch == 3 ? (size_t)q * plane : 0) + o];
            }
        }
        /* a hairline frame, so white images on the white page keep their edge */
        ct_canvas_fill_rect(c, x0 - 1, y0 - 1, tile + 2, 1, 0xc8c8c8);
        ct_canvas_fill_rect(c, x0 - 1, y0 + tile, tile + 2, 1, 0xc8c8c8);
        ct_canvas_fill_rect(c, x0 - 1, y0, 1, tile, 0xc8c8c8);
        ct_canvas_fill_rect(c, x0 + tile, y0, 1, tile, 0xc8c8c8);
        char line[256], cut[256];
        if (scores) snprintf(line, sizeof line, "#%lld %.3f", (long long)(j + 1), (double)scores[j]);
        else snprintf(line, sizeof line, "#%lld", (long long)(j + 1));
        label_ascii(cut, sizeof cut, line, maxch);
        ct_text_draw(c, x0, y0 + tile + 4, cut, 1, 0x202020);
        if (names) {
            label_ascii(cut, sizeof cut, names[j] ? names[j] : "", maxch);
            ct_text_draw(c, x0, y0 + tile + 4 + LINE_H, cut, 1, 0x505050);
        }
    }
    return CT_OK;
}
