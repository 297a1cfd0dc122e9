/* train.c: the training loop for SimCLR, MoCo and SupCon.
 *
 * One step: the loader hands two augmented views of B samples (x: 2B images);
 * the encoder + head maps them to z; the objective gives the loss and dL/dz; the
 * backward pass fills the flat gradient buffer; the optimizer updates the flat
 * parameter buffer. Everything is allocated before the first step.
 *
 * Exact resume: randomness is counter-based (seed, epoch, sample, view), the
 * checkpoint after each epoch holds parameters, BN buffers, optimizer moments, the
 * MoCo key encoder and queue, and the step count, so resuming from epoch k repeats
 * the remaining epochs bit for bit. */
#include "contrast/train.h"
#include "contrast/eval.h"
#include "contrast/io.h"
#include "contrast/loss.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define CKPT_FORMAT "contrast-checkpoint"
#define CKPT_VERSION "1"

const char *ct_method_name(ct_method m) {
    switch (m) {
    case CT_METHOD_SIMCLR: return "simclr";
    case CT_METHOD_MOCO: return "moco";
    case CT_METHOD_SUPCON: return "supcon";
    }
    return "?";
}

int ct_method_parse(const char *s) {
    if (!strcmp(s, "simclr")) return CT_METHOD_SIMCLR;
    if (!strcmp(s, "moco")) return CT_METHOD_MOCO;
    if (!strcmp(s, "supcon")) return CT_METHOD_SUPCON;
    return -1;
}

void ct_train_config_default(ct_train_config *c) {
    memset(c, 0, sizeof *c);
    c->method = CT_METHOD_SIMCLR;
    snprintf(c->data, sizeof c->data, "fashion-mnist");
    ct_model_config_default(&c->model);
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
    c->progress = isatty(STDERR_FILENO) ? 1 : 0;
}

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* ---- checkpoints ---------------------------------------------------------------- */

typedef struct {
    const ct_train_config *c;
    ct_model *m, *key;        /* key: MoCo momentum encoder or NULL */
    ct_optim *opt;
    ct_moco_queue *queue;     /* MoCo or NULL */
    int epoch;                /* epochs completed */
    int64_t step;
    int whiten_epoch;         /* epochs completed when the whitening was fit (0: never) */
} ckpt_state;

#define MAX_CKPT_TENSORS 1024

static ct_status ckpt_save(const char *path, const ckpt_state *s) {
    static ct_st_tensor t[MAX_CKPT_TENSORS];
    static char names[MAX_CKPT_TENSORS][CT_MAX_NAME + 16];
    int n = 0;
    const ct_model *m = s->m;
    for (int i = 0; i < m->nparams && n < MAX_CKPT_TENSORS; i++) ct_st_tensor_from_info(&t[n++], &m->params[i], m->param);
    for (int i = 0; i < m->nbufs && n < MAX_CKPT_TENSORS; i++) ct_st_tensor_from_info(&t[n++], &m->bufs[i], m->buf);
    ct_optim_buffer ob[4];
    int nob = ct_optim_state(s->opt, ob, 4);
    for (int i = 0; i < nob && n < MAX_CKPT_TENSORS; i++) {
        memset(&t[n], 0, sizeof t[n]);
        t[n].name = ob[i].name;
        t[n].dtype = CT_DTYPE_F32;
        t[n].ndim = 1;
        t[n].shape[0] = (int64_t)ob[i].numel;
        t[n].data = ob[i].data;
        n++;
    }
    if (s->key) {
        const ct_model *k = s->key;
        for (int i = 0; i < k->nparams + k->nbufs && n < MAX_CKPT_TENSORS; i++) {
            const ct_tensor_info *ti = i < k->nparams ? &k->params[i] : &k->bufs[i - k->nparams];
            ct_st_tensor_from_info(&t[n], ti, i < k->nparams ? k->param : k->buf);
            snprintf(names[n], sizeof names[n], "momentum.%s", ti->name);
            t[n].name = names[n];
            n++;
        }
    }
    if (s->queue && n < MAX_CKPT_TENSORS) {
        memset(&t[n], 0, sizeof t[n]);
        t[n].name = "moco.queue";
        t[n].dtype = CT_DTYPE_F32;
        t[n].ndim = 2;
        t[n].shape[0] = s->queue->k;
        t[n].shape[1] = s->queue->d;
        t[n].data = s->queue->keys;
        n++;
    }
    if (n >= MAX_CKPT_TENSORS) return ct_error(CT_ERR_ARG, "%s: too many tensors for a checkpoint", path);

    const ct_train_config *c = s->c;
    const ct_model_config *mc = &m->cfg;
    char v[60][64];
    ct_st_kv meta[60];
    int nm = 0;
#define META(k, ...)                                                  \
    do {                                                              \
        snprintf(v[nm], sizeof v[nm], __VA_ARGS__);                   \
        meta[nm].key = k;                                             \
        meta[nm].value = v[nm];                                       \
        nm++;                                                         \
    } while (0)
    META("format", CKPT_FORMAT);
    META("version", CKPT_VERSION);
    META("model.encoder", "%s", ct_encoder_name(mc->encoder));
    META("model.width", "%d", mc->width);
    META("model.last_width", "%d", mc->last_width);
    META("model.in_c", "%d", mc->in_c);
    META("model.in_h", "%d", mc->in_h);
    META("model.in_w", "%d", mc->in_w);
    META("model.head_hidden", "%d", mc->head_hidden);
    META("model.head_out", "%d", mc->head_out);
    META("model.head_bn", "%d", mc->head_bn);
    META("model.whiten", "%.9g", mc->whiten);
    if (mc->encoder == CT_ENC_TRANSFORMER || mc->encoder == CT_ENC_VIT) { /* only theirs: older files keep their bits */
        META("model.depth", "%d", mc->depth);
        META("model.heads", "%d", mc->heads);
        META("model.patch", "%d", mc->patch);
        META("model.vocab", "%d", mc->vocab);
        META("model.context", "%d", mc->context);
        META("model.causal", "%d", mc->causal);
        META("model.dropout", "%.9g", mc->dropout);
        META("model.pool", "%s", ct_pool_name(mc->pool));
    }
    META("whiten.epoch", "%d", s->whiten_epoch);
    META("model.seed", "%llu", (unsigned long long)mc->seed);
    META("train.method", "%s", ct_method_name(c->method));
    META("train.epoch", "%d", s->epoch);
    META("train.step", "%lld", (long long)s->step);
    META("train.epochs", "%d", c->epochs);
    META("train.batch", "%lld", (long long)c->batch);
    META("train.lr", "%.9g", c->lr);
    META("train.optimizer", "%s", ct_optim_type_name(c->optim.type));
    META("train.weight_decay", "%.9g", c->optim.weight_decay);
    META("train.temperature", "%.9g", c->temperature);
    META("train.view_size", "%d", c->view_size);
    META("train.local_crops", "%d", c->local_crops);
    META("train.local_size", "%d", c->local_size);
    META("train.recompute", "%d", c->recompute);
    META("train.seed", "%llu", (unsigned long long)c->seed);
    META("train.limit", "%lld", (long long)c->limit);
    META("train.optim_step", "%lld", (long long)s->opt->step);
    if (s->queue) {
        META("moco.ptr", "%lld", (long long)s->queue->ptr);
        META("moco.pushed", "%llu", (unsigned long long)s->queue->pushed);
        META("moco.m", "%.9g", c->moco_m);
    }
#undef META
    ct_st_kv all[64];
    memcpy(all, meta, (size_t)nm * sizeof meta[0]);
    all[nm].key = "train.data";
    all[nm].value = c->data;
    all[nm + 1].key = "train.augment";
    all[nm + 1].value = c->augment;
    all[nm + 2].key = "train.local_augment";
    all[nm + 2].value = c->local_augment;
    return ct_st_write(path, t, n, all, nm + 3);
}

/* Re-reports the current error as "<path>: <what><message>" (copied first: the
 * message buffer is also the destination). */
static ct_status error_in(ct_status st, const char *path, const char *what) {
    char msg[1024];
    snprintf(msg, sizeof msg, "%s", ct_errmsg());
    return ct_error(st, "%s: %s%s", path, what, msg);
}

static ct_status meta_int(const ct_st_file *f, const char *key, long long *out) {
    const char *s = ct_st_meta(f, key);
    if (!s) return ct_error(CT_ERR_FORMAT, "%s: checkpoint metadata lacks '%s'", ct_st_path(f), key);
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || end == s || *end)
        return ct_error(CT_ERR_FORMAT, "%s: metadata '%s' = '%s' is not an integer", ct_st_path(f), key, s);
    *out = v;
    return CT_OK;
}

/* meta_int for a key that older checkpoints lack: dflt when absent */
static ct_status meta_int_or(const ct_st_file *f, const char *key, long long dflt, long long *out) {
    *out = dflt;
    return ct_st_meta(f, key) ? meta_int(f, key, out) : CT_OK;
}

static ct_status model_config_from(const ct_st_file *f, ct_model_config *mc) {
    const char *fmt = ct_st_meta(f, "format");
    if (!fmt || strcmp(fmt, CKPT_FORMAT))
        return ct_error(CT_ERR_FORMAT, "%s: not a contrast checkpoint (metadata format is '%s')", ct_st_path(f),
                        fmt ? fmt : "missing");
    ct_model_config_default(mc);
    const char *enc = ct_st_meta(f, "model.encoder");
    if (!enc) return ct_error(CT_ERR_FORMAT, "%s: checkpoint metadata lacks 'model.encoder'", ct_st_path(f));
    ct_status st = ct_encoder_parse(enc, &mc->encoder);
    if (st) return error_in(st, ct_st_path(f), "");
    static const char *keys[] = {"model.width", "model.in_c", "model.in_h", "model.in_w",
                                 "model.head_hidden", "model.head_out", "model.head_bn"};
    int *dst[] = {&mc->width, &mc->in_c, &mc->in_h, &mc->in_w, &mc->head_hidden, &mc->head_out, &mc->head_bn};
    for (int i = 0; i < 7; i++) {
        long long v;
        if ((st = meta_int(f, keys[i], &v))) return st;
        if (v < 0 || v > 1 << 20) return ct_error(CT_ERR_FORMAT, "%s: metadata '%s' = %lld out of range", ct_st_path(f), keys[i], v);
        *dst[i] = (int)v;
    }
    long long lw;
    if ((st = meta_int_or(f, "model.last_width", 0, &lw))) return st;
    if (lw < 0 || lw > 65536)
        return ct_error(CT_ERR_FORMAT, "%s: metadata 'model.last_width' = %lld out of range", ct_st_path(f), lw);
    mc->last_width = (int)lw;
    if (mc->encoder == CT_ENC_TRANSFORMER || mc->encoder == CT_ENC_VIT) {
        /* the transformer keys, each range-checked here (ct_model_count checks the rest) */
        static const char *tkeys[] = {"model.depth", "model.heads", "model.patch", "model.vocab", "model.context",
                                      "model.causal"};
        int *tdst[] = {&mc->depth, &mc->heads, &mc->patch, &mc->vocab, &mc->context, &mc->causal};
        const long long lo[] = {1, 1, 1, 1, 1, 0}, hi[] = {1024, 4096, 4096, 1 << 30, 65536, 1};
        for (int i = 0; i < 6; i++) {
            long long v;
            if ((st = meta_int(f, tkeys[i], &v))) return st;
            if (v < lo[i] || v > hi[i])
                return ct_error(CT_ERR_FORMAT, "%s: metadata '%s' = %lld out of range [%lld, %lld]", ct_st_path(f),
                                tkeys[i], v, lo[i], hi[i]);
            *tdst[i] = (int)v;
        }
        const char *dv = ct_st_meta(f, "model.dropout"), *pv = ct_st_meta(f, "model.pool");
        char *end = NULL;
        double d = dv ? strtod(dv, &end) : -1;
        if (!dv || end == dv || *end || !(d >= 0 && d < 1))
            return ct_error(CT_ERR_FORMAT, "%s: metadata 'model.dropout' = '%s' is not a probability in [0, 1)",
                            ct_st_path(f), dv ? dv : "missing");
        mc->dropout = (float)d;
        if (!pv || ct_pool_parse(pv, &mc->pool))
            return ct_error(CT_ERR_FORMAT, "%s: metadata 'model.pool' = '%s' is not a pooling (mean, cls, eot)",
                            ct_st_path(f), pv ? pv : "missing");
    }
    const char *wv = ct_st_meta(f, "model.whiten"); /* absent in checkpoints before whitening */
    if (wv) {
        char *end;
        double w = strtod(wv, &end);
        if (end == wv || *end || !(w >= 0 && w < 1))
            return ct_error(CT_ERR_FORMAT, "%s: metadata 'model.whiten' = '%s' is not a shrinkage in [0, 1)",
                            ct_st_path(f), wv);
        mc->whiten = (float)w;
    }
    return CT_OK;
}

/* The epoch the stored whitening was fit at matches the parameters' epoch. */
static ct_status whiten_fresh(const ct_st_file *f, int *fresh) {
    long long we, ep = 0;
    *fresh = 0;
    ct_status st = meta_int_or(f, "whiten.epoch", 0, &we);
    if (!st && we > 0 && !(st = meta_int(f, "train.epoch", &ep))) *fresh = we == ep;
    return st;
}

/* Loads the model's parameters and buffers; every tensor must be present with its shape. */
static ct_status load_model_tensors(const ct_st_file *f, ct_model *m, const char *prefix) {
    static ct_tensor_info tab[MAX_CKPT_TENSORS];
    int nt = 0;
    for (int pass = 0; pass < 2; pass++) {
        const ct_tensor_info *src = pass ? m->bufs : m->params;
        int cnt = pass ? m->nbufs : m->nparams;
        nt = 0;
        for (int i = 0; i < cnt && nt < MAX_CKPT_TENSORS; i++) {
            tab[nt] = src[i];
            snprintf(tab[nt].name, CT_MAX_NAME, "%s%s", prefix, src[i].name);
            nt++;
        }
        ct_status st = ct_st_read_table(f, tab, nt, pass ? m->buf : m->param);
        if (st) return st;
    }
    return CT_OK;
}

/* The model described by the metadata must fit in the file's F32 tensors: checked
 * before building it, so a header claiming a huge model never drives an allocation. */
static ct_status check_model_fits(const ct_st_file *f, const ct_model_config *mc) {
    size_t need, have = 0;
    ct_status st = ct_model_count(mc, &need);
    if (st) return error_in(st, ct_st_path(f), "checkpoint metadata describes an invalid model: ");
    for (int i = 0; i < ct_st_count(f); i++) {
        const ct_st_entry *e = ct_st_entry_at(f, i);
        if (e->dtype == CT_DTYPE_F32) have += e->numel; /* <= file size, cannot overflow */
    }
    if (need > have)
        return ct_error(CT_ERR_FORMAT,
                        "%s: metadata describes a model of %zu parameters, but the file holds only %zu F32 values",
                        ct_st_path(f), need, have);
    return CT_OK;
}

ct_status ct_checkpoint_load_model(ct_model *m, const char *path) {
    memset(m, 0, sizeof *m);
    ct_st_file *f;
    ct_status st = ct_st_open(&f, path);
    if (st) return st;
    ct_model_config mc;
    if ((st = model_config_from(f, &mc)) == CT_OK && (st = check_model_fits(f, &mc)) == CT_OK) {
        if ((st = ct_model_init(m, &mc)))
            st = error_in(st, path, "cannot build the checkpoint's model: ");
        else if ((st = load_model_tensors(f, m, "")) || (st = whiten_fresh(f, &m->whiten_fitted)))
            ct_model_free(m);
    }
    ct_st_close(f);
    return st;
}

/* the transformer settings of two configurations agree (always, for other encoders) */
static int same_transformer(const ct_model_config *a, const ct_model_config *b) {
    if (a->encoder != CT_ENC_TRANSFORMER && a->encoder != CT_ENC_VIT) return 1;
    return a->depth == b->depth && a->heads == b->heads && a->patch == b->patch && a->vocab == b->vocab &&
           a->context == b->context && a->causal == b->causal && a->dropout == b->dropout && a->pool == b->pool;
}

static ct_status ckpt_resume(const char *path, ckpt_state *s) {
    ct_st_file *f;
    ct_status st = ct_st_open(&f, path);
    if (st) return st;
    ct_model_config mc;
    long long epoch = 0, step = 0, ostep = 0;
    if ((st = model_config_from(f, &mc))) goto out;
    if (memcmp(&mc.encoder, &s->m->cfg.encoder, sizeof mc.encoder) || mc.width != s->m->cfg.width ||
        mc.last_width != s->m->cfg.last_width ||
        mc.in_c != s->m->cfg.in_c || mc.in_h != s->m->cfg.in_h || mc.head_hidden != s->m->cfg.head_hidden ||
        mc.head_out != s->m->cfg.head_out || mc.head_bn != s->m->cfg.head_bn ||
        (mc.whiten > 0) != (s->m->cfg.whiten > 0) || !same_transformer(&mc, &s->m->cfg)) {
        st = ct_error(CT_ERR_ARG,
                      "%s: checkpoint holds a different model (%s width %d, last width %d, head %d/%d, whitening %g) "
                      "than requested",
                      path, ct_encoder_name(mc.encoder), mc.width, mc.last_width, mc.head_hidden, mc.head_out, mc.whiten);
        goto out;
    }
    const char *method = ct_st_meta(f, "train.method");
    if (!method || ct_method_parse(method) != (int)s->c->method) {
        st = ct_error(CT_ERR_ARG, "%s: checkpoint was trained with method '%s', not '%s'", path,
                      method ? method : "?", ct_method_name(s->c->method));
        goto out;
    }
    if ((st = meta_int(f, "train.epoch", &epoch)) || (st = meta_int(f, "train.step", &step)) ||
        (st = meta_int(f, "train.optim_step", &ostep)))
        goto out;
    long long wepoch;
    if ((st = meta_int_or(f, "whiten.epoch", 0, &wepoch))) goto out;
    if ((st = load_model_tensors(f, s->m, ""))) goto out;
    ct_optim_buffer ob[4];
    int nob = ct_optim_state(s->opt, ob, 4);
    for (int i = 0; i < nob; i++) {
        int64_t shape[1] = {(int64_t)ob[i].numel};
        if ((st = ct_st_read_f32(f, ob[i].name, ob[i].data, ob[i].numel, 1, shape))) goto out;
    }
    s->opt->step = ostep;
    if (s->key && (st = load_model_tensors(f, s->key, "momentum."))) goto out;
    if (s->queue) {
        int64_t shape[2] = {s->queue->k, s->queue->d};
        long long ptr, pushed;
        if ((st = ct_st_read_f32(f, "moco.queue", s->queue->keys, (size_t)(s->queue->k * s->queue->d), 2, shape)) ||
            (st = meta_int(f, "moco.ptr", &ptr)) || (st = meta_int(f, "moco.pushed", &pushed)))
            goto out;
        if (ptr < 0 || ptr >= s->queue->k) {
            st = ct_error(CT_ERR_FORMAT, "%s: moco.ptr %lld outside the queue", path, ptr);
            goto out;
        }
        s->queue->ptr = ptr;
        s->queue->pushed = (uint64_t)pushed;
    }
    s->epoch = (int)epoch;
    s->step = step;
    s->whiten_epoch = (int)wepoch;
out:
    ct_st_close(f);
    return st;
}

/* ---- features and evaluation ------------------------------------------------------ */

static int has_whitening(const ct_model *m) { return m->cfg.whiten > 0 && m->whiten_mean >= 0; }

/* rows f (n, D) <- the model's whitening of them */
static ct_status apply_whitening(const ct_model *m, float *f, int64_t n, int64_t D) {
    return ct_whiten_apply(f, n, D, m->buf + m->bufs[m->whiten_mean].offset, m->buf + m->bufs[m->whiten_weight].offset);
}

ct_status ct_extract_features(float **out, int64_t *dim, ct_model *m, const ct_dataset *ds, ct_feature_kind which,
                              int64_t batch) {
    *out = NULL;
    if (ds->c != m->cfg.in_c || ds->h != m->cfg.in_h || ds->w != m->cfg.in_w)
        return ct_error(CT_ERR_ARG, "data is %dx%dx%d but the model expects %dx%dx%d", ds->c, ds->h, ds->w,
                        m->cfg.in_c, m->cfg.in_h, m->cfg.in_w);
    ct_augment aug;
    ct_augment_for_dataset(&aug, ds);
    const int head = which == CT_FEAT_Z;
    int64_t D = head ? ct_model_embed_dim(m) : ct_model_feature_dim(m);
    size_t per = (size_t)(ds->c * ds->h * ds->w);
    ct_status st = ct_model_prepare(m, batch);
    if (st) return st;
    float *x = ct_alloc((size_t)batch * per * sizeof(float));
    float *f = ct_alloc((size_t)ds->n * (size_t)D * sizeof(float));
    if (!x || !f) {
        ct_free(x);
        ct_free(f);
        return CT_ERR_NOMEM;
    }
    for (int64_t s = 0; s < ds->n && !st; s += batch) {
        int64_t nb = ds->n - s < batch ? ds->n - s : batch;
        if ((st = ct_data_eval_batch(x, ds, &aug, s, nb))) break;
        if ((st = ct_model_forward(m, x, nb, 0, head))) break;
        memcpy(f + s * D, head ? ct_model_embedding(m) : ct_model_features(m), (size_t)(nb * D) * sizeof(float));
    }
    ct_free(x);
    if (!st && which == CT_FEAT_H && has_whitening(m))
        st = apply_whitening(m, f, ds->n, D);
    if (st) {
        ct_free(f);
        return st;
    }
    *out = f;
    *dim = D;
    return CT_OK;
}

/* Fits the model's whitening to raw features ftr (n, D) and stores it. */
static ct_status fit_whitening(ct_model *m, const float *ftr, int64_t n, int64_t D) {
    float *mean = ct_alloc((size_t)D * sizeof(float)), *W = ct_alloc((size_t)(D * D) * sizeof(float));
    ct_status st = !mean || !W ? CT_ERR_NOMEM : ct_whiten_fit(ftr, n, D, m->cfg.whiten, mean, W);
    if (!st) st = ct_model_set_whitening(m, mean, W);
    ct_free(mean);
    ct_free(W);
    return st;
}

ct_status ct_model_fit_whitening(ct_model *m, const ct_dataset *train) {
    float *f = NULL;
    int64_t D = 0;
    ct_status st = ct_extract_features(&f, &D, m, train, CT_FEAT_H_RAW, 512);
    if (!st) st = fit_whitening(m, f, train->n, D);
    ct_free(f);
    return st;
}

static ct_status raw_features(float **out, int64_t *dim, const ct_dataset *ds) {
    ct_augment aug;
    ct_augment_for_dataset(&aug, ds);
    int64_t D = (int64_t)ds->c * ds->h * ds->w;
    float *f = ct_alloc((size_t)ds->n * (size_t)D * sizeof(float));
    if (!f) return CT_ERR_NOMEM;
    ct_status st = ct_data_eval_batch(f, ds, &aug, 0, ds->n);
    if (st) {
        ct_free(f);
        return st;
    }
    *out = f;
    *dim = D;
    return CT_OK;
}

static ct_status eval_features(ct_eval_result *r, const float *ftr, const ct_dataset *tr, const float *fte,
                               const ct_dataset *te, int64_t D, int k, float T, int probe) {
    r->knn_top1 = r->knn_top5 = r->probe_top1 = -1;
    r->n_train = tr->n;
    r->n_test = te->n;
    r->dim = D;
    int nc = tr->num_classes > te->num_classes ? tr->num_classes : te->num_classes;
    ct_status st = ct_knn_eval(ftr, tr->labels, tr->n, fte, te->labels, te->n, D, nc, k, T, &r->knn_top1, &r->knn_top5);
    if (st || !probe) return st;
    ct_probe_result pr;
    st = ct_linear_probe(ftr, tr->labels, tr->n, fte, te->labels, te->n, D, nc, NULL, &pr);
    if (!st) r->probe_top1 = pr.test_top1;
    return st;
}

/* Evaluates the model's features of tr against te. With whiten != 0 and a model
 * that carries a whitening: kNN on the raw features first (knn_top1_raw; skipped
 * without raw_knn), then the whitening, fit on tr's features first when fit != 0,
 * then kNN (and probe) on the whitened features. */
static ct_status eval_model(ct_eval_result *r, ct_model *m, const ct_dataset *tr, const ct_dataset *te, int k,
                            float T, int probe, int whiten, int fit, int raw_knn) {
    float *ftr = NULL, *fte = NULL;
    int64_t D = 0;
    double raw1 = -1;
    ct_status st = ct_extract_features(&ftr, &D, m, tr, CT_FEAT_H_RAW, 512);
    if (!st) st = ct_extract_features(&fte, &D, m, te, CT_FEAT_H_RAW, 512);
    whiten = whiten && has_whitening(m);
    if (!st && whiten) {
        if (raw_knn) {
            st = eval_features(r, ftr, tr, fte, te, D, k, T, 0);
            raw1 = r->knn_top1;
        }
        if (!st && fit) st = fit_whitening(m, ftr, tr->n, D);
        if (!st) st = apply_whitening(m, ftr, tr->n, D);
        if (!st) st = apply_whitening(m, fte, te->n, D);
    }
    if (!st) st = eval_features(r, ftr, tr, fte, te, D, k, T, probe);
    r->knn_top1_raw = raw1;
    r->whitened = whiten;
    ct_free(ftr);
    ct_free(fte);
    return st;
}

ct_status ct_evaluate(ct_eval_result *r, ct_model *m, const char *data, int64_t limit, int k, float T, int probe,
                      int raw, int whiten) {
    ct_dataset tr, te;
    memset(&tr, 0, sizeof tr);
    memset(&te, 0, sizeof te);
    memset(r, 0, sizeof *r);
    r->knn_top1_raw = -1;
    float *ftr = NULL, *fte = NULL;
    int64_t D = 0;
    ct_status st = ct_dataset_load(&tr, data, 1);
    if (!st) st = ct_dataset_load(&te, data, 0);
    if (!st) ct_dataset_limit(&tr, limit);
    if (!st && raw) {
        st = raw_features(&ftr, &D, &tr);
        if (!st) st = raw_features(&fte, &D, &te);
        if (!st) st = eval_features(r, ftr, &tr, fte, &te, D, k, T, probe);
    } else if (!st) {
        /* a whitening fit for other parameters (a checkpoint from before the end of its run) is refit here */
        int fit = whiten && has_whitening(m) && !m->whiten_fitted;
        if (fit) fprintf(stderr, "eval: the checkpoint's whitening is not from its last epoch; fitting it on the train split\n");
        st = eval_model(r, m, &tr, &te, k, T, probe, whiten, fit, 1);
    }
    ct_free(ftr);
    ct_free(fte);
    ct_dataset_free(&tr);
    ct_dataset_free(&te);
    return st;
}

/* ---- the loop ----------------------------------------------------------------------- */

static void progress_line(const ct_train_config *c, int epoch, int64_t b, int64_t nb, double loss, double top1,
                          double ips, double eta) {
    if (c->progress != 1) return;
    int width = 24, filled = nb ? (int)(width * (b + 1) / nb) : 0;
    char bar[32];
    for (int i = 0; i < width; i++) bar[i] = i < filled ? '#' : '.';
    bar[width] = '\0';
    fprintf(stderr, "\repoch %d/%d [%s] step %lld/%lld loss %.4f acc %.3f %.0f img/s ETA %.0fs   ", epoch + 1,
            c->epochs, bar, (long long)b + 1, (long long)nb, loss, top1, ips, eta);
    fflush(stderr);
}

static ct_status append_line(const char *path, const char *line) {
    FILE *f = fopen(path, "a");
    if (!f) return ct_error(CT_ERR_IO, "%s: cannot open for appending: %s", path, strerror(errno));
    int bad = fputs(line, f) < 0;
    bad |= fclose(f) != 0;
    if (bad) return ct_error(CT_ERR_IO, "%s: write failed: %s", path, strerror(errno));
    return CT_OK;
}

static ct_status make_dir(const char *path) {
    char tmp[512];
    snprintf(tmp, sizeof tmp, "%s", path);
    for (char *p = tmp + 1; *p; p++) {
        if (*p != '/') continue;
        *p = '\0';
        mkdir(tmp, 0755);
        *p = '/';
    }
    if (mkdir(tmp, 0755) && errno != EEXIST) return ct_error(CT_ERR_IO, "%s: cannot create directory: %s", path, strerror(errno));
    return CT_OK;
}

typedef struct {
    ct_dataset train, test;
    float *zg, *zt, *dzg, *kg, *labf; /* distributed: global embeddings, gather scratch, global dz, keys, labels */
    int32_t *labg;
    float *zc;          /* multi-crop: this process's embeddings of all views, (views*b, D) */
    int32_t *idx;       /* multi-crop SimCLR: sample numbers 0..B-1 as labels (positives = same sample) */
    ct_augment aug, laug;
    ct_model m, key, t, tl; /* t: m at the views' size when it differs from the images'; tl: at the local crops' */
    ct_optim opt;
    ct_moco_queue queue;
    ct_loader loader;
    void *ws;
    size_t ws_bytes;
    float *dz;
    int have_key, have_queue, have_loader, have_opt, have_model, have_t, have_tl;
} run_state;

static void run_free(run_state *r) {
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
}

/* kNN monitor (final = 0) or the final evaluation: features of the (limited) train
 * split against the test split; the whitening (if the model has one) is fit on the
 * train split's features first. The kNN before whitening, which costs a second
 * kNN, is reported at the end only. */
static ct_status monitor(run_state *r, const ct_train_config *c, int final, ct_eval_result *er) {
    ct_status st = eval_model(er, &r->m, &r->train, &r->test, c->knn_k, c->knn_t, final && c->final_probe, 1, 1, final);
    /* the arena now may be sized for the eval batch; training re-prepares as needed */
    return st;
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

ct_status ct_train_run(const ct_train_config *c, ct_train_result *res) {
    double t0 = now_s();
    memset(res, 0, sizeof *res);
    res->knn_top1 = res->knn_top1_raw = res->probe_top1 = -1;
    if (c->epochs < 1 || c->batch < 2 || !(c->lr > 0) || !(c->temperature > 0))
        return ct_error(CT_ERR_ARG, "train: need epochs >= 1, batch >= 2, lr > 0, temperature > 0");
    ct_set_threads(c->threads);
    const int P = ct_dist_size(), rank = ct_dist_rank();
    if (c->batch % P != 0)
        return ct_error(CT_ERR_ARG, "train: batch %lld must be a multiple of the %d processes", (long long)c->batch, P);
    {
        /* every rank must run the same configuration (progress display aside) */
        ct_train_config same = *c;
        same.progress = 0;
        ct_status cst = ct_dist_check_same("the training configuration", &same, sizeof same);
        if (cst) return cst;
    }
    ct_train_config quiet_cfg = *c;
    if (rank != 0) {
        quiet_cfg.progress = -1; /* rank 0 alone prints and writes files */
        c = &quiet_cfg;
    }
    run_state r;
    memset(&r, 0, sizeof r);
    ct_status st = ct_dataset_load(&r.train, c->data, 1);
    if (!st) st = ct_dataset_load(&r.test, c->data, 0);
    if (st) goto done;
    ct_dataset_limit(&r.train, c->limit);
    if (r.train.n < c->batch) {
        st = ct_error(CT_ERR_ARG, "train: %lld training images, fewer than one batch of %lld", (long long)r.train.n,
                      (long long)c->batch);
        goto done;
    }
    ct_augment_for_dataset(&r.aug, &r.train);
    if ((st = view_pipeline(&r.aug, &r.train, c->augment, c->view_size, 5, "view"))) goto done;
    const int nloc = c->local_crops, V = 2 + nloc; /* views per sample */
    if (nloc < 0 || nloc > 64 || (nloc && c->method == CT_METHOD_MOCO)) {
        st = ct_error(CT_ERR_ARG, "train: local crops must be 0..64 and need simclr or supcon (got %d with %s)", nloc,
                      ct_method_name(c->method));
        goto done;
    }
    if (nloc) {
        /* local crops: the views' pipeline with tight crops (SwAV's 0.05-0.4), then overrides */
        r.laug = r.aug;
        r.laug.crop = 1;
        r.laug.crop_scale[0] = 0.05f;
        r.laug.crop_scale[1] = 0.4f;
        if ((st = view_pipeline(&r.laug, &r.train, c->local_augment, c->local_size, 3, "local crop"))) goto done;
    }
    ct_model_config mc = c->model;
    if (mc.encoder == CT_ENC_TRANSFORMER) {
        st = ct_error(CT_ERR_ARG, "train: the text transformer reads token ids and the datasets here are images "
                                  "(train it through the library: ct_model_forward_tokens); use --encoder vit");
        goto done;
    }
    mc.in_c = r.train.c;
    mc.in_h = r.train.h;
    mc.in_w = r.train.w;
    mc.seed = c->seed;
    if ((st = ct_model_init(&r.m, &mc))) goto done;
    r.have_model = 1;
    const int64_t B = c->batch, D = ct_model_embed_dim(&r.m), b = B / P;
    const int moco = c->method == CT_METHOD_MOCO;
    if (c->sync_bn && P > 1) {
        r.m.bn_reduce = ct_dist_reduce_cb;
    }
    /* Views of another size than the images (--view-size, augment size=) train a twin of the
     * model over the same parameters; evaluation uses the images' size. */
    ct_model *tm = &r.m;
    if (r.aug.out_h != r.train.h || r.aug.out_w != r.train.w) {
        if ((st = ct_model_init_resized(&r.t, &r.m, r.aug.out_h, r.aug.out_w))) goto done;
        r.have_t = 1;
        tm = &r.t;
    }
    if (c->recompute) { /* activation checkpointing (bits unchanged) */
        ct_model_recompute_convs(tm);
        ct_model_recompute_blocks(tm);
    }
    if ((st = ct_model_prepare(tm, moco ? b : 2 * b))) goto done;
    if (nloc) { /* local crops train their own twin (always smaller views, or the images') */
        if ((st = ct_model_init_resized(&r.tl, &r.m, r.laug.out_h, r.laug.out_w))) goto done;
        r.have_tl = 1;
        if (c->recompute) {
            ct_model_recompute_convs(&r.tl);
            ct_model_recompute_blocks(&r.tl);
        }
        if ((st = ct_model_prepare(&r.tl, nloc * b))) goto done;
    }
    res->arena_bytes = tm->arena.cap;
    res->local_arena_bytes = nloc ? r.tl.arena.cap : 0;
    if ((st = ct_optim_init(&r.opt, &c->optim, r.m.nparam_floats))) goto done;
    r.have_opt = 1;
    int64_t K = 0;
    if (moco) {
        ct_model_config kc = mc;
        kc.in_h = r.aug.out_h;
        kc.in_w = r.aug.out_w;
        if ((st = ct_model_init(&r.key, &kc))) goto done;
        r.have_key = 1;
        memcpy(r.key.param, r.m.param, r.m.nparam_floats * sizeof(float));
        memcpy(r.key.buf, r.m.buf, r.m.nbuf_floats * sizeof(float));
        r.key.bn_reduce = r.m.bn_reduce;
        if ((st = ct_model_prepare(&r.key, b))) goto done;
        K = c->moco_k > 0 ? c->moco_k : (r.train.n < 4096 ? r.train.n : 4096);
        if ((st = ct_moco_queue_init(&r.queue, K, D, c->seed))) goto done;
        r.have_queue = 1;
        r.ws_bytes = ct_moco_workspace_size(B, K, D);
    } else if (c->method == CT_METHOD_SUPCON || nloc) {
        r.ws_bytes = ct_supcon_workspace_size(B, V, D);
    } else {
        r.ws_bytes = ct_ntxent_workspace_size(B, D);
    }
    r.ws = ct_alloc(r.ws_bytes ? r.ws_bytes : 1);
    r.dz = ct_alloc((size_t)(V * B * D) * sizeof(float));
    if (nloc) {
        r.zc = ct_alloc((size_t)(V * b * D) * sizeof(float));
        r.idx = ct_alloc((size_t)B * sizeof(int32_t));
        if (!r.zc || !r.idx) st = CT_ERR_NOMEM;
        for (int64_t i = 0; r.idx && i < B; i++) r.idx[i] = (int32_t)i;
    }
    if (P > 1) {
        size_t g = (size_t)(V * B * D) * sizeof(float);
        r.zg = ct_alloc(g);
        r.zt = ct_alloc(g);
        r.dzg = ct_alloc(g);
        r.kg = ct_alloc(g);
        r.labf = ct_alloc((size_t)B * sizeof(float));
        r.labg = ct_alloc((size_t)B * sizeof(int32_t));
        if (!r.zg || !r.zt || !r.dzg || !r.kg || !r.labf || !r.labg) st = CT_ERR_NOMEM;
    }
    if (!r.ws || !r.dz || st) {
        st = CT_ERR_NOMEM;
        goto done;
    }
    if (rank == 0 && (st = make_dir(c->out))) goto done;
    char ckpt[600], metrics[600];
    snprintf(ckpt, sizeof ckpt, "%s/checkpoint.safetensors", c->out);
    snprintf(metrics, sizeof metrics, "%s/metrics.jsonl", c->out);

    ckpt_state cs = {c, &r.m, moco ? &r.key : NULL, &r.opt, moco ? &r.queue : NULL, 0, 0, 0};
    if (c->resume[0]) {
        if ((st = ckpt_resume(c->resume, &cs))) goto done;
        if (c->progress >= 0) fprintf(stderr, "resumed from %s at epoch %d, step %lld\n", c->resume, cs.epoch, (long long)cs.step);
    }
    if ((st = ct_loader_init(&r.loader, &r.train, &r.aug, B, 2, 1, c->seed, c->loader_threads))) goto done;
    r.have_loader = 1;
    if (nloc && (st = ct_loader_set_local(&r.loader, &r.laug, nloc))) goto done;
    if (P > 1 && (st = ct_loader_shard(&r.loader, rank, P))) goto done;
    const int64_t steps_per_epoch = r.loader.n_batches, total = steps_per_epoch * c->epochs;
    const int64_t warmup = (int64_t)(c->warmup_epochs * steps_per_epoch);
    const int last_epoch = c->stop_after > 0 && c->stop_after < c->epochs ? c->stop_after : c->epochs;
    const size_t img = (size_t)(r.train.c * r.aug.out_h * r.aug.out_w);

    for (int epoch = cs.epoch; epoch < last_epoch; epoch++) {
        double te0 = now_s(), sum_loss = 0, sum_top1 = 0, sum_pos = 0, sum_neg = 0;
        int64_t nsteps = 0;
        if ((st = ct_loader_start_epoch(&r.loader, epoch))) goto done;
        for (;;) {
            ct_batch *bt;
            const float *keys = NULL;
            if ((st = ct_loader_next(&r.loader, &bt))) goto done;
            if (!bt) break;
            float lr = ct_lr_schedule(c->lr, cs.step, warmup, total, c->final_lr_frac);
            ct_loss_stats ls;
            tm->dropout_step = (uint64_t)cs.step;
            r.tl.dropout_step = (uint64_t)cs.step;
            r.key.dropout_step = (uint64_t)cs.step;
            /* The objective sees the global batch: with P processes the local
             * embeddings are all-gathered (global negatives) and each process keeps
             * its own rows of the gradient. */
            const int64_t nb = bt->n, ng = nb * P;
            float *dz = P > 1 ? r.dzg : r.dz;
            if (moco) {
                /* queries from view 1, keys from view 2 through the momentum encoder */
                if ((st = ct_model_forward(tm, bt->x, nb, 1, 1))) goto done;
                if ((st = ct_model_forward(&r.key, bt->x + (size_t)nb * img, nb, 1, 1))) goto done;
                const float *q = ct_model_embedding(tm), *k = ct_model_embedding(&r.key);
                if (P > 1) {
                    if ((st = gather_rows(r.zg, r.zt, q, 1, nb, D, P)) || (st = gather_rows(r.kg, r.zt, k, 1, nb, D, P))) goto done;
                    q = r.zg;
                    k = r.kg;
                }
                keys = k;
                st = ct_moco_loss(&ls, dz, q, k, &r.queue, ng, c->temperature, r.ws, r.ws_bytes);
                if (st && st != CT_ERR_NUMERIC) goto done;
            } else {
                if ((st = ct_model_forward(tm, bt->x, 2 * nb, 1, 1))) goto done;
                const float *z = ct_model_embedding(tm);
                const int32_t *labels = c->method == CT_METHOD_SUPCON ? bt->labels : r.idx;
                if (nloc) { /* all views' embeddings in one (V * nb, D) block, view-major */
                    if ((st = ct_model_forward(&r.tl, bt->xl, nloc * nb, 1, 1))) goto done;
                    memcpy(r.zc, z, (size_t)(2 * nb * D) * sizeof(float));
                    memcpy(r.zc + 2 * nb * D, ct_model_embedding(&r.tl), (size_t)(nloc * nb * D) * sizeof(float));
                    z = r.zc;
                }
                if (P > 1) {
                    if ((st = gather_rows(r.zg, r.zt, z, V, nb, D, P))) goto done;
                    z = r.zg;
                    if (c->method == CT_METHOD_SUPCON) {
                        float lf[4096];
                        float *lloc = nb <= 4096 ? lf : r.dz; /* r.dz is free until the scatter */
                        for (int64_t i = 0; i < nb; i++) lloc[i] = (float)bt->labels[i]; /* exact below 2^24 */
                        if ((st = ct_dist_allgather_f32(r.labf, lloc, (size_t)nb))) goto done;
                        for (int64_t i = 0; i < ng; i++) r.labg[i] = (int32_t)r.labf[i];
                        labels = r.labg;
                    }
                }
                /* SupCon's positives are the same label; multi-crop SimCLR's the same sample */
                if (c->method == CT_METHOD_SUPCON || nloc)
                    st = ct_supcon_loss(&ls, dz, z, labels, ng, V, D, c->temperature, r.ws, r.ws_bytes);
                else
                    st = ct_ntxent_loss(&ls, dz, z, ng, D, c->temperature, r.ws, r.ws_bytes);
                if (st && st != CT_ERR_NUMERIC) goto done;
            }
            if (P > 1 && !(st == CT_ERR_NUMERIC || !isfinite(ls.loss))) scatter_rows(r.dz, r.dzg, moco ? 1 : V, nb, D, rank, P);
            if (st == CT_ERR_NUMERIC || !isfinite(ls.loss)) {
                if (c->progress == 1) fputc('\n', stderr);
                st = ct_error(CT_ERR_NUMERIC,
                              "train: loss became %g at epoch %d step %lld (lr %g); stopped, the last good checkpoint "
                              "(%s) is kept; try a lower --lr",
                              st ? NAN : ls.loss, epoch + 1, (long long)cs.step, lr, cs.epoch > 0 || c->resume[0] ? ckpt : "none yet");
                goto done;
            }
            ct_model_zero_grad(tm);
            if ((st = ct_model_backward(tm, r.dz))) goto done;
            /* the local twin's backward adds to the same gradient slab */
            if (nloc && (st = ct_model_backward(&r.tl, r.dz + 2 * nb * D))) goto done;
            /* one all-reduce of the flat gradient buffer: each process's gradient is
             * of the global mean loss w.r.t. its own rows, so the sum is the total */
            if (P > 1 && (st = ct_dist_allreduce_f32(r.m.grad, r.m.nparam_floats))) goto done;
            if ((st = ct_optim_step(&r.opt, r.m.param, r.m.grad, r.m.params, r.m.nparams, lr))) goto done;
            if (moco) {
                ct_momentum_update(r.key.param, r.m.param, r.m.nparam_floats, c->moco_m);
                if ((st = ct_moco_queue_push(&r.queue, keys, bt->n * P))) goto done;
            }
            cs.step++;
            nsteps++;
            if (P > 1 && c->dist_check > 0 && cs.step % c->dist_check == 0) {
                uint64_t h = param_hash(&r.m);
                char what[64];
                snprintf(what, sizeof what, "the parameters after step %lld", (long long)cs.step);
                if ((st = ct_dist_check_same(what, &h, sizeof h))) goto done;
            }
            sum_loss += ls.loss;
            sum_top1 += ls.top1;
            sum_pos += ls.pos_sim;
            sum_neg += ls.neg_sim;
            double el = now_s() - te0, ips = (double)(nsteps * B) / (el > 0 ? el : 1e-9);
            double eta = (double)((last_epoch - epoch) * steps_per_epoch - nsteps) * B / (ips > 0 ? ips : 1);
            progress_line(c, epoch, bt->batch_no, steps_per_epoch, sum_loss / nsteps, sum_top1 / nsteps, ips, eta);
        }
        double secs = now_s() - te0;
        cs.epoch = epoch + 1;
        res->epochs_done = cs.epoch;
        res->steps = cs.step;
        res->final_loss = sum_loss / (nsteps ? nsteps : 1);
        res->final_top1 = sum_top1 / (nsteps ? nsteps : 1);
        if (c->progress == 1) fputc('\n', stderr);
        char line[768];
        int len = snprintf(line, sizeof line,
                           "{\"epoch\": %d, \"step\": %lld, \"loss\": %.6f, \"top1\": %.6f, \"pos_sim\": %.6f, "
                           "\"neg_sim\": %.6f, \"lr\": %.6g, \"images_per_s\": %.1f, \"epoch_s\": %.2f",
                           cs.epoch, (long long)cs.step, res->final_loss, res->final_top1, sum_pos / (nsteps ? nsteps : 1),
                           sum_neg / (nsteps ? nsteps : 1), ct_lr_schedule(c->lr, cs.step - 1, warmup, total, c->final_lr_frac),
                           (double)(nsteps * B) / secs, secs);
        int is_last = cs.epoch == c->epochs;
        if (rank == 0 && c->eval_every > 0 && (cs.epoch % c->eval_every == 0) && !is_last) {
            ct_eval_result er;
            if ((st = monitor(&r, c, 0, &er))) goto done;
            if (er.whitened) cs.whiten_epoch = cs.epoch;
            len += snprintf(line + len, sizeof line - (size_t)len, ", \"knn_top1\": %.4f", er.knn_top1);
            if (c->progress >= 0) fprintf(stderr, "epoch %d: kNN top-1 %.2f%%\n", cs.epoch, 100 * er.knn_top1);
        }
        snprintf(line + len, sizeof line - (size_t)len, "}\n");
        if (rank == 0 && (st = append_line(metrics, line))) goto done;
        if (c->progress == 0)
            fprintf(stderr, "epoch %d/%d loss %.4f acc %.3f %.0f img/s %.1fs\n", cs.epoch, c->epochs, res->final_loss,
                    res->final_top1, (double)(nsteps * B) / secs, secs);
        if (rank == 0 && (st = ckpt_save(ckpt, &cs))) goto done;
    }

    if (rank == 0 && cs.epoch == c->epochs) {
        ct_eval_result er;
        if ((st = monitor(&r, c, 1, &er))) goto done;
        /* the final checkpoint carries the whitening fit on the final encoder */
        if (er.whitened) {
            cs.whiten_epoch = cs.epoch;
            if ((st = ckpt_save(ckpt, &cs))) goto done;
        }
        res->knn_top1 = er.knn_top1;
        res->knn_top1_raw = er.knn_top1_raw;
        res->probe_top1 = er.probe_top1;
        char path[600], line[512];
        snprintf(path, sizeof path, "%s/eval.json", c->out);
        snprintf(line, sizeof line,
                 "{\"knn_top1\": %.4f, \"knn_top5\": %.4f, \"probe_top1\": %.4f, \"knn_top1_unwhitened\": %.4f, "
                 "\"whitened\": %s, \"k\": %d, \"knn_temperature\": %g, \"n_train\": %lld, \"n_test\": %lld, "
                 "\"epochs\": %d}\n",
                 er.knn_top1, er.knn_top5, er.probe_top1, er.knn_top1_raw, er.whitened ? "true" : "false", c->knn_k,
                 c->knn_t, (long long)er.n_train, (long long)er.n_test, cs.epoch);
        remove(path);
        if ((st = append_line(path, line))) goto done;
        snprintf(line, sizeof line,
                 "{\"final\": true, \"epoch\": %d, \"knn_top1\": %.4f, \"knn_top1_unwhitened\": %.4f, \"probe_top1\": %.4f}\n",
                 cs.epoch, er.knn_top1, er.knn_top1_raw, er.probe_top1);
        if ((st = append_line(metrics, line))) goto done;
    }
done:
    res->seconds = now_s() - t0;
    run_free(&r);
    return st;
}
