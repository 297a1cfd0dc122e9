/* internal.h: what src/core keeps out of the public header (not part of the API;
 * tests include it explicitly). */
#ifndef CT_CORE_INTERNAL_H
#define CT_CORE_INTERNAL_H

#include "contrast/core.h"

/* ct_gemm as a plain triple loop accumulating in double: the reference the tests
 * compare ct_gemm against (same arguments and layout as ct_gemm). */
void ct_gemm_ref(int transA, int transB, int64_t M, int64_t N, int64_t K, float alpha,
                 const float *A, int64_t lda, const float *B, int64_t ldb, float beta,
                 float *C, int64_t ldc);

#endif
