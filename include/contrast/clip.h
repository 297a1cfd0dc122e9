/* contrast/clip.h: a trained CLIP model (`contrast train --method clip`) as a library
 * object: both towers, the tokenizer and the image normalisation, loaded from one
 * checkpoint, giving unit-length embeddings of images and texts in one space.
 *
 * Usage:
 *   ct_clip m;
 *   ct_clip_load(&m, "runs/x/checkpoint.safetensors");
 *   ct_clip_embed_images(&m, rgb, n, img);   // rgb: (n, 3, m.size, m.size) uint8; img: (n, m.dim)
 *   ct_clip_embed_texts(&m, texts, lens, k, txt);                          // txt: (k, m.dim)
 *   // cosine = dot product of rows; logits = exp(m.logit_scale) * cosine
 *   ct_clip_free(&m);
 *
 * The checkpoint's tensor names map onto PyTorch as docs/clip.md describes
 * ("visual.*", "text.*", "logit_scale"). */
#ifndef CONTRAST_CLIP_H
#define CONTRAST_CLIP_H
#include "contrast/core.h"
#include "contrast/model.h"
#include "contrast/text.h"

#ifdef __cplusplus
extern "C" {
#endif
CT_BEGIN_API

/* The logit scale's bounds (ln of the scale): clamped to [0, ln 100] after every step. */
#define CT_CLIP_SCALE_MIN 0.0f
#define CT_CLIP_SCALE_MAX 4.6051702f /* ln 100 */

/* s clamped to [CT_CLIP_SCALE_MIN, CT_CLIP_SCALE_MAX] (NaN stays NaN: the trainer stops on
 * a non-finite loss); what the trainer applies after every optimizer step. */
float ct_clip_clamp_scale(float s);

typedef struct {
    ct_model image;        /* image tower: cnn|resnet18|vit encoder + linear projection to dim (its z) */
    ct_model text;         /* text tower: transformer (EOT or mean pooling) + linear projection (its z) */
    ct_tokenizer *tok;     /* the run's BPE tokenizer (stored in the checkpoint) */
    float logit_scale;     /* ln of the similarity scale, clamped to [0, ln 100] */
    float mean[3], std[3]; /* image normalisation of the training split (per channel) */
    int size;              /* image side the image tower reads (in_h == in_w) */
    int64_t dim;           /* shared embedding dimension */
} ct_clip;

/* Loads a `--method clip` checkpoint (both towers, tokenizer, scale, normalisation); eval mode.
 * CT_ERR_FORMAT naming the file for anything else. On error c is left empty (safe to free). */
ct_status ct_clip_load(ct_clip *c, const char *path);
void ct_clip_free(ct_clip *c);   /* NULL-safe, idempotent */

/* Unit-length image embeddings of n RGB images (n, 3, size, size) uint8 (already resized to
 * c->size, alpha composited on white: what ct_caption_dataset / folder loading gives); out (n, dim).
 * Each image is scaled to [0, 1] and normalised with c->mean / c->std, as in training. */
ct_status ct_clip_embed_images(ct_clip *c, const uint8_t *rgb, int64_t n, float *out);
/* Unit-length text embeddings of n texts (texts[i] has lens[i] bytes); out (n, dim). Each text
 * is tokenized as in training: BOS, its tokens, EOS, cut to the text tower's context. */
ct_status ct_clip_embed_texts(ct_clip *c, const char *const *texts, const size_t *lens, int64_t n, float *out);

CT_END_API
#ifdef __cplusplus
}
#endif
#endif
