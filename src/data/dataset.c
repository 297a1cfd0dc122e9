/* dataset.c: dataset specs and the IDX (MNIST, Fashion-MNIST) and CIFAR binary readers.
 *
 * Every reader validates a header against the real file size (or, for gzip, the most
 * a deflate stream of that size can expand to) and the caps in data.h before it
 * allocates, so a corrupt or hostile header gives an error naming the file, never a
 * huge allocation, a crash or a hang. */
#include "contrast/io.h"
#include "data_internal.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

/* deflate cannot expand by more than about 1032:1; a little slack for headers. */
#define GZIP_MAX_RATIO 1100

void ct_dataset_free(ct_dataset *ds) {
    if (!ds) return;
    ct_free(ds->images);
    ct_free(ds->labels);
    ct_free(ds->coarse_labels);
    memset(ds, 0, sizeof *ds);
}

void ct_dataset_limit(ct_dataset *ds, int64_t n) {
    if (n <= 0 || n >= ds->n) return;
    ds->n = n; /* the buffers keep their size; only the first n samples are used */
}

static void set_norm(ct_dataset *ds, const float *mean, const float *std) {
    for (int c = 0; c < 3; c++) {
        ds->mean[c] = mean[c < ds->c ? c : 0];
        ds->std[c] = std[c < ds->c ? c : 0];
    }
}

/* ---- IDX ------------------------------------------------------------------ */
/* Reads an IDX file of unsigned bytes with `ndims` dimensions (1: labels, 3: images),
 * raw or gzip. dims[0] is the count, dims[1..] the sizes.
 * A raw file's size must match the header exactly, so its buffer is the file's size.
 * A gzip file's header is only a claim: the buffer starts at what the file can
 * plausibly hold (IDX_GZ_FIRST_RATIO times its size, at least IDX_GZ_FIRST_MIN) and
 * doubles only as decompressed bytes fill it, never beyond the claim, so a small
 * file announcing millions of images fails as truncated without the memory. */
#define IDX_GZ_FIRST_RATIO 4
#define IDX_GZ_FIRST_MIN ((size_t)1 << 20)
static ct_status idx_read(const char *path, int ndims, int64_t dims[3], uint8_t **out) {
    *out = NULL;
    int fd;
    int64_t fsize;
    ct_status st_ = ct_open_regular(path, &fd, &fsize);
    if (st_) return st_;
    gzFile f = gzdopen(fd, "rb");
    if (!f) {
        close(fd);
        return ct_error(CT_ERR_NOMEM, "%s: cannot open: out of memory", path);
    }
    uint8_t *buf = NULL;
    uint8_t hdr[16];
    int hlen = 4 + 4 * ndims;
    int got = gzread(f, hdr, (unsigned)hlen);
    if (got != hlen) {
        st_ = ct_error(CT_ERR_FORMAT, "%s: truncated: the IDX header needs %d bytes, the file has %d",
                       path, hlen, got < 0 ? 0 : got);
        goto done;
    }
    uint32_t magic = (uint32_t)hdr[0] << 24 | (uint32_t)hdr[1] << 16 | (uint32_t)hdr[2] << 8 | hdr[3];
    uint32_t want = 0x800u | (uint32_t)ndims;
    if (magic != want) {
        st_ = ct_error(CT_ERR_FORMAT,
                       "%s: bad magic number 0x%08x (expected 0x%08x: IDX, unsigned bytes, %d dimension%s)",
                       path, magic, want, ndims, ndims > 1 ? "s" : "");
        goto done;
    }
    size_t payload = 1;
    for (int d = 0; d < ndims; d++) {
        const uint8_t *p = hdr + 4 + 4 * d;
        dims[d] = (int64_t)((uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3]);
        int64_t cap = d == 0 ? CT_DATA_MAX_IMAGES : CT_DATA_MAX_SIDE;
        if (dims[d] <= 0 || dims[d] > cap) {
            st_ = ct_error(CT_ERR_FORMAT, "%s: header announces %s %lld (allowed 1 to %lld)", path,
                           d == 0 ? "an item count of" : "a side of", (long long)dims[d], (long long)cap);
            goto done;
        }
        payload *= (size_t)dims[d]; /* cannot overflow: 2^28 * 2^13 * 2^13 < 2^63 */
    }
    int direct = gzdirect(f);
    if (direct && (uint64_t)fsize != (uint64_t)hlen + payload) {
        if ((uint64_t)fsize < (uint64_t)hlen + payload)
            st_ = ct_error(CT_ERR_FORMAT,
                           "%s: truncated: header announces %lld items (%zu bytes of data) but the file has %lld bytes",
                           path, (long long)dims[0], payload, (long long)fsize);
        else
            st_ = ct_error(CT_ERR_FORMAT, "%s: %lld unexpected bytes after the %lld items the header announces",
                           path, (long long)((uint64_t)fsize - hlen - payload), (long long)dims[0]);
        goto done;
    }
    if (!direct && payload / GZIP_MAX_RATIO > (size_t)fsize) {
        st_ = ct_error(CT_ERR_FORMAT,
                       "%s: header announces %lld items (%zu bytes) but a gzip file of %lld bytes cannot hold that much",
                       path, (long long)dims[0], payload, (long long)fsize);
        goto done;
    }
    size_t cap = payload;
    if (!direct) {
        size_t first = (size_t)fsize * IDX_GZ_FIRST_RATIO; /* fsize <= payload / ... : no overflow */
        if (first < IDX_GZ_FIRST_MIN) first = IDX_GZ_FIRST_MIN;
        if (first < cap) cap = first;
    }
    if (!(buf = ct_alloc(cap))) {
        st_ = ct_error(CT_ERR_NOMEM, "%s: cannot allocate %zu bytes for the data", path, cap);
        goto done;
    }
    size_t have = 0;
    for (;;) {
        if (have == cap) {
            if (cap == payload) break;
            size_t ncap = cap > payload / 2 ? payload : 2 * cap;
            uint8_t *nb = ct_alloc(ncap);
            if (!nb) {
                st_ = ct_error(CT_ERR_NOMEM, "%s: cannot allocate %zu bytes for the data", path, ncap);
                goto done;
            }
            memcpy(nb, buf, have);
            ct_free(buf);
            buf = nb;
            cap = ncap;
        }
        size_t chunk = cap - have > (1u << 30) ? (1u << 30) : cap - have;
        int r = gzread(f, buf + have, (unsigned)chunk);
        if (r <= 0) break;
        have += (size_t)r;
    }
    if (have < payload) {
        int zerr;
        const char *zmsg = gzerror(f, &zerr);
        if (zerr != Z_OK && zerr != Z_BUF_ERROR)
            st_ = ct_error(CT_ERR_FORMAT, "%s: corrupt gzip stream after %zu of %zu bytes: %s", path, have,
                           payload, zmsg);
        else
            st_ = ct_error(CT_ERR_FORMAT,
                           "%s: truncated: header announces %lld items (%zu bytes of data), only %zu present",
                           path, (long long)dims[0], payload, have);
        goto done;
    }
    uint8_t extra;
    if (gzread(f, &extra, 1) == 1) {
        st_ = ct_error(CT_ERR_FORMAT, "%s: unexpected data after the %lld items the header announces", path,
                       (long long)dims[0]);
        goto done;
    }
    *out = buf;
    buf = NULL;
done:
    ct_free(buf);
    gzclose(f);
    return st_;
}

/* DIR/base, or DIR/base.gz when only that exists. */
static void idx_path(char *buf, size_t cap, const char *dir, const char *base) {
    snprintf(buf, cap, "%s/%s", dir, base);
    if (ct__file_exists(buf)) return;
    snprintf(buf, cap, "%s/%s.gz", dir, base);
    if (ct__file_exists(buf)) return;
    snprintf(buf, cap, "%s/%s", dir, base); /* report the plain name */
}

static ct_status load_idx(ct_dataset *ds, const char *dir, int train) {
    char ipath[4096], lpath[4096];
    idx_path(ipath, sizeof ipath, dir, train ? "train-images-idx3-ubyte" : "t10k-images-idx3-ubyte");
    idx_path(lpath, sizeof lpath, dir, train ? "train-labels-idx1-ubyte" : "t10k-labels-idx1-ubyte");
    int64_t idim[3], ldim[3];
    uint8_t *img = NULL, *lab = NULL;
    ct_status st = idx_read(ipath, 3, idim, &img);
    if (st) return st;
    st = idx_read(lpath, 1, ldim, &lab);
    if (st) { ct_free(img); return st; }
    if (ldim[0] != idim[0]) {
        st = ct_error(CT_ERR_FORMAT, "%s has %lld labels but %s has %lld images", lpath, (long long)ldim[0],
                      ipath, (long long)idim[0]);
        ct_free(img); ct_free(lab);
        return st;
    }
    ds->labels = ct_alloc((size_t)ldim[0] * sizeof(int32_t));
    if (!ds->labels) { ct_free(img); ct_free(lab); return CT_ERR_NOMEM; }
    int maxl = 0;
    for (int64_t i = 0; i < ldim[0]; i++) {
        ds->labels[i] = lab[i];
        if (lab[i] > maxl) maxl = lab[i];
    }
    ct_free(lab);
    ds->images = img;
    ds->n = idim[0];
    ds->c = 1;
    ds->h = (int)idim[1];
    ds->w = (int)idim[2];
    ds->num_classes = maxl + 1;
    return CT_OK;
}

/* ---- CIFAR ----------------------------------------------------------------- */
static ct_status load_cifar(ct_dataset *ds, const char *dir_in, int train, int hundred) {
    char dir[4096], path[4200];
    const char *probe = hundred ? "train.bin" : "data_batch_1.bin";
    const char *probe2 = hundred ? "test.bin" : "test_batch.bin";
    snprintf(dir, sizeof dir, "%s", dir_in);
    snprintf(path, sizeof path, "%s/%s", dir, probe);
    char path2[4200];
    snprintf(path2, sizeof path2, "%s/%s", dir, probe2);
    if (!ct__file_exists(path) && !ct__file_exists(path2)) {
        char sub[4096];
        snprintf(sub, sizeof sub, "%s/%s", dir_in, hundred ? "cifar-100-binary" : "cifar-10-batches-bin");
        if (ct__dir_exists(sub)) snprintf(dir, sizeof dir, "%s", sub);
    }
    const char *files10[] = {"data_batch_1.bin", "data_batch_2.bin", "data_batch_3.bin", "data_batch_4.bin",
                             "data_batch_5.bin"};
    const char *test10[] = {"test_batch.bin"};
    const char *train100[] = {"train.bin"}, *test100[] = {"test.bin"};
    const char **files = hundred ? (train ? train100 : test100) : (train ? files10 : test10);
    int nfiles = (!hundred && train) ? 5 : 1;
    const size_t pix = 3 * 32 * 32, rec = pix + (hundred ? 2 : 1);

    int64_t counts[5], total = 0;
    for (int k = 0; k < nfiles; k++) {
        snprintf(path, sizeof path, "%s/%s", dir, files[k]);
        int64_t fsize;
        ct_status st = ct__file_size(path, &fsize);
        if (st) return st;
        if (fsize == 0 || (uint64_t)fsize % rec != 0)
            return ct_error(CT_ERR_FORMAT,
                            "%s: size %lld bytes is not a positive multiple of the %zu-byte CIFAR-%d record "
                            "(truncated or not a CIFAR file)",
                            path, (long long)fsize, rec, hundred ? 100 : 10);
        counts[k] = (int64_t)((uint64_t)fsize / rec);
        total += counts[k];
        if (total > CT_DATA_MAX_IMAGES)
            return ct_error(CT_ERR_FORMAT, "%s: more than %lld images", path, (long long)CT_DATA_MAX_IMAGES);
    }
    ds->images = ct_alloc((size_t)total * pix);
    ds->labels = ct_alloc((size_t)total * sizeof(int32_t));
    if (hundred) ds->coarse_labels = ct_alloc((size_t)total * sizeof(int32_t));
    if (!ds->images || !ds->labels || (hundred && !ds->coarse_labels)) return CT_ERR_NOMEM;
    const size_t chunk = 1000;
    uint8_t *buf = ct_alloc(chunk * rec);
    if (!buf) return CT_ERR_NOMEM;
    int64_t i = 0;
    ct_status status = CT_OK;
    for (int k = 0; k < nfiles && !status; k++) {
        snprintf(path, sizeof path, "%s/%s", dir, files[k]);
        FILE *f;
        int64_t fsize;
        if ((status = ct_fopen_regular(path, &f, &fsize))) break;
        if (fsize != counts[k] * (int64_t)rec) {
            fclose(f);
            status = ct_error(CT_ERR_IO, "%s: changed size while being read", path);
            break;
        }
        for (int64_t r0 = 0; r0 < counts[k] && !status; r0 += (int64_t)chunk) {
            size_t m = (size_t)(counts[k] - r0) < chunk ? (size_t)(counts[k] - r0) : chunk;
            if (fread(buf, rec, m, f) != m) {
                status = ct_error(CT_ERR_IO, "%s: read failed near record %lld", path, (long long)r0);
                break;
            }
            for (size_t r = 0; r < m; r++, i++) {
                const uint8_t *p = buf + r * rec;
                int fine = hundred ? p[1] : p[0], coarse = p[0];
                int ncls = hundred ? 100 : 10;
                if (fine >= ncls || (hundred && coarse >= 20)) {
                    int coarse_bad = fine < ncls;
                    status = ct_error(CT_ERR_FORMAT, "%s: record %lld has %slabel %d (expected < %d)", path,
                                      (long long)(r0 + (int64_t)r), coarse_bad ? "coarse " : "",
                                      coarse_bad ? coarse : fine, coarse_bad ? 20 : ncls);
                    break;
                }
                ds->labels[i] = fine;
                if (hundred) ds->coarse_labels[i] = coarse;
                memcpy(ds->images + (size_t)i * pix, p + rec - pix, pix);
            }
        }
        fclose(f);
    }
    ct_free(buf);
    if (status) return status;
    ds->n = total;
    ds->c = 3;
    ds->h = ds->w = 32;
    ds->num_classes = hundred ? 100 : 10;
    return CT_OK;
}

/* ---- dispatch ----------------------------------------------------------------- */
ct_status ct_dataset_load(ct_dataset *ds, const char *spec, int train) {
    memset(ds, 0, sizeof *ds);
    if (!spec || !*spec) return ct_error(CT_ERR_ARG, "dataset: empty spec");
    static const float fm_mean[3] = {0.2860f}, fm_std[3] = {0.3530f};
    static const float m_mean[3] = {0.1307f}, m_std[3] = {0.3081f};
    static const float c10_mean[3] = {0.4914f, 0.4822f, 0.4465f}, c10_std[3] = {0.2470f, 0.2435f, 0.2616f};
    static const float c100_mean[3] = {0.5071f, 0.4865f, 0.4409f}, c100_std[3] = {0.2673f, 0.2564f, 0.2762f};
    ct_status st;
    if (!strcmp(spec, "fashion-mnist") || !strncmp(spec, "fashion-mnist:", 14)) {
        const char *dir = spec[13] == ':' ? spec + 14 : CT_FASHION_MNIST_DIR;
        st = load_idx(ds, dir, train);
        snprintf(ds->name, sizeof ds->name, "fashion-mnist");
        if (!st) set_norm(ds, fm_mean, fm_std);
    } else if (!strncmp(spec, "mnist:", 6)) {
        st = load_idx(ds, spec + 6, train);
        snprintf(ds->name, sizeof ds->name, "mnist");
        if (!st) set_norm(ds, m_mean, m_std);
    } else if (!strncmp(spec, "cifar10:", 8)) {
        st = load_cifar(ds, spec + 8, train, 0);
        snprintf(ds->name, sizeof ds->name, "cifar10");
        if (!st) set_norm(ds, c10_mean, c10_std);
    } else if (!strncmp(spec, "cifar100:", 9)) {
        st = load_cifar(ds, spec + 9, train, 1);
        snprintf(ds->name, sizeof ds->name, "cifar100");
        if (!st) set_norm(ds, c100_mean, c100_std);
    } else if (!strncmp(spec, "folder:", 7)) {
        char dir[4096];
        snprintf(dir, sizeof dir, "%s", spec + 7);
        int size = 32;
        char *at = strrchr(dir, '@');
        if (at) {
            char *end;
            long s = strtol(at + 1, &end, 10);
            if (*end || s < 1 || s > 1024)
                return ct_error(CT_ERR_ARG, "dataset '%s': size after '@' must be 1..1024", spec);
            size = (int)s;
            *at = '\0';
        }
        st = ct__load_folder(ds, dir, train, size);
        snprintf(ds->name, sizeof ds->name, "folder");
    } else {
        return ct_error(CT_ERR_ARG,
                        "dataset '%s': expected fashion-mnist, fashion-mnist:DIR, mnist:DIR, cifar10:DIR, "
                        "cifar100:DIR or folder:DIR[@SIZE]",
                        spec);
    }
    if (st) ct_dataset_free(ds);
    return st;
}
