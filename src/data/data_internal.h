/* data_internal.h: helpers shared by the files of src/data (not public API). */
#ifndef CONTRAST_DATA_INTERNAL_H
#define CONTRAST_DATA_INTERNAL_H

#include "contrast/data.h"

/* Who provides what (dependencies go one way: dataset.c -> folder.c -> files.c,
 * resample.c; augment.c, loader.c -> resample.c):
 *   files.c     file-system checks
 *   folder.c    image-folder datasets (PNG, JPEG)
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
