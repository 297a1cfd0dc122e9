/* text.c (cli): text checkpoints: `contrast embed --text`, `contrast eval` on text
 * and `contrast search` (build an index once, then query it). */
#include "cli.h"

#include "contrast.h"
#include "contrast/train.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int cli_text_collect(int argc, char **argv, const char ***texts, int64_t *n) {
    *texts = malloc((size_t)(argc ? argc : 1) * sizeof **texts);
    *n = 0;
    if (!*texts) return 1;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--text") && i + 1 < argc) (*texts)[(*n)++] = argv[++i];
        else if (!strncmp(argv[i], "--text=", 7)) (*texts)[(*n)++] = argv[i] + 7;
    }
    return 0;
}

int cli_text_load(const char *cmd, const char *ckpt, ct_model *m, ct_tokenizer **tok) {
    if (ct_checkpoint_load_model(m, ckpt)) return cli_fail(cmd);
    if (ct_checkpoint_load_tokenizer(tok, ckpt)) {
        ct_model_free(m);
        return cli_fail(cmd);
    }
    return 0;
}

int cli_text_embed(const char *ckpt, const char *const *texts, int64_t n, const char *data, int train,
                   const char *out, int head) {
    ct_model m;
    ct_tokenizer *tok;
    if (cli_text_load("embed", ckpt, &m, &tok)) return 1;
    ct_text_dataset ds;
    memset(&ds, 0, sizeof ds);
    size_t *lens = NULL;
    float *f = NULL;
    ct_status st = CT_OK;
    if (!n) {
        if (!(st = ct_text_dataset_load(&ds, data, train))) { /* every text: a pairs file's both columns */
            texts = (const char *const *)ds.text;
            n = ds.ntexts;
        }
    }
    const int64_t D = head ? ct_model_embed_dim(&m) : ct_model_feature_dim(&m);
    if (!st) {
        lens = malloc((size_t)(n ? n : 1) * sizeof *lens);
        f = ct_alloc((size_t)(n * D) * sizeof(float) + 1);
        if (!lens || !f) st = ct_error(CT_ERR_NOMEM, "embed: no memory for %lld embeddings", (long long)n);
        for (int64_t i = 0; !st && i < n; i++) lens[i] = ds.len ? ds.len[i] : strlen(texts[i]);
    }
    if (!st) st = ct_embed_texts(f, &m, tok, texts, lens, n, head ? CT_FEAT_Z : CT_FEAT_H, 0);
    if (!st && out[0]) st = ct_npy_write_f32(out, f, n, D);
    if (!st && !out[0])
        for (int64_t i = 0; i < n; i++)
            for (int64_t j = 0; j < D; j++) printf("%.7g%c", f[i * D + j], j + 1 < D ? ' ' : '\n');
    free(lens);
    ct_free(f);
    ct_text_dataset_free(&ds);
    ct_tokenizer_free(tok);
    ct_model_free(&m);
    return st ? cli_fail("embed") : 0;
}

int cli_text_eval(const char *ckpt, const char *data, int k, float T, int probe, int json) {
    ct_model m;
    ct_tokenizer *tok;
    if (cli_text_load("eval", ckpt, &m, &tok)) return 1;
    ct_text_dataset tr, te;
    memset(&tr, 0, sizeof tr);
    memset(&te, 0, sizeof te);
    ct_text_eval_result r;
    /* debian-descriptions: the held-out split, labels from the training split; a
     * pairs file: that file (held out by whoever wrote it), labels within it */
    ct_status st = ct_text_dataset_load(&te, data, 0);
    const int split = !strcmp(data, "debian-descriptions");
    if (!st && split) st = ct_text_dataset_load(&tr, data, 1);
    if (!st) st = ct_evaluate_text(&r, &m, tok, split ? &tr : NULL, &te, k, T, probe);
    ct_text_dataset_free(&tr);
    ct_text_dataset_free(&te);
    ct_tokenizer_free(tok);
    ct_model_free(&m);
    if (st) return cli_fail("eval");
    if (json)
        printf("{\"r1\": %.4f, \"r10\": %.4f, \"mrr10\": %.4f, \"knn_top1\": %.4f, \"probe_top1\": %.4f, "
               "\"n_pairs\": %lld, \"n_gallery\": %lld, \"n_train\": %lld}\n",
               r.r1, r.r10, r.mrr10, r.knn_top1, r.probe_top1, (long long)r.n_pairs, (long long)r.n_gallery,
               (long long)r.n_train);
    else {
        printf("r1 %.4f\nr10 %.4f\nmrr10 %.4f (%lld queries, %lld distinct positives)\n", r.r1, r.r10, r.mrr10,
               (long long)r.n_pairs, (long long)r.n_gallery);
        if (r.knn_top1 >= 0) printf("knn_top1 %.4f (k=%d, %lld train)\n", r.knn_top1, k, (long long)r.n_train);
        if (r.probe_top1 >= 0) printf("probe_top1 %.4f\n", r.probe_top1);
    }
    return 0;
}

int cmd_search(int argc, char **argv) {
    char ckpt[512] = "", index[512] = "", build[512] = "", query[4096] = "";
    char image[512] = "", texts_file[512] = "", out[512] = "";
    int64_t k = 10, batch = 256;
    int threads = 0, tile = 96, cols = 8;
    cli_opt opts[] = {
        {"--checkpoint", OPT_STR, ckpt, sizeof ckpt, 0, 0, "a text checkpoint (contrast train --method simcse | pairs) or a clip one (--method clip)"},
        {"--index", OPT_STR, index, sizeof index, 0, 0, "text: the index file (.safetensors: embeddings and texts); clip: the images, emoji-test | emoji-train | folder:DIR | captions:DIR"},
        {"--build-index", OPT_STR, build, sizeof build, 0, 0, "text: embed these texts into --index: text:FILE | pairs:FILE (anchors and positives) | debian-descriptions"},
        {"--query", OPT_STR, query, sizeof query, 0, 0, "the text to search for (clip: ranks the images of --index)"},
        {"--image", OPT_STR, image, sizeof image, 0, 0, "clip: an image file (PNG, JPEG) to find texts for: those of --texts, else the captions of --index"},
        {"--texts", OPT_STR, texts_file, sizeof texts_file, 0, 0, "clip, with --image: the candidate texts, one per line"},
        {"--k", OPT_I64, &k, 0, 1, 1 << 20, "results to print"},
        {"--out", OPT_STR, out, sizeof out, 0, 0, "clip, with --query: also write the top --k images as a PNG contact sheet"},
        {"--tile", OPT_INT, &tile, 0, 8, 1024, "clip: contact sheet image side in pixels (nearest-neighbour enlarged)"},
        {"--cols", OPT_INT, &cols, 0, 1, 256, "clip: contact sheet columns"},
        {"--batch", OPT_I64, &batch, 0, 1, 65536, "clip: images or texts per forward pass"},
        {"--threads", OPT_INT, &threads, 0, 0, 1024, "compute threads (0: all cores)"},
    };
    int rc = cli_parse(argc, argv, opts, (int)(sizeof opts / sizeof opts[0]),
                       "usage: contrast search --checkpoint FILE --index FILE (--build-index SPEC | --query TEXT)\n"
                       "       contrast search --checkpoint CLIP.safetensors --index DATA (--query TEXT [--out PNG] | --image FILE [--texts FILE])\n"
                       "Semantic search: build an index of a collection's embeddings once, then print the --k texts\n"
                       "nearest to a query by cosine similarity (score TAB text). A clip checkpoint ranks the images\n"
                       "of DATA by a text (score TAB file), or texts by an image (score TAB text).");
    if (rc) return rc == 1 ? 0 : rc;
    if (ckpt[0] && cli_is_clip_checkpoint(ckpt)) {
        if (build[0]) {
            fprintf(stderr, "contrast search: --build-index is for text checkpoints (a clip checkpoint embeds --index as it searches)\n");
            return 2;
        }
        if (!query[0] == !image[0] || (query[0] && (texts_file[0] || !index[0])) || (image[0] && !texts_file[0] && !index[0]) ||
            (out[0] && !query[0])) {
            fprintf(stderr, "contrast search: a clip checkpoint takes --index DATA --query TEXT [--out PNG], or --image FILE with --texts FILE or --index DATA\n");
            return 2;
        }
        ct_set_threads(threads);
        return cli_clip_search(ckpt, index, query, image, texts_file, k, out, tile, cols, batch);
    }
    if (image[0] || texts_file[0] || out[0]) {
        fprintf(stderr, "contrast search: --image, --texts and --out need a clip checkpoint (contrast train --method clip)\n");
        return 2;
    }
    if (!ckpt[0] || !index[0] || !build[0] == !query[0]) {
        fprintf(stderr, "contrast search: --checkpoint, --index and one of --build-index or --query are required\n");
        return 2;
    }
    ct_set_threads(threads);
    ct_model m;
    ct_tokenizer *tok;
    if (cli_text_load("search", ckpt, &m, &tok)) return 1;
    ct_status st = CT_OK;
    if (build[0]) {
        ct_text_dataset ds;
        if (!(st = ct_text_dataset_load(&ds, build, 1))) {
            st = ct_text_index_build(index, &m, tok, (const char *const *)ds.text, ds.len, ds.ntexts, ckpt);
            if (!st) fprintf(stderr, "search: indexed %lld texts into %s\n", (long long)ds.ntexts, index);
            ct_text_dataset_free(&ds);
        }
    } else {
        ct_text_index *ix = NULL;
        const int64_t D = ct_model_feature_dim(&m);
        float *q = ct_alloc((size_t)D * sizeof(float));
        int64_t *top = malloc((size_t)k * sizeof *top), found = 0;
        float *score = malloc((size_t)k * sizeof *score);
        const char *texts[1] = {query};
        size_t len = strlen(query);
        if (!q || !top || !score) st = ct_error(CT_ERR_NOMEM, "search: no memory for %lld results", (long long)k);
        if (!st) st = ct_text_index_load(&ix, index);
        if (!st) st = ct_embed_texts(q, &m, tok, texts, &len, 1, CT_FEAT_H, 1);
        if (!st) st = ct_text_index_query(ix, q, D, k, top, score, &found);
        for (int64_t i = 0; !st && i < found; i++) {
            size_t n;
            const char *t = ct_text_index_text(ix, top[i], &n);
            printf("%.4f\t%.*s\n", score[i], (int)n, t);
        }
        ct_text_index_free(ix);
        ct_free(q);
        free(top);
        free(score);
    }
    ct_tokenizer_free(tok);
    ct_model_free(&m);
    return st ? cli_fail("search") : 0;
}
