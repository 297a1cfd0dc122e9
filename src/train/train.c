/* train.c: the training loop for SimCLR, MoCo and SupCon on images, SimCSE and
 * pairs on text.
 *
 * One step (train_step): the loader hands two augmented views of B samples (x: 2B
 * images), or text.c two rows of B token sequences (the texts twice for SimCSE,
 * anchors and positives for pairs); the encoder + head maps them to z; the objective gives the loss and
 * dL/dz; the backward pass fills the flat gradient buffer; the optimizer updates
 * the flat parameter buffer. Everything is allocated before the first step
 * (setup), and ct_train_run reads as setup, then per epoch train_epoch and
 * log_epoch, then final_eval.
 *
 * Exact resume: randomness is counter-based (seed, epoch, sample, view), the
 * checkpoint after each epoch holds parameters, BN buffers, optimizer moments, the
 * MoCo key encoder and queue, and the step count, so resuming from epoch k repeats
 * the remaining epochs bit for bit (checkpoint.c). */
#include "internal.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

const char *ct_method_name(ct_method m) {
    switch (m) {
    case CT_METHOD_SIMCLR: return "simclr";
    case CT_METHOD_MOCO: return "moco";
    case CT_METHOD_SUPCON: return "supcon";
    case CT_METHOD_SIMCSE: return "simcse";
    case CT_METHOD_PAIRS: return "pairs";
    case CT_METHOD_CLIP: return "clip";
    }
    return "?";
}

int ct_method_parse(const char *s) {
    if (!strcmp(s, "simclr")) return CT_METHOD_SIMCLR;
    if (!strcmp(s, "moco")) return CT_METHOD_MOCO;
    if (!strcmp(s, "supcon")) return CT_METHOD_SUPCON;
    if (!strcmp(s, "simcse")) return CT_METHOD_SIMCSE;
    if (!strcmp(s, "pairs")) return CT_METHOD_PAIRS;
    if (!strcmp(s, "clip")) return CT_METHOD_CLIP;
    return -1;
}

void ct_train_config_default(ct_train_config *c) {
    memset(c, 0, sizeof *c);
    c->method = CT_METHOD_SIMCLR;
    snprintf(c->data, sizeof c->data, "fashion-mnist");
    ct_model_config_default(&c->model);
    c->model.width = 0;       /* the encoder's: 32 for the cnn, 64 for resnet18 */
    c->model.last_width = -1; /* 16 x width for the cnn */
    c->model.whiten = 1e-4f;
    ct_optim_config_default(&c->optim, CT_OPTIM_LARS);
    c->optim.weight_decay = 1e-6f;
    c->epochs = 16;
    c->batch = 256;
    c->lr = 4.5f;
    c->warmup_epochs = 1;
    c->final_lr_frac = 0.0f;
    c->temperature = 0.1f;
    c->view_size = -1;
    c->local_size = -1;
    c->seed = 0;
    c->threads = 0;
    c->loader_threads = 1;
    c->eval_every = 5;
    c->knn_k = 200;
    c->knn_t = 0.1f;
    c->final_probe = 1;
    c->moco_m = 0.99f;
    c->image_size = 32;
    c->text_width = 128;
    c->text_depth = 2;
    c->text_heads = 4;
    c->text_pool = CT_POOL_EOT;
}

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* ---- the run's state ------------------------------------------------------------------ */

typedef struct {
    const ct_train_config *c;
    int P, rank;              /* processes, this one's rank */
    int nloc, V, moco;        /* local crops per sample, views per sample, MoCo */
    int text;                 /* a text method: tx holds the data, tokenizer and batches */
    text_state tx;
    int64_t B, b, D;          /* global batch, this process's share, embedding size */
    size_t img;               /* floats per training view */
    ct_dataset train, test;
    float *zg, *zt, *dzg, *kg, *labf; /* distributed: global embeddings, gather scratch, global dz, keys, labels */
    int32_t *labg;
    float *zc;          /* multi-crop: this process's embeddings of all views, (views*b, D) */
    int32_t *idx;       /* multi-crop SimCLR: sample numbers 0..B-1 as labels (positives = same sample) */
    ct_augment aug, laug;
    ct_model m, key, t, tl; /* t: m at the views' size when it differs from the images'; tl: at the local crops' */
    ct_model *tm;           /* the model the views train: &t or &m */
    ct_optim opt;
    ct_moco_queue queue;
    ct_loader loader;
    void *ws;
    size_t ws_bytes;
    float *dz;
    int have_key, have_queue, have_loader, have_opt, have_model, have_t, have_tl;
    ckpt_state cs;
    run_dir rd;               /* rank 0: the claimed run folder */
    char ckpt[600], metrics[600];
    const char *last_good;    /* the newest checkpoint on disk for this run, NULL when none */
    int64_t steps_per_epoch, total, warmup;
    int last_epoch;           /* the run ends after this epoch (epochs, or stop_after) */
} run_state;

/* Per-epoch sums of the steps' statistics. */
typedef struct {
    double t0, secs, loss, top1, pos, neg;
    int64_t nsteps;
} epoch_stats;

static void run_free(run_state *r, int failed) {
    if (r->have_loader) ct_loader_free(&r->loader);
    if (r->have_queue) ct_moco_queue_free(&r->queue);
    if (r->have_opt) ct_optim_free(&r->opt);
    if (r->have_key) ct_model_free(&r->key);
    if (r->have_t) ct_model_free(&r->t);
    if (r->have_tl) ct_model_free(&r->tl);
    if (r->have_model) ct_model_free(&r->m);
    ct_free(r->ws);
    ct_free(r->dz);
    ct_free(r->zg);
    ct_free(r->zt);
    ct_free(r->dzg);
    ct_free(r->kg);
    ct_free(r->labf);
    ct_free(r->labg);
    ct_free(r->zc);
    ct_free(r->idx);
    ct_dataset_free(&r->train);
    ct_dataset_free(&r->test);
    if (r->text) text_free(&r->tx);
    run_dir_release(&r->rd, failed);
}

static void emit(const run_state *r, ct_train_event *e) {
    if (r->rank != 0 || !r->c->on_event) return;
    e->epochs = r->c->epochs;
    e->step = r->cs.step;
    r->c->on_event(e, r->c->event_ctx);
}

ct_status train_append_line(const char *path, const char *line) {
    FILE *f = fopen(path, "a");
    if (!f) return ct_error(CT_ERR_IO, "%s: cannot open for appending: %s", path, strerror(errno));
    int bad = fputs(line, f) < 0;
    bad |= fclose(f) != 0;
    if (bad) return ct_error(CT_ERR_IO, "%s: write failed: %s", path, strerror(errno));
    return CT_OK;
}

/* kNN monitor (final = 0) or the final evaluation: features of the (limited) train
 * split against the test split; the whitening (if the model has one) is fit on the
 * train split's features first. The kNN before whitening, which costs a second
 * kNN, is reported at the end only. The arena may be sized for the eval batch
 * afterwards; training re-prepares as needed. */
static ct_status monitor(run_state *r, int final, ct_eval_result *er) {
    const ct_train_config *c = r->c;
    return features_eval_model(er, &r->m, &r->train, &r->test, c->knn_k, c->knn_t, final && c->final_probe, 1, 1,
                               final);
}

/* Global embeddings for the objective: every process's local rows (views x b, D)
 * all-gathered and laid out as one process would hold them (views x B, D), where
 * global sample r*b + j is sample j of rank r.  tmp: (P * views * b * D) */
static ct_status gather_rows(float *zg, float *tmp, const float *z, int views, int64_t b, int64_t D, int P) {
    ct_status st = ct_dist_allgather_f32(tmp, z, (size_t)(views * b * D));
    if (st) return st;
    const int64_t B = b * P;
    for (int r = 0; r < P; r++)
        for (int v = 0; v < views; v++)
            memcpy(zg + (v * B + r * b) * D, tmp + ((int64_t)(r * views + v) * b) * D, (size_t)(b * D) * sizeof(float));
    return CT_OK;
}

/* This process's rows of the global gradient (the inverse of gather_rows). */
static void scatter_rows(float *dz, const float *dzg, int views, int64_t b, int64_t D, int rank, int P) {
    const int64_t B = b * P;
    for (int v = 0; v < views; v++)
        memcpy(dz + (v * b) * D, dzg + (v * B + rank * b) * D, (size_t)(b * D) * sizeof(float));
}

/* FNV-1a over the flat parameters: a cheap fingerprint that every rank must share. */
static uint64_t param_hash(const ct_model *m) {
    uint64_t h = 1469598103934665603ull;
    const unsigned char *p = (const unsigned char *)m->param;
    for (size_t i = 0; i < m->nparam_floats * sizeof(float); i++) h = (h ^ p[i]) * 1099511628211ull;
    return h;
}

/* ---- setup -------------------------------------------------------------------------- */

/* A training view's side for an image side: size > 0 itself, 0 the image's, -1
 * num/7 of it (smaller views cost less per step: 20x20 of 28x28 halves it). */
static int view_side(int size, int side, int num) {
    return size > 0 ? size : size == 0 ? side : (num * side + 3) / 7;
}

/* The pipeline `a` for one kind of view: overrides from `spec`, whose size= must not
 * clash with an explicit `size` (>= 0); otherwise view_side(size, ..., num). */
static ct_status view_pipeline(ct_augment *a, const ct_dataset *ds, const char *spec, int size, int num,
                               const char *what) {
    a->out_h = a->out_w = 0;
    ct_status st = spec[0] ? ct_augment_parse(a, spec) : CT_OK;
    if (st) return st;
    if (a->out_h && size >= 0)
        return ct_error(CT_ERR_ARG, "train: the %s size is set twice (augment size= and %s size %d)", what, what, size);
    if (!a->out_h) {
        a->out_h = view_side(size, ds->h, num);
        a->out_w = view_side(size, ds->w, num);
    }
    return ct_augment_check(a, ds);
}

/* The datasets and the views' pipelines. */
static ct_status load_data(run_state *r) {
    const ct_train_config *c = r->c;
    ct_status st = ct_dataset_load(&r->train, c->data, 1);
    if (!st) st = ct_dataset_load(&r->test, c->data, 0);
    if (st) return st;
    ct_dataset_limit(&r->train, c->limit);
    if (r->train.n < c->batch)
        return ct_error(CT_ERR_ARG, "train: %lld training images, fewer than one batch of %lld", (long long)r->train.n,
                        (long long)c->batch);
    ct_augment_for_dataset(&r->aug, &r->train);
    if ((st = view_pipeline(&r->aug, &r->train, c->augment, c->view_size, 5, "view"))) return st;
    if (r->nloc < 0 || r->nloc > 64 || (r->nloc && r->moco))
        return ct_error(CT_ERR_ARG, "train: local crops must be 0..64 and need simclr or supcon (got %d with %s)",
                        r->nloc, ct_method_name(c->method));
    if (r->nloc) {
        /* local crops: the views' pipeline with tight crops (SwAV's 0.05-0.4), then overrides */
        r->laug = r->aug;
        r->laug.crop = 1;
        r->laug.crop_scale[0] = 0.05f;
        r->laug.crop_scale[1] = 0.4f;
        if ((st = view_pipeline(&r->laug, &r->train, c->local_augment, c->local_size, 3, "local crop"))) return st;
    }
    r->img = (size_t)(r->train.c * r->aug.out_h * r->aug.out_w);
    return CT_OK;
}

/* The model's configuration: the images' shape (text: the tokenizer's vocabulary
 * and the context), the seed, the recipe's widths. */
static void model_config(const run_state *r, ct_model_config *mc) {
    *mc = r->c->model;
    if (r->text) {
        mc->vocab = ct_tokenizer_vocab_size(r->tx.tok);
        mc->in_c = 1;
        mc->in_h = mc->context;
        mc->in_w = 1;
        mc->seed = r->c->seed;
        if (mc->width <= 0) mc->width = 256;
        if (mc->last_width < 0) mc->last_width = 0;
        return;
    }
    mc->in_c = r->train.c;
    mc->in_h = r->train.h;
    mc->in_w = r->train.w;
    mc->seed = r->c->seed;
    if (mc->width <= 0) mc->width = mc->encoder == CT_ENC_RESNET18 ? 64 : mc->encoder == CT_ENC_VIT ? 128 : 32;
    if (mc->last_width < 0) mc->last_width = mc->encoder == CT_ENC_CNN ? 16 * mc->width : 0;
}

/* Refuses, before allocating, a configuration that cannot fit: parameters with
 * their gradients and optimizer moments (and MoCo's key encoder), from
 * ct_model_count, plus a lower bound of the activations: the first convolution's
 * output (stride 1, `width` channels) for every view of the batch, which the arena
 * must hold. Compared with the physical memory, or RLIMIT_AS if that is lower. */
static ct_status check_memory(const run_state *r, const ct_model_config *mc) {
    size_t nparam;
    ct_status st = ct_model_count(mc, &nparam);
    if (st) return st;
    const double gib = 1024.0 * 1024.0 * 1024.0;
    double copies = 2 + (r->c->optim.type == CT_OPTIM_ADAMW ? 2 : 1) + (r->moco ? 2 : 0);
    double params = 4.0 * (double)nparam * copies;
    /* activations per sample: pixels of its views, or its two sequences' tokens */
    double pixels = r->text ? 2.0 * mc->context
                            : 2.0 * r->aug.out_h * r->aug.out_w + (double)r->nloc * r->laug.out_h * r->laug.out_w;
    double acts = 4.0 * (double)mc->width * (double)r->b * pixels;
    double have = (double)sysconf(_SC_PHYS_PAGES) * (double)sysconf(_SC_PAGE_SIZE);
    struct rlimit rl;
    if (getrlimit(RLIMIT_AS, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY && (double)rl.rlim_cur < have)
        have = (double)rl.rlim_cur;
    if (have > 0 && params + acts > have)
        return ct_error(CT_ERR_NOMEM,
                        "train: this configuration needs at least %.1f GiB (%zu parameters: %.1f GiB with gradients "
                        "and optimizer state; activations of a batch of %lld: at least %.1f GiB), more than the %.1f "
                        "GiB of memory; lower --width, --batch or the view size",
                        (params + acts) / gib, nparam, params / gib, (long long)r->b, acts / gib, have / gib);
    return CT_OK;
}

/* The model, its twins at the views' and local crops' sizes, the optimizer, and
 * for MoCo the key encoder and the queue. */
static ct_status build_models(run_state *r, const ct_model_config *mc, ct_train_result *res) {
    const ct_train_config *c = r->c;
    ct_status st = ct_model_init(&r->m, mc);
    if (st) return st;
    r->have_model = 1;
    r->D = ct_model_embed_dim(&r->m);
    if (c->sync_bn && r->P > 1) r->m.bn_reduce = ct_dist_reduce_cb;
    /* Views of another size than the images (--view-size, augment size=) train a twin of the
     * model over the same parameters; evaluation uses the images' size. */
    r->tm = &r->m;
    if (!r->text && (r->aug.out_h != r->train.h || r->aug.out_w != r->train.w)) {
        if ((st = ct_model_init_resized(&r->t, &r->m, r->aug.out_h, r->aug.out_w))) return st;
        r->have_t = 1;
        r->tm = &r->t;
    }
    if (c->recompute) { /* activation checkpointing (bits unchanged) */
        ct_model_recompute_convs(r->tm);
        ct_model_recompute_blocks(r->tm);
    }
    if ((st = ct_model_prepare(r->tm, r->moco ? r->b : 2 * r->b))) return st;
    if (r->nloc) { /* local crops train their own twin (always smaller views, or the images') */
        if ((st = ct_model_init_resized(&r->tl, &r->m, r->laug.out_h, r->laug.out_w))) return st;
        r->have_tl = 1;
        if (c->recompute) {
            ct_model_recompute_convs(&r->tl);
            ct_model_recompute_blocks(&r->tl);
        }
        if ((st = ct_model_prepare(&r->tl, r->nloc * r->b))) return st;
    }
    res->arena_bytes = r->tm->arena.cap;
    res->local_arena_bytes = r->nloc ? r->tl.arena.cap : 0;
    if ((st = ct_optim_init(&r->opt, &c->optim, r->m.nparam_floats))) return st;
    r->have_opt = 1;
    if (!r->moco) return CT_OK;
    ct_model_config kc = *mc;
    kc.in_h = r->aug.out_h;
    kc.in_w = r->aug.out_w;
    if ((st = ct_model_init(&r->key, &kc))) return st;
    r->have_key = 1;
    memcpy(r->key.param, r->m.param, r->m.nparam_floats * sizeof(float));
    memcpy(r->key.buf, r->m.buf, r->m.nbuf_floats * sizeof(float));
    r->key.bn_reduce = r->m.bn_reduce;
    if ((st = ct_model_prepare(&r->key, r->b))) return st;
    int64_t K = c->moco_k > 0 ? c->moco_k : (r->train.n < 4096 ? r->train.n : 4096);
    if ((st = ct_moco_queue_init(&r->queue, K, r->D, c->seed))) return st;
    r->have_queue = 1;
    return CT_OK;
}

/* The objective's workspace, dL/dz and the multi-crop and distributed buffers. */
static ct_status alloc_buffers(run_state *r) {
    const int64_t B = r->B, b = r->b, D = r->D, V = r->V;
    if (r->moco) r->ws_bytes = ct_moco_workspace_size(B, r->queue.k, D);
    else if (r->c->method == CT_METHOD_PAIRS) r->ws_bytes = ct_clip_workspace_size(B, D);
    else if (r->c->method == CT_METHOD_SUPCON || r->nloc) r->ws_bytes = ct_supcon_workspace_size(B, V, D);
    else r->ws_bytes = ct_ntxent_workspace_size(B, D);
    r->ws = ct_alloc(r->ws_bytes ? r->ws_bytes : 1);
    r->dz = ct_alloc((size_t)(V * B * D) * sizeof(float));
    int bad = !r->ws || !r->dz;
    if (r->nloc) {
        r->zc = ct_alloc((size_t)(V * b * D) * sizeof(float));
        r->idx = ct_alloc((size_t)B * sizeof(int32_t));
        bad |= !r->zc || !r->idx;
        for (int64_t i = 0; r->idx && i < B; i++) r->idx[i] = (int32_t)i;
    }
    if (r->P > 1) {
        size_t g = (size_t)(V * B * D) * sizeof(float);
        r->zg = ct_alloc(g);
        r->zt = ct_alloc(g);
        r->dzg = ct_alloc(g);
        r->kg = ct_alloc(g);
        r->labf = ct_alloc((size_t)B * sizeof(float));
        r->labg = ct_alloc((size_t)B * sizeof(int32_t));
        bad |= !r->zg || !r->zt || !r->dzg || !r->kg || !r->labf || !r->labg;
    }
    return bad ? ct_error(CT_ERR_NOMEM, "train: no memory for the objective's buffers (batch %lld)", (long long)B)
               : CT_OK;
}

/* The checks a resume makes before anything is allocated or written (ckpt_check),
 * and the epoch it continues from. */
static ct_status check_resume(run_state *r, const ct_model_config *mc, ckpt_meta *meta) {
    const ct_train_config *c = r->c;
    char changes[1024];
    ct_status st = ckpt_check(c->resume, c, mc, meta, changes, sizeof changes);
    if (st) return st;
    if (meta->epoch >= r->last_epoch)
        return ct_error(CT_ERR_ARG,
                        "%s: the checkpoint has trained %d epochs and this run ends at epoch %d (epochs %d%s): there "
                        "is nothing to train; to continue it, pass a larger --epochs",
                        c->resume, meta->epoch, r->last_epoch, c->epochs, r->last_epoch < c->epochs ? ", stop_after" : "");
    if (changes[0]) {
        char msg[2048];
        snprintf(msg, sizeof msg, "resuming %s with changed options (%s): it does not continue that run bit for bit",
                 c->resume, changes);
        ct_train_event e = {.kind = CT_TRAIN_EVENT_WARNING, .message = msg};
        emit(r, &e);
    }
    return CT_OK;
}

/* The pairings of method, encoder and data that make sense. */
static ct_status check_text_config(const ct_train_config *c) {
    const int text = ct_method_is_text(c->method), tokens = c->model.encoder == CT_ENC_TRANSFORMER;
    if (!text && (tokens || ct_data_is_text(c->data)))
        return ct_error(CT_ERR_ARG, "train: %s is an image method; text (%s, encoder %s) trains with simcse or pairs",
                        ct_method_name(c->method), c->data, ct_encoder_name(c->model.encoder));
    if (!text) return CT_OK;
    if (!tokens)
        return ct_error(CT_ERR_ARG, "train: %s trains the text transformer (encoder transformer), not %s",
                        ct_method_name(c->method), ct_encoder_name(c->model.encoder));
    if (!ct_data_is_text(c->data))
        return ct_error(CT_ERR_ARG, "train: %s needs text data (text:FILE, pairs:FILE, debian-descriptions), not '%s'",
                        ct_method_name(c->method), c->data);
    if (c->local_crops || c->model.whiten > 0 || c->augment[0] || c->sync_bn)
        return ct_error(CT_ERR_ARG, "train: local crops, whitening, augmentations and sync BN are for images");
    if (c->eval_every > 0 && strcmp(c->data, "debian-descriptions"))
        return ct_error(CT_ERR_ARG, "train: the text monitor (eval_every %d) scores the held-out split, which %s has "
                                    "not (debian-descriptions has one); evaluate with contrast eval --data pairs:FILE",
                        c->eval_every, c->data);
    if (c->symmetric && c->method != CT_METHOD_PAIRS)
        return ct_error(CT_ERR_ARG, "train: symmetric applies to the pairs method only");
    return CT_OK;
}

/* Everything before the first step, in the order that finds a mistake cheapest:
 * the configuration, the data, the memory it needs, the checkpoint to resume, the
 * run folder; then the models, buffers, resumed state and the loader. */
/* What every method checks first: the counts and rates, the threads, the batch
 * against the processes, and that every rank runs the same configuration. */
static ct_status check_common(const ct_train_config *c) {
    if (c->epochs < 1 || c->epochs > CKPT_MAX_EPOCHS || c->batch < 2 || !(c->lr > 0) || !(c->temperature > 0))
        return ct_error(CT_ERR_ARG, "train: need 1 <= epochs <= %d, batch >= 2, lr > 0, temperature > 0", CKPT_MAX_EPOCHS);
    ct_set_threads(c->threads);
    if (c->batch % ct_dist_size() != 0)
        return ct_error(CT_ERR_ARG, "train: batch %lld must be a multiple of the %d processes", (long long)c->batch,
                        ct_dist_size());
    ct_train_config same = *c; /* every rank must run the same configuration (its callback aside) */
    same.on_event = NULL;
    same.event_ctx = NULL;
    return ct_dist_check_same("the training configuration", &same, sizeof same);
}

static ct_status setup(run_state *r, const ct_train_config *c, ct_train_result *res) {
    r->c = c;
    r->rd.lock_fd = -1;
    ct_status st = check_common(c);
    if (st) return st;
    r->P = ct_dist_size();
    r->rank = ct_dist_rank();
    r->nloc = c->local_crops;
    r->V = 2 + r->nloc;
    r->moco = c->method == CT_METHOD_MOCO;
    r->B = c->batch;
    r->b = c->batch / r->P;
    r->last_epoch = c->stop_after > 0 && c->stop_after < c->epochs ? c->stop_after : c->epochs;
    ct_model_config mc;
    ckpt_meta meta = {0};
    r->text = ct_method_is_text(c->method);
    if ((st = check_text_config(c))) return st;
    if ((st = r->text ? text_setup(&r->tx, c, c->model.context) : load_data(r))) return st;
    model_config(r, &mc);
    if ((st = check_memory(r, &mc))) return st;
    if (c->resume[0] && (st = check_resume(r, &mc, &meta))) return st;
    if (r->rank == 0 && (st = run_dir_claim(&r->rd, c, meta.epoch))) return st;
    snprintf(res->out, sizeof res->out, "%s", r->rank == 0 ? r->rd.dir : c->out);
    snprintf(r->ckpt, sizeof r->ckpt, "%s/checkpoint.safetensors", res->out);
    snprintf(r->metrics, sizeof r->metrics, "%s/metrics.jsonl", res->out);
    if ((st = build_models(r, &mc, res)) || (st = alloc_buffers(r))) return st;
    r->cs = (ckpt_state){c, &r->m, r->moco ? &r->key : NULL, &r->opt, r->moco ? &r->queue : NULL, 0, 0, 0,
                         r->text ? NULL : &r->train, r->text ? r->tx.tok_text : NULL};
    if (c->resume[0]) {
        if ((st = ckpt_resume(c->resume, &r->cs))) return st;
        r->last_good = c->resume;
        ct_train_event e = {.kind = CT_TRAIN_EVENT_RESUMED, .epoch = r->cs.epoch, .path = c->resume};
        emit(r, &e);
    }
    if (r->text) { /* the schedule's length from epoch 0's plan; each epoch runs at most that many */
        if ((st = text_plan(&r->tx, c, 0))) return st;
        r->steps_per_epoch = r->tx.plan.nbatches;
    } else {
        if ((st = ct_loader_init(&r->loader, &r->train, &r->aug, r->B, 2, 1, c->seed, c->loader_threads))) return st;
        r->have_loader = 1;
        if (r->nloc && (st = ct_loader_set_local(&r->loader, &r->laug, r->nloc))) return st;
        if (r->P > 1 && (st = ct_loader_shard(&r->loader, r->rank, r->P))) return st;
        r->steps_per_epoch = r->loader.n_batches;
    }
    r->total = r->steps_per_epoch * c->epochs;
    r->warmup = (int64_t)(c->warmup_epochs * r->steps_per_epoch);
    return CT_OK;
}

/* ---- one step ------------------------------------------------------------------------ */

/* Forward passes and the objective, dispatched by method: MoCo's queries from view
 * 1 and keys from view 2 through the momentum encoder; SimCLR and SupCon over all
 * views. The objective sees the global batch: with P processes the local
 * embeddings are all-gathered (global negatives). dL/dz goes to r->dzg (P > 1) or
 * r->dz; *keys: MoCo's keys for the queue. Returns CT_ERR_NUMERIC for a non-finite loss. */
static ct_status step_objective(run_state *r, const ct_batch *bt, ct_loss_stats *ls, const float **keys) {
    const ct_train_config *c = r->c;
    const int64_t nb = bt->n, ng = nb * r->P, D = r->D;
    float *dz = r->P > 1 ? r->dzg : r->dz;
    ct_status st;
    if (r->moco) {
        if ((st = ct_model_forward(r->tm, bt->x, nb, 1, 1))) return st;
        if ((st = ct_model_forward(&r->key, bt->x + (size_t)nb * r->img, nb, 1, 1))) return st;
        const float *q = ct_model_embedding(r->tm), *k = ct_model_embedding(&r->key);
        if (r->P > 1) {
            if ((st = gather_rows(r->zg, r->zt, q, 1, nb, D, r->P)) || (st = gather_rows(r->kg, r->zt, k, 1, nb, D, r->P)))
                return st;
            q = r->zg;
            k = r->kg;
        }
        *keys = k;
        return ct_moco_loss(ls, dz, q, k, &r->queue, ng, c->temperature, r->ws, r->ws_bytes);
    }
    if (r->text) { /* rows [0, nb): texts or anchors; [nb, 2nb): the same texts or the positives */
        if ((st = ct_model_forward_tokens(r->tm, r->tx.bids, r->tx.bvalid, 2 * nb, 1, 1))) return st;
        const float *zt = ct_model_embedding(r->tm);
        if (r->P > 1) {
            if ((st = gather_rows(r->zg, r->zt, zt, 2, nb, D, r->P))) return st;
            zt = r->zg;
        }
        if (c->method == CT_METHOD_PAIRS)
            return ct_mnrl_loss(ls, dz, dz + ng * D, zt, zt + ng * D, c->temperature, c->symmetric, ng, D, r->ws,
                                r->ws_bytes);
        return ct_ntxent_loss(ls, dz, zt, ng, D, c->temperature, r->ws, r->ws_bytes);
    }
    if ((st = ct_model_forward(r->tm, bt->x, 2 * nb, 1, 1))) return st;
    const float *z = ct_model_embedding(r->tm);
    const int32_t *labels = c->method == CT_METHOD_SUPCON ? bt->labels : r->idx;
    if (r->nloc) { /* all views' embeddings in one (V * nb, D) block, view-major */
        if ((st = ct_model_forward(&r->tl, bt->xl, r->nloc * nb, 1, 1))) return st;
        memcpy(r->zc, z, (size_t)(2 * nb * D) * sizeof(float));
        memcpy(r->zc + 2 * nb * D, ct_model_embedding(&r->tl), (size_t)(r->nloc * nb * D) * sizeof(float));
        z = r->zc;
    }
    if (r->P > 1) {
        if ((st = gather_rows(r->zg, r->zt, z, r->V, nb, D, r->P))) return st;
        z = r->zg;
        if (c->method == CT_METHOD_SUPCON) {
            float lf[4096];
            float *lloc = nb <= 4096 ? lf : r->dz; /* r->dz is free until the scatter */
            for (int64_t i = 0; i < nb; i++) lloc[i] = (float)bt->labels[i]; /* exact below 2^24 */
            if ((st = ct_dist_allgather_f32(r->labf, lloc, (size_t)nb))) return st;
            for (int64_t i = 0; i < ng; i++) r->labg[i] = (int32_t)r->labf[i];
            labels = r->labg;
        }
    }
    /* SupCon's positives are the same label; multi-crop SimCLR's the same sample */
    if (c->method == CT_METHOD_SUPCON || r->nloc)
        return ct_supcon_loss(ls, dz, z, labels, ng, r->V, D, c->temperature, r->ws, r->ws_bytes);
    return ct_ntxent_loss(ls, dz, z, ng, D, c->temperature, r->ws, r->ws_bytes);
}

/* One optimizer step on batch bt at learning rate lr: the objective, this
 * process's rows of its gradient, backward, the all-reduce of the gradient, the
 * optimizer, MoCo's momentum update and queue. A non-finite loss stops the run with
 * a message naming the checkpoint that is kept (or saying there is none). */
static ct_status train_step(run_state *r, const ct_batch *bt, float lr, int epoch, ct_loss_stats *ls) {
    const ct_train_config *c = r->c;
    const float *keys = NULL;
    r->tm->dropout_step = (uint64_t)r->cs.step;
    r->tl.dropout_step = (uint64_t)r->cs.step;
    r->key.dropout_step = (uint64_t)r->cs.step;
    ct_status st = step_objective(r, bt, ls, &keys);
    if (st && st != CT_ERR_NUMERIC) return st;
    if (st == CT_ERR_NUMERIC || !isfinite(ls->loss)) {
        char kept[700];
        if (r->last_good) snprintf(kept, sizeof kept, "the last good checkpoint (%s) is kept", r->last_good);
        else snprintf(kept, sizeof kept, "no checkpoint was written yet");
        return ct_error(CT_ERR_NUMERIC, "train: loss became %g at epoch %d step %lld (lr %g); stopped, %s; try a lower --lr",
                        st ? NAN : ls->loss, epoch + 1, (long long)r->cs.step, lr, kept);
    }
    if (r->P > 1) scatter_rows(r->dz, r->dzg, r->moco ? 1 : r->V, bt->n, r->D, r->rank, r->P);
    ct_model_zero_grad(r->tm);
    if ((st = ct_model_backward(r->tm, r->dz))) return st;
    /* the local twin's backward adds to the same gradient slab */
    if (r->nloc && (st = ct_model_backward(&r->tl, r->dz + 2 * bt->n * r->D))) return st;
    /* one all-reduce of the flat gradient buffer: each process's gradient is
     * of the global mean loss w.r.t. its own rows, so the sum is the total */
    if (r->P > 1 && (st = ct_dist_allreduce_f32(r->m.grad, r->m.nparam_floats))) return st;
    if ((st = ct_optim_step(&r->opt, r->m.param, r->m.grad, r->m.params, r->m.nparams, lr))) return st;
    if (r->moco) {
        ct_momentum_update(r->key.param, r->m.param, r->m.nparam_floats, c->moco_m);
        if ((st = ct_moco_queue_push(&r->queue, keys, bt->n * r->P))) return st;
    }
    r->cs.step++;
    if (r->P > 1 && c->dist_check > 0 && r->cs.step % c->dist_check == 0) {
        uint64_t h = param_hash(&r->m);
        char what[64];
        snprintf(what, sizeof what, "the parameters after step %lld", (long long)r->cs.step);
        if ((st = ct_dist_check_same(what, &h, sizeof h))) return st;
    }
    return CT_OK;
}

/* ---- epochs ----------------------------------------------------------------------------- */

/* The next batch of the epoch: the loader's, or text.c's into a batch that carries
 * only its size and number (NULL at the end of the epoch). */
static ct_status next_batch(run_state *r, ct_batch *tb, ct_batch **bt) {
    if (!r->text) return ct_loader_next(&r->loader, bt);
    *bt = NULL;
    if (tb->batch_no + 1 >= r->tx.plan.nbatches || tb->batch_no + 1 >= r->steps_per_epoch) return CT_OK;
    tb->batch_no++;
    text_batch(&r->tx, r->c->method, tb->batch_no, r->b, r->rank);
    *bt = tb;
    return CT_OK;
}

static ct_status train_epoch(run_state *r, int epoch, epoch_stats *es) {
    const ct_train_config *c = r->c;
    memset(es, 0, sizeof *es);
    es->t0 = now_s();
    ct_batch tb = {.n = r->b, .views = 2, .batch_no = -1};
    ct_status st = r->text ? text_plan(&r->tx, c, epoch) : ct_loader_start_epoch(&r->loader, epoch);
    for (ct_batch *bt; !st;) {
        if ((st = next_batch(r, &tb, &bt)) || !bt) break;
        float lr = ct_lr_schedule(c->lr, r->cs.step, r->warmup, r->total, c->final_lr_frac);
        ct_loss_stats ls;
        if ((st = train_step(r, bt, lr, epoch, &ls))) break;
        es->nsteps++;
        es->loss += ls.loss;
        es->top1 += ls.top1;
        es->pos += ls.pos_sim;
        es->neg += ls.neg_sim;
        double el = now_s() - es->t0, ips = (double)(es->nsteps * r->B) / (el > 0 ? el : 1e-9);
        ct_train_event e = {.kind = CT_TRAIN_EVENT_STEP, .epoch = epoch + 1, .batch = bt->batch_no + 1,
                            .batches = r->steps_per_epoch, .loss = es->loss / es->nsteps, .top1 = es->top1 / es->nsteps,
                            .images_per_s = ips, .knn_top1 = -1};
        e.eta_s = (double)((r->last_epoch - epoch) * r->steps_per_epoch - es->nsteps) * r->B / (ips > 0 ? ips : 1);
        emit(r, &e);
    }
    es->secs = now_s() - es->t0;
    return st;
}

/* After an epoch: the result so far, the monitor every eval_every epochs (not at
 * the last, final_eval evaluates; images: kNN, text: ct_evaluate_text without the
 * probe on the held-out split), the metrics line, the EPOCH event and the
 * checkpoint. */
static ct_status log_epoch(run_state *r, const epoch_stats *es, ct_train_result *res) {
    const ct_train_config *c = r->c;
    ckpt_state *cs = &r->cs;
    const double n = (double)(es->nsteps ? es->nsteps : 1), ips = (double)(es->nsteps * r->B) / es->secs;
    cs->epoch++;
    res->epochs_done = cs->epoch;
    res->steps = cs->step;
    res->final_loss = es->loss / n;
    res->final_top1 = es->top1 / n;
    if (r->rank != 0) return CT_OK;
    char line[768];
    int len = snprintf(line, sizeof line,
                       "{\"epoch\": %d, \"step\": %lld, \"loss\": %.6f, \"top1\": %.6f, \"pos_sim\": %.6f, "
                       "\"neg_sim\": %.6f, \"lr\": %.6g, \"images_per_s\": %.1f, \"epoch_s\": %.2f",
                       cs->epoch, (long long)cs->step, res->final_loss, res->final_top1, es->pos / n, es->neg / n,
                       ct_lr_schedule(c->lr, cs->step - 1, r->warmup, r->total, c->final_lr_frac), ips, es->secs);
    ct_train_event e = {.kind = CT_TRAIN_EVENT_EPOCH, .epoch = cs->epoch, .loss = res->final_loss,
                        .top1 = res->final_top1, .images_per_s = ips, .seconds = es->secs, .knn_top1 = -1};
    ct_status st;
    if (r->text && c->eval_every > 0 && cs->epoch % c->eval_every == 0 && cs->epoch != c->epochs) {
        /* text: retrieval on the held-out split and, with labels, the kNN (no probe) */
        ct_text_eval_result te;
        if ((st = ct_evaluate_text(&te, &r->m, r->tx.tok, &r->tx.train, &r->tx.test, c->knn_k, c->knn_t, 0)))
            return st;
        len += snprintf(line + len, sizeof line - (size_t)len, ", \"r1\": %.4f, \"r10\": %.4f, \"mrr10\": %.4f",
                        te.r1, te.r10, te.mrr10);
        if (te.knn_top1 >= 0) len += snprintf(line + len, sizeof line - (size_t)len, ", \"knn_top1\": %.4f", te.knn_top1);
        e.knn_top1 = te.knn_top1;
    } else if (c->eval_every > 0 && cs->epoch % c->eval_every == 0 && cs->epoch != c->epochs) {
        ct_eval_result er;
        if ((st = monitor(r, 0, &er))) return st;
        if (er.whitened) cs->whiten_epoch = cs->epoch;
        len += snprintf(line + len, sizeof line - (size_t)len, ", \"knn_top1\": %.4f", er.knn_top1);
        e.knn_top1 = er.knn_top1;
    }
    snprintf(line + len, sizeof line - (size_t)len, "}\n");
    if ((st = train_append_line(r->metrics, line))) return st;
    emit(r, &e);
    if ((st = ckpt_save(r->ckpt, cs))) return st;
    r->last_good = r->ckpt;
    return CT_OK;
}

/* eval.json, replaced atomically. */
static ct_status write_eval_json(const run_state *r, const ct_eval_result *er) {
    const ct_train_config *c = r->c;
    char path[600], json[512];
    snprintf(path, sizeof path, "%s/eval.json", r->rd.dir);
    int n = snprintf(json, sizeof json,
                     "{\"knn_top1\": %.4f, \"knn_top5\": %.4f, \"probe_top1\": %.4f, \"knn_top1_unwhitened\": %.4f, "
                     "\"whitened\": %s, \"k\": %d, \"knn_temperature\": %g, \"n_train\": %lld, \"n_test\": %lld, "
                     "\"epochs\": %d}\n",
                     er->knn_top1, er->knn_top5, er->probe_top1, er->knn_top1_raw, er->whitened ? "true" : "false",
                     c->knn_k, c->knn_t, (long long)er->n_train, (long long)er->n_test, r->cs.epoch);
    ct_atomic_file af;
    ct_status st = ct_atomic_open(&af, path);
    if (!st && !(st = ct_atomic_write(&af, json, (size_t)n))) st = ct_atomic_commit(&af);
    return st;
}

/* The end of a text run with a held-out split (debian-descriptions): retrieval,
 * kNN and probe (ct_evaluate_text) into eval.json and the final metrics line. */
static ct_status final_eval_text(run_state *r, ct_train_result *res) {
    const ct_train_config *c = r->c;
    if (!r->tx.have_test) return CT_OK; /* pairs:FILE, text:FILE: contrast eval --data on held-out pairs */
    ct_text_eval_result er;
    ct_status st = ct_evaluate_text(&er, &r->m, r->tx.tok, &r->tx.train, &r->tx.test, c->knn_k, c->knn_t,
                                    c->final_probe);
    if (st) return st;
    res->knn_top1 = er.knn_top1;
    res->probe_top1 = er.probe_top1;
    res->r1 = er.r1;
    res->r10 = er.r10;
    res->mrr10 = er.mrr10;
    char path[600], json[512];
    snprintf(path, sizeof path, "%s/eval.json", r->rd.dir);
    int n = snprintf(json, sizeof json,
                     "{\"r1\": %.4f, \"r10\": %.4f, \"mrr10\": %.4f, \"knn_top1\": %.4f, \"probe_top1\": %.4f, "
                     "\"n_pairs\": %lld, \"n_gallery\": %lld, \"n_train\": %lld, \"epochs\": %d}\n",
                     er.r1, er.r10, er.mrr10, er.knn_top1, er.probe_top1, (long long)er.n_pairs,
                     (long long)er.n_gallery, (long long)er.n_train, r->cs.epoch);
    ct_atomic_file af;
    if (!(st = ct_atomic_open(&af, path)) && !(st = ct_atomic_write(&af, json, (size_t)n))) st = ct_atomic_commit(&af);
    if (st) return st;
    char line[512];
    snprintf(line, sizeof line,
             "{\"final\": true, \"epoch\": %d, \"r1\": %.4f, \"r10\": %.4f, \"mrr10\": %.4f, \"knn_top1\": %.4f, "
             "\"probe_top1\": %.4f}\n",
             r->cs.epoch, er.r1, er.r10, er.mrr10, er.knn_top1, er.probe_top1);
    return train_append_line(r->metrics, line);
}

/* At the end of the last epoch (rank 0): kNN (before and after whitening) and the
 * linear probe on the final encoder, the checkpoint again with the whitening fit
 * on it, eval.json and the final metrics line. */
static ct_status final_eval(run_state *r, ct_train_result *res) {
    if (r->rank != 0 || r->cs.epoch != r->c->epochs) return CT_OK;
    if (r->text) return final_eval_text(r, res);
    ct_eval_result er;
    ct_status st = monitor(r, 1, &er);
    if (st) return st;
    /* the final checkpoint carries the whitening fit on the final encoder */
    if (er.whitened) {
        r->cs.whiten_epoch = r->cs.epoch;
        if ((st = ckpt_save(r->ckpt, &r->cs))) return st;
    }
    res->knn_top1 = er.knn_top1;
    res->knn_top1_raw = er.knn_top1_raw;
    res->probe_top1 = er.probe_top1;
    if ((st = write_eval_json(r, &er))) return st;
    char line[512];
    snprintf(line, sizeof line,
             "{\"final\": true, \"epoch\": %d, \"knn_top1\": %.4f, \"knn_top1_unwhitened\": %.4f, \"probe_top1\": %.4f}\n",
             r->cs.epoch, er.knn_top1, er.knn_top1_raw, er.probe_top1);
    return train_append_line(r->metrics, line);
}

ct_status ct_train_run(const ct_train_config *c, ct_train_result *res) {
    double t0 = now_s();
    memset(res, 0, sizeof *res);
    res->knn_top1 = res->knn_top1_raw = res->probe_top1 = res->r1 = res->r10 = res->mrr10 = -1;
    if (c->method == CT_METHOD_CLIP) { /* two towers: clip.c's own loop */
        ct_status st = check_common(c);
        return st ? st : clip_train_run(c, res);
    }
    run_state r;
    memset(&r, 0, sizeof r);
    ct_status st = setup(&r, c, res);
    for (int epoch = r.cs.epoch; !st && epoch < r.last_epoch; epoch++) {
        epoch_stats es;
        if (!(st = train_epoch(&r, epoch, &es))) st = log_epoch(&r, &es, res);
    }
    if (!st) st = final_eval(&r, res);
    res->seconds = now_s() - t0;
    run_free(&r, st != CT_OK);
    return st;
}
