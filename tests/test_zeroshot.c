/* test_zeroshot.c: zero-shot classifier weights on a hand example (where averaging
 * raw instead of normalised prompt embeddings gives another answer), prompts from
 * templates, zero-shot top-1/top-5 and image <-> text R@k against plain sort-based
 * references (ties included), the distinct-caption relation of a caption set, top-k,
 * the class / template file readers' errors, and the contact sheet's pixels. */
#include "harness.h"

#include <unistd.h>

/* ---- references: full sort by (score desc, index asc) -------------------------------- */

static double dot_cos(const float *a, const float *b, int64_t D) {
    double s = 0, na = 0, nb = 0;
    for (int64_t d = 0; d < D; d++) s += (double)a[d] * b[d], na += (double)a[d] * a[d], nb += (double)b[d] * b[d];
    return na > 0 && nb > 0 ? s / sqrt(na * nb) : 0;
}

/* ranks (position of each gallery item) of query q, by insertion sort on float scores */
static void ref_order(int64_t *ord, const float *q, const float *G, int64_t ng, int64_t D) {
    float *s = malloc((size_t)ng * sizeof *s);
    for (int64_t j = 0; j < ng; j++) s[j] = (float)dot_cos(q, G + j * D, D), ord[j] = j;
    for (int64_t a = 1; a < ng; a++)
        for (int64_t b = a; b > 0 && s[ord[b]] > s[ord[b - 1]]; b--) {
            int64_t t = ord[b]; ord[b] = ord[b - 1]; ord[b - 1] = t;
        }
    free(s);
}

static void test_weights(void) {
    /* class 0: prompts (2, 0) and (0, 3): normalised then averaged -> (1, 1) / sqrt 2;
     * averaging the raw rows would give (1, 1.5) / |.| = (0.555, 0.832). class 1: (0, -1)
     * and (0, -5) -> (0, -1). */
    float E[4 * 2] = {2, 0, 0, 3, 0, -1, 0, -5}, W[4];
    CHECK_OK(ct_zeroshot_weights(W, E, 2, 2, 2));
    float want[4] = {0.70710678f, 0.70710678f, 0, -1};
    CHECK(check_close("zero-shot weights", W, want, 4, 1e-6, 0), "weights = normalise(mean(normalise(E)))");
    E[0] = NAN;
    CHECK(ct_zeroshot_weights(W, E, 2, 2, 2) == CT_ERR_NUMERIC, "NaN refused");
    CHECK(ct_zeroshot_weights(W, E, 0, 2, 2) == CT_ERR_ARG, "K = 0 refused");
}

static void test_prompts(void) {
    const char *names[2] = {"red heart", "cat"};
    const char *tpl[3] = {"an emoji of {}", "{}", "a {} emoji"};
    char **p;
    CHECK_OK(ct_zeroshot_prompts(&p, names, 2, tpl, 3));
    const char *want[6] = {"an emoji of red heart", "red heart", "a red heart emoji", "an emoji of cat", "cat",
                           "a cat emoji"};
    for (int i = 0; i < 6; i++) CHECK(!strcmp(p[i], want[i]), "prompt %d: '%s' (want '%s')", i, p[i], want[i]);
    ct_zeroshot_strings_free(p, 6);
    const char *bad[1] = {"no slot"};
    CHECK(ct_zeroshot_prompts(&p, names, 2, bad, 1) == CT_ERR_ARG && !p, "template without {} refused");
    const char *const *def;
    int nd = ct_zeroshot_default_templates(&def);
    CHECK(nd >= 4, "%d default templates", nd);
    for (int i = 0; i < nd; i++) {
        const char *a = strstr(def[i], "{}");
        CHECK(a && !strstr(a + 2, "{}"), "default template '%s' has one {}", def[i]);
    }
}

static void test_zeroshot_eval(void) {
    /* hand: classes at 0, 30, 60, ... 150 degrees, K = 6; an image at 0 degrees of
     * class 5 (150 deg) ranks class 5 last (6th): neither top-1 nor top-5; of class 4
     * (120 deg) 5th: top-5 only; class 0: top-1. */
    float W[6 * 2], img[3 * 2] = {1, 0, 1, 0, 1, 0};
    for (int k = 0; k < 6; k++) { W[2 * k] = (float)cos(k * 3.14159265358979 / 6); W[2 * k + 1] = (float)sin(k * 3.14159265358979 / 6); }
    int32_t y[3] = {5, 4, 0};
    double t1, t5;
    int64_t cn[6], c1[6], c5[6];
    CHECK_OK(ct_zeroshot_eval(img, y, 3, W, 6, 2, &t1, &t5, cn, c1, c5));
    CHECK(fabs(t1 - 1.0 / 3) < 1e-12 && fabs(t5 - 2.0 / 3) < 1e-12, "hand: top1 %g (1/3) top5 %g (2/3)", t1, t5);
    CHECK(cn[5] == 1 && c5[5] == 0 && cn[4] == 1 && c5[4] == 1 && c1[4] == 0 && c1[0] == 1 && cn[1] == 0,
          "per-class counts");
    /* ties go to the lower class index: two identical class rows */
    float Wt[2 * 2] = {1, 0, 1, 0}, q[2] = {1, 0};
    int32_t y1[1] = {1}, y0[1] = {0};
    CHECK_OK(ct_zeroshot_eval(q, y1, 1, Wt, 2, 2, &t1, NULL, NULL, NULL, NULL));
    CHECK(t1 == 0, "tie: class 1 ranks after class 0");
    CHECK_OK(ct_zeroshot_eval(q, y0, 1, Wt, 2, 2, &t1, NULL, NULL, NULL, NULL));
    CHECK(t1 == 1, "tie: class 0 first");
    CHECK(ct_zeroshot_eval(q, (int32_t[]){2}, 1, Wt, 2, 2, &t1, NULL, NULL, NULL, NULL) == CT_ERR_ARG,
          "label out of range refused");
    /* random data (300 images > one 256-row block, 40 classes, D 7, rows of several
     * lengths) against the reference; continuous values: equal cosines of different
     * vectors are equal in exact arithmetic only, so ties are tested above, by rows
     * that are equal */
    const int64_t n = 300, K = 40, D = 7;
    float *X = malloc((size_t)(n * D) * 4), *C = malloc((size_t)(K * D) * 4);
    int32_t *lab = malloc((size_t)n * 4);
    ct_rng r = ct_rng_make(ct_mix64(7));
    for (int64_t i = 0; i < n * D; i++) X[i] = ct_rng_normal(&r) * (float)(1 + (i / D) % 3);
    for (int64_t i = 0; i < K * D; i++) C[i] = ct_rng_normal(&r) * (float)(1 + (i / D) % 4);
    for (int64_t i = 0; i < n; i++) lab[i] = (int32_t)ct_rng_below(&r, (uint64_t)K);
    int64_t r1 = 0, r5 = 0, *ord = malloc((size_t)K * 8);
    for (int64_t i = 0; i < n; i++) {
        ref_order(ord, X + i * D, C, K, D);
        for (int64_t j = 0; j < K; j++)
            if (ord[j] == lab[i]) r1 += j < 1, r5 += j < 5;
    }
    CHECK_OK(ct_zeroshot_eval(X, lab, n, C, K, D, &t1, &t5, NULL, NULL, NULL));
    CHECK(t1 == (double)r1 / n && t5 == (double)r5 / n, "random: top1 %g (ref %g), top5 %g (ref %g)", t1,
          (double)r1 / n, t5, (double)r5 / n);
    CHECK(r5 > r1 && r1 > 0, "the random case exercises both (%lld, %lld)", (long long)r1, (long long)r5);
    free(X);
    free(C);
    free(lab);
    free(ord);
}

static void test_image_text(void) {
    /* images on the unit circle at 0, 90, 180 degrees; texts: t0 describes images 0 and
     * 2 (a shared name), t1 image 1, t2 image 1 (two captions of one image) */
    float img[3 * 2] = {1, 0, 0, 1, -1, 0};
    float txt[3 * 2] = {0.9f, 0.1f, 0.1f, -1, 0, 1};
    int64_t start[4] = {0, 2, 3, 4}, rel[4] = {0, 2, 1, 1};
    int ks[2] = {1, 2};
    double i2t[2], t2i[2];
    double i2c[2], t2c[2];
    CHECK_OK(ct_eval_image_text(img, 3, txt, 3, 2, start, rel, ks, 2, i2t, t2i, i2c, t2c));
    /* chance, text -> image over 3 images: t0 (2 related) 2/3 at k=1, 1 at k=2; t1, t2
     * (1 related) 1/3, 2/3: means 4/9, 7/9. image -> text over 3 texts: image 0 (1
     * text) 1/3, 2/3; image 1 (2 texts) 2/3, 1; image 2 (1 text) 1/3, 2/3 */
    CHECK(fabs(t2c[0] - 4.0 / 9) < 1e-12 && fabs(t2c[1] - 7.0 / 9) < 1e-12, "t2i chance %g %g", t2c[0], t2c[1]);
    CHECK(fabs(i2c[0] - 4.0 / 9) < 1e-12 && fabs(i2c[1] - 7.0 / 9) < 1e-12, "i2t chance %g %g", i2c[0], i2c[1]);
    /* image 0: nearest text t0 (its own): hit@1. image 1: nearest t2 (its own): hit@1.
     * image 2 (-1, 0): texts' cosines: t0 -0.99, t1 -0.10, t2 0 -> t2, t1, t0: t0 third: miss@2.
     * t0: nearest image 0 (its): hit. t1 (0.1, -1): cosines 0.1, -1, -0.1 -> image 0 first,
     * image 2, image 1 last: miss@2. t2 (0, 1): image 1: hit. */
    CHECK(fabs(i2t[0] - 2.0 / 3) < 1e-12 && fabs(i2t[1] - 2.0 / 3) < 1e-12, "hand i2t %g %g (2/3, 2/3)", i2t[0], i2t[1]);
    CHECK(fabs(t2i[0] - 2.0 / 3) < 1e-12 && fabs(t2i[1] - 2.0 / 3) < 1e-12, "hand t2i %g %g (2/3, 2/3)", t2i[0], t2i[1]);
    int64_t bad_start[4] = {0, 2, 2, 3};
    CHECK(ct_eval_image_text(img, 3, txt, 3, 2, bad_start, rel, ks, 2, i2t, t2i, NULL, NULL) == CT_ERR_ARG, "a text without image refused");
    int64_t bad_rel[4] = {0, 3, 1, 1};
    CHECK(ct_eval_image_text(img, 3, txt, 3, 2, start, bad_rel, ks, 2, i2t, t2i, NULL, NULL) == CT_ERR_ARG, "image out of range refused");

    /* random relation (270 images, 300 texts; continuous values, see above) against the reference */
    const int64_t ni = 270, nt = 300, D = 5;
    float *I = malloc((size_t)(ni * D) * 4), *T = malloc((size_t)(nt * D) * 4);
    int64_t *rs = malloc((size_t)(nt + 1) * 8), *ri = malloc((size_t)nt * 3 * 8);
    ct_rng r = ct_rng_make(ct_mix64(11));
    for (int64_t i = 0; i < ni * D; i++) I[i] = ct_rng_normal(&r);
    for (int64_t i = 0; i < nt * D; i++) T[i] = ct_rng_normal(&r) * (float)(1 + (i / D) % 3);
    rs[0] = 0;
    for (int64_t t = 0; t < nt; t++) {
        int m = 1 + (int)ct_rng_below(&r, 3);
        int64_t e = rs[t];
        for (int q = 0; q < m; q++) {
            int64_t im = (int64_t)ct_rng_below(&r, (uint64_t)ni), dup = 0;
            for (int64_t z = rs[t]; z < e; z++) dup |= ri[z] == im;
            if (!dup) ri[e++] = im;
        }
        rs[t + 1] = e;
    }
    int kk[3] = {1, 5, 10};
    double a[3], b[3];
    CHECK_OK(ct_eval_image_text(I, ni, T, nt, D, rs, ri, kk, 3, a, b, NULL, NULL));
    /* reference: full orders */
    int64_t hi[3] = {0}, ht[3] = {0}, counted = 0, *ord = malloc((size_t)(ni > nt ? ni : nt) * 8);
    for (int64_t i = 0; i < ni; i++) {
        int any = 0;
        for (int64_t t = 0; t < nt; t++)
            for (int64_t z = rs[t]; z < rs[t + 1]; z++) any |= ri[z] == i;
        if (!any) continue;
        counted++;
        ref_order(ord, I + i * D, T, nt, D);
        for (int64_t j = 0; j < nt; j++) {
            int rel_ = 0;
            for (int64_t z = rs[ord[j]]; z < rs[ord[j] + 1]; z++) rel_ |= ri[z] == i;
            if (rel_) {
                for (int q = 0; q < 3; q++) hi[q] += j < kk[q];
                break;
            }
        }
    }
    for (int64_t t = 0; t < nt; t++) {
        ref_order(ord, T + t * D, I, ni, D);
        for (int64_t j = 0; j < ni; j++) {
            int rel_ = 0;
            for (int64_t z = rs[t]; z < rs[t + 1]; z++) rel_ |= ri[z] == ord[j];
            if (rel_) {
                for (int q = 0; q < 3; q++) ht[q] += j < kk[q];
                break;
            }
        }
    }
    for (int q = 0; q < 3; q++) {
        CHECK(a[q] == (double)hi[q] / counted, "i2t R@%d %g (ref %g)", kk[q], a[q], (double)hi[q] / counted);
        CHECK(b[q] == (double)ht[q] / nt, "t2i R@%d %g (ref %g)", kk[q], b[q], (double)ht[q] / nt);
    }
    CHECK(hi[0] > 0 && hi[2] > hi[0] && ht[2] > ht[0], "the random case is neither empty nor saturated");
    free(I);
    free(T);
    free(rs);
    free(ri);
    free(ord);
}

static void test_caption_texts(void) {
    /* 3 images: image 0 "red", "a red square"; image 1 "red", "red" (twice); image 2 "blue" */
    char *caps[5] = {"red", "a red square", "red", "red", "blue"};
    int64_t cs[4] = {0, 2, 4, 5};
    ct_caption_dataset ds;
    memset(&ds, 0, sizeof ds);
    ds.img.n = 3;
    ds.caption_start = cs;
    ds.captions = caps;
    const char **tx;
    int64_t nt, *rs, *ri;
    CHECK_OK(ct_caption_texts(&ds, &tx, &nt, &rs, &ri));
    CHECK(nt == 3 && !strcmp(tx[0], "red") && !strcmp(tx[1], "a red square") && !strcmp(tx[2], "blue"),
          "distinct texts in first-seen order (%lld)", (long long)nt);
    CHECK(rs[0] == 0 && rs[1] == 2 && rs[2] == 3 && rs[3] == 4 && ri[0] == 0 && ri[1] == 1 && ri[2] == 0 && ri[3] == 2,
          "relation: red -> {0, 1} (image 1 once), 'a red square' -> {0}, blue -> {2}");
    free(tx);
    free(rs);
    free(ri);
}

static void test_topk(void) {
    float G[5 * 2] = {1, 0, 0, 1, 2, 0 /* same direction as row 0 */, -1, 0, 1, 1};
    float q[2] = {3, 0.0f};
    int64_t idx[8], found;
    float sc[8];
    CHECK_OK(ct_eval_topk(idx, sc, &found, G, 5, 2, q, 3));
    CHECK(found == 3 && idx[0] == 0 && idx[1] == 2 && idx[2] == 4, "order: 0, 2 (tie, lower first), 4: got %lld %lld %lld",
          (long long)idx[0], (long long)idx[1], (long long)idx[2]);
    CHECK(fabsf(sc[0] - 1) < 1e-6f && fabsf(sc[2] - 0.70710678f) < 1e-6f, "cosine scores %g %g", sc[0], sc[2]);
    CHECK_OK(ct_eval_topk(idx, NULL, &found, G, 5, 2, q, 8));
    CHECK(found == 5 && idx[4] == 3, "k clamped to the gallery, last the opposite row");
}

/* ---- files ------------------------------------------------------------------------- */

static char tmpdir[256];

static const char *write_tmp(const char *name, const char *content) {
    static char path[512];
    snprintf(path, sizeof path, "%s/%s", tmpdir, name);
    FILE *f = fopen(path, "wb");
    fputs(content, f);
    fclose(f);
    return path;
}

static void expect_error(int templates, const char *content, const char *want) {
    const char *p = write_tmp("list.txt", content);
    char **v = NULL;
    int64_t n = -1;
    ct_status st = templates ? ct_zeroshot_read_templates(&v, &n, p) : ct_zeroshot_read_classes(&v, &n, p);
    CHECK(st == CT_ERR_FORMAT && strstr(ct_errmsg(), want) && !v && n == 0, "'%s': got %s '%s' (want '%s')", content,
          ct_status_name(st), ct_errmsg(), want);
}

static void test_files(void) {
    const char *p = write_tmp("classes.txt", "red heart\r\n  cat \ngrinning face");
    char **v;
    int64_t n;
    CHECK_OK(ct_zeroshot_read_classes(&v, &n, p));
    CHECK(n == 3 && !strcmp(v[0], "red heart") && !strcmp(v[1], "cat") && !strcmp(v[2], "grinning face"),
          "classes read, trimmed, \\r\\n and no final newline");
    ct_zeroshot_strings_free(v, n);
    expect_error(0, "a\n\nb\n", "list.txt:2: empty line");
    expect_error(0, "a\nb\nc\nb\n", "list.txt:4: duplicate class name 'b' (also on line 2)");
    expect_error(0, "ok\n\xff\xfe\n", "list.txt:2: not valid UTF-8");
    expect_error(0, "ok\n\xc0\xaf\n", "list.txt:2: not valid UTF-8"); /* overlong '/' */
    expect_error(0, "", "no class name");
    char longline[400];
    memset(longline, 'x', 300);
    strcpy(longline + 300, "\n");
    expect_error(0, longline, "list.txt:1: class name of 300 bytes");
    p = write_tmp("tpl.txt", "an emoji of {}\n{}\n");
    CHECK_OK(ct_zeroshot_read_templates(&v, &n, p));
    CHECK(n == 2 && !strcmp(v[0], "an emoji of {}"), "templates read");
    ct_zeroshot_strings_free(v, n);
    expect_error(1, "{}\nno slot\n", "list.txt:2: a template holds exactly one {}");
    expect_error(1, "{} and {}\n", "list.txt:1: a template holds exactly one {}");
    CHECK(ct_zeroshot_read_classes(&v, &n, "/nonexistent/classes.txt") == CT_ERR_IO &&
              strstr(ct_errmsg(), "/nonexistent/classes.txt"),
          "missing file named: %s", ct_errmsg());
    CHECK(ct_zeroshot_read_classes(&v, &n, tmpdir) == CT_ERR_IO, "a folder refused");
}

/* ---- an image folder as a caption set ---------------------------------------------- */

static void test_folder(void) {
    char path[512];
    const char *cls[2] = {"red", "blue"}; /* listed in byte order: blue, red */
    const uint8_t rgb[2][3] = {{250, 10, 10}, {10, 10, 250}};
    for (int k = 0; k < 2; k++) {
        snprintf(path, sizeof path, "%s/folder/%s", tmpdir, cls[k]);
        char cmd[600];
        snprintf(cmd, sizeof cmd, "mkdir -p '%s'", path);
        if (system(cmd)) return;
        for (int f = 0; f < 2; f++) {
            uint8_t px[6 * 6 * 3];
            for (int i = 0; i < 36; i++) memcpy(px + 3 * i, rgb[k], 3);
            snprintf(path, sizeof path, "%s/folder/%s/%c.png", tmpdir, cls[k], "ba"[f]);
            CHECK_OK(ct_png_write(path, px, 6, 6, 3));
        }
    }
    ct_caption_dataset ds;
    snprintf(path, sizeof path, "%s/folder", tmpdir);
    CHECK_OK(ct_caption_folder_load(&ds, path, 0, 4));
    CHECK(ds.img.n == 4 && ds.img.num_classes == 2 && !strcmp(ds.class_names[0], "blue") &&
              !strcmp(ds.class_names[1], "red"),
          "4 images, classes blue, red");
    CHECK(ds.img.n == 4 && !strcmp(ds.files[0], "blue/a.png") && !strcmp(ds.files[3], "red/b.png") &&
              ds.img.labels[0] == 0 && ds.img.labels[3] == 1,
          "files in folder order with their labels");
    CHECK(ds.img.n == 4 && ds.caption_start[4] == 4 && !strcmp(ds.captions[2], "red"), "each captioned by its class");
    CHECK(ds.img.n == 4 && ds.img.c == 3 && ds.img.h == 4 && ds.img.images[0] == 10 &&
              ds.img.images[2 * 16] == 250,
          "blue image, RGB planes resized to 4 x 4");
    ct_caption_dataset_free(&ds);
    uint8_t one[3 * 16];
    snprintf(path, sizeof path, "%s/folder/red/a.png", tmpdir);
    CHECK_OK(ct_image_load_rgb(one, path, 4));
    CHECK(one[0] == 250 && one[16] == 10 && one[47] == 10, "one image file, planar RGB");
    CHECK(ct_image_load_rgb(one, tmpdir, 4) == CT_ERR_IO, "a folder is no image");
    snprintf(path, sizeof path, "%s/folder/red", tmpdir);
    CHECK(ct_caption_folder_load(&ds, path, 0, 4) == CT_ERR_FORMAT && strstr(ct_errmsg(), "no class subfolders"),
          "a folder of images without class folders: %s", ct_errmsg());
}

/* ---- contact sheet ------------------------------------------------------------------ */

static void test_sheet(void) {
    /* 3 images 4x4 RGB: image i is a solid colour, except pixel (0, 0) black */
    uint8_t im[3 * 3 * 16];
    const uint8_t col[3][3] = {{255, 0, 0}, {0, 200, 0}, {0, 0, 150}};
    for (int i = 0; i < 3; i++)
        for (int c = 0; c < 3; c++)
            for (int p = 0; p < 16; p++) im[(i * 3 + c) * 16 + p] = p == 0 ? 0 : col[i][c];
    int64_t idx[2] = {2, 0};
    float sc[2] = {0.9f, 0.5f};
    const char *names[2] = {"blue/\xc3\xa9t\xc3\xa9-very-long-file-name.png", "red.png"};
    ct_canvas c;
    CHECK_OK(ct_plot_contact_sheet(&c, "query: blue", im, 3, 3, 4, idx, sc, names, 2, 32, 4));
    /* layout: margin 8, title 16 + 8, tiles of 32 at x = 8 and 48 */
    const int y0 = 8 + 24;
    CHECK(c.w == 8 + 32 + 8 + 32 + 8, "width %d", c.w);
    CHECK(ct_canvas_get(&c, 8 + 20, y0 + 20) == 0x000096, "first tile shows image 2 (blue): %06x",
          ct_canvas_get(&c, 8 + 20, y0 + 20));
    CHECK(ct_canvas_get(&c, 8 + 7, y0 + 7) == 0 && ct_canvas_get(&c, 8 + 8, y0 + 8) == 0x000096,
          "nearest upscaling: source pixel (0, 0) covers 8 x 8 tile pixels");
    CHECK(ct_canvas_get(&c, 48 + 20, y0 + 20) == 0xff0000, "second tile shows image 0 (red)");
    int ink = 0;
    for (int y = y0 + 32; y < c.h; y++)
        for (int x = 8; x < 40; x++) ink += ct_canvas_get(&c, x, y) != 0xffffff;
    CHECK(ink > 20, "rank, score and name drawn under the first tile (%d pixels)", ink);
    ct_canvas_free(&c);
    int64_t bad[1] = {3};
    CHECK(ct_plot_contact_sheet(&c, NULL, im, 3, 3, 4, bad, NULL, NULL, 1, 32, 4) == CT_ERR_ARG, "idx out of range refused");
    /* gray images, no title or names, more results than columns */
    int64_t idx3[3] = {0, 1, 2};
    CHECK_OK(ct_plot_contact_sheet(&c, NULL, im, 3, 1, 4, idx3, NULL, NULL, 3, 16, 2));
    CHECK(c.w == 8 + 16 + 8 + 16 + 8 && c.h == 8 + 2 * (16 + 4 + 10) + 8 + 8, "2 columns, 2 rows: %dx%d", c.w, c.h);
    char path[512];
    snprintf(path, sizeof path, "%s/sheet.png", tmpdir);
    CHECK_OK(ct_canvas_write_png(&c, path));
    CHECK(access(path, F_OK) == 0, "sheet written");
    ct_canvas_free(&c);
}

int main(void) {
    snprintf(tmpdir, sizeof tmpdir, "/tmp/ct_test_zeroshot_XXXXXX");
    if (!mkdtemp(tmpdir)) return 1;
    test_weights();
    test_prompts();
    test_zeroshot_eval();
    test_image_text();
    test_caption_texts();
    test_topk();
    test_files();
    test_sheet();
    test_folder();
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    if (system(cmd)) fprintf(stderr, "could not remove %s\n", tmpdir);
    return test_done();
}
