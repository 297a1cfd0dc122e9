/* data_internal.h: helpers shared by the files of src/data (not public API). */
#ifndef CONTRAST_DATA_INTERNAL_H
#define CONTRAST_DATA_INTERNAL_H

#include "contrast/data.h"

int ct__file_exists(const char *path);
int ct__dir_exists(const char *path);
ct_status ct__load_folder(ct_dataset *ds, const char *dir, int train, int size);

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
