/* text.c: the trainer's text path and what a text checkpoint is for.
 *
 * Training (SimCSE, pairs): the datasets, the tokenizer (trained on the training
 * split at the start of a fresh run, read back from the checkpoint's "tokenizer"
 * metadata on a resume), the training texts tokenized once into rows of T ids, and
 * each step's batch assembled from ct_text_epoch_plan's batches (never the same text
 * twice in a batch). Use: embeddings of texts (ct_embed_texts), the evaluation of a
 * text checkpoint (retrieval, kNN, probe) and the search index. */
#include "internal.h"

#include "contrast/eval.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int ct_method_is_text(ct_method m) { return m == CT_METHOD_SIMCSE || m == CT_METHOD_PAIRS; }

int ct_data_is_text(const char *spec) {
    return !strncmp(spec, "text:", 5) || !strncmp(spec, "pairs:", 6) || !strcmp(spec, "debian-descriptions");
}

/* ---- tokenizer in a checkpoint ---------------------------------------------------- */

ct_status ct_checkpoint_load_tokenizer(ct_tokenizer **tok, const char *path) {
    *tok = NULL;
    ct_st_file *f;
    ct_status st = ct_st_open(&f, path);
    if (st) return st;
    const char *s = ct_st_meta(f, "tokenizer");
    if (!s) st = ct_error(CT_ERR_FORMAT, "%s: not a text checkpoint (no 'tokenizer' in its metadata)", path);
    else if ((st = ct_tokenizer_deserialize(tok, s, strlen(s), path))) *tok = NULL;
    ct_st_close(f);
    return st;
}

/* ---- training -------------------------------------------------------------------- */

/* The texts items of the step's batch draw from: a pairs dataset's anchors and
 * positives for the pairs method; for SimCSE every text (a shallow view without
 * the pairs, so the planner plans texts). */
static const ct_text_dataset *plan_source(text_state *t, ct_method method) {
    if (method == CT_METHOD_PAIRS) return &t->train;
    t->texts_view = t->train;
    t->texts_view.npairs = 0;
    t->texts_view.anchor = t->texts_view.positive = NULL;
    t->texts_view.label = NULL;
    return &t->texts_view;
}

ct_status text_setup(text_state *t, const ct_train_config *c, int64_t T) {
    memset(t, 0, sizeof *t);
    t->epoch = -1;
    ct_status st = ct_text_dataset_load(&t->train, c->data, 1);
    if (st) return st;
    if (!strcmp(c->data, "debian-descriptions")) {
        if ((st = ct_text_dataset_load(&t->test, c->data, 0))) return st;
        t->have_test = 1;
    }
    if (c->method == CT_METHOD_PAIRS && t->train.npairs == 0)
        return ct_error(CT_ERR_ARG, "train: --method pairs needs pairs (pairs:FILE or debian-descriptions), and %s "
                                    "holds single texts; use --method simcse",
                        c->data);
    if (c->limit > 0) { /* the first N items: pairs for the pairs method, texts for SimCSE */
        if (c->method == CT_METHOD_PAIRS && t->train.npairs > c->limit) t->train.npairs = c->limit;
        if (c->method == CT_METHOD_SIMCSE && t->train.ntexts > c->limit) t->train.ntexts = c->limit;
    }
    const int64_t items = c->method == CT_METHOD_PAIRS ? t->train.npairs : t->train.ntexts;
    if (items < c->batch)
        return ct_error(CT_ERR_ARG, "train: %s has %lld training %s, fewer than one batch of %lld", c->data,
                        (long long)items, c->method == CT_METHOD_PAIRS ? "pairs" : "texts", (long long)c->batch);
    if (c->resume[0]) {
        if ((st = ct_checkpoint_load_tokenizer(&t->tok, c->resume))) return st;
    } else {
        ct_tokenizer_opts o = {c->model.vocab};
        if ((st = ct_tokenizer_train(&t->tok, (const char *const *)t->train.text, t->train.len, t->train.ntexts, &o)))
            return st;
    }
    if (!(t->tok_text = ct_tokenizer_serialize(t->tok, NULL)))
        return ct_error(CT_ERR_NOMEM, "train: no memory for the tokenizer's text");
    size_t n;
    if (ct_size_mul((size_t)t->train.ntexts, (size_t)T, &n))
        return ct_error(CT_ERR_NOMEM, "train: %lld texts of %lld tokens overflow", (long long)t->train.ntexts,
                        (long long)T);
    t->T = T;
    t->ids = ct_alloc(n * sizeof(int32_t));
    t->valid = ct_alloc(n);
    t->bids = ct_alloc((size_t)(2 * c->batch * T) * sizeof(int32_t));
    t->bvalid = ct_alloc((size_t)(2 * c->batch * T));
    if (!t->ids || !t->valid || !t->bids || !t->bvalid)
        return ct_error(CT_ERR_NOMEM, "train: no memory for %lld tokenized texts", (long long)t->train.ntexts);
    /* every text once, BOS and EOS around it, cut to T tokens */
    return ct_tokenizer_encode_batch(t->tok, (const char *const *)t->train.text, t->train.len, t->train.ntexts,
                                     CT_TOK_ADD_BOS | CT_TOK_ADD_EOS, T, t->ids, t->valid, NULL);
}

ct_status text_plan(text_state *t, const ct_train_config *c, int epoch) {
    if (t->epoch == epoch) return CT_OK;
    ct_text_epoch_free(&t->plan);
    t->epoch = -1;
    ct_status st = ct_text_epoch_plan(&t->plan, plan_source(t, c->method), c->batch, 1, c->seed, epoch);
    if (!st) t->epoch = epoch;
    return st;
}

/* row r of the batch <- training text i */
static void put_row(text_state *t, int64_t r, int64_t i) {
    memcpy(t->bids + r * t->T, t->ids + i * t->T, (size_t)t->T * sizeof(int32_t));
    memcpy(t->bvalid + r * t->T, t->valid + i * t->T, (size_t)t->T);
}

void text_batch(text_state *t, ct_method method, int64_t batch, int64_t b, int rank) {
    const int64_t *it = t->plan.item + t->plan.start[batch] + (int64_t)rank * b;
    for (int64_t j = 0; j < b; j++) {
        if (method == CT_METHOD_PAIRS) {
            put_row(t, j, t->train.anchor[it[j]]);
            put_row(t, b + j, t->train.positive[it[j]]);
        } else { /* SimCSE: the same text twice; the two copies draw different dropout masks */
            put_row(t, j, it[j]);
            put_row(t, b + j, it[j]);
        }
    }
}

void text_free(text_state *t) {
    ct_text_dataset_free(&t->train);
    ct_text_dataset_free(&t->test);
    ct_tokenizer_free(t->tok);
    free(t->tok_text);
    ct_free(t->ids);
    ct_free(t->valid);
    ct_free(t->bids);
    ct_free(t->bvalid);
    ct_text_epoch_free(&t->plan);
    memset(t, 0, sizeof *t);
}

/* ---- embeddings ------------------------------------------------------------------ */

ct_status ct_embed_texts(float *out, ct_model *m, const ct_tokenizer *tok, const char *const *texts,
                         const size_t *lens, int64_t n, ct_feature_kind which, int64_t batch) {
    if (!ct_model_takes_tokens(m))
        return ct_error(CT_ERR_ARG, "embed: the model reads images, not text (encoder %s)",
                        ct_encoder_name(m->cfg.encoder));
    if (ct_tokenizer_vocab_size(tok) > m->cfg.vocab)
        return ct_error(CT_ERR_ARG, "embed: the tokenizer has %d ids and the model's vocabulary %d",
                        (int)ct_tokenizer_vocab_size(tok), m->cfg.vocab);
    if (batch < 1) batch = 256;
    const int head = which == CT_FEAT_Z;
    const int64_t T = m->cfg.context, D = head ? ct_model_embed_dim(m) : ct_model_feature_dim(m);
    ct_status st = ct_model_prepare(m, batch);
    if (st) return st;
    int32_t *ids = ct_alloc((size_t)(batch * T) * sizeof(int32_t));
    uint8_t *valid = ct_alloc((size_t)(batch * T));
    if (!ids || !valid) st = ct_error(CT_ERR_NOMEM, "embed: no memory for a batch of %lld texts", (long long)batch);
    for (int64_t s = 0; s < n && !st; s += batch) {
        int64_t nb = n - s < batch ? n - s : batch;
        if ((st = ct_tokenizer_encode_batch(tok, texts + s, lens + s, nb, CT_TOK_ADD_BOS | CT_TOK_ADD_EOS, T, ids,
                                            valid, NULL)) ||
            (st = ct_model_forward_tokens(m, ids, valid, nb, 0, head)))
            break;
        memcpy(out + s * D, head ? ct_model_embedding(m) : ct_model_features(m), (size_t)(nb * D) * sizeof(float));
    }
    ct_free(ids);
    ct_free(valid);
    return st;
}

/* ---- evaluation ------------------------------------------------------------------ */

/* Embeddings of the n texts idx[0..n) of ds (n, D), ct_alloc'd. */
static ct_status embed_items(float **out, ct_model *m, const ct_tokenizer *tok, const ct_text_dataset *ds,
                             const int64_t *idx, int64_t n) {
    const int64_t D = ct_model_feature_dim(m);
    const char **tx = malloc((size_t)(n ? n : 1) * sizeof *tx);
    size_t *ln = malloc((size_t)(n ? n : 1) * sizeof *ln);
    *out = ct_alloc((size_t)(n * D) * sizeof(float) + 1);
    ct_status st = !tx || !ln || !*out ? ct_error(CT_ERR_NOMEM, "eval: no memory for %lld embeddings", (long long)n)
                                       : CT_OK;
    for (int64_t i = 0; !st && i < n; i++) {
        tx[i] = ds->text[idx[i]];
        ln[i] = ds->len[idx[i]];
    }
    if (!st) st = ct_embed_texts(*out, m, tok, tx, ln, n, CT_FEAT_H, 256);
    free(tx);
    free(ln);
    if (st) {
        ct_free(*out);
        *out = NULL;
    }
    return st;
}

/* Short -> long retrieval over the test pairs: the gallery is the distinct positive
 * texts, so each query has one relevant item and mAP@10 is MRR@10. */
static ct_status eval_retrieval(ct_text_eval_result *r, ct_model *m, const ct_tokenizer *tok,
                                const ct_text_dataset *te) {
    const int64_t n = te->npairs, D = ct_model_feature_dim(m);
    int64_t *gal = malloc((size_t)n * sizeof *gal), *slot = malloc((size_t)te->ntexts * sizeof *slot);
    int32_t *qlab = malloc((size_t)n * sizeof *qlab), *glab = malloc((size_t)n * sizeof *glab);
    float *q = NULL, *g = NULL;
    ct_status st = !gal || !slot || !qlab || !glab ? ct_error(CT_ERR_NOMEM, "eval: no memory for %lld pairs", (long long)n)
                                                   : CT_OK;
    int64_t ng = 0;
    if (!st) {
        for (int64_t i = 0; i < te->ntexts; i++) slot[i] = -1;
        for (int64_t i = 0; i < n; i++) {
            int64_t u = te->uniq[te->positive[i]];
            if (slot[u] < 0) {
                slot[u] = ng;
                glab[ng] = (int32_t)ng;
                gal[ng++] = u;
            }
            qlab[i] = (int32_t)slot[u];
        }
        st = embed_items(&q, m, tok, te, te->anchor, n);
    }
    if (!st) st = embed_items(&g, m, tok, te, gal, ng);
    const int ks[2] = {1, 10};
    double rec[2], map10;
    if (!st) st = ct_eval_retrieval(g, glab, ng, q, qlab, n, D, 0, ks, 2, rec, 10, &map10);
    if (!st) {
        r->r1 = rec[0];
        r->r10 = rec[1];
        r->mrr10 = map10;
        r->n_pairs = n;
        r->n_gallery = ng;
    }
    free(gal);
    free(slot);
    free(qlab);
    free(glab);
    ct_free(q);
    ct_free(g);
    return st;
}

/* kNN and the linear probe of the label from the anchors (debian: the short descriptions). */
static ct_status eval_labels(ct_text_eval_result *r, ct_model *m, const ct_tokenizer *tok, const ct_text_dataset *tr,
                             const ct_text_dataset *te, int k, float knn_t, int probe) {
    const int64_t D = ct_model_feature_dim(m);
    float *ftr = NULL, *fte = NULL;
    ct_status st = embed_items(&ftr, m, tok, tr, tr->anchor, tr->npairs);
    if (!st) st = embed_items(&fte, m, tok, te, te->anchor, te->npairs);
    if (!st)
        st = ct_knn_eval(ftr, tr->label, tr->npairs, fte, te->label, te->npairs, D, tr->nlabels, k, knn_t,
                         &r->knn_top1, NULL);
    if (!st && probe) {
        ct_probe_result pr;
        if (!(st = ct_linear_probe(ftr, tr->label, tr->npairs, fte, te->label, te->npairs, D, tr->nlabels, NULL, &pr)))
            r->probe_top1 = pr.test_top1;
    }
    r->n_train = tr->npairs;
    ct_free(ftr);
    ct_free(fte);
    return st;
}

ct_status ct_evaluate_text(ct_text_eval_result *r, ct_model *m, const ct_tokenizer *tok, const ct_text_dataset *train,
                           const ct_text_dataset *test, int knn_k, float knn_t, int probe) {
    memset(r, 0, sizeof *r);
    r->r1 = r->r10 = r->mrr10 = r->knn_top1 = r->probe_top1 = -1;
    if (test->npairs < 1)
        return ct_error(CT_ERR_ARG, "eval: %s holds no pairs to retrieve (text evaluation needs pairs:FILE or "
                                    "debian-descriptions)",
                        test->name);
    ct_status st = eval_retrieval(r, m, tok, test);
    if (!st && train && train->label && test->label && train->npairs > 0) {
        if (train->nlabels != test->nlabels)
            return ct_error(CT_ERR_ARG, "eval: the splits have %d and %d labels", train->nlabels, test->nlabels);
        st = eval_labels(r, m, tok, train, test, knn_k, knn_t, probe);
    }
    return st;
}

/* ---- the search index ------------------------------------------------------------- */

#define INDEX_FORMAT "contrast-text-index"

ct_status ct_text_index_build(const char *path, ct_model *m, const ct_tokenizer *tok, const char *const *texts,
                              const size_t *lens, int64_t n, const char *checkpoint) {
    if (n < 1) return ct_error(CT_ERR_ARG, "%s: an index needs at least one text", path);
    const int64_t D = ct_model_feature_dim(m);
    float *e = ct_alloc((size_t)(n * D) * sizeof(float));
    int64_t *off = malloc((size_t)(n + 1) * sizeof *off);
    char *bytes = NULL;
    ct_status st = !e || !off ? ct_error(CT_ERR_NOMEM, "%s: no memory for %lld embeddings", path, (long long)n) : CT_OK;
    if (!st) st = ct_embed_texts(e, m, tok, texts, lens, n, CT_FEAT_H, 256);
    if (!st) {
        off[0] = 0;
        for (int64_t i = 0; i < n; i++) off[i + 1] = off[i] + (int64_t)lens[i];
        if (!(bytes = malloc((size_t)off[n] + 1))) st = ct_error(CT_ERR_NOMEM, "%s: no memory for the texts", path);
        for (int64_t i = 0; !st && i < n; i++) memcpy(bytes + off[i], texts[i], lens[i]);
    }
    if (!st) { /* rows stored unit length: a query is then one matrix-vector product */
        for (int64_t i = 0; i < n; i++) {
            double s = 0;
            for (int64_t j = 0; j < D; j++) s += (double)e[i * D + j] * e[i * D + j];
            float inv = s > 0 ? (float)(1.0 / sqrt(s)) : 0.0f;
            for (int64_t j = 0; j < D; j++) e[i * D + j] *= inv;
        }
        ct_st_tensor t[3] = {{.name = "embeddings", .dtype = CT_DTYPE_F32, .ndim = 2, .shape = {n, D}, .data = e},
                             {.name = "offsets", .dtype = CT_DTYPE_I64, .ndim = 1, .shape = {n + 1}, .data = off},
                             {.name = "texts", .dtype = CT_DTYPE_U8, .ndim = 1, .shape = {off[n]}, .data = bytes}};
        ct_st_kv meta[2] = {{"format", INDEX_FORMAT}, {"checkpoint", checkpoint ? checkpoint : ""}};
        st = ct_st_write(path, t, 3, meta, 2);
    }
    ct_free(e);
    free(off);
    free(bytes);
    return st;
}

struct ct_text_index {
    ct_st_file *f;
    int64_t n, D;
    float *e;              /* (n, D) unit rows */
    int64_t *off;          /* (n + 1) */
    const char *bytes;     /* into f */
};

void ct_text_index_free(ct_text_index *ix) {
    if (!ix) return;
    ct_st_close(ix->f);
    ct_free(ix->e);
    free(ix->off);
    free(ix);
}

int64_t ct_text_index_size(const ct_text_index *ix) { return ix->n; }
int64_t ct_text_index_dim(const ct_text_index *ix) { return ix->D; }

const char *ct_text_index_text(const ct_text_index *ix, int64_t i, size_t *len) {
    *len = (size_t)(ix->off[i + 1] - ix->off[i]);
    return ix->bytes + ix->off[i];
}

ct_status ct_text_index_load(ct_text_index **out, const char *path) {
    *out = NULL;
    ct_text_index *ix = calloc(1, sizeof *ix);
    if (!ix) return ct_error(CT_ERR_NOMEM, "%s: no memory", path);
    ct_status st = ct_st_open(&ix->f, path);
    const ct_st_entry *e = NULL, *o = NULL, *t = NULL;
    if (!st) {
        const char *fmt = ct_st_meta(ix->f, "format");
        e = ct_st_find(ix->f, "embeddings");
        o = ct_st_find(ix->f, "offsets");
        t = ct_st_find(ix->f, "texts");
        if (!fmt || strcmp(fmt, INDEX_FORMAT))
            st = ct_error(CT_ERR_FORMAT, "%s: not a contrast text index (metadata format is '%s')", path,
                          fmt ? fmt : "missing");
        else if (!e || e->dtype != CT_DTYPE_F32 || e->ndim != 2 || e->shape[0] < 1 || e->shape[1] < 1 || !o ||
                 o->dtype != CT_DTYPE_I64 || o->ndim != 1 || o->shape[0] != e->shape[0] + 1 || !t ||
                 t->dtype != CT_DTYPE_U8 || t->ndim != 1)
            st = ct_error(CT_ERR_FORMAT, "%s: an index holds embeddings (n, D) F32, offsets (n + 1) I64 and texts U8",
                          path);
    }
    if (!st) {
        ix->n = e->shape[0];
        ix->D = e->shape[1];
        ix->e = ct_alloc(e->nbytes);
        ix->off = malloc(o->nbytes);
        if (!ix->e || !ix->off) st = ct_error(CT_ERR_NOMEM, "%s: no memory for %lld embeddings", path, (long long)ix->n);
    }
    if (!st) {
        memcpy(ix->e, e->data, e->nbytes);
        memcpy(ix->off, o->data, o->nbytes);
        ix->bytes = t->data;
        for (int64_t i = 0; i < ix->n && !st; i++) /* untrusted: every text inside the bytes */
            if (ix->off[i] < 0 || ix->off[i + 1] < ix->off[i] || ix->off[i + 1] > t->shape[0])
                st = ct_error(CT_ERR_FORMAT, "%s: offsets[%lld..%lld] = %lld..%lld outside the %lld text bytes", path,
                              (long long)i, (long long)i + 1, (long long)ix->off[i], (long long)ix->off[i + 1],
                              (long long)t->shape[0]);
        if (!st && ix->off[0] != 0) st = ct_error(CT_ERR_FORMAT, "%s: offsets[0] is not 0", path);
    }
    if (st) {
        ct_text_index_free(ix);
        return st;
    }
    *out = ix;
    return CT_OK;
}

ct_status ct_text_index_query(const ct_text_index *ix, const float *q, int64_t D, int64_t k, int64_t *top,
                              float *score, int64_t *found) {
    if (D != ix->D)
        return ct_error(CT_ERR_ARG, "search: the query has %lld features and the index %lld (another model's index?)",
                        (long long)D, (long long)ix->D);
    double s = 0;
    for (int64_t j = 0; j < D; j++) s += (double)q[j] * q[j];
    const float inv = s > 0 ? (float)(1.0 / sqrt(s)) : 0.0f;
    if (k > ix->n) k = ix->n;
    int64_t nf = 0;
    for (int64_t i = 0; i < ix->n; i++) {
        double c = 0;
        for (int64_t j = 0; j < D; j++) c += (double)ix->e[i * D + j] * q[j];
        float v = (float)c * inv;
        /* insertion into the sorted top k; ties keep the lower index first */
        if (nf == k && !(v > score[k - 1])) continue;
        int64_t p = nf < k ? nf++ : k - 1;
        while (p > 0 && v > score[p - 1]) {
            score[p] = score[p - 1];
            top[p] = top[p - 1];
            p--;
        }
        score[p] = v;
        top[p] = i;
    }
    *found = nf;
    return CT_OK;
}
