/* fuzz_cifar.c: the CIFAR-10 / CIFAR-100 binary readers.
 * Input: one flags byte (bit 0: CIFAR-100), then the bytes of the test file
 * (test_batch.bin or test.bin). */
#include "common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1 || size > (1 << 20)) return 0;
    int hundred = data[0] & 1;
    data++, size--;
    const char *dir = fz_path("cifar");
    fz_mkdir(dir);
    char path[1200], spec[1200];
    snprintf(path, sizeof path, "%s/%s", dir, hundred ? "test.bin" : "test_batch.bin");
    fz_write(path, data, size);
    snprintf(spec, sizeof spec, "%s:%s", hundred ? "cifar100" : "cifar10", dir);
    ct_dataset ds;
    ct_clear_error();
    ct_status st = ct_dataset_load(&ds, spec, 0);
    fz_check_refusal(st, "cifar");
    if (st == CT_OK) {
        if (ds.n < 1 || ds.c != 3 || ds.h != 32 || ds.w != 32 || !ds.images || !ds.labels ||
            (hundred && !ds.coarse_labels))
            fz_fail("cifar", "inconsistent dataset");
        for (int64_t i = 0; i < ds.n; i++)
            if (ds.labels[i] < 0 || ds.labels[i] >= ds.num_classes) fz_fail("cifar", "label out of range");
    }
    ct_dataset_free(&ds);
    fz_rmtree(dir);
    return 0;
}
