/* folder.c: image-folder datasets, DIR/<class>/<image>, PNG (libpng) or JPEG (libjpeg),
 * each image resized to size x size on load. Classes are the subfolder names in
 * byte order; files are recognised by their first bytes, not their extension.
 *
 * A file's claims are checked before they cost memory: only regular files are read
 * (a FIFO is refused, not waited on), images over CT_DATA_MAX_PIXELS are refused,
 * as are images whose declared size the file's bytes cannot encode (a few hundred
 * bytes announcing 8192 x 8192); a JPEG is decoded at the smallest of libjpeg's
 * 1/8 .. 8/8 scales that still covers the target size, and its corrupt-data
 * warnings (a truncated file, garbage in the entropy-coded data) are errors, never
 * gray filling. The dataset's buffer grows as images decode, so a folder of
 * unreadable files fails at the first without reserving memory for all of them. */
#include "contrast/io.h"
#include "data_internal.h"

#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <setjmp.h>
#include <stdio.h> /* before jpeglib.h, which uses FILE */
#include <jpeglib.h>
#include <jerror.h>
#include <png.h>
#include <stdlib.h>
#include <string.h>

#define MAX_IMAGE_FILE ((long long)256 << 20) /* bytes: no sane training image is larger */
#define DEFLATE_MAX_RATIO 1100                /* deflate's ~1032:1 and some slack */
/* libjpeg's working memory (progressive JPEGs keep every DCT coefficient: 6 bytes a
 * pixel at 4:4:4), enough for the largest image CT_DATA_MAX_PIXELS allows. */
#define JPEG_MAX_MEMORY ((long)320 << 20)

typedef struct {
    char **v;
    size_t n, cap;
} strlist;

static int strlist_push(strlist *l, const char *s) {
    if (l->n == l->cap) {
        size_t cap = l->cap ? 2 * l->cap : 64;
        char **v = realloc(l->v, cap * sizeof *v);
        if (!v) return -1;
        l->v = v;
        l->cap = cap;
    }
    if (!(l->v[l->n] = strdup(s))) return -1;
    l->n++;
    return 0;
}

static void strlist_free(strlist *l) {
    for (size_t i = 0; i < l->n; i++) free(l->v[i]);
    free(l->v);
    memset(l, 0, sizeof *l);
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* Entries of `dir` (hidden ones skipped) that are directories (want_dirs) or not. */
static ct_status list_dir(strlist *out, const char *dir, int want_dirs) {
    DIR *d = opendir(dir);
    if (!d) return ct_error(CT_ERR_IO, "%s: cannot open folder: %s", dir, strerror(errno));
    struct dirent *e;
    char path[4096];
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.') continue;
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        int isdir = ct__dir_exists(path);
        if (isdir != want_dirs) continue;
        if (strlist_push(out, e->d_name)) { closedir(d); return ct_error(CT_ERR_NOMEM, "out of memory"); }
    }
    closedir(d);
    if (out->n) qsort(out->v, out->n, sizeof *out->v, cmp_str);
    return CT_OK;
}

static ct_status read_file(const char *path, uint8_t **buf, size_t *len) {
    *buf = NULL;
    FILE *f;
    int64_t size;
    ct_status st = ct_fopen_regular(path, &f, &size);
    if (st) return st;
    if (size <= 0) {
        fclose(f);
        return ct_error(CT_ERR_FORMAT, "%s: empty file, not an image", path);
    }
    if (size > MAX_IMAGE_FILE) {
        fclose(f);
        return ct_error(CT_ERR_FORMAT, "%s: %lld bytes, larger than the %lld-byte cap for one image", path,
                        (long long)size, MAX_IMAGE_FILE);
    }
    *len = (size_t)size;
    *buf = malloc(*len);
    if (!*buf) { fclose(f); return ct_error(CT_ERR_NOMEM, "%s: cannot allocate %zu bytes", path, *len); }
    if (fread(*buf, 1, *len, f) != *len) {
        fclose(f); free(*buf); *buf = NULL;
        return ct_error(CT_ERR_IO, "%s: read failed", path);
    }
    fclose(f);
    return CT_OK;
}

/* Composites interleaved (n pixels, ch + 1) colour + alpha onto white in place,
 * leaving (n, ch): v = (c a + 255 (255 - a)) / 255 on the 8-bit sRGB values,
 * rounded to nearest: the usual paste onto a white canvas, in 8-bit values (what
 * image-caption pipelines do before a model sees the picture). */
static void composite_on_white(uint8_t *px, size_t n, int ch) {
    for (size_t i = 0; i < n; i++) {
        unsigned a = px[i * (ch + 1) + ch];
        for (int c = 0; c < ch; c++)
            px[i * ch + c] = (uint8_t)((px[i * (ch + 1) + c] * a + 255u * (255u - a) + 127u) / 255u);
    }
}

static ct_status decode_png(ct__image *im, const char *path, const uint8_t *buf, size_t len, int alpha_white) {
    png_image p;
    memset(&p, 0, sizeof p);
    p.version = PNG_IMAGE_VERSION;
    if (!png_image_begin_read_from_memory(&p, buf, len))
        return ct_error(CT_ERR_FORMAT, "%s: bad PNG: %s", path, p.message);
    if (p.width == 0 || p.height == 0 || p.width > CT_DATA_MAX_SIDE || p.height > CT_DATA_MAX_SIDE) {
        png_image_free(&p);
        return ct_error(CT_ERR_FORMAT, "%s: PNG of %ux%u pixels (allowed 1 to %d per side)", path, p.width,
                        p.height, CT_DATA_MAX_SIDE);
    }
    if ((int64_t)p.width * p.height > CT_DATA_MAX_PIXELS) {
        png_image_free(&p);
        return ct_error(CT_ERR_FORMAT, "%s: PNG of %ux%u pixels, more than the limit of %lld pixels", path, p.width,
                        p.height, (long long)CT_DATA_MAX_PIXELS);
    }
    /* Even at 1 bit per pixel the filtered rows take h * (1 + ceil(w / 8)) bytes,
     * and deflate expands at most ~1032:1. */
    if ((uint64_t)p.height * (1 + (p.width + 7) / 8) > (uint64_t)len * DEFLATE_MAX_RATIO) {
        png_image_free(&p);
        return ct_error(CT_ERR_FORMAT, "%s: truncated: a PNG of %ux%u pixels cannot fit in %zu bytes", path, p.width,
                        p.height, len);
    }
    im->ch = (p.format & PNG_FORMAT_FLAG_COLOR) ? 3 : 1;
    /* alpha: kept for compositing on white, else composited on black (see below) */
    int alpha = alpha_white && (p.format & PNG_FORMAT_FLAG_ALPHA);
    p.format = im->ch == 3 ? (alpha ? PNG_FORMAT_RGBA : PNG_FORMAT_RGB) : (alpha ? PNG_FORMAT_GA : PNG_FORMAT_GRAY);
    im->w = (int)p.width;
    im->h = (int)p.height;
    /* zeroed: without a background libpng blends alpha onto what the buffer holds, so
     * this is "composite on black" (alpha_white keeps the alpha and paints white) */
    im->px = calloc((size_t)im->w * im->h, (size_t)(im->ch + alpha));
    if (!im->px) { png_image_free(&p); return ct_error(CT_ERR_NOMEM, "%s: out of memory", path); }
    if (!png_image_finish_read(&p, NULL, im->px, 0, NULL)) {
        free(im->px); im->px = NULL;
        return ct_error(CT_ERR_FORMAT, "%s: bad PNG: %s", path, p.message);
    }
    if (alpha) composite_on_white(im->px, (size_t)im->w * im->h, im->ch);
    return CT_OK;
}

typedef struct {
    struct jpeg_error_mgr pub;
    jmp_buf jb;
    char msg[JMSG_LENGTH_MAX];
} jpeg_err;

static void jpeg_on_error(j_common_ptr cinfo) {
    jpeg_err *e = (jpeg_err *)cinfo->err;
    (*cinfo->err->format_message)(cinfo, e->msg);
    longjmp(e->jb, 1);
}

/* Warnings (level -1) are corrupt data: a truncated file, a bad marker, garbage in
 * the entropy-coded segment. libjpeg would fill in gray and go on; we refuse the
 * file. Trace messages (levels >= 0) are dropped. */
static void jpeg_on_message(j_common_ptr cinfo, int level) {
    if (level < 0) jpeg_on_error(cinfo);
}

/* Decodes at the smallest scale n/8 (n = 1..8) whose output still covers
 * target x target, so a large photo is never held at full size. */
static ct_status decode_jpeg(ct__image *im, const char *path, const uint8_t *buf, size_t len, int target) {
    struct jpeg_decompress_struct cinfo;
    jpeg_err err;
    uint8_t *volatile px = NULL;
    cinfo.err = jpeg_std_error(&err.pub);
    err.pub.error_exit = jpeg_on_error;
    err.pub.emit_message = jpeg_on_message;
    if (setjmp(err.jb)) {
        int mem = err.pub.msg_code == JERR_NO_BACKING_STORE;
        unsigned w0 = cinfo.image_width, h0 = cinfo.image_height;
        jpeg_destroy_decompress(&cinfo);
        free(px);
        if (mem)
            return ct_error(CT_ERR_FORMAT, "%s: a JPEG of %ux%u pixels needs more than the %ld MiB allowed to decode",
                            path, w0, h0, JPEG_MAX_MEMORY >> 20);
        return ct_error(CT_ERR_FORMAT, "%s: bad JPEG: %s", path, err.msg);
    }
    jpeg_create_decompress(&cinfo);
    cinfo.mem->max_memory_to_use = JPEG_MAX_MEMORY; /* over it: an error, not a backing store */
    jpeg_mem_src(&cinfo, buf, (unsigned long)len);
    jpeg_read_header(&cinfo, TRUE);
    unsigned w0 = cinfo.image_width, h0 = cinfo.image_height;
    /* every 8x8 block of every component costs at least one Huffman-coded bit */
    uint64_t blocks = 0;
    for (int c = 0; c < cinfo.num_components; c++)
        blocks += (uint64_t)cinfo.comp_info[c].width_in_blocks * cinfo.comp_info[c].height_in_blocks;
    ct_status bad = CT_OK;
    if (w0 == 0 || h0 == 0 || w0 > CT_DATA_MAX_SIDE || h0 > CT_DATA_MAX_SIDE)
        bad = ct_error(CT_ERR_FORMAT, "%s: JPEG of %ux%u pixels (allowed 1 to %d per side)", path, w0, h0,
                       CT_DATA_MAX_SIDE);
    else if ((int64_t)w0 * h0 > CT_DATA_MAX_PIXELS)
        bad = ct_error(CT_ERR_FORMAT, "%s: JPEG of %ux%u pixels, more than the limit of %lld pixels", path, w0, h0,
                       (long long)CT_DATA_MAX_PIXELS);
    else if (!cinfo.arith_code && blocks > (uint64_t)len * 8)
        bad = ct_error(CT_ERR_FORMAT, "%s: truncated: a JPEG of %ux%u pixels cannot fit in %zu bytes", path, w0, h0,
                       len);
    if (bad) {
        jpeg_destroy_decompress(&cinfo);
        return bad;
    }
    int gray = cinfo.jpeg_color_space == JCS_GRAYSCALE;
    cinfo.out_color_space = gray ? JCS_GRAYSCALE : JCS_RGB;
    cinfo.scale_denom = 8;
    for (cinfo.scale_num = 1; cinfo.scale_num < 8; cinfo.scale_num++) {
        jpeg_calc_output_dimensions(&cinfo);
        if (cinfo.output_width >= (unsigned)target && cinfo.output_height >= (unsigned)target) break;
    }
    jpeg_start_decompress(&cinfo);
    int w = (int)cinfo.output_width, h = (int)cinfo.output_height, ch = cinfo.output_components;
    px = malloc((size_t)w * h * ch);
    if (!px) {
        jpeg_destroy_decompress(&cinfo);
        return ct_error(CT_ERR_NOMEM, "%s: out of memory", path);
    }
    while (cinfo.output_scanline < cinfo.output_height) {
        JSAMPROW row = px + (size_t)cinfo.output_scanline * w * ch;
        jpeg_read_scanlines(&cinfo, &row, 1);
    }
    jpeg_finish_decompress(&cinfo);
    jpeg_destroy_decompress(&cinfo);
    im->px = px;
    im->w = w;
    im->h = h;
    im->ch = ch;
    return CT_OK;
}

ct_status ct__image_decode(ct__image *im, const char *path, int target, int alpha_white) {
    memset(im, 0, sizeof *im);
    uint8_t *buf = NULL;
    size_t len = 0;
    ct_status st = read_file(path, &buf, &len);
    if (st) return st;
    static const uint8_t png_sig[4] = {0x89, 'P', 'N', 'G'}, jpg_sig[3] = {0xFF, 0xD8, 0xFF};
    if (len >= 8 && !memcmp(buf, png_sig, 4))
        st = decode_png(im, path, buf, len, alpha_white);
    else if (len >= 3 && !memcmp(buf, jpg_sig, 3))
        st = decode_jpeg(im, path, buf, len, target);
    else
        st = ct_error(CT_ERR_FORMAT, "%s: not a PNG or JPEG image", path);
    free(buf);
    return st;
}

ct_status ct__image_resize(uint8_t *out, const ct__image *im, int size) {
    size_t ax_n = ct__axis_floats(im->w, size), ay_n = ct__axis_floats(im->h, size);
    float *mem = malloc((ax_n + ay_n + (size_t)im->h * size + (size_t)size * size) * sizeof(float));
    if (!mem) return ct_error(CT_ERR_NOMEM, "out of memory resizing an image");
    ct__axis ax, ay;
    ct__axis_build(&ax, mem, 0, im->w, size, 0);
    ct__axis_build(&ay, mem + ax_n, 0, im->h, size, 0);
    float *tmp = mem + ax_n + ay_n, *plane = tmp + (size_t)im->h * size;
    size_t S = (size_t)size * size;
    for (int c = 0; c < 3; c++) {
        if (c < im->ch) {
            ct__resample(plane, tmp, im->px + c, (ptrdiff_t)im->w * im->ch, im->ch, &ay, size, &ax, size);
            for (size_t i = 0; i < S; i++) {
                float v = plane[i] + 0.5f;
                out[c * S + i] = (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v);
            }
        } else {
            memcpy(out + c * S, out, S);
        }
    }
    free(mem);
    return CT_OK;
}

/* Room for more images in ds->images, which holds *cap of `per` bytes: doubles
 * (from 1) up to `total`, as images are decoded, never for files not yet read. */
static ct_status grow_images(ct_dataset *ds, int64_t *cap, int64_t total, size_t per, const char *path) {
    int64_t ncap = *cap ? 2 * *cap : 1;
    if (ncap > total) ncap = total;
    uint8_t *nb = ct_alloc((size_t)ncap * per);
    if (!nb)
        return ct_error(CT_ERR_NOMEM, "%s: out of memory for %lld images of %zu bytes", path, (long long)ncap, per);
    if (ds->images) memcpy(nb, ds->images, (size_t)*cap * per);
    ct_free(ds->images);
    ds->images = nb;
    *cap = ncap;
    return CT_OK;
}

ct_status ct__load_folder(ct_dataset *ds, const char *dir_in, int train, int size) {
    char root[4096], path[8192];
    snprintf(path, sizeof path, "%s/train", dir_in);
    int split_dirs = ct__dir_exists(path);
    snprintf(root, sizeof root, "%s%s", dir_in, split_dirs ? (train ? "/train" : "/test") : "");
    if (split_dirs && !ct__dir_exists(root))
        return ct_error(CT_ERR_IO, "%s: has train/ but no test/ folder", dir_in);
    strlist classes = {0}, *files = NULL;
    ct_status st = list_dir(&classes, root, 1);
    if (st) return st;
    if (classes.n == 0) {
        strlist_free(&classes);
        return ct_error(CT_ERR_FORMAT, "%s: no class subfolders (expected %s/<class>/<image files>)", root, root);
    }
    if (classes.n > CT_DATA_MAX_CLASSES) {
        strlist_free(&classes);
        return ct_error(CT_ERR_FORMAT, "%s: %zu class folders, more than %d", root, classes.n,
                        CT_DATA_MAX_CLASSES);
    }
    files = calloc(classes.n, sizeof *files);
    int64_t total = 0;
    if (!files) st = ct_error(CT_ERR_NOMEM, "out of memory");
    for (size_t k = 0; k < classes.n && !st; k++) {
        snprintf(path, sizeof path, "%s/%s", root, classes.v[k]);
        st = list_dir(&files[k], path, 0);
        if (!st && files[k].n == 0) st = ct_error(CT_ERR_FORMAT, "%s: empty class folder (no image files)", path);
        total += (int64_t)files[k].n;
        if (!st && total > CT_DATA_MAX_IMAGES) st = ct_error(CT_ERR_FORMAT, "%s: too many images", root);
    }
    size_t per = (size_t)3 * size * size;
    if (!st && !(ds->labels = ct_alloc((size_t)total * sizeof(int32_t))))
        st = ct_error(CT_ERR_NOMEM, "%s: out of memory for %lld labels", root, (long long)total);
    int any_color = 0;
    int64_t i = 0, cap = 0; /* images decoded, images ds->images holds room for */
    for (size_t k = 0; k < classes.n && !st; k++) {
        for (size_t f = 0; f < files[k].n && !st; f++, i++) {
            snprintf(path, sizeof path, "%s/%s/%s", root, classes.v[k], files[k].v[f]);
            ct__image im;
            st = ct__image_decode(&im, path, size, 0);
            if (st) break;
            any_color |= im.ch == 3;
            if (i == cap) st = grow_images(ds, &cap, total, per, path);
            if (!st) st = ct__image_resize(ds->images + (size_t)i * per, &im, size);
            free(im.px);
            ds->labels[i] = (int32_t)k;
        }
    }
    for (size_t k = 0; files && k < classes.n; k++) strlist_free(&files[k]);
    free(files);
    strlist_free(&classes);
    if (st) return st;
    ds->n = total;
    ds->c = any_color ? 3 : 1;
    ds->h = ds->w = size;
    int ncls = 0;
    for (int64_t j = 0; j < total; j++)
        if (ds->labels[j] + 1 > ncls) ncls = ds->labels[j] + 1;
    ds->num_classes = ncls;
    size_t S = (size_t)size * size;
    if (!any_color) /* every image gray: keep one plane per image */
        for (int64_t j = 0; j < total; j++) memmove(ds->images + (size_t)j * S, ds->images + (size_t)j * per, S);
    ct__measure_norm(ds);
    return CT_OK;
}

void ct__measure_norm(ct_dataset *ds) {
    size_t S = (size_t)ds->h * ds->w;
    for (int c = 0; c < ds->c; c++) {
        double s = 0, s2 = 0;
        for (int64_t j = 0; j < ds->n; j++) {
            const uint8_t *p = ds->images + ((size_t)j * ds->c + c) * S;
            for (size_t q = 0; q < S; q++) { s += p[q]; s2 += (double)p[q] * p[q]; }
        }
        double cnt = (double)ds->n * S, m = s / cnt / 255.0, v = s2 / cnt / 65025.0 - m * m;
        ds->mean[c] = (float)m;
        ds->std[c] = (float)(v > 1e-12 ? sqrt(v) : 1.0);
    }
    for (int c = ds->c; c < 3; c++) { ds->mean[c] = ds->mean[0]; ds->std[c] = ds->std[0]; }
}
