/* plot.c (cli): `contrast plot`: a run's training curves from metrics.jsonl, or a
 * 2-D map of embeddings coloured by label, as PNG. */
#include "cli.h"

#include "contrast.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_CLASSES 10000

static const char *const fashion_names[10] = {"T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                                              "Sandal",      "Shirt",   "Sneaker",  "Bag",   "Ankle boot"};

static int plot_run(const char *dir, const char *out) {
    char path[1100], title[1200];
    snprintf(path, sizeof path, "%s/metrics.jsonl", dir);
    ct_metrics m;
    if (ct_metrics_read(&m, path)) return cli_fail("plot");
    ct_canvas c;
    if (ct_canvas_init(&c, 1200, 860, 0xffffff)) {
        ct_metrics_free(&m);
        return cli_fail("plot");
    }
    snprintf(title, sizeof title, "run %s", dir);
    ct_status st = ct_plot_metrics(&c, &m, title);
    if (!st) st = ct_canvas_write_png(&c, out);
    ct_canvas_free(&c);
    ct_metrics_free(&m);
    if (st) return cli_fail("plot");
    fprintf(stderr, "wrote %s: training curves of %s\n", out, path);
    return 0;
}

/* Splits "a,b,c" into names (pointers into buf); returns the count, -1 if too many. */
static int split_names(char *buf, const char **names, int cap) {
    int n = 0;
    for (char *p = buf;;) {
        if (n == cap) return -1;
        names[n++] = p;
        char *comma = strchr(p, ',');
        if (!comma) break;
        *comma = '\0';
        p = comma + 1;
    }
    return n;
}

static const char *base_name(const char *path) {
    const char *s = strrchr(path, '/');
    return s ? s + 1 : path;
}

int cmd_plot(int argc, char **argv) {
    char run[512] = "", emb[512] = "", lab[512] = "", out[512] = "", layout[16] = "pca", names_arg[4096] = "";
    int64_t max_points = 10000;
    uint64_t seed = 0;
    float perplexity = 30;
    int threads = 0;
    cli_opt opts[] = {
        {"--run", OPT_STR, run, sizeof run, 0, 0, "training curves: a run directory (reads DIR/metrics.jsonl)"},
        {"--embeddings", OPT_STR, emb, sizeof emb, 0, 0, "map: features .npy (float32, N x D), e.g. from contrast embed"},
        {"--labels", OPT_STR, lab, sizeof lab, 0, 0, "map: labels .npy (int32/int64, N), colour of each point"},
        {"--out", OPT_STR, out, sizeof out, 0, 0, "output .png"},
        {"--layout", OPT_STR, layout, sizeof layout, 0, 0, "map: pca | tsne (Barnes-Hut t-SNE)"},
        {"--perplexity", OPT_FLOAT, &perplexity, 0, 2, 1000, "map, tsne: effective neighbours per point"},
        {"--max-points", OPT_I64, &max_points, 0, 0, 1e9, "map: draw at most N points, a subsample chosen by --seed (0: all)"},
        {"--seed", OPT_U64, &seed, 0, 0, 9e18, "map: seed of the --max-points subsample"},
        {"--class-names", OPT_STR, names_arg, sizeof names_arg, 0, 0,
         "map: legend names, comma-separated in label order, or fashion-mnist (default: the label numbers)"},
        {"--threads", OPT_INT, &threads, 0, 0, 1024, "compute threads (0: all cores); the map is the same at any count"},
    };
    int rc = cli_parse(argc, argv, opts, (int)(sizeof opts / sizeof opts[0]),
                       "usage: contrast plot --run DIR --out curves.png\n"
                       "       contrast plot --embeddings h.npy --labels y.npy --out map.png [--layout tsne]\n"
                       "Training curves of a run (loss, contrastive top-1, learning rate, kNN monitor), or a 2-D map\n"
                       "of embeddings coloured by label, as PNG.");
    if (rc) return rc == 1 ? 0 : rc;
    if (!out[0]) {
        fprintf(stderr, "contrast plot: --out FILE.png is required\n");
        return 2;
    }
    if (!!run[0] == !!emb[0]) {
        fprintf(stderr, "contrast plot: give either --run DIR or --embeddings FILE (with --labels FILE)\n");
        return 2;
    }
    if (run[0]) return plot_run(run, out);
    if (!lab[0]) {
        fprintf(stderr, "contrast plot: --embeddings needs --labels FILE (one label per row)\n");
        return 2;
    }
    int tsne = !strcmp(layout, "tsne");
    if (!tsne && strcmp(layout, "pca")) {
        fprintf(stderr, "contrast plot: unknown --layout '%s' (pca, tsne)\n", layout);
        return 2;
    }
    const char *names[MAX_CLASSES];
    int nnames = 0;
    if (!strcmp(names_arg, "fashion-mnist")) {
        nnames = 10;
        for (int k = 0; k < 10; k++) names[k] = fashion_names[k];
    } else if (names_arg[0] && (nnames = split_names(names_arg, names, MAX_CLASSES)) < 0) {
        fprintf(stderr, "contrast plot: --class-names lists more than %d names\n", MAX_CLASSES);
        return 2;
    }
    ct_set_threads(threads);

    float *X = NULL, *Xs = NULL, *Y = NULL;
    int32_t *y = NULL, *ys = NULL;
    int64_t *idx = NULL, n = 0, d = 0, ny = 0;
    ct_canvas c = {0};
    int code = 1;
    if (ct_npy_read_f32(emb, &X, &n, &d) || ct_npy_read_i32(lab, &y, &ny)) goto fail;
    if (ny != n) {
        fprintf(stderr, "contrast plot: %s has %lld rows but %s has %lld labels\n", emb, (long long)n, lab, (long long)ny);
        goto done;
    }
    int nclasses = nnames;
    for (int64_t i = 0; i < n; i++) {
        if (y[i] < 0 || y[i] >= MAX_CLASSES) {
            fprintf(stderr, "contrast plot: %s: label %d of row %lld is outside [0, %d)\n", lab, y[i], (long long)i,
                    MAX_CLASSES);
            goto done;
        }
        if (y[i] + 1 > nclasses) nclasses = y[i] + 1;
    }
    if (nnames && nnames < nclasses) {
        fprintf(stderr, "contrast plot: --class-names gives %d names but %s has labels up to %d\n", nnames, lab,
                nclasses - 1);
        goto done;
    }
    int64_t m = max_points > 0 && max_points < n ? max_points : n;
    if (m < (tsne ? 4 : 2)) {
        fprintf(stderr, "contrast plot: %s: %lld points are too few for a %s map\n", emb, (long long)m, layout);
        goto done;
    }
    idx = malloc((size_t)m * sizeof *idx);
    Xs = m < n ? malloc((size_t)m * (size_t)d * sizeof(float)) : X;
    ys = m < n ? malloc((size_t)m * sizeof(int32_t)) : y;
    Y = malloc((size_t)m * 2 * sizeof(float));
    if (!idx || !Xs || !ys || !Y) {
        fprintf(stderr, "contrast plot: out of memory for %lld points\n", (long long)m);
        goto done;
    }
    if (m < n) {
        if (ct_subsample(idx, n, m, seed)) goto fail;
        for (int64_t i = 0; i < m; i++) {
            memcpy(Xs + i * d, X + idx[i] * d, (size_t)d * sizeof(float));
            ys[i] = y[idx[i]];
        }
    }
    char title[1400], sub[64] = "";
    if (m < n) snprintf(sub, sizeof sub, " of %lld", (long long)n);
    if (d < 2) {
        fprintf(stderr, "contrast plot: %s has %lld column: a map needs 2 or more\n", emb, (long long)d);
        goto done;
    }
    if (tsne) {
        ct_tsne_config cfg;
        ct_tsne_config_default(&cfg);
        cfg.perplexity = perplexity;
        if (ct_layout_tsne(Y, Xs, m, d, &cfg)) goto fail;
        snprintf(title, sizeof title, "t-SNE of %s: %lld%s points, perplexity %g", base_name(emb), (long long)m, sub,
                 (double)perplexity);
    } else {
        double ev[2];
        if (ct_layout_pca(Y, ev, Xs, m, d, 2)) goto fail;
        snprintf(title, sizeof title, "PCA of %s: %lld%s points, %.1f%% + %.1f%% of the variance", base_name(emb),
                 (long long)m, sub, 100 * ev[0], 100 * ev[1]);
    }
    if (ct_canvas_init(&c, 1100, 900, 0xffffff)) goto fail;
    if (ct_plot_scatter(&c, title, tsne ? "t-SNE 1" : "PC 1", tsne ? "t-SNE 2" : "PC 2", Y, ys, m,
                        nnames ? names : NULL, nclasses))
        goto fail;
    if (ct_canvas_write_png(&c, out)) goto fail;
    fprintf(stderr, "wrote %s: %s\n", out, title);
    code = 0;
    goto done;
fail:
    code = cli_fail("plot");
done:
    ct_canvas_free(&c);
    if (Xs != X) free(Xs);
    if (ys != y) free(ys);
    ct_free(X);
    ct_free(y);
    free(idx);
    free(Y);
    return code;
}
