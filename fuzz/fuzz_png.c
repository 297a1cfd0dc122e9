/* fuzz_png.c: PNG decoding (libpng's simplified API behind our size caps) and the
 * resize into the dataset, through the image-folder reader. */
#include "image.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static const uint8_t sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
    return fz_load_one_image(data, size, sig, sizeof sig);
}
