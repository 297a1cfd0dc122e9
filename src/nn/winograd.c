/* winograd.c: 3x3 convolutions with stride 1 and padding 1 (most of ResNet-18 and
 * the CNN) by Winograd's F(2x2, 3x3), F(3x3, 3x3) or F(4x4, 3x3), for conv2d.c's
 * dispatch (ct_nn__wino_ok and the rest in internal.h).
 *
 * The forward, the input gradient (itself such a convolution of dy with the
 * flipped, transposed kernel) and the weight gradient use Winograd's minimal
 * filtering F(m x m, 3x3), m = 2, 3 or 4: each a x a input tile (a = m + 2) becomes
 * V = B^T d B, each 3x3 kernel U = G g G^T, and a*a GEMMs (one per element of the
 * transform) M = U V over the channels replace im2col's product; the m x m output
 * tile is A^T M A. F(2x2) takes 16 multiplies per 4 outputs, F(3x3) 25 per 9,
 * F(4x4) 36 per 16, instead of 36, 81 and 144. The weight gradient is the gradient
 * of that product: a*a GEMMs dU = (A dY A^T) V^T summed over the tiles, then
 * dw = G^T dU G. The matrices (Lavin and Gray, points 0, 1, -1 (, 2 (, -2)) and
 * infinity) only add, halve and, for the larger tiles, scale by small integers,
 * sixths and 24ths; the rounding grows with the tile (wino_m) but stays within the
 * tests' tolerance against the direct reference. Tiles are independent (the
 * forward and input gradient hand chunks of samples to threads as they come) and
 * the weight gradient sums the same fixed parts in order, so results do not
 * depend on the thread count.
 *
 * The tile transforms run on WL = 8 samples at once, one per lane of a GCC vector
 * (one AVX register with -march=native, plain C where there is none): the columns
 * of V and M are ordered (group of 8 samples, tile, lane), so every load and store
 * of a transform is 8 contiguous floats with no bounds checks. The input planes of
 * a group are first interleaved into a zero-padded plane (which also pads maps to
 * whole tiles); the output tiles are written to such a plane and copied out.
 * Lanes past the batch's end stay zero and are not copied out. */
#include "internal.h"

#include <omp.h>
#include <string.h>
#ifdef __AVX__
#include <immintrin.h>
#endif

#define WINO_TILES 256 /* tiles per GEMM (its columns), rounded to whole groups */
#define WL 8           /* samples per transform, the lanes of a wvec */
#define WP 16          /* columns per panel of the packed V and D (wino_gemm, wino_gemm_nt) */
/* Floats from one panel of a packed (rows, ld) matrix to the next: rows * WP and
 * one cache line more. Without it a row's panels sit a multiple of 4 KB apart
 * (from 64 rows), so the weight gradient's blocks, which read a few rows across
 * every panel, keep each row in a single L1 set and reload it from L2: the 14x14
 * layer's products 64 -> 56 ms and the 7x7 layer's 50 -> 46 ms on one thread. */
#define PSKEW 16
static inline int64_t panel_floats(int64_t rows) { return rows * WP + PSKEW; }
typedef float wvec __attribute__((vector_size(WL * sizeof(float))));
/* Loads and stores through an unaligned, aliasing view of 8 floats: plain
 * dereferences, so no vector crosses a function boundary by value (without AVX
 * that changes the ABI, and GCC and clang warn). */
typedef float wvec_u __attribute__((vector_size(WL * sizeof(float)), aligned(sizeof(float)), may_alias));
#define WLOAD(p) (*(const wvec_u *)(p))
#define WSTORE(p, v) (*(wvec_u *)(p) = (v))

#ifdef __AVX__
/* the 8x8 transpose of rows r[0..7] */
static inline void transpose8(__m256 r[8]) {
    __m256 t[8], u[8];
    for (int k = 0; k < 4; k++) {
        t[2 * k] = _mm256_unpacklo_ps(r[2 * k], r[2 * k + 1]);
        t[2 * k + 1] = _mm256_unpackhi_ps(r[2 * k], r[2 * k + 1]);
    }
    for (int k = 0; k < 2; k++)
        for (int h = 0; h < 2; h++) {
            u[4 * k + 2 * h] = _mm256_shuffle_ps(t[4 * k + h], t[4 * k + h + 2], _MM_SHUFFLE(1, 0, 1, 0));
            u[4 * k + 2 * h + 1] = _mm256_shuffle_ps(t[4 * k + h], t[4 * k + h + 2], _MM_SHUFFLE(3, 2, 3, 2));
        }
    for (int k = 0; k < 4; k++) {
        r[k] = _mm256_permute2f128_ps(u[k], u[k + 4], 0x20);
        r[k + 4] = _mm256_permute2f128_ps(u[k], u[k + 4], 0x31);
    }
}
#endif

/* P[(yy * pw + xx) * WL + l] = x[l * ls + yy * W + xx] for the nl lanes: one plane
 * of nl samples (ls apart) into a plane of lanes with row stride pw; 8 full lanes
 * go 8 pixels at a time through a register transpose. */
static void to_lanes(float *P, int64_t pw, const float *x, int64_t ls, int64_t nl, int64_t H, int64_t W) {
    int64_t i = 0, yy = 0, xx = 0;
#ifdef __AVX__
    if (nl == WL)
        for (; i + 8 <= H * W; i += 8) {
            __m256 r[8];
            for (int l = 0; l < 8; l++) r[l] = _mm256_loadu_ps(x + l * ls + i);
            transpose8(r);
            for (int k = 0; k < 8; k++) {
                _mm256_storeu_ps(P + (yy * pw + xx) * WL, r[k]);
                if (++xx == W) xx = 0, yy++;
            }
        }
#endif
    for (; i < H * W; i++) {
        for (int64_t l = 0; l < nl; l++) P[(yy * pw + xx) * WL + l] = x[l * ls + i];
        if (++xx == W) xx = 0, yy++;
    }
}

/* y[l * ls + yy * W + xx] (+)= P[(yy * pw + xx) * WL + l]: the inverse of to_lanes */
static void from_lanes(float *y, int accumulate, int64_t ls, const float *P, int64_t pw, int64_t nl, int64_t H,
                       int64_t W) {
    int64_t i = 0, yy = 0, xx = 0;
#ifdef __AVX__
    if (nl == WL)
        for (; i + 8 <= H * W; i += 8) {
            __m256 r[8];
            for (int k = 0; k < 8; k++) {
                r[k] = _mm256_loadu_ps(P + (yy * pw + xx) * WL);
                if (++xx == W) xx = 0, yy++;
            }
            transpose8(r);
            for (int l = 0; l < 8; l++) {
                float *yl = y + l * ls + i;
                _mm256_storeu_ps(yl, accumulate ? _mm256_add_ps(_mm256_loadu_ps(yl), r[l]) : r[l]);
            }
        }
#endif
    for (; i < H * W; i++) {
        const float *p = P + (yy * pw + xx) * WL;
        for (int64_t l = 0; l < nl; l++) y[l * ls + i] = accumulate ? y[l * ls + i] + p[l] : p[l];
        if (++xx == W) xx = 0, yy++;
    }
}

/* ---- the transforms of one tile, on WL lanes ----
 * The 2-D transforms are separable: a 1-D transform down every column of the tile,
 * then along every row of the result (tile_from: rows first). Each is written once
 * below for an output tile side m that is a constant where it is instantiated
 * (WINO_TILE_FNS); only the 1-D matrices differ between the sizes. The loops are
 * unrolled fully: the tile is then straight-line code on named vectors, and the
 * convolutions of the CNN's shapes ran 5-16% faster (one thread, 512 samples) than
 * with the nine hand-written per-size copies these replaced, which kept loops over
 * arrays on the stack. Points 0, 1, -1 (F(2x2), a = 4), and 2 (F(3x3), a = 5), and
 * -2 (F(4x4), a = 6), and infinity. */

/* B^T x, the input transform of a column or row x (a) */
static inline __attribute__((always_inline)) void wino_bt(int m, wvec *o, const wvec *x) {
    if (m == 2) {
        /* rows (1 0 -1 0) (0 1 1 0) (0 -1 1 0) (0 1 0 -1) */
        o[0] = x[0] - x[2];
        o[1] = x[1] + x[2];
        o[2] = x[2] - x[1];
        o[3] = x[1] - x[3];
    } else if (m == 3) {
        /* rows (2 -1 -2 1 0) (0 -2 -1 1 0) (0 2 -3 1 0) (0 -1 0 1 0) (0 2 -1 -2 1) */
        o[0] = 2.0f * (x[0] - x[2]) - x[1] + x[3];
        o[1] = x[3] - x[2] - 2.0f * x[1];
        o[2] = x[3] + 2.0f * x[1] - 3.0f * x[2];
        o[3] = x[3] - x[1];
        o[4] = x[4] + 2.0f * (x[1] - x[3]) - x[2];
    } else {
        /* rows (4 0 -5 0 1 0) (0 -4 -4 1 1 0) (0 4 -4 -1 1 0) (0 -2 -1 2 1 0)
         * (0 2 -1 -2 1 0) (0 4 0 -5 0 1) */
        const wvec t1 = x[4] - 4.0f * x[2], t2 = x[3] - 4.0f * x[1], t3 = x[4] - x[2], t4 = 2.0f * (x[3] - x[1]);
        o[0] = 4.0f * x[0] - 5.0f * x[2] + x[4];
        o[1] = t1 + t2;
        o[2] = t1 - t2;
        o[3] = t3 + t4;
        o[4] = t3 - t4;
        o[5] = 4.0f * x[1] - 5.0f * x[3] + x[5];
    }
}

/* A^T x, the output transform: x (a) -> o (m) */
static inline __attribute__((always_inline)) void wino_at(int m, wvec *o, const wvec *x) {
    if (m == 2) {
        /* rows (1 1 1 0) (0 1 -1 -1) */
        o[0] = x[0] + x[1] + x[2];
        o[1] = x[1] - x[2] - x[3];
    } else if (m == 3) {
        /* rows (1 1 1 1 0) (0 1 -1 2 0) (0 1 1 4 1) */
        o[0] = x[0] + x[1] + x[2] + x[3];
        o[1] = x[1] - x[2] + 2.0f * x[3];
        o[2] = x[1] + x[2] + 4.0f * x[3] + x[4];
    } else {
        /* rows (1 1 1 1 1 0) (0 1 -1 2 -2 0) (0 1 1 4 4 0) (0 1 -1 8 -8 1) */
        const wvec s12 = x[1] + x[2], d12 = x[1] - x[2], s34 = x[3] + x[4], d34 = x[3] - x[4];
        o[0] = x[0] + s12 + s34;
        o[1] = d12 + 2.0f * d34;
        o[2] = s12 + 4.0f * s34;
        o[3] = d12 + 8.0f * d34 + x[5];
    }
}

/* A y, its transpose (the gradient of the output transform): y (m) -> o (a), the
 * columns of wino_at */
static inline __attribute__((always_inline)) void wino_a(int m, wvec *o, const wvec *y) {
    if (m == 2) {
        o[0] = y[0];
        o[1] = y[0] + y[1];
        o[2] = y[0] - y[1];
        o[3] = -y[1];
    } else if (m == 3) {
        o[0] = y[0];
        o[1] = y[0] + y[1] + y[2];
        o[2] = y[0] - y[1] + y[2];
        o[3] = y[0] + 2.0f * y[1] + 4.0f * y[2];
        o[4] = y[2];
    } else {
        const wvec e = y[0] + y[2], f = y[1] + y[3], g = y[0] + 4.0f * y[2], h = 2.0f * y[1] + 8.0f * y[3];
        o[0] = y[0];
        o[1] = e + f;
        o[2] = e - f;
        o[3] = g + h;
        o[4] = g - h;
        o[5] = y[3];
    }
}

/* p: the tile's corner in a plane of lanes with row stride pw; v (or m, d):
 * element xi = r * a + q of the tile's transform at v + xi * st. */

/* v <- T d T^T of the tile d at p, down the columns, then along the rows:
 * dy = 0: the input transform, T = B^T, d a x a;
 * dy = 1: the gradient of the output transform, T = A, d the m x m tile of dy. */
static inline __attribute__((always_inline)) void tile_to(int m, int dy, float *v, int64_t st, const float *p,
                                                         int64_t pw) {
    const int a = m + 2, n = dy ? m : a;
    wvec t[6][6], x[6], o[6];
#pragma GCC unroll 6
    for (int q = 0; q < n; q++) {
#pragma GCC unroll 6
        for (int r = 0; r < n; r++) x[r] = WLOAD(p + (r * pw + q) * WL);
        if (dy) wino_a(m, o, x);
        else wino_bt(m, o, x);
#pragma GCC unroll 6
        for (int r = 0; r < a; r++) t[r][q] = o[r];
    }
#pragma GCC unroll 6
    for (int r = 0; r < a; r++) {
        if (dy) wino_a(m, o, t[r]);
        else wino_bt(m, o, t[r]);
#pragma GCC unroll 6
        for (int q = 0; q < a; q++) WSTORE(v + (r * a + q) * st, o[q]);
    }
}

/* the m x m tile at p <- A^T M A of the transform at mt, along the rows, then
 * down the columns */
static inline __attribute__((always_inline)) void tile_from(int m, float *p, int64_t pw, const float *mt,
                                                           int64_t st) {
    const int a = m + 2;
    wvec s[6][4], x[6], o[4];
#pragma GCC unroll 6
    for (int r = 0; r < a; r++) {
#pragma GCC unroll 6
        for (int q = 0; q < a; q++) x[q] = WLOAD(mt + (r * a + q) * st);
        wino_at(m, s[r], x);
    }
#pragma GCC unroll 6
    for (int q = 0; q < m; q++) {
#pragma GCC unroll 6
        for (int r = 0; r < a; r++) x[r] = s[r][q];
        wino_at(m, o, x);
#pragma GCC unroll 6
        for (int r = 0; r < m; r++) WSTORE(p + (r * pw + q) * WL, o[r]);
    }
}

/* The instances for one tile size: tile_in<m> (B^T d B), tile_out<m> (A^T M A)
 * and tile_dy<m> (A dY A^T). */
#define WINO_TILE_FNS(M)                                                                                             \
    static void tile_in##M(float *v, int64_t st, const float *p, int64_t pw) { tile_to(M, 0, v, st, p, pw); }      \
    static void tile_out##M(float *p, int64_t pw, const float *mt, int64_t st) { tile_from(M, p, pw, mt, st); }    \
    static void tile_dy##M(float *d, int64_t st, const float *p, int64_t pw) { tile_to(M, 1, d, st, p, pw); }
WINO_TILE_FNS(2)
WINO_TILE_FNS(3)
WINO_TILE_FNS(4)
#undef WINO_TILE_FNS

/* G x of a kernel row or column x (3), and G^T u back (a): the kernel's transform
 * and its gradient, for 8 kernels at once (consecutive input channels, one per
 * lane; each lane's operations are those of one kernel alone, so the bits do not
 * change). One kernel at a time, with U's elements all in one L1 set, these took
 * ~20 ms of a one-thread CNN step; in lanes, with U skewed, ~9. */
static inline void g_fwd(int m, wvec *o, const wvec *x) {
    const wvec x0 = x[0], x1 = x[1], x2 = x[2];
    if (m == 2) {
        o[0] = x0, o[1] = 0.5f * (x0 + x1 + x2), o[2] = 0.5f * (x0 - x1 + x2), o[3] = x2;
    } else if (m == 4) {
        o[0] = 0.25f * x0, o[1] = -(x0 + x1 + x2) / 6.0f, o[2] = -(x0 - x1 + x2) / 6.0f;
        o[3] = (x0 + 2.0f * x1 + 4.0f * x2) / 24.0f, o[4] = (x0 - 2.0f * x1 + 4.0f * x2) / 24.0f, o[5] = x2;
    } else {
        o[0] = 0.5f * x0, o[1] = -0.5f * (x0 + x1 + x2), o[2] = (x1 - x0 - x2) / 6.0f;
        o[3] = (x0 + 2.0f * x1 + 4.0f * x2) / 6.0f, o[4] = x2;
    }
}

static inline void g_bwd(int m, wvec o[3], const wvec *u) {
    if (m == 2) {
        o[0] = u[0] + 0.5f * (u[1] + u[2]), o[1] = 0.5f * (u[1] - u[2]), o[2] = 0.5f * (u[1] + u[2]) + u[3];
    } else if (m == 4) {
        const wvec s12 = u[1] + u[2], d12 = u[1] - u[2], s34 = u[3] + u[4], d34 = u[3] - u[4];
        o[0] = 0.25f * u[0] - s12 / 6.0f + s34 / 24.0f;
        o[1] = d34 / 12.0f - d12 / 6.0f;
        o[2] = (s34 - s12) / 6.0f + u[5];
    } else {
        o[0] = 0.5f * (u[0] - u[1]) + (u[3] - u[2]) / 6.0f;
        o[1] = (u[2] + 2.0f * u[3]) / 6.0f - 0.5f * u[1];
        o[2] = (4.0f * u[3] - u[2]) / 6.0f - 0.5f * u[1] + u[4];
    }
}

/* ---- the Winograd GEMMs of the forward and the input gradient ----
 * M (Cout, ld) = U (Cout, Cin) . V (Cin, ld) for each element of the transform,
 * with V packed by the input transform in panels of WP columns (ld / WP, Cin, WP)
 * so a panel is read from L1 row by row while every block of WR rows of U passes
 * over it. Through OpenBLAS these products (K = Cin = 32-256, a few hundred
 * columns) spent a third of their time outside its kernel: packing U and V, and a
 * pass that zeroes M before accumulating into it. Each element of M is one dot
 * product in k order, so the bits do not depend on the thread count. */
#define WR 6 /* rows of U per block: WR x WP accumulators, 12 registers with AVX */
#ifdef __FMA__
#define WFMA(a, b, c) ((wvec)_mm256_fmadd_ps((__m256)(a), (__m256)(b), (__m256)(c)))
#else
#define WFMA(a, b, c) ((a) * (b) + (c))
#endif

/* c (R, nv * WL) = a (R, K) . b (K, WP)'s first nv * WL columns; R <= WR and nv
 * (1 or 2) are constants where it is inlined, so the accumulators stay in registers */
static inline __attribute__((always_inline)) void wgemm_block(int R, int nv, float *c, int64_t ldc, const float *a,
                                                             int64_t lda, const float *b, int64_t K) {
    wvec acc[WR][2];
    for (int r = 0; r < R; r++) acc[r][0] = acc[r][1] = (wvec){0};
    for (int64_t k = 0; k < K; k++) {
        const wvec b0 = WLOAD(b + k * WP);
        wvec b1 = {0};
        if (nv == 2) b1 = WLOAD(b + k * WP + WL);
#pragma GCC unroll 6
        for (int r = 0; r < R; r++) {
            const float s = a[r * lda + k];
            const wvec av = {s, s, s, s, s, s, s, s};
            acc[r][0] = WFMA(av, b0, acc[r][0]);
            if (nv == 2) acc[r][1] = WFMA(av, b1, acc[r][1]);
        }
    }
    for (int r = 0; r < R; r++) {
        WSTORE(c + r * ldc, acc[r][0]);
        if (nv == 2) WSTORE(c + r * ldc + WL, acc[r][1]);
    }
}

/* M (Cout, ld)'s first cols columns = U (Cout, Cin) . V, V packed (ld / WP, Cin,
 * WP); cols a multiple of WL */
static void wino_gemm(float *M, int64_t ld, int64_t cols, const float *U, const float *V, int64_t Cout,
                      int64_t Cin) {
    for (int64_t j = 0; j < cols; j += WP) {
        const float *b = V + j / WP * panel_floats(Cin);
        const int two = cols - j >= WP;
        for (int64_t o = 0; o < Cout; o += WR) {
            float *c = M + o * ld + j;
            const float *a = U + o * Cin;
            const int nr = Cout - o < WR ? (int)(Cout - o) : WR;
            /* the lines of M the same rows take in the next panel: without this,
             * each block's stores waited on lines that missed (session 10: the
             * GEMMs at 32 channels, 28x28, 75-79 -> 66-67 ms a forward, 512
             * samples, one thread; from 128 channels on no change) */
            for (int r = 0; r < nr; r++) __builtin_prefetch(c + r * ld + WP, 1, 3);
            switch (nr * 2 + two) {
#define WCASE(R)                                                                                                     \
    case 2 * R: wgemm_block(R, 1, c, ld, a, Cin, b, Cin); break;                                                     \
    case 2 * R + 1: wgemm_block(R, 2, c, ld, a, Cin, b, Cin); break;
                WCASE(1) WCASE(2) WCASE(3) WCASE(4) WCASE(5) WCASE(6)
#undef WCASE
            }
        }
    }
}

/* The weight gradient's GEMMs: dU (OC, C) += D (OC, cols) . V (C, cols)^T, with D
 * and V packed alike (ld / WP, rows, WP). Each element of dU is a dot product
 * over the columns: a block of RO x RI of them is held as 8-lane partial sums
 * (columns j = lane mod 8), summed across the lanes in a fixed order at the end,
 * so again the bits do not depend on the thread count. */
#define WRO 3 /* rows of D per block */
#define WRI 4 /* rows of V per block: 12 accumulators + 3 rows of D + 1 of V */

static inline float wsum(wvec v) {
    return ((v[0] + v[1]) + (v[2] + v[3])) + ((v[4] + v[5]) + (v[6] + v[7]));
}

/* du (RO, RI) (row stride lddu) += d (RO, cols) . v (RI, cols)^T: d and v point at
 * their first row inside packed matrices of od and ov rows */
static inline __attribute__((always_inline)) void wgemm_nt_block(int RO, int RI, float *du, int64_t lddu,
                                                                const float *d, int64_t od, const float *v,
                                                                int64_t ov, int64_t cols) {
    wvec acc[WRO][WRI], dr[WRO];
#pragma GCC unroll 3
    for (int r = 0; r < RO; r++)
#pragma GCC unroll 4
        for (int i = 0; i < RI; i++) acc[r][i] = (wvec){0};
    for (int64_t j = 0; j < cols; j += WL) {
        const float *dp = d + (j / WP) * panel_floats(od) + j % WP, *vp = v + (j / WP) * panel_floats(ov) + j % WP;
#pragma GCC unroll 3
        for (int r = 0; r < RO; r++) dr[r] = WLOAD(dp + r * WP);
#pragma GCC unroll 4
        for (int i = 0; i < RI; i++) {
            const wvec vi = WLOAD(vp + i * WP);
#pragma GCC unroll 3
            for (int r = 0; r < RO; r++) acc[r][i] = WFMA(dr[r], vi, acc[r][i]);
        }
    }
#ifdef __AVX__
    if (RI == 4) {
        /* the four sums of a row at once, in wsum's order: hadd pairs lanes
         * (v0+v1, v2+v3 within each half), a second hadd the pairs, and the halves add last */
#pragma GCC unroll 3
        for (int r = 0; r < RO; r++) {
            const __m256 h = _mm256_hadd_ps(_mm256_hadd_ps((__m256)acc[r][0], (__m256)acc[r][1]),
                                            _mm256_hadd_ps((__m256)acc[r][2], (__m256)acc[r][3]));
            const __m128 q = _mm_add_ps(_mm256_castps256_ps128(h), _mm256_extractf128_ps(h, 1));
            _mm_storeu_ps(du + r * lddu, _mm_add_ps(_mm_loadu_ps(du + r * lddu), q));
        }
        return;
    }
#endif
#pragma GCC unroll 3
    for (int r = 0; r < RO; r++)
#pragma GCC unroll 4
        for (int i = 0; i < RI; i++) du[r * lddu + i] += wsum(acc[r][i]);
}

static void wino_gemm_nt(float *dU, const float *D, const float *V, int64_t OC, int64_t C, int64_t cols) {
    for (int64_t o = 0; o < OC; o += WRO) {
        const int ro = OC - o < WRO ? (int)(OC - o) : WRO;
        for (int64_t i = 0; i < C; i += WRI) {
            const int ri = C - i < WRI ? (int)(C - i) : WRI;
            float *du = dU + o * C + i;
            const float *d = D + o * WP, *v = V + i * WP;
            switch (ro * 8 + ri) {
#define WCASE(RO, RI)                                                                                                \
    case RO * 8 + RI: wgemm_nt_block(RO, RI, du, C, d, OC, v, C, cols); break;
                WCASE(1, 1) WCASE(1, 2) WCASE(1, 3) WCASE(1, 4)
                WCASE(2, 1) WCASE(2, 2) WCASE(2, 3) WCASE(2, 4)
                WCASE(3, 1) WCASE(3, 2) WCASE(3, 3) WCASE(3, 4)
#undef WCASE
            }
        }
    }
}

/* ---- shapes, tile sizes and scratch ---- */

/* The rule, measured one layer at a time against im2col (docs/performance.md):
 * Winograd is faster on every 3x3 stride-1 pad-1 conv of the CNN (20x20 and 28x28
 * inputs) and of ResNet-18, on any map size (maps are padded to whole tiles), from
 * 8 channels in and out (4 -> 8 ties; the 1-channel stem is 3x slower: GEMMs with
 * K = 1). The batch must fill the lanes: at least two groups per part (N >= 64),
 * so idle lanes are under a third of a part's work. The workspace this needs only
 * grows with N, so one sized for a prepared batch serves every smaller one. */
#define WINO_MIN_C 8
int ct_nn__wino_ok(const ct_conv2d_shape *s) {
    return s->KH == 3 && s->KW == 3 && s->stride == 1 && s->pad == 1 && s->C >= WINO_MIN_C &&
           s->OC >= WINO_MIN_C && s->N >= 2 * WL * CT_NN_PARTS;
}

static int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

/* The output tile side, from the multiplies per plane (tiles x a^2) and the
 * rounding. On outputs of about 1.6 (32-64 channels, unit-variance activations,
 * weights scaled by 1/sqrt(fan-in)) the forward's max error is 4.5e-7 with F(2x2),
 * 3.4e-6 with F(3x3) and 9e-6 with F(4x4); the input gradient's 2e-6, 6e-6 and
 * 1.8e-5 (on 2.3); the weight gradient's is dominated by the sum over the batch
 * and barely changes (6e-4, 6e-4, 8e-4 on 155). So the larger tiles are taken only
 * where they save enough:
 *  - F(4x4) where it needs at most 5/8 of F(2x2)'s multiplies and fewer than
 *    F(3x3): 28x28, 8x8, 7x7 and 4x4 maps (0.56x), measured 1.3-1.5x faster per
 *    layer (ResNet-18 width 32, the CNN's 7x7); on 14x14 maps (0.73x) and 10x10
 *    (0.81x) no gain, the weight gradient slower.
 *  - F(3x3) where it saves a quarter: 3x3 maps (0.39x) and 5x5 (0.69x), measured
 *    1.1-2.2x faster; on 14x14 (0.80x) no clear gain; 10x10 needs as many. */
static int wino_m(const ct_conv2d_shape *s) {
    const int64_t f2 = ceil_div(s->H, 2) * ceil_div(s->W, 2) * 16, f3 = ceil_div(s->H, 3) * ceil_div(s->W, 3) * 25,
                  f4 = ceil_div(s->H, 4) * ceil_div(s->W, 4) * 36;
    if (8 * f4 <= 5 * f2 && f4 < f3) return 4;
    return 4 * f3 < 3 * f2 ? 3 : 2;
}

/* elements of the transform: the number of GEMMs */
static int64_t wino_na(const ct_conv2d_shape *s) { return (int64_t)(wino_m(s) + 2) * (wino_m(s) + 2); }

static int64_t wino_tiles(const ct_conv2d_shape *s) { return ceil_div(s->H, wino_m(s)) * ceil_div(s->W, wino_m(s)); }

/* samples per chunk: whole groups of WL, about WINO_TILES tiles, at most a part */
static int64_t wino_chunk(const ct_conv2d_shape *s) {
    int64_t g = WINO_TILES / (wino_tiles(s) * WL), per = ceil_div(s->N, CT_NN_PARTS);
    int64_t pg = ceil_div(per, WL);
    if (g < 1) g = 1;
    return (g < pg ? g : pg) * WL;
}

/* the padded, interleaved plane of one group: (m*th + 2, m*tw + 2, WL) */
static size_t wino_plane_floats(const ct_conv2d_shape *s) {
    const int64_t m = wino_m(s);
    return (size_t)((m * ceil_div(s->H, m) + 2) * (m * ceil_div(s->W, m) + 2) * WL);
}

static size_t round16(size_t f) { return (f + 15) & ~(size_t)15; }

/* One part's scratch: V and M (na, max(C, OC), cols), the group's plane, and the
 * part's share of the weight gradient's dU (na, OC, C). */
typedef struct {
    float *V, *M, *P, *dU;
} wino_part;

/* columns of a chunk's V and M: whole panels */
static int64_t wino_ld(int64_t cols) { return ceil_div(cols, WP) * WP; }

/* Floats from one element's (rows, ld) matrix of V, M or D to the next's. A tile
 * transform writes (or reads) one vector in each of the a*a matrices; with a plain
 * rows * ld stride (a multiple of 4 KB from 32 rows on) they all fall in one L1
 * set and evict each other, so each element is shifted by two more cache lines
 * (one line did less on the 7x7 maps). Measured one layer at a time on the CNN's
 * shapes, one thread (docs/performance.md, session 9): the input and output
 * transforms of its forwards and input gradients 105-124 -> 82-85 ms a step, the
 * 14x14 layer's input-gradient transform alone 26-30 -> 14-16 ms. */
#define WSKEW 32
static int64_t wino_est(int64_t rows, int64_t ld) { return rows * ld + WSKEW; }
/* the same for the packed V and D, whose panels are panel_floats apart */
static int64_t wino_pest(int64_t rows, int64_t ld) { return ld / WP * panel_floats(rows) + WSKEW; }

static size_t wino_vm_floats(const ct_conv2d_shape *s) {
    return round16((size_t)wino_na(s) *
                   (size_t)wino_pest(s->C > s->OC ? s->C : s->OC, wino_ld(wino_chunk(s) * wino_tiles(s))));
}

/* U and dU: (a*a, OC, C), the elements wino_est(OC, C) apart (the transforms of a
 * kernel write, or read, one value in each) */
static size_t wino_u_floats(const ct_conv2d_shape *s) { return round16((size_t)(wino_na(s) * wino_est(s->OC, s->C))); }

static size_t wino_part_floats(const ct_conv2d_shape *s) {
    return 2 * wino_vm_floats(s) + round16(wino_plane_floats(s)) + wino_u_floats(s);
}

static wino_part wino_part_at(const ct_conv2d_shape *s, float *parts, int p) {
    wino_part w;
    w.V = parts + (size_t)p * wino_part_floats(s);
    w.M = w.V + wino_vm_floats(s);
    w.P = w.M + wino_vm_floats(s);
    w.dU = w.P + round16(wino_plane_floats(s));
    return w;
}

/* ---- whole planes and convolutions ---- */

/* U[xi][o][i] = (G g G^T)[xi] for each 3x3 kernel g: (Cout, Cin) kernels taken
 * from w (OC, C, 3, 3) as they are (flip = 0, the forward) or flipped and
 * transposed (flip = 1: g[o=c][i=oc] = rot180(w[oc][c]), the input gradient). */
static void wino_weights(float *U, const float *w, int64_t OC, int64_t C, int flip, int m) {
    const int64_t Cout = flip ? C : OC, Cin = flip ? OC : C, a = m + 2, ust = wino_est(Cout, Cin);
#pragma omp parallel for schedule(static) if (OC * C * 16 >= CT_PAR_MIN)
    for (int64_t o = 0; o < Cout; o++)
        for (int64_t i0 = 0; i0 < Cin; i0 += WL) {
            const int64_t nl = Cin - i0 < WL ? Cin - i0 : WL;
            wvec g[3][3], t[6][3], u[6];
            for (int r = 0; r < 3; r++)
                for (int q = 0; q < 3; q++) g[r][q] = (wvec){0};
            for (int64_t l = 0; l < nl; l++) {
                const int64_t i = i0 + l;
                const float *k = flip ? w + (i * C + o) * 9 : w + (o * C + i) * 9;
                for (int r = 0; r < 3; r++)
                    for (int q = 0; q < 3; q++) g[r][q][l] = flip ? k[(2 - r) * 3 + (2 - q)] : k[r * 3 + q];
            }
            for (int q = 0; q < 3; q++) {
                const wvec col[3] = {g[0][q], g[1][q], g[2][q]};
                g_fwd(m, u, col);
                for (int r = 0; r < a; r++) t[r][q] = u[r];
            }
            for (int r = 0; r < a; r++) {
                g_fwd(m, u, t[r]);
                for (int q = 0; q < a; q++) {
                    float *d = U + (r * a + q) * ust + o * Cin + i0;
                    if (nl == WL) WSTORE(d, u[q]);
                    else
                        for (int64_t l = 0; l < nl; l++) d[l] = u[q][l];
                }
            }
        }
}

/* dw (OC, C, 3, 3) += G^T dU G for each kernel; dU (a*a, OC, C): the gradient of
 * U = G g G^T, transposed back to the kernels. */
static void wino_weights_grad(float *dw, const float *dU, int64_t OC, int64_t C, int m) {
    const int a = m + 2;
    const int64_t ust = wino_est(OC, C);
#pragma omp parallel for schedule(static) if (OC * C * 16 >= CT_PAR_MIN)
    for (int64_t o = 0; o < OC; o++)
        for (int64_t i0 = 0; i0 < C; i0 += WL) {
            const int64_t nl = C - i0 < WL ? C - i0 : WL;
            wvec u[6][6], t[3][6], x[6], k3[3];
            for (int xi = 0; xi < a * a; xi++) {
                const float *src = dU + xi * ust + o * C + i0;
                if (nl == WL) u[xi / a][xi % a] = WLOAD(src);
                else {
                    wvec v = {0};
                    for (int64_t l = 0; l < nl; l++) v[l] = src[l];
                    u[xi / a][xi % a] = v;
                }
            }
            for (int q = 0; q < a; q++) {
                for (int r = 0; r < a; r++) x[r] = u[r][q];
                g_bwd(m, k3, x);
                for (int r = 0; r < 3; r++) t[r][q] = k3[r];
            }
            for (int r = 0; r < 3; r++) {
                g_bwd(m, k3, t[r]);
                for (int64_t l = 0; l < nl; l++) {
                    float *k = dw + ((o * C + i0 + l) * 9) + r * 3;
                    for (int q = 0; q < 3; q++) k[q] += k3[q][l];
                }
            }
        }
}

/* Column col of row r of a packed (rows, ld) matrix: stored in panels of WP
 * columns, (ld / WP, rows, WP) with panel_floats(rows) from one panel to the
 * next, so a GEMM kernel reads a panel row by row from L1 (ld a multiple of WP) */
static inline int64_t packed_at(int64_t rows, int64_t r, int64_t col) {
    return col / WP * panel_floats(rows) + r * WP + col % WP;
}

/* Ask for the a*a lines a tile transform will write (rw 1) or read (rw 0) next,
 * one in each element's matrix, st apart. Two tiles fill one line of each (WP =
 * 2 * WL columns), so at every line's first tile the transforms ask for the next
 * line's: a*a streams are more than the hardware prefetcher follows, and without
 * this each new line was a miss the stores waited on. One thread, 512 samples
 * (docs/performance.md, session 10): the input transform 43-50 -> 38-41 ms at
 * 32 channels 28x28, 27 -> 19 at 64 x 14x14, 18 -> 15 at 128 x 7x7. */
static inline void prefetch_elems(const float *p, int64_t st, int64_t na, int rw) {
    for (int64_t xi = 0; xi < na; xi++) {
        if (rw) __builtin_prefetch(p + xi * st, 1, 3);
        else __builtin_prefetch(p + xi * st, 0, 3);
    }
}

/* X (a*a, rows, ld) packed, columns [col0, col0 + tiles * WL) <- the tile
 * transforms of the nl <= WL samples src: (nl, rows, H, W), a plane at a time
 * through P, the group's plane (scratch); tiles past the map's edge read zeros.
 *   dy = 0: V = B^T d B of the a x a input tiles, which overlap by two: the plane
 *           has a border of one zero all round;
 *   dy = 1: D = A dY A^T of the m x m tiles of dy, the transpose of wino_output
 *           (the gradient of M). */
static void wino_pack_tiles(float *X, int64_t ld, int64_t col0, const float *src, int64_t nl, int64_t rows,
                            int64_t H, int64_t W, int m, int dy, float *P) {
    const int64_t e = dy ? 0 : 1, th = ceil_div(H, m), tw = ceil_div(W, m), pw = m * tw + 2 * e, hw = H * W;
    const int64_t st = wino_pest(rows, ld);
    /* the same interior is rewritten for every plane: the border and idle lanes stay zero */
    memset(P, 0, (size_t)((m * th + 2 * e) * pw * WL) * sizeof(float));
    for (int64_t c = 0; c < rows; c++) {
        to_lanes(P + e * (pw + 1) * WL, pw, src + c * hw, rows * hw, nl, H, W);
        for (int64_t ty = 0; ty < th; ty++)
            for (int64_t tx = 0; tx < tw; tx++) {
                const float *p = P + m * (ty * pw + tx) * WL;
                const int64_t col = col0 + (ty * tw + tx) * WL;
                float *v = X + packed_at(rows, c, col);
                if (col % WP == 0) prefetch_elems(X + packed_at(rows, c, col + WP), st, (m + 2) * (m + 2), 1);
                switch (m * 2 + dy) {
                case 4: tile_in2(v, st, p, pw); break;
                case 5: tile_dy2(v, st, p, pw); break;
                case 6: tile_in3(v, st, p, pw); break;
                case 7: tile_dy3(v, st, p, pw); break;
                case 8: tile_in4(v, st, p, pw); break;
                default: tile_dy4(v, st, p, pw); break;
                }
            }
    }
}

/* y: (nl, Cout, H, W) (+)= A^T M A of each tile, M (a*a, Cout, ld) columns
 * [col0, col0 + tiles * WL); P: the group's plane (scratch) */
static void wino_output(float *y, int accumulate, const float *M, int64_t ld, int64_t col0, int64_t nl,
                        int64_t Cout, int64_t H, int64_t W, int m, float *P) {
    const int64_t th = ceil_div(H, m), tw = ceil_div(W, m), pw = m * tw, hw = H * W, st = wino_est(Cout, ld);
    for (int64_t o = 0; o < Cout; o++) {
        for (int64_t ty = 0; ty < th; ty++)
            for (int64_t tx = 0; tx < tw; tx++) {
                float *p = P + m * (ty * pw + tx) * WL;
                const int64_t col = col0 + (ty * tw + tx) * WL;
                const float *mt = M + o * ld + col;
                if (col % WP == 0) prefetch_elems(mt + WP, st, (m + 2) * (m + 2), 0);
                if (m == 2) tile_out2(p, pw, mt, st);
                else if (m == 3) tile_out3(p, pw, mt, st);
                else tile_out4(p, pw, mt, st);
            }
        from_lanes(y + o * hw, accumulate, Cout * hw, P, pw, nl, H, W);
    }
}

/* dw (OC, C, 3, 3) += the weight gradient by Winograd: dU[xi] (OC, C) = the sum
 * over tiles of (A dY A^T)[xi] (OC, tiles) . V[xi]^T (tiles, C), each part's
 * share in its own dU, summed in part order (same bits at any thread count),
 * then G^T dU G. ws: U's place (the summed dU), then the parts. */
static void wino_dw(float *dw, const float *dy, const float *x, const ct_conv2d_shape *s, float *ws) {
    const int64_t OC = s->OC, C = s->C, H = s->H, W = s->W, tps = wino_tiles(s), cs = wino_chunk(s);
    const int64_t gcols = tps * WL, na = wino_na(s), nu = na * wino_est(OC, C);
    const int m = wino_m(s);
    float *parts = ws + wino_u_floats(s);
#pragma omp parallel for schedule(dynamic, 1)
    for (int p = 0; p < CT_NN_PARTS; p++) {
        int64_t n0, n1;
        ct_nn__part_range(s->N, p, &n0, &n1);
        const wino_part wp = wino_part_at(s, parts, p);
        memset(wp.dU, 0, (size_t)nu * sizeof(float));
        for (int64_t c0 = n0; c0 < n1; c0 += cs) {
            const int64_t nb = c0 + cs < n1 ? cs : n1 - c0, ng = ceil_div(nb, WL), ld = wino_ld(ng * gcols);
            for (int64_t g = 0; g < ng; g++) {
                const int64_t nl = nb - g * WL < WL ? nb - g * WL : WL, n = c0 + g * WL;
                wino_pack_tiles(wp.V, ld, g * gcols, x + n * C * H * W, nl, C, H, W, m, 0, wp.P);
                wino_pack_tiles(wp.M, ld, g * gcols, dy + n * OC * H * W, nl, OC, H, W, m, 1, wp.P);
            }
            for (int64_t xi = 0; xi < na; xi++)
                wino_gemm_nt(wp.dU + xi * wino_est(OC, C), wp.M + xi * wino_pest(OC, ld), wp.V + xi * wino_pest(C, ld),
                             OC, C, ng * gcols);
        }
    }
    const float *dU0 = wino_part_at(s, parts, 0).dU;
    const size_t pf = wino_part_floats(s);
#pragma omp parallel for schedule(static) if (nu * CT_NN_PARTS >= CT_PAR_MIN)
    for (int64_t i = 0; i < nu; i++) {
        float acc = 0.0f;
        for (int p = 0; p < CT_NN_PARTS; p++) acc += dU0[p * pf + i];
        ws[i] = acc;
    }
    wino_weights_grad(dw, ws, OC, C, m);
}

/* out: (N, Cout, H, W) (+)= the "same" 3x3 convolution of in: (N, Cin, H, W) with
 * transformed kernels U (a*a, Cout, Cin); parts: the per-part scratch. Every output
 * is one tile's product whatever chunk it falls in, so chunks run across the whole
 * batch, handed out one at a time (a thread the machine slows takes fewer), on at
 * most CT_NN_PARTS threads, each with one part's scratch. */
static void wino_conv(float *out, int accumulate, const float *in, const float *U, int64_t N, int64_t Cin,
                      int64_t Cout, int64_t H, int64_t W, const ct_conv2d_shape *s, float *parts) {
    const int64_t tps = wino_tiles(s), cs = wino_chunk(s), gcols = tps * WL, na = wino_na(s);
    const int m = wino_m(s);
    int nt = omp_get_max_threads();
    if (nt > CT_NN_PARTS) nt = CT_NN_PARTS;
#pragma omp parallel for num_threads(nt) schedule(dynamic, 1)
    for (int64_t c0 = 0; c0 < N; c0 += cs) {
        const wino_part wp = wino_part_at(s, parts, omp_get_thread_num());
        const int64_t nb = c0 + cs < N ? cs : N - c0, ng = ceil_div(nb, WL), ld = wino_ld(ng * gcols);
        for (int64_t g = 0; g < ng; g++) {
            const int64_t nl = nb - g * WL < WL ? nb - g * WL : WL;
            wino_pack_tiles(wp.V, ld, g * gcols, in + (c0 + g * WL) * Cin * H * W, nl, Cin, H, W, m, 0, wp.P);
        }
        for (int64_t xi = 0; xi < na; xi++)
            wino_gemm(wp.M + xi * wino_est(Cout, ld), ld, ng * gcols, U + xi * wino_est(Cout, Cin),
                      wp.V + xi * wino_pest(Cin, ld), Cout, Cin);
        for (int64_t g = 0; g < ng; g++) {
            const int64_t nl = nb - g * WL < WL ? nb - g * WL : WL;
            wino_output(out + (c0 + g * WL) * Cout * H * W, accumulate, wp.M, ld, g * gcols, nl, Cout, H, W, m,
                        wp.P);
        }
    }
}

size_t ct_nn__wino_workspace(const ct_conv2d_shape *s) { return wino_u_floats(s) + CT_NN_PARTS * wino_part_floats(s); }

void ct_nn__wino_forward(float *y, const float *x, const float *w, const float *b, const ct_conv2d_shape *s,
                         float *ws) {
    wino_weights(ws, w, s->OC, s->C, 0, wino_m(s));
    wino_conv(y, 0, x, ws, s->N, s->C, s->OC, s->H, s->W, s, ws + wino_u_floats(s));
    const int64_t ohw = s->OH * s->OW;
    if (b) {
#pragma omp parallel for schedule(static) if (s->N * s->OC * ohw >= CT_PAR_MIN)
        for (int64_t no = 0; no < s->N * s->OC; no++) {
            float *yr = y + no * ohw, bo = b[no % s->OC];
#pragma omp simd
            for (int64_t i = 0; i < ohw; i++) yr[i] += bo;
        }
    }
}

void ct_nn__wino_backward(float *dx, float *dw, const float *dy, const float *x, const float *w,
                          const ct_conv2d_shape *s, float *ws, int overwrite) {
    /* the weight gradient first: it uses all of ws, and the input gradient's U after it */
    if (dw) wino_dw(dw, dy, x, s, ws);
    if (dx) {
        wino_weights(ws, w, s->OC, s->C, 1, wino_m(s));
        wino_conv(dx, !overwrite, dy, ws, s->N, s->OC, s->C, s->H, s->W, s, ws + wino_u_floats(s));
    }
}
