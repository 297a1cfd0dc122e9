/* fuzz_cli.c: the command-line parsers of `contrast train / eval / embed / augment`
 * (src/cli) and, through them, ct_augment_parse.
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

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1 || size > 4096) return 0;
    static const char *names[4] = {"train", "eval", "embed", "augment"};
    int which = data[0] % 5;
    char *buf = malloc(size);
    if (!buf) return 0;
    memcpy(buf, data + 1, size - 1);
    buf[size - 1] = '\0';
    if (which == 4) { /* the augment spec parser alone, on a gray and a colour dataset */
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
    int (*fn[4])(int, char **) = {cmd_train, cmd_eval, cmd_embed, cmd_augment};
    int rc = fn[which](argc, argv);
    if (rc < 0 || rc > 2) fz_fail("cli", "exit code outside 0..2");
    free(buf);
    return 0;
}
