/* internal.h: what the trainer's files share (not part of the public API).
 *
 *   checkpoint.c  the checkpoint format: save, validate for a resume, resume, load a model
 *   features.c    feature extraction, the whitening fit, evaluation
 *   rundir.c      the run folder: unique default names, the lock, refusing to mix runs
 *   clip.c        CLIP: two towers, its data, loop and checkpoint; the ct_clip API
 *   text.c        the text methods' data, tokenizer and batches; text embeddings, evaluation, index
 *   train.c       the loop: setup, train_step, log_epoch, final_eval */
#ifndef CONTRAST_TRAIN_INTERNAL_H
#define CONTRAST_TRAIN_INTERNAL_H
#include "contrast/eval.h"
#include "contrast/io.h"
#include "contrast/loss.h"
#include "contrast/text.h"
#include "contrast/train.h"

/* ---- checkpoint.c --------------------------------------------------------------- */

/* What a checkpoint holds besides the configuration: pointers into the run. */
typedef struct {
    const ct_train_config *c;
    ct_model *m, *key;        /* key: MoCo momentum encoder or NULL */
    ct_optim *opt;
    ct_moco_queue *queue;     /* MoCo or NULL */
    int epoch;                /* epochs completed */
    int64_t step;
    int whiten_epoch;         /* epochs completed when the whitening was fit (0: never) */
    const ct_dataset *data;   /* the training split: its normalisation goes into the metadata
                               * (data.mean, data.std); NULL: not recorded */
    const char *tokenizer;    /* text methods: ct_tokenizer_serialize's text, else NULL */
} ckpt_state;

/* A resumable checkpoint's counters, each validated against its range. */
typedef struct {
    int epoch;                /* epochs completed, 0..CKPT_MAX_EPOCHS */
    int64_t step, optim_step; /* 0..CKPT_MAX_STEPS */
    int whiten_epoch;         /* 0..epoch */
} ckpt_meta;

#define CKPT_MAX_EPOCHS 1000000
#define CKPT_MAX_STEPS ((int64_t)1 << 50)

/* Writes the run's state to path (atomically, ct_st_write). */
ct_status ckpt_save(const char *path, const ckpt_state *s);

/* Opens the checkpoint `path` for a resume of configuration c with model mc (in_*
 * from the data) and checks it before anything is allocated: the same model and
 * method, every counter in range, and the training options that decide the bits
 * (data, batch, lr, optimizer, temperature, seed, ...). Differences are refused
 * unless c->resume_allow_changes; then they are described in `changes` ("" when
 * none). */
ct_status ckpt_check(const char *path, const ct_train_config *c, const ct_model_config *mc, ckpt_meta *meta,
                     char *changes, size_t changes_cap);

/* Loads parameters, buffers, optimizer state, MoCo key encoder and queue into s
 * (built for the configuration ckpt_check accepted) and sets its counters. */
ct_status ckpt_resume(const char *path, ckpt_state *s);

/* Pieces the CLIP checkpoint (clip.c) shares: an integer metadata value `key` in
 * [lo, hi] (dflt when absent, required when dflt < lo); the model configuration
 * stored under "<prefix>model.*"; that such a model fits in the file's F32 values
 * (checked before building it); the model's parameters and buffers, every tensor
 * named "<prefix><name>" with its shape. */
ct_status ckpt_meta_int(const ct_st_file *f, const char *key, long long lo, long long hi, long long dflt,
                        long long *out);
ct_status ckpt_model_config(const ct_st_file *f, const char *prefix, ct_model_config *mc);
ct_status ckpt_check_model_fits(const ct_st_file *f, const ct_model_config *mc);
ct_status ckpt_load_model_tensors(const ct_st_file *f, ct_model *m, const char *prefix);

/* Re-reports the current error as "<path>: <what><message>". */
ct_status train_error_in(ct_status st, const char *path, const char *what);

/* ---- train.c ------------------------------------------------------------------- */

/* Appends `line` to the file `path` (metrics.jsonl), CT_ERR_IO naming it on failure. */
ct_status train_append_line(const char *path, const char *line);

/* ---- features.c ----------------------------------------------------------------- */

/* Evaluates the model's features of tr against te. With whiten != 0 and a model
 * that carries a whitening: kNN on the raw features first (knn_top1_raw; skipped
 * without raw_knn), then the whitening, fit on tr's features first when fit != 0,
 * then kNN (and probe) on the whitened features. */
ct_status features_eval_model(ct_eval_result *r, ct_model *m, const ct_dataset *tr, const ct_dataset *te, int k,
                              float T, int probe, int whiten, int fit, int raw_knn);

/* ---- rundir.c ------------------------------------------------------------------- */

typedef struct {
    char dir[512];  /* the run folder (c->out, or the unique default runs/<timestamp>[-N]) */
    int lock_fd;    /* open and flock'ed <dir>/.lock, -1 when none */
    int created;    /* the folder was made by this run */
} run_dir;

/* Claims the run folder before training: creates it (and its parents) or, for the
 * default name, a new runs/<timestamp>[-N] made exclusively; refuses a regular file,
 * an unwritable folder, one locked by another run, and a non-empty one unless
 * resuming (c->resume) or c->overwrite (which removes the previous run's
 * checkpoint, metrics and evaluation). Resuming at epoch `resume_epoch` keeps the
 * metrics.jsonl lines of epochs up to it (a run interrupted after writing an
 * epoch's line but before its checkpoint would otherwise log that epoch twice). */
ct_status run_dir_claim(run_dir *d, const ct_train_config *c, int resume_epoch);

/* Unlocks; after a failed run removes the folder if this run made it and left it empty. */
void run_dir_release(run_dir *d, int failed);

/* ---- clip.c ---------------------------------------------------------------------- */

/* The whole `--method clip` run (ct_train_run hands it over after its common checks). */
ct_status clip_train_run(const ct_train_config *c, ct_train_result *res);

/* ---- text.c ---------------------------------------------------------------------- */

typedef struct {
    ct_text_dataset train, test;  /* test: the held-out split (debian-descriptions), else empty */
    int have_test;
    ct_text_dataset texts_view;   /* SimCSE: train's texts without its pairs (shallow) */
    ct_tokenizer *tok;
    char *tok_text;               /* its serialisation, stored in the checkpoint */
    int64_t T;                    /* tokens per text */
    int32_t *ids;                 /* (train.ntexts, T) every training text, tokenized once */
    uint8_t *valid;               /* (train.ntexts, T) */
    int32_t *bids;                /* (2 b, T) the step's batch: rows [0, b) then [b, 2b) */
    uint8_t *bvalid;              /* (2 b, T) */
    ct_text_epoch plan;           /* the batches of epoch `epoch` (-1: none) */
    int epoch;
} text_state;

/* Loads c->data's training split (and the held-out one, if any), trains the
 * tokenizer on the training texts (vocabulary c->model.vocab) or reads it from
 * c->resume, and tokenizes every training text into T ids (BOS, text, EOS). */
ct_status text_setup(text_state *t, const ct_train_config *c, int64_t T);
/* The batches of `epoch` (no text twice in a batch), planned once per epoch. */
ct_status text_plan(text_state *t, const ct_train_config *c, int epoch);
/* Fills bids/bvalid with this rank's b items of planned batch `batch`: anchors
 * then positives (pairs), or the texts twice (SimCSE). */
void text_batch(text_state *t, ct_method method, int64_t batch, int64_t b, int rank);
void text_free(text_state *t);
#endif
