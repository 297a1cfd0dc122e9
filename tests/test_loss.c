/* test_loss.c: the objectives of src/loss.
 *
 * Three kinds of evidence per objective:
 *   - PyTorch: loss and gradient against tests/fixtures/loss_ref.bin, written by
 *     tests/reference/make_loss_reference.py from the papers' definitions;
 *   - finite differences: the analytic gradient against central differences of an
 *     independent double-precision implementation written here;
 *   - properties: NT-Xent at N = 4096, tau = 0.05 against double precision, thread-count
 *     determinism, zero vectors, workspace sizing, the MoCo queue and momentum update,
 *     pair construction. */
#include "harness.h"
#include "../src/loss/internal.h" /* ct_loss__exp, the row kernel's exp */

#include <omp.h>
#include <stdint.h>
#include <unistd.h>

/* ---- fixture reader ----------------------------------------------------------- */

#define FX_MAX 128
typedef struct {
    char name[33];
    uint64_t n;
    float *data;
} fx_rec;
typedef struct {
    fx_rec rec[FX_MAX];
    int count;
    char *buf;
} fx_file;

/* Loads every record, validating each size against the bytes that remain; a short or
 * malformed file is an error with a message, never an out-of-bounds read. */
static int fx_load(fx_file *fx, const char *path, char *msg, size_t msg_len) {
    memset(fx, 0, sizeof *fx);
    FILE *f = fopen(path, "rb");
    if (!f) { snprintf(msg, msg_len, "%s: cannot open (run from the repository root)", path); return -1; }
    fseek(f, 0, SEEK_END);
    long len = ftell(f);
    fseek(f, 0, SEEK_SET);
    if (len < 12) { fclose(f); snprintf(msg, msg_len, "%s: truncated header (%ld bytes)", path, len); return -1; }
    fx->buf = malloc((size_t)len);
    size_t got = fread(fx->buf, 1, (size_t)len, f);
    fclose(f);
    if (got != (size_t)len) { snprintf(msg, msg_len, "%s: short read", path); return -1; }
    if (memcmp(fx->buf, "CTLOSS01", 8)) { snprintf(msg, msg_len, "%s: bad magic", path); return -1; }
    uint32_t nrec;
    memcpy(&nrec, fx->buf + 8, 4);
    if (nrec > FX_MAX) { snprintf(msg, msg_len, "%s: %u records, at most %d", path, nrec, FX_MAX); return -1; }
    size_t off = 12, total = (size_t)len;
    for (uint32_t r = 0; r < nrec; r++) {
        if (total - off < 40) {
            snprintf(msg, msg_len, "%s: truncated in the header of record %u of %u", path, r, nrec);
            return -1;
        }
        fx_rec *rec = &fx->rec[r];
        memcpy(rec->name, fx->buf + off, 32);
        rec->name[32] = 0;
        memcpy(&rec->n, fx->buf + off + 32, 8);
        off += 40;
        if (rec->n > (total - off) / 4) {
            snprintf(msg, msg_len, "%s: truncated: record '%s' needs %llu floats, %zu bytes left", path,
                     rec->name, (unsigned long long)rec->n, total - off);
            return -1;
        }
        rec->data = malloc(rec->n ? rec->n * 4 : 4);
        memcpy(rec->data, fx->buf + off, rec->n * 4);
        off += rec->n * 4;
        fx->count = (int)r + 1;
    }
    if (off != total) { snprintf(msg, msg_len, "%s: %zu trailing bytes", path, total - off); return -1; }
    return 0;
}

static void fx_free(fx_file *fx) {
    for (int i = 0; i < fx->count; i++) free(fx->rec[i].data);
    free(fx->buf);
    memset(fx, 0, sizeof *fx);
}

/* The record `name` with exactly n floats, or NULL and a failed CHECK. */
static float *fx_get(fx_file *fx, const char *name, uint64_t n) {
    for (int i = 0; i < fx->count; i++)
        if (!strcmp(fx->rec[i].name, name)) {
            CHECK(fx->rec[i].n == n, "fixture record %s has %llu floats, expected %llu", name,
                  (unsigned long long)fx->rec[i].n, (unsigned long long)n);
            return fx->rec[i].n == n ? fx->rec[i].data : NULL;
        }
    CHECK(0, "fixture record %s missing", name);
    return NULL;
}

static void to_labels(int32_t *lab, const float *f, int64_t n) {
    for (int64_t i = 0; i < n; i++) lab[i] = (int32_t)f[i];
}

/* ---- double-precision references (independent of src/loss) ------------------- */

static void dnormalize(double *u, double *nrm, const float *z, int64_t rows, int64_t d) {
    for (int64_t i = 0; i < rows; i++) {
        double s = 0;
        for (int64_t k = 0; k < d; k++) s += (double)z[i * d + k] * z[i * d + k];
        double n = sqrt(s), inv = 1.0 / (n > 1e-12 ? n : 1e-12);
        if (nrm) nrm[i] = n;
        for (int64_t k = 0; k < d; k++) u[i * d + k] = z[i * d + k] * inv;
    }
}

static double ddot(const double *a, const double *b, int64_t d) {
    double s = 0;
    for (int64_t k = 0; k < d; k++) s += a[k] * b[k];
    return s;
}

/* SupCon / NT-Xent (labels NULL: sample index) in double. lse: (rows) or NULL. */
static double ref_selfsim(const float *z, const int32_t *labels, int64_t n, int64_t views, int64_t d,
                          double tau, double *lse_out) {
    int64_t rows = n * views;
    double *u = malloc((size_t)(rows * d) * sizeof(double)), total = 0;
    dnormalize(u, NULL, z, rows, d);
#pragma omp parallel reduction(+ : total)
    {
        double *srow = malloc((size_t)rows * sizeof(double));
#pragma omp for schedule(static)
        for (int64_t i = 0; i < rows; i++) {
            int64_t li = labels ? labels[i % n] : i % n;
            double m = -INFINITY, ps = 0, se = 0;
            int64_t np = 0;
            for (int64_t j = 0; j < rows; j++) {
                if (j == i) continue;
                double s = srow[j] = ddot(u + i * d, u + j * d, d) / tau;
                if (s > m) m = s;
                if ((labels ? labels[j % n] : j % n) == li) { ps += s; np++; }
            }
            for (int64_t j = 0; j < rows; j++)
                if (j != i) se += exp(srow[j] - m);
            if (lse_out) lse_out[i] = m + log(se);
            if (np) total += m + log(se) - ps / np;
        }
        free(srow);
    }
    free(u);
    return total / rows;
}

static double ref_nce(const float *q, const float *p, const float *neg, int64_t n, int64_t k, int64_t d,
                      double tau) {
    double *uq = malloc(n * d * 8), *up = malloc(n * d * 8), *un = malloc(k * d * 8), total = 0;
    dnormalize(uq, NULL, q, n, d);
    dnormalize(up, NULL, p, n, d);
    dnormalize(un, NULL, neg, k, d);
    for (int64_t i = 0; i < n; i++) {
        double pos = ddot(uq + i * d, up + i * d, d) / tau, m = pos, se = 0;
        for (int64_t j = 0; j < k; j++) { double s = ddot(uq + i * d, un + j * d, d) / tau; if (s > m) m = s; }
        se = exp(pos - m);
        for (int64_t j = 0; j < k; j++) se += exp(ddot(uq + i * d, un + j * d, d) / tau - m);
        total += m + log(se) - pos;
    }
    free(uq); free(up); free(un);
    return total / n;
}

static double ref_clip(const float *img, const float *txt, double s, int64_t n, int64_t d) {
    double *ui = malloc(n * d * 8), *ut = malloc(n * d * 8), total = 0;
    dnormalize(ui, NULL, img, n, d);
    dnormalize(ut, NULL, txt, n, d);
    double c = exp(s) < 100 ? exp(s) : 100;
    for (int dir = 0; dir < 2; dir++) {
        double *a = dir ? ut : ui, *b = dir ? ui : ut;
        for (int64_t i = 0; i < n; i++) {
            double m = -INFINITY, se = 0;
            for (int64_t j = 0; j < n; j++) { double v = c * ddot(a + i * d, b + j * d, d); if (v > m) m = v; }
            for (int64_t j = 0; j < n; j++) se += exp(c * ddot(a + i * d, b + j * d, d) - m);
            total += m + log(se) - c * ddot(a + i * d, b + i * d, d);
        }
    }
    free(ui); free(ut);
    return total / (2.0 * n);
}

static double ddist(const float *a, const float *b, int64_t d, int squared) {
    double s = 0;
    for (int64_t k = 0; k < d; k++) { double t = (double)a[k] - b[k]; s += t * t; }
    return squared ? s : sqrt(s);
}

static double ref_margin(const float *x, const ct_pair *pairs, int64_t np, int64_t d, double m) {
    double total = 0;
    for (int64_t q = 0; q < np; q++) {
        double dist = ddist(x + pairs[q].a * d, x + pairs[q].b * d, d, 0);
        double h = m - dist > 0 ? m - dist : 0;
        total += pairs[q].same ? 0.5 * dist * dist : 0.5 * h * h;
    }
    return total / np;
}

/* Triplet loss in double, mining as docs/objectives.md states. */
static double ref_triplet(const float *x, const int32_t *lab, int64_t n, int64_t d, double m, ct_mining mining,
                          int squared) {
    double total = 0;
    int64_t count = 0, valid = 0;
    for (int64_t a = 0; a < n; a++) {
        double hp = -INFINITY, hn = INFINITY;
        for (int64_t j = 0; j < n; j++) {
            if (j == a) continue;
            double dj = ddist(x + a * d, x + j * d, d, squared);
            if (lab[j] == lab[a]) hp = dj > hp ? dj : hp; else hn = dj < hn ? dj : hn;
        }
        if (hp == -INFINITY || hn == INFINITY) continue;
        if (mining == CT_MINE_HARD) {
            valid++;
            if (hp - hn + m > 0) { total += hp - hn + m; count++; }
            continue;
        }
        for (int64_t p = 0; p < n; p++) {
            if (p == a || lab[p] != lab[a]) continue;
            double dp = ddist(x + a * d, x + p * d, d, squared), out = INFINITY, far = -INFINITY;
            for (int64_t q = 0; q < n; q++) {
                if (lab[q] == lab[a]) continue;
                double dn = ddist(x + a * d, x + q * d, d, squared);
                if (mining == CT_MINE_ALL) {
                    valid++;
                    if (dp - dn + m > 0) { total += dp - dn + m; count++; }
                }
                if (dn > dp && dn < out) out = dn;
                if (dn > far) far = dn;
            }
            if (mining == CT_MINE_SEMIHARD) {
                double dn = out < INFINITY ? out : far;
                valid++;
                if (dp - dn + m > 0) { total += dp - dn + m; count++; }
            }
        }
    }
    int64_t denom = mining == CT_MINE_ALL ? count : valid;
    return denom ? total / denom : 0.0;
}

/* ---- gradcheck adaptors ---------------------------------------------------------- */

typedef struct {
    int kind;
    const float *a, *b, *c;   /* the objective's inputs; one of them is being perturbed */
    const int32_t *labels;
    const ct_pair *pairs;
    int64_t n, k, d, views, np;
    double tau, s, margin;
    ct_mining mining;
    int squared;
    float *sp; /* CLIP: the scalar s, when it is the perturbed input */
} gctx;
enum { G_SELF, G_NCE, G_CLIP, G_MARGIN, G_TRIPLET };

static double gloss(void *vp) {
    gctx *g = vp;
    switch (g->kind) {
    case G_SELF: return ref_selfsim(g->a, g->labels, g->n, g->views, g->d, g->tau, NULL);
    case G_NCE: return ref_nce(g->a, g->b, g->c, g->n, g->k, g->d, g->tau);
    case G_CLIP: return ref_clip(g->a, g->b, g->sp ? *g->sp : g->s, g->n, g->d);
    case G_MARGIN: return ref_margin(g->a, g->pairs, g->np, g->d, g->margin);
    default: return ref_triplet(g->a, g->labels, g->n, g->d, g->margin, g->mining, g->squared);
    }
}

/* ---- tests ------------------------------------------------------------------------ */

static void test_fixture_reader(const char *path) {
    /* a truncated copy of the fixture must be reported, not crash the reader */
    FILE *f = fopen(path, "rb");
    CHECK(f != NULL, "%s: cannot open (run from the repository root)", path);
    if (!f) return;
    char *buf = malloc(1 << 20);
    size_t len = fread(buf, 1, 1 << 20, f);
    fclose(f);
    char tmp[64];
    snprintf(tmp, sizeof tmp, "/tmp/ct_loss_trunc_%d.bin", (int)getpid());
    FILE *g = fopen(tmp, "wb");
    CHECK(len > 100, "%s: only %zu bytes", path, len);
    fwrite(buf, 1, len > 7 ? len - 7 : 0, g);
    fclose(g);
    fx_file fx;
    char msg[256] = "";
    CHECK(fx_load(&fx, tmp, msg, sizeof msg) != 0 && strstr(msg, "truncated"),
          "a truncated fixture must be rejected with a message, got '%s'", msg);
    fx_free(&fx);
    remove(tmp);
    free(buf);
}

/* Tolerances against PyTorch (float32 here, float64 there). Observed worst: losses
 * 2.4e-7 on 3.47, gradients 5e-8 on O(0.1) entries and 5e-6 on CLIP's O(4) entries at
 * logit scale 100, i.e. about 1e-6 relative: we allow a few times that. */
#define T_LOSS_ATOL 1e-6
#define T_LOSS_RTOL 1e-6
#define T_GRAD_ATOL 1e-6
#define T_GRAD_RTOL 2e-5

static void check_loss(const char *what, double got, const float *ref) {
    float g = (float)got;
    check_close(what, &g, ref, 1, T_LOSS_ATOL, T_LOSS_RTOL);
}

static void test_vs_torch(fx_file *fx) {
    ct_loss_stats st;
    char what[96];
    /* NT-Xent: z (12, 5) */
    {
        float *z = fx_get(fx, "ntx.z", 60), *tau = fx_get(fx, "ntx.tau", 1);
        float *L = fx_get(fx, "ntx.loss", 1), *dz = fx_get(fx, "ntx.dz", 60), g[60];
        if (z && tau && L && dz) {
            CHECK_OK(ct_ntxent_loss(&st, g, z, 6, 5, *tau, NULL, 0));
            check_loss("ntxent loss vs torch", st.loss, L);
            check_close("ntxent dz vs torch", g, dz, 60, T_GRAD_ATOL, T_GRAD_RTOL);
        }
    }
    /* SupCon: 3 views of 5, and 1 view of 7 with lonely anchors */
    const struct { const char *tag; int64_t n, v; } sc[2] = {{"sc", 5, 3}, {"sc1", 7, 1}};
    for (int c = 0; c < 2; c++) {
        int64_t n = sc[c].n, rows = n * sc[c].v, nz = rows * 4;
        char nm[6][32];
        const char *suf[6] = {"z", "labels", "views", "tau", "loss", "dz"};
        for (int i = 0; i < 6; i++) snprintf(nm[i], 32, "%s.%s", sc[c].tag, suf[i]);
        float *z = fx_get(fx, nm[0], nz), *lf = fx_get(fx, nm[1], n), *tau = fx_get(fx, nm[3], 1);
        float *L = fx_get(fx, nm[4], 1), *dz = fx_get(fx, nm[5], nz), g[64];
        int32_t lab[8];
        if (!(z && lf && tau && L && dz)) continue;
        to_labels(lab, lf, n);
        CHECK_OK(ct_supcon_loss(&st, g, z, lab, n, sc[c].v, 4, *tau, NULL, 0));
        snprintf(what, sizeof what, "supcon %s loss vs torch", sc[c].tag);
        check_loss(what, st.loss, L);
        snprintf(what, sizeof what, "supcon %s dz vs torch", sc[c].tag);
        check_close(what, g, dz, nz, T_GRAD_ATOL, T_GRAD_RTOL);
    }
    /* InfoNCE: q, p (4, 6), neg (7, 6); MoCo on the same numbers gives the same dq */
    {
        float *q = fx_get(fx, "nce.q", 24), *p = fx_get(fx, "nce.p", 24), *ng = fx_get(fx, "nce.neg", 42);
        float *tau = fx_get(fx, "nce.tau", 1), *L = fx_get(fx, "nce.loss", 1);
        float *dq = fx_get(fx, "nce.dq", 24), *dp = fx_get(fx, "nce.dp", 24), *dn = fx_get(fx, "nce.dneg", 42);
        float gq[24], gp[24], gn[42];
        if (q && p && ng && tau && L && dq && dp && dn) {
            CHECK_OK(ct_infonce_loss(&st, gq, gp, gn, q, p, ng, 4, 7, 6, *tau, NULL, 0));
            check_loss("infonce loss vs torch", st.loss, L);
            check_close("infonce dq vs torch", gq, dq, 24, T_GRAD_ATOL, T_GRAD_RTOL);
            check_close("infonce dpos vs torch", gp, dp, 24, T_GRAD_ATOL, T_GRAD_RTOL);
            check_close("infonce dneg vs torch", gn, dn, 42, T_GRAD_ATOL, T_GRAD_RTOL);
            ct_moco_queue mq;
            CHECK_OK(ct_moco_queue_init(&mq, 7, 6, 1));
            CHECK_OK(ct_moco_queue_push(&mq, ng, 3)); /* wraps around: the ring's order differs */
            CHECK_OK(ct_moco_queue_push(&mq, ng + 18, 4));
            CHECK_OK(ct_moco_queue_push(&mq, ng, 3));
            CHECK_OK(ct_moco_loss(&st, gq, q, p, &mq, 4, *tau, NULL, 0));
            check_loss("moco loss vs torch infonce", st.loss, L);
            check_close("moco dq vs torch infonce", gq, dq, 24, T_GRAD_ATOL, T_GRAD_RTOL);
            ct_moco_queue_free(&mq);
        }
    }
    /* CLIP: s unclamped (exp(s) = 1/0.07) and clamped (exp(4.8) > 100, ds = 0) */
    for (int c = 0; c < 2; c++) {
        const char *tag = c ? "clip2" : "clip";
        char nm[7][32];
        const char *suf[7] = {"img", "txt", "s", "loss", "dimg", "dtxt", "ds"};
        for (int i = 0; i < 7; i++) snprintf(nm[i], 32, "%s.%s", tag, suf[i]);
        float *im = fx_get(fx, nm[0], 30), *tx = fx_get(fx, nm[1], 30), *s = fx_get(fx, nm[2], 1);
        float *L = fx_get(fx, nm[3], 1), *di = fx_get(fx, nm[4], 30), *dt = fx_get(fx, nm[5], 30);
        float *dsr = fx_get(fx, nm[6], 1), gi[30], gt[30], gs;
        if (!(im && tx && s && L && di && dt && dsr)) continue;
        CHECK_OK(ct_clip_loss(&st, gi, gt, &gs, im, tx, *s, 5, 6, NULL, 0));
        snprintf(what, sizeof what, "%s loss vs torch", tag); check_loss(what, st.loss, L);
        snprintf(what, sizeof what, "%s dimg vs torch", tag); check_close(what, gi, di, 30, T_GRAD_ATOL, T_GRAD_RTOL);
        snprintf(what, sizeof what, "%s dtxt vs torch", tag); check_close(what, gt, dt, 30, T_GRAD_ATOL, T_GRAD_RTOL);
        snprintf(what, sizeof what, "%s ds vs torch", tag); check_close(what, &gs, dsr, 1, T_GRAD_ATOL, T_GRAD_RTOL);
    }
    /* margin: x (8, 4), all pairs from labels */
    {
        float *x = fx_get(fx, "mg.x", 32), *lf = fx_get(fx, "mg.labels", 8), *m = fx_get(fx, "mg.margin", 1);
        float *L = fx_get(fx, "mg.loss", 1), *dx = fx_get(fx, "mg.dx", 32), g[32];
        if (x && lf && m && L && dx) {
            int32_t lab[8];
            ct_pair pairs[28];
            to_labels(lab, lf, 8);
            int64_t np = ct_pairs_all(pairs, lab, 8);
            CHECK(np == 28, "8 rows give 28 pairs, got %lld", (long long)np);
            CHECK_OK(ct_margin_loss(&st, g, x, pairs, np, 8, 4, *m));
            check_loss("margin loss vs torch", st.loss, L);
            check_close("margin dx vs torch", g, dx, 32, T_GRAD_ATOL, T_GRAD_RTOL);
            CHECK(st.active > 0 && st.active < 1, "the fixture should have active and inactive pairs (%g)", st.active);
        }
    }
    /* triplet: x (10, 4), three minings, and batch-hard on squared distances */
    {
        float *x = fx_get(fx, "tr.x", 40), *lf = fx_get(fx, "tr.labels", 10), *m = fx_get(fx, "tr.margin", 1);
        const struct { const char *tag; ct_mining mining; int sq; } tc[4] = {
            {"tr_all", CT_MINE_ALL, 0}, {"tr_hard", CT_MINE_HARD, 0},
            {"tr_semi", CT_MINE_SEMIHARD, 0}, {"tr_hard_sq", CT_MINE_HARD, 1}};
        int32_t lab[10];
        if (x && lf && m) {
            to_labels(lab, lf, 10);
            for (int c = 0; c < 4; c++) {
                char nl[32], nd[32];
                snprintf(nl, 32, "%s.loss", tc[c].tag);
                snprintf(nd, 32, "%s.dx", tc[c].tag);
                float *L = fx_get(fx, nl, 1), *dx = fx_get(fx, nd, 40), g[40];
                if (!(L && dx)) continue;
                CHECK_OK(ct_triplet_loss(&st, g, x, lab, 10, 4, *m, tc[c].mining, tc[c].sq, NULL, 0));
                snprintf(what, sizeof what, "%s loss vs torch", tc[c].tag); check_loss(what, st.loss, L);
                snprintf(what, sizeof what, "%s dx vs torch", tc[c].tag);
                check_close(what, g, dx, 40, T_GRAD_ATOL, T_GRAD_RTOL);
            }
        }
    }
    /* alignment and uniformity on unit rows (9, 5) */
    {
        float *x = fx_get(fx, "au.x", 45), *y = fx_get(fx, "au.y", 45);
        float *A = fx_get(fx, "au.align", 1), *U = fx_get(fx, "au.uniform", 1);
        if (x && y && A && U) {
            double u;
            check_loss("alignment vs torch", ct_alignment(x, y, 9, 5, 2.0), A);
            CHECK_OK(ct_uniformity(&u, x, 9, 5, 2.0));
            check_loss("uniformity vs torch", u, U);
        }
    }
}

/* Finite differences: eps 1e-3 on float inputs against the double references above.
 * The float rounding of x +- eps moves the step by up to 6e-8, i.e. 6e-5 relative,
 * and truncation is O(eps^2): observed worst 5e-5 relative; tolerance 1e-5 + 3e-4 |num|. */
#define G_EPS 1e-3f
#define G_ATOL 1e-5
#define G_RTOL 3e-4

static void test_gradcheck(void) {
    ct_loss_stats st;
    /* NT-Xent and SupCon (2 views with shared labels; 1 view with lonely anchors) */
    {
        int64_t n = 5, d = 7;
        float z[70], g[70];
        fill_uniform(z, 70, 11, -1, 1);
        CHECK_OK(ct_ntxent_loss(&st, g, z, n, d, 0.5f, NULL, 0));
        gctx c = {.kind = G_SELF, .a = z, .n = n, .views = 2, .d = d, .tau = 0.5};
        CHECK(fabs(st.loss - gloss(&c)) < 1e-5, "ntxent loss %.8g vs double %.8g", st.loss, gloss(&c));
        gradcheck("ntxent dz", z, g, 70, gloss, &c, G_EPS, G_ATOL, G_RTOL, 70);

        int32_t lab[6] = {0, 1, 0, 2, 1, 0};
        float z2[72], g2[72];
        fill_uniform(z2, 72, 12, -1, 1);
        CHECK_OK(ct_supcon_loss(&st, g2, z2, lab, 6, 2, 6, 0.3f, NULL, 0));
        gctx c2 = {.kind = G_SELF, .a = z2, .labels = lab, .n = 6, .views = 2, .d = 6, .tau = 0.3};
        CHECK(fabs(st.loss - gloss(&c2)) < 1e-5, "supcon loss %.8g vs double %.8g", st.loss, gloss(&c2));
        gradcheck("supcon dz", z2, g2, 72, gloss, &c2, G_EPS, G_ATOL, G_RTOL, 72);

        int32_t lab1[6] = {3, 1, 3, 2, 1, 7};
        CHECK_OK(ct_supcon_loss(&st, g2, z2, lab1, 6, 1, 6, 0.3f, NULL, 0));
        gctx c3 = {.kind = G_SELF, .a = z2, .labels = lab1, .n = 6, .views = 1, .d = 6, .tau = 0.3};
        gradcheck("supcon 1-view dz", z2, g2, 36, gloss, &c3, G_EPS, G_ATOL, G_RTOL, 36);
        CHECK(st.top1 >= 0 && st.top1 <= 1 && st.count == 6, "supcon stats: top1 %g count %lld",
              st.top1, (long long)st.count);
    }
    /* InfoNCE: q, pos (3, 5), neg (6, 5) */
    {
        float q[15], p[15], ng[30], gq[15], gp[15], gn[30];
        fill_uniform(q, 15, 21, -1, 1);
        fill_uniform(p, 15, 22, -1, 1);
        fill_uniform(ng, 30, 23, -1, 1);
        CHECK_OK(ct_infonce_loss(&st, gq, gp, gn, q, p, ng, 3, 6, 5, 0.4f, NULL, 0));
        gctx c = {.kind = G_NCE, .a = q, .b = p, .c = ng, .n = 3, .k = 6, .d = 5, .tau = 0.4};
        CHECK(fabs(st.loss - gloss(&c)) < 1e-5, "infonce loss %.8g vs double %.8g", st.loss, gloss(&c));
        gradcheck("infonce dq", q, gq, 15, gloss, &c, G_EPS, G_ATOL, G_RTOL, 15);
        gradcheck("infonce dpos", p, gp, 15, gloss, &c, G_EPS, G_ATOL, G_RTOL, 15);
        gradcheck("infonce dneg", ng, gn, 30, gloss, &c, G_EPS, G_ATOL, G_RTOL, 30);
    }
    /* CLIP: img, txt (6, 4), gradient for s too */
    {
        float im[24], tx[24], gi[24], gt[24], gs, s = 1.7f;
        fill_uniform(im, 24, 31, -1, 1);
        fill_uniform(tx, 24, 32, -1, 1);
        CHECK_OK(ct_clip_loss(&st, gi, gt, &gs, im, tx, s, 6, 4, NULL, 0));
        gctx c = {.kind = G_CLIP, .a = im, .b = tx, .n = 6, .d = 4, .s = s};
        CHECK(fabs(st.loss - gloss(&c)) < 1e-5, "clip loss %.8g vs double %.8g", st.loss, gloss(&c));
        gradcheck("clip dimg", im, gi, 24, gloss, &c, G_EPS, G_ATOL, G_RTOL, 24);
        gradcheck("clip dtxt", tx, gt, 24, gloss, &c, G_EPS, G_ATOL, G_RTOL, 24);
        c.sp = &s;
        gradcheck("clip ds", &s, &gs, 1, gloss, &c, G_EPS, G_ATOL, G_RTOL, 1);
    }
    /* margin: x (7, 3), balanced pairs */
    {
        float x[21], g[21];
        int32_t lab[7] = {0, 1, 0, 1, 2, 0, 2};
        ct_pair pairs[21];
        fill_uniform(x, 21, 41, -1, 1);
        int64_t np = ct_pairs_balanced(pairs, lab, 7, 0, 5);
        CHECK_OK(ct_margin_loss(&st, g, x, pairs, np, 7, 3, 1.2f));
        gctx c = {.kind = G_MARGIN, .a = x, .pairs = pairs, .np = np, .d = 3, .margin = 1.2};
        CHECK(fabs(st.loss - gloss(&c)) < 1e-6, "margin loss %.8g vs double %.8g", st.loss, gloss(&c));
        gradcheck("margin dx", x, g, 21, gloss, &c, G_EPS, G_ATOL, G_RTOL, 21);
    }
    /* triplet: x (9, 3), every mining, plain and squared distances */
    {
        float x[27], g[27];
        int32_t lab[9] = {0, 1, 2, 0, 1, 2, 0, 1, 1};
        fill_uniform(x, 27, 51, -1, 1);
        for (int mi = 0; mi < 3; mi++)
            for (int sq = 0; sq < 2; sq++) {
                CHECK_OK(ct_triplet_loss(&st, g, x, lab, 9, 3, 0.4f, (ct_mining)mi, sq, NULL, 0));
                gctx c = {.kind = G_TRIPLET, .a = x, .labels = lab, .n = 9, .d = 3, .margin = 0.4,
                          .mining = (ct_mining)mi, .squared = sq};
                char what[64];
                snprintf(what, sizeof what, "triplet mining=%d squared=%d dx", mi, sq);
                CHECK(fabs(st.loss - gloss(&c)) < 1e-5, "%s: loss %.8g vs double %.8g", what, st.loss, gloss(&c));
                gradcheck(what, x, g, 27, gloss, &c, G_EPS, G_ATOL, G_RTOL, 27);
            }
    }
}

/* NT-Xent at N = 4096 (8192 rows, d = 16), tau = 0.05: loss against a double-precision
 * computation, gradient on 64 spread rows (each needs every row's log-sum-exp). Views
 * are correlated so the softmax is peaked: logits span about [-20, 20]. */
static void test_large_batch(void) {
    const int64_t n = 4096, rows = 2 * n, d = 16, nchk = 64;
    const double tau = 0.05;
    float *z = malloc((size_t)(rows * d) * 4), *g = malloc((size_t)(rows * d) * 4);
    fill_uniform(z, (size_t)(n * d), 61, -1, 1);
    fill_uniform(z + n * d, (size_t)(n * d), 62, -0.6f, 0.6f);
    for (int64_t i = 0; i < n * d; i++) z[n * d + i] += z[i];
    size_t wsb = ct_ntxent_workspace_size(n, d);
    void *ws = ct_alloc(wsb);
    ct_loss_stats st;
    double t0 = omp_get_wtime();
    CHECK_OK(ct_ntxent_loss(&st, g, z, n, d, (float)tau, ws, wsb));
    double t1 = omp_get_wtime();
    double *lse = malloc((size_t)rows * 8), *u = malloc((size_t)(rows * d) * 8), *nrm = malloc((size_t)rows * 8);
    double ref = ref_selfsim(z, NULL, n, 2, d, tau, lse);
    double t2 = omp_get_wtime();
    printf("ntxent N=%lld d=%lld tau=%g: %.3f s (double reference %.3f s), loss %.7f ref %.7f, top1 %.3f\n",
           (long long)n, (long long)d, tau, t1 - t0, t2 - t1, st.loss, ref, st.top1);
    CHECK(fabs(st.loss - ref) <= 2e-6 * fabs(ref), "large-batch loss %.9g vs double %.9g", st.loss, ref);
    CHECK(st.top1 > 0.5 && st.top1 < 1.0, "the test batch should be neither trivial nor hopeless: top1 %g", st.top1);
    dnormalize(u, nrm, z, rows, d);
    float got[64 * 16], want[64 * 16];
    double gmax = 0;
    for (int64_t c = 0; c < nchk; c++) {
        int64_t k = c * (rows / nchk) + c % 7, pk = (k + n) % rows;
        double du[16] = {0};
        /* dL/du_k = (1/tau) sum_j (G_kj + G_jk) u_j, G_ij = (p_ij - [j = pos(i)]) / rows */
        for (int64_t j = 0; j < rows; j++) {
            if (j == k) continue;
            double s = ddot(u + k * d, u + j * d, d) / tau;
            double gkj = exp(s - lse[k]) - (j == pk), gjk = exp(s - lse[j]) - (k == (j + n) % rows);
            for (int64_t t = 0; t < d; t++) du[t] += (gkj + gjk) / rows / tau * u[j * d + t];
        }
        double dot = 0;
        for (int64_t t = 0; t < d; t++) dot += u[k * d + t] * du[t];
        for (int64_t t = 0; t < d; t++) {
            want[c * d + t] = (float)((du[t] - u[k * d + t] * dot) / nrm[k]);
            got[c * d + t] = g[k * d + t];
            gmax = fmax(gmax, fabs(want[c * d + t]));
        }
    }
    /* sums over 8192 float terms: observed 1e-6 relative; allow 1e-4 relative plus 1e-5
     * of the largest entry (for entries that nearly cancel) */
    check_close("large-batch dz vs double", got, want, (size_t)(nchk * d), 1e-5 * gmax, 1e-4);
    int finite = 1;
    for (int64_t i = 0; i < rows * d; i++) finite &= isfinite(g[i]);
    CHECK(finite, "large-batch gradient must be finite");
    free(z); free(g); ct_free(ws); free(lse); free(u); free(nrm);
}

/* The vectorisable exp of the row kernel against exp() in double. */
static void test_exp(void) {
    double worst = 0;
    float wx = 0;
    for (int i = 0; i <= 1750000; i++) {
        float x = -87.0f + 1e-4f * (float)i;
        double rel = fabs((double)ct_loss__exp(x) / exp((double)x) - 1.0);
        if (rel > worst) { worst = rel; wx = x; }
    }
    CHECK(worst < 2.5e-7, "exp: worst relative error %.3g at x = %.7g (bound 2 ulp)", worst, wx);
    CHECK(ct_loss__exp(-200.0f) == 0.0f && ct_loss__exp(-1e6f) == 0.0f, "exp underflows to 0");
    CHECK(isnan(ct_loss__exp(NAN)), "exp(NaN) is NaN");
    CHECK(ct_loss__exp(0.0f) == 1.0f, "exp(0) = 1");
}

static void test_properties(void) {
    ct_loss_stats st, st2;
    /* NT-Xent is SupCon with two views and distinct labels; stats match ct_uniformity */
    {
        int64_t n = 37, d = 9, rows = 2 * n;
        float *z = malloc(rows * d * 4), *g1 = malloc(rows * d * 4), *g2 = malloc(rows * d * 4);
        int32_t lab[37];
        for (int i = 0; i < 37; i++) lab[i] = 100 + i;
        fill_uniform(z, rows * d, 71, -1, 1);
        CHECK_OK(ct_ntxent_loss(&st, g1, z, n, d, 0.2f, NULL, 0));
        CHECK_OK(ct_supcon_loss(&st2, g2, z, lab, n, 2, d, 0.2f, NULL, 0));
        CHECK(st.loss == st2.loss && !memcmp(g1, g2, rows * d * 4), "NT-Xent == SupCon(2 views, distinct labels)");
        /* determinism: 1 thread and 2 threads give identical bits */
        ct_set_threads(1);
        CHECK_OK(ct_ntxent_loss(&st2, g2, z, n, d, 0.2f, NULL, 0));
        ct_set_threads(2);
        CHECK(st.loss == st2.loss && !memcmp(g1, g2, rows * d * 4), "NT-Xent must not depend on the thread count");
        /* stats: uniformity over distinct rows of the normalised batch */
        float *u = malloc(rows * d * 4);
        double *du = malloc(rows * d * 8), uni;
        dnormalize(du, NULL, z, rows, d);
        for (int64_t i = 0; i < rows * d; i++) u[i] = (float)du[i];
        CHECK_OK(ct_uniformity(&uni, u, rows, d, 2.0));
        CHECK(fabs(st.uniform - uni) < 1e-5, "stats uniformity %.8g vs ct_uniformity %.8g", st.uniform, uni);
        double al = ct_alignment(u, u + n * d, n, d, 2.0);
        CHECK(fabs(st.align - al) < 1e-5, "stats alignment %.8g vs ct_alignment %.8g", st.align, al);
        CHECK(st.count == rows && st.top1 >= 0 && st.top1 <= 1 && st.pos_sim > -1 && st.neg_sim < 1,
              "stats in range");
        /* workspace: exact size works, one byte less is refused with a message */
        size_t wsb = ct_ntxent_workspace_size(n, d);
        void *ws = ct_alloc(wsb);
        CHECK_OK(ct_ntxent_loss(&st2, g2, z, n, d, 0.2f, ws, wsb));
        CHECK(st.loss == st2.loss && !memcmp(g1, g2, rows * d * 4), "caller workspace == own workspace");
        CHECK(ct_ntxent_loss(&st2, g2, z, n, d, 0.2f, ws, wsb - 1) == CT_ERR_ARG &&
                  strstr(ct_errmsg(), "too small"), "small workspace refused: %s", ct_errmsg());
        CHECK(ct_ntxent_loss(&st2, g2, z, n, d, 0.0f, NULL, 0) == CT_ERR_ARG, "tau = 0 refused");
        CHECK(ct_ntxent_workspace_size(INT64_MAX / 4, 1 << 20) == SIZE_MAX, "overflowing size reported");
        /* loss only: no gradient pointer */
        CHECK_OK(ct_ntxent_loss(&st2, NULL, z, n, d, 0.2f, ws, wsb));
        CHECK(st.loss == st2.loss, "the loss does not depend on asking for the gradient");
        /* a NaN input is reported */
        z[5] = NAN;
        CHECK(ct_ntxent_loss(&st2, g2, z, n, d, 0.2f, ws, wsb) == CT_ERR_NUMERIC, "NaN input reported");
        /* zero vectors (eps = CT_LOSS_EPS): finite loss and gradient */
        memset(z, 0, 2 * d * 4);
        memset(z + (n + 3) * d, 0, d * 4);
        CHECK_OK(ct_ntxent_loss(&st2, g2, z, n, d, 0.05f, ws, wsb));
        int fin = isfinite(st2.loss);
        for (int64_t i = 0; i < rows * d; i++) fin &= isfinite(g2[i]);
        CHECK(fin, "zero rows: loss %g must be finite, gradient finite", st2.loss);
        float im[12] = {0}, tx[12], gi[12], gt[12], gs;
        fill_uniform(tx, 12, 3, -1, 1);
        CHECK_OK(ct_clip_loss(&st2, gi, gt, &gs, im, tx, 2.0f, 3, 4, NULL, 0));
        fin = isfinite(st2.loss) && isfinite(gs);
        for (int i = 0; i < 12; i++) fin &= isfinite(gi[i]) && isfinite(gt[i]);
        CHECK(fin && fabs(st2.loss - log(3.0)) < 1e-6, "zero images: loss %g = log 3, finite grads", st2.loss);
        ct_free(ws); free(z); free(g1); free(g2); free(u); free(du);
    }
    /* CLIP clamp: above exp(s) = 100 the loss stops changing and ds = 0 */
    {
        float im[20], tx[20], gs;
        fill_uniform(im, 20, 81, -1, 1);
        fill_uniform(tx, 20, 82, -1, 1);
        CHECK_OK(ct_clip_loss(&st, NULL, NULL, &gs, im, tx, 5.0f, 5, 4, NULL, 0));
        CHECK_OK(ct_clip_loss(&st2, NULL, NULL, NULL, im, tx, 6.0f, 5, 4, NULL, 0));
        CHECK(gs == 0.0f && st.loss == st2.loss, "clamped scale: ds %g, loss %g vs %g", gs, st.loss, st2.loss);
    }
    /* triplet at 1 and 2 threads */
    {
        float x[60 * 5], g1[300], g2[300];
        int32_t lab[60];
        for (int i = 0; i < 60; i++) lab[i] = i % 7;
        fill_uniform(x, 300, 91, -1, 1);
        ct_set_threads(1);
        CHECK_OK(ct_triplet_loss(&st, g1, x, lab, 60, 5, 0.3f, CT_MINE_ALL, 0, NULL, 0));
        ct_set_threads(2);
        CHECK_OK(ct_triplet_loss(&st2, g2, x, lab, 60, 5, 0.3f, CT_MINE_ALL, 0, NULL, 0));
        CHECK(st.loss == st2.loss && !memcmp(g1, g2, sizeof g1), "triplet must not depend on the thread count");
        CHECK(st.active > 0 && st.active <= 1, "active fraction %g", st.active);
        /* a near-duplicate negative far from the origin: |x|^2 ~ 1e3, d^2 ~ 3e-5, where the
         * GEMM expansion |a|^2 + |b|^2 - 2ab has cancelled away every digit */
        {
            float xf[27];
            int32_t lf[9] = {0, 1, 2, 0, 1, 2, 0, 1, 1};
            fill_uniform(xf, 27, 95, 10, 30);
            for (int t = 0; t < 3; t++) xf[3 + t] = xf[t] + 3e-3f;
            CHECK_OK(ct_triplet_loss(&st, NULL, xf, lf, 9, 3, 0.4f, CT_MINE_HARD, 0, NULL, 0));
            double ref = ref_triplet(xf, lf, 9, 3, 0.4, CT_MINE_HARD, 0);
            CHECK(fabs(st.loss - ref) <= 1e-6 * fabs(ref), "near-duplicate rows: loss %.9g vs double %.9g",
                  st.loss, ref);
        }
        /* duplicated rows (distance 0 between positives and between negatives) */
        memcpy(x + 7 * 5, x, 5 * 4);         /* row 7 = row 0, same label */
        memcpy(x + 1 * 5, x + 2 * 5, 5 * 4); /* row 1 = row 2, labels 1 and 2 */
        for (int mi = 0; mi < 3; mi++) {
            CHECK_OK(ct_triplet_loss(&st, g1, x, lab, 60, 5, 0.3f, (ct_mining)mi, 0, NULL, 0));
            double ref = ref_triplet(x, lab, 60, 5, 0.3, (ct_mining)mi, 0);
            int fin = 1;
            for (int i = 0; i < 300; i++) fin &= isfinite(g1[i]) && fabs(g1[i]) < 10;
            CHECK(fin && fabs(st.loss - ref) < 1e-5, "duplicate rows, mining %d: loss %.8g vs %.8g, finite bounded grads",
                  mi, st.loss, ref);
        }
    }
}

static void test_moco(void) {
    /* the queue holds exactly the last K keys, oldest first, across wrap-arounds and
     * pushes larger than K */
    const int64_t K = 10, d = 3;
    ct_moco_queue q;
    CHECK_OK(ct_moco_queue_init(&q, K, d, 42));
    int unit = 1;
    for (int64_t j = 0; j < K; j++) {
        const float *r = ct_moco_queue_row(&q, j);
        double s = r[0] * r[0] + r[1] * r[1] + r[2] * r[2];
        unit &= fabs(s - 1) < 1e-6;
    }
    CHECK(unit, "initial queue rows are unit vectors");
    /* key t is (t+1, 1, 0) before normalisation: its direction identifies t */
    float keys[40 * 3];
    for (int t = 0; t < 40; t++) { keys[t * 3] = (float)(t + 1); keys[t * 3 + 1] = 1; keys[t * 3 + 2] = 0; }
    const int sizes[5] = {3, 4, 13, 1, 6};
    int64_t total = 0;
    for (int s = 0; s < 5; s++) {
        CHECK_OK(ct_moco_queue_push(&q, keys + total * 3, sizes[s]));
        total += sizes[s];
        int ok = 1;
        for (int64_t j = 0; j < K; j++) {
            int64_t t = total - K + j; /* the key expected at age j */
            const float *r = ct_moco_queue_row(&q, j);
            if (t < 0) continue;      /* still a random initial row */
            double nn = sqrt((double)(t + 1) * (t + 1) + 1);
            ok &= fabs(r[0] - (t + 1) / nn) < 1e-6 && fabs(r[1] - 1 / nn) < 1e-6 && r[2] == 0;
        }
        CHECK(ok, "after %lld pushed keys the queue holds the last %lld in order", (long long)total, (long long)K);
    }
    CHECK(q.pushed == (uint64_t)total, "pushed count");
    ct_moco_queue_free(&q);

    /* momentum update: theta_k <- m theta_k + (1 - m) theta_q */
    size_t n = 1000;
    float *k = malloc(n * 4), *qp = malloc(n * 4), *k0 = malloc(n * 4);
    fill_uniform(k, n, 5, -2, 2);
    fill_uniform(qp, n, 6, -2, 2);
    memcpy(k0, k, n * 4);
    ct_momentum_update(k, qp, n, 0.999f);
    double worst = 0;
    for (size_t i = 0; i < n; i++)
        worst = fmax(worst, fabs(k[i] - (0.999 * k0[i] + (1 - 0.999) * (double)qp[i])));
    CHECK(worst < 1e-6, "momentum update formula: worst |diff| %g", worst);
    ct_momentum_update(k, qp, n, 0.0f);
    CHECK(!memcmp(k, qp, n * 4), "m = 0 copies the query parameters");
    free(k); free(qp); free(k0);
}

static void test_pairs(void) {
    int32_t lab[12] = {0, 1, 0, 2, 1, 1, 2, 0, 3, 0, 1, 2};
    ct_pair all[66], bal[66], bal2[66];
    int64_t na = ct_pairs_all(all, lab, 12), same = 0;
    CHECK(na == 66 && ct_pairs_max(12) == 66, "12 rows give 66 pairs");
    int ok = 1;
    for (int64_t i = 0; i < na; i++) {
        ok &= all[i].a < all[i].b && all[i].same == (lab[all[i].a] == lab[all[i].b]);
        same += all[i].same;
    }
    CHECK(ok && same == 15, "pairs are i<j with correct flags (%lld same)", (long long)same);
    int64_t nb = ct_pairs_balanced(bal, lab, 12, 0, 9), nb2 = ct_pairs_balanced(bal2, lab, 12, 0, 9);
    int64_t s2 = 0;
    ok = nb == 30 && nb2 == nb;
    for (int64_t i = 0; i < nb; i++) {
        ok &= bal[i].a == bal2[i].a && bal[i].b == bal2[i].b && bal[i].same == bal2[i].same;
        s2 += bal[i].same;
        ok &= bal[i].same == (lab[bal[i].a] == lab[bal[i].b]);
        if (i) ok &= bal[i - 1].a < bal[i].a || (bal[i - 1].a == bal[i].a && bal[i - 1].b < bal[i].b);
    }
    CHECK(ok && s2 == 15, "balanced: 15 + 15 distinct pairs, deterministic (got %lld, %lld same)", (long long)nb,
          (long long)s2);
    int64_t nc = ct_pairs_balanced(bal2, lab, 12, 8, 10);
    CHECK(nc == 8, "capped at max_pairs: %lld", (long long)nc);
}

int main(void) {
    const char *path = "tests/fixtures/loss_ref.bin";
    ct_set_threads(2);
    test_fixture_reader(path);
    fx_file fx;
    char msg[256] = "";
    int ok = fx_load(&fx, path, msg, sizeof msg) == 0;
    CHECK(ok, "fixture: %s", msg);
    if (ok) test_vs_torch(&fx);
    fx_free(&fx);
    test_gradcheck();
    test_exp();
    test_large_batch();
    test_properties();
    test_moco();
    test_pairs();
    return test_done();
}
