/* clip.c: CLIP (Radford et al. 2021): two towers trained so that an image and its
 * caption land together; its training run, its checkpoint and the ct_clip API.
 *
 * Model: the image tower is a ct_model (cnn, resnet18 or vit) whose head is one
 * linear projection without bias (head_hidden -1) to the shared dimension D; the text
 * tower a ct_model over token ids (a transformer, EOT pooling with a causal mask as
 * CLIP, or mean pooling) with the same kind of projection; a learnable logit scale s
 * (logits = exp(s) cos), initialised to ln(1 / temperature) = ln(1 / 0.07) by default.
 *
 * One step: the loader's augmented images (b per process) and one caption per image
 * (ct_caption_sample, keyed by seed, epoch and image), tokenized; both towers
 * forward; under mpirun both sets of embeddings are all-gathered (every process then
 * holds the global batch, rank-major) and every process computes the full loss
 * (ct_clip_loss) and back-propagates the rows of its own samples: open_clip's
 * gather_with_grad, whose per-rank gradients the all-reduce of each tower's
 * gradient sums. ds, the scale's gradient, is the same on every process (the same
 * gathered inputs) and is not reduced.
 *
 * One optimizer state: a ct_optim over [image parameters | text parameters | s],
 * stepped over each slab in turn through a view of its moments at the slab's offset
 * with the same step count (AdamW is elementwise, so this is one AdamW over the
 * concatenation); s has no weight decay (CT_TENSOR_NO_DECAY, as open_clip) and is
 * clamped to [0, ln 100] after every step.
 *
 * Checkpoint (safetensors): "visual.<name>" (the image tower's parameters and BN
 * buffers), "text.<name>", "logit_scale" (a scalar), "optim.m" / "optim.v" over the
 * concatenation; metadata: both towers' configurations ("visual.model.*",
 * "text.model.*"), the counters and options a resume checks, the training split's
 * normalisation (data.mean, data.std) and the tokenizer. */
#include "internal.h"

#include "contrast/captions.h"
#include "contrast/clip.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define CLIP_FORMAT "contrast-checkpoint"
#define CLIP_VERSION "1"

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

void ct_clip_free(ct_clip *c) {
    if (!c) return;
    ct_model_free(&c->image);
    ct_model_free(&c->text);
    ct_tokenizer_free(c->tok);
    memset(c, 0, sizeof *c);
}

float ct_clip_clamp_scale(float s) {
    return s < CT_CLIP_SCALE_MIN ? CT_CLIP_SCALE_MIN : s > CT_CLIP_SCALE_MAX ? CT_CLIP_SCALE_MAX : s;
}

static const ct_tensor_info scale_info = {"logit_scale", 0, {0}, 0, 1, CT_TENSOR_NO_DECAY};

/* ---- the towers' configurations --------------------------------------------------- */

/* The image tower of run c: the encoder of c->model over 3 x S x S, one projection. */
static void image_config(ct_model_config *mc, const ct_train_config *c) {
    *mc = c->model;
    mc->in_c = 3;
    mc->in_h = mc->in_w = c->image_size;
    mc->seed = c->seed;
    mc->whiten = 0;
    mc->head_hidden = -1;
    if (mc->width <= 0) mc->width = mc->encoder == CT_ENC_RESNET18 ? 64 : mc->encoder == CT_ENC_VIT ? 128 : 32;
    if (mc->last_width < 0) mc->last_width = mc->encoder == CT_ENC_CNN ? 16 * mc->width : 0;
}

/* The text tower: a transformer over model.context ids of the tokenizer's vocabulary;
 * EOT pooling reads the last token under a causal mask (CLIP's), mean pooling all of
 * them without one. Its seed differs from the image tower's. */
static void text_config(ct_model_config *mc, const ct_train_config *c, int vocab) {
    ct_model_config_default(mc);
    mc->encoder = CT_ENC_TRANSFORMER;
    mc->width = c->text_width;
    mc->depth = c->text_depth;
    mc->heads = c->text_heads;
    mc->vocab = vocab;
    mc->context = c->model.context;
    mc->pool = c->text_pool;
    mc->causal = c->text_pool == CT_POOL_EOT;
    mc->dropout = c->model.dropout;
    mc->in_c = 1;
    mc->in_h = c->model.context;
    mc->in_w = 1;
    mc->head_hidden = -1;
    mc->head_out = c->model.head_out;
    mc->head_bn = 0;
    mc->whiten = 0;
    mc->seed = c->seed ^ 0x54455854u; /* "TEXT" */
}

/* ---- embeddings ------------------------------------------------------------------ */

static void unit_rows(float *x, int64_t n, int64_t d) {
    for (int64_t i = 0; i < n; i++) {
        double s = 0;
        for (int64_t j = 0; j < d; j++) s += (double)x[i * d + j] * x[i * d + j];
        float inv = s > 0 ? (float)(1.0 / sqrt(s)) : 0.0f;
        for (int64_t j = 0; j < d; j++) x[i * d + j] *= inv;
    }
}

#define EMBED_BATCH 256

ct_status ct_clip_embed_images(ct_clip *c, const uint8_t *rgb, int64_t n, float *out) {
    if (n < 0 || (n > 0 && (!rgb || !out))) return ct_error(CT_ERR_ARG, "clip: bad arguments (n=%lld)", (long long)n);
    const int64_t S = c->size, px = S * S, D = c->dim;
    int64_t bs = n < EMBED_BATCH ? (n > 0 ? n : 1) : EMBED_BATCH;
    ct_status st = ct_model_prepare(&c->image, bs);
    if (st) return st;
    float *x = ct_alloc((size_t)(bs * 3 * px) * sizeof(float));
    if (!x) return ct_error(CT_ERR_NOMEM, "clip: no memory for a batch of %lld images", (long long)bs);
    for (int64_t s0 = 0; s0 < n && !st; s0 += bs) {
        int64_t nb = n - s0 < bs ? n - s0 : bs;
        for (int64_t i = 0; i < nb; i++)
            for (int ch = 0; ch < 3; ch++) {
                const uint8_t *p = rgb + ((s0 + i) * 3 + ch) * px;
                float *q = x + (i * 3 + ch) * px, m = c->mean[ch], inv = 1.0f / c->std[ch];
                for (int64_t k = 0; k < px; k++) q[k] = ((float)p[k] / 255.0f - m) * inv;
            }
        if ((st = ct_model_forward(&c->image, x, nb, 0, 1))) break;
        memcpy(out + s0 * D, ct_model_embedding(&c->image), (size_t)(nb * D) * sizeof(float));
    }
    ct_free(x);
    if (!st) unit_rows(out, n, D);
    return st;
}

ct_status ct_clip_embed_texts(ct_clip *c, const char *const *texts, const size_t *lens, int64_t n, float *out) {
    if (n < 0 || (n > 0 && (!texts || !lens || !out)))
        return ct_error(CT_ERR_ARG, "clip: bad arguments (n=%lld)", (long long)n);
    if (n == 0) return CT_OK;
    ct_status st = ct_embed_texts(out, &c->text, c->tok, texts, lens, n, CT_FEAT_Z, EMBED_BATCH);
    if (!st) unit_rows(out, n, c->dim);
    return st;
}

/* ---- loading --------------------------------------------------------------------- */

/* "a,b,c" (three floats) into v; 0 on success. */
static int parse3(const char *s, float *v) {
    char *end;
    for (int i = 0; i < 3; i++) {
        errno = 0;
        double x = strtod(s, &end);
        if (end == s || errno || !isfinite(x)) return -1;
        v[i] = (float)x;
        if (i < 2) {
            if (*end != ',') return -1;
            s = end + 1;
        }
    }
    return *end ? -1 : 0;
}

/* The tower stored under `prefix` ("visual." or "text."): its configuration, checked
 * to fit in the file before it is built, then its tensors. */
static ct_status load_tower(const ct_st_file *f, const char *prefix, ct_model *m) {
    ct_model_config mc;
    ct_status st = ckpt_model_config(f, prefix, &mc);
    if (!st) st = ckpt_check_model_fits(f, &mc);
    if (st) return st;
    if (mc.head_hidden != -1)
        return ct_error(CT_ERR_FORMAT, "%s: the %s tower has no single projection (head_hidden %d)", ct_st_path(f),
                        prefix, mc.head_hidden);
    if ((st = ct_model_init(m, &mc))) return train_error_in(st, ct_st_path(f), "cannot build a tower: ");
    return ckpt_load_model_tensors(f, m, prefix);
}

ct_status ct_clip_load(ct_clip *c, const char *path) {
    memset(c, 0, sizeof *c);
    ct_st_file *f;
    ct_status st = ct_st_open(&f, path);
    if (st) return st;
    const char *fmt = ct_st_meta(f, "format"), *method = ct_st_meta(f, "train.method");
    const char *mean = ct_st_meta(f, "data.mean"), *sd = ct_st_meta(f, "data.std"), *tok = ct_st_meta(f, "tokenizer");
    const ct_st_entry *e = ct_st_find(f, "logit_scale");
    if (!fmt || strcmp(fmt, CLIP_FORMAT) || !method || strcmp(method, "clip"))
        st = ct_error(CT_ERR_FORMAT, "%s: not a clip checkpoint (format '%s', method '%s')", path, fmt ? fmt : "missing",
                      method ? method : "missing");
    else if (!e || e->dtype != CT_DTYPE_F32 || e->numel != 1)
        st = ct_error(CT_ERR_FORMAT, "%s: no scalar F32 'logit_scale'", path);
    else if (!mean || !sd || parse3(mean, c->mean) || parse3(sd, c->std) || !(c->std[0] > 0) || !(c->std[1] > 0) ||
             !(c->std[2] > 0))
        st = ct_error(CT_ERR_FORMAT, "%s: metadata data.mean / data.std ('%s' / '%s') are not three numbers each "
                                     "(std > 0)",
                      path, mean ? mean : "missing", sd ? sd : "missing");
    else if (!tok)
        st = ct_error(CT_ERR_FORMAT, "%s: no 'tokenizer' in its metadata", path);
    if (!st) {
        memcpy(&c->logit_scale, e->data, sizeof(float));
        if (!(c->logit_scale >= CT_CLIP_SCALE_MIN && c->logit_scale <= CT_CLIP_SCALE_MAX))
            st = ct_error(CT_ERR_FORMAT, "%s: logit_scale %g outside [0, ln 100]", path, c->logit_scale);
    }
    if (!st) st = ct_tokenizer_deserialize(&c->tok, tok, strlen(tok), path);
    if (!st) st = load_tower(f, "visual.", &c->image);
    if (!st) st = load_tower(f, "text.", &c->text);
    if (!st) {
        const ct_model_config *ic = &c->image.cfg, *tc = &c->text.cfg;
        if (ic->in_c != 3 || ic->in_h != ic->in_w || ct_model_takes_tokens(&c->image) || !ct_model_takes_tokens(&c->text))
            st = ct_error(CT_ERR_FORMAT, "%s: the towers are not an image tower of 3 x S x S and a text tower", path);
        else if (ct_model_embed_dim(&c->image) != ct_model_embed_dim(&c->text))
            st = ct_error(CT_ERR_FORMAT, "%s: the towers project to %lld and %lld features", path,
                          (long long)ct_model_embed_dim(&c->image), (long long)ct_model_embed_dim(&c->text));
        else if (ct_tokenizer_vocab_size(c->tok) > tc->vocab)
            st = ct_error(CT_ERR_FORMAT, "%s: the tokenizer has %d ids and the text tower's vocabulary %d", path,
                          (int)ct_tokenizer_vocab_size(c->tok), tc->vocab);
        c->size = ic->in_h;
        c->dim = ct_model_embed_dim(&c->image);
    }
    ct_st_close(f);
    if (st) ct_clip_free(c);
    return st;
}

/* ---- the training run ---------------------------------------------------------------- */

typedef struct {
    const ct_train_config *c;
    int P, rank;
    int64_t B, b, D, T;
    ct_caption_dataset cd;     /* the training split (cd.img.n: after c->limit) */
    int64_t cd_n;              /* its images before the limit (what ct_caption_dataset_free frees) */
    ct_clip m;                 /* the towers, tokenizer and scale being trained */
    char *tok_text;            /* the tokenizer's serialisation (checkpoint metadata) */
    float dscale;              /* dL/ds */
    ct_augment aug;
    ct_loader loader;
    int have_loader, have_opt;
    ct_optim opt;              /* moments over [image | text | s] */
    const char **texts;        /* (b) this step's captions */
    size_t *lens;              /* (b) */
    int32_t *ids;              /* (b, T) */
    uint8_t *valid;            /* (b, T) */
    float *zi, *zt;            /* (B, D) the global batch's embeddings (P > 1: gathered) */
    float *dzi, *dzt;          /* (B, D) their gradients */
    float *ui, *ut, *sim;      /* (B, D), (B, D), (B, B): unit rows and cosines for top-1 */
    void *ws;
    size_t ws_bytes;
    run_dir rd;
    char ckpt[600], metrics[600];
    const char *last_good;
    int epoch;                 /* epochs completed */
    int64_t step;
    int64_t steps_per_epoch, total, warmup;
    int last_epoch;
} clip_run;

static void run_free(clip_run *r, int failed) {
    if (r->have_loader) ct_loader_free(&r->loader);
    if (r->have_opt) ct_optim_free(&r->opt);
    ct_clip_free(&r->m);
    if (r->cd_n) r->cd.img.n = r->cd_n; /* free every image's captions and file name */
    ct_caption_dataset_free(&r->cd);
    free(r->tok_text);
    free(r->texts);
    free(r->lens);
    ct_free(r->ids);
    ct_free(r->valid);
    ct_free(r->zi);
    ct_free(r->zt);
    ct_free(r->dzi);
    ct_free(r->dzt);
    ct_free(r->ui);
    ct_free(r->ut);
    ct_free(r->sim);
    ct_free(r->ws);
    run_dir_release(&r->rd, failed);
}

static void emit(const clip_run *r, ct_train_event *e) {
    if (r->rank != 0 || !r->c->on_event) return;
    e->epochs = r->c->epochs;
    e->step = r->step;
    r->c->on_event(e, r->c->event_ctx);
}

/* ---- checkpoint ------------------------------------------------------------------- */

#define CLIP_META_MAX 96

/* The metadata of model configuration mc under "<prefix>model.*" (keys in k, values in v). */
static int tower_meta(const ct_model_config *mc, const char *prefix, ct_st_kv *meta, char (*k)[48], char (*v)[64]) {
    int n = 0;
#define TM(kk, ...)                                            \
    do {                                                        \
        snprintf(k[n], sizeof k[n], "%smodel.%s", prefix, kk); \
        snprintf(v[n], sizeof v[n], __VA_ARGS__);               \
        meta[n].key = k[n];                                     \
        meta[n].value = v[n];                                   \
        n++;                                                    \
    } while (0)
    TM("encoder", "%s", ct_encoder_name(mc->encoder));
    TM("width", "%d", mc->width);
    TM("last_width", "%d", mc->last_width);
    TM("in_c", "%d", mc->in_c);
    TM("in_h", "%d", mc->in_h);
    TM("in_w", "%d", mc->in_w);
    TM("head_hidden", "%d", mc->head_hidden);
    TM("head_out", "%d", mc->head_out);
    TM("head_bn", "%d", mc->head_bn);
    TM("whiten", "%.9g", mc->whiten);
    TM("seed", "%llu", (unsigned long long)mc->seed);
    if (mc->encoder == CT_ENC_TRANSFORMER || mc->encoder == CT_ENC_VIT) {
        TM("depth", "%d", mc->depth);
        TM("heads", "%d", mc->heads);
        TM("patch", "%d", mc->patch);
        TM("vocab", "%d", mc->vocab);
        TM("context", "%d", mc->context);
        TM("causal", "%d", mc->causal);
        TM("dropout", "%.9g", mc->dropout);
        TM("pool", "%s", ct_pool_name(mc->pool));
    }
#undef TM
    return n;
}

/* The options a resume compares (as written), "key: old -> new" for each difference. */
#define NOPTS 12
static int run_options(const ct_train_config *c, const char **key, char (*v)[64]) {
    int n = 0;
#define OPT(kk, ...) (snprintf(v[n], sizeof v[n], __VA_ARGS__), key[n++] = kk)
    OPT("train.batch", "%lld", (long long)c->batch);
    OPT("train.lr", "%.9g", c->lr);
    OPT("train.optimizer", "%s", ct_optim_type_name(c->optim.type));
    OPT("train.weight_decay", "%.9g", c->optim.weight_decay);
    OPT("train.temperature", "%.9g", c->temperature);
    OPT("train.seed", "%llu", (unsigned long long)c->seed);
    OPT("train.limit", "%lld", (long long)c->limit);
    OPT("train.warmup_epochs", "%.9g", c->warmup_epochs);
    OPT("train.final_lr_frac", "%.9g", c->final_lr_frac);
    OPT("train.vocab", "%d", c->model.vocab);
#undef OPT
    return n;
}

static ct_status clip_save(const char *path, clip_run *r) {
    const ct_model *im = &r->m.image, *tx = &r->m.text;
    ct_optim_buffer ob[4];
    int nob = ct_optim_state(&r->opt, ob, 4);
    int cap = im->nparams + im->nbufs + tx->nparams + tx->nbufs + 1 + nob, n = 0;
    ct_st_tensor *t = calloc((size_t)cap, sizeof *t);
    char(*names)[CT_MAX_NAME + 8] = calloc((size_t)cap, sizeof *names);
    if (!t || !names) {
        free(t);
        free(names);
        return ct_error(CT_ERR_NOMEM, "%s: no memory for the checkpoint's tensor table", path);
    }
    for (int tw = 0; tw < 2; tw++) {
        const ct_model *m = tw ? tx : im;
        for (int i = 0; i < m->nparams + m->nbufs; i++) {
            const ct_tensor_info *ti = i < m->nparams ? &m->params[i] : &m->bufs[i - m->nparams];
            ct_st_tensor_from_info(&t[n], ti, i < m->nparams ? m->param : m->buf);
            snprintf(names[n], sizeof names[n], "%s%s", tw ? "text." : "visual.", ti->name);
            t[n].name = names[n];
            n++;
        }
    }
    ct_st_tensor_from_info(&t[n++], &scale_info, &r->m.logit_scale);
    for (int i = 0; i < nob; i++) {
        t[n] = (ct_st_tensor){.name = ob[i].name, .dtype = CT_DTYPE_F32, .ndim = 1, .data = ob[i].data};
        t[n++].shape[0] = (int64_t)ob[i].numel;
    }
    ct_st_kv meta[CLIP_META_MAX];
    char k[CLIP_META_MAX][48], v[CLIP_META_MAX][64];
    int nm = 0;
#define META(kk, ...)                              \
    do {                                           \
        snprintf(v[nm], sizeof v[nm], __VA_ARGS__); \
        meta[nm].key = kk;                         \
        meta[nm].value = v[nm];                    \
        nm++;                                      \
    } while (0)
    META("format", CLIP_FORMAT);
    META("version", CLIP_VERSION);
    META("train.method", "clip");
    nm += tower_meta(&im->cfg, "visual.", meta + nm, k + nm, v + nm);
    nm += tower_meta(&tx->cfg, "text.", meta + nm, k + nm, v + nm);
    META("train.epoch", "%d", r->epoch);
    META("train.step", "%lld", (long long)r->step);
    META("train.optim_step", "%lld", (long long)r->opt.step);
    META("train.epochs", "%d", r->c->epochs);
    META("train.image_size", "%d", r->c->image_size);
    META("clip.embed_dim", "%lld", (long long)r->D);
    const char *okey[NOPTS];
    char ov[NOPTS][64];
    int no = run_options(r->c, okey, ov);
    for (int i = 0; i < no; i++) {
        meta[nm].key = okey[i];
        meta[nm++].value = ov[i];
    }
    const float *mu = r->cd.img.mean, *sd = r->cd.img.std;
    META("data.mean", "%.9g,%.9g,%.9g", mu[0], mu[1], mu[2]);
    META("data.std", "%.9g,%.9g,%.9g", sd[0], sd[1], sd[2]);
#undef META
    meta[nm].key = "train.data";
    meta[nm++].value = r->c->data;
    meta[nm].key = "train.augment";
    meta[nm++].value = r->c->augment;
    meta[nm].key = "tokenizer";
    meta[nm++].value = r->tok_text;
    ct_status st = ct_st_write(path, t, n, meta, nm);
    free(t);
    free(names);
    return st;
}

/* Two tower configurations agree on everything that shapes the tensors and the bits. */
static int same_tower(const ct_model_config *a, const ct_model_config *b) {
    int tfm = a->encoder == CT_ENC_TRANSFORMER || a->encoder == CT_ENC_VIT;
    return a->encoder == b->encoder && a->width == b->width && a->last_width == b->last_width && a->in_c == b->in_c &&
           a->in_h == b->in_h && a->in_w == b->in_w && a->head_hidden == b->head_hidden &&
           a->head_out == b->head_out && a->seed == b->seed &&
           (!tfm || (a->depth == b->depth && a->heads == b->heads && a->patch == b->patch && a->vocab == b->vocab &&
                     a->context == b->context && a->causal == b->causal && a->dropout == b->dropout &&
                     a->pool == b->pool));
}

/* Before anything is built: the checkpoint is a clip run's with the same towers, its
 * counters in range, and the options that decide the bits unchanged (or allowed). */
static ct_status resume_check(clip_run *r, const ct_model_config *ic, const ct_model_config *tc, int *epoch) {
    const ct_train_config *c = r->c;
    ct_st_file *f;
    ct_status st = ct_st_open(&f, c->resume);
    if (st) return st;
    const char *method = ct_st_meta(f, "train.method");
    ct_model_config a, b;
    long long ep;
    if (!method || strcmp(method, "clip")) {
        st = ct_error(CT_ERR_ARG, "%s: checkpoint was trained with method '%s', not 'clip'", c->resume,
                      method ? method : "?");
        goto out;
    }
    if ((st = ckpt_model_config(f, "visual.", &a)) || (st = ckpt_model_config(f, "text.", &b))) goto out;
    a.seed = ic->seed; /* the seed is an option below */
    b.seed = tc->seed;
    if (!same_tower(&a, ic) || !same_tower(&b, tc)) {
        st = ct_error(CT_ERR_ARG, "%s: checkpoint holds different towers (image %s width %d at %d, text width %d "
                                  "depth %d) than requested (image %s width %d at %d, text width %d depth %d)",
                      c->resume, ct_encoder_name(a.encoder), a.width, a.in_h, b.width, b.depth,
                      ct_encoder_name(ic->encoder), ic->width, ic->in_h, tc->width, tc->depth);
        goto out;
    }
    if ((st = ckpt_meta_int(f, "train.epoch", 0, CKPT_MAX_EPOCHS, -1, &ep))) goto out;
    *epoch = (int)ep;
    const char *key[NOPTS + 2];
    char v[NOPTS][64], changes[1024] = "";
    int n = run_options(c, key, v);
    const char *now[NOPTS + 2];
    for (int i = 0; i < n; i++) now[i] = v[i];
    key[n] = "train.data", now[n++] = c->data;
    key[n] = "train.augment", now[n++] = c->augment;
    size_t len = 0;
    for (int i = 0; i < n && len < sizeof changes; i++) {
        const char *was = ct_st_meta(f, key[i]);
        if (was && !strcmp(was, now[i])) continue;
        int w = snprintf(changes + len, sizeof changes - len, "%s%s: '%s' -> '%s'", len ? ", " : "", key[i],
                         was ? was : "missing", now[i]);
        len += w > 0 ? (size_t)w : 0;
    }
    if (changes[0] && !c->resume_allow_changes)
        st = ct_error(CT_ERR_ARG, "%s: this run's options differ from the checkpoint's (%s), so it would not continue "
                                  "the run bit for bit; resume with the checkpoint's options, or allow the change "
                                  "(--allow-changes)",
                      c->resume, changes);
    else if (changes[0]) {
        char msg[2200];
        snprintf(msg, sizeof msg, "resuming %s with changed options (%s): it does not continue that run bit for bit",
                 c->resume, changes);
        ct_train_event e = {.kind = CT_TRAIN_EVENT_WARNING, .message = msg};
        emit(r, &e);
    }
out:
    ct_st_close(f);
    return st;
}

/* Parameters, buffers, scale, optimizer moments and counters of the checked checkpoint. */
static ct_status resume_load(clip_run *r) {
    const char *path = r->c->resume;
    ct_st_file *f;
    ct_status st = ct_st_open(&f, path);
    if (st) return st;
    long long ep, step, ostep;
    const ct_st_entry *e = ct_st_find(f, "logit_scale");
    if ((st = ckpt_load_model_tensors(f, &r->m.image, "visual.")) ||
        (st = ckpt_load_model_tensors(f, &r->m.text, "text.")) ||
        (st = ckpt_meta_int(f, "train.epoch", 0, CKPT_MAX_EPOCHS, -1, &ep)) ||
        (st = ckpt_meta_int(f, "train.step", 0, CKPT_MAX_STEPS, -1, &step)) ||
        (st = ckpt_meta_int(f, "train.optim_step", 0, CKPT_MAX_STEPS, -1, &ostep)))
        goto out;
    if (!e || e->dtype != CT_DTYPE_F32 || e->numel != 1) {
        st = ct_error(CT_ERR_FORMAT, "%s: no scalar F32 'logit_scale'", path);
        goto out;
    }
    memcpy(&r->m.logit_scale, e->data, sizeof(float));
    ct_optim_buffer ob[4];
    int nob = ct_optim_state(&r->opt, ob, 4);
    for (int i = 0; i < nob; i++) {
        int64_t shape[1] = {(int64_t)ob[i].numel};
        if ((st = ct_st_read_f32(f, ob[i].name, ob[i].data, ob[i].numel, 1, shape))) goto out;
    }
    r->opt.step = ostep;
    r->epoch = (int)ep;
    r->step = step;
out:
    ct_st_close(f);
    return st;
}

/* ---- setup ----------------------------------------------------------------------------- */

static ct_status check_config(const ct_train_config *c) {
    if (strcmp(c->data, "emoji") && strncmp(c->data, "captions:", 9))
        return ct_error(CT_ERR_ARG, "train: clip trains on image-caption data (emoji or captions:DIR), not '%s'",
                        c->data);
    if (c->model.encoder == CT_ENC_TRANSFORMER)
        return ct_error(CT_ERR_ARG, "train: clip's image tower is cnn, resnet18 or vit, not transformer");
    if (c->local_crops || c->model.whiten > 0 || c->eval_every > 0 || c->symmetric || c->view_size > 0)
        return ct_error(CT_ERR_ARG, "train: local crops, whitening, the kNN monitor, symmetric and the view size are "
                                    "not clip options (the images are --image-size)");
    if (c->image_size < 8 || c->image_size > 1024)
        return ct_error(CT_ERR_ARG, "train: clip image size %d outside 8..1024", c->image_size);
    if (c->text_pool != CT_POOL_EOT && c->text_pool != CT_POOL_MEAN)
        return ct_error(CT_ERR_ARG, "train: clip's text tower pools eot or mean, not %s", ct_pool_name(c->text_pool));
    if (c->model.head_out < 1)
        return ct_error(CT_ERR_ARG, "train: clip needs an embedding size >= 1 (got %d)", c->model.head_out);
    if (!(c->temperature >= 0.01f && c->temperature <= 1.0f))
        return ct_error(CT_ERR_ARG, "train: clip's initial temperature %g outside [0.01, 1] (the logit scale ln(1/T) "
                                    "must start in [0, ln 100])",
                        c->temperature);
    return CT_OK;
}

/* The training split, its limit, the images' pipeline: mild crops (scale 0.6-1), no
 * flips and no colour changes (captions name colours and sides), then c->augment. */
static ct_status load_data(clip_run *r) {
    const ct_train_config *c = r->c;
    ct_status st = ct_caption_dataset_load(&r->cd, c->data, 1, c->image_size);
    if (st) return st;
    r->cd_n = r->cd.img.n;
    ct_dataset_limit(&r->cd.img, c->limit);
    if (r->cd.img.n < c->batch)
        return ct_error(CT_ERR_ARG, "train: %s has %lld training images, fewer than one batch of %lld", c->data,
                        (long long)r->cd.img.n, (long long)c->batch);
    ct_augment_for_dataset(&r->aug, &r->cd.img);
    if ((st = ct_augment_parse(&r->aug, "none,crop=0.6:1"))) return st;
    r->aug.out_h = r->aug.out_w = 0;
    if (c->augment[0] && (st = ct_augment_parse(&r->aug, c->augment))) return st;
    if (r->aug.out_h && (r->aug.out_h != c->image_size || r->aug.out_w != c->image_size))
        return ct_error(CT_ERR_ARG, "train: clip's images are --image-size %d; augment size= cannot change that",
                        c->image_size);
    r->aug.out_h = r->aug.out_w = c->image_size;
    return ct_augment_check(&r->aug, &r->cd.img);
}

/* The tokenizer: trained on every training caption of a fresh run, read back on a resume. */
static ct_status load_tokenizer(clip_run *r) {
    const ct_train_config *c = r->c;
    const ct_caption_dataset *cd = &r->cd;
    ct_status st;
    if (c->resume[0]) {
        if ((st = ct_checkpoint_load_tokenizer(&r->m.tok, c->resume))) return st;
    } else {
        int64_t nc = cd->caption_start[cd->img.n];
        size_t *len = malloc((size_t)(nc ? nc : 1) * sizeof *len);
        if (!len) return ct_error(CT_ERR_NOMEM, "train: no memory for %lld captions", (long long)nc);
        for (int64_t i = 0; i < nc; i++) len[i] = strlen(cd->captions[i]);
        ct_tokenizer_opts o = {c->model.vocab};
        st = ct_tokenizer_train(&r->m.tok, (const char *const *)cd->captions, len, nc, &o);
        free(len);
        if (st) return st;
    }
    if (!(r->tok_text = ct_tokenizer_serialize(r->m.tok, NULL)))
        return ct_error(CT_ERR_NOMEM, "train: no memory for the tokenizer's text");
    return CT_OK;
}

static ct_status alloc_buffers(clip_run *r) {
    const int64_t B = r->B, b = r->b, D = r->D, T = r->T;
    size_t bd = (size_t)(B * D) * sizeof(float);
    r->ws_bytes = ct_clip_workspace_size(B, D);
    r->ws = ct_alloc(r->ws_bytes);
    r->texts = malloc((size_t)b * sizeof *r->texts);
    r->lens = malloc((size_t)b * sizeof *r->lens);
    r->ids = ct_alloc((size_t)(b * T) * sizeof(int32_t));
    r->valid = ct_alloc((size_t)(b * T));
    r->zi = ct_alloc(bd);
    r->zt = ct_alloc(bd);
    r->dzi = ct_alloc(bd);
    r->dzt = ct_alloc(bd);
    r->ui = ct_alloc(bd);
    r->ut = ct_alloc(bd);
    r->sim = ct_alloc((size_t)(B * B) * sizeof(float));
    if (!r->ws || !r->texts || !r->lens || !r->ids || !r->valid || !r->zi || !r->zt || !r->dzi || !r->dzt || !r->ui ||
        !r->ut || !r->sim)
        return ct_error(CT_ERR_NOMEM, "train: no memory for clip's buffers (batch %lld)", (long long)B);
    return CT_OK;
}

static ct_status setup(clip_run *r, const ct_train_config *c, ct_train_result *res) {
    r->c = c;
    r->rd.lock_fd = -1;
    r->P = ct_dist_size();
    r->rank = ct_dist_rank();
    r->B = c->batch;
    r->b = c->batch / r->P;
    r->T = c->model.context;
    r->last_epoch = c->stop_after > 0 && c->stop_after < c->epochs ? c->stop_after : c->epochs;
    ct_status st;
    if ((st = check_config(c)) || (st = load_data(r)) || (st = load_tokenizer(r))) return st;
    ct_model_config ic, tc;
    image_config(&ic, c);
    text_config(&tc, c, ct_tokenizer_vocab_size(r->m.tok));
    int resume_epoch = 0;
    if (c->resume[0]) {
        if ((st = resume_check(r, &ic, &tc, &resume_epoch))) return st;
        if (resume_epoch >= r->last_epoch)
            return ct_error(CT_ERR_ARG, "%s: the checkpoint has trained %d epochs and this run ends at epoch %d: there "
                                        "is nothing to train; to continue it, pass a larger --epochs",
                            c->resume, resume_epoch, r->last_epoch);
    }
    if (r->rank == 0 && (st = run_dir_claim(&r->rd, c, resume_epoch))) return st;
    snprintf(res->out, sizeof res->out, "%s", r->rank == 0 ? r->rd.dir : c->out);
    snprintf(r->ckpt, sizeof r->ckpt, "%s/checkpoint.safetensors", res->out);
    snprintf(r->metrics, sizeof r->metrics, "%s/metrics.jsonl", res->out);
    if ((st = ct_model_init(&r->m.image, &ic))) return st;
    if ((st = ct_model_init(&r->m.text, &tc))) return st;
    if (c->sync_bn && r->P > 1) r->m.image.bn_reduce = ct_dist_reduce_cb;
    if (c->recompute) {
        ct_model_recompute_convs(&r->m.image);
        ct_model_recompute_blocks(&r->m.image);
        ct_model_recompute_blocks(&r->m.text);
    }
    if ((st = ct_model_prepare(&r->m.image, r->b)) || (st = ct_model_prepare(&r->m.text, r->b))) return st;
    res->arena_bytes = r->m.image.arena.cap + r->m.text.arena.cap;
    r->D = ct_model_embed_dim(&r->m.image);
    r->m.dim = r->D;
    r->m.size = c->image_size;
    memcpy(r->m.mean, r->cd.img.mean, sizeof r->m.mean);
    memcpy(r->m.std, r->cd.img.std, sizeof r->m.std);
    r->m.logit_scale = logf(1.0f / c->temperature);
    if ((st = ct_optim_init(&r->opt, &c->optim, r->m.image.nparam_floats + r->m.text.nparam_floats + 1))) return st;
    r->have_opt = 1;
    if ((st = alloc_buffers(r))) return st;
    if (c->resume[0]) {
        if ((st = resume_load(r))) return st;
        r->last_good = c->resume;
        ct_train_event e = {.kind = CT_TRAIN_EVENT_RESUMED, .epoch = r->epoch, .path = c->resume};
        emit(r, &e);
    }
    if ((st = ct_loader_init(&r->loader, &r->cd.img, &r->aug, r->B, 1, 1, c->seed, c->loader_threads))) return st;
    r->have_loader = 1;
    if (r->P > 1 && (st = ct_loader_shard(&r->loader, r->rank, r->P))) return st;
    r->steps_per_epoch = r->loader.n_batches;
    r->total = r->steps_per_epoch * c->epochs;
    r->warmup = (int64_t)(c->warmup_epochs * r->steps_per_epoch);
    return CT_OK;
}

/* ---- one step ------------------------------------------------------------------------- */

/* In-batch top-1 both ways over the global batch: image i's most similar caption is
 * its own (i2t), caption j's most similar image is its own (t2i); ties count as misses
 * unless the diagonal comes first. */
static void batch_top1(clip_run *r, double *i2t, double *t2i) {
    const int64_t B = r->B, D = r->D;
    memcpy(r->ui, r->zi, (size_t)(B * D) * sizeof(float));
    memcpy(r->ut, r->zt, (size_t)(B * D) * sizeof(float));
    unit_rows(r->ui, B, D);
    unit_rows(r->ut, B, D);
    ct_gemm(0, 1, B, B, D, 1.0f, r->ui, D, r->ut, D, 0.0f, r->sim, B);
    int64_t a = 0, t = 0;
    for (int64_t i = 0; i < B; i++) {
        int64_t bi = 0, bj = 0;
        for (int64_t j = 1; j < B; j++) {
            if (r->sim[i * B + j] > r->sim[i * B + bi]) bi = j;
            if (r->sim[j * B + i] > r->sim[bj * B + i]) bj = j;
        }
        a += bi == i;
        t += bj == i;
    }
    *i2t = (double)a / (double)B;
    *t2i = (double)t / (double)B;
}

/* [image | text | s]: one AdamW (or SGD, LARS) step over each slab in turn with the
 * same step count, through views of the one optimizer's moments. */
static ct_status optim_step(clip_run *r, float lr) {
    ct_model *im = &r->m.image, *tx = &r->m.text;
    const ct_optim_part parts[3] = {{im->param, im->grad, im->params, im->nparams, im->nparam_floats},
                                    {tx->param, tx->grad, tx->params, tx->nparams, tx->nparam_floats},
                                    {&r->m.logit_scale, &r->dscale, &scale_info, 1, 1}};
    ct_status st = ct_optim_step_parts(&r->opt, parts, 3, lr);
    if (st) return st;
    r->m.logit_scale = ct_clip_clamp_scale(r->m.logit_scale); /* open_clip: clamp_(0, ln 100) every step */
    return CT_OK;
}

typedef struct {
    double loss, i2t, t2i;
} step_stats;

static ct_status train_step(clip_run *r, const ct_batch *bt, int epoch, float lr, step_stats *ss) {
    const ct_train_config *c = r->c;
    const int64_t b = bt->n, B = r->B, D = r->D, T = r->T;
    ct_model *im = &r->m.image, *tx = &r->m.text;
    for (int64_t j = 0; j < b; j++) {
        r->texts[j] = ct_caption_sample(&r->cd, bt->index[j], c->seed, epoch);
        r->lens[j] = strlen(r->texts[j]);
    }
    ct_status st = ct_tokenizer_encode_batch(r->m.tok, r->texts, r->lens, b, CT_TOK_ADD_BOS | CT_TOK_ADD_EOS, T,
                                             r->ids, r->valid, NULL);
    if (st) return st;
    im->dropout_step = tx->dropout_step = (uint64_t)r->step;
    if ((st = ct_model_forward(im, bt->x, b, 1, 1)) || (st = ct_model_forward_tokens(tx, r->ids, r->valid, b, 1, 1)))
        return st;
    if (r->P > 1) { /* rank-major: global sample r*b + j is rank r's sample j, as the loader shards */
        if ((st = ct_dist_allgather_f32(r->zi, ct_model_embedding(im), (size_t)(b * D))) ||
            (st = ct_dist_allgather_f32(r->zt, ct_model_embedding(tx), (size_t)(b * D))))
            return st;
    } else {
        memcpy(r->zi, ct_model_embedding(im), (size_t)(b * D) * sizeof(float));
        memcpy(r->zt, ct_model_embedding(tx), (size_t)(b * D) * sizeof(float));
    }
    ct_loss_stats ls;
    st = ct_clip_loss(&ls, r->dzi, r->dzt, &r->dscale, r->zi, r->zt, r->m.logit_scale, B, D, r->ws, r->ws_bytes);
    if (st && st != CT_ERR_NUMERIC) return st;
    if (st == CT_ERR_NUMERIC || !isfinite(ls.loss)) {
        char kept[700];
        if (r->last_good) snprintf(kept, sizeof kept, "the last good checkpoint (%s) is kept", r->last_good);
        else snprintf(kept, sizeof kept, "no checkpoint was written yet");
        return ct_error(CT_ERR_NUMERIC, "train: loss became %g at epoch %d step %lld (lr %g); stopped, %s; try a lower --lr",
                        st ? NAN : ls.loss, epoch + 1, (long long)r->step, lr, kept);
    }
    ss->loss = ls.loss;
    batch_top1(r, &ss->i2t, &ss->t2i);
    /* this process's rows of the global gradient */
    const int64_t row0 = (int64_t)r->rank * b * D;
    ct_model_zero_grad(im);
    ct_model_zero_grad(tx);
    if ((st = ct_model_backward(im, r->dzi + row0)) || (st = ct_model_backward(tx, r->dzt + row0))) return st;
    if (r->P > 1 && ((st = ct_dist_allreduce_f32(im->grad, im->nparam_floats)) ||
                     (st = ct_dist_allreduce_f32(tx->grad, tx->nparam_floats))))
        return st;
    if ((st = optim_step(r, lr))) return st;
    r->step++;
    return CT_OK;
}

/* ---- epochs ----------------------------------------------------------------------------- */

typedef struct {
    double t0, secs, loss, i2t, t2i;
    int64_t nsteps;
} epoch_stats;

static ct_status train_epoch(clip_run *r, int epoch, epoch_stats *es) {
    const ct_train_config *c = r->c;
    memset(es, 0, sizeof *es);
    es->t0 = now_s();
    ct_status st = ct_loader_start_epoch(&r->loader, epoch);
    for (ct_batch *bt; !st;) {
        if ((st = ct_loader_next(&r->loader, &bt)) || !bt) break;
        float lr = ct_lr_schedule(c->lr, r->step, r->warmup, r->total, c->final_lr_frac);
        step_stats ss = {0, 0, 0};
        if ((st = train_step(r, bt, epoch, lr, &ss))) break;
        es->nsteps++;
        es->loss += ss.loss;
        es->i2t += ss.i2t;
        es->t2i += ss.t2i;
        double el = now_s() - es->t0, ips = (double)(es->nsteps * r->B) / (el > 0 ? el : 1e-9);
        ct_train_event e = {.kind = CT_TRAIN_EVENT_STEP, .epoch = epoch + 1, .batch = bt->batch_no + 1,
                            .batches = r->steps_per_epoch, .loss = es->loss / es->nsteps,
                            .top1 = (es->i2t + es->t2i) / (2.0 * es->nsteps), .images_per_s = ips, .knn_top1 = -1};
        e.eta_s = (double)((r->last_epoch - epoch) * r->steps_per_epoch - es->nsteps) * r->B / (ips > 0 ? ips : 1);
        emit(r, &e);
    }
    es->secs = now_s() - es->t0;
    return st;
}

/* The metrics line, the EPOCH event and the checkpoint (rank 0). */
static ct_status log_epoch(clip_run *r, const epoch_stats *es, ct_train_result *res) {
    const ct_train_config *c = r->c;
    const double n = (double)(es->nsteps ? es->nsteps : 1), ips = (double)(es->nsteps * r->B) / es->secs;
    r->epoch++;
    res->epochs_done = r->epoch;
    res->steps = r->step;
    res->final_loss = es->loss / n;
    res->final_top1 = (es->i2t + es->t2i) / (2.0 * n);
    if (r->rank != 0) return CT_OK;
    char line[768];
    snprintf(line, sizeof line,
             "{\"epoch\": %d, \"step\": %lld, \"loss\": %.6f, \"top1\": %.6f, \"i2t_top1\": %.6f, \"t2i_top1\": %.6f, "
             "\"logit_scale\": %.6f, \"scale\": %.4f, \"lr\": %.6g, \"images_per_s\": %.1f, \"epoch_s\": %.2f}\n",
             r->epoch, (long long)r->step, res->final_loss, res->final_top1, es->i2t / n, es->t2i / n,
             r->m.logit_scale, exp((double)r->m.logit_scale),
             ct_lr_schedule(c->lr, r->step - 1, r->warmup, r->total, c->final_lr_frac), ips, es->secs);
    ct_status st = train_append_line(r->metrics, line);
    if (st) return st;
    ct_train_event e = {.kind = CT_TRAIN_EVENT_EPOCH, .epoch = r->epoch, .loss = res->final_loss,
                        .top1 = res->final_top1, .images_per_s = ips, .seconds = es->secs, .knn_top1 = -1};
    emit(r, &e);
    if ((st = clip_save(r->ckpt, r))) return st;
    r->last_good = r->ckpt;
    return CT_OK;
}

ct_status clip_train_run(const ct_train_config *c, ct_train_result *res) {
    clip_run r;
    memset(&r, 0, sizeof r);
    double t0 = now_s();
    ct_status st = setup(&r, c, res);
    for (int epoch = r.epoch; !st && epoch < r.last_epoch; epoch++) {
        epoch_stats es;
        if (!(st = train_epoch(&r, epoch, &es))) st = log_epoch(&r, &es, res);
    }
    res->seconds = now_s() - t0;
    run_free(&r, st != CT_OK);
    return st;
}
