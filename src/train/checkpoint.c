/* checkpoint.c: the trainer's checkpoint, a safetensors file.
 *
 * Tensors: the model's parameters and buffers under their PyTorch names, the
 * optimizer's moments (ct_optim_state), and for MoCo the key encoder
 * ("momentum.<name>") and the queue ("moco.queue"). Metadata: the model's
 * configuration (enough to rebuild it alone, ct_checkpoint_load_model), the
 * training options that decide the bits, the counters a resume continues from, and
 * the training data's per-channel normalisation (data.mean, data.std: one value, or
 * three separated by commas; absent in older checkpoints), which a caller embedding
 * its own images with ct_model_embed needs.
 * Nothing read from a file is trusted before it is checked: every integer against
 * its range, the model it describes against the tensors it holds. */
#include "internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CKPT_FORMAT "contrast-checkpoint"
#define CKPT_VERSION "1"

/* ---- writing ------------------------------------------------------------------------ */

/* F32 tensor entry over a flat buffer. */
static void flat_tensor(ct_st_tensor *t, const char *name, float *data, int ndim, int64_t d0, int64_t d1) {
    memset(t, 0, sizeof *t);
    t->name = name;
    t->dtype = CT_DTYPE_F32;
    t->ndim = ndim;
    t->shape[0] = d0;
    t->shape[1] = d1;
    t->data = data;
}

/* The tensor table of s, allocated to its count (*t, *names: free both). */
static ct_status ckpt_tensors(const ckpt_state *s, ct_st_tensor **t, char **names, int *count) {
    const ct_model *m = s->m, *k = s->key;
    ct_optim_buffer ob[4];
    int nob = ct_optim_state(s->opt, ob, 4), nk = k ? k->nparams + k->nbufs : 0;
    int cap = m->nparams + m->nbufs + nob + nk + 1, n = 0;
    const size_t name_cap = CT_MAX_NAME + 16;
    *t = calloc((size_t)cap, sizeof **t);
    *names = calloc((size_t)(nk ? nk : 1), name_cap);
    if (!*t || !*names) return CT_ERR_NOMEM;
    for (int i = 0; i < m->nparams; i++) ct_st_tensor_from_info(&(*t)[n++], &m->params[i], m->param);
    for (int i = 0; i < m->nbufs; i++) ct_st_tensor_from_info(&(*t)[n++], &m->bufs[i], m->buf);
    for (int i = 0; i < nob; i++) flat_tensor(&(*t)[n++], ob[i].name, ob[i].data, 1, (int64_t)ob[i].numel, 0);
    for (int i = 0; i < nk; i++) {
        const ct_tensor_info *ti = i < k->nparams ? &k->params[i] : &k->bufs[i - k->nparams];
        char *name = *names + (size_t)i * name_cap;
        ct_st_tensor_from_info(&(*t)[n], ti, i < k->nparams ? k->param : k->buf);
        snprintf(name, name_cap, "momentum.%s", ti->name);
        (*t)[n++].name = name;
    }
    if (s->queue) flat_tensor(&(*t)[n++], "moco.queue", s->queue->keys, 2, s->queue->k, s->queue->d);
    *count = n;
    return CT_OK;
}

#define META_MAX 72

/* The metadata of s into meta (values in v); returns the count. */
static int ckpt_meta_kv(const ckpt_state *s, ct_st_kv *meta, char (*v)[64]) {
    const ct_train_config *c = s->c;
    const ct_model_config *mc = &s->m->cfg;
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
    if (s->tokenizer) { /* text methods */
        META("train.vocab", "%d", c->model.vocab);
        META("train.symmetric", "%d", c->symmetric);
    }
    META("train.optim_step", "%lld", (long long)s->opt->step);
    if (s->queue) {
        META("moco.ptr", "%lld", (long long)s->queue->ptr);
        META("moco.pushed", "%llu", (unsigned long long)s->queue->pushed);
        META("moco.m", "%.9g", c->moco_m);
    }
    if (s->data) { /* the normalisation contrast embed applies to this data, per channel */
        const float *mu = s->data->mean, *sd = s->data->std;
        int nc = s->data->c;
        if (nc == 1) {
            META("data.mean", "%.9g", mu[0]);
            META("data.std", "%.9g", sd[0]);
        } else {
            META("data.mean", "%.9g,%.9g,%.9g", mu[0], mu[1], mu[2]);
            META("data.std", "%.9g,%.9g,%.9g", sd[0], sd[1], sd[2]);
        }
    }
#undef META
    /* the free-form strings last, unbounded by v's width */
    meta[nm].key = "train.data";
    meta[nm++].value = c->data;
    meta[nm].key = "train.augment";
    meta[nm++].value = c->augment;
    meta[nm].key = "train.local_augment";
    meta[nm++].value = c->local_augment;
    if (s->tokenizer) {
        meta[nm].key = "tokenizer";
        meta[nm++].value = s->tokenizer;
    }
    return nm;
}

ct_status ckpt_save(const char *path, const ckpt_state *s) {
    ct_st_tensor *t = NULL;
    char *names = NULL, v[META_MAX][64];
    ct_st_kv meta[META_MAX];
    int n = 0;
    ct_status st = ckpt_tensors(s, &t, &names, &n);
    if (st) st = ct_error(st, "%s: no memory for the checkpoint's tensor table", path);
    else st = ct_st_write(path, t, n, meta, ckpt_meta_kv(s, meta, v));
    free(t);
    free(names);
    return st;
}

/* ---- reading ------------------------------------------------------------------------ */

ct_status train_error_in(ct_status st, const char *path, const char *what) {
    char msg[1024];
    snprintf(msg, sizeof msg, "%s", ct_errmsg()); /* copied first: the message buffer is the destination */
    return ct_error(st, "%s: %s%s", path, what, msg);
}

/* The integer metadata `key` in [lo, hi]; dflt when absent, or an error when
 * dflt < lo (the key is required). */
ct_status ckpt_meta_int(const ct_st_file *f, const char *key, long long lo, long long hi, long long dflt,
                     long long *out) {
    const char *s = ct_st_meta(f, key);
    *out = dflt;
    if (!s && dflt >= lo) return CT_OK;
    if (!s) return ct_error(CT_ERR_FORMAT, "%s: checkpoint metadata lacks '%s'", ct_st_path(f), key);
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (end == s || *end || (errno && errno != ERANGE))
        return ct_error(CT_ERR_FORMAT, "%s: metadata '%s' = '%s' is not an integer", ct_st_path(f), key, s);
    if (errno == ERANGE || v < lo || v > hi)
        return ct_error(CT_ERR_FORMAT, "%s: metadata '%s' = %s is outside its range [%lld, %lld]", ct_st_path(f), key,
                        s, lo, hi);
    *out = v;
    return CT_OK;
}

/* The model configuration stored under the metadata keys "<prefix>model.*". */
ct_status ckpt_model_config(const ct_st_file *f, const char *prefix, ct_model_config *mc) {
    char key[64];
#define KEY(k) (snprintf(key, sizeof key, "%s%s", prefix, k), key)
    const char *fmt = ct_st_meta(f, "format");
    if (!fmt || strcmp(fmt, CKPT_FORMAT))
        return ct_error(CT_ERR_FORMAT, "%s: not a contrast checkpoint (metadata format is '%s')", ct_st_path(f),
                        fmt ? fmt : "missing");
    ct_model_config_default(mc);
    const char *enc = ct_st_meta(f, KEY("model.encoder"));
    if (!enc) return ct_error(CT_ERR_FORMAT, "%s: checkpoint metadata lacks '%smodel.encoder'", ct_st_path(f), prefix);
    ct_status st = ct_encoder_parse(enc, &mc->encoder);
    if (st) return train_error_in(st, ct_st_path(f), "");
    static const char *keys[] = {"model.width", "model.in_c", "model.in_h", "model.in_w",
                                 "model.head_hidden", "model.head_out", "model.head_bn", "model.last_width"};
    int *dst[] = {&mc->width, &mc->in_c, &mc->in_h, &mc->in_w, &mc->head_hidden, &mc->head_out, &mc->head_bn,
                  &mc->last_width};
    for (int i = 0; i < 8; i++) {
        long long v; /* model.last_width is absent in older checkpoints: 0; head_hidden -1: one linear */
        if ((st = ckpt_meta_int(f, KEY(keys[i]), i == 4 ? -1 : 0, i == 7 ? 65536 : 1 << 20, i == 7 ? 0 : -2, &v)))
            return st;
        *dst[i] = (int)v;
    }
    if (mc->encoder == CT_ENC_TRANSFORMER || mc->encoder == CT_ENC_VIT) {
        /* the transformer keys, each range-checked here (ct_model_count checks the rest) */
        static const char *tkeys[] = {"model.depth", "model.heads", "model.patch", "model.vocab", "model.context",
                                      "model.causal"};
        int *tdst[] = {&mc->depth, &mc->heads, &mc->patch, &mc->vocab, &mc->context, &mc->causal};
        const long long lo[] = {1, 1, 1, 1, 1, 0}, hi[] = {1024, 4096, 4096, 1 << 30, 65536, 1};
        for (int i = 0; i < 6; i++) {
            long long v;
            if ((st = ckpt_meta_int(f, KEY(tkeys[i]), lo[i], hi[i], -1, &v))) return st;
            *tdst[i] = (int)v;
        }
        const char *dv = ct_st_meta(f, KEY("model.dropout")), *pv = ct_st_meta(f, KEY("model.pool"));
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
    const char *wv = ct_st_meta(f, KEY("model.whiten")); /* absent in checkpoints before whitening */
    if (wv) {
        char *end;
        double w = strtod(wv, &end);
        if (end == wv || *end || !(w >= 0 && w < 1))
            return ct_error(CT_ERR_FORMAT, "%s: metadata 'model.whiten' = '%s' is not a shrinkage in [0, 1)",
                            ct_st_path(f), wv);
        mc->whiten = (float)w;
    }
#undef KEY
    return CT_OK;
}

static ct_status model_config_from(const ct_st_file *f, ct_model_config *mc) {
    return ckpt_model_config(f, "", mc);
}

/* The counters a resume continues from, each in its range. */
static ct_status read_counters(const ct_st_file *f, ckpt_meta *cm) {
    long long ep, step, ostep, wep;
    ct_status st;
    if ((st = ckpt_meta_int(f, "train.epoch", 0, CKPT_MAX_EPOCHS, -1, &ep)) ||
        (st = ckpt_meta_int(f, "train.step", 0, CKPT_MAX_STEPS, -1, &step)) ||
        (st = ckpt_meta_int(f, "train.optim_step", 0, CKPT_MAX_STEPS, -1, &ostep)) ||
        (st = ckpt_meta_int(f, "whiten.epoch", 0, ep, 0, &wep)))
        return st;
    cm->epoch = (int)ep;
    cm->step = step;
    cm->optim_step = ostep;
    cm->whiten_epoch = (int)wep;
    return CT_OK;
}

/* The epoch the stored whitening was fit at matches the parameters' epoch. */
static ct_status whiten_fresh(const ct_st_file *f, int *fresh) {
    long long we, ep;
    *fresh = 0;
    ct_status st = ckpt_meta_int(f, "whiten.epoch", 0, CKPT_MAX_EPOCHS, 0, &we);
    if (!st && we > 0 && !(st = ckpt_meta_int(f, "train.epoch", 0, CKPT_MAX_EPOCHS, -1, &ep))) *fresh = we == ep;
    return st;
}

/* Loads the model's parameters and buffers; every tensor must be present with its shape. */
ct_status ckpt_load_model_tensors(const ct_st_file *f, ct_model *m, const char *prefix) {
    int cap = m->nparams > m->nbufs ? m->nparams : m->nbufs;
    ct_tensor_info *tab = calloc((size_t)(cap ? cap : 1), sizeof *tab);
    if (!tab) return ct_error(CT_ERR_NOMEM, "%s: no memory for a table of %d tensors", ct_st_path(f), cap);
    ct_status st = CT_OK;
    for (int pass = 0; pass < 2 && !st; pass++) {
        const ct_tensor_info *src = pass ? m->bufs : m->params;
        int cnt = pass ? m->nbufs : m->nparams;
        for (int i = 0; i < cnt; i++) {
            tab[i] = src[i];
            snprintf(tab[i].name, CT_MAX_NAME, "%s%s", prefix, src[i].name);
        }
        st = ct_st_read_table(f, tab, cnt, pass ? m->buf : m->param);
    }
    free(tab);
    return st;
}

/* The model described by the metadata must fit in the file's F32 tensors: checked
 * before building it, so a header claiming a huge model never drives an allocation. */
ct_status ckpt_check_model_fits(const ct_st_file *f, const ct_model_config *mc) {
    size_t need, have = 0;
    ct_status st = ct_model_count(mc, &need);
    if (st) return train_error_in(st, ct_st_path(f), "checkpoint metadata describes an invalid model: ");
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
    const char *method = ct_st_meta(f, "train.method");
    if (method && ct_method_parse(method) == CT_METHOD_CLIP)
        st = ct_error(CT_ERR_FORMAT, "%s: a clip checkpoint holds two towers: load it with ct_clip_load (contrast "
                                     "zeroshot, search)", path);
    else if ((st = model_config_from(f, &mc)) == CT_OK && (st = ckpt_check_model_fits(f, &mc)) == CT_OK) {
        if ((st = ct_model_init(m, &mc)))
            st = train_error_in(st, path, "cannot build the checkpoint's model: ");
        else if ((st = ckpt_load_model_tensors(f, m, "")) || (st = whiten_fresh(f, &m->whiten_fitted)))
            ct_model_free(m);
    }
    ct_st_close(f);
    return st;
}

/* ---- resuming ----------------------------------------------------------------------- */

/* The transformer settings of two configurations agree (always, for other encoders). */
static int same_transformer(const ct_model_config *a, const ct_model_config *b) {
    if (a->encoder != CT_ENC_TRANSFORMER && a->encoder != CT_ENC_VIT) return 1;
    return a->depth == b->depth && a->heads == b->heads && a->patch == b->patch && a->vocab == b->vocab &&
           a->context == b->context && a->causal == b->causal && a->dropout == b->dropout && a->pool == b->pool;
}

static ct_status same_model(const ct_st_file *f, const ct_train_config *c, const ct_model_config *want) {
    ct_model_config mc;
    ct_status st = model_config_from(f, &mc);
    if (st) return st;
    if (mc.encoder != want->encoder || mc.width != want->width || mc.last_width != want->last_width ||
        mc.in_c != want->in_c || mc.in_h != want->in_h || mc.in_w != want->in_w ||
        mc.head_hidden != want->head_hidden || mc.head_out != want->head_out || mc.head_bn != want->head_bn ||
        (mc.whiten > 0) != (want->whiten > 0) || !same_transformer(&mc, want))
        return ct_error(CT_ERR_ARG,
                        "%s: checkpoint holds a different model (%s width %d, last width %d, input %dx%dx%d, head "
                        "%d/%d, whitening %g) than requested (%s width %d, last width %d, input %dx%dx%d, head %d/%d, "
                        "whitening %g)",
                        ct_st_path(f), ct_encoder_name(mc.encoder), mc.width, mc.last_width, mc.in_c, mc.in_h,
                        mc.in_w, mc.head_hidden, mc.head_out, mc.whiten, ct_encoder_name(want->encoder), want->width,
                        want->last_width, want->in_c, want->in_h, want->in_w, want->head_hidden, want->head_out,
                        want->whiten);
    const char *method = ct_st_meta(f, "train.method");
    if (!method || ct_method_parse(method) != (int)c->method)
        return ct_error(CT_ERR_ARG, "%s: checkpoint was trained with method '%s', not '%s'", ct_st_path(f),
                        method ? method : "?", ct_method_name(c->method));
    return CT_OK;
}

/* The training options that decide the bits of the remaining epochs, compared as
 * ckpt_meta_kv writes them ("train.epochs" is not among them: a longer run continues
 * a finished one, with the schedule of the new length). Keys an older checkpoint
 * lacks are not compared. Appends "key: old -> new" for each difference. */
static void config_changes(const ct_st_file *f, const ct_train_config *c, char *out, size_t cap) {
    char v[16][64];
    const char *key[16], *now[16];
    int n = 0;
#define NOW(k, ...) (snprintf(v[n], sizeof v[n], __VA_ARGS__), key[n] = k, now[n] = v[n], n++)
    NOW("train.batch", "%lld", (long long)c->batch);
    NOW("train.lr", "%.9g", c->lr);
    NOW("train.optimizer", "%s", ct_optim_type_name(c->optim.type));
    NOW("train.weight_decay", "%.9g", c->optim.weight_decay);
    NOW("train.temperature", "%.9g", c->temperature);
    NOW("train.seed", "%llu", (unsigned long long)c->seed);
    NOW("train.limit", "%lld", (long long)c->limit);
    NOW("train.view_size", "%d", c->view_size);
    NOW("train.local_crops", "%d", c->local_crops);
    NOW("train.local_size", "%d", c->local_size);
    if (c->method == CT_METHOD_MOCO) NOW("moco.m", "%.9g", c->moco_m);
    if (ct_method_is_text(c->method)) {
        NOW("train.vocab", "%d", c->model.vocab);
        NOW("train.symmetric", "%d", c->symmetric);
    }
#undef NOW
    key[n] = "train.data", now[n++] = c->data;
    key[n] = "train.augment", now[n++] = c->augment;
    key[n] = "train.local_augment", now[n++] = c->local_augment;
    size_t len = 0;
    out[0] = '\0';
    for (int i = 0; i < n && len < cap; i++) {
        const char *was = ct_st_meta(f, key[i]);
        if (!was || !strcmp(was, now[i])) continue;
        int w = snprintf(out + len, cap - len, "%s%s: '%s' -> '%s'", len ? ", " : "", key[i], was, now[i]);
        len += w > 0 ? (size_t)w : 0;
    }
}

ct_status ckpt_check(const char *path, const ct_train_config *c, const ct_model_config *mc, ckpt_meta *meta,
                     char *changes, size_t changes_cap) {
    ct_st_file *f;
    ct_status st = ct_st_open(&f, path);
    if (st) return st;
    if (!(st = same_model(f, c, mc)) && !(st = read_counters(f, meta))) {
        config_changes(f, c, changes, changes_cap);
        if (changes[0] && !c->resume_allow_changes)
            st = ct_error(CT_ERR_ARG,
                          "%s: this run's options differ from the checkpoint's (%s), so it would not continue the "
                          "run bit for bit; resume with the checkpoint's options, or allow the change "
                          "(--allow-changes)",
                          path, changes);
    }
    ct_st_close(f);
    return st;
}

static ct_status load_queue(const ct_st_file *f, ct_moco_queue *q) {
    int64_t shape[2] = {q->k, q->d};
    long long ptr, pushed;
    ct_status st;
    if ((st = ct_st_read_f32(f, "moco.queue", q->keys, (size_t)(q->k * q->d), 2, shape)) ||
        (st = ckpt_meta_int(f, "moco.ptr", 0, q->k - 1, -1, &ptr)) ||
        (st = ckpt_meta_int(f, "moco.pushed", 0, INT64_MAX, -1, &pushed)))
        return st;
    q->ptr = ptr;
    q->pushed = (uint64_t)pushed;
    return CT_OK;
}

ct_status ckpt_resume(const char *path, ckpt_state *s) {
    ct_st_file *f;
    ct_status st = ct_st_open(&f, path);
    if (st) return st;
    ckpt_meta cm;
    if ((st = same_model(f, s->c, &s->m->cfg)) || (st = read_counters(f, &cm)) ||
        (st = ckpt_load_model_tensors(f, s->m, "")))
        goto out;
    ct_optim_buffer ob[4];
    int nob = ct_optim_state(s->opt, ob, 4);
    for (int i = 0; i < nob; i++) {
        int64_t shape[1] = {(int64_t)ob[i].numel};
        if ((st = ct_st_read_f32(f, ob[i].name, ob[i].data, ob[i].numel, 1, shape))) goto out;
    }
    if (s->key && (st = ckpt_load_model_tensors(f, s->key, "momentum."))) goto out;
    if (s->queue && (st = load_queue(f, s->queue))) goto out;
    s->opt->step = cm.optim_step;
    s->epoch = cm.epoch;
    s->step = cm.step;
    s->whiten_epoch = cm.whiten_epoch;
out:
    ct_st_close(f);
    return st;
}
