/* gemm.c: the one matrix-product entry point.
 *
 * OpenBLAS runs single-threaded per call (ct_set_threads pins it); when called
 * outside a parallel region large products are split into row blocks that our
 * OpenMP threads share. The blocks depend on the shape alone, so each element of C
 * is computed by the same kernel call in the same order whatever the thread
 * count, which keeps runs reproducible. */
#include "internal.h"

#include <cblas.h>
#include <omp.h>

void ct_gemm_ref(int transA, int transB, int64_t M, int64_t N, int64_t K, float alpha,
                 const float *A, int64_t lda, const float *B, int64_t ldb, float beta,
                 float *C, int64_t ldc) {
    for (int64_t i = 0; i < M; i++) {
        for (int64_t j = 0; j < N; j++) {
            double acc = 0.0;
            for (int64_t k = 0; k < K; k++) {
                float a = transA ? A[k * lda + i] : A[i * lda + k];
                float b = transB ? B[j * ldb + k] : B[k * ldb + j];
                acc += (double)a * b;
            }
            float c = beta == 0.0f ? 0.0f : beta * C[i * ldc + j];
            C[i * ldc + j] = c + alpha * (float)acc;
        }
    }
}

static void gemm_blas(int transA, int transB, int64_t M, int64_t N, int64_t K, float alpha,
                      const float *A, int64_t lda, const float *B, int64_t ldb, float beta,
                      float *C, int64_t ldc) {
    if (M <= 0 || N <= 0) return;
    if (K <= 0) { /* BLAS would leave C * beta; do it explicitly */
        for (int64_t i = 0; i < M; i++)
            for (int64_t j = 0; j < N; j++) C[i * ldc + j] = beta == 0.0f ? 0.0f : beta * C[i * ldc + j];
        return;
    }
    cblas_sgemm(CblasRowMajor, transA ? CblasTrans : CblasNoTrans, transB ? CblasTrans : CblasNoTrans,
                (blasint)M, (blasint)N, (blasint)K, alpha, A, (blasint)lda, B, (blasint)ldb, beta, C,
                (blasint)ldc);
}

/* Large products are split into row blocks whose size depends on M alone, never on
 * the thread count: OpenBLAS's kernels do not promise the same bits for a block of
 * rows as for the whole (its edge and small-size paths sum in another order), so a
 * split that followed the thread count made one thread and two disagree. Two
 * blocks, each a multiple of 16 rows so the kernel's tiling of C stays aligned, one
 * per thread on the two-core machines this targets; with one thread they run in turn. */
#define GEMM_BLOCKS 2

void ct_gemm(int transA, int transB, int64_t M, int64_t N, int64_t K, float alpha,
             const float *A, int64_t lda, const float *B, int64_t ldb, float beta,
             float *C, int64_t ldc) {
    double work = (double)M * (double)N * (double)K;
    if (work < 2e6 || M < 32) {
        gemm_blas(transA, transB, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
        return;
    }
    int nt = omp_in_parallel() ? 1 : omp_get_max_threads();
    if (nt > GEMM_BLOCKS) nt = GEMM_BLOCKS;
    int64_t blk = ((M + GEMM_BLOCKS - 1) / GEMM_BLOCKS + 15) / 16 * 16;
#pragma omp parallel for num_threads(nt) schedule(static)
    for (int t = 0; t < GEMM_BLOCKS; t++) {
        int64_t i0 = t * blk, i1 = i0 + blk < M ? i0 + blk : M;
        if (i0 >= i1) continue;
        const float *Ai = transA ? A + i0 : A + i0 * lda;
        gemm_blas(transA, transB, i1 - i0, N, K, alpha, Ai, lda, B, ldb, beta, C + i0 * ldc, ldc);
    }
}
