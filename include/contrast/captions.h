/* contrast/captions.h: image-caption datasets for CLIP-style training.
 *
 * Usage:
 *   ct_caption_dataset cd;
 *   ct_caption_dataset_load(&cd, "emoji", 1, 32);        // training split, 32 x 32
 *   // cd.img is an ordinary ct_dataset (n, 3, 32, 32): ct_loader / ct_augment_view
 *   // work on it as is; batch->index[i] names the image, and its caption this step is
 *   const char *text = ct_caption_sample(&cd, batch->index[i], seed, epoch);
 *   ct_caption_dataset_free(&cd);
 *
 * Sources (formats, licences and the held-out rule in docs/clip-data.md):
 *   "captions:DIR"  image files + DIR/captions.tsv (or DIR/train/... and DIR/test/...)
 *   "emoji"         EmojiOne (Debian's ruby-gemojione) + Twemoji (npm
 *                   emoji-datasource-twitter 16.0.0), installed by tools/deps.sh;
 *                   the test split holds exactly the emoji ct_emoji_is_heldout picks. */
#ifndef CONTRAST_CAPTIONS_H
#define CONTRAST_CAPTIONS_H

#include "contrast/data.h"

#ifdef __cplusplus
extern "C" {
#endif
CT_BEGIN_API

/* Where "emoji" looks: the newest gemojione-<version>/ folder under the first, and the
 * npm package under the second (tools/deps.sh installs both). */
#define CT_GEMOJIONE_GEMS_DIR "/usr/share/rubygems-integration/all/gems"
#define CT_TWEMOJI_DIR        "/var/lib/contrast/npm/node_modules/emoji-datasource-twitter"
/* captions.tsv limits: its size, one line's length (bytes). */
#define CT_CAPTIONS_MAX_TSV   ((int64_t)256 << 20)
#define CT_CAPTIONS_MAX_LINE  65536
/* The stream number of caption sampling in ct_rng_key (no augmentation view uses it). */
#define CT_CAPTION_STREAM     0x43415054u /* "CAPT" */

typedef struct {
    ct_dataset img;          /* images (n, 3, S, S) uint8 RGB, alpha composited on white;
                              * labels (n): class ids into class_names, or, when the data
                              * has no class names, each image its own label (num_classes
                              * = n); mean/std measured on this split                     */
    int64_t *caption_start;  /* (n + 1): image i's captions are
                              * captions[caption_start[i] .. caption_start[i + 1]), >= 1   */
    char **captions;         /* (caption_start[n]) UTF-8 strings                           */
    char **class_names;      /* (img.num_classes) or NULL when the data has none           */
    char **files;            /* (n) where each image came from: a path relative to DIR,
                              * or "emojione/<file>" / "twemoji/<file>"                    */
    int train;               /* 1: the training split, 0: the test split                   */
} ct_caption_dataset;

/* Loads one split of an image-caption set, every image resized to size x size
 * (1..1024; e.g. 28, 32, 64) with 3 channels. spec:
 *   "captions:DIR"  DIR/captions.tsv rows `FILE<TAB>CAPTION[<TAB>CLASS]`, FILE relative
 *                   to DIR (no absolute path, no `..`), PNG or JPEG; several rows per
 *                   image add captions; `#` lines and blank lines are skipped; CLASS on
 *                   every row or on none. With DIR/train/ present, the split reads
 *                   DIR/train/ or DIR/test/; otherwise both splits read DIR.
 *   "emoji"         the built-in emoji set (CT_GEMOJIONE_GEMS_DIR, CT_TWEMOJI_DIR).
 * A bad row (missing tab, empty caption, missing file, path escaping DIR, bad UTF-8)
 * or an unreadable image fails with "<captions.tsv>:<line>: ..." naming the file.
 * On error `ds` is left empty (safe to free). */
ct_status ct_caption_dataset_load(ct_caption_dataset *ds, const char *spec, int train, int size);
/* The emoji set from explicit folders: `emojione_dir` holds config/index.json and
 * assets/png/, `twemoji_dir` emoji.json and img/twitter/64/. Either may be NULL
 * (that style left out); not both. */
ct_status ct_emoji_load(ct_caption_dataset *ds, const char *emojione_dir, const char *twemoji_dir, int train,
                        int size);
/* An image folder DIR/<class>/<image> (or DIR/train/... and DIR/test/..., the split
 * chosen by `train`) as an image-caption set: the classes, files and order of the
 * "folder:DIR" dataset, but RGB with alpha composited on white, size x size; files[i]
 * is "<class>/<file>", class_names the subfolder names, and each image's one caption
 * its class name. Errors as ct_dataset_load's "folder:" (src/data/imagefolder.c). */
ct_status ct_caption_folder_load(ct_caption_dataset *ds, const char *dir, int train, int size);
/* One PNG or JPEG file as the caption sets hold images: alpha composited on white,
 * resized to size x size, planar RGB into out (3, size, size); a gray image is
 * replicated. The file checks and limits of the "folder:" dataset. */
ct_status ct_image_load_rgb(uint8_t *out, const char *path, int size);
/* Releases everything; `ds` becomes empty. NULL-safe, idempotent. */
void ct_caption_dataset_free(ct_caption_dataset *ds);

/* The caption of image `index` for one training step: uniform over its captions,
 * drawn only from ct_rng_key(seed, epoch, index, CT_CAPTION_STREAM), so it is the
 * same at any thread count, process count or batch order. The string belongs to ds. */
const char *ct_caption_sample(const ct_caption_dataset *ds, int64_t index, uint64_t seed, int64_t epoch);

/* ---- the held-out rule of the emoji set ---------------------------------------- */
/* Writes the key of an emoji's code points into buf: each code point as lowercase hex
 * of at least 4 digits (as Unicode writes U+0023), joined by '-', after removing
 * U+FE0F and the skin-tone modifiers U+1F3FB..1F3FF. Input: hex code points joined by
 * '-' in any case, e.g. "1F468-200D-1F469-200D-1F467" -> "1f468-200d-1f469-200d-1f467",
 * "0023-FE0F-20E3" -> "0023-20e3". CT_ERR_ARG on a malformed input or a key that
 * does not fit in cap bytes. The key may be empty (a lone skin-tone modifier). */
ct_status ct_emoji_key(char *buf, size_t cap, const char *codepoints_hex);
/* 1 when the emoji belongs to the test side: ct_fnv1a32 (core.h) of ct_emoji_key(cp) % 5 == 0;
 * 0 when not; -1 when codepoints_hex is malformed. Its images (both styles, every
 * skin tone), names and keywords never enter the training split. */
int ct_emoji_is_heldout(const char *codepoints_hex);

CT_END_API
#ifdef __cplusplus
}
#endif
#endif
