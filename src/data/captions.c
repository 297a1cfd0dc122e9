/* captions.c: image-caption datasets (contrast/captions.h): the builder both sources
 * fill (a list of images, each with its captions and optional class, decoded and
 * resized by folder.c's reader with alpha on white), the captions:DIR reader, the
 * spec dispatch and per-step caption sampling. The emoji set is in emoji.c.
 *
 * captions.tsv is read whole (at most CT_CAPTIONS_MAX_TSV bytes, regular files only)
 * and every row is checked before any image is decoded, so a typo on line 900 costs
 * no decoding; each error names the .tsv file and the line. */
#include "contrast/captions.h"
#include "contrast/io.h"
#include "data_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- builder ------------------------------------------------------------------ */

static int grow(void **p, int64_t *cap, int64_t need, size_t elem) {
    if (need <= *cap) return 0;
    int64_t nc = *cap ? *cap : 16;
    while (nc < need) nc *= 2;
    void *q = realloc(*p, (size_t)nc * elem);
    if (!q) return -1;
    *p = q;
    *cap = nc;
    return 0;
}

void ct__capb_free(ct__capb *b) {
    for (int64_t i = 0; i < b->n; i++) { free(b->path[i]); free(b->file[i]); free(b->where[i]); }
    for (int64_t i = 0; i < b->ncap; i++) free(b->caps[i].text);
    for (int64_t i = 0; i < b->nclass; i++) free(b->class_names[i]);
    free(b->path); free(b->file); free(b->where); free(b->cls); free(b->caps); free(b->class_names);
    memset(b, 0, sizeof *b);
}

ct_status ct__capb_image(ct__capb *b, const char *path, const char *file, const char *where, int32_t cls) {
    if (b->n >= CT_DATA_MAX_IMAGES) return ct_error(CT_ERR_FORMAT, "%s: more than %lld images", path,
                                                    (long long)CT_DATA_MAX_IMAGES);
    int64_t c1 = b->img_cap, c2 = b->img_cap, c3 = b->img_cap, c4 = b->img_cap;
    if (grow((void **)&b->path, &c1, b->n + 1, sizeof *b->path) ||
        grow((void **)&b->file, &c2, b->n + 1, sizeof *b->file) ||
        grow((void **)&b->where, &c3, b->n + 1, sizeof *b->where) ||
        grow((void **)&b->cls, &c4, b->n + 1, sizeof *b->cls))
        return ct_error(CT_ERR_NOMEM, "%s: out of memory", path);
    b->img_cap = c4;
    char *p = strdup(path), *f = strdup(file), *w = where ? strdup(where) : NULL;
    if (!p || !f || (where && !w)) {
        free(p); free(f); free(w);
        return ct_error(CT_ERR_NOMEM, "%s: out of memory", path);
    }
    b->path[b->n] = p;
    b->file[b->n] = f;
    b->where[b->n] = w;
    b->cls[b->n] = cls;
    b->n++;
    return CT_OK;
}

ct_status ct__capb_caption(ct__capb *b, int64_t image, const char *text, size_t len) {
    if (grow((void **)&b->caps, &b->caps_cap, b->ncap + 1, sizeof *b->caps))
        return ct_error(CT_ERR_NOMEM, "out of memory for captions");
    char *t = malloc(len + 1);
    if (!t) return ct_error(CT_ERR_NOMEM, "out of memory for captions");
    memcpy(t, text, len);
    t[len] = '\0';
    b->caps[b->ncap].image = image;
    b->caps[b->ncap].text = t;
    b->ncap++;
    return CT_OK;
}

ct_status ct__capb_class(ct__capb *b, const char *name, int32_t *id) {
    if (b->nclass >= CT_DATA_MAX_CLASSES)
        return ct_error(CT_ERR_FORMAT, "more than %d class names", CT_DATA_MAX_CLASSES);
    if (grow((void **)&b->class_names, &b->class_cap, b->nclass + 1, sizeof *b->class_names) ||
        !(b->class_names[b->nclass] = strdup(name)))
        return ct_error(CT_ERR_NOMEM, "out of memory for class names");
    *id = (int32_t)b->nclass++;
    return CT_OK;
}

/* Moves the builder's lists into ds and decodes every image; b is emptied. */
ct_status ct__capb_finish(ct_caption_dataset *ds, ct__capb *b, int train, int size, const char *name) {
    memset(ds, 0, sizeof *ds);
    ct_status st = CT_OK;
    int64_t n = b->n;
    size_t per = (size_t)3 * size * size;
    if (n == 0) st = ct_error(CT_ERR_FORMAT, "%s: no images in this split", name);
    /* counting sort of the captions by image, keeping their order within an image */
    if (!st && (!(ds->caption_start = calloc((size_t)n + 1, sizeof *ds->caption_start)) ||
                !(ds->captions = malloc((size_t)(b->ncap ? b->ncap : 1) * sizeof *ds->captions))))
        st = ct_error(CT_ERR_NOMEM, "%s: out of memory for %lld captions", name, (long long)b->ncap);
    if (!st) {
        for (int64_t k = 0; k < b->ncap; k++) ds->caption_start[b->caps[k].image + 1]++;
        for (int64_t i = 0; i < n && !st; i++) {
            if (ds->caption_start[i + 1] == 0)
                st = ct_error(CT_ERR_FORMAT, "%s: %s has no caption", name, b->file[i]);
            ds->caption_start[i + 1] += ds->caption_start[i];
        }
    }
    int moved = 0; /* the caption strings belong to ds->captions, no longer to b */
    if (!st) {
        int64_t *pos = malloc((size_t)n * sizeof *pos);
        if (!pos) st = ct_error(CT_ERR_NOMEM, "%s: out of memory", name);
        for (int64_t i = 0; pos && i < n; i++) pos[i] = ds->caption_start[i];
        for (int64_t k = 0; pos && k < b->ncap; k++) {
            ds->captions[pos[b->caps[k].image]++] = b->caps[k].text;
            b->caps[k].text = NULL;
        }
        moved = pos != NULL;
        free(pos);
    }
    ct_dataset *im = &ds->img;
    if (!st && (n > (int64_t)(SIZE_MAX / per) ||
                !(im->images = ct_alloc((size_t)n * per)) || !(im->labels = ct_alloc((size_t)n * sizeof(int32_t)))))
        st = ct_error(CT_ERR_NOMEM, "%s: out of memory for %lld images of %dx%d", name, (long long)n, size, size);
    for (int64_t i = 0; i < n && !st; i++) {
        ct__image pic;
        st = ct__image_decode(&pic, b->path[i], size, 1);
        if (!st) st = ct__image_resize(im->images + (size_t)i * per, &pic, size);
        free(pic.px);
        if (st && b->where[i]) st = ct_error(st, "%s: %s", b->where[i], ct_errmsg());
    }
    if (!st) {
        int classes = b->nclass > 0;
        for (int64_t i = 0; i < n; i++) im->labels[i] = classes ? b->cls[i] : (int32_t)i;
        im->n = n;
        im->c = 3;
        im->h = im->w = size;
        im->num_classes = classes ? (int)b->nclass : (int)n;
        snprintf(im->name, sizeof im->name, "%s", name);
        ct__measure_norm(im);
        if (classes) {
            ds->class_names = b->class_names;
            b->class_names = NULL;
            b->nclass = 0;
        }
        ds->files = b->file;
        b->file = NULL;
        /* the per-image strings now belong to ds: only the arrays remain in b */
        for (int64_t i = 0; i < n; i++) { free(b->path[i]); free(b->where[i]); }
        b->n = 0;
        ds->train = train;
    } else {
        for (int64_t k = 0; moved && k < ds->caption_start[n]; k++) free(ds->captions[k]);
        free(ds->captions);
        free(ds->caption_start);
        ct_dataset_free(im);
        memset(ds, 0, sizeof *ds);
    }
    ct__capb_free(b);
    return st;
}

void ct_caption_dataset_free(ct_caption_dataset *ds) {
    if (!ds) return;
    int64_t n = ds->img.n;
    if (ds->captions && ds->caption_start)
        for (int64_t k = 0; k < ds->caption_start[n]; k++) free(ds->captions[k]);
    for (int i = 0; ds->class_names && i < ds->img.num_classes; i++) free(ds->class_names[i]);
    for (int64_t i = 0; ds->files && i < n; i++) free(ds->files[i]);
    free(ds->captions);
    free(ds->caption_start);
    free(ds->class_names);
    free(ds->files);
    ct_dataset_free(&ds->img);
    memset(ds, 0, sizeof *ds);
}

const char *ct_caption_sample(const ct_caption_dataset *ds, int64_t index, uint64_t seed, int64_t epoch) {
    int64_t lo = ds->caption_start[index], count = ds->caption_start[index + 1] - lo;
    ct_rng r = ct_rng_make(ct_rng_key(seed, (uint64_t)epoch, (uint64_t)index, CT_CAPTION_STREAM));
    return ds->captions[lo + (int64_t)ct_rng_below(&r, (uint64_t)count)];
}

/* ---- captions:DIR ------------------------------------------------------------- */

/* Length of the valid UTF-8 prefix of s[0..n) (overlongs, surrogates, > U+10FFFF invalid). */
static size_t utf8_valid(const unsigned char *s, size_t n) {
    size_t i = 0;
    while (i < n) {
        unsigned c = s[i];
        size_t k;
        unsigned cp, min;
        if (c < 0x80) { i++; continue; }
        if ((c & 0xE0) == 0xC0) { k = 1; cp = c & 0x1F; min = 0x80; }
        else if ((c & 0xF0) == 0xE0) { k = 2; cp = c & 0x0F; min = 0x800; }
        else if ((c & 0xF8) == 0xF0) { k = 3; cp = c & 0x07; min = 0x10000; }
        else return i;
        for (size_t j = 1; j <= k; j++) {
            if (i + j >= n || (s[i + j] & 0xC0) != 0x80) return i;
            cp = (cp << 6) | (s[i + j] & 0x3F);
        }
        if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return i;
        i += k + 1;
    }
    return n;
}

static void trim(const char **s, size_t *n) {
    while (*n && (**s == ' ' || **s == '\t')) { (*s)++; (*n)--; }
    while (*n && ((*s)[*n - 1] == ' ' || (*s)[*n - 1] == '\t')) (*n)--;
}

/* Open-addressing table: file name -> image index (first row naming it). */
typedef struct {
    int64_t *slot; /* image index + 1; 0 = empty */
    size_t mask;
} name_table;

static int64_t *table_find(name_table *t, char **names, const char *key) {
    size_t h = ct_fnv1a32(key, strlen(key)) & t->mask;
    while (t->slot[h] && strcmp(names[t->slot[h] - 1], key)) h = (h + 1) & t->mask;
    return &t->slot[h];
}

/* Reads `tsv` (rows naming files under `dir`) into the builder. */
static ct_status read_tsv(ct__capb *b, const char *dir, const char *tsv) {
    FILE *f;
    int64_t size;
    ct_status st = ct_fopen_regular(tsv, &f, &size);
    if (st) return st;
    if (size > CT_CAPTIONS_MAX_TSV) {
        fclose(f);
        return ct_error(CT_ERR_FORMAT, "%s: %lld bytes, more than the %lld allowed", tsv, (long long)size,
                        (long long)CT_CAPTIONS_MAX_TSV);
    }
    char *buf = malloc((size_t)size + 1);
    if (!buf) { fclose(f); return ct_error(CT_ERR_NOMEM, "%s: out of memory", tsv); }
    size_t got = fread(buf, 1, (size_t)size, f);
    fclose(f);
    if (got != (size_t)size) { free(buf); return ct_error(CT_ERR_IO, "%s: read failed", tsv); }
    buf[size] = '\0';

    /* one slot per row at most: rows <= newlines + 1 */
    size_t rows = 1;
    for (int64_t i = 0; i < size; i++) rows += buf[i] == '\n';
    name_table tab = {NULL, 1};
    while (tab.mask < 2 * rows) tab.mask <<= 1;
    tab.slot = calloc(tab.mask, sizeof *tab.slot);
    tab.mask--;
    int64_t *first_line = malloc(rows * sizeof *first_line); /* per image: its first row */
    if (!tab.slot || !first_line) st = ct_error(CT_ERR_NOMEM, "%s: out of memory", tsv);

    int has_class = -1;              /* unknown until the first row */
    int64_t class_line = 0, lineno = 0;
    char path[8192], where[8192], cls[CT_CAPTIONS_MAX_LINE + 1];
    char *line = buf, *end = buf + size;
    while (!st && line < end) {
        char *nl = memchr(line, '\n', (size_t)(end - line));
        size_t len = nl ? (size_t)(nl - line) : (size_t)(end - line);
        char *next = nl ? nl + 1 : end;
        lineno++;
        snprintf(where, sizeof where, "%s:%lld", tsv, (long long)lineno);
        if (len && line[len - 1] == '\r') len--;
        if (len > CT_CAPTIONS_MAX_LINE) {
            st = ct_error(CT_ERR_FORMAT, "%s: line of %zu bytes, longer than %d", where, len, CT_CAPTIONS_MAX_LINE);
            break;
        }
        if (memchr(line, '\0', len)) { st = ct_error(CT_ERR_FORMAT, "%s: NUL byte in the line", where); break; }
        size_t ok = utf8_valid((const unsigned char *)line, len);
        if (ok != len) {
            st = ct_error(CT_ERR_FORMAT, "%s: not UTF-8 (bad byte 0x%02x at column %zu)", where,
                          (unsigned char)line[ok], ok + 1);
            break;
        }
        const char *blank = line;
        size_t blen = len;
        trim(&blank, &blen);
        if (blen == 0 || line[0] == '#') { line = next; continue; }
        /* fields: FILE<TAB>CAPTION[<TAB>CLASS] */
        const char *fld[4];
        size_t fl[4];
        int nf = 0;
        const char *p = line, *le = line + len;
        while (nf < 4) {
            const char *tabc = memchr(p, '\t', (size_t)(le - p));
            fld[nf] = p;
            fl[nf] = tabc ? (size_t)(tabc - p) : (size_t)(le - p);
            nf++;
            if (!tabc) break;
            p = tabc + 1;
        }
        if (nf == 1) {
            st = ct_error(CT_ERR_FORMAT, "%s: no tab (expected FILE<TAB>CAPTION[<TAB>CLASS])", where);
            break;
        }
        if (nf == 4) {
            st = ct_error(CT_ERR_FORMAT, "%s: more than 3 tab-separated fields (expected FILE<TAB>CAPTION[<TAB>CLASS])",
                          where);
            break;
        }
        if (has_class < 0) { has_class = nf == 3; class_line = lineno; }
        if ((nf == 3) != has_class) {
            st = ct_error(CT_ERR_FORMAT, "%s: %d fields, but line %lld has %d: give CLASS on every row or on none",
                          where, nf, (long long)class_line, has_class ? 3 : 2);
            break;
        }
        const char *fname = fld[0];
        size_t fnl = fl[0];
        const char *cap = fld[1];
        size_t capl = fl[1];
        trim(&cap, &capl);
        if (fnl == 0) { st = ct_error(CT_ERR_FORMAT, "%s: empty file name", where); break; }
        if (capl == 0) {
            st = ct_error(CT_ERR_FORMAT, "%s: empty caption for %.*s", where, (int)fnl, fname);
            break;
        }
        if (fname[0] == '/') {
            st = ct_error(CT_ERR_FORMAT, "%s: %.*s: an absolute path (file names are relative to %s)", where,
                          (int)fnl, fname, dir);
            break;
        }
        int dotdot = 0;
        for (size_t s0 = 0; s0 < fnl;) { /* path components */
            size_t e = s0;
            while (e < fnl && fname[e] != '/') e++;
            if (e - s0 == 2 && fname[s0] == '.' && fname[s0 + 1] == '.') dotdot = 1;
            s0 = e + 1;
        }
        if (dotdot) {
            st = ct_error(CT_ERR_FORMAT, "%s: %.*s: '..' would leave %s", where, (int)fnl, fname, dir);
            break;
        }
        char rel[CT_CAPTIONS_MAX_LINE + 1];
        memcpy(rel, fname, fnl);
        rel[fnl] = '\0';
        if ((size_t)snprintf(path, sizeof path, "%s/%s", dir, rel) >= sizeof path) {
            st = ct_error(CT_ERR_FORMAT, "%s: %s: path too long", where, rel);
            break;
        }
        int32_t cid = -1;
        if (has_class) {
            const char *c = fld[2];
            size_t cl = fl[2];
            trim(&c, &cl);
            if (cl == 0) { st = ct_error(CT_ERR_FORMAT, "%s: empty class name for %s", where, rel); break; }
            memcpy(cls, c, cl);
            cls[cl] = '\0';
            for (int64_t k = 0; k < b->nclass && cid < 0; k++)
                if (!strcmp(b->class_names[k], cls)) cid = (int32_t)k;
            if (cid < 0 && (st = ct__capb_class(b, cls, &cid))) break;
        }
        int64_t *slot = table_find(&tab, b->file, rel);
        int64_t img;
        if (*slot) {
            img = *slot - 1;
            if (has_class && b->cls[img] != cid) {
                st = ct_error(CT_ERR_FORMAT, "%s: %s: class '%s', but line %lld gave '%s'", where, rel, cls,
                              (long long)first_line[img], b->class_names[b->cls[img]]);
                break;
            }
        } else {
            int64_t fsz;
            if ((st = ct__file_size(path, &fsz))) {
                st = ct_error(st, "%s: %s", where, ct_errmsg());
                break;
            }
            if ((st = ct__capb_image(b, path, rel, where, cid))) break;
            img = b->n - 1;
            first_line[img] = lineno;
            *slot = img + 1;
        }
        st = ct__capb_caption(b, img, cap, capl);
        line = next;
    }
    if (!st && b->n == 0) st = ct_error(CT_ERR_FORMAT, "%s: no rows (expected FILE<TAB>CAPTION[<TAB>CLASS])", tsv);
    free(tab.slot);
    free(first_line);
    free(buf);
    return st;
}

static ct_status load_captions_dir(ct_caption_dataset *ds, const char *dir, int train, int size) {
    char root[4096], tsv[8192];
    snprintf(tsv, sizeof tsv, "%s/train", dir);
    int split_dirs = ct__dir_exists(tsv);
    if ((size_t)snprintf(root, sizeof root, "%s%s", dir, split_dirs ? (train ? "/train" : "/test") : "") >=
        sizeof root)
        return ct_error(CT_ERR_ARG, "%s: path too long", dir);
    if (split_dirs && !ct__dir_exists(root)) return ct_error(CT_ERR_IO, "%s: has train/ but no test/ folder", dir);
    snprintf(tsv, sizeof tsv, "%s/captions.tsv", root);
    ct__capb b;
    memset(&b, 0, sizeof b);
    ct_status st = read_tsv(&b, root, tsv);
    if (st) { ct__capb_free(&b); return st; }
    return ct__capb_finish(ds, &b, train, size, "captions");
}

ct_status ct_caption_dataset_load(ct_caption_dataset *ds, const char *spec, int train, int size) {
    memset(ds, 0, sizeof *ds);
    if (!spec || !*spec) return ct_error(CT_ERR_ARG, "caption dataset: empty spec");
    if (size < 1 || size > 1024) return ct_error(CT_ERR_ARG, "caption dataset '%s': size %d, expected 1..1024", spec,
                                                 size);
    if (!strncmp(spec, "captions:", 9)) {
        if (!spec[9]) return ct_error(CT_ERR_ARG, "caption dataset '%s': no folder after 'captions:'", spec);
        return load_captions_dir(ds, spec + 9, train, size);
    }
    if (!strcmp(spec, "emoji")) return ct__load_emoji_default(ds, train, size);
    return ct_error(CT_ERR_ARG, "caption dataset '%s': unknown (expected captions:DIR or emoji)", spec);
}
