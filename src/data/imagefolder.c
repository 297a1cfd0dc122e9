/* imagefolder.c: an image folder (DIR/<class>/<image>) read as an image-caption set,
 * for zero-shot classification and search with a two-tower model: the same classes,
 * files and order as the "folder:" dataset (folder.c), but RGB with alpha composited
 * on white (what the caption sets, and so CLIP training, use), every file's name
 * kept, and each image captioned by its class name. */
#include "data_internal.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    char **v;
    size_t n, cap;
} names;

static void names_free(names *l) {
    for (size_t i = 0; i < l->n; i++) free(l->v[i]);
    free(l->v);
    memset(l, 0, sizeof *l);
}

static int cmp_name(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* Non-hidden entries of dir that are folders (want_dirs) or not, in byte order (as folder.c). */
static ct_status list(names *out, const char *dir, int want_dirs) {
    DIR *d = opendir(dir);
    if (!d) return ct_error(CT_ERR_IO, "%s: cannot open folder: %s", dir, strerror(errno));
    struct dirent *e;
    char path[8192];
    ct_status st = CT_OK;
    while (!st && (e = readdir(d))) {
        if (e->d_name[0] == '.') continue;
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        if (ct__dir_exists(path) != want_dirs) continue;
        if (out->n == out->cap) {
            size_t cap = out->cap ? 2 * out->cap : 64;
            char **v = realloc(out->v, cap * sizeof *v);
            if (!v) { st = ct_error(CT_ERR_NOMEM, "%s: out of memory", dir); break; }
            out->v = v;
            out->cap = cap;
        }
        if (!(out->v[out->n] = strdup(e->d_name))) st = ct_error(CT_ERR_NOMEM, "%s: out of memory", dir);
        else out->n++;
    }
    closedir(d);
    if (!st && out->n) qsort(out->v, out->n, sizeof *out->v, cmp_name);
    return st;
}

ct_status ct_caption_folder_load(ct_caption_dataset *ds, const char *dir, int train, int size) {
    memset(ds, 0, sizeof *ds);
    if (!dir || !*dir) return ct_error(CT_ERR_ARG, "image folder: empty path");
    if (size < 1 || size > 1024) return ct_error(CT_ERR_ARG, "image folder %s: size %d, expected 1..1024", dir, size);
    char root[4096], path[8192], rel[8192];
    snprintf(path, sizeof path, "%s/train", dir);
    const int split_dirs = ct__dir_exists(path);
    if ((size_t)snprintf(root, sizeof root, "%s%s", dir, split_dirs ? (train ? "/train" : "/test") : "") >= sizeof root)
        return ct_error(CT_ERR_ARG, "%s: path too long", dir);
    if (split_dirs && !ct__dir_exists(root)) return ct_error(CT_ERR_IO, "%s: has train/ but no test/ folder", dir);
    names classes = {0};
    ct_status st = list(&classes, root, 1);
    if (!st && classes.n == 0)
        st = ct_error(CT_ERR_FORMAT, "%s: no class subfolders (expected %s/<class>/<image files>)", root, root);
    if (!st && classes.n > CT_DATA_MAX_CLASSES)
        st = ct_error(CT_ERR_FORMAT, "%s: %zu class folders, more than %d", root, classes.n, CT_DATA_MAX_CLASSES);
    ct__capb b;
    memset(&b, 0, sizeof b);
    for (size_t k = 0; k < classes.n && !st; k++) {
        int32_t cid;
        names files = {0};
        snprintf(path, sizeof path, "%s/%s", root, classes.v[k]);
        st = list(&files, path, 0);
        if (!st && files.n == 0) st = ct_error(CT_ERR_FORMAT, "%s: empty class folder (no image files)", path);
        if (!st) st = ct__capb_class(&b, classes.v[k], &cid);
        for (size_t f = 0; f < files.n && !st; f++) {
            snprintf(path, sizeof path, "%s/%s/%s", root, classes.v[k], files.v[f]);
            snprintf(rel, sizeof rel, "%s/%s", classes.v[k], files.v[f]);
            st = ct__capb_image(&b, path, rel, NULL, cid);
            if (!st) st = ct__capb_caption(&b, b.n - 1, classes.v[k], strlen(classes.v[k]));
        }
        names_free(&files);
    }
    names_free(&classes);
    if (st) {
        ct__capb_free(&b);
        return st;
    }
    return ct__capb_finish(ds, &b, train, size, "folder");
}

ct_status ct_image_load_rgb(uint8_t *out, const char *path, int size) {
    if (size < 1 || size > 1024) return ct_error(CT_ERR_ARG, "%s: size %d, expected 1..1024", path, size);
    ct__image im;
    ct_status st = ct__image_decode(&im, path, size, 1);
    if (st) return st;
    st = ct__image_resize(out, &im, size);
    free(im.px);
    return st;
}
