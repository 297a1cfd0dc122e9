/* features.c: what a trained encoder is for. Features of a dataset (eval mode, no
 * augmentation), the ZCA whitening fit on them, and the evaluation of a model (or of
 * raw pixels) by kNN and linear probe of the train split against the test split. */
#include "internal.h"

#include <stdio.h>
#include <string.h>

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

/* (internal.h) */
ct_status features_eval_model(ct_eval_result *r, ct_model *m, const ct_dataset *tr, const ct_dataset *te, int k,
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

void ct_eval_config_default(ct_eval_config *c) {
    memset(c, 0, sizeof *c);
    snprintf(c->data, sizeof c->data, "fashion-mnist");
    c->knn_k = 200;
    c->knn_t = 0.1f;
    c->whiten = 1;
}

ct_status ct_evaluate(ct_eval_result *r, ct_model *m, const ct_eval_config *c) {
    ct_dataset tr, te;
    memset(&tr, 0, sizeof tr);
    memset(&te, 0, sizeof te);
    memset(r, 0, sizeof *r);
    r->knn_top1_raw = -1;
    float *ftr = NULL, *fte = NULL;
    int64_t D = 0;
    ct_status st = ct_dataset_load(&tr, c->data, 1);
    if (!st) st = ct_dataset_load(&te, c->data, 0);
    if (!st) ct_dataset_limit(&tr, c->limit);
    if (!st && c->raw) {
        st = raw_features(&ftr, &D, &tr);
        if (!st) st = raw_features(&fte, &D, &te);
        if (!st) st = eval_features(r, ftr, &tr, fte, &te, D, c->knn_k, c->knn_t, c->probe);
    } else if (!st) {
        /* a whitening fit for other parameters (a checkpoint from before the end of its run) is refit here */
        r->whitening_refit = c->whiten && has_whitening(m) && !m->whiten_fitted;
        st = features_eval_model(r, m, &tr, &te, c->knn_k, c->knn_t, c->probe, c->whiten, r->whitening_refit, 1);
    }
    ct_free(ftr);
    ct_free(fte);
    ct_dataset_free(&tr);
    ct_dataset_free(&te);
    return st;
}
