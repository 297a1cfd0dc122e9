/* image.h: the part of fuzz_png and fuzz_jpeg they share: load one image file
 * through the image-folder reader (DIR/<class>/<file>), at an output size taken
 * from the input's first byte. */
#ifndef CONTRAST_FUZZ_IMAGE_H
#define CONTRAST_FUZZ_IMAGE_H
#include "common.h"

/* Input: one byte choosing the output side (1 to 48), then the file's bytes. When
 * they do not start with `sig`, it is put in front, so the fuzzer spends its time
 * inside the decoder rather than on the signature test. */
static int fz_load_one_image(const uint8_t *data, size_t size, const uint8_t *sig, size_t siglen) {
    if (size < 1 || size > (1 << 20)) return 0;
    int side = 1 + data[0] % 48;
    data++, size--;
    const char *dir = fz_path("img"), *cls = fz_path("img/c"), *file = fz_path("img/c/x");
    fz_mkdir(dir);
    fz_mkdir(cls);
    uint8_t *buf = malloc(size + siglen + 1);
    if (!buf) return 0;
    size_t n = 0;
    if (size < siglen || memcmp(data, sig, siglen)) memcpy(buf, sig, siglen), n = siglen;
    if (size) memcpy(buf + n, data, size);
    fz_write(file, buf, n + size);
    free(buf);
    char spec[1200];
    snprintf(spec, sizeof spec, "folder:%s@%d", dir, side);
    ct_dataset ds;
    ct_clear_error();
    ct_status st = ct_dataset_load(&ds, spec, 1);
    fz_check_refusal(st, "image");
    if (st == CT_OK) {
        if (ds.n != 1 || (ds.c != 1 && ds.c != 3) || ds.h != side || ds.w != side || ds.num_classes != 1 ||
            !(ds.std[0] > 0))
            fz_fail("image", "inconsistent dataset");
        volatile uint8_t last = ds.images[(size_t)ds.c * side * side - 1];
        (void)last;
    }
    ct_dataset_free(&ds);
    fz_rmtree(dir);
    return 0;
}
#endif
