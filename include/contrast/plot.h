/* contrast/plot.h: figures without a plotting library: an RGB canvas, a built-in
 * bitmap font, line charts of a run's metrics.jsonl, scatter maps of embeddings,
 * and the 2-D layouts (PCA, t-SNE) that place a feature matrix on such a map.
 *
 *   ct_canvas_*        an 8-bit RGB image in memory: rectangles, anti-aliased lines
 *                      and discs (alpha-blended), PNG output through ct_png_write
 *   ct_text_*          a 5x7 bitmap font (ASCII 32..126, 5x8 cells with a descender
 *                      row), drawn at integer scales, horizontally or rotated upward
 *   ct_metrics_*       reads metrics.jsonl (one flat JSON object per line) into columns
 *   ct_plot_metrics    the training-curves figure: loss, contrastive top-1, learning
 *                      rate and the kNN monitor over epochs
 *   ct_plot_chart      line charts in a grid of panels (the building block above)
 *   ct_plot_scatter    a 2-D map of labelled points with a legend
 *   ct_plot_contact_sheet  search results as a grid of enlarged images with rank,
 *                      score and name (src/plot/sheet.c)
 *   ct_layout_pca      projection on the top principal components (deterministic signs)
 *   ct_layout_tsne     Barnes-Hut t-SNE (van der Maaten 2014), deterministic at any
 *                      thread count
 *
 * Colours are 0xRRGGBB. Coordinates are pixels, x to the right, y downwards, (0, 0)
 * the top-left corner; drawing outside the canvas is clipped, never an error.
 */
#ifndef CONTRAST_PLOT_H
#define CONTRAST_PLOT_H
#include "contrast/core.h"

#ifdef __cplusplus
extern "C" {
#endif
CT_BEGIN_API

/* ---- canvas --------------------------------------------------------------------- */
typedef struct {
    int w, h;
    uint8_t *rgb;  /* (h, w, 3), row-major, owned */
} ct_canvas;

/* Allocates a w x h canvas filled with `background`; 1 <= w, h <= 16384. */
ct_status ct_canvas_init(ct_canvas *c, int w, int h, uint32_t background);
void ct_canvas_free(ct_canvas *c);
/* Pixel (x, y) as 0xRRGGBB (0 outside the canvas). */
uint32_t ct_canvas_get(const ct_canvas *c, int x, int y);
/* Blends `color` over pixel (x, y) with opacity alpha in [0, 1]. */
void ct_canvas_blend(ct_canvas *c, int x, int y, uint32_t color, float alpha);
/* Opaque rectangle [x, x + w) x [y, y + h). */
void ct_canvas_fill_rect(ct_canvas *c, int x, int y, int w, int h, uint32_t color);
/* A segment from (x0, y0) to (x1, y1) (pixel centres at integer + 0.5). width <= 1:
 * a one-pixel Xiaolin Wu line; wider: a round-capped stroke of that width whose
 * edge pixels get their covered fraction. */
void ct_canvas_line(ct_canvas *c, double x0, double y0, double x1, double y1, double width, uint32_t color);
/* A filled disc of radius r centred at (cx, cy) at opacity alpha; edge pixels get
 * their covered fraction rounded to a half (0, 0.5 or 1). */
void ct_canvas_disc(ct_canvas *c, double cx, double cy, double r, uint32_t color, float alpha);
/* Writes the canvas as an RGB PNG (atomically, see ct_png_write). */
ct_status ct_canvas_write_png(const ct_canvas *c, const char *path);

/* ---- text --------------------------------------------------------------------------- */
/* Glyphs are 5 x 7 pixels (lower-case descenders use an 8th row) in 6 x 8 cells:
 * a string is 6 * scale * strlen - scale pixels wide and 8 * scale tall. Characters
 * outside 32..126 draw as '?'. */
#define CT_FONT_CELL_W 6
#define CT_FONT_CELL_H 8
/* 1 when pixel (col, row) of ch's glyph is set; col in [0, 5), row in [0, 8). */
int ct_font_pixel(int ch, int col, int row);
/* Width in pixels of s drawn at `scale` (0 for ""). */
int ct_text_width(const char *s, int scale);
/* Draws s with its cell's top-left corner at (x, y); returns the width drawn. */
int ct_text_draw(ct_canvas *c, int x, int y, const char *s, int scale, uint32_t color);
/* Draws s rotated 90 degrees counter-clockwise, reading upwards, its box's
 * bottom-left corner at (x, y): the box is 8 * scale wide and
 * ct_text_width(s, scale) tall. */
void ct_text_draw_up(ct_canvas *c, int x, int y, const char *s, int scale, uint32_t color);

/* The i-th colour of a palette whose first ten are well-separated hues (those of
 * Tableau 10); from the 11th on, hues step by the golden angle. */
uint32_t ct_palette(int i);

/* ---- line charts ------------------------------------------------------------------ */
enum { CT_SERIES_LINE = 1, CT_SERIES_MARKERS = 2 };
typedef struct {
    const char *label;   /* legend text; NULL: not in the legend */
    const double *x;     /* (n) */
    const double *y;     /* (n); a non-finite x or y leaves a gap in the line */
    int64_t n;
    uint32_t color;
    int style;           /* CT_SERIES_LINE | CT_SERIES_MARKERS */
} ct_chart_series;

typedef struct {
    const char *title;
    const char *xlabel;
    const char *ylabel;
    const ct_chart_series *series;
    int nseries;
    int x_integer;       /* x ticks at whole numbers only (epochs) */
} ct_chart_panel;

/* Draws `npanels` panels in a grid of `cols` columns below an optional figure
 * title (NULL: none), filling the canvas. Each panel has a title, axes with
 * ticks at 1-2-5 steps, axis labels and, when more than one series is labelled, a
 * legend above the plot area. A panel without a finite point says "no data". */
ct_status ct_plot_chart(ct_canvas *c, const char *title, const ct_chart_panel *panels, int npanels, int cols);

/* ---- metrics.jsonl ----------------------------------------------------------------- */
#define CT_METRICS_MAX_COLS 64
#define CT_METRICS_MAX_KEY 64
typedef struct {
    int64_t nrows;                                   /* non-blank lines            */
    int ncols;                                       /* distinct keys, file order  */
    char names[CT_METRICS_MAX_COLS][CT_METRICS_MAX_KEY];
    double *v;      /* (nrows, CT_METRICS_MAX_COLS): numbers; true 1, false 0; NaN for null,
                     * strings, arrays, objects and where the line lacks the key */
    uint64_t *has;  /* (nrows): bit k set when the line has key k (a NaN can be a value) */
} ct_metrics;

/* Reads a file of one flat JSON object per line, as contrast train writes
 * (numbers may also be nan, inf, -nan, as printf writes them). Blank lines are
 * skipped. A line that is not such an object fails with "path:line: problem";
 * an empty file or one of blank lines only fails with a message saying so. */
ct_status ct_metrics_read(ct_metrics *m, const char *path);
/* Column index of `key`, -1 when no line has it. */
int ct_metrics_col(const ct_metrics *m, const char *key);
/* Value of row r, column col (NaN when col < 0). */
double ct_metrics_get(const ct_metrics *m, int64_t r, int col);
/* 1 when line r has key col. */
int ct_metrics_has(const ct_metrics *m, int64_t r, int col);
void ct_metrics_free(ct_metrics *m);

/* The training-curves figure of a run (2 x 2 panels): loss, contrastive top-1 (%),
 * learning rate, and kNN top-1 (%) of the monitor with the final linear probe, all
 * over epochs ("epoch" column; the line number without one). Keys absent from
 * the file give a "no data" panel. `title` may be NULL. Canvas at least 400 x 300. */
ct_status ct_plot_metrics(ct_canvas *c, const ct_metrics *m, const char *title);

/* A scatter map: xy (n, 2) coloured by labels (n) in [0, nclasses), ct_palette
 * colours, legend to the right of the plot area (outside it, so it covers no
 * point) naming each class by names[k] (NULL: the number k). Both axes share one
 * scale (distances on the map are as in the layout). Points are drawn in a fixed
 * pseudo-random order so no class hides the others systematically. */
ct_status ct_plot_scatter(ct_canvas *c, const char *title, const char *xlabel, const char *ylabel, const float *xy,
                          const int32_t *labels, int64_t n, const char *const *names, int nclasses);

/* ---- contact sheet (src/plot/sheet.c) ---------------------------------------------- */
/* Allocates c (free with ct_canvas_free) and draws k results in a grid of `cols`
 * columns (fewer when k < cols) under an optional title (NULL or "": none). Result j
 * is image idx[j] of images (n, ch, size, size) planar uint8, ch 1 (gray) or 3 (RGB),
 * enlarged by nearest neighbour to tile x tile pixels (8..1024) in a hairline frame;
 * beneath it "#<j+1> <scores[j]>" (3 decimals; the rank alone when scores is NULL)
 * and, when names is not NULL, names[j] (the result's, not the image's index), both
 * in the 5x7 font at scale 1, non-ASCII characters as '?', cut with ".." to the
 * tile's width. White background. CT_ERR_ARG for an idx outside [0, n) or a sheet
 * over 16384 pixels on a side. */
ct_status ct_plot_contact_sheet(ct_canvas *c, const char *title, const uint8_t *images, int64_t n, int ch, int size,
                                const int64_t *idx, const float *scores, const char *const *names, int64_t k,
                                int tile, int cols);

/* ---- 2-D layouts (src/eval/layout.c) ----------------------------------------------- */
/* Principal components: Y (n, k) = (X - mean) V_k, V_k the top-k eigenvectors of
 * the covariance (divided by n), computed in double by LAPACK. Signs are fixed:
 * each component's entry of largest magnitude (lowest index on ties) is positive.
 * explained (k), if not NULL, receives the fractions of the total variance.
 *   X: (n, d), n >= 2, 1 <= k <= d <= 16384. Memory O(d^2 + n k). Deterministic. */
ct_status ct_layout_pca(float *Y, double *explained, const float *X, int64_t n, int64_t d, int k);

typedef struct {
    double perplexity;     /* effective neighbours of the input affinities     default 30    */
    int iters;             /* gradient steps                                   default 750   */
    int exag_iters;        /* first steps with exaggerated attraction          default 250   */
    double exaggeration;   /* factor on the attraction during those            default 12    */
    double theta;          /* Barnes-Hut accuracy, 0 exact, at most 0.7        default 0.5   */
    double learning_rate;  /* <= 0: max(200, n / 12) (Belkina et al. 2019)      default 0     */
    int pca_dims;          /* reduce X to this many principal components first  default 50    */
} ct_tsne_config;

void ct_tsne_config_default(ct_tsne_config *cfg);
/* t-SNE of X (n, d) into Y (n, 2), n >= 4, d >= 2. Input affinities from the exact
 * 3 * perplexity nearest neighbours (Euclidean, after the PCA reduction), the
 * layout initialised from the first two principal components (scaled to a
 * standard deviation of 1e-4), then gradient descent with momentum and gains,
 * the repulsion by a Barnes-Hut quadtree. No randomness: the result is a function
 * of X and cfg alone, the same bits at any thread count (every point's forces are
 * summed in a fixed order; sums over points run serially). Cost O(n^2 d') for the
 * neighbours (in blocks, memory O(n k)) and O(n log n) per step.
 * cfg NULL: the defaults. The output is centred. */
ct_status ct_layout_tsne(float *Y, const float *X, int64_t n, int64_t d, const ct_tsne_config *cfg);

/* m distinct indices out of [0, n), ascending, drawn uniformly from `seed`
 * (m <= n; m == n gives 0..n-1). idx: (m). */
ct_status ct_subsample(int64_t *idx, int64_t n, int64_t m, uint64_t seed);

CT_END_API
#ifdef __cplusplus
}
#endif
#endif
