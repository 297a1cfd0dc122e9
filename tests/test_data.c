/* test_data.c: dataset readers (good and hostile files), augmentations, the loader's
 * reproducibility at any thread count, PNG writing and the `augment` command.
 * Everything runs on small files written to a temporary folder, plus one quick load
 * of the Fashion-MNIST test split from the Debian package. */
#include "harness.h"

#include <png.h>
#include <stdio.h> /* before jpeglib.h */
#include <jpeglib.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <zlib.h>

static char g_tmp[64];

static const char *tpath(const char *rel) {
    static char buf[8][512];
    static int k;
    k = (k + 1) % 8;
    snprintf(buf[k], sizeof buf[k], "%s/%s", g_tmp, rel);
    return buf[k];
}

static void mkdirs(const char *rel) {
    char cmd[700];
    snprintf(cmd, sizeof cmd, "mkdir -p '%s'", tpath(rel));
    CHECK(system(cmd) == 0, "mkdir %s", rel);
}

static void write_bytes(const char *rel, const void *p, size_t n, int gz) {
    const char *path = tpath(rel);
    if (gz) {
        gzFile f = gzopen(path, "wb");
        CHECK(f && gzwrite(f, p, (unsigned)n) == (int)n, "gzwrite %s", path);
        if (f) gzclose(f);
    } else {
        FILE *f = fopen(path, "wb");
        CHECK(f && fwrite(p, 1, n, f) == n, "write %s", path);
        if (f) fclose(f);
    }
}

/* Reads tpath(rel) into buf (at most cap bytes); returns the length. */
static size_t read_back(const char *rel, uint8_t *buf, size_t cap) {
    FILE *f = fopen(tpath(rel), "rb");
    size_t n = f ? fread(buf, 1, cap, f) : 0;
    if (f) fclose(f);
    return n;
}

/* An IDX file: magic 0x0000080<ndims>, dims big-endian, then `data` (may be short). */
static void write_idx(const char *rel, int gz, uint32_t magic, const uint32_t *dims, int ndims,
                      const uint8_t *data, size_t n) {
    uint8_t *buf = malloc(16 + n + 1);
    uint32_t words[4] = {magic, dims[0], ndims > 1 ? dims[1] : 0, ndims > 2 ? dims[2] : 0};
    for (int w = 0; w <= ndims; w++)
        for (int b = 0; b < 4; b++) buf[4 * w + b] = (uint8_t)(words[w] >> (24 - 8 * b));
    if (n) memcpy(buf + 4 + 4 * ndims, data, n);
    write_bytes(rel, buf, 4 + 4 * (size_t)ndims + n, gz);
    free(buf);
}

/* Loads `spec` and expects failure with `code` and a message containing both needles. */
static void expect_fail(const char *spec, int train, ct_status code, const char *needle1, const char *needle2) {
    ct_dataset ds;
    ct_status st = ct_dataset_load(&ds, spec, train);
    const char *m = ct_errmsg();
    CHECK(st == code, "%s: expected %s, got %s (%s)", spec, ct_status_name(code), ct_status_name(st), m);
    CHECK(strstr(m, needle1) && (!needle2 || strstr(m, needle2)), "%s: message '%s' lacks '%s' / '%s'", spec, m,
          needle1, needle2 ? needle2 : "");
    CHECK(ds.images == NULL && ds.n == 0, "%s: failed load leaves an empty dataset", spec);
    ct_dataset_free(&ds);
}

/* ---- IDX ------------------------------------------------------------------ */
static void test_idx(void) {
    enum { N = 5, H = 4, W = 3 };
    uint8_t img[N * H * W], lab[N];
    for (int i = 0; i < N * H * W; i++) img[i] = (uint8_t)(i * 3);
    for (int i = 0; i < N; i++) lab[i] = (uint8_t)(i % 3);
    uint32_t idim[3] = {N, H, W}, ldim[1] = {N};
    mkdirs("idx");
    write_idx("idx/train-images-idx3-ubyte", 0, 0x803, idim, 3, img, sizeof img);
    write_idx("idx/train-labels-idx1-ubyte.gz", 1, 0x801, ldim, 1, lab, N);
    write_idx("idx/t10k-images-idx3-ubyte.gz", 1, 0x803, idim, 3, img, sizeof img);
    write_idx("idx/t10k-labels-idx1-ubyte.gz", 1, 0x801, ldim, 1, lab, N);
    char spec[600];
    snprintf(spec, sizeof spec, "mnist:%s", tpath("idx"));
    for (int train = 1; train >= 0; train--) {
        ct_dataset ds;
        CHECK_OK(ct_dataset_load(&ds, spec, train));
        CHECK(ds.n == N && ds.c == 1 && ds.h == H && ds.w == W && ds.num_classes == 3,
              "IDX shape n=%lld c=%d h=%d w=%d classes=%d", (long long)ds.n, ds.c, ds.h, ds.w, ds.num_classes);
        CHECK(ds.images && !memcmp(ds.images, img, sizeof img), "IDX pixels (train=%d)", train);
        int ok = 1;
        for (int i = 0; i < N && ds.labels; i++) ok &= ds.labels[i] == lab[i];
        CHECK(ok && !strcmp(ds.name, "mnist") && fabsf(ds.mean[0] - 0.1307f) < 1e-6f, "IDX labels and name");
        ct_dataset_limit(&ds, 2);
        CHECK(ds.n == 2, "limit keeps the first 2");
        ct_dataset_free(&ds);
        ct_dataset_free(&ds); /* idempotent */
    }

    /* hostile files, one folder each */
    mkdirs("bad1"); /* pixels cut short */
    write_idx("bad1/train-images-idx3-ubyte", 0, 0x803, idim, 3, img, sizeof img - 7);
    write_idx("bad1/train-labels-idx1-ubyte", 0, 0x801, ldim, 1, lab, N);
    snprintf(spec, sizeof spec, "mnist:%s", tpath("bad1"));
    expect_fail(spec, 1, CT_ERR_FORMAT, "bad1/train-images-idx3-ubyte", "truncated");

    mkdirs("bad2"); /* wrong magic */
    write_idx("bad2/train-images-idx3-ubyte", 0, 0x804, idim, 3, img, sizeof img);
    write_idx("bad2/train-labels-idx1-ubyte", 0, 0x801, ldim, 1, lab, N);
    snprintf(spec, sizeof spec, "mnist:%s", tpath("bad2"));
    expect_fail(spec, 1, CT_ERR_FORMAT, "bad2/train-images-idx3-ubyte", "magic");

    mkdirs("bad3"); /* 4 labels for 5 images */
    uint32_t ldim4[1] = {4};
    write_idx("bad3/train-images-idx3-ubyte", 0, 0x803, idim, 3, img, sizeof img);
    write_idx("bad3/train-labels-idx1-ubyte", 0, 0x801, ldim4, 1, lab, 4);
    snprintf(spec, sizeof spec, "mnist:%s", tpath("bad3"));
    expect_fail(spec, 1, CT_ERR_FORMAT, "has 4 labels", "has 5 images");

    mkdirs("bad4"); /* 2^31 images announced, raw */
    uint32_t huge[3] = {0x80000000u, 28, 28};
    write_idx("bad4/train-images-idx3-ubyte", 0, 0x803, huge, 3, img, sizeof img);
    write_idx("bad4/train-labels-idx1-ubyte", 0, 0x801, ldim, 1, lab, N);
    snprintf(spec, sizeof spec, "mnist:%s", tpath("bad4"));
    expect_fail(spec, 1, CT_ERR_FORMAT, "bad4/train-images-idx3-ubyte", "2147483648");

    mkdirs("bad5"); /* 2^27 images (under the cap) announced in a tiny gzip file */
    uint32_t big[3] = {1u << 27, 28, 28};
    write_idx("bad5/train-images-idx3-ubyte.gz", 1, 0x803, big, 3, img, sizeof img);
    write_idx("bad5/train-labels-idx1-ubyte", 0, 0x801, ldim, 1, lab, N);
    snprintf(spec, sizeof spec, "mnist:%s", tpath("bad5"));
    expect_fail(spec, 1, CT_ERR_FORMAT, "bad5/train-images-idx3-ubyte.gz", "cannot hold");

    mkdirs("bad6"); /* 2^27 images announced in a raw file: size check, no allocation */
    write_idx("bad6/train-images-idx3-ubyte", 0, 0x803, big, 3, img, sizeof img);
    write_idx("bad6/train-labels-idx1-ubyte", 0, 0x801, ldim, 1, lab, N);
    snprintf(spec, sizeof spec, "mnist:%s", tpath("bad6"));
    expect_fail(spec, 1, CT_ERR_FORMAT, "bad6/train-images-idx3-ubyte", "truncated");

    mkdirs("bad7"); /* gzip stream cut in the middle */
    uint8_t many[2000];
    for (int i = 0; i < 2000; i++) many[i] = (uint8_t)(i * 7919 >> 3);
    uint32_t mdim[3] = {20, 10, 10};
    write_idx("bad7/train-images-idx3-ubyte.gz", 1, 0x803, mdim, 3, many, sizeof many);
    {
        FILE *f = fopen(tpath("bad7/train-images-idx3-ubyte.gz"), "rb");
        uint8_t buf[4096];
        size_t len = f ? fread(buf, 1, sizeof buf, f) : 0;
        if (f) fclose(f);
        write_bytes("bad7/train-images-idx3-ubyte.gz", buf, len / 2, 0);
    }
    write_idx("bad7/train-labels-idx1-ubyte", 0, 0x801, ldim, 1, lab, N);
    snprintf(spec, sizeof spec, "mnist:%s", tpath("bad7"));
    ct_dataset ds;
    CHECK(ct_dataset_load(&ds, spec, 1) == CT_ERR_FORMAT && strstr(ct_errmsg(), "bad7/train-images") &&
              (strstr(ct_errmsg(), "truncated") || strstr(ct_errmsg(), "corrupt")),
          "cut gzip: %s", ct_errmsg());

    mkdirs("bad8"); /* trailing bytes; header shorter than 16 bytes */
    uint8_t extra[N * H * W + 3] = {0};
    write_idx("bad8/train-images-idx3-ubyte", 0, 0x803, idim, 3, extra, sizeof extra);
    write_idx("bad8/train-labels-idx1-ubyte", 0, 0x801, ldim, 1, lab, N);
    write_bytes("bad8/t10k-images-idx3-ubyte", "\0\0\x08", 3, 0);
    write_idx("bad8/t10k-labels-idx1-ubyte", 0, 0x801, ldim, 1, lab, N);
    snprintf(spec, sizeof spec, "mnist:%s", tpath("bad8"));
    expect_fail(spec, 1, CT_ERR_FORMAT, "bad8/train-images-idx3-ubyte", "3 unexpected bytes");
    expect_fail(spec, 0, CT_ERR_FORMAT, "bad8/t10k-images-idx3-ubyte", "truncated");

    snprintf(spec, sizeof spec, "mnist:%s", tpath("nowhere"));
    expect_fail(spec, 1, CT_ERR_IO, "nowhere/train-images-idx3-ubyte", "cannot open");
    expect_fail("imagenet:/x", 1, CT_ERR_ARG, "imagenet", "expected");
}

/* ---- CIFAR ------------------------------------------------------------------ */
static void test_cifar(void) {
    mkdirs("c10");
    uint8_t rec[4][3073];
    for (int r = 0; r < 4; r++) {
        rec[r][0] = (uint8_t)(r * 3 % 10);
        for (int p = 0; p < 3072; p++) rec[r][1 + p] = (uint8_t)(p * 13 + r);
    }
    char name[64];
    for (int b = 1; b <= 5; b++) {
        snprintf(name, sizeof name, "c10/data_batch_%d.bin", b);
        write_bytes(name, rec, sizeof rec[0] * (b == 5 ? 1 : 2), 0);
    }
    write_bytes("c10/test_batch.bin", rec, sizeof rec[0] * 4, 0);
    char spec[600];
    snprintf(spec, sizeof spec, "cifar10:%s", tpath("c10"));
    ct_dataset ds;
    CHECK_OK(ct_dataset_load(&ds, spec, 1));
    CHECK(ds.n == 9 && ds.c == 3 && ds.h == 32 && ds.w == 32 && ds.num_classes == 10, "CIFAR-10 train shape n=%lld",
          (long long)ds.n);
    CHECK(ds.images && !memcmp(ds.images + 3072, rec[1] + 1, 3072) && ds.labels[1] == 3 && ds.labels[8] == 0,
          "CIFAR-10 record 1 of data_batch_1");
    ct_dataset_free(&ds);
    CHECK_OK(ct_dataset_load(&ds, spec, 0));
    CHECK(ds.n == 4 && ds.labels[3] == 9, "CIFAR-10 test split");
    ct_dataset_free(&ds);

    write_bytes("c10/test_batch.bin", rec, sizeof rec[0] * 2 - 5, 0);
    expect_fail(spec, 0, CT_ERR_FORMAT, "c10/test_batch.bin", "not a positive multiple");
    rec[1][0] = 12;
    write_bytes("c10/test_batch.bin", rec, sizeof rec[0] * 2, 0);
    expect_fail(spec, 0, CT_ERR_FORMAT, "c10/test_batch.bin", "record 1 has label 12");

    /* CIFAR-100 in the archive's subfolder: coarse then fine label bytes */
    mkdirs("c100/cifar-100-binary");
    uint8_t r100[3][3074];
    for (int r = 0; r < 3; r++) {
        r100[r][0] = (uint8_t)(r + 17);
        r100[r][1] = (uint8_t)(r * 40 + 9);
        for (int p = 0; p < 3072; p++) r100[r][2 + p] = (uint8_t)(p ^ r);
    }
    write_bytes("c100/cifar-100-binary/train.bin", r100, sizeof r100, 0);
    snprintf(spec, sizeof spec, "cifar100:%s", tpath("c100"));
    CHECK_OK(ct_dataset_load(&ds, spec, 1));
    CHECK(ds.n == 3 && ds.num_classes == 100 && ds.coarse_labels && ds.labels[2] == 89 &&
              ds.coarse_labels[2] == 19 && !memcmp(ds.images + 2 * 3072, r100[2] + 2, 3072),
          "CIFAR-100 fine/coarse labels and pixels");
    ct_dataset_free(&ds);
    r100[1][0] = 20;
    write_bytes("c100/cifar-100-binary/train.bin", r100, sizeof r100, 0);
    expect_fail(spec, 1, CT_ERR_FORMAT, "train.bin", "coarse label 20");
    expect_fail(spec, 0, CT_ERR_IO, "test.bin", "cannot open");
}

/* ---- image folders and PNG ------------------------------------------------------ */
/* A w x h JPEG: solid `rgb`, or (rgb NULL) a gradient with detail; progressive or baseline. */
static void write_jpeg(const char *rel, int w, int h, const uint8_t rgb[3], int progressive) {
    FILE *f = fopen(tpath(rel), "wb");
    CHECK(f != NULL, "open %s", rel);
    if (!f) return;
    struct jpeg_compress_struct c;
    struct jpeg_error_mgr e;
    c.err = jpeg_std_error(&e);
    jpeg_create_compress(&c);
    jpeg_stdio_dest(&c, f);
    c.image_width = (JDIMENSION)w;
    c.image_height = (JDIMENSION)h;
    c.input_components = 3;
    c.in_color_space = JCS_RGB;
    jpeg_set_defaults(&c);
    jpeg_set_quality(&c, 95, TRUE);
    if (progressive) jpeg_simple_progression(&c);
    jpeg_start_compress(&c, TRUE);
    uint8_t *row = malloc((size_t)w * 3);
    for (int x = 0; x < w; x++) memcpy(row + 3 * x, rgb ? rgb : (const uint8_t[3]){0, 0, 0}, 3);
    while (c.next_scanline < c.image_height) {
        for (int x = 0; x < w && !rgb; x++)
            for (int k = 0; k < 3; k++) row[3 * x + k] = (uint8_t)(x * 5 + (int)c.next_scanline * 3 * (k + 1) + (x * x % 7) * 9);
        jpeg_write_scanlines(&c, &row, 1);
    }
    jpeg_finish_compress(&c);
    jpeg_destroy_compress(&c);
    free(row);
    fclose(f);
}

static void test_png_and_folder(void) {
    /* PNG round trip through libpng */
    uint8_t px[5 * 7 * 3];
    for (int i = 0; i < (int)sizeof px; i++) px[i] = (uint8_t)(i * 37);
    CHECK_OK(ct_png_write(tpath("rt.png"), px, 7, 5, 3));
    png_image p;
    memset(&p, 0, sizeof p);
    p.version = PNG_IMAGE_VERSION;
    uint8_t back[sizeof px];
    int ok = png_image_begin_read_from_file(&p, tpath("rt.png")) && p.width == 7 && p.height == 5;
    p.format = PNG_FORMAT_RGB;
    ok = ok && png_image_finish_read(&p, NULL, back, 0, NULL);
    CHECK(ok && !memcmp(back, px, sizeof px), "PNG written then read back identically");
    CHECK(ct_png_write(tpath("nodir/x.png"), px, 7, 5, 3) == CT_ERR_IO && strstr(ct_errmsg(), "nodir/x.png"),
          "unwritable PNG path: %s", ct_errmsg());
    /* issue 20, hole 2: the PNG writer's temporary was "<path>.tmp", and a symlink
     * planted there was followed */
    write_bytes("victim", "precious", 8, 0);
    CHECK(symlink(tpath("victim"), tpath("planted.png.tmp")) == 0, "symlink");
    CHECK_OK(ct_png_write(tpath("planted.png"), px, 7, 5, 3));
    {
        uint8_t v[16];
        size_t vn = read_back("victim", v, sizeof v);
        CHECK(vn == 8 && !memcmp(v, "precious", 8), "a planted <png>.tmp symlink's target is untouched");
        struct stat sb;
        CHECK(lstat(tpath("planted.png"), &sb) == 0 && S_ISREG(sb.st_mode), "the PNG is a regular file");
    }

    /* folder: transparent PNGs are composited on black. libpng's simplified reader
     * blends onto the output buffer's contents when given no background, so an
     * uninitialised buffer gave whatever the heap held there. */
    mkdirs("ta/a");
    mkdirs("ta/b");
    {
        uint8_t rgba[6 * 5 * 4];
        for (int i = 0; i < 6 * 5; i++) {
            rgba[4 * i] = 200; rgba[4 * i + 1] = 100; rgba[4 * i + 2] = 50;
            rgba[4 * i + 3] = (uint8_t)(i % 2 ? 0 : 255); /* every other pixel fully transparent */
        }
        for (int k = 0; k < 12; k++) {
            png_image w;
            memset(&w, 0, sizeof w);
            w.version = PNG_IMAGE_VERSION;
            w.width = 6, w.height = 5, w.format = PNG_FORMAT_RGBA;
            char rel[64];
            snprintf(rel, sizeof rel, "ta/%c/%02d.png", k % 2 ? 'b' : 'a', k);
            CHECK(png_image_write_to_file(&w, tpath(rel), 0, rgba, 0, NULL), "write %s", rel);
        }
        /* leave garbage in freed heap blocks of the size the decoder will ask for */
        for (int k = 0; k < 64; k++) {
            uint8_t *junk = malloc(6 * 5 * 3);
            memset(junk, 0x4d, 6 * 5 * 3);
            free(junk);
        }
        char tspec[600];
        snprintf(tspec, sizeof tspec, "folder:%s@6", tpath("ta"));
        ct_dataset td;
        CHECK_OK(ct_dataset_load(&td, tspec, 1));
        int bad = 0;
        for (int64_t i = 0; i < td.n; i++)
            for (int c = 0; c < 3; c++)
                for (int y = 0; y < 5 && y < td.h; y++) {
                    const uint8_t *row = td.images + ((i * 3 + c) * td.h + y) * td.w;
                    for (int x = 0; x < 6 && x < td.w; x++)
                        if ((y * 6 + x) % 2 && row[x] != 0) bad++;
                }
        CHECK(td.n == 12 && bad == 0, "transparent pixels are black on load (%d wrong values)", bad);
        ct_dataset_free(&td);
    }

    /* folder: cat = 2 RGB PNGs, dog = 1 gray PNG + 1 JPEG; resized to 8x8 */
    mkdirs("f/cat");
    mkdirs("f/dog");
    uint8_t solid[6 * 9 * 3];
    for (int i = 0; i < 6 * 9; i++) { solid[3 * i] = 200; solid[3 * i + 1] = 100; solid[3 * i + 2] = 50; }
    CHECK_OK(ct_png_write(tpath("f/cat/a.png"), solid, 9, 6, 3));
    CHECK_OK(ct_png_write(tpath("f/cat/b.png"), px, 7, 5, 3));
    uint8_t gray[25];
    for (int i = 0; i < 25; i++) gray[i] = (uint8_t)(i * 10);
    CHECK_OK(ct_png_write(tpath("f/dog/g.png"), gray, 5, 5, 1));
    const uint8_t col[3] = {30, 160, 220};
    write_jpeg("f/dog/photo.jpg", 16, 16, col, 0);
    write_bytes("f/README", "not a class", 11, 0); /* top-level files are ignored */
    char spec[600];
    snprintf(spec, sizeof spec, "folder:%s@8", tpath("f"));
    ct_dataset ds;
    CHECK_OK(ct_dataset_load(&ds, spec, 1));
    CHECK(ds.n == 4 && ds.c == 3 && ds.h == 8 && ds.w == 8 && ds.num_classes == 2, "folder shape n=%lld c=%d",
          (long long)ds.n, ds.c);
    if (ds.n == 4) {
        CHECK(ds.labels[0] == 0 && ds.labels[1] == 0 && ds.labels[2] == 1 && ds.labels[3] == 1, "folder labels");
        int solid_ok = 1, gray_ok = 1, jpg_ok = 1;
        for (int q = 0; q < 64; q++) {
            solid_ok &= ds.images[q] == 200 && ds.images[64 + q] == 100 && ds.images[128 + q] == 50;
            const uint8_t *g = ds.images + 3 * (size_t)192; /* sample 3 = photo.jpg (sorted: g.png, photo.jpg) */
            jpg_ok &= abs(g[q] - 30) <= 4 && abs(g[64 + q] - 160) <= 4 && abs(g[128 + q] - 220) <= 4;
            const uint8_t *h = ds.images + 2 * (size_t)192;
            gray_ok &= h[q] == h[64 + q] && h[q] == h[128 + q];
        }
        CHECK(solid_ok, "a solid PNG stays solid after resizing (exact)");
        CHECK(gray_ok, "a gray PNG is replicated into the three channels");
        CHECK(jpg_ok, "a solid JPEG decodes to its colour within 4 levels");
    }
    ct_dataset_free(&ds);
    CHECK_OK(ct_dataset_load(&ds, spec, 0)); /* no train/ test/ split: the same folder */
    CHECK(ds.n == 4, "test split of an unsplit folder");
    ct_dataset_free(&ds);

    /* all gray -> one channel, with measured mean */
    mkdirs("fg/only");
    CHECK_OK(ct_png_write(tpath("fg/only/g.png"), gray, 5, 5, 1));
    snprintf(spec, sizeof spec, "folder:%s@5", tpath("fg"));
    CHECK_OK(ct_dataset_load(&ds, spec, 1));
    CHECK(ds.c == 1 && ds.images && !memcmp(ds.images, gray, 25) && fabsf(ds.mean[0] - 120.0f / 255) < 1e-5f,
          "gray folder at its own size: identical pixels, mean %g", ds.mean[0]);
    ct_dataset_free(&ds);

    /* bad folders */
    write_bytes("f/dog/notes.txt", "hello", 5, 0);
    snprintf(spec, sizeof spec, "folder:%s@8", tpath("f"));
    expect_fail(spec, 1, CT_ERR_FORMAT, "dog/notes.txt", "not a PNG or JPEG");
    remove(tpath("f/dog/notes.txt"));
    write_bytes("f/dog/cut.png", back, 0, 0);
    {
        FILE *f = fopen(tpath("f/cat/b.png"), "rb");
        uint8_t buf[512];
        size_t len = f ? fread(buf, 1, sizeof buf, f) : 0;
        if (f) fclose(f);
        write_bytes("f/dog/cut.png", buf, len / 2, 0);
    }
    expect_fail(spec, 1, CT_ERR_FORMAT, "dog/cut.png", "bad PNG");
    remove(tpath("f/dog/cut.png"));
    mkdirs("f/empty");
    expect_fail(spec, 1, CT_ERR_FORMAT, "f/empty", "empty class folder");
    mkdirs("nothing");
    snprintf(spec, sizeof spec, "folder:%s", tpath("nothing"));
    expect_fail(spec, 1, CT_ERR_FORMAT, "nothing", "no class subfolders");
    snprintf(spec, sizeof spec, "folder:%s@0", tpath("f"));
    expect_fail(spec, 1, CT_ERR_ARG, "size", NULL);
}

/* ---- hostile files: hangs and memory --------------------------------------------- */
/* SIGALRM without SA_RESTART: a load blocked in open() on a FIFO returns EINTR, so a
 * regression fails the test instead of hanging it. */
static void on_alarm(int sig) { (void)sig; }
static void expect_fail_nohang(const char *spec, int train, ct_status code, const char *n1, const char *n2) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_alarm;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGALRM, &sa, NULL);
    alarm(5);
    expect_fail(spec, train, code, n1, n2);
    alarm(0);
}

typedef struct {
    int st;
    long grew_kb; /* growth of the peak resident set during the load */
    char msg[1024];
} child_load;

/* Loads `spec` (train split) in a child process, which reports its status, message
 * and how much its peak resident memory grew: a size claimed by a file must not cost
 * memory the file cannot back. The child dies after 20 s, so a hang fails too.
 * Returns 0 when the child reported. */
static int load_in_child(const char *spec, child_load *r) {
    memset(r, 0, sizeof *r);
    int fds[2];
    if (pipe(fds)) return -1;
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        close(fds[0]);
        alarm(20);
        struct rusage a, b;
        getrusage(RUSAGE_SELF, &a);
        ct_dataset ds;
        child_load c;
        memset(&c, 0, sizeof c);
        c.st = ct_dataset_load(&ds, spec, 1);
        getrusage(RUSAGE_SELF, &b);
        c.grew_kb = b.ru_maxrss - a.ru_maxrss;
        snprintf(c.msg, sizeof c.msg, "%s", c.st ? ct_errmsg() : "");
        ct_dataset_free(&ds);
        _exit(write(fds[1], &c, sizeof c) == (ssize_t)sizeof c ? 0 : 1);
    }
    close(fds[1]);
    ssize_t n = pid > 0 ? read(fds[0], r, sizeof *r) : -1;
    close(fds[0]);
    int status = 0;
    if (pid > 0) waitpid(pid, &status, 0);
    return n == (ssize_t)sizeof *r ? 0 : -1;
}

#define SMALL_KB (24 * 1024) /* "small": far below what the hostile claims below cost */

/* The file `rel` must be refused with a message holding both needles, the load's
 * peak memory staying small. */
static void expect_fail_small(const char *spec, const char *what, const char *n1, const char *n2) {
    child_load r;
    int ok = load_in_child(spec, &r) == 0;
    CHECK(ok, "%s: the loading child did not report (hung or crashed)", what);
    if (!ok) return;
    CHECK(r.st == CT_ERR_FORMAT && strstr(r.msg, n1) && strstr(r.msg, n2), "%s: expected a refusal naming %s with '%s', got %s: %s",
          what, n1, n2, ct_status_name((ct_status)r.st), r.msg);
    CHECK(r.grew_kb < SMALL_KB, "%s: peak memory grew by %ld KiB (should stay under %d)", what, r.grew_kb, SMALL_KB);
}

/* Issue 20, holes 5, 6, 7 and 10. */
static void test_hostile_claims(void) {
    char spec[600];
    uint8_t lab[5] = {0, 1, 2, 0, 1};
    uint32_t ldim[1] = {5};

    /* hole 5: a 100 KB gzip IDX claiming two million 7x7 images (98 MB) allocated
     * (and zeroed) all of it before finding out the data is missing */
    mkdirs("gzclaim");
    size_t nrnd = 100000;
    uint8_t *rnd = malloc(nrnd);
    uint64_t x = 88172645463325252ull;
    for (size_t i = 0; i < nrnd; i++) x ^= x << 13, x ^= x >> 7, x ^= x << 17, rnd[i] = (uint8_t)x;
    uint32_t claim[3] = {2000000, 7, 7};
    write_idx("gzclaim/train-images-idx3-ubyte.gz", 1, 0x803, claim, 3, rnd, nrnd);
    write_idx("gzclaim/train-labels-idx1-ubyte", 0, 0x801, ldim, 1, lab, 5);
    free(rnd);
    snprintf(spec, sizeof spec, "mnist:%s", tpath("gzclaim"));
    expect_fail_small(spec, "gzip IDX claiming 2M images", "gzclaim/train-images-idx3-ubyte.gz", "truncated");

    /* hole 6: FIFOs where files are expected hung the load forever */
    mkdirs("fifoidx");
    CHECK(mkfifo(tpath("fifoidx/train-images-idx3-ubyte"), 0600) == 0, "mkfifo");
    write_idx("fifoidx/train-labels-idx1-ubyte", 0, 0x801, ldim, 1, lab, 5);
    snprintf(spec, sizeof spec, "mnist:%s", tpath("fifoidx"));
    expect_fail_nohang(spec, 1, CT_ERR_IO, "fifoidx/train-images-idx3-ubyte", "not a regular file");
    mkdirs("fifocifar");
    CHECK(mkfifo(tpath("fifocifar/test_batch.bin"), 0600) == 0, "mkfifo");
    snprintf(spec, sizeof spec, "cifar10:%s", tpath("fifocifar"));
    expect_fail_nohang(spec, 0, CT_ERR_IO, "fifocifar/test_batch.bin", "not a regular file");
    mkdirs("fifofolder/c");
    uint8_t px[4 * 4 * 3] = {0};
    CHECK_OK(ct_png_write(tpath("fifofolder/c/a.png"), px, 4, 4, 3));
    CHECK(mkfifo(tpath("fifofolder/c/b.png"), 0600) == 0, "mkfifo");
    snprintf(spec, sizeof spec, "folder:%s@4", tpath("fifofolder"));
    expect_fail_nohang(spec, 1, CT_ERR_IO, "fifofolder/c/b.png", "not a regular file");

    /* hole 7: a truncated JPEG loaded with gray filling (libjpeg's warnings dropped) */
    static uint8_t buf[1 << 16];
    mkdirs("cutjpg/c");
    write_jpeg("cutjpg/c/whole.jpg", 64, 64, NULL, 0);
    size_t n = read_back("cutjpg/c/whole.jpg", buf, sizeof buf);
    CHECK(n > 1000, "JPEG written (%zu bytes)", n);
    remove(tpath("cutjpg/c/whole.jpg"));
    write_bytes("cutjpg/c/cut.jpg", buf, n / 2, 0);
    snprintf(spec, sizeof spec, "folder:%s@8", tpath("cutjpg"));
    expect_fail(spec, 1, CT_ERR_FORMAT, "cutjpg/c/cut.jpg", "bad JPEG");

    /* hole 7: a few hundred bytes of progressive JPEG declaring 8192 x 8192 made
     * libjpeg zero ~200 MB of coefficients; 4096 x 4096 is under the pixel limit
     * but the file's bytes cannot hold it either */
    mkdirs("bigjpg/c");
    write_jpeg("bigjpg/c/x.jpg", 16, 16, NULL, 1);
    n = read_back("bigjpg/c/x.jpg", buf, sizeof buf);
    size_t sof = 0;
    for (size_t i = 2; i + 9 < n && !sof; i++)
        if (buf[i] == 0xFF && buf[i + 1] == 0xC2) sof = i;
    CHECK(sof > 0 && n < 2048, "a small progressive JPEG (%zu bytes, SOF2 at %zu)", n, sof);
    const int sides[2] = {8192, 4096};
    for (int k = 0; k < 2 && sof; k++) {
        buf[sof + 5] = buf[sof + 7] = (uint8_t)(sides[k] >> 8);
        buf[sof + 6] = buf[sof + 8] = (uint8_t)sides[k];
        write_bytes("bigjpg/c/x.jpg", buf, n, 0);
        snprintf(spec, sizeof spec, "folder:%s@8", tpath("bigjpg"));
        expect_fail_small(spec, sides[k] == 8192 ? "tiny JPEG declaring 8192x8192" : "tiny JPEG declaring 4096x4096",
                          "bigjpg/c/x.jpg", sides[k] == 8192 ? "limit" : "cannot fit");
    }

    /* hole 7: a real 4096 x 4096 photo is decoded at 1/8 scale for a 32 x 32
     * dataset, not held at full size (48 MB) */
    mkdirs("photo/c");
    const uint8_t col[3] = {40, 120, 200};
    write_jpeg("photo/c/big.jpg", 4096, 4096, col, 0);
    snprintf(spec, sizeof spec, "folder:%s@32", tpath("photo"));
    child_load r;
    CHECK(load_in_child(spec, &r) == 0 && r.st == CT_OK && r.grew_kb < SMALL_KB,
          "a 4096x4096 JPEG loads at @32 in little memory (status %d, grew %ld KiB): %s", r.st, r.grew_kb, r.msg);

    /* PNG: the same pixel limit, and a declared size the bytes cannot hold */
    mkdirs("bigpng/c");
    uint8_t g[16] = {0};
    CHECK_OK(ct_png_write(tpath("bigpng/c/x.png"), g, 4, 4, 1));
    n = read_back("bigpng/c/x.png", buf, sizeof buf);
    CHECK(n > 33 && !memcmp(buf + 12, "IHDR", 4), "PNG with IHDR first");
    for (int k = 0; k < 2 && n > 33; k++) {
        for (int b = 0; b < 4; b++) buf[16 + b] = buf[20 + b] = (uint8_t)((uint32_t)sides[k] >> (24 - 8 * b));
        uint32_t crc = (uint32_t)crc32(0, buf + 12, 17);
        for (int b = 0; b < 4; b++) buf[29 + b] = (uint8_t)(crc >> (24 - 8 * b));
        write_bytes("bigpng/c/x.png", buf, n, 0);
        snprintf(spec, sizeof spec, "folder:%s@8", tpath("bigpng"));
        expect_fail_small(spec, sides[k] == 8192 ? "PNG declaring 8192x8192" : "tiny PNG declaring 4096x4096",
                          "bigpng/c/x.png", sides[k] == 8192 ? "limit" : "cannot fit");
    }

    /* hole 10: folder:DIR@1024 reserved 3 MiB per directory entry before opening
     * any file (60 empty files: 180 MB zeroed) */
    mkdirs("empties/c");
    for (int i = 0; i < 60; i++) {
        char rel[64];
        snprintf(rel, sizeof rel, "empties/c/%02d.png", i);
        write_bytes(rel, "", 0, 0);
    }
    snprintf(spec, sizeof spec, "folder:%s@1024", tpath("empties"));
    expect_fail_small(spec, "60 empty files at @1024", "empties/c/00.png", "empty file");
}

/* ---- augmentation --------------------------------------------------------------- */
/* An in-memory dataset of n random images. */
static void make_synth(ct_dataset *ds, int64_t n, int c, int h, int w, uint64_t seed) {
    memset(ds, 0, sizeof *ds);
    ds->n = n; ds->c = c; ds->h = h; ds->w = w; ds->num_classes = 4;
    ds->images = ct_alloc((size_t)n * c * h * w);
    ds->labels = ct_alloc((size_t)n * sizeof(int32_t));
    ct_rng r = ct_rng_make(ct_mix64(seed));
    for (size_t i = 0; i < (size_t)n * c * h * w; i++) ds->images[i] = (uint8_t)ct_rng_below(&r, 256);
    for (int64_t i = 0; i < n; i++) ds->labels[i] = (int32_t)(i % 4);
    for (int k = 0; k < 3; k++) { ds->mean[k] = 0.5f; ds->std[k] = 0.25f; }
}

static void test_augment_spec(void) {
    ct_augment a, b;
    ct_augment_defaults(&a, 1);
    CHECK(a.crop && a.crop_scale[0] == 0.2f && a.flip_p == 0.5f && a.brightness == 0.4f && a.saturation == 0 &&
              a.mean[0] == 0.2860f && a.std[0] == 0.3530f,
          "Fashion-MNIST defaults");
    ct_augment_defaults(&a, 3);
    CHECK(a.saturation == 0.4f && a.hue == 0.1f && a.gray_p == 0.2f && a.mean[2] == 0.4465f, "CIFAR defaults");
    CHECK_OK(ct_augment_parse(&a, "crop=0.3:0.9:0.5:2, flip=0.25,jitter=0.1:0.2:0.3:0.05@0.6,gray=0.1,"
                                  "blur=0.2:1.5:5@0.4,solarize=0.7@0.3,size=20x24,mean=0.1:0.2:0.3,std=0.5"));
    CHECK(a.crop_scale[0] == 0.3f && a.crop_scale[1] == 0.9f && a.crop_ratio[1] == 2 && a.flip_p == 0.25f &&
              a.brightness == 0.1f && a.hue == 0.05f && a.jitter_p == 0.6f && a.gray_p == 0.1f &&
              a.blur_sigma[1] == 1.5f && a.blur_kernel == 5 && a.blur_p == 0.4f && a.solarize_threshold == 0.7f &&
              a.solarize_p == 0.3f && a.out_h == 20 && a.out_w == 24 && a.mean[2] == 0.3f && a.std[1] == 0.5f,
          "every field parsed");
    char desc[512];
    ct_augment_describe(&a, desc, sizeof desc);
    ct_augment_defaults(&b, 3);
    CHECK_OK(ct_augment_parse(&b, desc));
    CHECK(b.crop_ratio[1] == a.crop_ratio[1] && b.blur_kernel == 5 && b.solarize_p == a.solarize_p &&
              fabsf(b.hue - a.hue) < 1e-6f && b.out_w == 24,
          "describe -> parse round trip: %s", desc);
    CHECK_OK(ct_augment_parse(&b, "blur=0.5,solarize=0.1,crop=off,jitter=0"));
    CHECK(b.blur_p == 0.5f && b.solarize_p == 0.1f && !b.crop && b.jitter_p == 0, "bare probabilities and off");
    CHECK_OK(ct_augment_parse(&b, "none"));
    CHECK(!b.crop && b.flip_p == 0 && b.gray_p == 0 && b.blur_p == 0, "none switches steps off");
    const char *bad[] = {"foo=1", "flip=2", "crop=0.5", "jitter=a:b:c:d", "jitter=0.4:0.4@0.8", "blur=1:2@7",
                         "size=0", "std=0", "flip", "crop=0.2:1:", "gray=0.5@0.5", "blur=0.1:2:4@0.5",
                         /* found by fuzz/fuzz_cli: finite as double, inf as float (and then
                          * accepted, normalising every pixel to 0) */
                         "std=1e308", "mean=-1e39", "jitter=1e39:0:0:0", "std=nan"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        ct_augment_defaults(&b, 1);
        ct_status st = ct_augment_parse(&b, bad[i]);
        CHECK(st == CT_ERR_ARG && strstr(ct_errmsg(), "augment"), "'%s' must be rejected (%s)", bad[i],
              ct_errmsg());
    }
}

static void test_augment_check_finite(void) {
    ct_dataset ds;
    make_synth(&ds, 3, 1, 6, 6, 1);
    ct_augment a;
    ct_augment_for_dataset(&a, &ds);
    CHECK_OK(ct_augment_check(&a, &ds));
    a.std[0] = INFINITY;
    CHECK(ct_augment_check(&a, &ds) == CT_ERR_ARG, "an infinite std is refused");
    ct_augment_for_dataset(&a, &ds);
    a.mean[0] = NAN;
    CHECK(ct_augment_check(&a, &ds) == CT_ERR_ARG, "a NaN mean is refused");
    ct_dataset_free(&ds);
}

static void test_augment_ops(void) {
    ct_dataset ds;
    make_synth(&ds, 3, 3, 10, 12, 5);
    ct_augment a;
    ct_augment_for_dataset(&a, &ds);
    const size_t S = 120, per = 3 * S;
    float *scratch = malloc(ct_augment_scratch_floats(&a, &ds) * sizeof(float));
    float v[3 * 120], e[3 * 120], ref[3 * 120], w[3 * 120];
    for (size_t q = 0; q < per; q++) ref[q] = (ds.images[per + q] / 255.0f - 0.5f) / 0.25f;
    CHECK_OK(ct_data_eval_batch(e, &ds, &a, 1, 1));
    check_close("eval path = (x/255 - mean)/std", e, ref, per, 1e-6, 1e-6);
    CHECK(ct_data_eval_batch(e, &ds, &a, 2, 2) == CT_ERR_ARG, "eval range past the end is rejected");

    ct_augment n = a;
    ct_augment_parse(&n, "none");
    ct_augment_view(v, scratch, &n, &ds, 1, 77);
    check_close("'none' view = eval path", v, ref, per, 1e-6, 1e-6);
    ct_augment_parse(&n, "crop=1:1:1.2:1.2");
    ct_augment_view(v, scratch, &n, &ds, 1, 77); /* 12x10 is ratio 1.2: the crop is the whole image */
    check_close("crop of scale 1 at the image's ratio = eval path", v, ref, per, 1e-6, 1e-6);

    ct_augment_parse(&n, "none,flip=1");
    ct_augment_view(v, scratch, &n, &ds, 1, 77);
    for (int c = 0; c < 3; c++)
        for (int y = 0; y < 10; y++)
            for (int x = 0; x < 12; x++) w[(c * 10 + y) * 12 + x] = ref[(c * 10 + y) * 12 + 11 - x];
    check_close("flip=1 mirrors", v, w, per, 1e-6, 1e-6);

    ct_augment_parse(&n, "none,solarize=0@1");
    ct_augment_view(v, scratch, &n, &ds, 1, 77);
    for (size_t q = 0; q < per; q++) w[q] = (1 - ds.images[per + q] / 255.0f - 0.5f) / 0.25f;
    check_close("solarize threshold 0 inverts", v, w, per, 1e-5, 1e-5);

    ct_augment_parse(&n, "none,gray=1");
    ct_augment_view(v, scratch, &n, &ds, 1, 77);
    for (size_t q = 0; q < S; q++) {
        const uint8_t *p = ds.images + per;
        w[q] = w[S + q] = w[2 * S + q] = ((0.299f * p[q] + 0.587f * p[S + q] + 0.114f * p[2 * S + q]) / 255 - 0.5f) / 0.25f;
    }
    check_close("gray=1 gives ITU-R 601 luma in every channel", v, w, per, 1e-5, 1e-5);

    /* brightness only: every unclamped pixel scaled by one factor in [0.5, 1.5] */
    ct_augment_parse(&n, "none,jitter=0.5:0:0:0@1");
    int ok = 1;
    for (uint64_t key = 0; key < 10; key++) {
        ct_augment_view(v, scratch, &n, &ds, 1, key);
        float f = -1;
        for (size_t q = 0; q < per; q++) {
            float x = ds.images[per + q] / 255.0f, y = v[q] * 0.25f + 0.5f;
            if (x < 0.1f || y > 0.999f) continue;
            if (f < 0) f = y / x;
            ok &= fabsf(y / x - f) < 1e-4f * (1 + f);
        }
        ok &= f >= 0.5f - 1e-5f && f <= 1.5f + 1e-5f;
    }
    CHECK(ok, "brightness jitter multiplies by one factor in [0.5, 1.5]");

    /* hue only: a rotation of hue keeps each pixel's max and min channel */
    ct_augment_parse(&n, "none,jitter=0:0:0:0.5@1");
    ok = 1;
    int changed = 0;
    for (uint64_t key = 0; key < 5; key++) {
        ct_augment_view(v, scratch, &n, &ds, 1, key);
        for (size_t q = 0; q < S; q++) {
            float in[3], out[3];
            for (int c = 0; c < 3; c++) { in[c] = ds.images[per + c * S + q] / 255.0f; out[c] = v[c * S + q] * 0.25f + 0.5f; }
            float imx = fmaxf(in[0], fmaxf(in[1], in[2])), omx = fmaxf(out[0], fmaxf(out[1], out[2]));
            float imn = fminf(in[0], fminf(in[1], in[2])), omn = fminf(out[0], fminf(out[1], out[2]));
            ok &= fabsf(imx - omx) < 1e-5f && fabsf(imn - omn) < 1e-5f;
            changed |= fabsf(in[0] - out[0]) > 0.05f;
        }
    }
    CHECK(ok && changed, "hue jitter keeps each pixel's max and min (and changes colours)");

    /* blur: a constant image stays constant; a noisy one loses variance */
    ct_dataset flat;
    make_synth(&flat, 1, 1, 9, 9, 1);
    memset(flat.images, 100, 81);
    ct_augment fa;
    ct_augment_for_dataset(&fa, &flat);
    ct_augment_parse(&fa, "none,blur=1:2:5@1");
    float fs[81], fr[81];
    float *fscratch = malloc(ct_augment_scratch_floats(&fa, &flat) * sizeof(float));
    ct_augment_view(fs, fscratch, &fa, &flat, 0, 3);
    for (int q = 0; q < 81; q++) fr[q] = (100 / 255.0f - 0.5f) / 0.25f;
    check_close("blur of a constant image", fs, fr, 81, 1e-5, 1e-5);
    ct_dataset_free(&flat);
    make_synth(&flat, 1, 1, 9, 9, 2);
    double v0 = 0, v1 = 0, m0 = 0, m1 = 0;
    ct_augment_view(fs, fscratch, &fa, &flat, 0, 3);
    ct_augment_parse(&fa, "blur=0");
    ct_augment_view(fr, fscratch, &fa, &flat, 0, 3);
    for (int q = 0; q < 81; q++) { m0 += fr[q]; m1 += fs[q]; }
    for (int q = 0; q < 81; q++) { v0 += (fr[q] - m0 / 81) * (fr[q] - m0 / 81); v1 += (fs[q] - m1 / 81) * (fs[q] - m1 / 81); }
    CHECK(v1 < 0.5 * v0, "blur sigma >= 1 halves the variance of noise (%g -> %g)", v0, v1);
    free(fscratch);
    ct_dataset_free(&flat);

    /* the default pipeline: deterministic per key, varied across keys, values in range */
    ct_augment_parse(&a, "blur=0.5,solarize=0.2,size=16x8");
    float *s2 = malloc(ct_augment_scratch_floats(&a, &ds) * sizeof(float));
    float d1[3 * 128], d2[3 * 128];
    ct_augment_view(d1, s2, &a, &ds, 2, 11);
    ct_augment_view(d2, s2, &a, &ds, 2, 11);
    CHECK(!memcmp(d1, d2, sizeof d1), "same key, same view");
    int differ = 0, inrange = 1;
    for (uint64_t key = 12; key < 20; key++) {
        ct_augment_view(d2, s2, &a, &ds, 2, key);
        differ += memcmp(d1, d2, sizeof d1) != 0;
        for (int q = 0; q < 3 * 128; q++) inrange &= d2[q] >= -2.0f - 1e-5f && d2[q] <= 2.0f + 1e-5f;
    }
    CHECK(differ == 8 && inrange, "other keys give other views (%d/8), values within [(0-m)/s, (1-m)/s]", differ);
    free(s2);
    free(scratch);
    ct_dataset_free(&ds);
}

/* ---- loader ------------------------------------------------------------------------ */
typedef struct {
    float *x;
    int64_t *index;
    int32_t *labels;
    int64_t nb, rows, *n;
} epoch_dump;

/* Runs epochs 0 and 1 of a loader and records every batch. */
static void run_loader(epoch_dump d[2], const ct_dataset *ds, const ct_augment *a, int64_t batch, int views,
                       int drop_last, int threads, int restart) {
    ct_loader L;
    CHECK_OK(ct_loader_init(&L, ds, a, batch, views, drop_last, 42, threads));
    size_t per = (size_t)ds->c * ds->h * ds->w;
    for (int e = 0; e < 2; e++) {
        if (restart) { /* start, take one batch, abandon the epoch: must not hang or change results */
            ct_batch *b;
            CHECK_OK(ct_loader_start_epoch(&L, 7));
            CHECK_OK(ct_loader_next(&L, &b));
        }
        CHECK_OK(ct_loader_start_epoch(&L, e));
        d[e].x = calloc((size_t)views * ds->n * per, sizeof(float));
        d[e].index = calloc((size_t)ds->n, sizeof(int64_t));
        d[e].labels = calloc((size_t)ds->n, sizeof(int32_t));
        d[e].n = calloc((size_t)L.n_batches + 1, sizeof(int64_t));
        d[e].nb = d[e].rows = 0;
        ct_batch *b;
        while (ct_loader_next(&L, &b) == CT_OK && b) {
            CHECK(b->batch_no == d[e].nb && b->views == views, "batch order");
            memcpy(d[e].x + (size_t)d[e].rows * views * per, b->x, (size_t)b->n * views * per * sizeof(float));
            memcpy(d[e].index + d[e].rows, b->index, (size_t)b->n * sizeof(int64_t));
            memcpy(d[e].labels + d[e].rows, b->labels, (size_t)b->n * sizeof(int32_t));
            d[e].n[d[e].nb++] = b->n;
            d[e].rows += b->n;
        }
    }
    ct_loader_free(&L);
    ct_loader_free(&L); /* idempotent */
}

static void free_dump(epoch_dump d[2]) {
    for (int e = 0; e < 2; e++) { free(d[e].x); free(d[e].index); free(d[e].labels); free(d[e].n); }
}

static void test_loader(void) {
    ct_dataset ds;
    make_synth(&ds, 37, 3, 6, 5, 9);
    ct_augment a;
    ct_augment_for_dataset(&a, &ds);
    ct_augment_parse(&a, "blur=0.5,solarize=0.2");
    size_t per = (size_t)3 * 6 * 5;
    epoch_dump ref[2], got[2];
    run_loader(ref, &ds, &a, 8, 2, 0, 0, 0);
    CHECK(ref[0].nb == 5 && ref[0].n[4] == 5 && ref[0].rows == 37, "37 samples in batches of 8: 5 batches, last 5");
    int seen[37] = {0}, perm_ok = 1, labels_ok = 1;
    for (int i = 0; i < 37; i++) seen[ref[0].index[i]]++;
    for (int i = 0; i < 37; i++) {
        perm_ok &= seen[i] == 1;
        labels_ok &= ref[0].labels[i] == ds.labels[ref[0].index[i]];
    }
    CHECK(perm_ok && labels_ok, "an epoch visits each sample once, with its label");
    CHECK(memcmp(ref[0].index, ref[1].index, 37 * sizeof(int64_t)) != 0, "epochs are shuffled differently");
    /* batch 2, sample 1, view 2 is exactly the per-sample definition */
    float *v = malloc(per * sizeof(float)), *scr = malloc(ct_augment_scratch_floats(&a, &ds) * sizeof(float));
    int64_t idx = ref[1].index[17];
    ct_augment_view(v, scr, &a, &ds, idx, ct_rng_key(42, 1, (uint64_t)idx, 1));
    CHECK(!memcmp(v, ref[1].x + ((size_t)2 * 8 * 2 + 8 + 1) * per, per * sizeof(float)),
          "view 2 of a sample = ct_augment_view with key (seed, epoch, index, 1), rows [B, 2B) of the batch");
    free(v);
    free(scr);

    for (int threads = 1; threads <= 3; threads++) {
        for (int restart = 0; restart < 2; restart++) {
            run_loader(got, &ds, &a, 8, 2, 0, threads, restart);
            int same = 1;
            for (int e = 0; e < 2; e++)
                same &= got[e].rows == 37 && !memcmp(got[e].x, ref[e].x, 37 * 2 * per * sizeof(float)) &&
                        !memcmp(got[e].index, ref[e].index, 37 * sizeof(int64_t)) &&
                        !memcmp(got[e].labels, ref[e].labels, 37 * sizeof(int32_t));
            CHECK(same, "%d thread(s)%s: batches byte-identical to the synchronous loader", threads,
                  restart ? " after an abandoned epoch" : "");
            free_dump(got);
        }
    }
    free_dump(ref);

    run_loader(got, &ds, &a, 8, 1, 1, 2, 0);
    CHECK(got[0].nb == 4 && got[0].rows == 32 && got[0].n[3] == 8, "drop_last: 4 full batches of 8, one view");
    free_dump(got);

    /* free right after start, with workers mid-epoch: no hang, no leak (ASan) */
    ct_loader L;
    CHECK_OK(ct_loader_init(&L, &ds, &a, 4, 2, 0, 1, 2));
    CHECK_OK(ct_loader_start_epoch(&L, 0));
    ct_loader_free(&L);
    ct_batch *b;
    CHECK(ct_loader_init(&L, &ds, &a, 4, 3, 0, 1, 2) == CT_ERR_ARG, "views must be 1 or 2");
    CHECK_OK(ct_loader_init(&L, &ds, &a, 4, 1, 0, 1, 1));
    CHECK(ct_loader_next(&L, &b) == CT_ERR_STATE && b == NULL, "next before start_epoch is a state error");
    ct_loader_free(&L);

    double vps = 0;
    CHECK_OK(ct_augment_throughput(&ds, &a, 37, 2, &vps));
    CHECK(vps > 0, "throughput measured (%.0f views/s)", vps);
    ct_dataset_free(&ds);
}

/* Multi-crop: local crops come from their own pipeline and keys (view 2 + j), leave the
 * two global views as they were, and do not depend on the thread count. */
static void test_loader_local(void) {
    ct_dataset ds;
    make_synth(&ds, 21, 1, 10, 10, 3);
    ct_augment a, la;
    ct_augment_for_dataset(&a, &ds);
    la = a;
    CHECK_OK(ct_augment_parse(&la, "crop=0.05:0.4,size=4x6"));
    const size_t per = 100, lper = 24;
    float *ref_x = NULL, *ref_l = NULL;
    for (int threads = 0; threads <= 2; threads += 2) {
        ct_loader plain, L;
        CHECK_OK(ct_loader_init(&plain, &ds, &a, 8, 2, 1, 5, 0));
        CHECK_OK(ct_loader_init(&L, &ds, &a, 8, 2, 1, 5, threads));
        CHECK_OK(ct_loader_set_local(&L, &la, 3));
        CHECK(ct_loader_set_local(&L, &la, 3) == CT_ERR_STATE, "local crops are set once");
        CHECK_OK(ct_loader_start_epoch(&plain, 1));
        CHECK_OK(ct_loader_start_epoch(&L, 1));
        ct_batch *p, *b;
        CHECK_OK(ct_loader_next(&plain, &p));
        CHECK_OK(ct_loader_next(&L, &b));
        CHECK(b && p && b->nlocal == 3 && b->lh == 4 && b->lw == 6 && b->xl && p->nlocal == 0 && p->xl == NULL,
              "batch carries 3 local crops of 4x6");
        CHECK(!memcmp(b->x, p->x, 2 * 8 * per * sizeof(float)), "global views unchanged by local crops");
        /* local crop 2 of sample 5 is ct_augment_view with key (seed, epoch, index, 2 + 2) */
        float v[24], *scr = malloc(ct_augment_scratch_floats(&la, &ds) * sizeof(float));
        ct_augment_view(v, scr, &la, &ds, b->index[5], ct_rng_key(5, 1, (uint64_t)b->index[5], 4));
        CHECK(!memcmp(v, b->xl + (2 * 8 + 5) * lper, sizeof v), "local crop j of sample i at rows j*n + i, key view 2 + j");
        CHECK(memcmp(b->xl + 5 * lper, b->xl + (8 + 5) * lper, sizeof v), "local crops of a sample differ");
        free(scr);
        if (!ref_x) {
            ref_x = malloc(2 * 8 * per * sizeof(float));
            ref_l = malloc(3 * 8 * lper * sizeof(float));
            memcpy(ref_x, b->x, 2 * 8 * per * sizeof(float));
            memcpy(ref_l, b->xl, 3 * 8 * lper * sizeof(float));
        } else {
            CHECK(!memcmp(ref_x, b->x, 2 * 8 * per * sizeof(float)) && !memcmp(ref_l, b->xl, 3 * 8 * lper * sizeof(float)),
                  "2 loader threads give the synchronous loader's batch");
        }
        ct_loader_free(&plain);
        ct_loader_free(&L);
    }
    free(ref_x);
    free(ref_l);
    ct_loader L;
    CHECK_OK(ct_loader_init(&L, &ds, &a, 8, 1, 1, 5, 0));
    CHECK(ct_loader_set_local(&L, &la, 2) == CT_ERR_ARG, "local crops need two global views");
    ct_loader_free(&L);
    CHECK_OK(ct_loader_init(&L, &ds, &a, 8, 2, 1, 5, 1));
    CHECK(ct_loader_set_local(&L, &la, 0) == CT_ERR_ARG, "0 local crops refused");
    CHECK_OK(ct_loader_start_epoch(&L, 0));
    CHECK(ct_loader_set_local(&L, &la, 2) == CT_ERR_STATE, "local crops after start refused");
    ct_loader_free(&L);
    ct_dataset_free(&ds);
}

/* ---- Fashion-MNIST and the CLI --------------------------------------------------- */
static void test_fashion_mnist(void) {
    ct_dataset ds;
    CHECK_OK(ct_dataset_load(&ds, "fashion-mnist", 0));
    CHECK(ds.n == 10000 && ds.c == 1 && ds.h == 28 && ds.w == 28 && ds.num_classes == 10 &&
              !strcmp(ds.name, "fashion-mnist"),
          "Fashion-MNIST test split: n=%lld %dx%dx%d classes=%d", (long long)ds.n, ds.c, ds.h, ds.w,
          ds.num_classes);
    int64_t count[10] = {0};
    double mean = 0;
    for (int64_t i = 0; i < ds.n && ds.labels; i++) count[ds.labels[i] < 10 ? ds.labels[i] : 0]++;
    for (size_t i = 0; ds.images && i < (size_t)ds.n * 784; i++) mean += ds.images[i];
    mean /= (double)ds.n * 784 * 255;
    int balanced = 1;
    for (int k = 0; k < 10; k++) balanced &= count[k] == 1000;
    CHECK(balanced, "1000 test images per class");
    CHECK(fabs(mean - 0.2868) < 0.005, "pixel mean %.4f near the published 0.2868 (test split)", mean);
    ct_dataset_free(&ds);
}

static void test_cli(void) {
    const char *bin = getenv("CONTRAST_BIN");
    if (!bin || access(bin, X_OK) != 0) bin = "./contrast";
    if (access(bin, X_OK) != 0) { CHECK(0, "contrast binary not found (set CONTRAST_BIN)"); return; }
    char exe[1024];
    snprintf(exe, sizeof exe, "%s%s", strchr(bin, '/') ? "" : "./", bin); /* the shell searches PATH otherwise */
    bin = exe;
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "%s augment --data mnist:%s --split test --out %s --n 3 --views 2 --flip 1 >%s 2>&1",
             bin, tpath("idx"), tpath("grid.png"), tpath("cli.log"));
    int rc = system(cmd);
    png_image p;
    memset(&p, 0, sizeof p);
    p.version = PNG_IMAGE_VERSION;
    int ok = png_image_begin_read_from_file(&p, tpath("grid.png"));
    /* 3 rows x (1 + 2) columns of 4x3 cells zoomed 16x, 2-pixel gaps */
    CHECK(rc == 0 && ok && p.width == 3 * (3 * 16 + 2) + 2 && p.height == 3 * (4 * 16 + 2) + 2,
          "contrast augment writes the grid (rc %d, %ux%u)", rc, p.width, p.height);
    png_image_free(&p);
    snprintf(cmd, sizeof cmd, "%s augment --data mnist:%s --out %s >%s 2>&1", bin, tpath("bad1"),
             tpath("no.png"), tpath("cli.log"));
    rc = system(cmd);
    FILE *f = fopen(tpath("cli.log"), "r");
    char log[1024] = "";
    size_t len = f ? fread(log, 1, sizeof log - 1, f) : 0;
    log[len] = '\0';
    if (f) fclose(f);
    CHECK(rc != 0 && strstr(log, "bad1/train-images-idx3-ubyte") && strstr(log, "truncated"),
          "a bad dataset gives a non-zero exit and names the file: %s", log);
    snprintf(cmd, sizeof cmd, "%s augment --data mnist:%s --out %s --blur 7 >%s 2>&1", bin, tpath("idx"),
             tpath("no.png"), tpath("cli.log"));
    CHECK(system(cmd) != 0, "a bad augmentation option gives a non-zero exit");
    /* issue 20, hole 1: --out on a device replaced the node with a regular file,
     * and a full device reported success. Private nodes (as /dev/null, /dev/full),
     * so a regression running as root cannot replace the system's. */
    snprintf(cmd, sizeof cmd, "mknod '%s' c 1 3 2>/dev/null && mknod '%s' c 1 7 2>/dev/null", tpath("null"),
             tpath("full"));
    if (system(cmd) == 0) {
        snprintf(cmd, sizeof cmd, "%s augment --data mnist:%s --split test --out %s --n 2 --views 1 >%s 2>&1", bin,
                 tpath("idx"), tpath("null"), tpath("cli.log"));
        rc = system(cmd);
        struct stat sb;
        CHECK(rc == 0 && stat(tpath("null"), &sb) == 0 && S_ISCHR(sb.st_mode),
              "augment --out <null device> succeeds and leaves the device (rc %d)", rc);
        snprintf(cmd, sizeof cmd, "%s augment --data mnist:%s --split test --out %s --n 2 --views 1 >%s 2>&1", bin,
                 tpath("idx"), tpath("full"), tpath("cli.log"));
        rc = system(cmd);
        f = fopen(tpath("cli.log"), "r");
        len = f ? fread(log, 1, sizeof log - 1, f) : 0;
        log[len] = '\0';
        if (f) fclose(f);
        CHECK(rc != 0 && strstr(log, "No space left") && stat(tpath("full"), &sb) == 0 && S_ISCHR(sb.st_mode),
              "augment --out <full device> fails with ENOSPC: %s", log);
    } else {
        printf("note: mknod refused; skipping augment --out <device>\n");
    }
    /* found by fuzz/fuzz_cli: a grid this size (3.3M x 98k pixels) was attempted with
     * malloc; now refused up front with exit 2 and a message */
    snprintf(cmd, sizeof cmd, "%s augment --data mnist:%s --out %s --size 1024 --zoom 32 --views 100 >%s 2>&1",
             bin, tpath("idx"), tpath("no.png"), tpath("cli.log"));
    rc = system(cmd);
    f = fopen(tpath("cli.log"), "r");
    len = f ? fread(log, 1, sizeof log - 1, f) : 0;
    log[len] = '\0';
    if (f) fclose(f);
    CHECK(WIFEXITED(rc) && WEXITSTATUS(rc) == 2 && strstr(log, "too large"), "a huge grid is refused: %s", log);
}

int main(void) {
    snprintf(g_tmp, sizeof g_tmp, "/tmp/ct_test_data_XXXXXX");
    if (!mkdtemp(g_tmp)) { perror("mkdtemp"); return 1; }
    ct_set_threads(2);
    test_idx();
    test_cifar();
    test_png_and_folder();
    test_hostile_claims();
    test_augment_spec();
    test_augment_check_finite();
    test_augment_ops();
    test_loader();
    test_loader_local();
    test_fashion_mnist();
    test_cli();
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", g_tmp);
    if (system(cmd) != 0) fprintf(stderr, "note: could not remove %s\n", g_tmp);
    return test_done();
}
