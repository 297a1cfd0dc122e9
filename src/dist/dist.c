/* dist.c: the collectives the trainer needs, over MPI when built with CT_MPI and as
 * a world of one process otherwise. */
#include "contrast/dist.h"

#include <string.h>

#ifdef CT_MPI
#include <mpi.h>
#include <stdlib.h>

static int g_started;

ct_status ct_dist_init(int *argc, char ***argv) {
    /* Only under a launcher: a plain `contrast train` stays a world of one without
     * starting MPI's runtime. */
    if (!getenv("OMPI_COMM_WORLD_SIZE") && !getenv("PMI_SIZE") && !getenv("PMIX_RANK")) return CT_OK;
    int inited = 0;
    MPI_Initialized(&inited);
    if (!inited && MPI_Init(argc, argv) != MPI_SUCCESS) return ct_error(CT_ERR_STATE, "MPI_Init failed");
    /* errors return codes instead of aborting silently, so messages can say what failed */
    MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
    g_started = 1;
    return CT_OK;
}

void ct_dist_finalize(void) {
    int fin = 0;
    MPI_Finalized(&fin);
    if (g_started && !fin) MPI_Finalize();
    g_started = 0;
}

int ct_dist_rank(void) {
    int r = 0;
    if (g_started) MPI_Comm_rank(MPI_COMM_WORLD, &r);
    return r;
}

int ct_dist_size(void) {
    int s = 1;
    if (g_started) MPI_Comm_size(MPI_COMM_WORLD, &s);
    return s;
}

int ct_dist_available(void) { return 1; }

static ct_status check(int rc, const char *what) {
    if (rc == MPI_SUCCESS) return CT_OK;
    char msg[MPI_MAX_ERROR_STRING];
    int len = 0;
    MPI_Error_string(rc, msg, &len);
    return ct_error(CT_ERR_STATE, "MPI %s failed on rank %d: %s", what, ct_dist_rank(), msg);
}

/* MPI counts are int: large buffers go in chunks. */
#define CHUNK ((size_t)1 << 30)

ct_status ct_dist_allreduce_f32(float *buf, size_t n) {
    if (ct_dist_size() == 1) return CT_OK;
    for (size_t o = 0; o < n; o += CHUNK) {
        int c = (int)(n - o < CHUNK ? n - o : CHUNK);
        ct_status st = check(MPI_Allreduce(MPI_IN_PLACE, buf + o, c, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD), "all-reduce");
        if (st) return st;
    }
    return CT_OK;
}

ct_status ct_dist_allreduce_f64(double *buf, size_t n) {
    if (ct_dist_size() == 1) return CT_OK;
    return check(MPI_Allreduce(MPI_IN_PLACE, buf, (int)n, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD), "all-reduce");
}

ct_status ct_dist_allgather_f32(float *out, const float *in, size_t n) {
    if (ct_dist_size() == 1) {
        memmove(out, in, n * sizeof(float));
        return CT_OK;
    }
    if (n > (size_t)1 << 30) return ct_error(CT_ERR_ARG, "all-gather of %zu floats per rank is too large", n);
    return check(MPI_Allgather(in, (int)n, MPI_FLOAT, out, (int)n, MPI_FLOAT, MPI_COMM_WORLD), "all-gather");
}

ct_status ct_dist_check_same(const char *what, const void *bytes, size_t n) {
    if (ct_dist_size() == 1) return CT_OK;
    /* FNV-1a of the bytes; min and max over ranks must agree */
    uint64_t h = 1469598103934665603ull;
    const unsigned char *p = bytes;
    for (size_t i = 0; i < n; i++) h = (h ^ p[i]) * 1099511628211ull;
    unsigned long long mine = h, lo = 0, hi = 0;
    ct_status st = check(MPI_Allreduce(&mine, &lo, 1, MPI_UNSIGNED_LONG_LONG, MPI_MIN, MPI_COMM_WORLD), "check");
    if (!st) st = check(MPI_Allreduce(&mine, &hi, 1, MPI_UNSIGNED_LONG_LONG, MPI_MAX, MPI_COMM_WORLD), "check");
    if (st) return st;
    if (lo != hi) return ct_error(CT_ERR_ARG, "ranks disagree on %s: every process must be started with the same configuration", what);
    return CT_OK;
}

void ct_dist_abort(int code) {
    if (g_started && ct_dist_size() > 1) MPI_Abort(MPI_COMM_WORLD, code);
}

#else /* a world of one */

ct_status ct_dist_init(int *argc, char ***argv) {
    (void)argc;
    (void)argv;
    return CT_OK;
}
void ct_dist_finalize(void) {}
int ct_dist_rank(void) { return 0; }
int ct_dist_size(void) { return 1; }
int ct_dist_available(void) { return 0; }
ct_status ct_dist_allreduce_f32(float *buf, size_t n) {
    (void)buf;
    (void)n;
    return CT_OK;
}
ct_status ct_dist_allreduce_f64(double *buf, size_t n) {
    (void)buf;
    (void)n;
    return CT_OK;
}
ct_status ct_dist_allgather_f32(float *out, const float *in, size_t n) {
    memmove(out, in, n * sizeof(float));
    return CT_OK;
}
ct_status ct_dist_check_same(const char *what, const void *bytes, size_t n) {
    (void)what;
    (void)bytes;
    (void)n;
    return CT_OK;
}
void ct_dist_abort(int code) { (void)code; }

#endif

void ct_dist_reduce_cb(double *buf, size_t n, void *ctx) {
    (void)ctx;
    ct_dist_allreduce_f64(buf, n);
}
