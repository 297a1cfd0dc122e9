/* npy.c: NumPy .npy arrays, the format `contrast embed` writes features and labels in.
 *
 * Format 1.0: "\x93NUMPY", version bytes 1 0, u16 little-endian header length, then
 * a Python dict literal {'descr': '<f4', 'fortran_order': False, 'shape': (N, D), }
 * padded with spaces and ending in '\n' so the data starts at a multiple of 64 bytes
 * (what numpy itself writes). The reader accepts versions 1.0 to 3.0 and checks the
 * dict and that the file size matches the shape exactly. */
#include "contrast/io.h"

#include <stdlib.h>
#include <string.h>

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "contrast's file formats assume a little-endian host"
#endif

/* Writes the header and data into an open atomic file (not committed); on failure
 * the file is aborted. */
static ct_status npy_put(ct_atomic_file *af, const char *descr, const void *data, size_t esz, int ndim, int64_t d0,
                         int64_t d1) {
    const char *path = af->path ? af->path : "?";
    ct_status st = CT_OK;
    if (d0 < 0 || d1 < 0 || (d0 * (ndim == 2 ? d1 : 1) > 0 && !data))
        st = ct_error(CT_ERR_ARG, "%s: bad array shape or no data", path);
    size_t n = 0, bytes = 0;
    if (!st && (ct_size_mul((size_t)d0, ndim == 2 ? (size_t)d1 : 1, &n) || ct_size_mul(n, esz, &bytes)))
        st = ct_error(CT_ERR_ARG, "%s: array too large", path);
    if (st) {
        ct_atomic_abort(af);
        return st;
    }
    char dict[160];
    int len;
    if (ndim == 2)
        len = snprintf(dict, sizeof dict, "{'descr': '%s', 'fortran_order': False, 'shape': (%lld, %lld), }", descr,
                       (long long)d0, (long long)d1);
    else
        len = snprintf(dict, sizeof dict, "{'descr': '%s', 'fortran_order': False, 'shape': (%lld,), }", descr,
                       (long long)d0);
    /* magic(6) + version(2) + u16 length + dict + spaces + '\n', total multiple of 64 */
    size_t total = ((size_t)10 + (size_t)len + 1 + 63) / 64 * 64;
    unsigned char head[256];
    size_t hl = total - 10;
    memcpy(head, "\x93NUMPY\x01\x00", 8);
    head[8] = (unsigned char)(hl & 0xFF);
    head[9] = (unsigned char)(hl >> 8);
    memcpy(head + 10, dict, (size_t)len);
    memset(head + 10 + len, ' ', total - 10 - (size_t)len - 1);
    head[total - 1] = '\n';

    st = ct_atomic_write(af, head, total);
    if (st == CT_OK) st = ct_atomic_write(af, data, bytes);
    return st;
}

static ct_status npy_write(const char *path, const char *descr, const void *data, size_t esz, int ndim,
                           int64_t d0, int64_t d1) {
    ct_atomic_file af;
    ct_status st = ct_atomic_open(&af, path);
    if (st == CT_OK) st = npy_put(&af, descr, data, esz, ndim, d0, d1);
    if (st == CT_OK) st = ct_atomic_commit(&af);
    return st;
}

ct_status ct_npy_write_f32(const char *path, const float *x, int64_t rows, int64_t cols) {
    return npy_write(path, "<f4", x, 4, 2, rows, cols);
}
ct_status ct_npy_write_i32(const char *path, const int32_t *x, int64_t n) {
    return npy_write(path, "<i4", x, 4, 1, n, 0);
}
ct_status ct_npy_write_i64(const char *path, const int64_t *x, int64_t n) {
    return npy_write(path, "<i8", x, 8, 1, n, 0);
}
ct_status ct_npy_put_f32(ct_atomic_file *af, const float *x, int64_t rows, int64_t cols) {
    return npy_put(af, "<f4", x, 4, 2, rows, cols);
}
ct_status ct_npy_put_i64(ct_atomic_file *af, const int64_t *x, int64_t n) {
    return npy_put(af, "<i8", x, 8, 1, n, 0);
}

/* ---- reader ---------------------------------------------------------------------- */

typedef struct {
    char descr[8];
    int fortran, ndim;
    int64_t shape[2];
} npy_header;

static const char *skip_sp(const char *p) {
    while (*p == ' ') p++;
    return p;
}

/* Parses the header dict; returns NULL on success or what is wrong. */
static const char *parse_dict(const char *s, npy_header *h) {
    int have_descr = 0, have_fortran = 0, have_shape = 0;
    const char *p = skip_sp(s);
    if (*p++ != '{') return "dict does not start with '{'";
    for (;;) {
        p = skip_sp(p);
        if (*p == '}') break;
        char key[16];
        size_t k = 0;
        if (*p++ != '\'') return "expected a quoted key";
        while (*p && *p != '\'' && k < sizeof key - 1) key[k++] = *p++;
        key[k] = '\0';
        if (*p++ != '\'') return "bad key";
        p = skip_sp(p);
        if (*p++ != ':') return "expected ':'";
        p = skip_sp(p);
        if (!strcmp(key, "descr") && !have_descr) {
            if (*p++ != '\'') return "descr is not a string";
            k = 0;
            while (*p && *p != '\'' && k < sizeof h->descr - 1) h->descr[k++] = *p++;
            h->descr[k] = '\0';
            if (*p++ != '\'') return "descr too long";
            have_descr = 1;
        } else if (!strcmp(key, "fortran_order") && !have_fortran) {
            if (!strncmp(p, "False", 5)) h->fortran = 0, p += 5;
            else if (!strncmp(p, "True", 4)) h->fortran = 1, p += 4;
            else return "fortran_order is not True/False";
            have_fortran = 1;
        } else if (!strcmp(key, "shape") && !have_shape) {
            if (*p++ != '(') return "shape is not a tuple";
            h->ndim = 0;
            for (;;) {
                p = skip_sp(p);
                if (*p == ')') { p++; break; }
                if (*p < '0' || *p > '9') return "shape holds a non-integer";
                if (h->ndim == 2) return "more than 2 dims";
                int64_t v = 0;
                while (*p >= '0' && *p <= '9') {
                    if (v > (INT64_MAX - 9) / 10) return "dimension too large";
                    v = v * 10 + (*p++ - '0');
                }
                h->shape[h->ndim++] = v;
                p = skip_sp(p);
                if (*p == ',') p++;
                else if (*p != ')') return "expected ',' or ')' in shape";
            }
            have_shape = 1;
        } else {
            return "unexpected or repeated key";
        }
        p = skip_sp(p);
        if (*p == ',') p++;
        else if (*p != '}') return "expected ',' or '}'";
    }
    if (!have_descr || !have_fortran || !have_shape) return "missing descr, fortran_order or shape";
    p = skip_sp(p + 1);
    if (*p == '\n') p++;
    if (*p) return "bytes after the dict";
    return NULL;
}

/* Reads header and data of `path`; data allocated with ct_alloc (at least 1 byte). */
static ct_status npy_read(const char *path, npy_header *h, void **data, size_t *nbytes) {
    *data = NULL;
    FILE *fp;
    int64_t fsize_;
    ct_status st = ct_fopen_regular(path, &fp, &fsize_);
    if (st) return st;
    char *dict = NULL;
    unsigned char pre[12];
    if (fsize_ < 10 || fread(pre, 1, 10, fp) != 10 ||
        memcmp(pre, "\x93NUMPY", 6) != 0) {
        st = ct_error(CT_ERR_FORMAT, "%s: not a .npy file (no \\x93NUMPY magic)", path);
        goto done;
    }
    size_t hl, pre_len;
    if (pre[6] == 1 && pre[7] == 0) {
        hl = (size_t)pre[8] | (size_t)pre[9] << 8;
        pre_len = 10;
    } else if ((pre[6] == 2 || pre[6] == 3) && pre[7] == 0) {
        if (fread(pre + 10, 1, 2, fp) != 2) {
            st = ct_error(CT_ERR_FORMAT, "%s: truncated .npy header", path);
            goto done;
        }
        hl = (size_t)pre[8] | (size_t)pre[9] << 8 | (size_t)pre[10] << 16 | (size_t)pre[11] << 24;
        pre_len = 12;
    } else {
        st = ct_error(CT_ERR_FORMAT, "%s: unsupported .npy version %d.%d", path, pre[6], pre[7]);
        goto done;
    }
    size_t fsize = (size_t)fsize_;
    if (hl > 65536 * 16 || pre_len + hl > fsize) {
        st = ct_error(CT_ERR_FORMAT, "%s: .npy header length %zu impossible for a %zu-byte file", path, hl, fsize);
        goto done;
    }
    if (!(dict = malloc(hl + 1)) || fread(dict, 1, hl, fp) != hl) {
        st = ct_error(CT_ERR_FORMAT, "%s: truncated .npy header", path);
        goto done;
    }
    dict[hl] = '\0';
    if (strlen(dict) != hl) {
        st = ct_error(CT_ERR_FORMAT, "%s: NUL byte in .npy header", path);
        goto done;
    }
    memset(h, 0, sizeof *h);
    const char *why = parse_dict(dict, h);
    if (why) {
        st = ct_error(CT_ERR_FORMAT, "%s: bad .npy header: %s", path, why);
        goto done;
    }
    if (h->fortran) {
        st = ct_error(CT_ERR_FORMAT, "%s: Fortran-order .npy arrays are not supported", path);
        goto done;
    }
    size_t esz = !strcmp(h->descr, "<f4") || !strcmp(h->descr, "<i4") ? 4 : !strcmp(h->descr, "<i8") ? 8 : 0;
    if (!esz) {
        st = ct_error(CT_ERR_FORMAT, "%s: unsupported .npy dtype '%s' (need '<f4', '<i4' or '<i8')", path, h->descr);
        goto done;
    }
    size_t n = 1;
    for (int d = 0; d < h->ndim; d++)
        if (ct_size_mul(n, (size_t)h->shape[d], &n)) n = SIZE_MAX;
    if (n == SIZE_MAX || ct_size_mul(n, esz, nbytes) || *nbytes != fsize - pre_len - hl) {
        st = ct_error(CT_ERR_FORMAT, "%s: .npy shape needs %zu data bytes but the file holds %zu", path,
                      n == SIZE_MAX ? SIZE_MAX : n * esz, fsize - pre_len - hl);
        goto done;
    }
    if (!(*data = ct_alloc(*nbytes ? *nbytes : 1))) {
        st = CT_ERR_NOMEM;
        goto done;
    }
    if (*nbytes && fread(*data, 1, *nbytes, fp) != *nbytes) {
        st = ct_error(CT_ERR_IO, "%s: read failed", path);
        ct_free(*data);
        *data = NULL;
    }
done:
    free(dict);
    fclose(fp);
    return st;
}

ct_status ct_npy_read_f32(const char *path, float **out, int64_t *rows, int64_t *cols) {
    npy_header h;
    void *data;
    size_t nbytes;
    *out = NULL;
    ct_status st = npy_read(path, &h, &data, &nbytes);
    if (st) return st;
    if (strcmp(h.descr, "<f4") != 0 || h.ndim < 1) {
        ct_free(data);
        return ct_error(CT_ERR_FORMAT, "%s: expected a 1-D or 2-D '<f4' array, found '%s' with %d dims", path, h.descr,
                        h.ndim);
    }
    *rows = h.shape[0];
    *cols = h.ndim == 2 ? h.shape[1] : 1;
    *out = data;
    return CT_OK;
}

ct_status ct_npy_read_i32(const char *path, int32_t **out, int64_t *n) {
    npy_header h;
    void *data;
    size_t nbytes;
    *out = NULL;
    ct_status st = npy_read(path, &h, &data, &nbytes);
    if (st) return st;
    if (h.ndim != 1 || !strcmp(h.descr, "<f4")) {
        ct_free(data);
        return ct_error(CT_ERR_FORMAT, "%s: expected 1-D '<i4' or '<i8' labels, found '%s' with %d dims", path,
                        h.descr, h.ndim);
    }
    *n = h.shape[0];
    if (!strcmp(h.descr, "<i8")) { /* narrow in place: slot i (4 bytes) never overtakes element i (8) */
        char *bytes = data;
        for (int64_t i = 0; i < *n; i++) {
            int64_t v;
            memcpy(&v, bytes + 8 * i, 8);
            if (v < INT32_MIN || v > INT32_MAX) {
                ct_free(data);
                return ct_error(CT_ERR_FORMAT, "%s: label %lld at index %lld does not fit int32", path, (long long)v,
                                (long long)i);
            }
            int32_t w = (int32_t)v;
            memcpy(bytes + 4 * i, &w, 4);
        }
    }
    *out = data;
    return CT_OK;
}
