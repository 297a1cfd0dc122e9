/* make_corpus.c: writes the seed corpora of the fuzz targets (fuzz/corpus/<target>/):
 * a few small valid files of each format, made with the library's own writers,
 * libpng and libjpeg, and a real checkpoint from a tiny training run. Run by
 * fuzz/make_corpus.sh; the output is committed. Deterministic, except the temporary
 * dataset path the checkpoints record in their train.data metadata. */
#include "contrast.h"
#include "contrast/train.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <jpeglib.h>
#include <png.h>
#include <zlib.h>

static const char *g_out; /* fuzz/corpus */
static char g_tmp[256];

static void die(const char *what) {
    fprintf(stderr, "make_corpus: %s: %s\n", what, ct_errmsg());
    exit(1);
}

static void mkdirs(const char *p) {
    if (mkdir(p, 0755) && errno != EEXIST) die(p);
}

/* corpus/<target>/<name> = prefix bytes + data */
static void seed(const char *target, const char *name, const void *prefix, size_t np, const void *data, size_t n) {
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", g_out, target);
    mkdirs(path);
    snprintf(path, sizeof path, "%s/%s/%s", g_out, target, name);
    FILE *f = fopen(path, "wb");
    if (!f) die(path);
    if (np) fwrite(prefix, 1, np, f);
    if (n) fwrite(data, 1, n, f);
    fclose(f);
}

static unsigned char *slurp(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    if (!f) die(path);
    fseek(f, 0, SEEK_END);
    long sz = ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *b = malloc((size_t)sz + 1);
    *n = fread(b, 1, (size_t)sz, f);
    fclose(f);
    return b;
}

/* IDX bytes: images (n, h, w) or labels (n). */
static size_t idx_bytes(uint8_t *buf, int images, uint32_t n, uint32_t h, uint32_t w, uint32_t seedv) {
    size_t len = 0;
    uint32_t f[4] = {images ? 0x803u : 0x801u, n, h, w};
    for (int i = 0; i < (images ? 4 : 2); i++)
        for (int b = 3; b >= 0; b--) buf[len++] = (uint8_t)(f[i] >> (8 * b));
    size_t items = images ? (size_t)n * h * w : n;
    for (size_t i = 0; i < items; i++) buf[len++] = (uint8_t)(images ? (i * 29 + seedv) & 255 : (i + seedv) % 10);
    return len;
}

static size_t gzip_bytes(uint8_t *dst, size_t cap, const uint8_t *src, size_t n) {
    z_stream z;
    memset(&z, 0, sizeof z);
    deflateInit2(&z, 9, Z_DEFLATED, 31, 8, Z_DEFAULT_STRATEGY); /* 31: gzip wrapper */
    z.next_in = (Bytef *)src;
    z.avail_in = (uInt)n;
    z.next_out = dst;
    z.avail_out = (uInt)cap;
    deflate(&z, Z_FINISH);
    size_t out = z.total_out;
    deflateEnd(&z);
    return out;
}

static void idx_seeds(void) {
    uint8_t raw[4096], gz[4096];
    size_t n = idx_bytes(raw, 1, 3, 4, 5, 1);
    uint8_t fl = 1;
    seed("idx", "images_raw", &fl, 1, raw, n);
    fl = 3;
    seed("idx", "images_gz", &fl, 1, gz, gzip_bytes(gz, sizeof gz, raw, n));
    n = idx_bytes(raw, 0, 3, 0, 0, 2);
    fl = 0;
    seed("idx", "labels_raw", &fl, 1, raw, n);
    fl = 2;
    seed("idx", "labels_gz", &fl, 1, gz, gzip_bytes(gz, sizeof gz, raw, n));
}

static void cifar_seeds(void) {
    uint8_t rec[2 * 3074];
    for (size_t i = 0; i < sizeof rec; i++) rec[i] = (uint8_t)(i * 13);
    rec[0] = 3, rec[3073] = 9;
    uint8_t fl = 0;
    seed("cifar", "cifar10_2", &fl, 1, rec, 2 * 3073);
    rec[0] = 7, rec[1] = 42;
    fl = 1;
    seed("cifar", "cifar100_1", &fl, 1, rec, 3074);
}

/* PNG in memory with libpng's simplified API, any of its formats. */
static size_t png_bytes(uint8_t *dst, size_t cap, int w, int h, png_uint_32 format) {
    png_image p;
    memset(&p, 0, sizeof p);
    p.version = PNG_IMAGE_VERSION;
    p.width = (png_uint_32)w;
    p.height = (png_uint_32)h;
    p.format = format;
    size_t comp = PNG_IMAGE_PIXEL_SIZE(format);
    uint8_t *px = malloc((size_t)w * h * comp);
    for (size_t i = 0; i < (size_t)w * h * comp; i++) px[i] = (uint8_t)(i * 37 + 11);
    png_alloc_size_t n = cap;
    if (!png_image_write_to_memory(&p, dst, &n, 0, px, 0, NULL)) die("png_image_write_to_memory");
    free(px);
    return n;
}

static size_t jpeg_bytes(uint8_t *dst, size_t cap, int w, int h, int ch, int progressive) {
    struct jpeg_compress_struct c;
    struct jpeg_error_mgr e;
    c.err = jpeg_std_error(&e);
    jpeg_create_compress(&c);
    unsigned char *mem = NULL;
    unsigned long n = 0;
    jpeg_mem_dest(&c, &mem, &n);
    c.image_width = (JDIMENSION)w;
    c.image_height = (JDIMENSION)h;
    c.input_components = ch;
    c.in_color_space = ch == 3 ? JCS_RGB : JCS_GRAYSCALE;
    jpeg_set_defaults(&c);
    jpeg_set_quality(&c, 80, TRUE);
    if (progressive) jpeg_simple_progression(&c);
    jpeg_start_compress(&c, TRUE);
    uint8_t *row = malloc((size_t)w * ch);
    while (c.next_scanline < c.image_height) {
        for (int i = 0; i < w * ch; i++) row[i] = (uint8_t)(i * 9 + c.next_scanline * 17);
        JSAMPROW r = row;
        jpeg_write_scanlines(&c, &r, 1);
    }
    jpeg_finish_compress(&c);
    jpeg_destroy_compress(&c);
    free(row);
    if (n > cap) die("jpeg too large");
    memcpy(dst, mem, n);
    free(mem);
    return n;
}

/* one fuzz_folder record: kind, name, content */
static size_t folder_rec(uint8_t *dst, int kind, const char *name, const uint8_t *content, size_t n) {
    size_t len = 0, nl = strlen(name);
    dst[len++] = (uint8_t)kind;
    dst[len++] = (uint8_t)nl;
    memcpy(dst + len, name, nl);
    len += nl;
    dst[len++] = (uint8_t)(n & 255);
    dst[len++] = (uint8_t)(n >> 8);
    memcpy(dst + len, content, n);
    return len + n;
}

static void image_seeds(void) {
    static uint8_t a[65536], b[65536], rec[3 * 65536];
    uint8_t side = 7;
    struct { const char *name; int w, h; png_uint_32 fmt; } pngs[] = {
        {"gray_5x7", 5, 7, PNG_FORMAT_GRAY},   {"rgb_6x4", 6, 4, PNG_FORMAT_RGB},
        {"rgba_3x3", 3, 3, PNG_FORMAT_RGBA},   {"ga_4x2", 4, 2, PNG_FORMAT_GA},
        {"gray16_3x5", 3, 5, PNG_FORMAT_LINEAR_Y},
    };
    for (size_t i = 0; i < sizeof pngs / sizeof pngs[0]; i++) {
        size_t n = png_bytes(a, sizeof a, pngs[i].w, pngs[i].h, pngs[i].fmt);
        seed("png", pngs[i].name, &side, 1, a, n);
    }
    struct { const char *name; int w, h, ch, prog; } jpgs[] = {
        {"gray_9x7", 9, 7, 1, 0}, {"rgb_8x8", 8, 8, 3, 0}, {"rgb_progressive_17x5", 17, 5, 3, 1},
    };
    for (size_t i = 0; i < sizeof jpgs / sizeof jpgs[0]; i++) {
        size_t n = jpeg_bytes(a, sizeof a, jpgs[i].w, jpgs[i].h, jpgs[i].ch, jpgs[i].prog);
        seed("jpeg", jpgs[i].name, &side, 1, a, n);
    }
    /* folders: two classes of a PNG and a JPEG each; split folders; a hidden file */
    size_t np = png_bytes(a, sizeof a, 5, 5, PNG_FORMAT_RGB), nj = jpeg_bytes(b, sizeof b, 6, 6, 1, 0);
    size_t len = 0;
    rec[len++] = 5 << 2; /* flags: no split, side 6 */
    len += folder_rec(rec + len, 0, "one.png", a, np);
    len += folder_rec(rec + len, 4, "two.jpg", b, nj);
    len += folder_rec(rec + len, 0, ".hidden", b, nj);
    seed("folder", "two_classes", NULL, 0, rec, len);
    len = 0;
    rec[len++] = 3 | 4 << 2; /* train/ and test/ */
    len += folder_rec(rec + len, 0, "x.png", a, np);
    len += folder_rec(rec + len, 8, "y.jpg", b, nj);
    len += folder_rec(rec + len, 2, "nested", NULL, 0);
    seed("folder", "split", NULL, 0, rec, len);
}

static void npy_seeds(void) {
    char path[512];
    float x[15];
    int32_t l32[5] = {0, 1, 2, 9, -1};
    int64_t l64[4] = {3, 1, 4, 1};
    for (int i = 0; i < 15; i++) x[i] = (float)i * 0.25f - 1;
    size_t n;
    unsigned char *b;
    snprintf(path, sizeof path, "%s/f32.npy", g_tmp);
    if (ct_npy_write_f32(path, x, 3, 5)) die(path);
    b = slurp(path, &n), seed("npy", "f32_3x5", NULL, 0, b, n), free(b);
    snprintf(path, sizeof path, "%s/i32.npy", g_tmp);
    if (ct_npy_write_i32(path, l32, 5)) die(path);
    b = slurp(path, &n), seed("npy", "i32_5", NULL, 0, b, n), free(b);
    snprintf(path, sizeof path, "%s/i64.npy", g_tmp);
    if (ct_npy_write_i64(path, l64, 4)) die(path);
    b = slurp(path, &n), seed("npy", "i64_4", NULL, 0, b, n);
    /* the same as format 2.0 (4-byte header length) */
    unsigned char v2[512];
    size_t hl = (size_t)b[8] | (size_t)b[9] << 8;
    memcpy(v2, b, 8);
    v2[6] = 2;
    v2[8] = (unsigned char)hl, v2[9] = (unsigned char)(hl >> 8), v2[10] = 0, v2[11] = 0;
    memcpy(v2 + 12, b + 10, n - 10);
    seed("npy", "i64_4_v2", NULL, 0, v2, n + 2);
    free(b);
    const char *one_d = "\x93NUMPY\x01\x00\x46\x00{'descr': '<f4', 'fortran_order': False, 'shape': (2,), }"
                        "                  \n";
    float two[2] = {1.5f, -2};
    seed("npy", "f32_1d", one_d, 10 + 0x46, two, sizeof two);
}

/* Tiny IDX dataset (train and t10k) in g_tmp/data for a real training run. */
static void tiny_dataset(const char *dir) {
    static uint8_t buf[65536];
    mkdirs(dir);
    const char *names[4] = {"train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte",
                            "t10k-labels-idx1-ubyte"};
    for (int i = 0; i < 4; i++) {
        char path[600];
        snprintf(path, sizeof path, "%s/%s", dir, names[i]);
        size_t n = idx_bytes(buf, i % 2 == 0, 8, 8, 8, (uint32_t)i);
        FILE *f = fopen(path, "wb");
        fwrite(buf, 1, n, f);
        fclose(f);
    }
}

static void checkpoint_seeds(void) {
    char data[512], spec[600];
    snprintf(data, sizeof data, "%s/data", g_tmp);
    tiny_dataset(data);
    snprintf(spec, sizeof spec, "mnist:%s", data);
    const char *methods[2] = {"simclr", "moco"};
    for (int k = 0; k < 2; k++) {
        ct_train_config c;
        ct_train_result r;
        ct_train_config_default(&c);
        snprintf(c.data, sizeof c.data, "%s", spec);
        snprintf(c.out, sizeof c.out, "%s/run_%s", g_tmp, methods[k]);
        c.method = (ct_method)ct_method_parse(methods[k]);
        c.model.width = 1;
        c.model.head_hidden = 4;
        c.model.head_out = 2;
        c.model.head_bn = k == 0;
        c.batch = 4;
        c.epochs = 1;
        c.eval_every = 0;
        c.final_probe = 0;
        c.knn_k = 2;
        c.threads = 1;
        c.loader_threads = 0;
        c.moco_k = 8;
        if (ct_train_run(&c, &r)) die("train");
        char path[700], name[64];
        snprintf(path, sizeof path, "%s/checkpoint.safetensors", c.out);
        size_t n;
        unsigned char *b = slurp(path, &n);
        snprintf(name, sizeof name, "checkpoint_%s", methods[k]);
        seed("safetensors", name, NULL, 0, b, n);
        free(b);
    }
    /* plain safetensors: several dtypes, a scalar, an empty tensor, escaped names */
    float w[6] = {1, -2, 3.5f, 0.25f, 1e-8f, -7};
    int64_t i64[2] = {12345678901LL, -3};
    int32_t i32[3] = {1, 2, 3};
    double f64[1] = {2.5};
    uint8_t u8[5] = {1, 2, 3, 4, 5};
    ct_st_tensor t[6];
    memset(t, 0, sizeof t);
    t[0] = (ct_st_tensor){"encoder.fc.weight", CT_DTYPE_F32, 2, {2, 3}, w};
    t[1] = (ct_st_tensor){"step", CT_DTYPE_I64, 1, {2}, i64};
    t[2] = (ct_st_tensor){"i", CT_DTYPE_I32, 1, {3}, i32};
    t[3] = (ct_st_tensor){"scalar", CT_DTYPE_F64, 0, {0}, f64};
    t[4] = (ct_st_tensor){"bytes \"q\"\t\xc3\xa9", CT_DTYPE_U8, 1, {5}, u8};
    t[5] = (ct_st_tensor){"empty", CT_DTYPE_F32, 2, {0, 4}, w};
    ct_st_kv meta[2] = {{"format", "contrast-checkpoint"}, {"note", "line\nbreak \\ \x01"}};
    char path[600];
    snprintf(path, sizeof path, "%s/plain.safetensors", g_tmp);
    if (ct_st_write(path, t, 6, meta, 2)) die(path);
    size_t n;
    unsigned char *b = slurp(path, &n);
    seed("safetensors", "plain_dtypes", NULL, 0, b, n);
    free(b);
}

static void cli_seeds(void) {
    struct { const char *name; char cmd; const char *args; size_t len; } s[] = {
#define A(name, cmd, lit) {name, cmd, lit, sizeof lit - 1}
        A("train_basic", 0, "--epochs\0" "2\0--batch\0" "64\0--width\0" "8\0--no-probe\0--out\0/nonexistent/x"),
        A("train_eq", 0, "--method=moco\0--moco-k=256\0--lr=0.5\0--optimizer=adamw\0--seed=18446744073709551615"),
        A("train_aug", 0, "--augment\0crop=0.2:1:0.75:1.33,flip=0.5,jitter=0.4:0.4:0.4:0.1@0.8,gray=0.2,"
                          "blur=0.1:2:5@0.5,solarize=0.5@0.2,size=8x8,mean=0.5,std=0.25:0.3:0.2"),
        A("train_bad", 0, "--epochs\0-1\0--encoder\0resnet50\0--bogus"),
        A("eval", 1, "--checkpoint\0x.safetensors\0--k\0" "20\0--probe\0--json\0--knn-temperature\0" "0.07"),
        A("eval_raw", 1, "--raw\0--limit\0" "100\0--threads\0" "2"),
        A("embed", 2, "--checkpoint\0c\0--out\0h.npy\0--labels\0y.npy\0--split\0train\0--head\0--batch\0" "7"),
        A("augment", 3, "--data\0fashion-mnist\0--n\0" "3\0--views\0" "4\0--zoom\0" "2\0--blur\0" "0.1:2@0.5\0"
                        "--size\0" "6x7\0--aug\0none"),
        A("augment_spec", 6, "crop=off,flip=0,jitter=0.8:0.8:0.8:0.2@1,gray=1,solarize=0.3@1,mean=0.1:0.2:0.3"),
        A("augment_spec2", 6, " none , size=5 ,blur=1,crop=0.08:1"),
        /* the clip commands: a "clip..." checkpoint is a tiny in-memory model (fuzz_cli.c) */
        A("zeroshot", 4, "--checkpoint\0clip.safetensors\0--data\0captions:d\0--per-class\0--batch\0" "3"),
        A("zeroshot_files", 4, "--checkpoint\0clip\0--data\0emoji-test\0--classes\0c.txt\0--templates\0t.txt\0"
                               "--json\0z.json"),
        A("search_text", 5, "--checkpoint\0clip\0--index\0folder:d\0--query\0a red square\0--k\0" "3\0--out\0"
                            "top.png\0--tile\0" "20\0--cols\0" "2"),
        A("search_image", 5, "--checkpoint\0clip\0--index\0emoji-test\0--image\0x.png\0--k\0" "2"),
        A("eval_clip", 1, "--checkpoint\0clip\0--data\0captions:d\0--json"),
        A("embed_clip", 2, "--checkpoint\0clip\0--text\0\0--text\0red\0--batch\0" "1"),
        A("embed_clip_img", 2, "--checkpoint\0clip\0--data\0emoji\0--split\0train\0--limit\0" "3\0--out\0e.npy"),
#undef A
    };
    for (size_t i = 0; i < sizeof s / sizeof s[0]; i++) seed("cli", s[i].name, &s[i].cmd, 1, s[i].args, s[i].len);
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: make_corpus OUT_DIR\n");
        return 2;
    }
    g_out = argv[1];
    mkdirs(g_out);
    snprintf(g_tmp, sizeof g_tmp, "/tmp/contrast-corpus-XXXXXX");
    if (!mkdtemp(g_tmp)) die("mkdtemp");
    idx_seeds();
    cifar_seeds();
    image_seeds();
    npy_seeds();
    checkpoint_seeds();
    cli_seeds();
    char cmd[400];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", g_tmp);
    return system(cmd) == 0 ? 0 : 1;
}
