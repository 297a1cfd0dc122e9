/* fuzz_folder.c: image-folder scanning: class folders, split folders, hidden and
 * odd entries, empty classes, files that are not images.
 *
 * Input: a flags byte, then records until the input ends:
 *   [kind] [name length L] [name: L bytes] [content length: 2 bytes LE] [content]
 *   kind % 4: 0 file in class folder (kind / 4) % 4, 1 class folder only, 2 nested
 *   folder inside a class, 3 file at the top level.
 * Names are made safe (no '/', no NUL, not "." or ".."). flags bit 0: use
 * train/ and test/ split folders (bit 1: create test/); bits 2-7 the output side.
 * Every file's content is an image the fuzzer may break. */
#include "common.h"

static void safe_name(char *dst, const uint8_t *src, size_t n) {
    size_t k = 0;
    for (size_t i = 0; i < n && k < 32; i++) {
        uint8_t c = src[i];
        dst[k++] = (char)(c == '/' || c == 0 ? '_' : c);
    }
    dst[k] = '\0';
    if (k == 0 || !strcmp(dst, ".") || !strcmp(dst, "..")) snprintf(dst, 8, "n%zu", k);
}

/* Conflicting records (a file where a folder should be) are simply skipped. */
static void try_mkdir(const char *path) { (void)mkdir(path, 0700); }
static void try_write(const char *path, const uint8_t *d, size_t n) {
    FILE *f = fopen(path, "wb");
    if (!f) return;
    if (n) (void)!fwrite(d, 1, n, f);
    fclose(f);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1 || size > (1 << 20)) return 0;
    int flags = data[0], side = 1 + (flags >> 2) % 24;
    size_t p = 1;
    const char *dir = fz_path("folder");
    fz_mkdir(dir);
    char root[1200], path[2400];
    if (flags & 1) {
        snprintf(root, sizeof root, "%s/train", dir);
        fz_mkdir(root);
        if (flags & 2) {
            snprintf(path, sizeof path, "%s/test", dir);
            fz_mkdir(path);
        }
    } else {
        snprintf(root, sizeof root, "%s", dir);
    }
    static const char *classes[4] = {"a", "b", "c", ".hidden"};
    int nrec = 0;
    while (p + 2 <= size && nrec < 32) {
        int kind = data[p++];
        size_t nl = data[p++] % 33;
        if (p + nl + 2 > size) break;
        char name[40];
        safe_name(name, data + p, nl);
        p += nl;
        size_t cl = (size_t)data[p] | (size_t)data[p + 1] << 8;
        p += 2;
        if (cl > size - p) cl = size - p;
        const char *cls = classes[(kind / 4) % 4];
        snprintf(path, sizeof path, "%s/%s", root, cls);
        switch (kind % 4) {
        case 0:
            try_mkdir(path);
            snprintf(path, sizeof path, "%s/%s/%s", root, cls, name);
            try_write(path, data + p, cl);
            break;
        case 1: try_mkdir(path); break;
        case 2:
            try_mkdir(path);
            snprintf(path, sizeof path, "%s/%s/%s", root, cls, name);
            try_mkdir(path);
            break;
        case 3:
            snprintf(path, sizeof path, "%s/%s", root, name);
            try_write(path, data + p, cl);
            break;
        }
        p += cl;
        nrec++;
    }
    char spec[1300];
    snprintf(spec, sizeof spec, "folder:%s@%d", dir, side);
    for (int train = 1; train >= 0; train--) {
        ct_dataset ds;
        ct_clear_error();
        ct_status st = ct_dataset_load(&ds, spec, train);
        fz_check_refusal(st, "folder");
        if (st == CT_OK) {
            if (ds.n < 1 || (ds.c != 1 && ds.c != 3) || ds.h != side || ds.w != side || ds.num_classes < 1 ||
                ds.num_classes > 3)
                fz_fail("folder", "inconsistent dataset");
            for (int64_t i = 0; i < ds.n; i++)
                if (ds.labels[i] < 0 || ds.labels[i] >= ds.num_classes) fz_fail("folder", "label out of range");
        }
        ct_dataset_free(&ds);
    }
    fz_rmtree(dir);
    return 0;
}
