/* fuzz_idx.c: the IDX reader (MNIST / Fashion-MNIST), raw and gzip.
 *
 * Input: one flags byte, then the bytes of one IDX file.
 *   bit 0: the bytes are the image file (else the label file)
 *   bit 1: gzip-compress them first (the reader's decompressed-size checks), stored as .gz
 *   bit 2: store them as .gz without compressing (gzopen reads such files as raw)
 * The other file of the pair is a small valid one, so a valid input loads.
 * Loaded datasets must be consistent; refusals must name the file. */
#include "common.h"

#include <zlib.h>

static const char *IMG = "train-images-idx3-ubyte", *LAB = "train-labels-idx1-ubyte";

/* A valid companion: `n` items of 2x2 images, or `n` labels. */
static void write_companion(const char *dir, int images, uint32_t n) {
    uint8_t buf[16 + 64 * 4];
    size_t len = 0;
    uint32_t fields[4] = {images ? 0x803u : 0x801u, n, 2, 2};
    int nf = images ? 4 : 2;
    for (int i = 0; i < nf; i++)
        for (int b = 3; b >= 0; b--) buf[len++] = (uint8_t)(fields[i] >> (8 * b));
    size_t items = images ? 4 * (size_t)n : n;
    for (size_t i = 0; i < items; i++) buf[len++] = (uint8_t)(i * 7 % 10);
    char path[1200];
    snprintf(path, sizeof path, "%s/%s", dir, images ? IMG : LAB);
    fz_write(path, buf, len);
}

static void write_gzip(const char *path, const uint8_t *d, size_t n) {
    gzFile g = gzopen(path, "wb");
    if (!g) fz_fail("gzopen", path);
    if (n && gzwrite(g, d, (unsigned)n) != (int)n) fz_fail("gzwrite", path);
    gzclose(g);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1 || size > (1 << 20)) return 0;
    int flags = data[0], images = flags & 1;
    data++, size--;
    const char *dir = fz_path("idx");
    fz_mkdir(dir);
    /* the companion matches the count the fuzzed header claims, when small */
    uint32_t claimed = 1;
    if (size >= 8) claimed = (uint32_t)data[4] << 24 | (uint32_t)data[5] << 16 | (uint32_t)data[6] << 8 | data[7];
    if (claimed < 1 || claimed > 64) claimed = 1;
    write_companion(dir, !images, claimed);
    char path[1200];
    snprintf(path, sizeof path, "%s/%s%s", dir, images ? IMG : LAB, flags & 6 ? ".gz" : "");
    if (flags & 2) write_gzip(path, data, size);
    else fz_write(path, data, size);

    char spec[1200];
    snprintf(spec, sizeof spec, "mnist:%s", dir);
    ct_dataset ds;
    ct_clear_error();
    ct_status st = ct_dataset_load(&ds, spec, 1);
    fz_check_refusal(st, "idx");
    if (st == CT_OK) {
        if (ds.n < 1 || ds.c != 1 || ds.h < 1 || ds.w < 1 || !ds.images || !ds.labels || ds.num_classes < 1)
            fz_fail("idx", "inconsistent dataset");
        for (int64_t i = 0; i < ds.n; i++)
            if (ds.labels[i] < 0 || ds.labels[i] >= ds.num_classes) fz_fail("idx", "label out of range");
        volatile uint8_t last = ds.images[(size_t)ds.n * ds.h * ds.w - 1]; /* in bounds (ASan) */
        (void)last;
    }
    ct_dataset_free(&ds);
    fz_rmtree(dir);
    return 0;
}
