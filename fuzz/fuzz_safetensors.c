/* fuzz_safetensors.c: the safetensors reader (ct_st_open and every accessor) and
 * checkpoint loading (ct_checkpoint_load_model: metadata -> model -> tensors).
 *
 * Promises checked: an opened file's entries lie inside the file and tile the data
 * section, names are unique and found by ct_st_find; a loaded model holds exactly
 * the file's bytes for every parameter and buffer; every refusal names the file. */
#include "common.h"
#include "contrast/train.h"

static void check_open_file(const ct_st_file *f, size_t file_size) {
    int n = ct_st_count(f);
    size_t expect_off = 0;
    for (int i = 0; i < n; i++) {
        const ct_st_entry *e = ct_st_entry_at(f, i);
        if (!e || !e->name || !e->name[0]) fz_fail("st", "entry without a name");
        if (ct_st_find(f, e->name) != e) fz_fail("st", "ct_st_find disagrees with the entry list");
        if (e->offset != expect_off || e->nbytes != e->numel * ct_dtype_size(e->dtype)) fz_fail("st", "bad tiling");
        if (e->nbytes > file_size) fz_fail("st", "entry larger than the file");
        expect_off += e->nbytes;
        if (e->nbytes) { /* touch the first and last byte: inside the file's buffer (ASan) */
            volatile uint8_t a = ((const uint8_t *)e->data)[0], b = ((const uint8_t *)e->data)[e->nbytes - 1];
            (void)a, (void)b;
        }
        if (e->dtype == CT_DTYPE_F32 && e->numel <= (1u << 20)) {
            float *dst = malloc(e->numel * sizeof(float) + 4);
            if (dst && ct_st_read_f32(f, e->name, dst, e->numel, e->ndim, e->shape) != CT_OK)
                fz_fail("st", "ct_st_read_f32 refused a listed F32 entry");
            free(dst);
        }
    }
    for (int i = 0; i < ct_st_meta_count(f); i++) {
        const char *k, *v;
        ct_st_meta_at(f, i, &k, &v);
        if (!k || !v || ct_st_meta(f, k) == NULL) fz_fail("st", "metadata pair not found by key");
    }
}

/* Every tensor of a loaded model must hold exactly the file's bytes. */
static void check_model(const ct_model *m, const char *path) {
    ct_st_file *f;
    if (ct_st_open(&f, path) != CT_OK) fz_fail("ckpt", "loaded a model from a file ct_st_open refuses");
    for (int pass = 0; pass < 2; pass++) {
        const ct_tensor_info *tab = pass ? m->bufs : m->params;
        const float *base = pass ? m->buf : m->param;
        for (int i = 0; i < (pass ? m->nbufs : m->nparams); i++) {
            const ct_st_entry *e = ct_st_find(f, tab[i].name);
            if (!e || e->dtype != CT_DTYPE_F32 || e->numel != tab[i].numel ||
                memcmp(e->data, base + tab[i].offset, e->nbytes))
                fz_fail("ckpt", "model tensor differs from the file");
        }
    }
    ct_st_close(f);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size > (4 << 20)) return 0;
    const char *path = fz_path("x.safetensors");
    fz_write(path, data, size);
    ct_st_file *f = NULL;
    ct_clear_error();
    ct_status st = ct_st_open(&f, path);
    fz_check_refusal(st, "ct_st_open");
    if (st == CT_OK) {
        check_open_file(f, size);
        ct_st_close(f);
    } else if (f) {
        fz_fail("st", "refused but returned a file");
    }
    ct_model m;
    ct_clear_error();
    st = ct_checkpoint_load_model(&m, path);
    fz_check_refusal(st, "ct_checkpoint_load_model");
    if (st == CT_OK) {
        check_model(&m, path);
        ct_model_free(&m);
    }
    remove(path);
    return 0;
}
