/* fuzz_jpeg.c: JPEG decoding (libjpeg with our error handler and size caps) and
 * the resize into the dataset, through the image-folder reader. */
#include "image.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static const uint8_t sig[3] = {0xFF, 0xD8, 0xFF};
    return fz_load_one_image(data, size, sig, sizeof sig);
}
