/* augment.c: `contrast augment`: writes a PNG grid of augmented views so a pipeline
 * can be checked by eye: one row per sample, the original (resized, no randomness)
 * in the first column, `views` augmented views beside it. */
#include "contrast.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

#define GRID_MAX_PIXELS ((int64_t)1 << 25) /* 32 Mpx: a 100 MB RGB grid, far more than a screen */

static int usage(FILE *f) {
    fprintf(f,
            "usage: contrast augment [options]\n"
            "  --data SPEC      dataset: fashion-mnist, mnist:DIR, cifar10:DIR, cifar100:DIR,\n"
            "                   folder:DIR[@SIZE]                        (default fashion-mnist)\n"
            "  --split S        train or test                               (default train)\n"
            "  --out FILE       PNG to write                                (default views.png)\n"
            "  --n N            samples (rows), chosen at random from the seed  (default 8)\n"
            "  --views V        augmented views per sample (columns)        (default 6)\n"
            "  --seed S         random seed                                 (default 0)\n"
            "  --zoom Z         pixel magnification; 0 = cells of at least 64 px (default 0)\n"
            "  --aug SPEC       pipeline spec, e.g. crop=0.2:1,flip=0.5,jitter=0.4:0.4:0:0@0.8\n"
            "                   (default: the SimCLR defaults for the dataset; see docs/data.md)\n"
            "  --crop V --flip V --jitter V --gray V --blur V --solarize V --size V --mean V --std V\n"
            "                   set one item of the spec, e.g. --blur 0.1:2@0.5 (applied after --aug)\n");
    return f == stdout ? 0 : 2;
}

static uint8_t to_u8(float v, float mean, float std) {
    float x = (v * std + mean) * 255.0f + 0.5f;
    return (uint8_t)(x < 0 ? 0 : x > 255 ? 255 : x);
}

/* Copies one normalised view (c, h, w) into the interleaved grid at (gy, gx), zoomed. */
static void blit(uint8_t *grid, int gw, int c, const float *v, int h, int w, int zoom, int gy, int gx,
                 const ct_augment *a) {
    for (int y = 0; y < h * zoom; y++)
        for (int x = 0; x < w * zoom; x++)
            for (int ch = 0; ch < c; ch++) {
                float val = v[((size_t)ch * h + y / zoom) * w + x / zoom];
                grid[((size_t)(gy + y) * gw + gx + x) * c + ch] = to_u8(val, a->mean[ch], a->std[ch]);
            }
}

int cmd_augment(int argc, char **argv) {
    const char *data = "fashion-mnist", *out = "views.png", *spec = NULL, *split = "train";
    long n = 8, views = 6, zoom = 0;
    unsigned long long seed = 0;
    char items[1024] = "";
    static const char *keys[] = {"crop", "flip", "jitter", "gray", "blur", "solarize", "size", "mean", "std"};
    for (int i = 1; i < argc; i++) {
        const char *o = argv[i];
        if (!strcmp(o, "--help") || !strcmp(o, "-h")) return usage(stdout);
        if (strncmp(o, "--", 2) || i + 1 >= argc) {
            fprintf(stderr, "contrast augment: unexpected '%s'%s\n", o, i + 1 >= argc ? " (missing value?)" : "");
            return usage(stderr);
        }
        const char *v = argv[++i];
        char *end = NULL;
        if (!strcmp(o, "--data")) data = v;
        else if (!strcmp(o, "--out")) out = v;
        else if (!strcmp(o, "--aug")) spec = v;
        else if (!strcmp(o, "--split")) split = v;
        else if (!strcmp(o, "--n")) n = strtol(v, &end, 10);
        else if (!strcmp(o, "--views")) views = strtol(v, &end, 10);
        else if (!strcmp(o, "--zoom")) zoom = strtol(v, &end, 10);
        else if (!strcmp(o, "--seed")) seed = strtoull(v, &end, 10);
        else {
            int found = 0;
            for (size_t k = 0; k < sizeof keys / sizeof *keys; k++)
                if (!strcmp(o + 2, keys[k])) {
                    size_t len = strlen(items);
                    snprintf(items + len, sizeof items - len, "%s%s=%s", len ? "," : "", keys[k], v);
                    found = 1;
                }
            if (!found) {
                fprintf(stderr, "contrast augment: unknown option '%s'\n", o);
                return usage(stderr);
            }
        }
        if (end && *end) {
            fprintf(stderr, "contrast augment: %s needs an integer, not '%s'\n", o, v);
            return 2;
        }
    }
    if (n < 1 || n > 1000 || views < 1 || views > 100 || zoom < 0 || zoom > 32) {
        fprintf(stderr, "contrast augment: need 1 <= --n <= 1000, 1 <= --views <= 100, 0 <= --zoom <= 32\n");
        return 2;
    }
    if (strcmp(split, "train") && strcmp(split, "test")) {
        fprintf(stderr, "contrast augment: --split must be train or test, not '%s'\n", split);
        return 2;
    }
    ct_dataset ds;
    if (ct_dataset_load(&ds, data, !strcmp(split, "train"))) {
        fprintf(stderr, "contrast augment: %s\n", ct_errmsg());
        return 1;
    }
    ct_augment a;
    ct_augment_for_dataset(&a, &ds);
    if (ct_augment_parse(&a, spec) || ct_augment_parse(&a, items) || ct_augment_check(&a, &ds)) {
        fprintf(stderr, "contrast augment: %s\n", ct_errmsg());
        ct_dataset_free(&ds);
        return 2;
    }
    int oh = a.out_h, ow = a.out_w, c = ds.c, gap = 2;
    if (zoom == 0) zoom = (64 + oh - 1) / oh;
    if (n > ds.n) n = (long)ds.n;
    int cols = (int)views + 1;
    int64_t gw = cols * ((int64_t)ow * zoom + gap) + gap, gh = n * ((int64_t)oh * zoom + gap) + gap;
    if (gw * gh > GRID_MAX_PIXELS) { /* e.g. --size 1024 --zoom 32 asks for terabytes */
        fprintf(stderr, "contrast augment: a grid of %lldx%lld pixels is too large (at most %lld); lower --zoom, "
                "--views, --n or the size\n", (long long)gw, (long long)gh, (long long)GRID_MAX_PIXELS);
        ct_dataset_free(&ds);
        return 2;
    }
    size_t per = (size_t)c * oh * ow;
    uint8_t *grid = malloc((size_t)gw * gh * c);
    float *v = malloc(per * sizeof(float));
    float *scratch = malloc(ct_augment_scratch_floats(&a, &ds) * sizeof(float));
    int64_t *idx = malloc((size_t)n * sizeof *idx);
    int rc = 0;
    if (!grid || !v || !scratch || !idx) {
        fprintf(stderr, "contrast augment: out of memory\n");
        rc = 1;
        goto done;
    }
    memset(grid, 255, (size_t)gw * gh * c);
    ct_rng r = ct_rng_make(ct_rng_key(seed, 0, 0, 0x47524944 /* "GRID" */));
    for (long i = 0; i < n; i++) { /* distinct samples */
        int again;
        do {
            idx[i] = (int64_t)ct_rng_below(&r, (uint64_t)ds.n);
            again = 0;
            for (long j = 0; j < i; j++) again |= idx[j] == idx[i];
        } while (again);
    }
    for (long i = 0; i < n; i++) {
        int gy = gap + (int)i * (oh * (int)zoom + gap);
        if (ct_data_eval_batch(v, &ds, &a, idx[i], 1)) {
            fprintf(stderr, "contrast augment: %s\n", ct_errmsg());
            rc = 1;
            goto done;
        }
        blit(grid, (int)gw, c, v, oh, ow, (int)zoom, gy, gap, &a);
        for (int k = 0; k < views; k++) {
            ct_augment_view(v, scratch, &a, &ds, idx[i], ct_rng_key(seed, 0, (uint64_t)idx[i], (uint64_t)k));
            blit(grid, (int)gw, c, v, oh, ow, (int)zoom, gy, gap + (k + 1) * (ow * (int)zoom + gap), &a);
        }
    }
    if (ct_png_write(out, grid, (int)gw, (int)gh, c)) {
        fprintf(stderr, "contrast augment: %s\n", ct_errmsg());
        rc = 1;
        goto done;
    }
    char desc[512];
    ct_augment_describe(&a, desc, sizeof desc);
    printf("wrote %s: %ld samples x (1 original + %ld views), %dx%d px\npipeline: %s\n", out, n, views, (int)gw, (int)gh,
           desc);
done:
    free(grid); free(v); free(scratch); free(idx);
    ct_dataset_free(&ds);
    return rc;
}
