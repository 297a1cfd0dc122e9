/* png.c: writing 8-bit PNG images (augmentation grids, figures) with libpng's
 * simplified API; written to a temporary file and renamed, so a reader never sees
 * a half-written image. Declared in contrast/data.h. */
#include "contrast/data.h"

#include <png.h>
#include <stdio.h>
#include <string.h>

ct_status ct_png_write(const char *path, const uint8_t *pixels, int w, int h, int channels) {
    if (w < 1 || h < 1 || (channels != 1 && channels != 3) || !pixels)
        return ct_error(CT_ERR_ARG, "%s: cannot write a %dx%d PNG with %d channels", path, w, h, channels);
    char tmp[4200];
    if ((size_t)snprintf(tmp, sizeof tmp, "%s.tmp", path) >= sizeof tmp)
        return ct_error(CT_ERR_ARG, "%s: path too long", path);
    png_image p;
    memset(&p, 0, sizeof p);
    p.version = PNG_IMAGE_VERSION;
    p.width = (png_uint_32)w;
    p.height = (png_uint_32)h;
    p.format = channels == 3 ? PNG_FORMAT_RGB : PNG_FORMAT_GRAY;
    if (!png_image_write_to_file(&p, tmp, 0, pixels, 0, NULL)) {
        remove(tmp);
        return ct_error(CT_ERR_IO, "%s: cannot write PNG: %s", path, p.message);
    }
    if (rename(tmp, path) != 0) {
        remove(tmp);
        return ct_error(CT_ERR_IO, "%s: cannot rename %s into place", path, tmp);
    }
    return CT_OK;
}
