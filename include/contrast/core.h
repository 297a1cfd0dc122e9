/* contrast/core.h: errors, memory, the one GEMM entry point, counter-based RNG, threads.
 *
 * Every other module builds on these. Nothing here knows about models or files.
 *
 * Errors: library functions return ct_status (CT_OK == 0). On failure the message
 * (which file, what was expected, what was found) is kept per thread and read with
 * ct_errmsg(). The library never calls exit() or abort() on bad input.
 */
#ifndef CONTRAST_CORE_H
#define CONTRAST_CORE_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Exports: the library is built with -fvisibility=hidden, so only what a public
 * header declares between CT_BEGIN_API and CT_END_API is visible in
 * libcontrast.so (each header in include/contrast/ brackets its declarations so);
 * internal functions shared between the library's files stay hidden. */
#if defined(__GNUC__)
#define CT_BEGIN_API _Pragma("GCC visibility push(default)")
#define CT_END_API _Pragma("GCC visibility pop")
#else
#define CT_BEGIN_API
#define CT_END_API
#endif
CT_BEGIN_API

/* ---- errors ------------------------------------------------------------- */
/* The library's version (the Makefile reads it from here for the soname and contrast.pc). */
#define CT_VERSION "0.1.0"

typedef enum {
    CT_OK = 0,
    CT_ERR_ARG,      /* bad argument or configuration from the caller            */
    CT_ERR_IO,       /* a file could not be opened, read or written              */
    CT_ERR_FORMAT,   /* a file's bytes are not what its format promises          */
    CT_ERR_NOMEM,    /* an allocation failed or a size overflowed                */
    CT_ERR_NUMERIC,  /* NaN or infinity where a finite number is required        */
    CT_ERR_STATE     /* call made in the wrong order (e.g. forward before prepare) */
} ct_status;

/* Records a formatted message for this thread and returns `code`, so callers
 * write `return ct_error(CT_ERR_IO, "%s: cannot open", path);`. The message holds
 * two full paths and a reason (2 * PATH_MAX + 1 KiB); a longer one is cut in the
 * middle, so its end (the reason) survives. ct_errmsg() may be an argument:
 * `ct_error(st, "%s: %s", path, ct_errmsg())` wraps the previous message. */
ct_status ct_error(ct_status code, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;
/* Last message recorded on this thread ("" when none). Valid until the next error. */
const char *ct_errmsg(void);
void ct_clear_error(void);
const char *ct_status_name(ct_status s);

/* ---- memory ------------------------------------------------------------- */
/* 64-byte aligned, zero-filled allocation; NULL (with an error set) on failure
 * or when n == 0. Free with ct_free. */
void *ct_alloc(size_t n);
void ct_free(void *p);
/* Overflow-checked size arithmetic: return 0 and set *out on success, -1 on overflow. */
int ct_size_mul(size_t a, size_t b, size_t *out);
int ct_size_add(size_t a, size_t b, size_t *out);

/* Bump allocator for activations and scratch: sized once per batch shape, reset
 * between uses, never grown inside a step. Every block is 64-byte aligned. */
typedef struct {
    char *base;
    size_t cap;   /* bytes */
    size_t used;  /* bytes */
} ct_arena;

ct_status ct_arena_init(ct_arena *a, size_t cap_bytes);
/* Returns NULL if the arena is exhausted: a sizing bug, reported via ct_errmsg. */
float *ct_arena_floats(ct_arena *a, size_t n);
void ct_arena_reset(ct_arena *a);
void ct_arena_free(ct_arena *a);
/* Bytes that ct_arena_floats(n) consumes (n floats rounded up to 64 bytes). */
size_t ct_arena_need(size_t n_floats);

/* ---- named tensors in a flat buffer ------------------------------------ */
/* A model's parameters live in one contiguous float buffer, its gradients in a
 * second with the same layout; this table row locates one tensor in both. The
 * same table drives initialisation, checkpoints, the optimizer's per-tensor rules
 * and the PyTorch name mapping. */
#define CT_MAX_NAME 96
#define CT_MAX_DIMS 4
enum {
    CT_TENSOR_NO_DECAY = 1  /* biases and BatchNorm affine: no weight decay, no LARS adaptation */
};
typedef struct {
    char name[CT_MAX_NAME];  /* PyTorch-style, e.g. "encoder.layer1.0.conv1.weight" */
    int ndim;
    int64_t shape[CT_MAX_DIMS];
    size_t offset;           /* in floats from the start of the buffer */
    size_t numel;
    int flags;               /* CT_TENSOR_* */
} ct_tensor_info;

/* ---- GEMM ---------------------------------------------------------------- */
/* The one matrix-product entry point, row-major:
 *   C[M,N] = alpha * op(A)[M,K] * op(B)[K,N] + beta * C
 * op(A) = A^T when transA (A stored K x M, lda >= M), else A (M x K, lda >= K).
 * Routed to OpenBLAS cblas_sgemm (its plain-loop reference for tests is in
 * src/core/internal.h). */
void ct_gemm(int transA, int transB, int64_t M, int64_t N, int64_t K, float alpha,
             const float *A, int64_t lda, const float *B, int64_t ldb, float beta,
             float *C, int64_t ldc);

/* ---- RNG ------------------------------------------------------------------ */
/* Counter-based generator: the stream is fully determined by a 64-bit key and a
 * counter, so any work item derives its randomness from its own coordinates,
 * e.g. key = ct_rng_key(seed, epoch, index, view), independent of threads. */
typedef struct {
    uint64_t key;
    uint64_t ctr;
} ct_rng;

uint64_t ct_mix64(uint64_t x);                          /* SplitMix64 finaliser */
uint64_t ct_rng_key(uint64_t seed, uint64_t a, uint64_t b, uint64_t c);
ct_rng ct_rng_make(uint64_t key);
uint64_t ct_rng_u64(ct_rng *r);
float ct_rng_uniform(ct_rng *r);                        /* [0, 1) */
float ct_rng_normal(ct_rng *r);                         /* N(0, 1), Box-Muller */
uint64_t ct_rng_below(ct_rng *r, uint64_t n);           /* uniform in [0, n), n > 0 */

/* 32-bit FNV-1a of len bytes (offset basis 2166136261, prime 16777619): the one hash
 * behind the fixed data splits (debian-descriptions' test packages, held-out emoji). */
uint32_t ct_fnv1a32(const void *data, size_t len);

/* ---- threads -------------------------------------------------------------- */
/* Sets the number of OpenMP threads for our kernels. OpenBLAS is pinned to one
 * thread per caller: all parallelism comes from our own OpenMP loops, so the two
 * pools never oversubscribe the cores. n <= 0 means "all cores". */
void ct_set_threads(int n);
int ct_get_threads(void);

CT_END_API
#ifdef __cplusplus
}
#endif
#endif
