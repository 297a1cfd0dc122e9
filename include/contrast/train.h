/* contrast/train.h: the trainer (SimCLR, MoCo, SupCon on images; SimCSE and
 * pairs on text) and the evaluation of a
 * trained encoder, as library calls; the CLI's train / eval / embed are thin
 * wrappers around these.
 *
 * A training run writes into its run folder cfg.out (claimed and locked before the
 * first step, see ct_train_run): checkpoint.safetensors (after every epoch,
 * atomically), metrics.jsonl (one JSON object per epoch, plus kNN monitor fields)
 * and eval.json (the final evaluation, atomically). Runs are reproducible: the same
 * seed, data and thread count give the same bits, and a run resumed from its
 * checkpoint ends with the parameters of the uninterrupted run. The library prints
 * nothing: progress comes as events to cfg.on_event. */
#ifndef CONTRAST_TRAIN_H
#define CONTRAST_TRAIN_H
#include "contrast/core.h"
#include "contrast/data.h"
#include "contrast/dist.h"
#include "contrast/model.h"
#include "contrast/optim.h"
#include "contrast/text.h"

#ifdef __cplusplus
extern "C" {
#endif
CT_BEGIN_API

/* Image methods: SIMCLR, MOCO, SUPCON. Text methods (model.encoder
 * CT_ENC_TRANSFORMER, data text:FILE, pairs:FILE or debian-descriptions):
 *   SIMCSE  every text twice through the transformer in one batch, the copies drawing
 *           different dropout masks; NT-Xent over the 2N embeddings (Gao et al. 2021)
 *   PAIRS   anchors and positives of pairs, in-batch negatives: ct_mnrl_loss
 *           (sentence-transformers' MultipleNegativesRankingLoss; cfg.symmetric adds
 *           the positive -> anchor direction) */
typedef enum {
    CT_METHOD_SIMCLR = 0,
    CT_METHOD_MOCO = 1,
    CT_METHOD_SUPCON = 2,
    CT_METHOD_SIMCSE = 3,
    CT_METHOD_PAIRS = 4,
    CT_METHOD_CLIP = 5
} ct_method;
const char *ct_method_name(ct_method m);
int ct_method_parse(const char *s); /* -1 if unknown */
int ct_method_is_text(ct_method m);
/* The dataset spec names text data (text:, pairs:, debian-descriptions). */
int ct_data_is_text(const char *spec);

struct ct_train_event;

typedef struct {
    ct_method method;
    char data[512];          /* dataset spec, e.g. "fashion-mnist", "cifar10:DIR" */
    char augment[512];       /* augmentation overrides (ct_augment_parse), "" = defaults */
    int view_size;           /* side of the training views: -1 = 5/7 of the images' (20 for 28),
                              * 0 = the images' size; augment "size=" sets it instead */
    int local_crops;         /* multi-crop: extra small views per sample (0 = off; SimCLR, SupCon) */
    int local_size;          /* their side: -1 = 3/7 of the images' (12 for 28), 0 = the images' */
    char local_augment[256]; /* overrides for the local crops' pipeline, on top of the global one
                              * with crop scale 0.05-0.4 ("" = just that) */
    ct_model_config model;   /* in_c/in_h/in_w are taken from the data */
    ct_optim_config optim;
    int epochs;
    int64_t batch;           /* samples per step (two views each) */
    float lr;                /* peak learning rate */
    float warmup_epochs;     /* linear warm-up length */
    float final_lr_frac;     /* cosine decays to lr * final_lr_frac */
    float temperature;
    uint64_t seed;
    int threads;             /* compute threads (0 = all cores) */
    int loader_threads;      /* augmentation threads */
    int64_t limit;           /* train on the first N images (0 = all) */
    int eval_every;          /* monitor every N epochs (0 = off): images kNN; text (debian-descriptions)
                              * retrieval and kNN of the held-out split */
    int knn_k;
    float knn_t;
    int final_probe;         /* run the linear probe at the end */
    float moco_m;            /* MoCo momentum */
    int64_t moco_k;          /* MoCo queue size (0 = min(4096, dataset size)) */
    int stop_after;          /* stop after this many epochs in total, as if interrupted (0 = no) */
    int sync_bn;             /* distributed: BatchNorm statistics over the global batch */
    int recompute;           /* recompute conv outputs in backward (ct_model_recompute_convs):
                              * less memory, more time, the same numbers */
    int dist_check;          /* distributed: verify parameters agree every N steps (0 = off) */
    int symmetric;           /* pairs: also the positive -> anchor direction */
    char out[512];           /* run folder, "" = a new runs/<timestamp>[-N] (see "Run folders") */
    int overwrite;           /* a non-empty out: replace its run (without a resume) */
    char resume[512];        /* checkpoint to resume from, "" = fresh */
    int resume_allow_changes; /* resume although options that decide the bits differ */
    /* Progress reports (rank 0 only; NULL = none): the library never prints. */
    void (*on_event)(const struct ct_train_event *e, void *ctx);
    void *event_ctx;
    /* CLIP (method clip) only; `model` is the image tower, model.head_out the shared
     * embedding size, model.context / model.vocab / model.dropout the text tower's too. */
    int image_size;          /* side of the images the image tower reads (default 32) */
    int text_width;          /* the text transformer's width C (default 128) */
    int text_depth;          /* its blocks (default 2) */
    int text_heads;          /* its attention heads (default 4) */
    ct_pool_kind text_pool;  /* its pooling: CT_POOL_EOT (default, as CLIP) or CT_POOL_MEAN */
} ct_train_config;

/* The recipe's defaults (README "Recipe"): SimCLR on Fashion-MNIST, CNN of width 32
 * (model.width 0: 32 for the cnn, 64 for resnet18) whose last stage has 16 x width
 * channels (model.last_width -1: 16 x width for the cnn, 0 for resnet18), head
 * 512/128, LARS at lr 4.5 with weight decay 1e-6, batch 256, temperature 0.1, 16
 * epochs with one of warm-up, views of 5/7 the image side, whitening 1e-4, kNN
 * monitor every 5 epochs and a final linear probe. */
void ct_train_config_default(ct_train_config *c);

/* What ct_train_run reports through cfg.on_event, as it happens. */
typedef enum {
    CT_TRAIN_EVENT_RESUMED = 0, /* the checkpoint `path` was loaded: epoch (completed) and step */
    CT_TRAIN_EVENT_WARNING = 1, /* `message`: e.g. the options a permitted resume changed */
    CT_TRAIN_EVENT_STEP = 2,    /* after every step: epoch, batch of batches, epoch means so far, speed, eta_s */
    CT_TRAIN_EVENT_EPOCH = 3    /* after every epoch, its metrics line written: loss, top1, speed, seconds,
                                 * knn_top1 (-1 when the monitor did not run) */
} ct_train_event_kind;

typedef struct ct_train_event {
    ct_train_event_kind kind;
    int epoch;               /* 1-based epoch the event is about (RESUMED: epochs completed) */
    int epochs;              /* cfg.epochs */
    int64_t step;            /* optimizer steps so far */
    int64_t batch, batches;  /* STEP: batch number in the epoch (1-based), batches per epoch */
    double loss, top1;       /* mean contrastive loss and top-1 of the epoch (so far) */
    double images_per_s, seconds, eta_s, knn_top1;
    const char *path;        /* RESUMED: the checkpoint */
    const char *message;     /* WARNING */
} ct_train_event;

typedef struct {
    int epochs_done;
    int64_t steps;
    double final_loss, final_top1;
    double knn_top1, probe_top1;  /* final evaluation (-1 when not run) */
    double knn_top1_raw;          /* kNN on the features before whitening (-1: no whitening) */
    double r1, r10, mrr10;        /* text runs with a held-out split: retrieval (-1 otherwise) */
    double seconds;
    size_t arena_bytes;           /* activation arena of the model the views train (ct_model_prepare) */
    size_t local_arena_bytes;     /* that of the local crops' twin (0 without local crops) */
    char out[512];                /* the run folder written (cfg.out or the default's unique name) */
} ct_train_result;

/* Trains as configured. Under mpirun (ct_dist_size() > 1) each process takes a
 * 1/P slice of every global batch, the objective sees the embeddings of the whole
 * global batch, gradients are summed with one all-reduce, and rank 0 alone writes
 * files and reports events. On a non-finite loss it stops with CT_ERR_NUMERIC and
 * keeps the last good checkpoint (the message names it, or says there is none).
 *
 * Before a step runs it refuses (CT_ERR_ARG unless said otherwise), naming the file:
 *   - a configuration whose parameters, optimizer state and a lower bound of its
 *     activations exceed the memory (physical, or RLIMIT_AS if lower): CT_ERR_NOMEM
 *     with the GiB it would need;
 *   - run folders: out is a regular file or cannot be written (CT_ERR_IO); out is
 *     locked by another run (out/.lock, flock; released at the end); out holds files
 *     and neither resume nor overwrite is set; overwrite with resume. With overwrite
 *     the previous checkpoint.safetensors, metrics.jsonl and eval.json are removed.
 *     out "" makes runs/<timestamp>, with -2, -3, ... if that exists;
 *   - resume: a checkpoint of another model or method, a counter out of range
 *     (CT_ERR_FORMAT), options that decide the bits (data, augment, batch, lr,
 *     optimizer, weight decay, temperature, seed, limit, view and local crop
 *     settings, MoCo momentum) that differ from the checkpoint's unless
 *     resume_allow_changes (then a WARNING event lists them), and a checkpoint
 *     already at or past epochs (or stop_after): there is nothing to train.
 *     metrics.jsonl keeps the lines of the epochs up to the checkpoint's.
 * A run that fails before writing anything leaves no folder behind. */
ct_status ct_train_run(const ct_train_config *c, ct_train_result *res);

/* ---- evaluation of a trained model -------------------------------------------- */
/* Rebuilds the model from a checkpoint file alone (config in its metadata). */
ct_status ct_checkpoint_load_model(ct_model *m, const char *path);

/* What ct_extract_features returns: the encoder's features h, whitened when the
 * model carries a whitening (model.h, cfg.whiten); h as the encoder computes it; or
 * the head's output z. */
typedef enum { CT_FEAT_H = 0, CT_FEAT_Z = 1, CT_FEAT_H_RAW = 2 } ct_feature_kind;

/* Features of every sample of ds, eval mode, no augmentation. out: (ds->n, dim),
 * allocated with ct_alloc. */
ct_status ct_extract_features(float **out, int64_t *dim, ct_model *m, const ct_dataset *ds,
                              ct_feature_kind which, int64_t batch);

/* Features of n model inputs, as ct_extract_features computes them for a dataset of
 * those images (eval mode; the same numbers bit for bit, for the same batch): x holds
 * the images already scaled to [0, 1] and normalised per channel, (x - mean[c]) /
 * std[c] with the dataset's mean and std (a checkpoint records them as data.mean /
 * data.std). The forward runs `batch` samples at a time (the model's arena is
 * prepared for that many); CT_FEAT_H then applies the model's whitening, when it has
 * one, to all n rows at once, and is CT_ERR_STATE when that whitening was fit for
 * older parameters (m->whiten_fitted == 0: fit it first with ct_model_fit_whitening,
 * or ask for CT_FEAT_H_RAW).
 *   out: (n, dim)   x: (n, in_c, in_h, in_w)   dim: ct_model_embed_dim for CT_FEAT_Z,
 *   else ct_model_feature_dim. */
ct_status ct_model_embed(ct_model *m, const float *x, int64_t n, ct_feature_kind which, int64_t batch,
                         float *out);

/* Fits the model's whitening (cfg.whiten > 0) to its raw features of `train`
 * (eval mode) and stores it in the model's buffers (contrast train does this at
 * the end of a run and at each kNN monitor; contrast embed when a checkpoint's
 * whitening is older than its parameters). */
ct_status ct_model_fit_whitening(ct_model *m, const ct_dataset *train);

typedef struct {
    double knn_top1, knn_top5, probe_top1;  /* -1 when not computed */
    double knn_top1_raw;  /* whitened: kNN top-1 of the features before whitening; else -1 */
    int whitened;         /* the features were whitened */
    int whitening_refit;  /* the model's whitening was older than its parameters and was refit */
    int64_t n_train, n_test, dim;
} ct_eval_result;

typedef struct {
    char data[512];  /* dataset spec: train split = memory bank, test split = queries */
    int64_t limit;   /* the first N training images (0 = all) */
    int knn_k;       /* kNN neighbours */
    float knn_t;     /* kNN vote temperature */
    int probe;       /* also the linear probe */
    int raw;         /* normalised raw pixels instead of a model */
    int whiten;      /* the model's whitened features (if it has a whitening) */
} ct_eval_config;

/* fashion-mnist, all images, k 200, T 0.1, no probe, the model, whitened. */
void ct_eval_config_default(ct_eval_config *c);

/* ---- text checkpoints ------------------------------------------------------------
 * A checkpoint of a text method holds its tokenizer (metadata "tokenizer",
 * ct_tokenizer_serialize's text), so it embeds text alone:
 *   ct_model m; ct_tokenizer *tok;
 *   ct_checkpoint_load_model(&m, path); ct_checkpoint_load_tokenizer(&tok, path);
 *   ct_embed_texts(out, &m, tok, texts, lens, n, CT_FEAT_H, 0);   // out: (n, feature_dim) */

/* The checkpoint's tokenizer (validated as untrusted input); CT_ERR_FORMAT when the
 * file has none (an image checkpoint). *tok is freed with ct_tokenizer_free. */
ct_status ct_checkpoint_load_tokenizer(ct_tokenizer **tok, const char *path);

/* Embeddings of n texts (texts[i] has lens[i] bytes), eval mode, batch rows at a
 * time (0: 256): each text as BOS, its tokens, EOS, cut to the model's context.
 * which: CT_FEAT_H (the encoder's pooled features; what retrieval uses) or
 * CT_FEAT_Z (the head's output). out: (n, dim), the caller's. CT_ERR_ARG for an
 * image model or a tokenizer with more ids than the model's vocabulary. */
ct_status ct_embed_texts(float *out, ct_model *m, const ct_tokenizer *tok, const char *const *texts,
                         const size_t *lens, int64_t n, ct_feature_kind which, int64_t batch);

typedef struct {
    double r1, r10, mrr10;        /* anchor -> positive retrieval among all the test pairs */
    double knn_top1, probe_top1;  /* label from the anchor's features (-1: no labels / not run) */
    int64_t n_pairs, n_gallery, n_train;
} ct_text_eval_result;

/* Evaluates a text model on `test`'s pairs: each anchor ranks the distinct positive
 * texts by cosine of the encoder's features (R@1, R@10, MRR@10, which is mAP@10
 * with one relevant item). With labels in both splits (train may be NULL): kNN
 * (k, knn_t) and, with probe, the linear probe of the label from the anchors'
 * features, trained on `train`'s pairs. */
ct_status ct_evaluate_text(ct_text_eval_result *r, ct_model *m, const ct_tokenizer *tok, const ct_text_dataset *train,
                           const ct_text_dataset *test, int knn_k, float knn_t, int probe);

/* ---- a search index: texts and their unit-length embeddings ------------------------
 * A safetensors file: embeddings (n, D) F32, offsets (n + 1) I64 and texts U8 (text
 * i is bytes offsets[i] .. offsets[i+1]), metadata format "contrast-text-index" and
 * the checkpoint it was built with. Written atomically; read as untrusted. */
ct_status ct_text_index_build(const char *path, ct_model *m, const ct_tokenizer *tok, const char *const *texts,
                              const size_t *lens, int64_t n, const char *checkpoint);
typedef struct ct_text_index ct_text_index;
ct_status ct_text_index_load(ct_text_index **out, const char *path);
void ct_text_index_free(ct_text_index *ix); /* NULL-safe */
int64_t ct_text_index_size(const ct_text_index *ix);
int64_t ct_text_index_dim(const ct_text_index *ix);
/* Text i's bytes (*len of them, not NUL-terminated), i in [0, size). */
const char *ct_text_index_text(const ct_text_index *ix, int64_t i, size_t *len);
/* The k texts most similar to the query q (D features, any length) by cosine:
 * top (k), score (k) best first, ties to the lower index; *found = min(k, size).
 * O(size * D). */
ct_status ct_text_index_query(const ct_text_index *ix, const float *q, int64_t D, int64_t k, int64_t *top,
                              float *score, int64_t *found);

/* kNN (and with c->probe the linear probe) of train-split features against the
 * test split. c->raw evaluates normalised pixels instead of a model (m unused).
 * c->whiten and a model with a whitening: the whitened features (the whitening
 * refit on the train split if the checkpoint's is older than its parameters, which
 * r->whitening_refit reports), and knn_top1_raw for the features before it;
 * c->whiten == 0: the raw features h. */
ct_status ct_evaluate(ct_eval_result *r, ct_model *m, const ct_eval_config *c);

/* ---- layout of the public structs, for bindings (python/contrast) -------------
 * ct_abi_layout("ct_train_config", "lr") is offsetof(ct_train_config, lr), and with
 * field NULL sizeof(ct_train_config); -1 for a type or field not in the table.
 * Covers ct_model_config, ct_optim_config, ct_train_config, ct_train_event,
 * ct_train_result, ct_loss_stats, ct_pair (every field) and ct_model (size only).
 * ct_abi_fields writes up to cap of type's field names, in declaration order, into
 * names and returns how many it has. */
int64_t ct_abi_layout(const char *type, const char *field);
int ct_abi_fields(const char *type, const char **names, int cap);

CT_END_API
#ifdef __cplusplus
}
#endif
#endif
