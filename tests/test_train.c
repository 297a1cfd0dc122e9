/* test_train.c: the trainer end to end on a slice of Fashion-MNIST.
 *   - a short SimCLR run learns: loss falls, contrastive top-1 rises, no collapse
 *   - exact resume: stop after epoch 1, resume, and end bit-identical to an
 *     uninterrupted run (same seed, same thread count)
 *   - the checkpoint is valid safetensors and rebuilds the model alone
 *   - MoCo and SupCon run and learn
 *   - views smaller than the images (augment size=N) train a twin of the model over
 *     the same parameters; the checkpoint still evaluates full images
 *   - local crops (multi-crop) train a second twin whose gradient adds to the first's
 *   - a non-finite loss stops the run with a message and keeps the last checkpoint
 *   - the whitening of the features: fit at the end and stored in the checkpoint, so
 *     eval reproduces the trainer's numbers from the file; a checkpoint from before
 *     the end is refit; --whiten 0 builds none; eval/embed --no-whiten
 *   - the CLI: eval --json, embed .npy, bad options, --help */
#include "harness.h"
#include "contrast/train.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

static char tmpdir[256];

/* dst = dir + "/checkpoint.safetensors" (dst holds 512 bytes, as the config's paths) */
static void ckpt_path(char *dst, const char *dir) {
    size_t n = strlen(dir);
    if (n > 400) n = 400;
    memcpy(dst, dir, n);
    memcpy(dst + n, "/checkpoint.safetensors", 24);
}

static void base_config(ct_train_config *c, const char *sub) {
    ct_train_config_default(c);
    c->limit = 1024;
    c->batch = 64;
    c->epochs = 3;
    c->eval_every = 0;
    c->final_probe = 0;
    c->knn_k = 20;
    c->threads = 2;
    c->model.width = 8;
    c->model.last_width = 0; /* 8 x width: 64 features */
    c->model.head_hidden = 64;
    c->model.head_out = 32;
    c->lr = 1.0f;
    c->temperature = 0.2f; /* the width-8 model's top-1 climbs steadily at 0.2; at 0.1 it is noisy */
    c->warmup_epochs = 1;
    snprintf(c->out, sizeof c->out, "%s/%s", tmpdir, sub);
}

/* Reads metrics.jsonl's per-epoch "loss" and "top1" fields. */
static int read_metrics(const char *dir, double *loss, double *top1, int cap) {
    char path[1100], line[1024];
    snprintf(path, sizeof path, "%s/metrics.jsonl", dir);
    FILE *f = fopen(path, "r");
    if (!f) return 0;
    int n = 0;
    while (n < cap && fgets(line, sizeof line, f)) {
        char *l = strstr(line, "\"loss\": "), *t = strstr(line, "\"top1\": ");
        if (!l || !t || strstr(line, "\"final\"")) continue;
        loss[n] = atof(l + 8);
        top1[n] = atof(t + 8);
        n++;
    }
    fclose(f);
    return n;
}

static float *load_params(const char *dir, size_t *n) {
    size_t np;
    return checkpoint_values(dir, n, &np);
}

/* The evaluation the tests compare with the trainer's: kNN k 20 on 1024 images. */
static const ct_eval_config *eval_config(int whiten) {
    static ct_eval_config ec;
    ct_eval_config_default(&ec);
    ec.limit = 1024;
    ec.knn_k = 20;
    ec.whiten = whiten;
    return &ec;
}

/* The trainer's final checkpoint holds the whitening it evaluated with: ct_evaluate
 * from the file alone gives the trainer's kNN, and without whitening its raw kNN. */
static void check_whitening_fresh(const char *dir, const ct_train_result *r) {
    char path[1100];
    snprintf(path, sizeof path, "%s/checkpoint.safetensors", dir);
    ct_model m;
    CHECK_OK(ct_checkpoint_load_model(&m, path));
    CHECK(m.whiten_mean >= 0 && m.whiten_fitted, "the final checkpoint carries a fitted whitening");
    ct_eval_result e;
    CHECK_OK(ct_evaluate(&e, &m, eval_config(1)));
    CHECK(e.whitened && e.knn_top1 == r->knn_top1 && e.knn_top1_raw == r->knn_top1_raw,
          "eval from the checkpoint: kNN %.4f / unwhitened %.4f, the trainer's %.4f / %.4f", e.knn_top1, e.knn_top1_raw,
          r->knn_top1, r->knn_top1_raw);
    CHECK_OK(ct_evaluate(&e, &m, eval_config(0)));
    CHECK(!e.whitened && e.knn_top1 == r->knn_top1_raw && e.knn_top1_raw == -1, "eval without whitening: %.4f",
          e.knn_top1);
    ct_model_free(&m);
}

/* A checkpoint stopped before the end (no kNN monitor ran) holds the identity: eval
 * refits it on the train split, to what ct_model_fit_whitening gives. */
static void check_whitening_refit(const char *dir) {
    char path[1100];
    snprintf(path, sizeof path, "%s/checkpoint.safetensors", dir);
    ct_model m, m2;
    CHECK_OK(ct_checkpoint_load_model(&m, path));
    CHECK(m.whiten_mean >= 0 && !m.whiten_fitted, "a checkpoint from epoch 1 of 3 has no fitted whitening");
    CHECK(m.whiten_mean >= 0 && m.buf[m.bufs[m.whiten_weight].offset] == 1.0f, "its whitening is the identity");
    ct_eval_result e, e2;
    CHECK_OK(ct_evaluate(&e, &m, eval_config(1)));
    CHECK_OK(ct_checkpoint_load_model(&m2, path));
    ct_dataset ds;
    CHECK_OK(ct_dataset_load(&ds, "fashion-mnist", 1));
    ct_dataset_limit(&ds, 1024);
    CHECK_OK(ct_model_fit_whitening(&m2, &ds));
    CHECK(m2.whiten_fitted, "ct_model_fit_whitening marks the fit");
    CHECK_OK(ct_evaluate(&e2, &m2, eval_config(1)));
    CHECK(e.whitened && e.knn_top1 == e2.knn_top1 && e.knn_top1 != e.knn_top1_raw,
          "eval refits the whitening: %.4f, fit beforehand: %.4f, unwhitened %.4f", e.knn_top1, e2.knn_top1,
          e.knn_top1_raw);
    ct_dataset_free(&ds);
    ct_model_free(&m);
    ct_model_free(&m2);
}

static void test_learns_and_resumes(void) {
    ct_train_config c;
    ct_train_result r;
    base_config(&c, "full");
    CHECK_OK(ct_train_run(&c, &r));
    double loss[8], top1[8];
    int n = read_metrics(c.out, loss, top1, 8);
    CHECK(n == 3, "metrics.jsonl has one line per epoch (got %d)", n);
    if (n == 3) {
        CHECK(loss[2] < loss[0] - 0.3, "loss falls: %.3f -> %.3f", loss[0], loss[2]);
        CHECK(top1[2] > 1.3 * top1[0], "contrastive top-1 rises by 30%%: %.3f -> %.3f", top1[0], top1[2]);
    }
    CHECK(r.knn_top1 > 0.55, "kNN on the learned features %.3f (chance 0.1): not collapsed", r.knn_top1);
    CHECK(r.knn_top1_raw > 0.4 && r.knn_top1_raw != r.knn_top1, "kNN before whitening %.3f, after %.3f",
          r.knn_top1_raw, r.knn_top1);
    check_whitening_fresh(c.out, &r);

    /* interrupted after epoch 1, then resumed to the end */
    ct_train_config a;
    base_config(&a, "resumed");
    a.stop_after = 1;
    CHECK_OK(ct_train_run(&a, &r));
    CHECK(r.epochs_done == 1, "stopped after epoch 1 (%d)", r.epochs_done);
    check_whitening_refit(a.out);
    a.stop_after = 0;
    ckpt_path(a.resume, a.out);
    CHECK_OK(ct_train_run(&a, &r));
    CHECK(r.epochs_done == 3, "resumed to epoch 3 (%d)", r.epochs_done);
    size_t n1 = 0, n2 = 0;
    float *p1 = load_params(c.out, &n1), *p2 = load_params(a.out, &n2);
    CHECK(p1 && p2 && n1 == n2 && memcmp(p1, p2, n1 * sizeof(float)) == 0,
          "resumed run ends bit-identical to the uninterrupted one");
    free(p1);
    free(p2);

    /* the checkpoint is safetensors: 8-byte little-endian length, then a JSON object */
    char path[1100];
    snprintf(path, sizeof path, "%s/checkpoint.safetensors", c.out);
    FILE *f = fopen(path, "rb");
    unsigned char len8[8] = {0};
    char head[64] = {0};
    CHECK(f && fread(len8, 1, 8, f) == 8 && fread(head, 1, 20, f) == 20, "read the header");
    if (f) fclose(f);
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--) hlen = hlen << 8 | len8[i];
    CHECK(hlen > 100 && hlen < 1000000 && head[0] == '{', "header length %llu, starts with '{'", (unsigned long long)hlen);
    if (access("/usr/bin/python3", X_OK) == 0) {
        char cmd[2000];
        snprintf(cmd, sizeof cmd,
                 "/usr/bin/python3 -c \"import json,struct,sys; b=open('%s','rb').read(); n=struct.unpack('<Q',b[:8])[0]; "
                 "h=json.loads(b[8:8+n]); m=h['__metadata__']; assert m['format']=='contrast-checkpoint'; "
                 "assert h['encoder.conv1.weight']['shape']==[8,1,3,3]; assert h['head.0.bias']['dtype']=='F32'\"",
                 path);
        CHECK(system(cmd) == 0, "Python's json reads the header, with PyTorch names and shapes");
    }
}

static void test_other_methods(void) {
    ct_train_config c;
    ct_train_result r;
    base_config(&c, "moco");
    c.method = CT_METHOD_MOCO;
    c.moco_k = 512;
    c.epochs = 3;
    CHECK_OK(ct_train_run(&c, &r));
    /* MoCo's loss may rise early (the queue fills with better keys), so judge by kNN */
    CHECK(r.knn_top1 > 0.5, "MoCo kNN %.3f", r.knn_top1);
    /* MoCo resume restores the key encoder and the queue */
    ct_train_config a;
    base_config(&a, "moco-resumed");
    a.method = CT_METHOD_MOCO;
    a.moco_k = 512;
    a.stop_after = 2;
    CHECK_OK(ct_train_run(&a, &r));
    a.stop_after = 0;
    ckpt_path(a.resume, a.out);
    CHECK_OK(ct_train_run(&a, &r));
    size_t n1 = 0, n2 = 0;
    float *p1 = load_params(c.out, &n1), *p2 = load_params(a.out, &n2);
    CHECK(p1 && p2 && n1 == n2 && memcmp(p1, p2, n1 * sizeof(float)) == 0, "MoCo resume is exact");
    free(p1);
    free(p2);

    base_config(&c, "supcon");
    c.method = CT_METHOD_SUPCON;
    c.epochs = 2;
    c.model.whiten = 0; /* no whitening: none in the model or the checkpoint */
    CHECK_OK(ct_train_run(&c, &r));
    CHECK(r.knn_top1 > 0.65, "SupCon (labels) kNN %.3f", r.knn_top1);
    CHECK(r.knn_top1_raw == -1, "without whitening there is no unwhitened kNN (%g)", r.knn_top1_raw);
    char path[1100];
    ckpt_path(path, c.out);
    ct_model m;
    CHECK_OK(ct_checkpoint_load_model(&m, path));
    CHECK(m.whiten_mean < 0 && !ct_model_find(&m, "whiten.weight", 1), "whiten 0: no whitening tensors");
    ct_model_free(&m);
}

/* A width-4 CNN with a 16-8 head, for the twin tests. */
static void init_tiny(ct_model *m) {
    ct_model_config mc;
    ct_model_config_default(&mc);
    mc.width = 4;
    mc.head_hidden = 16;
    mc.head_out = 8;
    CHECK_OK(ct_model_init(m, &mc));
}

/* ct_model_init_resized: the same tensors, shared slabs, gradients land in m. */
/* The same run at 1 and 2 threads gives the same bits, on the default model at a
 * batch whose products are large enough to be split (the head's 512 x 512 layers over
 * 512 rows, the whitening's covariance): ct_gemm once split rows by thread count, and
 * OpenBLAS's results for a block of rows differ from the whole's. */
static void test_threads_invariant(void) {
    float *p[2] = {NULL, NULL};
    size_t n[2] = {0, 0};
    for (int t = 0; t < 2; t++) {
        ct_train_config c;
        ct_train_config_default(&c);
        c.limit = 512;
        c.batch = 256;
        c.epochs = 1;
        c.eval_every = 0;
        c.final_probe = 0;
        c.threads = t + 1;
        snprintf(c.out, sizeof c.out, "%s/threads%d", tmpdir, t + 1);
        ct_train_result r;
        CHECK_OK(ct_train_run(&c, &r));
        p[t] = load_params(c.out, &n[t]);
    }
    CHECK(p[0] && p[1] && n[0] == n[1] && !memcmp(p[0], p[1], n[0] * sizeof(float)),
          "1 and 2 threads: the same parameters, BN statistics and whitening, bit for bit");
    free(p[0]);
    free(p[1]);
}

static void test_resized_twin(void) {
    ct_model m, t;
    init_tiny(&m);
    CHECK_OK(ct_model_init_resized(&t, &m, 20, 16));
    CHECK(t.param == m.param && t.grad == m.grad && t.buf == m.buf && t.nparams == m.nparams, "twin shares the slabs");
    CHECK(t.cfg.in_h == 20 && t.cfg.in_w == 16 && ct_model_embed_dim(&t) == 8, "twin takes 20x16 inputs");
    float x[4 * 20 * 16], dz[4 * 8];
    for (int i = 0; i < 4 * 20 * 16; i++) x[i] = (float)((i * 37) % 11) / 5.0f - 1.0f;
    for (int i = 0; i < 4 * 8; i++) dz[i] = (float)(i % 5) - 2.0f;
    CHECK_OK(ct_model_prepare(&t, 4));
    CHECK_OK(ct_model_forward(&t, x, 4, 1, 1));
    ct_model_zero_grad(&m);
    CHECK_OK(ct_model_backward(&t, dz));
    double g = 0;
    for (size_t i = 0; i < m.nparam_floats; i++) g += fabs(m.grad[i]);
    CHECK(g > 0 && isfinite(g), "the twin's backward fills m's gradient (sum |g| = %g)", g);
    /* m's own forward gives the same features before and after the twin is freed */
    static float xm[2 * 28 * 28], h0[2 * 32];
    for (int i = 0; i < 2 * 28 * 28; i++) xm[i] = (float)((i * 13) % 7) / 3.0f - 1.0f;
    CHECK_OK(ct_model_prepare(&m, 2));
    CHECK_OK(ct_model_forward(&m, xm, 2, 0, 0));
    int64_t hd = ct_model_feature_dim(&m);
    CHECK(hd == 32, "width-4 CNN: 32 features");
    memcpy(h0, ct_model_features(&m), (size_t)(2 * hd) * sizeof(float));
    ct_model_free(&t);
    CHECK_OK(ct_model_forward(&m, xm, 2, 0, 0));
    CHECK(!memcmp(h0, ct_model_features(&m), (size_t)(2 * hd) * sizeof(float)),
          "freeing the twin leaves m's slabs: m's features unchanged");
    CHECK(ct_model_init_resized(&t, &m, 0, 20) == CT_ERR_ARG, "size 0 refused");
    ct_model_free(&m);

    ct_train_config c;
    ct_train_result r;
    base_config(&c, "small-views");
    c.epochs = 2;
    c.view_size = 16;
    CHECK_OK(ct_train_run(&c, &r));
    CHECK(r.knn_top1 > 0.55, "trained on 16x16 views, evaluated on 28x28 images: kNN %.3f", r.knn_top1);
    char path[600];
    ckpt_path(path, c.out);
    CHECK_OK(ct_checkpoint_load_model(&m, path));
    CHECK(m.cfg.in_h == 28 && m.cfg.in_w == 28, "the checkpoint's model takes the images' size");
    ct_model_free(&m);
    snprintf(c.augment, sizeof c.augment, "size=20");
    ct_status st = ct_train_run(&c, &r);
    CHECK(st == CT_ERR_ARG && strstr(ct_errmsg(), "twice"), "view size set twice is refused: %s", ct_errmsg());
}

/* --recompute (activation checkpointing) changes memory and time, never the numbers:
 * a ResNet-18 run with local crops (both twins recompute) ends with the same
 * parameter and buffer bits as without. */
static void test_recompute(void) {
    ct_train_config c;
    ct_train_result r0, r1;
    base_config(&c, "keep");
    c.model.encoder = CT_ENC_RESNET18;
    c.model.width = 4;
    c.limit = 256;
    c.epochs = 1;
    c.local_crops = 1;
    CHECK_OK(ct_train_run(&c, &r0));
    char d0[sizeof c.out];
    memcpy(d0, c.out, sizeof d0);
    snprintf(c.out, sizeof c.out, "%s/recompute", tmpdir);
    c.recompute = 1;
    CHECK_OK(ct_train_run(&c, &r1));
    size_t n0 = 0, n1 = 0;
    float *p0 = load_params(d0, &n0), *p1 = load_params(c.out, &n1);
    CHECK(p0 && p1 && n0 == n1 && n0 > 0 && !memcmp(p0, p1, n0 * sizeof(float)) && r0.final_loss == r1.final_loss,
          "--recompute: the same %zu checkpoint values and final loss (%.6f, %.6f)", n0, r0.final_loss, r1.final_loss);
    CHECK(r1.arena_bytes > 0 && r1.arena_bytes < r0.arena_bytes && r1.local_arena_bytes > 0 &&
              r1.local_arena_bytes < r0.local_arena_bytes,
          "--recompute: smaller activation arenas, views %zu < %zu bytes, local crops %zu < %zu", r1.arena_bytes,
          r0.arena_bytes, r1.local_arena_bytes, r0.local_arena_bytes);
    free(p0);
    free(p1);
}

/* Multi-crop: two twins (global views, local crops) add into one gradient slab; a
 * SimCLR run with local crops learns; MoCo with local crops and a local size set
 * twice are refused. */
static void test_local_crops(void) {
    ct_model m, t;
    init_tiny(&m);
    CHECK_OK(ct_model_init_resized(&t, &m, 12, 12));
    static float x[3 * 28 * 28], xs[5 * 12 * 12], g1[20000], g2[20000];
    float dz[5 * 8];
    for (int i = 0; i < 3 * 28 * 28; i++) x[i] = (float)((i * 29) % 13) / 6.0f - 1.0f;
    for (int i = 0; i < 5 * 12 * 12; i++) xs[i] = (float)((i * 37) % 11) / 5.0f - 1.0f;
    for (int i = 0; i < 5 * 8; i++) dz[i] = (float)(i % 7) - 3.0f;
    size_t np = m.nparam_floats;
    CHECK(np <= 20000, "small model (%zu parameters)", np);
    CHECK_OK(ct_model_prepare(&m, 3));
    CHECK_OK(ct_model_prepare(&t, 5));
    /* (a backward may reuse its forward's activations, so each backward has its own forward) */
    CHECK_OK(ct_model_forward(&m, x, 3, 1, 1));
    ct_model_zero_grad(&m);
    CHECK_OK(ct_model_backward(&m, dz));
    memcpy(g1, m.grad, np * sizeof(float));
    CHECK_OK(ct_model_forward(&t, xs, 5, 1, 1));
    ct_model_zero_grad(&m);
    CHECK_OK(ct_model_backward(&t, dz));
    memcpy(g2, m.grad, np * sizeof(float));
    CHECK_OK(ct_model_forward(&m, x, 3, 1, 1));
    CHECK_OK(ct_model_forward(&t, xs, 5, 1, 1));
    ct_model_zero_grad(&m);
    CHECK_OK(ct_model_backward(&m, dz));
    CHECK_OK(ct_model_backward(&t, dz));
    double err = 0, mag = 0;
    for (size_t i = 0; i < np; i++) {
        double e = fabs(m.grad[i] - (g1[i] + g2[i]));
        err = e > err ? e : err;
        mag += fabs(g2[i]);
    }
    CHECK(mag > 0 && err <= 1e-5 * (1 + mag / np), "backward of both twins = the sum of each (max diff %g)", err);
    ct_model_free(&t);
    ct_model_free(&m);

    ct_train_config c;
    ct_train_result r;
    base_config(&c, "local-crops");
    c.epochs = 2;
    c.local_crops = 2;
    CHECK_OK(ct_train_run(&c, &r));
    CHECK(r.knn_top1 > 0.55, "SimCLR with 2 local crops of 12x12 learns: kNN %.3f", r.knn_top1);
    c.method = CT_METHOD_MOCO;
    ct_status st = ct_train_run(&c, &r);
    CHECK(st == CT_ERR_ARG && strstr(ct_errmsg(), "local crops"), "MoCo with local crops refused: %s", ct_errmsg());
    c.method = CT_METHOD_SIMCLR;
    c.local_size = 10;
    snprintf(c.local_augment, sizeof c.local_augment, "size=8");
    st = ct_train_run(&c, &r);
    CHECK(st == CT_ERR_ARG && strstr(ct_errmsg(), "twice"), "local crop size set twice refused: %s", ct_errmsg());
}

static void test_nan_stops(void) {
    ct_train_config c;
    ct_train_result r;
    base_config(&c, "nan");
    c.epochs = 2;
    c.stop_after = 1;
    CHECK_OK(ct_train_run(&c, &r));
    char ckpt[512];
    ckpt_path(ckpt, c.out);
    size_t n0 = 0, n1 = 0;
    float *before = load_params(c.out, &n0);
    /* resume with a diverging SGD: lr * weight decay = 1e5 multiplies the conv weights
     * by -1e5 each step, they overflow to infinity and the loss becomes NaN */
    c.stop_after = 0;
    memcpy(c.resume, ckpt, sizeof ckpt);
    ct_optim_config_default(&c.optim, CT_OPTIM_SGD);
    c.optim.weight_decay = 10;
    c.lr = 1e4f;
    c.warmup_epochs = 0;
    c.resume_allow_changes = 1; /* another optimizer and lr on purpose */
    ct_status st = ct_train_run(&c, &r);
    CHECK(st == CT_ERR_NUMERIC, "non-finite loss stops the run (%s: %s)", ct_status_name(st), ct_errmsg());
    CHECK(strstr(ct_errmsg(), "checkpoint") != NULL, "the message says the checkpoint is kept: %s", ct_errmsg());
    float *after = load_params(c.out, &n1);
    CHECK(before && after && n0 == n1 && memcmp(before, after, n0 * sizeof(float)) == 0,
          "the last good checkpoint is untouched and loads");
    free(before);
    free(after);

    /* issue 20, hole 12: diverging from the start, no checkpoint exists; the message
     * must not claim one, and the folder the run made is not left behind empty */
    base_config(&c, "nan-fresh");
    ct_optim_config_default(&c.optim, CT_OPTIM_SGD);
    c.optim.weight_decay = 10;
    c.lr = 1e4f;
    c.warmup_epochs = 0;
    st = ct_train_run(&c, &r);
    CHECK(st == CT_ERR_NUMERIC && strstr(ct_errmsg(), "no checkpoint") && !strstr(ct_errmsg(), "is kept"),
          "a NaN before the first checkpoint says there is none: %s", ct_errmsg());
    CHECK(access(c.out, F_OK) != 0, "the failed run leaves no empty folder (%s)", c.out);
}

/* ---- run folders and resumes (issue 20, holes 3, 8, 9, 12) -------------------------- */

static int file_has(const char *dir, const char *name, const char *needle) {
    char path[1100];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    size_t n = 0;
    unsigned char *b = slurp(path, &n);
    size_t k = strlen(needle);
    int has = 0;
    for (size_t i = 0; b && !has && i + k <= n; i++) has = !memcmp(b + i, needle, k);
    free(b);
    return has;
}

typedef struct {
    int warnings, resumed;
    char last[2048];
} event_log;

static void log_event(const ct_train_event *e, void *ctx) {
    event_log *l = ctx;
    if (e->kind == CT_TRAIN_EVENT_WARNING) {
        l->warnings++;
        snprintf(l->last, sizeof l->last, "%s", e->message);
    }
    if (e->kind == CT_TRAIN_EVENT_RESUMED) l->resumed++;
}

/* Hole 3: a non-empty run folder is refused unless resumed or overwritten, and a
 * folder locked by another run is refused; hole 9: a regular file as --out is
 * refused before training. */
static void test_run_folders(void) {
    ct_train_config c;
    ct_train_result r;
    base_config(&c, "local-crops"); /* holds test_local_crops' finished 2-epoch run */
    c.epochs = 1;
    ct_status st = ct_train_run(&c, &r);
    CHECK(st == CT_ERR_ARG && strstr(ct_errmsg(), c.out) && strstr(ct_errmsg(), "--overwrite") && r.epochs_done == 0,
          "a folder holding another run is refused: %s", ct_errmsg());
    CHECK(file_has(c.out, "eval.json", "\"epochs\": 2"), "the previous run's files are untouched");
    c.overwrite = 1;
    CHECK_OK(ct_train_run(&c, &r));
    double loss[8], top1[8];
    CHECK(read_metrics(c.out, loss, top1, 8) == 1 && file_has(c.out, "eval.json", "\"epochs\": 1"),
          "--overwrite replaces the run: one epoch line, eval.json of this run");
    CHECK(access(c.out, F_OK) == 0 && !file_has(c.out, "metrics.jsonl", "\"epoch\": 2"), "no line of the old run");

    /* a second run into a folder in use */
    base_config(&c, "locked");
    c.epochs = 1;
    mkdir(c.out, 0755);
    char lock[600];
    snprintf(lock, sizeof lock, "%s/.lock", c.out);
    int fd = open(lock, O_RDWR | O_CREAT, 0644);
    CHECK(fd >= 0 && flock(fd, LOCK_EX | LOCK_NB) == 0, "the test holds %s", lock);
    st = ct_train_run(&c, &r);
    CHECK(st == CT_ERR_STATE && strstr(ct_errmsg(), "another run") && r.epochs_done == 0,
          "a folder locked by another run is refused: %s", ct_errmsg());
    if (fd >= 0) close(fd);

    /* hole 9: an existing regular file as the run folder, found before an epoch is spent */
    base_config(&c, "a-file");
    spit(c.out, "x", 1);
    st = ct_train_run(&c, &r);
    CHECK(st != CT_OK && strstr(ct_errmsg(), c.out) && r.epochs_done == 0,
          "--out naming a regular file is refused before training (%d epochs): %s", r.epochs_done, ct_errmsg());
}

/* Hole 3: two runs started at once without --out (so in the same second, but for
 * a rare second boundary) get folders of their own and both finish. */
static void test_default_names(const char *bin) {
    char abs[1024], cwd[512], cmd[4096];
    CHECK(getcwd(cwd, sizeof cwd) != NULL, "getcwd");
    if (bin[0] == '/') snprintf(abs, sizeof abs, "%s", bin);
    else snprintf(abs, sizeof abs, "%s/%s", cwd, bin);
    snprintf(cmd, sizeof cmd,
             "mkdir -p %s/uniq && cd %s/uniq && a='--limit 128 --batch 64 --epochs 1 --width 4 --head-hidden 16 "
             "--head-out 8 --eval-every 0 --no-probe --quiet --threads 1'; "
             "(%s train $a > o1.txt 2>&1; echo $? > s1) & (%s train $a > o2.txt 2>&1; echo $? > s2) & wait; "
             "grep -qx 0 s1 && grep -qx 0 s2 && test $(ls runs | wc -l) -eq 2 && "
             "test $(ls runs/*/checkpoint.safetensors | wc -l) -eq 2",
             tmpdir, tmpdir, abs, abs);
    CHECK(system(cmd) == 0, "two runs started together without --out: two run folders, both finished");
}

/* Holes 8 and 12: resuming a finished run; options that change the bits; an
 * interrupt between an epoch's metrics line and its checkpoint; a failed resume. */
static void test_resume_checks(void) {
    ct_train_config c;
    ct_train_result r;
    base_config(&c, "full"); /* test_learns_and_resumes' finished 3-epoch run */
    ckpt_path(c.resume, c.out);
    ct_status st = ct_train_run(&c, &r);
    CHECK(st == CT_ERR_ARG && strstr(ct_errmsg(), "nothing to train") && strstr(ct_errmsg(), "--epochs"),
          "resuming a checkpoint at --epochs says there is nothing to train: %s", ct_errmsg());

    base_config(&c, "ghost");
    snprintf(c.resume, sizeof c.resume, "%s/none/checkpoint.safetensors", tmpdir);
    st = ct_train_run(&c, &r);
    CHECK(st != CT_OK && access(c.out, F_OK) != 0, "a failed --resume leaves no folder behind: %s", ct_errmsg());

    /* an interrupted run: epoch 1's checkpoint, then epoch 2's metrics line written
     * but its checkpoint not (restored to epoch 1's, as a kill in the write leaves it) */
    base_config(&c, "dup");
    c.stop_after = 1;
    CHECK_OK(ct_train_run(&c, &r));
    char ckpt[512];
    ckpt_path(ckpt, c.out);
    size_t n = 0;
    unsigned char *e1 = slurp(ckpt, &n);
    CHECK(e1 != NULL, "epoch 1 checkpoint");

    ct_train_config d = c; /* another lr cannot continue bit for bit: refused, then allowed with a warning */
    memcpy(d.resume, ckpt, sizeof ckpt);
    d.stop_after = 2;
    d.lr = 2.0f;
    st = ct_train_run(&d, &r);
    CHECK(st == CT_ERR_ARG && strstr(ct_errmsg(), "train.lr") && strstr(ct_errmsg(), "--allow-changes"),
          "resuming with another lr is refused: %s", ct_errmsg());
    event_log log;
    memset(&log, 0, sizeof log);
    d.resume_allow_changes = 1;
    d.on_event = log_event;
    d.event_ctx = &log;
    snprintf(d.out, sizeof d.out, "%s/dup-changed", tmpdir);
    CHECK_OK(ct_train_run(&d, &r));
    CHECK(log.resumed == 1 && log.warnings == 1 && strstr(log.last, "train.lr"),
          "allowed, with one warning event naming the change: %s", log.last);

    memcpy(c.resume, ckpt, sizeof ckpt);
    c.stop_after = 2;
    CHECK_OK(ct_train_run(&c, &r));
    if (e1) spit(ckpt, e1, n);
    c.stop_after = 0;
    CHECK_OK(ct_train_run(&c, &r));
    double loss[8], top1[8];
    int lines = read_metrics(c.out, loss, top1, 8);
    CHECK(lines == 3, "after the interrupted write, metrics.jsonl has one line per epoch (%d lines)", lines);
    char full[600];
    snprintf(full, sizeof full, "%s/full", tmpdir);
    size_t n1 = 0, n2 = 0;
    float *p1 = load_params(c.out, &n1), *p2 = load_params(full, &n2);
    CHECK(p1 && p2 && n1 == n2 && !memcmp(p1, p2, n1 * sizeof(float)), "and ends as the uninterrupted run");
    free(p1);
    free(p2);
    free(e1);
}

/* Hole 12: an option within range that needs more memory than there is (width 4096:
 * billions of parameters) fails before allocating, with the size it would need.
 * The address space is capped for the test, so the check is the same on any machine. */
static void test_too_large(void) {
    ct_train_config c;
    ct_train_result r;
    base_config(&c, "huge");
    c.model.width = 4096;
    c.model.last_width = -1;
    /* An address-space limit makes the refusal independent of the machine's memory;
     * not under ASan, which maps terabytes of shadow and fails at such a limit (the
     * ~40 GiB of parameters alone exceed any machine this runs on). */
#if defined(__SANITIZE_ADDRESS__)
    ct_status st = ct_train_run(&c, &r);
#else
    struct rlimit old, lim;
    getrlimit(RLIMIT_AS, &old);
    lim = old;
    lim.rlim_cur = (rlim_t)16 << 30;
    if (old.rlim_max != RLIM_INFINITY && old.rlim_max < lim.rlim_cur) lim.rlim_cur = old.rlim_max;
    CHECK(setrlimit(RLIMIT_AS, &lim) == 0, "setrlimit");
    ct_status st = ct_train_run(&c, &r);
    setrlimit(RLIMIT_AS, &old);
#endif
    CHECK(st == CT_ERR_NOMEM && strstr(ct_errmsg(), "GiB") && strstr(ct_errmsg(), "parameters"),
          "width 4096 is refused with the memory it needs: %s", ct_errmsg());
    CHECK(access(c.out, F_OK) != 0, "no folder made for it");
}

/* A checkpoint whose metadata is `meta` (format + model.* keys) holding the tensors
 * of a small CNN: what a hostile or corrupt file can claim. */
static void write_meta_ckpt(const char *path, const char *width, const char *in_c, const char *head_hidden) {
    ct_model_config mc;
    ct_model_config_default(&mc);
    mc.width = 2;
    mc.head_hidden = 4;
    mc.head_out = 2;
    ct_model m;
    if (ct_model_init(&m, &mc)) return;
    ct_st_tensor t[256];
    int n = 0;
    for (int i = 0; i < m.nparams && n < 256; i++) ct_st_tensor_from_info(&t[n++], &m.params[i], m.param);
    for (int i = 0; i < m.nbufs && n < 256; i++) ct_st_tensor_from_info(&t[n++], &m.bufs[i], m.buf);
    ct_st_kv meta[] = {{"format", "contrast-checkpoint"}, {"model.encoder", "cnn"}, {"model.width", width},
                       {"model.in_c", in_c},  {"model.in_h", "28"},  {"model.in_w", "28"},
                       {"model.head_hidden", head_hidden}, {"model.head_out", "2"}, {"model.head_bn", "1"}};
    CHECK_OK(ct_st_write(path, t, n, meta, 9));
    ct_model_free(&m);
}

/* Found by fuzz/fuzz_safetensors: metadata describing an impossible model (input
 * channels 0) was refused with "model: bad input shape" without naming the file;
 * metadata describing a huge model (width 4096, head 2^20) was built, allocating
 * and initialising tens of GB, before any tensor was compared. Both must be refused
 * at once, naming the file, with nothing allocated. */
static void test_checkpoint_metadata_refused(void) {
    char path[600];
    snprintf(path, sizeof path, "%s/meta.safetensors", tmpdir);
    ct_model m;
    write_meta_ckpt(path, "2", "1", "4");
    CHECK_OK(ct_checkpoint_load_model(&m, path));
    ct_model_free(&m);
    write_meta_ckpt(path, "2", "0", "4");
    ct_status st = ct_checkpoint_load_model(&m, path);
    CHECK(st != CT_OK && strstr(ct_errmsg(), path), "in_c 0 refused naming the file: %s", ct_errmsg());
    CHECK(m.param == NULL && m.nparams == 0, "nothing loaded");
    write_meta_ckpt(path, "4096", "1", "1048576");
    st = ct_checkpoint_load_model(&m, path);
    CHECK(st == CT_ERR_FORMAT && strstr(ct_errmsg(), path) && strstr(ct_errmsg(), "parameters"),
          "a huge model claimed by the metadata is refused before building it: %s", ct_errmsg());
    CHECK(m.param == NULL && m.nparams == 0, "nothing allocated");
    write_meta_ckpt(path, "3", "1", "4"); /* a little larger than the tensors: shapes differ */
    st = ct_checkpoint_load_model(&m, path);
    CHECK(st == CT_ERR_FORMAT && strstr(ct_errmsg(), path), "a larger width is refused: %s", ct_errmsg());
    CHECK(m.param == NULL, "nothing loaded");
    write_meta_ckpt(path, "1", "1", "4"); /* smaller: fits, but the shapes differ */
    st = ct_checkpoint_load_model(&m, path);
    CHECK(st == CT_ERR_FORMAT && strstr(ct_errmsg(), path) && strstr(ct_errmsg(), "shape"),
          "a smaller width is refused by shape: %s", ct_errmsg());
    CHECK(m.param == NULL, "nothing loaded");
}

static int run(const char *cmd) {
    int rc = system(cmd);
    return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
}

static void test_cli(void) {
    const char *bin = getenv("CONTRAST_BIN");
    if (!bin) bin = "./contrast";
    test_default_names(bin);
    char cmd[4096], out[700];
    snprintf(cmd, sizeof cmd, "%s --help > %s/help.txt", bin, tmpdir);
    CHECK(run(cmd) == 0, "contrast --help");
    snprintf(cmd, sizeof cmd, "%s train --help > %s/help.txt && grep -q -- '--eval-every' %s/help.txt && grep -q -- '--resume' %s/help.txt",
             bin, tmpdir, tmpdir, tmpdir);
    CHECK(run(cmd) == 0, "train --help lists the options");
    snprintf(cmd, sizeof cmd, "%s train --bogus 2> %s/err.txt; test $? -eq 2 && grep -q bogus %s/err.txt", bin, tmpdir, tmpdir);
    CHECK(run(cmd) == 0, "unknown option: exit 2 and named");
    snprintf(cmd, sizeof cmd, "%s train --epochs -3 2> %s/err.txt; test $? -eq 2 && grep -q epochs %s/err.txt", bin, tmpdir, tmpdir);
    CHECK(run(cmd) == 0, "bad value: exit 2 and named");
    snprintf(cmd, sizeof cmd, "%s train --view-size -2 2> %s/err.txt; test $? -eq 2 && grep -q view-size %s/err.txt", bin, tmpdir, tmpdir);
    CHECK(run(cmd) == 0, "--view-size below -1: exit 2 and named");
    snprintf(cmd, sizeof cmd, "%s train --local-crops 65 2> %s/err.txt; test $? -eq 2 && grep -q local-crops %s/err.txt", bin, tmpdir, tmpdir);
    CHECK(run(cmd) == 0, "--local-crops above 64: exit 2 and named");
    /* the multi-crop flags reach the run: the checkpoint's metadata records them */
    snprintf(cmd, sizeof cmd,
             "%s train --limit 128 --batch 64 --epochs 1 --width 4 --head-hidden 16 --head-out 8 --eval-every 0 --no-probe "
             "--quiet --local-crops 3 --local-size 9 --local-augment flip=0 --out %s/mc > /dev/null && "
             "grep -aq '\"train.local_crops\":\"3\"' %s/mc/checkpoint.safetensors && "
             "grep -aq '\"train.local_size\":\"9\"' %s/mc/checkpoint.safetensors && "
             "grep -aq '\"train.local_augment\":\"flip=0\"' %s/mc/checkpoint.safetensors && "
             "grep -aq '\"model.last_width\":\"64\"' %s/mc/checkpoint.safetensors",
             bin, tmpdir, tmpdir, tmpdir, tmpdir, tmpdir);
    CHECK(run(cmd) == 0, "--local-crops/--local-size/--local-augment train and are recorded in the checkpoint, "
                         "as the cnn's default last width, 16 x width");
    snprintf(cmd, sizeof cmd,
             "%s train --limit 128 --batch 64 --epochs 1 --width 4 --last-width 24 --head-hidden 16 --head-out 8 "
             "--eval-every 0 --no-probe --quiet --out %s/lw > /dev/null && "
             "grep -aq '\"model.last_width\":\"24\"' %s/lw/checkpoint.safetensors && "
             "%s embed --checkpoint %s/lw/checkpoint.safetensors --limit 10 --out %s/lw/h.npy 2> /dev/null && "
             "%s train --encoder resnet18 --last-width 8 2> %s/err.txt; test $? -eq 2 && grep -q last-width %s/err.txt",
             bin, tmpdir, tmpdir, bin, tmpdir, tmpdir, bin, tmpdir, tmpdir);
    CHECK(run(cmd) == 0, "--last-width N trains, is recorded and rebuilt by embed; refused for resnet18");
    {
        char lw[600];
        float *f = NULL;
        int64_t r = 0, k = 0;
        snprintf(lw, sizeof lw, "%s/lw/h.npy", tmpdir);
        CHECK_OK(ct_npy_read_f32(lw, &f, &r, &k));
        CHECK(r == 10 && k == 24, "--last-width 24: features are 10 x 24 (got %lld x %lld)", (long long)r, (long long)k);
        ct_free(f);
    }
    snprintf(cmd, sizeof cmd,
             "%s train --limit 128 --batch 64 --epochs 1 --encoder resnet18 --width 4 --head-hidden 16 --head-out 8 "
             "--eval-every 0 --no-probe --quiet --recompute --out %s/rc > /dev/null && "
             "grep -aq '\"train.recompute\":\"1\"' %s/rc/checkpoint.safetensors",
             bin, tmpdir, tmpdir);
    CHECK(run(cmd) == 0, "--recompute trains and is recorded in the checkpoint");
    snprintf(cmd, sizeof cmd, "%s train --limit 128 --batch 64 --epochs 1 --width 4 --quiet --local-crops 2 --local-augment bogus=1 --out %s/mc2 2> %s/err.txt; test $? -eq 1 && grep -q bogus %s/err.txt",
             bin, tmpdir, tmpdir, tmpdir);
    CHECK(run(cmd) == 0, "a bad --local-augment spec: exit 1 and named");
    snprintf(cmd, sizeof cmd, "%s train --method byol 2> /dev/null; test $? -eq 2", bin);
    CHECK(run(cmd) == 0, "unknown method refused");
    snprintf(cmd, sizeof cmd, "%s train --data mnist:/nonexistent --quiet --out %s/x 2> %s/err.txt; test $? -eq 1 && grep -q nonexistent %s/err.txt",
             bin, tmpdir, tmpdir, tmpdir);
    CHECK(run(cmd) == 0, "missing dataset: exit 1 naming the path");

    snprintf(out, sizeof out, "%s/full/checkpoint.safetensors", tmpdir);
    snprintf(cmd, sizeof cmd, "%s eval --checkpoint %s --limit 2000 --k 20 --json > %s/eval.json && grep -q '\"knn_top1\": 0\\.[5-9]' %s/eval.json",
             bin, out, tmpdir, tmpdir);
    CHECK(run(cmd) == 0, "eval --json prints knn_top1");
    snprintf(cmd, sizeof cmd, "%s eval --checkpoint %s/nope.safetensors 2> %s/err.txt; test $? -eq 1 && grep -q nope %s/err.txt", bin,
             tmpdir, tmpdir, tmpdir);
    CHECK(run(cmd) == 0, "eval of a missing checkpoint: exit 1 naming it");
    snprintf(cmd, sizeof cmd, "%s embed --checkpoint %s --limit 100 --out %s/h.npy --labels %s/y.npy 2>/dev/null", bin, out,
             tmpdir, tmpdir);
    CHECK(run(cmd) == 0, "embed writes .npy");
    char npy[600];
    snprintf(npy, sizeof npy, "%s/h.npy", tmpdir);
    float *x = NULL;
    int64_t rows = 0, cols = 0;
    CHECK_OK(ct_npy_read_f32(npy, &x, &rows, &cols));
    CHECK(rows == 100 && cols == 64, "features are 100 x 64 (got %lld x %lld)", (long long)rows, (long long)cols);
    ct_free(x);
    /* issue 20 hole 11: a bad --labels destination used to be found after the
     * features were written; both outputs are now checked first, nothing is written */
    snprintf(cmd, sizeof cmd,
             "%s embed --checkpoint %s --limit 100 --out %s/h11.npy --labels %s/nonexistent/y.npy 2> %s/err11.txt; "
             "test $? -eq 1 && grep -q nonexistent/y.npy %s/err11.txt && test ! -e %s/h11.npy && "
             "! ls %s | grep -q h11.npy",
             bin, out, tmpdir, tmpdir, tmpdir, tmpdir, tmpdir, tmpdir);
    CHECK(run(cmd) == 0, "embed with an unwritable --labels: exit 1 naming it, no features file left");
    snprintf(cmd, sizeof cmd, "%s embed --checkpoint %s --limit 100 --head --out %s/z.npy 2>/dev/null", bin, out, tmpdir);
    CHECK(run(cmd) == 0, "embed --head");
    snprintf(npy, sizeof npy, "%s/z.npy", tmpdir);
    CHECK_OK(ct_npy_read_f32(npy, &x, &rows, &cols));
    CHECK(rows == 100 && cols == 32, "head outputs are 100 x 32");
    ct_free(x);

    /* the whitening flags: embed's features are the raw ones whitened with the
     * checkpoint's mean and matrix; eval --no-whiten reports the raw kNN only */
    snprintf(cmd, sizeof cmd, "%s embed --checkpoint %s --limit 100 --no-whiten --out %s/r.npy 2>/dev/null", bin, out, tmpdir);
    CHECK(run(cmd) == 0, "embed --no-whiten");
    float *h = NULL, *raw = NULL;
    snprintf(npy, sizeof npy, "%s/h.npy", tmpdir);
    CHECK_OK(ct_npy_read_f32(npy, &h, &rows, &cols));
    snprintf(npy, sizeof npy, "%s/r.npy", tmpdir);
    CHECK_OK(ct_npy_read_f32(npy, &raw, &rows, &cols));
    ct_model m;
    CHECK_OK(ct_checkpoint_load_model(&m, out));
    if (h && raw && m.whiten_mean >= 0 && rows == 100 && cols == 64) {
        CHECK_OK(ct_whiten_apply(raw, rows, cols, m.buf + m.bufs[m.whiten_mean].offset,
                                 m.buf + m.bufs[m.whiten_weight].offset));
        CHECK(!memcmp(raw, h, (size_t)(rows * cols) * sizeof(float)), "embed = whitened embed --no-whiten");
    } else {
        CHECK(0, "embed outputs and a whitened checkpoint");
    }
    ct_model_free(&m);
    ct_free(h);
    ct_free(raw);
    snprintf(cmd, sizeof cmd,
             "%s eval --checkpoint %s --limit 1024 --k 20 --json > %s/w.json && grep -q 'knn_top1_unwhitened' %s/w.json && "
             "%s eval --checkpoint %s --limit 1024 --k 20 --json --no-whiten > %s/nw.json && "
             "! grep -q 'unwhitened' %s/nw.json && grep -q '\"features\": \"encoder\"' %s/nw.json",
             bin, out, tmpdir, tmpdir, bin, out, tmpdir, tmpdir, tmpdir);
    CHECK(run(cmd) == 0, "eval reports the unwhitened kNN beside the whitened one, --no-whiten only the raw one");
    snprintf(cmd, sizeof cmd,
             "%s train --limit 128 --batch 64 --epochs 1 --width 4 --head-hidden 16 --head-out 8 --eval-every 0 "
             "--quiet --whiten 0.01 --out %s/wh > %s/wh.txt && grep -aq '\"model.whiten\":\"0.00999' "
             "%s/wh/checkpoint.safetensors && grep -q knn_top1_unwhitened %s/wh.txt && "
             "%s train --limit 128 --batch 64 --epochs 1 --width 4 --head-hidden 16 --head-out 8 --eval-every 0 "
             "--quiet --whiten 0 --out %s/wh0 > %s/wh0.txt && ! grep -aq 'whiten.weight' %s/wh0/checkpoint.safetensors && "
             "! grep -q unwhitened %s/wh0.txt",
             bin, tmpdir, tmpdir, tmpdir, tmpdir, bin, tmpdir, tmpdir, tmpdir, tmpdir);
    CHECK(run(cmd) == 0, "train --whiten X is recorded in the checkpoint; --whiten 0 builds no whitening");
}

/* ---- integer option values (issue 20, hole 12): augment on the shared option table ---- */

/* `contrast augment` parsed --seed with strtoull, so -1 wrapped to 2^64-1 and "" read as
 * 0; both, an overflow and the table's bounds taken exactly must be refused, naming the
 * option, before anything is written. */
static void test_cli_integer_values(void) {
    const char *bin = getenv("CONTRAST_BIN");
    if (!bin) bin = "./contrast";
    static const char *const bad[][2] = {
        {"augment", "--seed -1"},
        {"augment", "--seed 99999999999999999999"},
        {"augment", "--seed ''"},
        {"augment", "--seed=9000000000000000001"}, /* one past the table's 9e18, the same double */
        {"augment", "--n ''"},
        {"augment", "--views 0x10"},
        {"train", "--seed -1"},
        {"train", "--limit ' 5'"},
    };
    char cmd[2048];
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        const char *opt = bad[i][1];
        char name[16];
        snprintf(name, sizeof name, "%.*s", (int)strcspn(opt, " ="), opt);
        snprintf(cmd, sizeof cmd,
                 "rm -f %s/ints.out && %s %s %s --out %s/ints.out 2> %s/err.txt > /dev/null; test $? -eq 2 && "
                 "grep -q -- '%s expects an integer' %s/err.txt && test ! -e %s/ints.out",
                 tmpdir, bin, bad[i][0], opt, tmpdir, tmpdir, name, tmpdir, tmpdir);
        CHECK(run(cmd) == 0, "contrast %s %s: exit 2, names %s, writes nothing", bad[i][0], opt, name);
    }
    snprintf(cmd, sizeof cmd,
             "%s augment --seed 9000000000000000000 --n 2 --views 1 --crop 0.5:1 --out %s/ints.png > %s/out.txt && "
             "test -s %s/ints.png && grep -q 'crop=0.5:1' %s/out.txt",
             bin, tmpdir, tmpdir, tmpdir, tmpdir);
    CHECK(run(cmd) == 0, "augment with the largest seed and an item option writes its grid");
    snprintf(cmd, sizeof cmd, "%s augment --help > %s/help.txt && grep -q -- '--seed N' %s/help.txt && grep -q -- '--blur S' %s/help.txt",
             bin, tmpdir, tmpdir, tmpdir);
    CHECK(run(cmd) == 0, "augment --help lists its options with their defaults");
}

int main(void) {
    snprintf(tmpdir, sizeof tmpdir, "/tmp/contrast-test-train-XXXXXX");
    if (!mkdtemp(tmpdir)) {
        perror("mkdtemp");
        return 1;
    }
    test_learns_and_resumes();
    test_other_methods();
    test_threads_invariant();
    test_resized_twin();
    test_local_crops();
    test_recompute();
    test_nan_stops();
    test_checkpoint_metadata_refused();
    test_run_folders();
    test_resume_checks();
    test_too_large();
    test_cli();
    test_cli_integer_values();
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf %s", tmpdir);
    if (g_fail == 0 && system(cmd) != 0) fprintf(stderr, "could not remove %s\n", tmpdir);
    return test_done();
}
