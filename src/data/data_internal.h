/* data_internal.h: helpers shared by the files of src/data (not public API). */
#ifndef CONTRAST_DATA_INTERNAL_H
#define CONTRAST_DATA_INTERNAL_H

#include "contrast/captions.h"
#include "contrast/data.h"

/* Who provides what (dependencies go one way: dataset.c -> folder.c -> files.c,
 * resample.c; emoji.c -> captions.c -> folder.c; augment.c, loader.c -> resample.c):
 *   files.c     file-system checks
 *   folder.c    image-folder datasets; decoding and resizing one PNG / JPEG
 *   captions.c  image-caption datasets: the builder, captions:DIR, sampling
 *   emoji.c     the emoji set and its held-out rule
 *   resample.c  antialiased resampling */

/* ---- files.c ---- */
/* 1 when `path` is a regular file / a folder (symlinks followed), else 0. */
int ct__file_exists(const char *path);
int ct__dir_exists(const char *path);
/* Size of a regular file; anything else (FIFO, device, folder) is refused with
 * "<path>: not a regular file", a missing file with "cannot open". */
ct_status ct__file_size(const char *path, int64_t *size);

/* ---- folder.c ---- */
/* Loads DIR/<class>/<image> (or DIR/{train,test}/<class>/<image>) resized to
 * size x size into `ds` (see ct_dataset_load's "folder:" spec). */
ct_status ct__load_folder(ct_dataset *ds, const char *dir, int train, int size);

/* One decoded image: interleaved (h, w, ch), ch 1 (gray) or 3 (RGB); px malloc'd. */
typedef struct {
    uint8_t *px;
    int w, h, ch;
} ct__image;
/* Decodes the PNG or JPEG file `path` (recognised by its first bytes) with
 * folder.c's checks and limits; a JPEG at the smallest scale covering target x
 * target. A PNG's alpha is composited on black (libpng's default, what folder:
 * datasets use), or on white when alpha_white. Free im->px with free(). */
ct_status ct__image_decode(ct__image *im, const char *path, int target, int alpha_white);
/* Resizes `im` into planar RGB (3, size, size) of `out`, replicating gray. */
ct_status ct__image_resize(uint8_t *out, const ct__image *im, int size);
/* Sets ds->mean / ds->std to the per-channel statistics of ds->images (values in
 * [0, 1]); channels past ds->c copy channel 0. */
void ct__measure_norm(ct_dataset *ds);

/* ---- captions.c ---- */
/* An image-caption set being assembled: images (a file to decode, its name in
 * ct_caption_dataset.files, where it was named for error messages, a class id or
 * -1), captions as (image, text) pairs in any order, class names. */
typedef struct {
    int64_t image;
    char *text;
} ct__capb_caption_t;
typedef struct {
    int64_t n, img_cap;
    char **path, **file, **where;   /* (n); where may hold NULLs */
    int32_t *cls;                   /* (n) */
    ct__capb_caption_t *caps;
    int64_t ncap, caps_cap;
    char **class_names;
    int64_t nclass, class_cap;
} ct__capb;
/* Zero-initialise a ct__capb before the first call. */
ct_status ct__capb_image(ct__capb *b, const char *path, const char *file, const char *where, int32_t cls);
ct_status ct__capb_caption(ct__capb *b, int64_t image, const char *text, size_t len);
/* Appends a class name; *id receives its index. */
ct_status ct__capb_class(ct__capb *b, const char *name, int32_t *id);
/* Decodes every image (alpha on white, size x size) into ds, moving the lists there
 * (captions grouped by image in the order they were added); b is freed either way.
 * An image's decoding error is prefixed with its `where`. */
ct_status ct__capb_finish(ct_caption_dataset *ds, ct__capb *b, int train, int size, const char *name);
void ct__capb_free(ct__capb *b);

/* ---- emoji.c ---- */
/* The "emoji" spec: ct_emoji_load on the newest gemojione-* under
 * CT_GEMOJIONE_GEMS_DIR and CT_TWEMOJI_DIR. */
ct_status ct__load_emoji_default(ct_caption_dataset *ds, int train, int size);

/* ---- resample.c ---- */

/* Separable resampling with a triangle filter whose support widens when shrinking
 * (antialiased bilinear, as PIL and torchvision's antialias=True): plain bilinear
 * with align_corners=False when enlarging. One axis: output o reads inputs
 * start[o] .. start[o]+count[o]-1 (absolute indices) with weights w[o*taps ...]. */
typedef struct {
    int taps;
    int *start, *count;
    float *w;
} ct__axis;

/* Floats (ints count as floats) of memory ct__axis_build needs. */
size_t ct__axis_floats(int in_len, int out_len);
/* Maps input [in_off, in_off + in_len) onto [0, out_len); flip reverses the output. */
void ct__axis_build(ct__axis *a, float *mem, int in_off, int in_len, int out_len, int flip);
/* One channel: out(oy, ox) = sum_y sum_x wy wx src[y*ys + x*xs].
 *   out: (oh, ow)  tmp: (rows spanned by ay) * ow floats
 * The source rows used are ay's; ax's columns. Values keep the source's scale. */
void ct__resample(float *out, float *tmp, const uint8_t *src, ptrdiff_t ys, ptrdiff_t xs,
                  const ct__axis *ay, int oh, const ct__axis *ax, int ow);

#endif
