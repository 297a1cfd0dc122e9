/* test_reference.c: whole models against PyTorch, in the manner of llm.c's test_gpt2.
 *
 * tests/reference/make_reference.py (run with /usr/bin/python3 and Debian's
 * python3-torch) builds the CNN and a width-4 ResNet-18, each with the
 * Linear-BN-ReLU-Linear head, runs one training-mode forward of a fixed batch and
 * the backward of L = sum(z * dz), and writes everything to tests/fixtures/model_*.bin.
 * This test needs no Python: it loads the fixture's weights into our model by name
 * (failing loudly on a missing, extra or misshapen tensor), runs the same forward
 * and backward, and compares
 *   h, z                       the features and the embedding (training mode)
 *   grad.<every parameter>     dL/dparam
 *   buf.<every running stat>   BatchNorm running mean / var after the forward
 *   eval.h, eval.z             an eval-mode forward with those running stats
 *
 * Tolerance, for every tensor:  |got - ref| <= ATOL_REL * scale + RTOL * |ref|
 * with RTOL = ATOL_REL = 1e-4 and scale = max|ref| over the tensor (see
 * tensor_scale for bias gradients). The reference is float64 arithmetic on
 * float32-rounded inputs, so the difference is our float32 arithmetic alone: the
 * worst element uses 5% (CNN) and 7% (ResNet-18) of this tolerance, printed as
 * err/tol on every run. The absolute term is scaled to the tensor's magnitude
 * because gradient elements near zero are sums of cancelling terms of the
 * tensor's typical size, and their float32 error is relative to those terms, not
 * to the small result. (A 1e-5 * scale term is too tight for float32 through
 * a deep BatchNorm network: PyTorch's own float32 run exceeds it.) The fixture
 * script only accepts batches where PyTorch's float32 run stays within 10% of
 * this tolerance and no ReLU / max-pool decision is within 1e-5 of its boundary,
 * so a failure here is a real difference, not rounding.
 *
 * The tolerance is real: for every gradient tensor the test adds 1e-3 * scale to
 * its element of largest magnitude (five times the loosest tolerance any element
 * gets, 2e-4 * scale) and asserts that the same comparison rejects it. */
#include "harness.h"

#include <errno.h>

#define RTOL 1e-4
#define ATOL_REL 1e-4
#define FIXTURE_DIR_DEFAULT "tests/fixtures"
#define REGEN_HINT "regenerate with: /usr/bin/python3 tests/reference/make_reference.py"

/* ---- the fixture reader --------------------------------------------------------
 * Format (little endian), written by make_reference.py:
 *   "CTREFv01", int32 version, int32 nconfig, int32 config[nconfig], int32 ntensors,
 *   ntensors x { int32 name_len, name, int32 ndim, int64 shape[ndim], float32 data },
 *   "CTREFEND". Every count and length is checked against the bytes left before use. */

enum { CONF_ENCODER, CONF_WIDTH, CONF_IN_C, CONF_IN_H, CONF_IN_W, CONF_HIDDEN, CONF_OUT, CONF_HEAD_BN,
       CONF_BATCH, CONF_SEED, NCONF };

typedef struct {
    char name[CT_MAX_NAME + 16];
    int ndim;
    int64_t shape[CT_MAX_DIMS];
    size_t numel;
    float *data;
} ref_tensor;

typedef struct {
    int32_t conf[NCONF];
    int ntensors;
    ref_tensor *t;
} ref_fixture;

typedef struct {
    const unsigned char *p;
    size_t left;
} cursor;

static int take(cursor *c, void *dst, size_t n) {
    if (c->left < n) return 0;
    if (dst) memcpy(dst, c->p, n);
    c->p += n;
    c->left -= n;
    return 1;
}

static int take_i32(cursor *c, int32_t *v) {
    unsigned char b[4];
    if (!take(c, b, 4)) return 0;
    *v = (int32_t)((uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24);
    return 1;
}

static int take_i64(cursor *c, int64_t *v) {
    unsigned char b[8];
    if (!take(c, b, 8)) return 0;
    uint64_t u = 0;
    for (int i = 7; i >= 0; i--) u = u << 8 | b[i];
    *v = (int64_t)u;
    return 1;
}

static void fixture_free(ref_fixture *fx) {
    if (fx->t)
        for (int i = 0; i < fx->ntensors; i++) free(fx->t[i].data);
    free(fx->t);
    memset(fx, 0, sizeof *fx);
}

static ct_status parse(ref_fixture *fx, const char *path, const unsigned char *bytes, size_t size) {
    cursor c = {bytes, size};
    char magic[8];
    int32_t version, nconf, nt;
    if (!take(&c, magic, 8) || memcmp(magic, "CTREFv01", 8))
        return ct_error(CT_ERR_FORMAT, "%s: not a reference fixture (bad magic); %s", path, REGEN_HINT);
    if (!take_i32(&c, &version) || version != 1)
        return ct_error(CT_ERR_FORMAT, "%s: fixture version %d, expected 1; %s", path, (int)version, REGEN_HINT);
    if (!take_i32(&c, &nconf) || nconf != NCONF)
        return ct_error(CT_ERR_FORMAT, "%s: %d config values, expected %d", path, (int)nconf, NCONF);
    for (int i = 0; i < NCONF; i++)
        if (!take_i32(&c, &fx->conf[i])) return ct_error(CT_ERR_FORMAT, "%s: truncated in the config", path);
    if (!take_i32(&c, &nt) || nt < 1 || nt > 100000)
        return ct_error(CT_ERR_FORMAT, "%s: bad or truncated tensor count", path);
    fx->t = calloc((size_t)nt, sizeof(ref_tensor));
    if (!fx->t) return ct_error(CT_ERR_NOMEM, "%s: out of memory", path);
    for (int i = 0; i < nt; i++) {
        ref_tensor *t = &fx->t[i];
        int32_t len, ndim;
        if (!take_i32(&c, &len) || len < 1 || len >= (int32_t)sizeof t->name || !take(&c, t->name, (size_t)len))
            return ct_error(CT_ERR_FORMAT, "%s: tensor %d of %d: bad or truncated name; %s", path, i, (int)nt,
                            REGEN_HINT);
        t->name[len] = '\0';
        if (!take_i32(&c, &ndim) || ndim < 0 || ndim > CT_MAX_DIMS)
            return ct_error(CT_ERR_FORMAT, "%s: %s: bad or truncated rank", path, t->name);
        t->ndim = ndim;
        size_t numel = 1;
        for (int d = 0; d < ndim; d++) {
            if (!take_i64(&c, &t->shape[d]) || t->shape[d] < 0 || ct_size_mul(numel, (size_t)t->shape[d], &numel))
                return ct_error(CT_ERR_FORMAT, "%s: %s: bad or truncated shape", path, t->name);
        }
        t->numel = numel;
        if (numel > c.left / 4)
            return ct_error(CT_ERR_FORMAT, "%s: %s: truncated (%zu floats promised, %zu bytes left); %s", path,
                            t->name, numel, c.left, REGEN_HINT);
        t->data = malloc(numel ? numel * 4 : 4);
        if (!t->data) return ct_error(CT_ERR_NOMEM, "%s: out of memory", path);
        for (size_t j = 0; j < numel; j++) {
            int32_t u;
            take_i32(&c, &u);
            memcpy(&t->data[j], &u, 4);
        }
        fx->ntensors = i + 1;
    }
    if (!take(&c, magic, 8) || memcmp(magic, "CTREFEND", 8) || c.left != 0)
        return ct_error(CT_ERR_FORMAT, "%s: missing end marker or trailing bytes (truncated or corrupt); %s", path,
                        REGEN_HINT);
    return CT_OK;
}

/* Loads a whole fixture; on failure returns the status with a message naming the
 * file and the problem, and leaves *fx empty. */
static ct_status fixture_load(ref_fixture *fx, const char *path) {
    memset(fx, 0, sizeof *fx);
    FILE *f = fopen(path, "rb");
    if (!f) return ct_error(CT_ERR_IO, "%s: cannot open (%s); %s", path, strerror(errno), REGEN_HINT);
    unsigned char *bytes = NULL;
    size_t size = 0, cap = 0;
    for (;;) {
        if (size == cap) {
            cap = cap ? cap * 2 : 1 << 20;
            if (cap > ((size_t)64 << 20)) {
                free(bytes);
                fclose(f);
                return ct_error(CT_ERR_FORMAT, "%s: larger than 64 MiB, not a fixture", path);
            }
            unsigned char *nb = realloc(bytes, cap);
            if (!nb) {
                free(bytes);
                fclose(f);
                return ct_error(CT_ERR_NOMEM, "%s: out of memory", path);
            }
            bytes = nb;
        }
        size_t got = fread(bytes + size, 1, cap - size, f);
        size += got;
        if (got == 0) break;
    }
    int rerr = ferror(f);
    fclose(f);
    ct_status st = rerr ? ct_error(CT_ERR_IO, "%s: read error", path) : parse(fx, path, bytes, size);
    free(bytes);
    if (st) fixture_free(fx);
    return st;
}

static const ref_tensor *fx_get(const ref_fixture *fx, const char *name) {
    for (int i = 0; i < fx->ntensors; i++)
        if (!strcmp(fx->t[i].name, name)) return &fx->t[i];
    return NULL;
}

static int count_prefix(const ref_fixture *fx, const char *prefix) {
    int n = 0;
    for (int i = 0; i < fx->ntensors; i++) n += !strncmp(fx->t[i].name, prefix, strlen(prefix));
    return n;
}

/* ---- the comparison -------------------------------------------------------------
 * One predicate used both by the real checks and by the demonstration that a
 * wrong value is caught: |got - ref| <= ATOL_REL * max|ref| + RTOL * |ref|. */

typedef struct {
    double ratio;  /* worst |diff| / tolerance (<= 1 passes) */
    size_t at;
    double got, ref, diff;
} cmp_result;

static double max_abs(const float *x, size_t n) {
    double s = 0;
    for (size_t i = 0; i < n; i++) s = fmax(s, fabs((double)x[i]));
    return s;
}

/* The magnitude the absolute tolerance is relative to: max|ref| of the tensor, and
 * for a bias gradient also of its layer's weight gradient. A bias gradient sums
 * the same upstream terms as the weight gradient; before a training-mode
 * BatchNorm (head.0.bias) it is exactly zero, and what remains of those terms is
 * their float32 rounding, which only the weight gradient's size measures. */
static double tensor_scale(const ref_fixture *fx, const ref_tensor *ref) {
    double s = max_abs(ref->data, ref->numel);
    size_t len = strlen(ref->name);
    if (!strncmp(ref->name, "grad.", 5) && len > 5 && !strcmp(ref->name + len - 5, ".bias")) {
        char wname[sizeof ref->name + 8];
        snprintf(wname, sizeof wname, "%.*sweight", (int)(len - 4), ref->name);
        const ref_tensor *w = fx_get(fx, wname);
        if (w) s = fmax(s, max_abs(w->data, w->numel));
    }
    return s;
}

static int compare(const float *got, const float *ref, size_t n, double scale, cmp_result *r) {
    double atol = ATOL_REL * scale;
    memset(r, 0, sizeof *r);
    r->ratio = -1;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)got[i] - (double)ref[i]);
        double tol = atol + RTOL * fabs((double)ref[i]);
        double ratio = isfinite(got[i]) ? (tol > 0 ? d / tol : (d > 0 ? INFINITY : 0)) : INFINITY;
        if (ratio > r->ratio) {
            r->ratio = ratio;
            r->at = i;
            r->got = got[i];
            r->ref = ref[i];
            r->diff = d;
        }
    }
    return n == 0 || r->ratio <= 1.0;
}

/* Running worst over a model's tensors, for the summary line. */
typedef struct {
    double ratio;
    char what[CT_MAX_NAME + 16];
    int count;
} worst_of;

static void expect_close(worst_of *w, const ref_fixture *fx, const char *fixture, const char *what,
                         const float *got, size_t n) {
    const ref_tensor *ref = fx_get(fx, what);
    if (!ref || ref->numel != n) {
        CHECK(0, "%s: tensor '%s' is %s", fixture, what, ref ? "of another size in the fixture" : "missing from the fixture");
        return;
    }
    cmp_result r;
    int ok = compare(got, ref->data, n, tensor_scale(fx, ref), &r);
    CHECK(ok, "%s: %s: worst |diff| %.3g at [%zu] (got %.8g, ref %.8g) is %.3g x the tolerance %.0e*scale + %.0e*|ref|",
          fixture, what, r.diff, r.at, r.got, r.ref, r.ratio, ATOL_REL, RTOL);
    w->count++;
    if (r.ratio > w->ratio) {
        w->ratio = r.ratio;
        snprintf(w->what, sizeof w->what, "%s", what);
    }
}

/* ---- one model ------------------------------------------------------------------ */

static int shape_matches(const ct_tensor_info *ti, const ref_tensor *t) {
    if (ti->ndim != t->ndim) return 0;
    for (int d = 0; d < ti->ndim; d++)
        if (ti->shape[d] != t->shape[d]) return 0;
    return 1;
}

/* Copies "<prefix><name>" from the fixture into every row of the table; each row
 * must exist with the same shape, and the fixture must hold no extra rows. */
static int load_table(const char *fixture, const ref_fixture *fx, const char *prefix, const ct_tensor_info *tab,
                      int n, float *dst) {
    int ok = 1;
    char name[CT_MAX_NAME + 16];
    for (int i = 0; i < n; i++) {
        snprintf(name, sizeof name, "%s%s", prefix, tab[i].name);
        const ref_tensor *t = fx_get(fx, name);
        if (!t || !shape_matches(&tab[i], t)) {
            CHECK(0, "%s: model tensor '%s' %s in the fixture", fixture, name, t ? "has another shape" : "is missing");
            ok = 0;
            continue;
        }
        memcpy(dst + tab[i].offset, t->data, t->numel * sizeof(float));
    }
    int extra = count_prefix(fx, prefix);
    CHECK(extra == n, "%s: the fixture has %d '%s' tensors, the model %d (names differ)", fixture, extra, prefix, n);
    return ok && extra == n;
}

static void run_fixture(const char *dir, const char *file) {
    char path[512];
    snprintf(path, sizeof path, "%s/%s", dir, file);
    ref_fixture fx;
    ct_status st = fixture_load(&fx, path);
    CHECK(st == CT_OK, "%s", ct_errmsg());
    if (st) return;

    ct_model_config cfg;
    ct_model_config_default(&cfg);
    cfg.encoder = fx.conf[CONF_ENCODER] ? CT_ENC_RESNET18 : CT_ENC_CNN;
    cfg.width = fx.conf[CONF_WIDTH];
    cfg.in_c = fx.conf[CONF_IN_C];
    cfg.in_h = fx.conf[CONF_IN_H];
    cfg.in_w = fx.conf[CONF_IN_W];
    cfg.head_hidden = fx.conf[CONF_HIDDEN];
    cfg.head_out = fx.conf[CONF_OUT];
    cfg.head_bn = fx.conf[CONF_HEAD_BN];
    const int64_t N = fx.conf[CONF_BATCH];
    ct_model m;
    CHECK_OK(ct_model_init(&m, &cfg));
    const ref_tensor *x = fx_get(&fx, "x"), *dz = fx_get(&fx, "dz");
    int ok = x && dz && x->numel == (size_t)(N * cfg.in_c * cfg.in_h * cfg.in_w) &&
             dz->numel == (size_t)(N * cfg.head_out);
    CHECK(ok, "%s: x or dz missing or misshapen", path);
    if (!ok || !m.param) goto out;
    ok = load_table(path, &fx, "param.", m.params, m.nparams, m.param);
    ok = load_table(path, &fx, "buf0.", m.bufs, m.nbufs, m.buf) && ok;
    if (!ok) goto out_model;
    CHECK(count_prefix(&fx, "grad.") == m.nparams && count_prefix(&fx, "buf.") == m.nbufs,
          "%s: gradient or running-stat count differs from the model", path);

    /* training forward + backward of L = sum(z * dz) */
    CHECK_OK(ct_model_prepare(&m, N));
    CHECK_OK(ct_model_forward(&m, x->data, N, 1, 1));
    ct_model_zero_grad(&m);
    CHECK_OK(ct_model_backward(&m, dz->data));

    worst_of w = {-1, "", 0};
    expect_close(&w, &fx, file, "h", ct_model_features(&m), (size_t)(N * ct_model_feature_dim(&m)));
    expect_close(&w, &fx, file, "z", ct_model_embedding(&m), (size_t)(N * ct_model_embed_dim(&m)));
    char name[CT_MAX_NAME + 16];
    for (int i = 0; i < m.nparams; i++) {
        snprintf(name, sizeof name, "grad.%s", m.params[i].name);
        expect_close(&w, &fx, file, name, m.grad + m.params[i].offset, m.params[i].numel);
    }
    for (int i = 0; i < m.nbufs; i++) {
        snprintf(name, sizeof name, "buf.%s", m.bufs[i].name);
        expect_close(&w, &fx, file, name, m.buf + m.bufs[i].offset, m.bufs[i].numel);
    }

    /* The comparison can fail: an error of 1e-3 * max|ref| in the largest gradient
     * element (the place the tolerance is loosest) is rejected in every tensor. */
    int caught = 0;
    float *bad = NULL;
    for (int i = 0; i < m.nparams; i++) {
        snprintf(name, sizeof name, "grad.%s", m.params[i].name);
        const ref_tensor *ref = fx_get(&fx, name);
        size_t n = m.params[i].numel;
        if (!ref || ref->numel != n) continue;
        bad = realloc(bad, n * sizeof(float));
        if (!bad) break;
        memcpy(bad, m.grad + m.params[i].offset, n * sizeof(float));
        size_t big = 0;
        for (size_t j = 1; j < n; j++)
            if (fabsf(ref->data[j]) > fabsf(ref->data[big])) big = j;
        double scale = tensor_scale(&fx, ref);
        bad[big] += (float)(1e-3 * scale);
        cmp_result r;
        if (!compare(bad, ref->data, n, scale, &r)) caught++;
        else fprintf(stderr, "%s: %s: a 1e-3 relative error went unnoticed\n", file, name);
    }
    free(bad);
    CHECK(caught == m.nparams, "%s: only %d of %d perturbed gradients were rejected", file, caught, m.nparams);

    /* eval mode: BatchNorm uses the running statistics the training forward left */
    CHECK_OK(ct_model_forward(&m, x->data, N, 0, 1));
    expect_close(&w, &fx, file, "eval.h", ct_model_features(&m),
                 (size_t)(N * ct_model_feature_dim(&m)));
    expect_close(&w, &fx, file, "eval.z", ct_model_embedding(&m),
                 (size_t)(N * ct_model_embed_dim(&m)));

    printf("%-20s %s width %d, %dx%dx%d, batch %lld: %d tensors, worst err/tol %.3f (%s); "
           "%d/%d perturbed gradients caught\n",
           file, ct_encoder_name(cfg.encoder), cfg.width, cfg.in_c, cfg.in_h, cfg.in_w, (long long)N, w.count,
           w.ratio, w.what, caught, m.nparams);
out_model:
    ct_model_free(&m);
out:
    fixture_free(&fx);
}

/* ---- the reader's own failure modes ------------------------------------------- */

static void test_bad_fixtures(const char *dir) {
    ref_fixture fx;
    ct_status st = fixture_load(&fx, "tests/fixtures/no_such_fixture.bin");
    CHECK(st == CT_ERR_IO && strstr(ct_errmsg(), "no_such_fixture.bin"), "missing fixture: %s", ct_errmsg());

    /* a copy of the CNN fixture cut short at several points, and one with a bad magic */
    char path[512];
    snprintf(path, sizeof path, "%s/model_cnn.bin", dir);
    FILE *f = fopen(path, "rb");
    if (!f) return; /* run_fixture already reported it */
    unsigned char *bytes = malloc(1 << 20);
    size_t size = bytes ? fread(bytes, 1, 1 << 20, f) : 0;
    fclose(f);
    char tmp[] = "/tmp/ct_ref_XXXXXX";
    int fd = mkstemp(tmp);
    CHECK(fd >= 0 && size > 100, "cannot make a temporary file");
    if (fd < 0 || size <= 100) {
        free(bytes);
        return;
    }
    FILE *t = fdopen(fd, "wb");
    const size_t cuts[] = {0, 5, 20, 60, size / 2, size - 9, size - 1};
    for (size_t i = 0; i < sizeof cuts / sizeof cuts[0]; i++) {
        t = freopen(tmp, "wb", t);
        if (!t) break;
        fwrite(bytes, 1, cuts[i], t);
        fflush(t);
        st = fixture_load(&fx, tmp);
        CHECK(st == CT_ERR_FORMAT && strstr(ct_errmsg(), tmp), "fixture cut to %zu of %zu bytes: %s -> %s", cuts[i],
              size, ct_status_name(st), ct_errmsg());
    }
    if (t) {
        t = freopen(tmp, "wb", t);
        bytes[0] ^= 0xff;
        if (t) {
            fwrite(bytes, 1, size, t);
            fflush(t);
        }
        st = fixture_load(&fx, tmp);
        CHECK(st == CT_ERR_FORMAT && strstr(ct_errmsg(), "magic"), "bad magic: %s", ct_errmsg());
        fclose(t);
    }
    remove(tmp);
    free(bytes);
}

int main(int argc, char **argv) {
    const char *dir = argc > 1 ? argv[1] : getenv("CONTRAST_FIXTURES");
    if (!dir) dir = FIXTURE_DIR_DEFAULT;
    run_fixture(dir, "model_cnn.bin");
    run_fixture(dir, "model_resnet18.bin");
    test_bad_fixtures(dir);
    return test_done();
}
