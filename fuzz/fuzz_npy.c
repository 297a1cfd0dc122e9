/* fuzz_npy.c: the .npy reader (ct_npy_read_f32 and ct_npy_read_i32): versions 1-3,
 * the header dict parser, shape/size checks, int64 narrowing. An accepted file's
 * shape must account for every data byte. */
#include "common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size > (1 << 20)) return 0;
    const char *path = fz_path("x.npy");
    fz_write(path, data, size);
    float *x = NULL;
    int64_t rows = -1, cols = -1, n = -1;
    ct_clear_error();
    ct_status st = ct_npy_read_f32(path, &x, &rows, &cols);
    fz_check_refusal(st, "npy f32");
    if (st == CT_OK) {
        if (rows < 0 || cols < 0 || (uint64_t)rows * (uint64_t)cols * 4 > size) fz_fail("npy", "bad f32 shape");
        if (rows * cols > 0) {
            volatile float last = x[rows * cols - 1];
            (void)last;
        }
    } else if (x) {
        fz_fail("npy", "refused but returned data");
    }
    ct_free(x);
    int32_t *l = NULL;
    ct_clear_error();
    st = ct_npy_read_i32(path, &l, &n);
    fz_check_refusal(st, "npy i32");
    if (st == CT_OK) {
        if (n < 0 || (uint64_t)n * 4 > size) fz_fail("npy", "bad label count");
        if (n > 0) {
            volatile int32_t last = l[n - 1];
            (void)last;
        }
    } else if (l) {
        fz_fail("npy", "refused but returned data");
    }
    ct_free(l);
    remove(path);
    return 0;
}
