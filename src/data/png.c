/* png.c: writing 8-bit PNG images (augmentation grids, figures) with libpng's
 * simplified API, through the atomic writer (contrast/io.h): a reader never sees a
 * half-written image, and /dev/null or a pipe is written through, not replaced.
 * Declared in contrast/data.h. */
#include "contrast/data.h"
#include "contrast/io.h"

#include <png.h>
#include <string.h>

ct_status ct_png_write(const char *path, const uint8_t *pixels, int w, int h, int channels) {
    if (w < 1 || h < 1 || (channels != 1 && channels != 3) || !pixels)
        return ct_error(CT_ERR_ARG, "%s: cannot write a %dx%d PNG with %d channels", path, w, h, channels);
    png_image p;
    memset(&p, 0, sizeof p);
    p.version = PNG_IMAGE_VERSION;
    p.width = (png_uint_32)w;
    p.height = (png_uint_32)h;
    p.format = channels == 3 ? PNG_FORMAT_RGB : PNG_FORMAT_GRAY;
    ct_atomic_file af;
    ct_status st = ct_atomic_open(&af, path);
    if (st) return st;
    if (!png_image_write_to_stdio(&p, af.fp, 0, pixels, 0, NULL)) {
        ct_atomic_abort(&af);
        return ct_error(CT_ERR_IO, "%s: cannot write PNG: %s", path, p.message);
    }
    return ct_atomic_commit(&af);
}
