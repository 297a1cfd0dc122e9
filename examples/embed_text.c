/* embed_text.c: load a text checkpoint and compare sentences by cosine similarity.
 *
 *   cc embed_text.c $(pkg-config --cflags --libs contrast) -o embed_text
 *   ./embed_text CHECKPOINT [SENTENCE ...]
 *
 * A checkpoint of a text method (contrast train --method simcse | pairs) carries its
 * tokenizer, so the file alone embeds text: each sentence becomes BOS, its BPE
 * tokens, EOS, cut to the model's context, and goes through the transformer in
 * eval mode (the numbers `contrast embed --text` prints). The program prints the
 * matrix of cosine similarities between the sentences (three built-in ones when
 * none are given). */
#include <contrast.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: embed_text CHECKPOINT [SENTENCE ...]\n");
        return 2;
    }
    static const char *const builtin[] = {"a small dog runs fast", "a little dog is running", "green tea"};
    const char *const *texts = argc > 2 ? (const char *const *)argv + 2 : builtin;
    const int64_t n = argc > 2 ? argc - 2 : 3;

    ct_model m;
    ct_tokenizer *tok = NULL;
    float *h = NULL;
    size_t *lens = malloc((size_t)n * sizeof *lens);
    if (!lens) return 1;
    for (int64_t i = 0; i < n; i++) lens[i] = strlen(texts[i]);
    if (ct_checkpoint_load_model(&m, argv[1]) != CT_OK) goto fail_early;
    if (ct_checkpoint_load_tokenizer(&tok, argv[1]) != CT_OK) goto fail; /* an image checkpoint has none */
    const int64_t dim = ct_model_feature_dim(&m);
    h = malloc((size_t)(n * dim) * sizeof *h);
    if (!h) goto fail;
    /* h: (n, dim) the encoder's pooled features; 0: the default batch (256) */
    if (ct_embed_texts(h, &m, tok, texts, lens, n, CT_FEAT_H, 0) != CT_OK) goto fail;

    /* unit length, then the cosine similarity of every pair is a dot product */
    for (int64_t i = 0; i < n; i++) {
        double s = 0;
        for (int64_t k = 0; k < dim; k++) s += (double)h[i * dim + k] * h[i * dim + k];
        const float inv = s > 0 ? (float)(1.0 / sqrt(s)) : 0.0f;
        for (int64_t k = 0; k < dim; k++) h[i * dim + k] *= inv;
    }
    printf("%lld sentences, %lld features each; cosine similarities:\n", (long long)n, (long long)dim);
    for (int64_t i = 0; i < n; i++) {
        for (int64_t j = 0; j < n; j++) {
            double dot = 0;
            for (int64_t k = 0; k < dim; k++) dot += (double)h[i * dim + k] * h[j * dim + k];
            printf("%7.3f", dot);
        }
        printf("  %s\n", texts[i]);
    }
    free(h);
    free(lens);
    ct_tokenizer_free(tok);
    ct_model_free(&m);
    return 0;

fail:
    free(h);
    ct_tokenizer_free(tok);
    ct_model_free(&m);
fail_early:
    free(lens);
    fprintf(stderr, "embed_text: %s\n", ct_errmsg());
    return 1;
}
