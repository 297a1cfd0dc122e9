/* embed_images.c: load a trained checkpoint and embed images with it.
 *
 *   cc embed_images.c $(pkg-config --cflags --libs contrast) -o embed_images
 *   ./embed_images CHECKPOINT [N] [OUT.npy]
 *
 * The checkpoint alone rebuilds the model (its configuration is in the file's
 * metadata). The first N Fashion-MNIST test images go through the encoder in eval
 * mode; their features (whitened when the checkpoint carries a whitening) are
 * written as a NumPy .npy array, and the nearest neighbour of the first image is
 * printed, by cosine similarity. */
#include <contrast.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: embed_images CHECKPOINT [N] [OUT.npy]\n");
        return 2;
    }
    int64_t n = argc > 2 ? atoll(argv[2]) : 1000;
    const char *out = argc > 3 ? argv[3] : "features.npy";

    ct_model m;
    ct_dataset ds;
    float *h = NULL;
    int64_t dim = 0;
    if (ct_checkpoint_load_model(&m, argv[1]) != CT_OK) goto fail_early;
    if (ct_dataset_load(&ds, "fashion-mnist", 0) != CT_OK) goto fail_model; /* 0: the test split */
    ct_dataset_limit(&ds, n);
    if (ct_extract_features(&h, &dim, &m, &ds, CT_FEAT_H, 256) != CT_OK) goto fail;
    if (ct_npy_write_f32(out, h, ds.n, dim) != CT_OK) goto fail;
    printf("wrote %s: %lld x %lld features\n", out, (long long)ds.n, (long long)dim);

    /* nearest neighbour of image 0 among the others, by cosine similarity */
    int64_t best = -1;
    double best_sim = -2, n0 = 0;
    for (int64_t k = 0; k < dim; k++) n0 += (double)h[k] * h[k];
    for (int64_t i = 1; i < ds.n; i++) {
        double dot = 0, ni = 0;
        for (int64_t k = 0; k < dim; k++) {
            dot += (double)h[k] * h[i * dim + k];
            ni += (double)h[i * dim + k] * h[i * dim + k];
        }
        double sim = dot / (sqrt(n0 * ni) + 1e-12);
        if (sim > best_sim) best_sim = sim, best = i;
    }
    printf("image 0 (class %d): nearest is image %lld (class %d), cosine %.3f\n", ds.labels[0],
           (long long)best, best >= 0 ? ds.labels[best] : -1, best_sim);
    ct_free(h);
    ct_dataset_free(&ds);
    ct_model_free(&m);
    return 0;

fail:
    ct_dataset_free(&ds);
fail_model:
    ct_model_free(&m);
fail_early:
    fprintf(stderr, "embed_images: %s\n", ct_errmsg());
    return 1;
}
