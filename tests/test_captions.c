/* test_captions.c: image-caption datasets (contrast/captions.h): the captions:DIR
 * reader on good and bad captions.tsv files (every error names the .tsv file and the
 * line), RGBA composited on white, the emoji held-out rule on hand-computed hashes,
 * the emoji set on the installed packages (tools/deps.sh), and caption sampling. */
#include "harness.h"

#include <png.h>
#include <sys/stat.h>
#include <unistd.h>

static char g_tmp[64];

static const char *tpath(const char *rel) {
    static char buf[8][512];
    static int k;
    k = (k + 1) % 8;
    snprintf(buf[k], sizeof buf[k], "%s/%s", g_tmp, rel);
    return buf[k];
}

static void write_text(const char *rel, const char *text) {
    FILE *f = fopen(tpath(rel), "wb");
    CHECK(f && fwrite(text, 1, strlen(text), f) == strlen(text), "write %s", rel);
    if (f) fclose(f);
}

/* A w x h RGBA PNG of interleaved `px` (or gray+alpha when channels == 2). */
static void write_png_alpha(const char *rel, const uint8_t *px, int w, int h, int channels) {
    png_image p;
    memset(&p, 0, sizeof p);
    p.version = PNG_IMAGE_VERSION;
    p.width = (png_uint_32)w;
    p.height = (png_uint_32)h;
    p.format = channels == 4 ? PNG_FORMAT_RGBA : PNG_FORMAT_GA;
    CHECK(png_image_write_to_file(&p, tpath(rel), 0, px, 0, NULL), "write %s: %s", rel, p.message);
}

static void solid_png(const char *rel, uint8_t r, uint8_t g, uint8_t b) {
    uint8_t px[4 * 4 * 3];
    for (int i = 0; i < 16; i++) { px[3 * i] = r; px[3 * i + 1] = g; px[3 * i + 2] = b; }
    CHECK_OK(ct_png_write(tpath(rel), px, 4, 4, 3));
}

/* Loads "captions:<tmp>/<dir>" expecting `code` and a message holding each needle. */
static void expect_fail(const char *dir, ct_status code, const char *n1, const char *n2) {
    char spec[600];
    snprintf(spec, sizeof spec, "captions:%s", tpath(dir));
    ct_caption_dataset ds;
    ct_status st = ct_caption_dataset_load(&ds, spec, 1, 8);
    const char *m = ct_errmsg();
    CHECK(st == code, "%s: expected %s, got %s (%s)", dir, ct_status_name(code), ct_status_name(st), m);
    CHECK(strstr(m, n1) && (!n2 || strstr(m, n2)), "%s: message '%s' lacks '%s' / '%s'", dir, m, n1, n2 ? n2 : "");
    CHECK(ds.img.n == 0 && !ds.img.images && !ds.captions && !ds.files, "%s: a failed load leaves ds empty", dir);
    ct_caption_dataset_free(&ds);
}

/* ---- the held-out rule ------------------------------------------------------------ */
static void test_heldout_rule(void) {
    /* FNV-1a 32 reference values (the algorithm's published test vectors), also by
     * python: h = 0x811c9dc5; for b in s.encode(): h = ((h ^ b) * 0x01000193) % 2**32 */
    CHECK(ct_fnv1a32("", 0) == 0x811c9dc5u, "fnv1a32('')");
    CHECK(ct_fnv1a32("a", 1) == 0xe40c292cu, "fnv1a32('a')");
    CHECK(ct_fnv1a32("foobar", 6) == 0xbf9cf968u, "fnv1a32('foobar')");

    char key[128];
    CHECK_OK(ct_emoji_key(key, sizeof key, "1F468-200D-1F469-200D-1F467"));
    CHECK(!strcmp(key, "1f468-200d-1f469-200d-1f467"), "family key %s", key);
    CHECK_OK(ct_emoji_key(key, sizeof key, "0023-FE0F-20E3"));
    CHECK(!strcmp(key, "0023-20e3"), "keycap #: FE0F dropped, 4 digits kept: %s", key);
    CHECK_OK(ct_emoji_key(key, sizeof key, "23-20e3"));
    CHECK(!strcmp(key, "0023-20e3"), "short hex padded to 4 digits: %s", key);
    CHECK_OK(ct_emoji_key(key, sizeof key, "1F469-1F3FD-200D-1F4BB"));
    CHECK(!strcmp(key, "1f469-200d-1f4bb"), "skin tone dropped: %s", key);
    CHECK_OK(ct_emoji_key(key, sizeof key, "1F3FF"));
    CHECK(key[0] == '\0', "a lone skin-tone modifier has the empty key");
    CHECK(ct_emoji_key(key, sizeof key, "") == CT_ERR_ARG, "empty input refused");
    CHECK(ct_emoji_key(key, sizeof key, "1f600--1f601") == CT_ERR_ARG, "empty component refused");
    CHECK(ct_emoji_key(key, sizeof key, "1f60g") == CT_ERR_ARG, "non-hex refused");
    CHECK(ct_emoji_key(key, sizeof key, "110000") == CT_ERR_ARG, "beyond U+10FFFF refused");
    CHECK(ct_emoji_key(key, 8, "1f600-1f601") == CT_ERR_ARG, "a key longer than the buffer refused");

    /* Hand-computed (python as above), fnv1a32(key) and its value mod 5:
     *   "1f468-200d-1f469-200d-1f467"  0xfd5063da = 4249904090  mod 5 = 0  held out
     *   "1f1ef-1f1f5" (flag of Japan)  0xe0f9203c = 3774423100  mod 5 = 0  held out
     *   "1f935-200d-2642" (man in tuxedo) 0xc5d49453 = 3319043155 mod 5 = 0 held out
     *   "1f600" (grinning face)        0x9cb83468 = 2629317736  mod 5 = 1
     *   "0023-20e3" (keycap #)         0x2bc87437 =  734557239  mod 5 = 4
     *   "1f469-200d-1f4bb" (woman technologist) 0xbe063630 = 3188078128 mod 5 = 3
     *   "1f935" (person in tuxedo)     0x29231e25 =  690167333  mod 5 = 3 */
    CHECK(ct_fnv1a32("1f468-200d-1f469-200d-1f467", 27) == 0xfd5063dau, "fnv family");
    CHECK(ct_fnv1a32("1f600", 5) == 0x9cb83468u, "fnv grinning face");
    CHECK(ct_emoji_is_heldout("1F468-200D-1F469-200D-1F467") == 1, "family held out");
    CHECK(ct_emoji_is_heldout("1F1EF-1F1F5") == 1, "flag of Japan held out");
    CHECK(ct_emoji_is_heldout("1F935-200D-2642-FE0F") == 1, "man in tuxedo held out");
    CHECK(ct_emoji_is_heldout("1F600") == 0, "grinning face in training");
    CHECK(ct_emoji_is_heldout("0023-FE0F-20E3") == 0 && ct_emoji_is_heldout("0023-20E3") == 0, "keycap # in training");
    CHECK(ct_emoji_is_heldout("1F469-1F3FD-200D-1F4BB") == 0 && ct_emoji_is_heldout("1F469-200D-1F4BB") == 0,
          "woman technologist in training, any skin tone");
    CHECK(ct_emoji_is_heldout("1F935") == 0, "person in tuxedo in training");
    CHECK(ct_emoji_is_heldout("zz") == -1, "malformed input: -1");
}

/* ---- captions:DIR ----------------------------------------------------------------- */
static void test_captions_dir(void) {
    mkdir(tpath("c"), 0755);
    mkdir(tpath("c/sub"), 0755);
    solid_png("c/red.png", 255, 0, 0);
    solid_png("c/sub/blue.png", 0, 0, 255);
    solid_png("c/green.png", 0, 255, 0);
    /* comments, blank lines, CRLF, spaces around captions, several rows per image */
    write_text("c/captions.tsv",
               "# file\tcaption\n"
               "\n"
               "red.png\ta red square\r\n"
               "sub/blue.png\t  a blue square  \n"
               "   \n"
               "red.png\tred\n"
               "green.png\tgreen, the colour of grass\n");
    ct_caption_dataset ds;
    char spec[600];
    snprintf(spec, sizeof spec, "captions:%s", tpath("c"));
    CHECK_OK(ct_caption_dataset_load(&ds, spec, 1, 8));
    CHECK(ds.img.n == 3 && ds.img.c == 3 && ds.img.h == 8 && ds.img.w == 8, "3 images of (3, 8, 8)");
    CHECK(ds.img.n == 3 && !strcmp(ds.files[0], "red.png") && !strcmp(ds.files[1], "sub/blue.png") &&
              !strcmp(ds.files[2], "green.png"),
          "images in order of first appearance");
    CHECK(ds.caption_start && ds.caption_start[1] == 2 && ds.caption_start[2] == 3 && ds.caption_start[3] == 4,
          "captions per image 2, 1, 1");
    CHECK(ds.caption_start && !strcmp(ds.captions[0], "a red square") && !strcmp(ds.captions[1], "red") &&
              !strcmp(ds.captions[2], "a blue square") && !strcmp(ds.captions[3], "green, the colour of grass"),
          "captions trimmed, CR dropped, rows of one image kept in order");
    CHECK(ds.class_names == NULL && ds.img.num_classes == 3 && ds.img.labels[2] == 2,
          "no CLASS column: each image its own label");
    size_t S = 64;
    CHECK(ds.img.n == 3 && ds.img.images[0] == 255 && ds.img.images[S] == 0 && ds.img.images[3 * S + 2 * S] == 255,
          "pixels decoded (red, blue)");
    CHECK(ds.train == 1 && !strcmp(ds.img.name, "captions"), "split flag and name");
    ct_caption_dataset_free(&ds);
    ct_caption_dataset_free(&ds); /* idempotent */

    /* CLASS column; train/ and test/ folders */
    mkdir(tpath("s"), 0755);
    mkdir(tpath("s/train"), 0755);
    mkdir(tpath("s/test"), 0755);
    solid_png("s/train/a.png", 10, 20, 30);
    solid_png("s/train/b.png", 40, 50, 60);
    solid_png("s/test/c.png", 70, 80, 90);
    write_text("s/train/captions.tsv", "a.png\tan a\tletter\nb.png\ta b\tother\na.png\tthe a\tletter\n");
    write_text("s/test/captions.tsv", "c.png\ta c\tletter\n");
    snprintf(spec, sizeof spec, "captions:%s", tpath("s"));
    CHECK_OK(ct_caption_dataset_load(&ds, spec, 1, 4));
    CHECK(ds.img.n == 2 && ds.img.num_classes == 2 && ds.class_names && !strcmp(ds.class_names[0], "letter") &&
              !strcmp(ds.class_names[1], "other") && ds.img.labels[0] == 0 && ds.img.labels[1] == 1 &&
              ds.caption_start[1] == 2,
          "train/: classes from the CLASS column");
    ct_caption_dataset_free(&ds);
    CHECK_OK(ct_caption_dataset_load(&ds, spec, 0, 4));
    CHECK(ds.img.n == 1 && ds.train == 0 && !strcmp(ds.files[0], "c.png") && ds.img.images[0] == 70, "test/ split");
    ct_caption_dataset_free(&ds);
}

static void test_captions_errors(void) {
    mkdir(tpath("e"), 0755);
    solid_png("e/ok.png", 1, 2, 3);
    write_text("e/notimage.png", "just some text, not a picture\n");
    struct {
        const char *tsv, *n1, *n2;
        ct_status code;
    } cases[] = {
        {"# c\nok.png\tfine\nok.png a caption without a tab\n", "captions.tsv:3:", "no tab", CT_ERR_FORMAT},
        {"ok.png\tfine\n\nok.png\t   \n", "captions.tsv:3:", "empty caption", CT_ERR_FORMAT},
        {"missing.png\ta caption\n", "captions.tsv:1:", "missing.png", CT_ERR_IO},
        {"ok.png\tx\n/etc/passwd\ta caption\n", "captions.tsv:2:", "absolute path", CT_ERR_FORMAT},
        {"../e/ok.png\ta caption\n", "captions.tsv:1:", "'..'", CT_ERR_FORMAT},
        {"ok.png\tx\nsub/../../ok.png\ta caption\n", "captions.tsv:2:", "'..'", CT_ERR_FORMAT},
        {"ok.png\ta\tb\tc\n", "captions.tsv:1:", "more than 3", CT_ERR_FORMAT},
        {"ok.png\tx\tcls\nok.png\ty\n", "captions.tsv:2:", "every row or on none", CT_ERR_FORMAT},
        {"ok.png\tx\tcat\nok.png\ty\tdog\n", "captions.tsv:2:", "line 1", CT_ERR_FORMAT},
        {"ok.png\tcaf\xe9\n", "captions.tsv:1:", "not UTF-8", CT_ERR_FORMAT},
        {"ok.png\tfine\nnotimage.png\tx\n", "captions.tsv:2:", "notimage.png: not a PNG or JPEG", CT_ERR_FORMAT},
        {"# only a comment\n\n", "captions.tsv", "no rows", CT_ERR_FORMAT},
        {"\tno file\n", "captions.tsv:1:", "empty file name", CT_ERR_FORMAT},
        {"ok.png\tx\t \n", "captions.tsv:1:", "empty class", CT_ERR_FORMAT},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        write_text("e/captions.tsv", cases[i].tsv);
        expect_fail("e", cases[i].code, cases[i].n1, cases[i].n2);
    }
    /* a folder as an image; no captions.tsv at all; a folder, not a .tsv file */
    mkdir(tpath("e/dir.png"), 0755);
    write_text("e/captions.tsv", "dir.png\ta folder\n");
    expect_fail("e", CT_ERR_IO, "captions.tsv:1:", "not a regular file");
    mkdir(tpath("none"), 0755);
    expect_fail("none", CT_ERR_IO, "none/captions.tsv", "cannot open");
    ct_caption_dataset ds;
    CHECK(ct_caption_dataset_load(&ds, "captions:/x", 1, 0) == CT_ERR_ARG, "size 0 refused");
    CHECK(ct_caption_dataset_load(&ds, "pictures:/x", 1, 8) == CT_ERR_ARG && strstr(ct_errmsg(), "pictures:/x"),
          "unknown spec refused: %s", ct_errmsg());
}

/* ---- alpha composited on white ------------------------------------------------------ */
static void test_alpha_on_white(void) {
    mkdir(tpath("a"), 0755);
    /* 2x2 RGBA: column 0 black at alpha 128, column 1 (200, 100, 0) at alpha 100.
     * On white, v = (c a + 255 (255 - a)) / 255 rounded:
     *   (0, a=128):   255 * 127 / 255                = 127
     *   (200, a=100): (20000 + 39525) / 255 = 233.43 -> 233
     *   (100, a=100): (10000 + 39525) / 255 = 194.22 -> 194
     *   (0, a=100):   39525 / 255           = 155.00 -> 155 */
    uint8_t rgba[2 * 2 * 4] = {0, 0, 0, 128, 200, 100, 0, 100, 0, 0, 0, 128, 200, 100, 0, 100};
    write_png_alpha("a/rgba.png", rgba, 2, 2, 4);
    /* 2x2 gray + alpha: gray 50 at alpha 200 -> (10000 + 14025) / 255 = 94.2 -> 94;
     * fully transparent -> 255 */
    uint8_t ga[2 * 2 * 2] = {50, 200, 0, 0, 50, 200, 0, 0};
    write_png_alpha("a/ga.png", ga, 2, 2, 2);
    write_text("a/captions.tsv", "rgba.png\tsemi-transparent\nga.png\tgray and alpha\n");
    char spec[600];
    snprintf(spec, sizeof spec, "captions:%s", tpath("a"));
    ct_caption_dataset ds;
    CHECK_OK(ct_caption_dataset_load(&ds, spec, 1, 2));
    if (ds.img.n == 2) {
        const uint8_t *p = ds.img.images; /* (3, 2, 2) planar */
        int want[3][2] = {{127, 233}, {127, 194}, {127, 155}};
        int ok = 1;
        for (int c = 0; c < 3; c++)
            for (int y = 0; y < 2; y++)
                for (int x = 0; x < 2; x++) ok &= p[c * 4 + y * 2 + x] == want[c][x];
        CHECK(ok, "RGBA on white: got R %d %d G %d %d B %d %d", p[0], p[1], p[4], p[5], p[8], p[9]);
        const uint8_t *g = ds.img.images + 12;
        CHECK(g[0] == 94 && g[1] == 255 && g[4] == 94 && g[9] == 255, "gray+alpha on white, gray replicated: %d %d",
              g[0], g[1]);
    } else {
        CHECK(0, "alpha images not loaded");
    }
    ct_caption_dataset_free(&ds);
}

/* ---- caption sampling ---------------------------------------------------------------- */
static void test_sampling(void) {
    mkdir(tpath("m"), 0755);
    solid_png("m/x.png", 9, 9, 9);
    solid_png("m/y.png", 9, 9, 9);
    write_text("m/captions.tsv", "x.png\tone\nx.png\ttwo\nx.png\tthree\ny.png\tonly\n");
    char spec[600];
    snprintf(spec, sizeof spec, "captions:%s", tpath("m"));
    ct_caption_dataset ds;
    CHECK_OK(ct_caption_dataset_load(&ds, spec, 1, 4));
    if (ds.img.n != 2) { CHECK(0, "sampling fixture not loaded"); ct_caption_dataset_free(&ds); return; }
    int seen[3] = {0, 0, 0}, same = 1, differs = 0;
    for (int64_t e = 0; e < 300; e++) {
        const char *a = ct_caption_sample(&ds, 0, 42, e), *b = ct_caption_sample(&ds, 0, 42, e);
        same &= a == b;
        for (int k = 0; k < 3; k++) seen[k] += a == ds.captions[k];
        differs |= ct_caption_sample(&ds, 0, 43, e) != a;
        CHECK(!strcmp(ct_caption_sample(&ds, 1, 42, e), "only"), "a single caption is always drawn");
    }
    CHECK(same, "the same (seed, epoch, index) draws the same caption");
    CHECK(seen[0] + seen[1] + seen[2] == 300 && seen[0] > 60 && seen[1] > 60 && seen[2] > 60,
          "uniform over an image's captions: %d %d %d of 300", seen[0], seen[1], seen[2]);
    CHECK(differs, "another seed draws another sequence");
    /* pinned draws: a change of stream or RNG shows here */
    char got[64] = "";
    for (int64_t e = 0; e < 8; e++) strcat(got, ct_caption_sample(&ds, 0, 7, e) == ds.captions[0] ? "1"
                                               : ct_caption_sample(&ds, 0, 7, e) == ds.captions[1] ? "2" : "3");
    ct_rng r;
    char want[64] = "";
    for (int64_t e = 0; e < 8; e++) {
        r = ct_rng_make(ct_rng_key(7, (uint64_t)e, 0, CT_CAPTION_STREAM));
        want[e] = (char)('1' + ct_rng_below(&r, 3));
    }
    CHECK(!strcmp(got, want), "draws follow ct_rng_key(seed, epoch, index, CT_CAPTION_STREAM): %s vs %s", got, want);
    ct_caption_dataset_free(&ds);
}

/* ---- the emoji set on the installed packages ----------------------------------------- */
static int is_style(const char *file, const char *style) { return !strncmp(file, style, strlen(style)); }

static int caption_in(const ct_caption_dataset *ds, const char *text) {
    for (int64_t k = 0; k < ds->caption_start[ds->img.n]; k++)
        if (!strcmp(ds->captions[k], text)) return 1;
    return 0;
}

static void test_emoji(void) {
    ct_caption_dataset tr, te;
    CHECK_OK(ct_caption_dataset_load(&tr, "emoji", 1, 32));
    CHECK_OK(ct_caption_dataset_load(&te, "emoji", 0, 32));
    if (!tr.img.n || !te.img.n) {
        CHECK(0, "emoji set not loaded (sh tools/deps.sh installs ruby-gemojione and emoji-datasource-twitter)");
        ct_caption_dataset_free(&tr);
        ct_caption_dataset_free(&te);
        return;
    }
    int64_t eo[2] = {0, 0}, tw[2] = {0, 0};
    const ct_caption_dataset *sp[2] = {&tr, &te};
    for (int s = 0; s < 2; s++)
        for (int64_t i = 0; i < sp[s]->img.n; i++) {
            eo[s] += is_style(sp[s]->files[i], "emojione/");
            tw[s] += is_style(sp[s]->files[i], "twemoji/");
        }
    /* ruby-gemojione 3.3.0: 1,794 PNG less the 5 skin-tone swatches; emoji-datasource-
     * twitter 16.0.0: 1,911 entries + 1,875 skin variations with a Twemoji image, less
     * the 5 swatches */
    CHECK(eo[0] + eo[1] == 1789, "EmojiOne images: %lld + %lld", (long long)eo[0], (long long)eo[1]);
    CHECK(tw[0] + tw[1] == 3781, "Twemoji images: %lld + %lld", (long long)tw[0], (long long)tw[1]);
    CHECK(eo[0] + tw[0] == tr.img.n && eo[1] + tw[1] == te.img.n, "every image is one of the two styles");
    int ntr = tr.img.num_classes, nte = te.img.num_classes;
    double share = (double)nte / (ntr + nte);
    CHECK(ntr + nte == 1906 && share > 0.15 && share < 0.25, "emoji: %d train + %d held out (%.3f)", ntr, nte, share);
    CHECK(tr.train == 1 && te.train == 0 && tr.class_names && te.class_names, "split flags, class names");

    /* the rule, per image: a Twemoji base image's file name is its code points */
    int rule_ok = 1;
    for (int s = 0; s < 2; s++)
        for (int64_t i = 0; i < sp[s]->img.n; i++) {
            const char *f = sp[s]->files[i];
            if (!is_style(f, "twemoji/") || strstr(f, "1f3f")) continue; /* base images only */
            char cps[128];
            snprintf(cps, sizeof cps, "%.*s", (int)(strlen(f) - 8 - 4), f + 8);
            rule_ok &= ct_emoji_is_heldout(cps) == (s == 1);
        }
    CHECK(rule_ok, "every Twemoji base image is on the side ct_emoji_is_heldout gives");

    /* no held-out name anywhere in training: not a class name, not a caption */
    int leak = 0;
    for (int64_t k = 0; k < te.caption_start[te.img.n]; k++) {
        const char *c = te.captions[k];
        if (strncmp(c, "an emoji of ", 12)) continue;
        const char *name = c + 12;
        for (int j = 0; j < ntr; j++)
            if (!strcmp(tr.class_names[j], name)) { leak++; fprintf(stderr, "held-out name in train: %s\n", name); }
        if (caption_in(&tr, name) || caption_in(&tr, c)) { leak++; fprintf(stderr, "held-out caption: %s\n", c); }
    }
    CHECK(leak == 0, "%d held-out names found in the training split", leak);

    /* both styles for most emoji */
    int both = 0, total = 0;
    for (int s = 0; s < 2; s++) {
        int nc = sp[s]->img.num_classes;
        char *has = calloc((size_t)nc, 1);
        for (int64_t i = 0; i < sp[s]->img.n; i++)
            has[sp[s]->img.labels[i]] |= is_style(sp[s]->files[i], "emojione/") ? 1 : 2;
        for (int c = 0; c < nc; c++) both += has[c] == 3;
        total += nc;
        free(has);
    }
    CHECK(both > total * 6 / 10, "both styles for %d of %d emoji", both, total);

    /* captions: the name, "an emoji of {name}", keywords; a transparent corner is white */
    int64_t i0 = -1;
    for (int64_t i = 0; i < tr.img.n && i0 < 0; i++)
        if (!strcmp(tr.files[i], "twemoji/1f600.png")) i0 = i;
    CHECK(i0 >= 0, "grinning face in training");
    if (i0 >= 0) {
        const char *name = tr.class_names[tr.img.labels[i0]];
        int has_name = 0, has_tmpl = 0;
        char tmpl[128];
        snprintf(tmpl, sizeof tmpl, "an emoji of %s", name);
        for (int64_t k = tr.caption_start[i0]; k < tr.caption_start[i0 + 1]; k++) {
            has_name |= !strcmp(tr.captions[k], name);
            has_tmpl |= !strcmp(tr.captions[k], tmpl);
        }
        CHECK(!strcmp(name, "grinning face") && has_name && has_tmpl && tr.caption_start[i0 + 1] - tr.caption_start[i0] >= 3,
              "grinning face: name, template and keywords among its captions");
        const uint8_t *p = tr.img.images + (size_t)i0 * 3 * 32 * 32;
        CHECK(p[0] >= 250 && p[1024] >= 250 && p[2048] >= 250, "transparent corner composited on white: %d %d %d",
              p[0], p[1024], p[2048]);
    }
    double cpi = (double)tr.caption_start[tr.img.n] / tr.img.n;
    printf("emoji: train %lld images (EmojiOne %lld, Twemoji %lld), %d names, %.2f captions/image; "
           "test %lld images (EmojiOne %lld, Twemoji %lld), %d names; held out %.1f%% of names; both styles %d/%d\n",
           (long long)tr.img.n, (long long)eo[0], (long long)tw[0], ntr, cpi, (long long)te.img.n, (long long)eo[1],
           (long long)tw[1], nte, 100 * share, both, total);
    ct_caption_dataset_free(&tr);
    ct_caption_dataset_free(&te);

    /* a missing source folder is named */
    ct_caption_dataset ds;
    CHECK(ct_emoji_load(&ds, NULL, tpath("no-twemoji"), 1, 32) == CT_ERR_IO && strstr(ct_errmsg(), "no-twemoji/emoji.json"),
          "missing Twemoji folder named: %s", ct_errmsg());
    CHECK(ct_emoji_load(&ds, NULL, NULL, 1, 32) == CT_ERR_ARG, "no folder at all refused");
}

int main(void) {
    snprintf(g_tmp, sizeof g_tmp, "/tmp/ct_test_captions_XXXXXX");
    if (!mkdtemp(g_tmp)) { perror("mkdtemp"); return 1; }
    test_heldout_rule();
    test_captions_dir();
    test_captions_errors();
    test_alpha_on_white();
    test_sampling();
    test_emoji();
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", g_tmp);
    if (system(cmd) != 0) fprintf(stderr, "note: could not remove %s\n", g_tmp);
    return test_done();
}
