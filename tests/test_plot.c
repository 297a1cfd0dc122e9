/* test_plot.c: figures and layouts: the font's glyph pixels, lines and discs, the
 * metrics.jsonl reader (good, malformed, empty, missing), charts and maps drawing
 * into PNGs of the right size, PCA against known answers, t-SNE separating clusters
 * and giving the same bits at 1 and 2 threads, and `contrast plot`'s errors. */
#include "harness.h"

#include <sys/wait.h>

static char tmpdir[256];

#define BG 0xffffffu

static int count_not(const ct_canvas *c, uint32_t bg) {
    int n = 0;
    for (int y = 0; y < c->h; y++)
        for (int x = 0; x < c->w; x++) n += ct_canvas_get(c, x, y) != bg;
    return n;
}

static void test_font(void) {
    /* 'A' is .###. / #...# / #...# / ##### / #...# / #...# / #...# */
    CHECK(!ct_font_pixel('A', 0, 0) && ct_font_pixel('A', 1, 0) && ct_font_pixel('A', 3, 0) && !ct_font_pixel('A', 4, 0),
          "'A' top row is .###.");
    int row3 = 0;
    for (int col = 0; col < 5; col++) row3 += ct_font_pixel('A', col, 3);
    CHECK(row3 == 5, "'A' crossbar is 5 pixels (got %d)", row3);
    CHECK(ct_font_pixel('1', 2, 6) && ct_font_pixel('1', 1, 1) && !ct_font_pixel('1', 0, 0), "'1' has its flag and stem");
    CHECK(ct_font_pixel('g', 1, 7) && !ct_font_pixel('A', 1, 7), "'g' has a descender, 'A' none");
    int blank = 0;
    for (int r = 0; r < 8; r++)
        for (int col = 0; col < 5; col++) blank += ct_font_pixel(' ', col, r);
    CHECK(blank == 0, "space is blank");
    for (int col = 0; col < 5; col++)
        for (int r = 0; r < 8; r++)
            CHECK(ct_font_pixel(1, col, r) == ct_font_pixel('?', col, r), "a control character draws as '?'");
    /* every printable glyph but the space has ink, in its 5 x 8 box */
    int empty = 0;
    for (int ch = 33; ch < 127; ch++) {
        int ink = 0;
        for (int r = 0; r < 8; r++)
            for (int col = 0; col < 5; col++) ink += ct_font_pixel(ch, col, r);
        empty += ink == 0;
    }
    CHECK(empty == 0, "%d glyphs without ink", empty);
    CHECK(ct_text_width("", 2) == 0 && ct_text_width("AB", 1) == 11 && ct_text_width("AB", 2) == 22, "text widths");
    /* drawn at scale 2: each glyph pixel is a 2 x 2 block */
    ct_canvas c;
    CHECK_OK(ct_canvas_init(&c, 40, 30, BG));
    ct_text_draw(&c, 3, 4, "A", 2, 0x000000);
    CHECK(ct_canvas_get(&c, 3 + 2, 4) == 0 && ct_canvas_get(&c, 3 + 3, 5) == 0, "'A' (1, 0) is the block at (5..6, 4..5)");
    CHECK(ct_canvas_get(&c, 3, 4) == BG && ct_canvas_get(&c, 4, 5) == BG, "'A' (0, 0) stays paper");
    CHECK(ct_canvas_get(&c, 3, 4 + 6) == 0 && ct_canvas_get(&c, 3 + 9, 4 + 7) == 0, "crossbar row 3 from x 3 to 12");
    CHECK(count_not(&c, BG) == 4 * 18, "'A' has 18 pixels, 72 at scale 2 (got %d)", count_not(&c, BG));
    /* rotated: the same ink count; 'A''s crossbar (row 3) becomes a column at x + 3 */
    ct_canvas_fill_rect(&c, 0, 0, 40, 30, BG);
    ct_text_draw_up(&c, 10, 20, "A", 1, 0x000000);
    CHECK(count_not(&c, BG) == 18, "rotated 'A' has 18 pixels (got %d)", count_not(&c, BG));
    int col3 = 0;
    for (int y = 0; y < 30; y++) col3 += ct_canvas_get(&c, 13, y) == 0;
    CHECK(col3 == 5, "rotated crossbar is a 5-pixel column (got %d)", col3);
    ct_canvas_free(&c);
}

static void test_canvas(void) {
    ct_canvas c;
    CHECK(ct_canvas_init(&c, 0, 10, BG) == CT_ERR_ARG, "a 0-wide canvas is refused");
    CHECK_OK(ct_canvas_init(&c, 64, 48, BG));
    /* a horizontal hairline along pixel row 5, from the centre of pixel 2 to that of
     * pixel 20: the end pixels are half covered */
    ct_canvas_line(&c, 2.5, 5.5, 20.5, 5.5, 1, 0xff0000);
    int full = 1;
    for (int x = 3; x <= 19; x++) full &= ct_canvas_get(&c, x, 5) == 0xff0000;
    CHECK(full, "hairline covers row 5 from x 3 to 19");
    CHECK(ct_canvas_get(&c, 2, 5) == 0xff8080 && ct_canvas_get(&c, 20, 5) == 0xff8080, "end pixels half inked (%06x, %06x)",
          ct_canvas_get(&c, 2, 5), ct_canvas_get(&c, 20, 5));
    CHECK(ct_canvas_get(&c, 10, 4) == BG && ct_canvas_get(&c, 10, 6) == BG && ct_canvas_get(&c, 22, 5) == BG,
          "nothing beside or past it");
    /* a 45-degree hairline through pixel centres: full ink on the diagonal */
    ct_canvas_line(&c, 30.5, 10.5, 40.5, 20.5, 1, 0x0000ff);
    int diag = 1;
    for (int k = 1; k < 10; k++) diag &= ct_canvas_get(&c, 30 + k, 10 + k) == 0x0000ff;
    CHECK(diag, "diagonal hairline on the diagonal pixels");
    /* a thick line: 5 wide around row 30 */
    ct_canvas_line(&c, 5, 30.5, 25, 30.5, 5, 0x00ff00);
    CHECK(ct_canvas_get(&c, 15, 28) == 0x00ff00 && ct_canvas_get(&c, 15, 32) == 0x00ff00 &&
              ct_canvas_get(&c, 15, 34) == BG && ct_canvas_get(&c, 15, 26) == BG,
          "5-pixel stroke covers rows 28..32");
    /* disc: opaque centre, untouched outside, partial edge */
    ct_canvas_disc(&c, 50, 38, 4, 0x000000, 1.0f);
    CHECK(ct_canvas_get(&c, 49, 37) == 0 && ct_canvas_get(&c, 50, 44) == BG, "disc centre inked, outside paper");
    /* pixel (53, 39)'s centre lies 3.81 from the centre: covered 0.69, rounded to a half */
    uint32_t edge = ct_canvas_get(&c, 53, 39);
    CHECK(edge == 0x808080, "disc edge half inked (0x%06x)", edge);
    /* half-transparent red over white */
    ct_canvas_blend(&c, 0, 0, 0xff0000, 0.5f);
    CHECK(ct_canvas_get(&c, 0, 0) == 0xff8080, "blend 50%% red over white is ff8080 (got %06x)", ct_canvas_get(&c, 0, 0));
    /* off-canvas drawing is clipped, never a crash */
    ct_canvas_line(&c, -1e9, -5, 1e9, 300, 3, 0);
    ct_canvas_disc(&c, -100, -100, 5, 0, 1);
    ct_canvas_fill_rect(&c, -10, -10, 5, 5, 0);
    ct_text_draw(&c, 60, 45, "Wide text", 3, 0);
    CHECK(ct_palette(0) == 0x1f77b4 && ct_palette(9) == 0x17becf, "Tableau 10 first");
    int distinct = 1;
    for (int a = 0; a < 20; a++)
        for (int b = 0; b < a; b++) distinct &= ct_palette(a) != ct_palette(b);
    CHECK(distinct, "20 distinct palette colours");
    ct_canvas_free(&c);
}

static int png_size(const char *path, int *w, int *h) {
    size_t n;
    unsigned char *b = slurp(path, &n);
    if (!b || n < 24 || memcmp(b, "\x89PNG", 4)) {
        free(b);
        return -1;
    }
    *w = b[16] << 24 | b[17] << 16 | b[18] << 8 | b[19];
    *h = b[20] << 24 | b[21] << 16 | b[22] << 8 | b[23];
    free(b);
    return 0;
}

static void write_text(const char *path, const char *s) { spit(path, s, strlen(s)); }

static void test_metrics(void) {
    char path[512];
    snprintf(path, sizeof path, "%s/metrics.jsonl", tmpdir);
    write_text(path,
               "{\"epoch\": 1, \"step\": 10, \"loss\": 5.0, \"top1\": 0.1, \"lr\": 0.5, \"note\": \"a \\\"q\\\"\"}\n"
               "\n"
               "{\"epoch\": 2, \"loss\": nan, \"top1\": 0.2, \"lr\": 1e-3, \"knn_top1\": 0.7, \"hist\": [1, [2, 3]], \"o\": {\"a\": null}}\n"
               "  {\"epoch\": 3, \"loss\": -nan, \"top1\": 0.3, \"lr\": 0}  \n"
               "{\"final\": true, \"epoch\": 3, \"knn_top1\": 0.8, \"probe_top1\": -1}\n");
    ct_metrics m;
    CHECK_OK(ct_metrics_read(&m, path));
    int le = ct_metrics_col(&m, "loss"), ke = ct_metrics_col(&m, "knn_top1"), fe = ct_metrics_col(&m, "final");
    CHECK(m.nrows == 4 && le >= 0 && ke >= 0 && fe >= 0 && ct_metrics_col(&m, "absent") < 0, "4 rows, keys found");
    CHECK(ct_metrics_get(&m, 0, le) == 5.0 && isnan(ct_metrics_get(&m, 1, le)) && isnan(ct_metrics_get(&m, 2, le)),
          "numbers, nan and -nan");
    CHECK(ct_metrics_has(&m, 1, le) && !ct_metrics_has(&m, 3, le) && ct_metrics_has(&m, 3, fe) &&
              ct_metrics_get(&m, 3, fe) == 1.0,
          "a NaN value is present, an absent key is not; true reads 1");
    CHECK(ct_metrics_get(&m, 1, ct_metrics_col(&m, "lr")) == 1e-3, "exponents");
    CHECK(isnan(ct_metrics_get(&m, 0, ct_metrics_col(&m, "note"))) && ct_metrics_has(&m, 1, ct_metrics_col(&m, "hist")),
          "strings and nested values read as NaN");
    /* the curves: a PNG whose pixels are not all paper, with the NaN losses skipped */
    ct_canvas c;
    CHECK_OK(ct_canvas_init(&c, 1000, 700, BG));
    CHECK_OK(ct_plot_metrics(&c, &m, "a run"));
    CHECK(count_not(&c, BG) > 5000, "curves drawn (%d pixels)", count_not(&c, BG));
    char png[600];
    snprintf(png, sizeof png, "%s/curves.png", tmpdir);
    CHECK_OK(ct_canvas_write_png(&c, png));
    int w = 0, h = 0;
    CHECK(png_size(png, &w, &h) == 0 && w == 1000 && h == 700, "PNG of 1000x700 (got %dx%d)", w, h);
    ct_canvas_free(&c);
    ct_metrics_free(&m);

    /* malformed lines: the message names the file and the line */
    const char *bad[] = {
        "{\"epoch\": 1}\n{\"epoch\": 2, \"loss\": }\n",
        "{\"epoch\": 1}\n{\"epoch\": 2, \"loss\": 1.0\n",
        "{\"epoch\": 1}\n[1, 2]\n",
        "{\"epoch\": 1}\n{\"epoch\": 2} trailing\n",
        "{\"epoch\": 1}\n{\"epoch: 2}\n",
        "{\"epoch\": 1}\n{\"epoch\": 1.5.3}\n",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        write_text(path, bad[i]);
        ct_status st = ct_metrics_read(&m, path);
        char want[600];
        snprintf(want, sizeof want, "%s:2:", path);
        CHECK(st == CT_ERR_FORMAT && strstr(ct_errmsg(), want), "bad line %zu: %s", i, ct_errmsg());
        CHECK(m.v == NULL && m.nrows == 0, "nothing kept");
    }
    write_text(path, "");
    CHECK(ct_metrics_read(&m, path) == CT_ERR_FORMAT && strstr(ct_errmsg(), "empty") && strstr(ct_errmsg(), path),
          "empty file: %s", ct_errmsg());
    write_text(path, "\n  \n");
    CHECK(ct_metrics_read(&m, path) == CT_ERR_FORMAT && strstr(ct_errmsg(), "blank"), "blank lines only: %s", ct_errmsg());
    snprintf(path, sizeof path, "%s/none/metrics.jsonl", tmpdir);
    CHECK(ct_metrics_read(&m, path) == CT_ERR_IO && strstr(ct_errmsg(), path), "missing file: %s", ct_errmsg());

    /* keys the figure wants are missing: panels say "no data" (grey text) */
    snprintf(path, sizeof path, "%s/other.jsonl", tmpdir);
    write_text(path, "{\"something\": 1}\n{\"something\": 2}\n");
    CHECK_OK(ct_metrics_read(&m, path));
    CHECK_OK(ct_canvas_init(&c, 800, 600, BG));
    CHECK_OK(ct_plot_metrics(&c, &m, NULL));
    int grey = 0;
    for (int y = 0; y < c.h; y++)
        for (int x = 0; x < c.w; x++) grey += ct_canvas_get(&c, x, y) == 0x777777;
    CHECK(grey > 4 * 30, "\"no data\" written in the panels (%d grey pixels)", grey);
    ct_canvas_free(&c);
    ct_metrics_free(&m);
}

static void test_chart_and_scatter(void) {
    double x[50], y[50];
    for (int i = 0; i < 50; i++) x[i] = i, y[i] = i == 20 ? NAN : sin(i * 0.2);
    ct_chart_series s = {"sine", x, y, 50, ct_palette(0), CT_SERIES_LINE};
    ct_chart_panel p = {"A panel", "x", "y", &s, 1, 0};
    ct_canvas c;
    CHECK_OK(ct_canvas_init(&c, 500, 400, BG));
    CHECK_OK(ct_plot_chart(&c, "title", &p, 1, 1));
    int blue = 0;
    for (int yy = 0; yy < c.h; yy++)
        for (int xx = 0; xx < c.w; xx++) blue += ct_canvas_get(&c, xx, yy) == ct_palette(0);
    CHECK(blue > 200, "the series is drawn (%d pixels)", blue);
    ct_canvas_free(&c);
    CHECK_OK(ct_canvas_init(&c, 100, 80, BG));
    CHECK(ct_plot_chart(&c, NULL, &p, 4, 2) == CT_ERR_ARG, "a too small canvas is refused: %s", ct_errmsg());
    ct_canvas_free(&c);

    /* scatter: three clusters, legend names drawn, a PNG of the canvas size */
    enum { N = 300 };
    float xy[2 * N];
    int32_t lab[N];
    ct_rng r = ct_rng_make(7);
    for (int i = 0; i < N; i++) {
        lab[i] = i % 3;
        xy[2 * i] = (float)(lab[i] * 10 + ct_rng_normal(&r));
        xy[2 * i + 1] = (float)((lab[i] == 1) * 8 + ct_rng_normal(&r));
    }
    const char *names[3] = {"alpha", "beta", "gamma"};
    CHECK_OK(ct_canvas_init(&c, 900, 700, BG));
    CHECK_OK(ct_plot_scatter(&c, "map", "PC 1", "PC 2", xy, lab, N, names, 3));
    for (int k = 0; k < 3; k++) {
        int n = 0;
        for (int yy = 0; yy < c.h; yy++)
            for (int xx = 0; xx < c.w; xx++) n += ct_canvas_get(&c, xx, yy) == ct_palette(k);
        CHECK(n > 100, "class %d drawn in its colour (%d pixels)", k, n);
    }
    char png[600];
    snprintf(png, sizeof png, "%s/map.png", tmpdir);
    CHECK_OK(ct_canvas_write_png(&c, png));
    int w = 0, h = 0;
    CHECK(png_size(png, &w, &h) == 0 && w == 900 && h == 700, "map PNG of 900x700 (got %dx%d)", w, h);
    lab[5] = 3;
    CHECK(ct_plot_scatter(&c, NULL, NULL, NULL, xy, lab, N, NULL, 3) == CT_ERR_ARG, "label out of range refused");
    lab[5] = 2;
    xy[3] = NAN;
    CHECK(ct_plot_scatter(&c, NULL, NULL, NULL, xy, lab, N, NULL, 3) == CT_ERR_NUMERIC, "NaN point refused");
    ct_canvas_free(&c);
}

static void test_pca(void) {
    /* points on a line along v in 5-D: one component, all the variance, the
     * coordinates are t - mean(t) up to the sign convention (v's largest entry,
     * index 1, is negative, so the component is -v and the coordinate -(t - mean)) */
    enum { N = 200, D = 5 };
    static float X[N * D];
    float Y[N * 2];
    double v[D] = {0.1, -0.8, 0.3, 0.5, 0.0}, nv = 0, t[N], tm = 0;
    for (int j = 0; j < D; j++) nv += v[j] * v[j];
    for (int j = 0; j < D; j++) v[j] /= sqrt(nv);
    ct_rng r = ct_rng_make(3);
    for (int i = 0; i < N; i++) {
        t[i] = 4.0 * ct_rng_normal(&r);
        tm += t[i] / N;
        for (int j = 0; j < D; j++) X[i * D + j] = (float)(1.0 + j + t[i] * v[j]);
    }
    double ev[2];
    CHECK_OK(ct_layout_pca(Y, ev, X, N, D, 2));
    CHECK(ev[0] > 0.99999 && ev[1] < 1e-5, "a line: explained %.7f, %.2g", ev[0], ev[1]);
    float ref[N];
    for (int i = 0; i < N; i++) ref[i] = (float)-(t[i] - tm);
    float got[N];
    for (int i = 0; i < N; i++) got[i] = Y[2 * i];
    check_close("line coordinates", got, ref, N, 1e-3, 1e-4);

    /* a plane spanned by orthonormal u, w with uncorrelated coordinates on a grid:
     * variances 4 and 1 of the grid give ratios 0.8 and 0.2 */
    static float P[N * D];
    double u[D] = {0, 0.6, 0, 0.8, 0}, w[D] = {1, 0, 0, 0, 0}; /* u's largest entry is +0.8, w's +1 */
    int n = 0;
    double a[10], b[20], sa = 0, sb = 0;
    for (int i = 0; i < 10; i++) a[i] = (i - 4.5), sa += a[i] * a[i] / 10;
    for (int k = 0; k < 20; k++) b[k] = (k - 9.5), sb += b[k] * b[k] / 20;
    float ra[N], rb[N];
    for (int i = 0; i < 10; i++)
        for (int k = 0; k < 20; k++, n++) {
            double sc = 2.0 / sqrt(sa), sw = 1.0 / sqrt(sb); /* variances 4 and 1 */
            for (int j = 0; j < D; j++) P[n * D + j] = (float)(a[i] * sc * u[j] + b[k] * sw * w[j] + 3);
            ra[n] = (float)(a[i] * sc), rb[n] = (float)(b[k] * sw);
        }
    CHECK_OK(ct_layout_pca(Y, ev, P, N, D, 2));
    CHECK(fabs(ev[0] - 0.8) < 1e-5 && fabs(ev[1] - 0.2) < 1e-5, "a plane: explained %.6f + %.6f", ev[0], ev[1]);
    for (int i = 0; i < N; i++) got[i] = Y[2 * i];
    check_close("plane PC 1 = u coordinate", got, ra, N, 1e-4, 1e-4);
    for (int i = 0; i < N; i++) got[i] = Y[2 * i + 1];
    check_close("plane PC 2 = w coordinate", got, rb, N, 1e-4, 1e-4);
    CHECK(ct_layout_pca(Y, ev, P, 1, D, 2) == CT_ERR_ARG && ct_layout_pca(Y, ev, P, N, D, 6) == CT_ERR_ARG,
          "one row, or more components than columns, refused");
}

static void test_subsample(void) {
    int64_t a[100], b[100], c[100];
    CHECK_OK(ct_subsample(a, 1000, 100, 1));
    CHECK_OK(ct_subsample(b, 1000, 100, 1));
    CHECK_OK(ct_subsample(c, 1000, 100, 2));
    int ok = 1;
    for (int i = 1; i < 100; i++) ok &= a[i] > a[i - 1] && a[i] < 1000 && a[0] >= 0;
    CHECK(ok, "ascending, distinct, in range");
    CHECK(!memcmp(a, b, sizeof a) && memcmp(a, c, sizeof a), "same seed same draw, another seed another");
    CHECK_OK(ct_subsample(a, 100, 100, 5));
    ok = 1;
    for (int i = 0; i < 100; i++) ok &= a[i] == i;
    CHECK(ok, "m == n: all of them");
    CHECK(ct_subsample(a, 10, 11, 0) == CT_ERR_ARG, "more than n refused");
}

/* fraction of each point's k nearest neighbours (excluding itself) in A (n, da)
 * that carry its label, or (labels NULL) that are also among its k nearest in B */
static double knn_score(const float *A, int64_t da, const float *B, int64_t db, const int32_t *labels, int64_t n, int k) {
    int *na = malloc(sizeof(int) * (size_t)k), *nb = malloc(sizeof(int) * (size_t)k);
    double *dista = malloc(sizeof(double) * (size_t)n), *distb = malloc(sizeof(double) * (size_t)n), hit = 0;
    for (int64_t i = 0; i < n; i++) {
        for (int64_t j = 0; j < n; j++) {
            double sa = 0, sb = 0;
            for (int64_t c = 0; c < da; c++) sa += (A[i * da + c] - A[j * da + c]) * (double)(A[i * da + c] - A[j * da + c]);
            if (B)
                for (int64_t c = 0; c < db; c++) sb += (B[i * db + c] - B[j * db + c]) * (double)(B[i * db + c] - B[j * db + c]);
            dista[j] = j == i ? INFINITY : sa;
            distb[j] = j == i ? INFINITY : sb;
        }
        for (int t = 0; t < k; t++) { /* k smallest by repeated selection */
            int64_t ba = 0, bb = 0;
            for (int64_t j = 1; j < n; j++) {
                if (dista[j] < dista[ba]) ba = j;
                if (distb[j] < distb[bb]) bb = j;
            }
            na[t] = (int)ba, nb[t] = (int)bb;
            dista[ba] = distb[bb] = INFINITY;
        }
        for (int t = 0; t < k; t++) {
            if (labels) hit += labels[na[t]] == labels[i];
            else
                for (int s = 0; s < k; s++) hit += na[t] == nb[s];
        }
    }
    free(na), free(nb), free(dista), free(distb);
    return hit / ((double)n * k);
}

static void test_tsne(void) {
    /* 6 well-separated Gaussian clusters in 64-D (so the PCA reduction to 50 runs),
     * 110 points each: 660 points, more than one block of rows */
    enum { K = 6, PER = 110, N = K * PER, D = 64 };
    float *X = malloc(sizeof(float) * N * D), *Y1 = malloc(sizeof(float) * N * 2), *Y2 = malloc(sizeof(float) * N * 2);
    int32_t lab[N];
    ct_rng r = ct_rng_make(11);
    float centre[K][D];
    for (int k = 0; k < K; k++)
        for (int j = 0; j < D; j++) centre[k][j] = 3.0f * ct_rng_normal(&r);
    for (int i = 0; i < N; i++) {
        lab[i] = i % K;
        for (int j = 0; j < D; j++) X[i * D + j] = centre[lab[i]][j] + 0.5f * ct_rng_normal(&r);
    }
    ct_tsne_config cfg;
    ct_tsne_config_default(&cfg);
    ct_set_threads(1);
    CHECK_OK(ct_layout_tsne(Y1, X, N, D, &cfg));
    ct_set_threads(2);
    CHECK_OK(ct_layout_tsne(Y2, X, N, D, &cfg));
    CHECK(!memcmp(Y1, Y2, sizeof(float) * N * 2), "t-SNE: the same bits at 1 and 2 threads");
    double purity = knn_score(Y1, 2, NULL, 0, lab, N, 10);
    double keep = knn_score(X, D, Y1, 2, NULL, N, 10);
    /* chance levels: purity 1/6, neighbourhood kept 10/659 */
    CHECK(purity > 0.99, "t-SNE keeps clusters apart: 10-NN label agreement %.4f", purity);
    CHECK(keep > 0.25, "t-SNE keeps neighbourhoods: %.3f of the 10 nearest stay among the 10 nearest", keep);
    double xm = 0, ym = 0;
    for (int i = 0; i < N; i++) xm += Y1[2 * i], ym += Y1[2 * i + 1];
    CHECK(fabs(xm / N) < 1e-3 && fabs(ym / N) < 1e-3, "centred");
    /* the PCA map of the same data separates them less well but is far above chance */
    float *P = malloc(sizeof(float) * N * 2);
    CHECK_OK(ct_layout_pca(P, NULL, X, N, D, 2));
    double pp = knn_score(P, 2, NULL, 0, lab, N, 10);
    CHECK(pp > 0.5 && purity >= pp, "PCA purity %.3f, t-SNE %.3f", pp, purity);
    free(P);

    /* many identical points (the quadtree's depth limit) and tiny inputs */
    for (int i = 0; i < 100; i++)
        for (int j = 0; j < D; j++) X[i * D + j] = i < 60 ? 1.0f : X[i * D + j];
    CHECK_OK(ct_layout_tsne(Y1, X, 100, D, NULL));
    int fin = 1;
    for (int i = 0; i < 200; i++) fin &= isfinite(Y1[i]);
    CHECK(fin, "60 duplicate points: a finite layout");
    CHECK_OK(ct_layout_tsne(Y1, X + 60 * D, 5, 3, NULL));
    CHECK(ct_layout_tsne(Y1, X, 3, D, NULL) == CT_ERR_ARG, "3 points refused");
    CHECK(ct_layout_tsne(Y1, X, 100, 1, NULL) == CT_ERR_ARG, "one feature refused");
    cfg.theta = 0.9;
    CHECK(ct_layout_tsne(Y1, X, N, D, &cfg) == CT_ERR_ARG, "theta above 0.7 refused");
    X[7] = NAN;
    CHECK(ct_layout_tsne(Y1, X, 100, 10, NULL) == CT_ERR_NUMERIC, "NaN input refused: %s", ct_errmsg());
    free(X), free(Y1), free(Y2);
    ct_set_threads(0);
}

static int run(const char *cmd) {
    int rc = system(cmd);
    return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
}

static int same_file(const char *a, const char *b) {
    size_t na, nb;
    unsigned char *x = slurp(a, &na), *y = slurp(b, &nb);
    int same = x && y && na == nb && !memcmp(x, y, na);
    free(x), free(y);
    return same;
}

static void test_cli(void) {
    const char *bin = getenv("CONTRAST_BIN");
    if (!bin) bin = "./contrast";
    char cmd[16384], p[600], q[600];
    const char *T = tmpdir;
    snprintf(cmd, sizeof cmd, "%s plot --help > %s/help.txt && grep -q -- --max-points %s/help.txt && grep -q -- --class-names %s/help.txt && %s --help | grep -q plot",
             bin, T, T, T, bin);
    CHECK(run(cmd) == 0, "plot --help lists the options; contrast --help lists plot");
    /* curves */
    snprintf(cmd, sizeof cmd, "mkdir -p %s/run && printf '%s' > %s/run/metrics.jsonl && %s plot --run %s/run --out %s/c.png 2> /dev/null",
             T, "{\"epoch\": 1, \"loss\": 5, \"top1\": 0.1, \"lr\": 1}\\n{\"epoch\": 2, \"loss\": 4, \"top1\": 0.2, \"lr\": 0.5, \"knn_top1\": 0.6}\\n",
             T, bin, T, T);
    CHECK(run(cmd) == 0, "plot --run writes curves");
    snprintf(p, sizeof p, "%s/c.png", T);
    int w = 0, h = 0;
    CHECK(png_size(p, &w, &h) == 0 && w == 1200 && h == 860, "curves PNG 1200x860 (got %dx%d)", w, h);
    snprintf(cmd, sizeof cmd, "printf '{\"epoch\": 1}\\n{\"epoch\": 2,, }\\n' > %s/run/metrics.jsonl && %s plot --run %s/run --out %s/c.png 2> %s/err.txt; test $? -eq 1 && grep -q 'run/metrics.jsonl:2:' %s/err.txt",
             T, bin, T, T, T, T);
    CHECK(run(cmd) == 0, "a bad metrics line: exit 1, file and line named");
    snprintf(cmd, sizeof cmd, ": > %s/run/metrics.jsonl && %s plot --run %s/run --out %s/c.png 2> %s/err.txt; test $? -eq 1 && grep -q empty %s/err.txt",
             T, bin, T, T, T, T);
    CHECK(run(cmd) == 0, "an empty metrics file: exit 1, said so");
    snprintf(cmd, sizeof cmd, "%s plot --run %s/nowhere --out %s/c.png 2> %s/err.txt; test $? -eq 1 && grep -q 'nowhere/metrics.jsonl' %s/err.txt",
             bin, T, T, T, T);
    CHECK(run(cmd) == 0, "a missing run: exit 1, path named");
    /* maps */
    enum { N = 400, D = 8 };
    static float X[N * D];
    int64_t lab[N];
    ct_rng r = ct_rng_make(5);
    for (int i = 0; i < N; i++) {
        lab[i] = i % 4;
        for (int j = 0; j < D; j++) X[i * D + j] = (float)(5.0 * (j == lab[i]) + ct_rng_normal(&r));
    }
    snprintf(p, sizeof p, "%s/h.npy", T);
    snprintf(q, sizeof q, "%s/y.npy", T);
    CHECK_OK(ct_npy_write_f32(p, X, N, D));
    CHECK_OK(ct_npy_write_i64(q, lab, N));
    snprintf(cmd, sizeof cmd, "%s/y3.npy", T);
    CHECK_OK(ct_npy_write_i64(cmd, lab, N - 1));
    snprintf(cmd, sizeof cmd, "%s plot --embeddings %s --labels %s --out %s/pca.png 2> /dev/null", bin, p, q, T);
    CHECK(run(cmd) == 0, "plot --embeddings (PCA)");
    snprintf(cmd, sizeof cmd, "%s/pca.png", T);
    CHECK(png_size(cmd, &w, &h) == 0 && w == 1100 && h == 900, "map PNG 1100x900 (got %dx%d)", w, h);
    snprintf(cmd, sizeof cmd, "%s plot --embeddings %s --labels %s/y3.npy --out %s/x.png 2> %s/err.txt; test $? -eq 1 && grep -q '400 rows' %s/err.txt && grep -q '399 labels' %s/err.txt",
             bin, p, T, T, T, T, T);
    CHECK(run(cmd) == 0, "mismatched embeddings and labels: exit 1, both counts named");
    snprintf(cmd, sizeof cmd, "%s plot --embeddings %s/missing.npy --labels %s --out %s/x.png 2> %s/err.txt; test $? -eq 1 && grep -q missing.npy %s/err.txt",
             bin, T, q, T, T, T);
    CHECK(run(cmd) == 0, "a missing embeddings file: exit 1, named");
    snprintf(cmd, sizeof cmd, "%s plot --embeddings %s --out %s/x.png 2> %s/err.txt; test $? -eq 2 && grep -q -- --labels %s/err.txt",
             bin, p, T, T, T);
    CHECK(run(cmd) == 0, "--embeddings without --labels: exit 2");
    snprintf(cmd, sizeof cmd, "%s plot --run %s/run --embeddings %s --labels %s --out %s/x.png 2> /dev/null; test $? -eq 2", bin, T, p, q, T);
    CHECK(run(cmd) == 0, "--run with --embeddings: exit 2");
    snprintf(cmd, sizeof cmd, "%s plot --run %s/run 2> %s/err.txt; test $? -eq 2 && grep -q -- --out %s/err.txt", bin, T, T, T);
    CHECK(run(cmd) == 0, "no --out: exit 2");
    snprintf(cmd, sizeof cmd, "%s plot --embeddings %s --labels %s --layout umap --out %s/x.png 2> %s/err.txt; test $? -eq 2 && grep -q umap %s/err.txt",
             bin, p, q, T, T, T);
    CHECK(run(cmd) == 0, "unknown --layout: exit 2, named");
    snprintf(cmd, sizeof cmd, "%s plot --embeddings %s --labels %s --perplexity 1 --layout tsne --out %s/x.png 2> %s/err.txt; test $? -eq 2 && grep -q perplexity %s/err.txt",
             bin, p, q, T, T, T);
    CHECK(run(cmd) == 0, "--perplexity out of range: exit 2");
    snprintf(cmd, sizeof cmd, "%s plot --embeddings %s --labels %s --class-names a,b,c --out %s/x.png 2> %s/err.txt; test $? -eq 1 && grep -q '3 names' %s/err.txt",
             bin, p, q, T, T, T);
    CHECK(run(cmd) == 0, "too few --class-names: exit 1, said so");
    /* --class-names changes the legend; fashion-mnist's ten names cover labels 0-3 */
    snprintf(cmd, sizeof cmd, "%s plot --embeddings %s --labels %s --class-names shirt,shoe,bag,coat --out %s/named.png 2> /dev/null && "
             "%s plot --embeddings %s --labels %s --class-names fashion-mnist --out %s/fm.png 2> /dev/null", bin, p, q, T, bin, p, q, T);
    CHECK(run(cmd) == 0, "--class-names a list, and fashion-mnist");
    char a[600], b[600];
    snprintf(a, sizeof a, "%s/named.png", T);
    snprintf(b, sizeof b, "%s/pca.png", T);
    CHECK(!same_file(a, b), "named legend differs from numbered");
    /* --max-points and --seed: a deterministic subsample */
    snprintf(cmd, sizeof cmd, "%s plot --embeddings %s --labels %s --max-points 100 --seed 1 --out %s/s1.png 2> %s/err.txt && grep -q '100 of 400' %s/err.txt && "
             "%s plot --embeddings %s --labels %s --max-points 100 --seed 1 --out %s/s1b.png 2> /dev/null && "
             "%s plot --embeddings %s --labels %s --max-points 100 --seed 2 --out %s/s2.png 2> /dev/null",
             bin, p, q, T, T, T, bin, p, q, T, bin, p, q, T);
    CHECK(run(cmd) == 0, "--max-points 100 draws 100 of 400");
    snprintf(a, sizeof a, "%s/s1.png", T);
    snprintf(b, sizeof b, "%s/s1b.png", T);
    CHECK(same_file(a, b), "same --seed: the same map");
    snprintf(b, sizeof b, "%s/s2.png", T);
    CHECK(!same_file(a, b), "another --seed: another subsample");
    /* t-SNE: the same PNG at --threads 1 and 2 */
    snprintf(cmd, sizeof cmd, "%s plot --embeddings %s --labels %s --layout tsne --perplexity 20 --threads 1 --out %s/t1.png 2> %s/err.txt && grep -q 't-SNE' %s/err.txt && "
             "%s plot --embeddings %s --labels %s --layout tsne --perplexity 20 --threads 2 --out %s/t2.png 2> /dev/null && "
             "%s plot --embeddings %s --labels %s --layout tsne --perplexity 5 --threads 2 --out %s/t3.png 2> /dev/null",
             bin, p, q, T, T, T, bin, p, q, T, bin, p, q, T);
    CHECK(run(cmd) == 0, "--layout tsne");
    snprintf(a, sizeof a, "%s/t1.png", T);
    snprintf(b, sizeof b, "%s/t2.png", T);
    CHECK(same_file(a, b), "t-SNE map identical at --threads 1 and 2");
    snprintf(b, sizeof b, "%s/t3.png", T);
    CHECK(!same_file(a, b), "--perplexity changes the map");
}

int main(void) {
    snprintf(tmpdir, sizeof tmpdir, "/tmp/contrast-test-plot-XXXXXX");
    if (!mkdtemp(tmpdir)) {
        perror("mkdtemp");
        return 1;
    }
    test_font();
    test_canvas();
    test_metrics();
    test_chart_and_scatter();
    test_pca();
    test_subsample();
    test_tsne();
    test_cli();
    char cmd[400];
    snprintf(cmd, sizeof cmd, "rm -rf %s", tmpdir);
    if (g_fail == 0 && system(cmd) != 0) fprintf(stderr, "could not remove %s\n", tmpdir);
    return test_done();
}
