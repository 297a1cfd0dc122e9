/* contrast/dist.h: data-parallel training over Open MPI, and its single-process
 * stand-in.
 *
 * Built with `make MPI=1` (CT_MPI defined, linked with libmpi), these wrap MPI
 * collectives; built without, every call acts as a world of one process, so the
 * trainer has one code path. The trainer uses three collectives: an all-reduce of
 * the flat gradient buffer (one call per step), an all-gather of the embeddings
 * (global negatives), and all-reduces of BatchNorm statistics (--sync-bn). */
#ifndef CONTRAST_DIST_H
#define CONTRAST_DIST_H
#include "contrast/core.h"

#ifdef __cplusplus
extern "C" {
#endif
CT_BEGIN_API

/* Starts MPI when built with it (safe to call when not launched by mpirun: a world
 * of one). Idempotent. */
ct_status ct_dist_init(int *argc, char ***argv);
void ct_dist_finalize(void);
int ct_dist_rank(void);
int ct_dist_size(void);
/* 1 when built with MPI support. */
int ct_dist_available(void);

/* In-place sums over all processes. Buffers of any size: MPI's int counts are met by
 * calls of at most 2^30 elements. Like every collective here, these first return a
 * pending SyncBN failure (see ct_dist_reduce_cb) without communicating. */
ct_status ct_dist_allreduce_f32(float *buf, size_t n);
ct_status ct_dist_allreduce_f64(double *buf, size_t n);
/* out: (size * n) <- every process's in: (n), in rank order. */
ct_status ct_dist_allgather_f32(float *out, const float *in, size_t n);
/* Fails on every process (CT_ERR_ARG naming `what`) unless all hold the same bytes. */
ct_status ct_dist_check_same(const char *what, const void *bytes, size_t n);
/* Ends the whole job (all processes) after a fatal error on one of them. */
void ct_dist_abort(int code);

/* A reduction callback of the shape BatchNorm's synchronised statistics take
 * (ct_reduce_fn, which returns nothing): an in-place ct_dist_allreduce_f64, ctx unused.
 * Its failure is not lost: the first one is kept as pending, with its message, and
 * every later ct_dist_allreduce_f32/_f64, ct_dist_allgather_f32 and ct_dist_check_same
 * returns it (on this process, without communicating) until ct_dist_finalize. The
 * trainer all-reduces the gradients after every backward, so the step whose BatchNorm
 * statistics were not reduced fails there, naming the reason. */
void ct_dist_reduce_cb(double *buf, size_t n, void *ctx);
/* The pending SyncBN failure, with its message set (ct_errmsg); CT_OK when none. */
ct_status ct_dist_pending(void);

CT_END_API
#ifdef __cplusplus
}
#endif
#endif
