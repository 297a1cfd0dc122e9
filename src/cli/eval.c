/* eval.c (cli): `contrast eval` and `contrast embed`. */
#include "cli.h"

#include "contrast.h"
#include "contrast/train.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int cmd_eval(int argc, char **argv) {
    ct_eval_config ec;
    ct_eval_config_default(&ec);
    char ckpt[512] = "", default_data[sizeof ec.data];
    memcpy(default_data, ec.data, sizeof ec.data);
    int json = 0, threads = 0, no_whiten = !ec.whiten;
    cli_opt opts[] = {
        {"--checkpoint", OPT_STR, ckpt, sizeof ckpt, 0, 0, "checkpoint.safetensors written by contrast train"},
        {"--data", OPT_STR, ec.data, sizeof ec.data, 0, 0, "dataset (train split = memory bank, test split = queries); text checkpoints: debian-descriptions (held-out split) | pairs:FILE: anchor -> positive retrieval (R@1, R@10, MRR@10), label kNN and probe; clip checkpoints: emoji (their default: held-out and training names) | folder:DIR | captions:DIR: zero-shot top-1/5, image <-> text R@1/5/10, chance"},
        {"--k", OPT_INT, &ec.knn_k, 0, 1, 100000, "kNN neighbours"},
        {"--knn-temperature", OPT_FLOAT, &ec.knn_t, 0, 1e-4, 100, "kNN vote weight exp(sim / T)"},
        {"--probe", OPT_FLAG, &ec.probe, 0, 0, 0, "also train and report a linear probe"},
        {"--raw", OPT_FLAG, &ec.raw, 0, 0, 0, "evaluate normalised raw pixels instead of a checkpoint"},
        {"--no-whiten", OPT_FLAG, &no_whiten, 0, 0, 0, "features before the checkpoint's whitening (contrast train --whiten)"},
        {"--limit", OPT_I64, &ec.limit, 0, 0, 1e12, "use the first N training images (0: all)"},
        {"--threads", OPT_INT, &threads, 0, 0, 1024, "compute threads (0: all cores)"},
        {"--json", OPT_FLAG, &json, 0, 0, 0, "print one JSON object"},
    };
    int rc = cli_parse(argc, argv, opts, (int)(sizeof opts / sizeof opts[0]),
                       "usage: contrast eval --checkpoint FILE [options]\n"
                       "Weighted kNN (cosine, Wu et al. 2018) and linear probe top-1 on the test split.");
    if (rc) return rc == 1 ? 0 : rc;
    if (!ckpt[0] && !ec.raw) {
        fprintf(stderr, "contrast eval: --checkpoint FILE (or --raw) is required\n");
        return 2;
    }
    ct_set_threads(threads);
    if (!ec.raw && cli_is_clip_checkpoint(ckpt)) /* zero-shot and image <-> text retrieval, both splits */
        return cli_clip_eval(ckpt, strcmp(ec.data, default_data) ? ec.data : "emoji", json, 256);
    if (!ec.raw && ct_data_is_text(ec.data)) /* a text checkpoint: retrieval, kNN and probe of the labels */
        return cli_text_eval(ckpt, ec.data, ec.knn_k, ec.knn_t, ec.probe, json);
    ec.whiten = !no_whiten;
    ct_model m;
    memset(&m, 0, sizeof m);
    if (!ec.raw && ct_checkpoint_load_model(&m, ckpt)) return cli_fail("eval");
    ct_eval_result r;
    ct_status st = ct_evaluate(&r, &m, &ec);
    if (!ec.raw) ct_model_free(&m);
    if (r.whitening_refit)
        fprintf(stderr, "eval: the checkpoint's whitening is not from its last epoch; fitting it on the train split\n");
    if (st) return cli_fail("eval");
    const int k = ec.knn_k, probe = ec.probe, raw = ec.raw;
    const float T = ec.knn_t;
    if (json) {
        printf("{\"knn_top1\": %.4f, \"knn_top5\": %.4f", r.knn_top1, r.knn_top5);
        if (probe) printf(", \"probe_top1\": %.4f", r.probe_top1);
        if (r.whitened) printf(", \"knn_top1_unwhitened\": %.4f", r.knn_top1_raw);
        printf(", \"k\": %d, \"knn_temperature\": %g, \"n_train\": %lld, \"n_test\": %lld, \"dim\": %lld, \"features\": \"%s\"}\n",
               k, T, (long long)r.n_train, (long long)r.n_test, (long long)r.dim,
               raw ? "raw" : r.whitened ? "encoder, whitened" : "encoder");
    } else {
        printf("knn_top1 %.4f (k=%d, T=%g, %lld train / %lld test, dim %lld%s)\n", r.knn_top1, k, T,
               (long long)r.n_train, (long long)r.n_test, (long long)r.dim,
               raw ? ", raw pixels" : r.whitened ? ", whitened features" : "");
        if (r.whitened) printf("knn_top1_unwhitened %.4f\n", r.knn_top1_raw);
        if (probe) printf("probe_top1 %.4f\n", r.probe_top1);
    }
    return 0;
}

int cmd_embed(int argc, char **argv) {
    char ckpt[512] = "", data[512] = "fashion-mnist", split[16] = "test", out[512] = "", labels[512] = "";
    int head = 0, threads = 0, no_whiten = 0;
    int64_t limit = 0, batch = 512, ntexts = 0;
    const char **texts = NULL;
    char text_opt[4096] = "";
    cli_opt opts[] = {
        {"--checkpoint", OPT_STR, ckpt, sizeof ckpt, 0, 0, "checkpoint.safetensors written by contrast train"},
        {"--data", OPT_STR, data, sizeof data, 0, 0, "dataset; text checkpoints: text:FILE | pairs:FILE | debian-descriptions (every text); clip checkpoints: images of emoji (--split picks held-out or training names) | emoji-test | emoji-train | folder:DIR | captions:DIR, or texts of text:FILE | pairs:FILE"},
        {"--text", OPT_STR, text_opt, sizeof text_opt, 0, 0, "text and clip checkpoints: a text to embed (repeat for more; \"\" is the empty text); without --out, printed one line each"},
        {"--split", OPT_STR, split, sizeof split, 0, 0, "train | test"},
        {"--head", OPT_FLAG, &head, 0, 0, 0, "write projection-head outputs z instead of encoder features h"},
        {"--no-whiten", OPT_FLAG, &no_whiten, 0, 0, 0, "features before the checkpoint's whitening (contrast train --whiten)"},
        {"--out", OPT_STR, out, sizeof out, 0, 0, "output .npy (float32, shape [N, D])"},
        {"--labels", OPT_STR, labels, sizeof labels, 0, 0, "also write the labels (clip: the images' classes) as int64 .npy"},
        {"--limit", OPT_I64, &limit, 0, 0, 1e12, "first N images of the split (0: all)"},
        {"--batch", OPT_I64, &batch, 0, 1, 65536, "images per forward pass"},
        {"--threads", OPT_INT, &threads, 0, 0, 1024, "compute threads (0: all cores)"},
    };
    int rc = cli_parse(argc, argv, opts, (int)(sizeof opts / sizeof opts[0]),
                       "usage: contrast embed --checkpoint FILE --out FILE.npy [options]\n"
                       "Writes embeddings of a dataset split as a NumPy array.");
    if (rc) return rc == 1 ? 0 : rc;
    /* every --text, the empty one included (embedded as BOS, EOS): counted from argv,
     * since text_opt holds only the last value and "" looks like no option */
    if (cli_text_collect(argc, argv, &texts, &ntexts)) return cli_fail("embed");
    if (strcmp(split, "train") && strcmp(split, "test")) {
        free(texts);
        fprintf(stderr, "contrast embed: --split must be train or test, got '%s'\n", split);
        return 2;
    }
    if (ckpt[0] && cli_is_clip_checkpoint(ckpt)) { /* both towers: texts or images, unit length */
        rc = 0;
        if (head || no_whiten) {
            fprintf(stderr, "contrast embed: a clip checkpoint gives its projected, unit-length embeddings; --head "
                            "and --no-whiten do not apply\n");
            rc = 2;
        }
        ct_set_threads(threads);
        if (!rc) rc = cli_clip_embed(ckpt, texts, ntexts, data, !strcmp(split, "train"), out, labels, limit, batch);
        free(texts);
        return rc;
    }
    if (ckpt[0] && (ntexts > 0 || ct_data_is_text(data))) {
        ct_set_threads(threads);
        rc = cli_text_embed(ckpt, texts, ntexts, data, !strcmp(split, "train"), out, head);
        free(texts);
        return rc;
    }
    free(texts);
    if (!ckpt[0] || !out[0]) {
        fprintf(stderr, "contrast embed: --checkpoint and --out are required\n");
        return 2;
    }
    ct_set_threads(threads);
    /* Both outputs are opened before any work, so a bad destination is reported at
     * once, and committed together at the end: on any failure neither is written. */
    ct_atomic_file fo, fl;
    memset(&fo, 0, sizeof fo);
    memset(&fl, 0, sizeof fl);
    if (ct_atomic_open(&fo, out)) return cli_fail("embed");
    if (labels[0] && ct_atomic_open(&fl, labels)) {
        ct_atomic_abort(&fo);
        return cli_fail("embed");
    }
    ct_model m;
    if (ct_checkpoint_load_model(&m, ckpt)) {
        ct_atomic_abort(&fo);
        ct_atomic_abort(&fl);
        return cli_fail("embed");
    }
    ct_dataset ds;
    memset(&ds, 0, sizeof ds);
    float *f = NULL;
    int64_t D = 0;
    ct_status st = CT_OK;
    if (!head && !no_whiten && m.cfg.whiten > 0 && !m.whiten_fitted) {
        /* a checkpoint from before the end of its run: fit the whitening to these parameters */
        fprintf(stderr, "embed: the checkpoint's whitening is not from its last epoch; fitting it on the train split\n");
        st = ct_dataset_load(&ds, data, 1);
        if (!st) st = ct_model_fit_whitening(&m, &ds);
        ct_dataset_free(&ds);
    }
    if (!st) st = ct_dataset_load(&ds, data, !strcmp(split, "train"));
    if (!st) {
        ct_dataset_limit(&ds, limit);
        st = ct_extract_features(&f, &D, &m, &ds, head ? CT_FEAT_Z : no_whiten ? CT_FEAT_H_RAW : CT_FEAT_H, batch);
    }
    if (!st) st = ct_npy_put_f32(&fo, f, ds.n, D);
    if (!st && labels[0]) {
        int64_t *l = ct_alloc((size_t)ds.n * sizeof(int64_t));
        if (!l) st = ct_error(CT_ERR_NOMEM, "%s: out of memory for %lld labels", labels, (long long)ds.n);
        for (int64_t i = 0; l && i < ds.n; i++) l[i] = ds.labels[i];
        if (l) st = ct_npy_put_i64(&fl, l, ds.n);
        ct_free(l);
        if (!st) st = ct_atomic_commit(&fl);
    }
    if (!st) st = ct_atomic_commit(&fo);
    if (st) {
        ct_atomic_abort(&fo);
        ct_atomic_abort(&fl);
    }
    int64_t n = ds.n;
    ct_free(f);
    ct_dataset_free(&ds);
    ct_model_free(&m);
    if (st) return cli_fail("embed");
    fprintf(stderr, "wrote %s: %lld x %lld float32\n", out, (long long)n, (long long)D);
    return 0;
}
