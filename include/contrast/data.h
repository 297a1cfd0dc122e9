/* contrast/data.h: datasets, SimCLR augmentations and the prefetching loader.
 *
 * Usage:
 *   ct_dataset ds;                     // uint8 images (n, c, h, w) + int32 labels
 *   ct_dataset_load(&ds, "fashion-mnist", 1);          // train split
 *   ct_augment aug;
 *   ct_augment_for_dataset(&aug, &ds);                 // SimCLR defaults for its channels
 *   ct_augment_parse(&aug, "crop=0.2:1,flip=0.5,jitter=0.4:0.4:0:0@0.8");
 *   ct_loader L;
 *   ct_loader_init(&L, &ds, &aug, 256, 2, 1, seed, 2); // batch, views, drop_last, seed, threads
 *   for (epoch...) { ct_loader_start_epoch(&L, epoch);
 *       ct_batch *b; while (ct_loader_next(&L, &b) == CT_OK && b) { ...b->x... } }
 *   ct_loader_free(&L); ct_dataset_free(&ds);
 *
 * Reproducibility: the augmentation of view v of sample i in epoch e draws only from
 * ct_rng_key(seed, e, i, v), and the epoch's shuffle only from ct_rng_key(seed, e, n,
 * CT_SHUFFLE_STREAM), so batches are byte-identical at any thread count.
 * The full format of augmentation spec strings is in docs/data.md. */
#ifndef CONTRAST_DATA_H
#define CONTRAST_DATA_H

#include "contrast/core.h"

#ifdef __cplusplus
extern "C" {
#endif
CT_BEGIN_API

/* ---- datasets -------------------------------------------------------------- */
/* Where `fashion-mnist` points (Debian package dataset-fashion-mnist). */
#define CT_FASHION_MNIST_DIR "/usr/share/datasets/fashion-mnist"
/* Caps checked against headers before anything is allocated. */
#define CT_DATA_MAX_IMAGES   ((int64_t)1 << 28)
#define CT_DATA_MAX_SIDE     8192
#define CT_DATA_MAX_CLASSES  100000
/* Images (PNG, JPEG) of more pixels are refused: 8192 x 6144, 48 Mi pixels. */
#define CT_DATA_MAX_PIXELS   ((int64_t)48 << 20)

typedef struct {
    int64_t n;               /* number of samples                                   */
    int c, h, w;             /* channels (1 or 3), height, width                    */
    uint8_t *images;         /* (n, c, h, w), planar per image                      */
    int32_t *labels;         /* (n) in [0, num_classes)                             */
    int32_t *coarse_labels;  /* (n) CIFAR-100 coarse labels (20 classes), else NULL */
    int num_classes;
    char name[32];           /* "fashion-mnist", "mnist", "cifar10", "cifar100", "folder" */
    float mean[3], std[3];   /* per-channel normalisation: known values, or measured  */
} ct_dataset;

/* Loads one split (train != 0: training split, else test split) into `ds`.
 * spec:
 *   "fashion-mnist"          CT_FASHION_MNIST_DIR
 *   "fashion-mnist:DIR", "mnist:DIR"
 *                            IDX files {train,t10k}-{images-idx3,labels-idx1}-ubyte[.gz]
 *   "cifar10:DIR"            data_batch_{1..5}.bin / test_batch.bin (DIR or DIR/cifar-10-batches-bin)
 *   "cifar100:DIR"           train.bin / test.bin (DIR or DIR/cifar-100-binary)
 *   "folder:DIR[@S]"         DIR/<class>/<image>.png|.jpg, or DIR/train/<class>/... and
 *                            DIR/test/<class>/... when those exist; every image resized to
 *                            S x S (default 32); 1 channel if every image is gray, else 3.
 *                            Images over CT_DATA_MAX_PIXELS, or declaring more pixels than
 *                            their bytes can encode, are refused; JPEG corrupt-data
 *                            warnings (e.g. a truncated file) are errors; a JPEG is
 *                            decoded at the smallest 1/8..8/8 scale covering S x S.
 * Only regular files are read: a FIFO or device is refused ("not a regular file"),
 * never waited on. Memory follows the data actually read (gzip buffers grow with the
 * decompressed bytes, a folder's buffer with the decoded images), not headers' claims.
 * On error `ds` is left empty (safe to ct_dataset_free) and the message names the file
 * and the problem. Sizes in headers are checked against the file size and the caps
 * above before allocating. */
ct_status ct_dataset_load(ct_dataset *ds, const char *spec, int train);
/* Releases the buffers; `ds` becomes empty. NULL-safe, idempotent. */
void ct_dataset_free(ct_dataset *ds);
/* Keeps only the first `n` samples (no-op when n <= 0 or n >= ds->n). */
void ct_dataset_limit(ct_dataset *ds, int64_t n);

/* ---- augmentation ----------------------------------------------------------- */
/* Every parameter of the SimCLR pipeline, applied in this order to each view:
 * random resized crop (bilinear) + horizontal flip -> colour jitter (ops in a random
 * order, as torchvision) -> random grayscale -> Gaussian blur -> solarisation ->
 * normalisation. A probability of 0 switches a step off. */
typedef struct {
    int out_h, out_w;              /* output size; 0 = the dataset's size                */
    int crop;                      /* 1: random resized crop, 0: whole image resized     */
    float crop_scale[2];           /* area fraction range, e.g. (0.2, 1)                 */
    float crop_ratio[2];           /* aspect-ratio range, e.g. (3/4, 4/3)                */
    float flip_p;                  /* horizontal flip probability                        */
    float jitter_p;                /* probability of applying colour jitter              */
    float brightness, contrast, saturation, hue; /* torchvision ColorJitter strengths   */
    float gray_p;                  /* random grayscale probability (RGB only)            */
    float blur_p;                  /* Gaussian blur probability                          */
    float blur_sigma[2];           /* sigma range in pixels                              */
    int blur_kernel;               /* odd kernel size; 0 = odd near 10% of the side      */
    float solarize_p;              /* solarisation probability                           */
    float solarize_threshold;      /* in [0, 1]: values >= threshold become 1 - value    */
    int channels;                  /* 1 or 3: what the parameters were set up for        */
    float mean[3], std[3];         /* normalisation per channel                          */
} ct_augment;

/* SimCLR-style defaults. channels 1 (Fashion-MNIST): crop (0.2,1) ratio (3/4,4/3),
 * flip 0.5, brightness/contrast 0.4 @ 0.8, mean 0.2860 std 0.3530. channels 3
 * (CIFAR-10): the same plus saturation 0.4, hue 0.1, grayscale 0.2, CIFAR-10
 * mean/std. No blur or solarisation (SimCLR's CIFAR recipe). */
void ct_augment_defaults(ct_augment *a, int channels);
/* ct_augment_defaults(a, ds->c) with the dataset's mean/std and size. */
void ct_augment_for_dataset(ct_augment *a, const ct_dataset *ds);
/* Overrides fields from a compact spec, e.g.
 *   "crop=0.2:1,flip=0.5,jitter=0.4:0.4:0.4:0.1@0.8,gray=0.2,blur=0.1:2@0.5,solarize=0"
 * Items are comma-separated `key=value`; a bare number is a probability; parameters go
 * before '@', the probability after it. Keys: crop (SMIN:SMAX[:RMIN:RMAX] or off),
 * flip, jitter (B:C:S:H[@P]), gray, blur (P or SMIN:SMAX[:K][@P]), solarize (P or
 * T@P), size (N or HxW), mean and std (M or M1:M2:M3), and the word `none` (switch
 * every random step off). Unknown keys and malformed numbers are CT_ERR_ARG. */
ct_status ct_augment_parse(ct_augment *a, const char *spec);
/* Writes the effective pipeline as a spec string ct_augment_parse accepts. */
void ct_augment_describe(const ct_augment *a, char *buf, size_t cap);
/* Checks ranges and that the channels match the dataset's. */
ct_status ct_augment_check(const ct_augment *a, const ct_dataset *ds);

/* Floats of scratch that ct_augment_view needs for this output size and channels. */
size_t ct_augment_scratch_floats(const ct_augment *a, const ct_dataset *ds);
/* One augmented, normalised view of sample `index`, drawing randomness only from
 * ct_rng_make(key) (use ct_rng_key(seed, epoch, index, view)). Thread-safe.
 *   out: (c, out_h, out_w)   scratch: ct_augment_scratch_floats() floats */
void ct_augment_view(float *out, float *scratch, const ct_augment *a, const ct_dataset *ds,
                     int64_t index, uint64_t key);
/* The eval path: no randomness, whole image resized to the output size (bilinear),
 * normalised. For samples [start, start + count).  x: (count, c, out_h, out_w) */
ct_status ct_data_eval_batch(float *x, const ct_dataset *ds, const ct_augment *a,
                             int64_t start, int64_t count);

/* ---- loader ------------------------------------------------------------------- */
typedef struct {
    int64_t n;          /* samples in this batch (== batch size except a last partial one) */
    int views;          /* 1 or 2                                                         */
    int c, h, w;
    float *x;           /* (views*n, c, h, w): rows [0,n) view 1, [n,2n) view 2           */
    int32_t *labels;    /* (n)                                                            */
    int64_t *index;     /* (n) dataset indices of the samples                             */
    int64_t batch_no;   /* position in the epoch                                          */
    int nlocal, lh, lw; /* local crops (ct_loader_set_local): how many, their size; else 0   */
    float *xl;          /* (nlocal*n, c, lh, lw): rows [j*n, (j+1)*n) local crop j, or NULL  */
} ct_batch;

struct ct_loader_state;
typedef struct {
    int64_t batch, n_batches;  /* batch size; batches per epoch                   */
    int views;
    struct ct_loader_state *s; /* opaque: threads, queue, permutation              */
} ct_loader;

/* Prepares a loader over `ds` (which must outlive it). views 1 or 2; drop_last drops
 * a final partial batch; threads >= 1 background pthreads prepare batches into a
 * bounded queue while the caller computes; threads == 0 prepares each batch in the
 * calling thread. The batches are the same at any `threads`. */
ct_status ct_loader_init(ct_loader *L, const ct_dataset *ds, const ct_augment *aug, int64_t batch,
                         int views, int drop_last, uint64_t seed, int threads);
/* Data parallelism: this process receives slice `rank` of `size` equal slices of
 * every batch (samples [rank*b, (rank+1)*b) of the global batch, b = batch/size),
 * with the same order and augmentations as one process reading whole batches.
 * Needs drop_last and batch % size == 0; call before the first start_epoch. */
ct_status ct_loader_shard(ct_loader *L, int rank, int size);
/* Multi-crop (Caron et al. 2020, SwAV): every sample also gets `nlocal` views from a
 * second pipeline `local` (typically small, tight crops), in ct_batch.xl, drawn from
 * ct_rng_key(seed, epoch, index, 2 + j) for local crop j. Call before the first
 * start_epoch; needs views == 2. nlocal 1..64. */
ct_status ct_loader_set_local(ct_loader *L, const ct_augment *local, int nlocal);
/* Begins epoch `epoch` (shuffle from the seed and epoch); abandons any batches left
 * over from the previous epoch. */
ct_status ct_loader_start_epoch(ct_loader *L, int64_t epoch);
/* Next batch of the epoch in *out (valid until the next call of next/start/free),
 * or *out = NULL when the epoch is over. */
ct_status ct_loader_next(ct_loader *L, ct_batch **out);
/* Stops the threads and releases everything. NULL-safe. */
void ct_loader_free(ct_loader *L);

/* Augmentation throughput: runs a 2-view loader with `threads` workers over up to
 * `n_images` samples and reports augmented views per second. */
ct_status ct_augment_throughput(const ct_dataset *ds, const ct_augment *aug, int64_t n_images,
                                int threads, double *views_per_s);

/* ---- PNG ------------------------------------------------------------------------- */
/* Writes an 8-bit PNG (gray when channels == 1, RGB when 3) from interleaved pixels,
 * atomically (temporary file, then rename).  pixels: (h, w, channels) */
ct_status ct_png_write(const char *path, const uint8_t *pixels, int w, int h, int channels);

CT_END_API
#ifdef __cplusplus
}
#endif
#endif
