/* test_optim.c: SGD / AdamW / LARS steps against PyTorch reference steps
 * (tests/fixtures/optim_ref.bin from tests/reference/make_optim_reference.py), the
 * learning-rate schedule against hand-computed values, per-tensor rules, argument
 * checks and thread-count independence. */
#include "harness.h"

#include <string.h>

#define FIXTURE "tests/fixtures/optim_ref.bin"

typedef struct {
    const char *name;
    ct_optim_type type;
    float momentum, wd, eta;
    int nesterov;
} ref_case;

/* Same order and values as CASES in make_optim_reference.py. */
static const ref_case CASES[] = {
    {"sgd_plain", CT_OPTIM_SGD, 0.0f, 0.1f, 0, 0},
    {"sgd_momentum", CT_OPTIM_SGD, 0.9f, 0.1f, 0, 0},
    {"sgd_nesterov", CT_OPTIM_SGD, 0.9f, 0.05f, 0, 1},
    {"adamw", CT_OPTIM_ADAMW, 0.0f, 0.05f, 0, 0},
    {"lars", CT_OPTIM_LARS, 0.9f, 0.01f, 0.02f, 0},
    {"lars_nesterov", CT_OPTIM_LARS, 0.9f, 0.1f, 0.05f, 1},
};
#define NCASES ((int)(sizeof CASES / sizeof CASES[0]))

static void table2(ct_tensor_info tab[2]) {
    memset(tab, 0, 2 * sizeof *tab);
    strcpy(tab[0].name, "fc.weight");
    tab[0].ndim = 2, tab[0].shape[0] = 4, tab[0].shape[1] = 3, tab[0].offset = 0, tab[0].numel = 12;
    strcpy(tab[1].name, "fc.bias");
    tab[1].ndim = 1, tab[1].shape[0] = 3, tab[1].offset = 12, tab[1].numel = 3;
    tab[1].flags = CT_TENSOR_NO_DECAY;
}

static void test_reference(void) {
    FILE *f = fopen(FIXTURE, "rb");
    CHECK(f != NULL, "cannot open %s (run tests from the repository root)", FIXTURE);
    if (!f) return;
    int32_t hdr[3];
    int ok = fread(hdr, 4, 3, f) == 3;
    int n = hdr[0], ns = hdr[1], nc = hdr[2];
    CHECK(ok && n == 15 && ns == 4 && nc == NCASES, "fixture header %d %d %d", n, ns, nc);
    if (!(ok && n == 15 && ns == 4 && nc == NCASES)) { fclose(f); return; }
    float p0[15], grads[4][15], lrs[4], ref[4][15];
    ok = fread(p0, 4, 15, f) == 15 && fread(grads, 4, 60, f) == 60 && fread(lrs, 4, 4, f) == 4;
    CHECK(ok, "fixture truncated");
    ct_tensor_info tab[2];
    table2(tab);
    for (int c = 0; c < nc && ok; c++) {
        ok = fread(ref, 4, 60, f) == 60;
        CHECK(ok, "fixture truncated in case %d", c);
        if (!ok) break;
        ct_optim_config cfg;
        ct_optim_config_default(&cfg, CASES[c].type);
        cfg.momentum = CASES[c].momentum;
        cfg.nesterov = CASES[c].nesterov;
        cfg.weight_decay = CASES[c].wd;
        if (CASES[c].type == CT_OPTIM_LARS) cfg.lars_eta = CASES[c].eta;
        ct_optim opt;
        CHECK_OK(ct_optim_init(&opt, &cfg, 15));
        float p[15];
        memcpy(p, p0, sizeof p);
        for (int s = 0; s < ns; s++) {
            CHECK_OK(ct_optim_step(&opt, p, grads[s], tab, 2, lrs[s]));
            /* Compare the accumulated updates p - p0, not the parameters: the
             * update is what the rule computes, and its relative error stays
             * visible even when it is small next to |p| (LARS). Float32 rounding
             * of p contributes ~1e-7 absolute; the rule itself agrees to ~1e-6
             * relative, so 1e-4 relative catches any wrong term (a missed decay
             * or bias correction moves updates by percent). */
            float du[15], dr[15];
            for (int i = 0; i < 15; i++) du[i] = p[i] - p0[i], dr[i] = ref[s][i] - p0[i];
            char what[96];
            snprintf(what, sizeof what, "%s step %d vs PyTorch", CASES[c].name, s + 1);
            check_close(what, du, dr, 15, 3e-7, 1e-4);
        }
        CHECK(opt.step == ns, "%s: step counter %lld", CASES[c].name, (long long)opt.step);
        ct_optim_free(&opt);
    }
    fclose(f);
}

/* ct_optim_step_parts over [a | b] equals ct_optim_step over the concatenation, for
 * AdamW and LARS (per tensor), three steps; a state of another size is refused. */
static void test_parts(void) {
    for (int type = CT_OPTIM_ADAMW; type <= CT_OPTIM_LARS; type++) {
        float w1[7], w2[7], g[7];
        for (int i = 0; i < 7; i++) w1[i] = w2[i] = 0.1f * (float)(i + 1) - 0.35f, g[i] = 0.05f * (float)(3 - i);
        ct_tensor_info whole[2] = {{.offset = 0, .numel = 4}, {.offset = 4, .numel = 3, .flags = CT_TENSOR_NO_DECAY}};
        ct_tensor_info ta = {.offset = 0, .numel = 4}, tb = {.offset = 0, .numel = 3, .flags = CT_TENSOR_NO_DECAY};
        ct_optim_config oc;
        ct_optim_config_default(&oc, (ct_optim_type)type);
        oc.weight_decay = 0.1f;
        ct_optim o1, o2;
        CHECK_OK(ct_optim_init(&o1, &oc, 7));
        CHECK_OK(ct_optim_init(&o2, &oc, 7));
        const ct_optim_part parts[2] = {{w2, g, &ta, 1, 4}, {w2 + 4, g + 4, &tb, 1, 3}};
        for (int s = 0; s < 3; s++) {
            CHECK_OK(ct_optim_step(&o1, w1, g, whole, 2, 0.01f));
            CHECK_OK(ct_optim_step_parts(&o2, parts, 2, 0.01f));
        }
        CHECK(!memcmp(w1, w2, sizeof w1) && o1.step == 3 && o2.step == 3, "%s: parts differ from the whole",
              ct_optim_type_name((ct_optim_type)type));
        CHECK(ct_optim_step_parts(&o2, parts, 1, 0.01f) == CT_ERR_ARG, "parts of 4 floats for a state of 7 refused");
        ct_optim_free(&o1);
        ct_optim_free(&o2);
    }
}

static void test_schedule(void) {
    /* base 1, warm-up 10 of 110 steps, final fraction 0.1: hand-computed points */
    struct { int64_t step; double want; } pts[] = {
        {0, 0.1}, {4, 0.5}, {9, 1.0},               /* linear warm-up (step+1)/10   */
        {10, 1.0},                                    /* cosine starts at the peak    */
        {59, 0.1 + 0.9 * 0.5 * (1 + cos(3.14159265358979 * 49.0 / 99.0))},
        {109, 0.1}, {500, 0.1},                        /* final value, then held       */
    };
    for (size_t i = 0; i < sizeof pts / sizeof pts[0]; i++) {
        float lr = ct_lr_schedule(1.0f, pts[i].step, 10, 110, 0.1f);
        CHECK(fabs(lr - pts[i].want) < 1e-6, "schedule step %lld: %.8f, want %.8f", (long long)pts[i].step,
              lr, pts[i].want);
    }
    CHECK(fabs(ct_lr_schedule(2.0f, 0, 0, 101, 0.0f) - 2.0f) < 1e-6, "no warm-up starts at base");
    CHECK(fabs(ct_lr_schedule(2.0f, 50, 0, 101, 0.0f) - 1.0f) < 1e-6, "cosine midpoint is half");
    CHECK(fabs(ct_lr_schedule(0.5f, 7, 0, 1, 0.0f) - 0.5f) < 1e-7, "degenerate total: constant");
    /* monotone decreasing after warm-up */
    int mono = 1;
    for (int64_t s = 11; s < 110; s++)
        if (ct_lr_schedule(1.0f, s, 10, 110, 0.0f) > ct_lr_schedule(1.0f, s - 1, 10, 110, 0.0f)) mono = 0;
    CHECK(mono, "cosine phase must not increase");
}

static void test_rules_and_args(void) {
    ct_tensor_info tab[2];
    table2(tab);
    float p[15], g[15] = {0};
    for (int i = 0; i < 15; i++) p[i] = 1.0f + i;
    /* Zero gradient: SGD decays the weight but never the NO_DECAY bias. */
    ct_optim_config cfg;
    ct_optim_config_default(&cfg, CT_OPTIM_SGD);
    cfg.weight_decay = 0.5f;
    ct_optim opt;
    CHECK_OK(ct_optim_init(&opt, &cfg, 15));
    CHECK_OK(ct_optim_step(&opt, p, g, tab, 2, 0.1f));
    CHECK(fabsf(p[0] - (1.0f - 0.1f * 0.5f * 1.0f)) < 1e-6, "weight decayed: %g", p[0]);
    CHECK(p[12] == 13.0f && p[14] == 15.0f, "bias untouched by decay: %g %g", p[12], p[14]);
    /* A table entry outside the buffer is refused and nothing moves. */
    float keep[15];
    memcpy(keep, p, sizeof p);
    tab[1].numel = 4;
    CHECK(ct_optim_step(&opt, p, g, tab, 2, 0.1f) == CT_ERR_ARG && strstr(ct_errmsg(), "fc.bias"),
          "out-of-range tensor refused: %s", ct_errmsg());
    CHECK(!memcmp(keep, p, sizeof p), "refused step must not change parameters");
    ct_optim_buffer sb[2];
    CHECK(ct_optim_state(&opt, sb, 2) == 1 && !strcmp(sb[0].name, "optim.m") && sb[0].numel == 15,
          "SGD exposes one state buffer named optim.m");
    ct_optim_free(&opt);

    /* LARS with a zero weight: no trust ratio and no decay, plain momentum SGD. */
    table2(tab);
    ct_optim_config_default(&cfg, CT_OPTIM_LARS);
    cfg.weight_decay = 0.1f;
    CHECK_OK(ct_optim_init(&opt, &cfg, 15));
    memset(p, 0, sizeof p);
    for (int i = 0; i < 15; i++) g[i] = 1.0f;
    CHECK_OK(ct_optim_step(&opt, p, g, tab, 2, 0.5f));
    CHECK(p[0] == -0.5f && p[13] == -0.5f, "LARS on zero weights is plain SGD: %g %g", p[0], p[13]);
    g[3] = NAN;
    CHECK(ct_optim_step(&opt, p, g, tab, 2, 0.5f) == CT_ERR_NUMERIC, "NaN gradient refused by LARS");
    ct_optim_free(&opt);

    ct_optim_config_default(&cfg, CT_OPTIM_ADAMW);
    CHECK_OK(ct_optim_init(&opt, &cfg, 15));
    CHECK(ct_optim_state(&opt, sb, 2) == 2 && !strcmp(sb[1].name, "optim.v"), "AdamW exposes m and v");
    ct_optim_free(&opt);

    /* bad configurations */
    ct_optim_config_default(&cfg, CT_OPTIM_SGD);
    cfg.momentum = 0.0f, cfg.nesterov = 1;
    CHECK(ct_optim_init(&opt, &cfg, 15) == CT_ERR_ARG, "Nesterov without momentum refused");
    ct_optim_config_default(&cfg, CT_OPTIM_ADAMW);
    cfg.beta2 = 1.0f;
    CHECK(ct_optim_init(&opt, &cfg, 15) == CT_ERR_ARG, "beta2 = 1 refused");
    cfg.beta2 = 0.999f;
    cfg.weight_decay = -1.0f;
    CHECK(ct_optim_init(&opt, &cfg, 15) == CT_ERR_ARG, "negative decay refused");
    CHECK(ct_optim_type_parse("lars") == CT_OPTIM_LARS && ct_optim_type_parse("adam") == -1, "type names");
}

/* LARS over a buffer large enough for the parallel paths: identical bits with
 * 1 and 2 threads. */
static void test_threads(void) {
    size_t n = 300000;
    ct_tensor_info tab[3];
    memset(tab, 0, sizeof tab);
    size_t sizes[3] = {200000, 99000, 1000};
    size_t off = 0;
    for (int t = 0; t < 3; t++) {
        snprintf(tab[t].name, CT_MAX_NAME, "t%d", t);
        tab[t].offset = off, tab[t].numel = sizes[t];
        tab[t].flags = t == 2 ? CT_TENSOR_NO_DECAY : 0;
        off += sizes[t];
    }
    float *p1 = malloc(n * 4), *p2 = malloc(n * 4), *g = malloc(n * 4);
    fill_uniform(p1, n, 7, -1, 1);
    memcpy(p2, p1, n * 4);
    fill_uniform(g, n, 8, -1, 1);
    ct_optim_config cfg;
    ct_optim_config_default(&cfg, CT_OPTIM_LARS);
    cfg.weight_decay = 1e-4f;
    float *res[2] = {p1, p2};
    for (int r = 0; r < 2; r++) {
        ct_set_threads(r + 1);
        ct_optim opt;
        CHECK_OK(ct_optim_init(&opt, &cfg, n));
        for (int s = 0; s < 3; s++) CHECK_OK(ct_optim_step(&opt, res[r], g, tab, 3, 0.3f));
        ct_optim_free(&opt);
    }
    ct_set_threads(0);
    CHECK(!memcmp(p1, p2, n * 4), "LARS result differs between 1 and 2 threads");
    free(p1), free(p2), free(g);
}

int main(void) {
    test_reference();
    test_schedule();
    test_parts();
    test_rules_and_args();
    test_threads();
    return test_done();
}
