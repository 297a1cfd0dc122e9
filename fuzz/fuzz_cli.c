/* fuzz_cli.c: the command-line parsers of `contrast train / eval / embed / augment /
 * zeroshot / search` (src/cli) and, through them, ct_augment_parse and the clip
 * commands' code on a tiny in-memory clip model.
 *
 * Input: one byte choosing the command, then its arguments separated by NUL bytes.
 * The calls that would do real work are replaced at link time (-Wl,--wrap, see the
 * Makefile's fuzz target), so no input can start training, read a dataset, load a
 * checkpoint or write a file, whatever options it finds:
 *   ct_train_run          checks the parsed configuration and its --augment spec
 *   ct_dataset_load       a 4-image synthetic dataset in memory
 *   ct_checkpoint_load_model, ct_evaluate, ct_extract_features   refuse / no-op
 *   ct_png_write          touches the pixels, writes nothing
 *   ct_atomic_open        refused (embed's outputs: nothing is created)
 *   ct_set_threads        ignored (a fuzzed --threads 1024 must not spawn threads)
 *   ct_st_open            refused (no checkpoint or index file is read)
 *   cli_is_clip_checkpoint  1 for a path starting with "clip" (the dictionary's word)
 *   ct_clip_load          for a "clip..." path: a tiny real model (cnn on 16x16, a
 *                         1-block text transformer, a BPE trained on two captions), so
 *                         zeroshot / search / eval / embed run their clip code
 *   ct_caption_dataset_load, ct_caption_folder_load   4 synthetic images, 2 classes
 *   ct_image_load_rgb     synthetic pixels; ct_text_dataset_load,
 *   ct_zeroshot_read_classes / _templates   refused (no file read)
 *   ct_augment_view, ct_data_eval_batch   real for outputs up to 32x32, else zeros:
 *                         a sanitised, coverage-instrumented build needs ~30 s for a
 *                         grid of 227x227 blurred views (found as a -timeout), and the
 *                         pixel arithmetic is not what this target is for
 * What stays real: option tables, number parsing and range checks, the augment
 * spec parser, and `augment`'s grid of views over the synthetic images. */
#include "common.h"
#include "contrast/train.h"
#include "../src/cli/cli.h"

void __wrap_ct_set_threads(int n);
void __wrap_ct_set_threads(int n) { (void)n; }

ct_status __wrap_ct_dataset_load(ct_dataset *ds, const char *spec, int train);
ct_status __wrap_ct_dataset_load(ct_dataset *ds, const char *spec, int train) {
    memset(ds, 0, sizeof *ds);
    (void)train;
    if (!spec || !*spec) return ct_error(CT_ERR_ARG, "dataset: empty spec");
    ds->n = 4;
    ds->c = strlen(spec) % 2 ? 3 : 1;
    ds->h = ds->w = 8;
    ds->images = ct_alloc((size_t)ds->n * ds->c * 64);
    ds->labels = ct_alloc((size_t)ds->n * sizeof(int32_t));
    if (!ds->images || !ds->labels) {
        ct_dataset_free(ds);
        return CT_ERR_NOMEM;
    }
    for (size_t i = 0; i < (size_t)ds->n * ds->c * 64; i++) ds->images[i] = (uint8_t)(i * 37);
    for (int i = 0; i < 4; i++) ds->labels[i] = i % 2;
    ds->num_classes = 2;
    snprintf(ds->name, sizeof ds->name, "synthetic");
    for (int c = 0; c < 3; c++) ds->mean[c] = 0.5f, ds->std[c] = 0.25f;
    return CT_OK;
}

/* The augmentation spec round trip: describe() must give a spec parse() accepts
 * and that describes the same pipeline. */
static void check_augment(const char *spec, const ct_dataset *ds) {
    ct_augment a, b;
    ct_augment_for_dataset(&a, ds);
    if (ct_augment_parse(&a, spec) != CT_OK || ct_augment_check(&a, ds) != CT_OK) return;
    char d1[1024], d2[1024];
    ct_augment_describe(&a, d1, sizeof d1);
    ct_augment_for_dataset(&b, ds);
    if (ct_augment_parse(&b, d1) != CT_OK) fz_fail("augment describe -> parse refused", d1);
    ct_augment_describe(&b, d2, sizeof d2);
    if (strcmp(d1, d2)) fz_fail("augment describe -> parse -> describe changed", d2);
}

ct_status __wrap_ct_train_run(const ct_train_config *c, ct_train_result *res);
ct_status __wrap_ct_train_run(const ct_train_config *c, ct_train_result *res) {
    memset(res, 0, sizeof *res);
    if (c->epochs < 1 || c->batch < 2 || !(c->lr > 0) || !(c->temperature > 0) || c->model.width < 0 ||
        (int)c->method < 0 || (int)c->method > 2 || strnlen(c->data, sizeof c->data) == sizeof c->data ||
        strnlen(c->out, sizeof c->out) == sizeof c->out)
        fz_fail("cli", "train configuration outside the option ranges");
    ct_dataset ds;
    if (__wrap_ct_dataset_load(&ds, c->data, 1) == CT_OK) {
        check_augment(c->augment, &ds);
        ct_dataset_free(&ds);
    }
    res->knn_top1 = res->probe_top1 = -1;
    return CT_OK;
}

#define SMALL_VIEW(a) ((int64_t)(a)->out_h * (a)->out_w <= 32 * 32)
void __real_ct_augment_view(float *out, float *scratch, const ct_augment *a, const ct_dataset *ds, int64_t index,
                            uint64_t key);
void __wrap_ct_augment_view(float *out, float *scratch, const ct_augment *a, const ct_dataset *ds, int64_t index,
                            uint64_t key);
void __wrap_ct_augment_view(float *out, float *scratch, const ct_augment *a, const ct_dataset *ds, int64_t index,
                            uint64_t key) {
    if (SMALL_VIEW(a)) __real_ct_augment_view(out, scratch, a, ds, index, key);
    else memset(out, 0, (size_t)ds->c * a->out_h * a->out_w * sizeof(float));
}
ct_status __real_ct_data_eval_batch(float *x, const ct_dataset *ds, const ct_augment *a, int64_t start, int64_t count);
ct_status __wrap_ct_data_eval_batch(float *x, const ct_dataset *ds, const ct_augment *a, int64_t start, int64_t count);
ct_status __wrap_ct_data_eval_batch(float *x, const ct_dataset *ds, const ct_augment *a, int64_t start, int64_t count) {
    if (SMALL_VIEW(a)) return __real_ct_data_eval_batch(x, ds, a, start, count);
    memset(x, 0, (size_t)count * ds->c * a->out_h * a->out_w * sizeof(float));
    return CT_OK;
}

ct_status __wrap_ct_checkpoint_load_model(ct_model *m, const char *path);
ct_status __wrap_ct_checkpoint_load_model(ct_model *m, const char *path) {
    memset(m, 0, sizeof *m);
    return ct_error(CT_ERR_IO, "%s: not loaded while fuzzing", path);
}

ct_status __wrap_ct_evaluate(ct_eval_result *r, ct_model *m, const ct_eval_config *c);
ct_status __wrap_ct_evaluate(ct_eval_result *r, ct_model *m, const ct_eval_config *c) {
    (void)m;
    if (c->knn_k < 1 || strnlen(c->data, sizeof c->data) == sizeof c->data) fz_fail("cli", "eval configuration outside the option ranges");
    memset(r, 0, sizeof *r);
    r->knn_top1 = r->knn_top5 = r->probe_top1 = 0.5;
    return CT_OK;
}

ct_status __wrap_ct_extract_features(float **out, int64_t *dim, ct_model *m, const ct_dataset *ds,
                                     ct_feature_kind head, int64_t batch);
ct_status __wrap_ct_extract_features(float **out, int64_t *dim, ct_model *m, const ct_dataset *ds,
                                     ct_feature_kind head, int64_t batch) {
    (void)out; (void)dim; (void)m; (void)ds; (void)head; (void)batch;
    return ct_error(CT_ERR_STATE, "not while fuzzing");
}

ct_status __wrap_ct_png_write(const char *path, const uint8_t *pixels, int w, int h, int channels);
ct_status __wrap_ct_png_write(const char *path, const uint8_t *pixels, int w, int h, int channels) {
    (void)path;
    if (w < 1 || h < 1 || (channels != 1 && channels != 3) || !pixels) fz_fail("cli", "bad PNG request");
    volatile uint8_t last = pixels[(size_t)w * h * channels - 1]; /* the grid is that large (ASan) */
    (void)last;
    return CT_OK;
}

/* embed opens its outputs before any work: refused here, so nothing is created */
ct_status __wrap_ct_atomic_open(ct_atomic_file *af, const char *path);
ct_status __wrap_ct_atomic_open(ct_atomic_file *af, const char *path) {
    memset(af, 0, sizeof *af);
    return ct_error(CT_ERR_IO, "%s: not written while fuzzing", path);
}

/* ---- the clip commands ---------------------------------------------------------------- */

ct_status __wrap_ct_st_open(ct_st_file **out, const char *path);
ct_status __wrap_ct_st_open(ct_st_file **out, const char *path) {
    *out = NULL;
    return ct_error(CT_ERR_IO, "%s: not read while fuzzing", path);
}

int __wrap_cli_is_clip_checkpoint(const char *path);
int __wrap_cli_is_clip_checkpoint(const char *path) { return !strncmp(path, "clip", 4); }

static const char *const fz_captions[4] = {"a red square", "red", "a blue square", "blue"};

ct_status __wrap_ct_clip_load(ct_clip *c, const char *path);
ct_status __wrap_ct_clip_load(ct_clip *c, const char *path) {
    memset(c, 0, sizeof *c);
    if (strncmp(path, "clip", 4)) return ct_error(CT_ERR_IO, "%s: not loaded while fuzzing", path);
    size_t len[4];
    for (int i = 0; i < 4; i++) len[i] = strlen(fz_captions[i]);
    ct_tokenizer_opts o = {300};
    ct_status st = ct_tokenizer_train(&c->tok, fz_captions, len, 4, &o);
    ct_model_config ic, tc;
    ct_model_config_default(&ic);
    ic.in_c = 3;
    ic.in_h = ic.in_w = 16;
    ic.width = 4;
    ic.last_width = 8;
    ic.head_hidden = -1;
    ic.head_out = 4;
    ic.whiten = 0;
    ct_model_config_default(&tc);
    tc.encoder = CT_ENC_TRANSFORMER;
    tc.width = 8;
    tc.depth = 1;
    tc.heads = 2;
    tc.context = 8;
    tc.in_c = 1;
    tc.in_h = 8;
    tc.in_w = 1;
    tc.pool = CT_POOL_EOT;
    tc.causal = 1;
    tc.dropout = 0;
    tc.head_hidden = -1;
    tc.head_out = 4;
    tc.head_bn = 0;
    tc.whiten = 0;
    if (!st) {
        tc.vocab = ct_tokenizer_vocab_size(c->tok);
        st = ct_model_init(&c->image, &ic);
    }
    if (!st) st = ct_model_init(&c->text, &tc);
    c->logit_scale = 2.0f;
    for (int k = 0; k < 3; k++) c->mean[k] = 0.5f, c->std[k] = 0.25f;
    c->size = 16;
    c->dim = 4;
    if (st) ct_clip_free(c);
    return st;
}

static char *fz_strdup(const char *s) {
    char *d = malloc(strlen(s) + 1);
    if (d) strcpy(d, s);
    return d;
}

static ct_status fz_captions_load(ct_caption_dataset *ds, const char *spec, int size) {
    memset(ds, 0, sizeof *ds);
    if (!spec || !*spec) return ct_error(CT_ERR_ARG, "captions: empty spec");
    if (size < 1 || size > 64) return ct_error(CT_ERR_ARG, "captions: size %d", size);
    const int64_t n = 4;
    ds->img.n = n;
    ds->img.c = 3;
    ds->img.h = ds->img.w = size;
    ds->img.images = ct_alloc((size_t)n * 3 * (size_t)size * (size_t)size);
    ds->img.labels = ct_alloc((size_t)n * sizeof(int32_t));
    ds->caption_start = malloc((size_t)(n + 1) * sizeof *ds->caption_start);
    ds->captions = calloc((size_t)n, sizeof *ds->captions);
    ds->files = calloc((size_t)n, sizeof *ds->files);
    ds->class_names = calloc(2, sizeof *ds->class_names);
    ds->img.num_classes = 2;
    if (!ds->img.images || !ds->img.labels || !ds->caption_start || !ds->captions || !ds->files || !ds->class_names) {
        ct_caption_dataset_free(ds);
        return CT_ERR_NOMEM;
    }
    for (size_t i = 0; i < (size_t)n * 3 * (size_t)size * (size_t)size; i++) ds->img.images[i] = (uint8_t)(i * 37);
    ds->caption_start[0] = 0;
    for (int64_t i = 0; i < n; i++) {
        ds->img.labels[i] = (int32_t)(i / 2);
        ds->captions[i] = fz_strdup(fz_captions[i]);
        ds->files[i] = fz_strdup(i < 2 ? "red.png" : "blue.png");
        ds->caption_start[i + 1] = i + 1;
    }
    ds->class_names[0] = fz_strdup("red");
    ds->class_names[1] = fz_strdup("blue");
    for (int c = 0; c < 3; c++) ds->img.mean[c] = 0.5f, ds->img.std[c] = 0.25f;
    snprintf(ds->img.name, sizeof ds->img.name, "synthetic");
    for (int64_t i = 0; i < n; i++)
        if (!ds->captions[i] || !ds->files[i]) {
            ct_caption_dataset_free(ds);
            return CT_ERR_NOMEM;
        }
    if (!ds->class_names[0] || !ds->class_names[1]) {
        ct_caption_dataset_free(ds);
        return CT_ERR_NOMEM;
    }
    return CT_OK;
}

ct_status __wrap_ct_caption_dataset_load(ct_caption_dataset *ds, const char *spec, int train, int size);
ct_status __wrap_ct_caption_dataset_load(ct_caption_dataset *ds, const char *spec, int train, int size) {
    (void)train;
    return fz_captions_load(ds, spec, size);
}

ct_status __wrap_ct_caption_folder_load(ct_caption_dataset *ds, const char *dir, int train, int size);
ct_status __wrap_ct_caption_folder_load(ct_caption_dataset *ds, const char *dir, int train, int size) {
    (void)train;
    return fz_captions_load(ds, dir, size);
}

ct_status __wrap_ct_image_load_rgb(uint8_t *out, const char *path, int size);
ct_status __wrap_ct_image_load_rgb(uint8_t *out, const char *path, int size) {
    if (!path || !*path) return ct_error(CT_ERR_ARG, "image: empty path");
    memset(out, 200, (size_t)3 * (size_t)size * (size_t)size);
    return CT_OK;
}

ct_status __wrap_ct_text_dataset_load(ct_text_dataset *ds, const char *spec, int train);
ct_status __wrap_ct_text_dataset_load(ct_text_dataset *ds, const char *spec, int train) {
    (void)train;
    memset(ds, 0, sizeof *ds);
    return ct_error(CT_ERR_IO, "%s: not read while fuzzing", spec);
}

ct_status __wrap_ct_zeroshot_read_classes(char ***names, int64_t *n, const char *path);
ct_status __wrap_ct_zeroshot_read_classes(char ***names, int64_t *n, const char *path) {
    *names = NULL;
    *n = 0;
    return ct_error(CT_ERR_IO, "%s: not read while fuzzing", path);
}

ct_status __wrap_ct_zeroshot_read_templates(char ***templates, int64_t *n, const char *path);
ct_status __wrap_ct_zeroshot_read_templates(char ***templates, int64_t *n, const char *path) {
    *templates = NULL;
    *n = 0;
    return ct_error(CT_ERR_IO, "%s: not read while fuzzing", path);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1 || size > 4096) return 0;
    static const char *names[6] = {"train", "eval", "embed", "augment", "zeroshot", "search"};
    int which = data[0] % 7;
    char *buf = malloc(size);
    if (!buf) return 0;
    memcpy(buf, data + 1, size - 1);
    buf[size - 1] = '\0';
    if (which == 6) { /* the augment spec parser alone, on a gray and a colour dataset */
        for (int ch = 0; ch < 2; ch++) {
            ct_dataset ds;
            if (__wrap_ct_dataset_load(&ds, ch ? "x" : "xx", 1) == CT_OK) check_augment(buf, &ds);
            ct_dataset_free(&ds);
        }
        free(buf);
        return 0;
    }
    char *argv[34];
    int argc = 0;
    argv[argc++] = (char *)names[which];
    for (char *p = buf; p < buf + size - 1 && argc < 33; p += strlen(p) + 1) argv[argc++] = p;
    argv[argc] = NULL;
    int (*fn[6])(int, char **) = {cmd_train, cmd_eval, cmd_embed, cmd_augment, cmd_zeroshot, cmd_search};
    int rc = fn[which](argc, argv);
    if (rc < 0 || rc > 2) fz_fail("cli", "exit code outside 0..2");
    free(buf);
    return 0;
}
