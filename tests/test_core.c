/* test_core.c: errors, sizes, arena, GEMM against its reference, RNG determinism. */
#include "harness.h"
#include "../src/core/internal.h" /* ct_gemm_ref */

static void test_sizes_and_arena(void) {
    size_t out;
    CHECK(ct_size_mul(SIZE_MAX / 2, 3, &out) == -1, "multiplication overflow must be detected");
    CHECK(ct_size_mul(1000, 1000, &out) == 0 && out == 1000000, "1000*1000");
    CHECK(ct_size_add(SIZE_MAX, 1, &out) == -1, "addition overflow must be detected");
    CHECK(ct_alloc((size_t)-1) == NULL, "absurd allocation must fail cleanly");
    CHECK(strstr(ct_errmsg(), "overflow") || strstr(ct_errmsg(), "cannot"), "message: %s", ct_errmsg());

    ct_arena a;
    CHECK_OK(ct_arena_init(&a, ct_arena_need(10) + ct_arena_need(100)));
    float *p = ct_arena_floats(&a, 10), *q = ct_arena_floats(&a, 100);
    CHECK(p && q && ((uintptr_t)p % 64) == 0 && ((uintptr_t)q % 64) == 0, "aligned blocks");
    CHECK(ct_arena_floats(&a, 1) == NULL, "exhausted arena returns NULL");
    ct_arena_reset(&a);
    CHECK(ct_arena_floats(&a, 10) == p, "reset reuses the slab");
    ct_arena_free(&a);
}

/* Messages used to be cut at 1 KB, so a long path hid the reason after it. */
static void test_long_messages(void) {
    const char *reason = ": cannot open: No such file or directory";
    size_t lens[] = {3000, 4095, 20000};
    for (int t = 0; t < 3; t++) {
        size_t n = lens[t];
        char *path = malloc(n + 1);
        for (size_t i = 0; i < n; i++) path[i] = i % 64 == 0 ? '/' : (char)('a' + i % 26);
        path[0] = 'S'; /* a recognisable head */
        path[n] = '\0';
        CHECK(ct_error(CT_ERR_IO, "%s%s", path, reason) == CT_ERR_IO, "ct_error returns its code");
        const char *m = ct_errmsg();
        size_t ml = strlen(m), rl = strlen(reason);
        CHECK(ml >= rl && !strcmp(m + ml - rl, reason), "a %zu-character path keeps the reason at the end: ...%s", n,
              ml > 60 ? m + ml - 60 : m);
        CHECK(m[0] == 'S', "... and the path's head");
        if (n <= 4095) /* PATH_MAX: whole, with room to spare */
            CHECK(ml == n + rl && !strncmp(m, path, n), "a %zu-character path is kept whole (%zu characters)", n, ml);
        else
            CHECK(strstr(m, " [...] ") && ml < n, "a longer one is cut in the middle (%zu of %zu characters)", ml, n + rl);
        free(path);
    }
    /* context added to an inner error: the argument is the message being replaced */
    ct_error(CT_ERR_IO, "inner reason");
    ct_error(CT_ERR_IO, "outer: %s", ct_errmsg());
    CHECK(!strcmp(ct_errmsg(), "outer: inner reason"), "ct_error may take ct_errmsg() as an argument: '%s'", ct_errmsg());
    ct_clear_error();
    CHECK(ct_errmsg()[0] == '\0', "cleared");
}

static void test_gemm(void) {
    /* odd sizes, every transpose, beta = 0 and 1, big enough to take the threaded path */
    int64_t M = 67, N = 129, K = 301;
    size_t na = (size_t)(M * K), nb = (size_t)(K * N), nc = (size_t)(M * N);
    float *A = malloc(na * 4), *B = malloc(nb * 4), *C = malloc(nc * 4), *R = malloc(nc * 4);
    fill_uniform(A, na, 1, -1, 1);
    fill_uniform(B, nb, 2, -1, 1);
    for (int ta = 0; ta < 2; ta++)
        for (int tb = 0; tb < 2; tb++)
            for (int beta = 0; beta < 2; beta++) {
                fill_uniform(C, nc, 3, -1, 1);
                memcpy(R, C, nc * 4);
                int64_t lda = ta ? M : K, ldb = tb ? K : N;
                ct_gemm(ta, tb, M, N, K, 0.5f, A, lda, B, ldb, (float)beta, C, N);
                ct_gemm_ref(ta, tb, M, N, K, 0.5f, A, lda, B, ldb, (float)beta, R, N);
                char what[64];
                snprintf(what, sizeof what, "gemm ta=%d tb=%d beta=%d", ta, tb, beta);
                check_close(what, C, R, nc, 1e-4, 1e-4);
            }
    /* the same product at 1 and 2 threads must be bit-identical */
    ct_set_threads(1);
    ct_gemm(0, 1, M, N, K, 1, A, K, B, K, 0, C, N);
    ct_set_threads(2);
    ct_gemm(0, 1, M, N, K, 1, A, K, B, K, 0, R, N);
    CHECK(memcmp(C, R, nc * 4) == 0, "gemm must not depend on the thread count");
    free(A); free(B); free(C); free(R);

    /* The shapes where OpenBLAS's result for a block of rows differs from the whole:
     * a feature covariance (whitening: 512 x 512 over 3000 samples) and a layer over
     * a long batch, each transpose. Splitting rows by the thread count failed here. */
    int64_t d = 512, n = 3000;
    float *X = malloc((size_t)(n * d) * 4), *P = malloc((size_t)(d * d) * 4), *Q = malloc((size_t)(d * d) * 4);
    fill_uniform(X, (size_t)(n * d), 4, -1, 1);
    for (int ta = 0; ta < 2; ta++) {
        ct_set_threads(1);
        ct_gemm(ta, !ta, d, d, n, 1, X, ta ? d : n, X, ta ? d : n, 0, P, d);
        ct_set_threads(2);
        ct_gemm(ta, !ta, d, d, n, 1, X, ta ? d : n, X, ta ? d : n, 0, Q, d);
        CHECK(memcmp(P, Q, (size_t)(d * d) * 4) == 0, "long-K gemm (ta=%d) must not depend on the thread count", ta);
    }
    free(X); free(P); free(Q);
}

static void test_rng(void) {
    ct_rng a = ct_rng_make(ct_rng_key(7, 1, 2, 3)), b = ct_rng_make(ct_rng_key(7, 1, 2, 3));
    ct_rng c = ct_rng_make(ct_rng_key(7, 1, 2, 4));
    int same = 1, differ = 0;
    double mean = 0, var = 0, umean = 0;
    for (int i = 0; i < 20000; i++) {
        uint64_t x = ct_rng_u64(&a), y = ct_rng_u64(&b), z = ct_rng_u64(&c);
        same &= x == y;
        differ += x != z;
        float n = ct_rng_normal(&c);
        mean += n; var += (double)n * n;
        umean += ct_rng_uniform(&c);
    }
    CHECK(same, "same key, same stream");
    CHECK(differ > 19990, "different keys give different streams");
    mean /= 20000; var = var / 20000 - mean * mean; umean /= 20000;
    CHECK(fabs(mean) < 0.03 && fabs(var - 1) < 0.05, "normal: mean %g var %g", mean, var);
    CHECK(fabs(umean - 0.5) < 0.01, "uniform mean %g", umean);
    ct_rng r = ct_rng_make(1);
    int inrange = 1;
    for (int i = 0; i < 1000; i++) inrange &= ct_rng_below(&r, 7) < 7;
    CHECK(inrange, "below(n) < n");
}

int main(void) {
    test_sizes_and_arena();
    test_long_messages();
    test_gemm();
    test_rng();
    return test_done();
}
