/* bench_augment.c: augmentation throughput (augmented views per second) of the
 * SimCLR pipeline through the loader, at 1 and 2 worker threads.
 *   build/bench/bench_augment [DATASET] [AUGMENT-SPEC] [N-IMAGES]
 * defaults: fashion-mnist, the dataset's default pipeline, 20000 images. */
#include "contrast.h"

#include <stdio.h>
#include <stdlib.h>

int main(int argc, char **argv) {
    const char *spec = argc > 1 ? argv[1] : "fashion-mnist";
    const char *aug_spec = argc > 2 ? argv[2] : NULL;
    long long n = argc > 3 ? atoll(argv[3]) : 20000;
    ct_dataset ds;
    if (ct_dataset_load(&ds, spec, 1)) {
        fprintf(stderr, "bench_augment: %s\n", ct_errmsg());
        return 1;
    }
    ct_augment a;
    ct_augment_for_dataset(&a, &ds);
    if (ct_augment_parse(&a, aug_spec)) {
        fprintf(stderr, "bench_augment: %s\n", ct_errmsg());
        ct_dataset_free(&ds);
        return 2;
    }
    char desc[512];
    ct_augment_describe(&a, desc, sizeof desc);
    printf("dataset %s (%lld images %dx%dx%d), pipeline %s\n", spec, (long long)ds.n, ds.c, ds.h, ds.w, desc);
    for (int threads = 1; threads <= 2; threads++) {
        double vps;
        if (ct_augment_throughput(&ds, &a, n, threads, &vps)) {
            fprintf(stderr, "bench_augment: %s\n", ct_errmsg());
            ct_dataset_free(&ds);
            return 1;
        }
        printf("augment threads=%d: %.0f images/s (augmented views per second)\n", threads, vps);
    }
    ct_dataset_free(&ds);
    return 0;
}
