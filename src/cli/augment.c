/* augment.c: `contrast augment`: writes a PNG grid of augmented views so a pipeline
 * can be checked by eye: one row per sample, the original (resized, no randomness)
 * in the first column, `views` augmented views beside it. */
#include "contrast.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

#define GRID_MAX_PIXELS ((int64_t)1 << 25) /* 32 Mpx: a 100 MB RGB grid, far more than a screen */

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

/* The items --crop ... --std set, in the order they are applied (after --aug). */
static const char *const item_keys[] = {"crop", "flip", "jitter", "gray", "blur", "solarize", "size", "mean", "std"};
#define NITEMS (sizeof item_keys / sizeof *item_keys)

int cmd_augment(int argc, char **argv) {
    char data[512] = "fashion-mnist", out[512] = "views.png", spec[1024] = "", split[16] = "train";
    int n = 8, views = 6, zoom = 0;
    uint64_t seed = 0;
    char item[NITEMS][128] = {{0}}, opt_name[NITEMS][16], opt_help[NITEMS][64];
    cli_opt opts[8 + NITEMS] = {
        {"--data", OPT_STR, data, sizeof data, 0, 0, "fashion-mnist | mnist:DIR | cifar10:DIR | cifar100:DIR | folder:DIR[@SIZE]"},
        {"--split", OPT_STR, split, sizeof split, 0, 0, "train | test"},
        {"--out", OPT_STR, out, sizeof out, 0, 0, "PNG to write"},
        {"--n", OPT_INT, &n, 0, 1, 1000, "samples (rows), chosen at random from the seed"},
        {"--views", OPT_INT, &views, 0, 1, 100, "augmented views per sample (columns)"},
        {"--seed", OPT_U64, &seed, 0, 0, 9e18, "random seed of the samples and views"},
        {"--zoom", OPT_INT, &zoom, 0, 0, 32, "pixel magnification (0: cells of at least 64 px)"},
        {"--aug", OPT_STR, spec, sizeof spec, 0, 0, "pipeline spec, e.g. crop=0.2:1,flip=0.5,jitter=0.4:0.4:0:0@0.8 "
                                                     "(none: the SimCLR defaults for the dataset; docs/data.md)"},
    };
    for (size_t k = 0; k < NITEMS; k++) {
        snprintf(opt_name[k], sizeof opt_name[k], "--%s", item_keys[k]);
        snprintf(opt_help[k], sizeof opt_help[k], "sets %s=S in the spec (after --aug)", item_keys[k]);
        opts[8 + k] = (cli_opt){opt_name[k], OPT_STR, item[k], sizeof item[k], 0, 0, opt_help[k]};
    }
    int rc = cli_parse(argc, argv, opts, (int)(sizeof opts / sizeof opts[0]),
                       "usage: contrast augment [options]\n"
                       "Writes a PNG grid of augmented views: one row per sample, the original first.");
    if (rc) return rc == 1 ? 0 : rc;
    char items[NITEMS * 140] = "";
    for (size_t k = 0; k < NITEMS; k++) {
        if (!item[k][0]) continue;
        size_t len = strlen(items);
        snprintf(items + len, sizeof items - len, "%s%s=%s", len ? "," : "", item_keys[k], item[k]);
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
    if (n > ds.n) n = (int)ds.n;
    int cols = views + 1;
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
    rc = 0;
    if (!grid || !v || !scratch || !idx) {
        fprintf(stderr, "contrast augment: out of memory\n");
        rc = 1;
        goto done;
    }
    memset(grid, 255, (size_t)gw * gh * c);
    ct_rng r = ct_rng_make(ct_rng_key(seed, 0, 0, 0x47524944 /* "GRID" */));
    for (int i = 0; i < n; i++) { /* distinct samples */
        int again;
        do {
            idx[i] = (int64_t)ct_rng_below(&r, (uint64_t)ds.n);
            again = 0;
            for (int j = 0; j < i; j++) again |= idx[j] == idx[i];
        } while (again);
    }
    for (int i = 0; i < n; i++) {
        int gy = gap + i * (oh * zoom + gap);
        if (ct_data_eval_batch(v, &ds, &a, idx[i], 1)) {
            fprintf(stderr, "contrast augment: %s\n", ct_errmsg());
            rc = 1;
            goto done;
        }
        blit(grid, (int)gw, c, v, oh, ow, zoom, gy, gap, &a);
        for (int k = 0; k < views; k++) {
            ct_augment_view(v, scratch, &a, &ds, idx[i], ct_rng_key(seed, 0, (uint64_t)idx[i], (uint64_t)k));
            blit(grid, (int)gw, c, v, oh, ow, zoom, gy, gap + (k + 1) * (ow * zoom + gap), &a);
        }
    }
    if (ct_png_write(out, grid, (int)gw, (int)gh, c)) {
        fprintf(stderr, "contrast augment: %s\n", ct_errmsg());
        rc = 1;
        goto done;
    }
    char desc[512];
    ct_augment_describe(&a, desc, sizeof desc);
    printf("wrote %s: %d samples x (1 original + %d views), %dx%d px\npipeline: %s\n", out, n, views, (int)gw, (int)gh,
           desc);
done:
    free(grid); free(v); free(scratch); free(idx);
    ct_dataset_free(&ds);
    return rc;
}
