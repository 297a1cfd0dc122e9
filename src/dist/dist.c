/* dist.c: the collectives the trainer needs, over MPI when built with CT_MPI and as
 * a world of one process otherwise. */
#include "contrast/dist.h"

#include "internal.h"

#include <stdio.h>
#include <string.h>

/* SyncBN's reduction has no status to return (nn.h's ct_reduce_fn is void), so its
 * first failure is kept here, with its message, and handed to the caller of the next
 * collective (see dist.h). Process-wide, as the collectives are. */
static ct_status g_pending;
static char g_pending_msg[1024];

static ct_status pending(void) {
    if (!g_pending) return CT_OK;
    return ct_error(g_pending, "%s", g_pending_msg);
}

ct_status ct_dist_pending(void) { return pending(); }

/* Elements per MPI call: MPI counts are int. */
static size_t g_chunk = (size_t)1 << 30;

void ct_dist__set_chunk(size_t n) { g_chunk = n ? n : (size_t)1 << 30; }

/* Arguments every build checks, so a caller's mistake reads the same with or without MPI. */
static ct_status check_buf(const void *buf, size_t n, size_t elem, const char *what) {
    if (!buf && n) return ct_error(CT_ERR_ARG, "%s of %zu values from a NULL buffer", what, n);
    if (n > SIZE_MAX / elem) return ct_error(CT_ERR_ARG, "%s of %zu values overflows the byte count", what, n);
    return CT_OK;
}

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
    g_pending = CT_OK;
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

/* In-place sum of n elements of `type`, in pieces of at most g_chunk (< INT_MAX). */
static ct_status allreduce(void *buf, size_t n, size_t elem, MPI_Datatype type) {
    char *p = buf;
    for (size_t o = 0; o < n; o += g_chunk) {
        int c = (int)(n - o < g_chunk ? n - o : g_chunk);
        ct_status st = check(MPI_Allreduce(MPI_IN_PLACE, p + o * elem, c, type, MPI_SUM, MPI_COMM_WORLD), "all-reduce");
        if (st) return st;
    }
    return CT_OK;
}

ct_status ct_dist_allreduce_f32(float *buf, size_t n) {
    ct_status st = pending();
    if (!st) st = check_buf(buf, n, sizeof(float), "all-reduce");
    if (st || ct_dist_size() == 1) return st;
    return allreduce(buf, n, sizeof(float), MPI_FLOAT);
}

ct_status ct_dist_allreduce_f64(double *buf, size_t n) {
    ct_status st = pending();
    if (!st) st = check_buf(buf, n, sizeof(double), "all-reduce");
    if (st || ct_dist_size() == 1) return st;
    return allreduce(buf, n, sizeof(double), MPI_DOUBLE);
}

ct_status ct_dist_allgather_f32(float *out, const float *in, size_t n) {
    ct_status st = pending();
    if (!st) st = check_buf(in, n, sizeof(float), "all-gather");
    if (!st) st = check_buf(out, n, sizeof(float), "all-gather");
    if (st) return st;
    int P = ct_dist_size();
    if (P == 1) {
        memmove(out, in, n * sizeof(float));
        return CT_OK;
    }
    if (n > SIZE_MAX / sizeof(float) / (size_t)P)
        return ct_error(CT_ERR_ARG, "all-gather of %zu floats from %d ranks overflows the byte count", n, P);
    /* In pieces of at most g_chunk floats: piece [o, o+c) of rank r lands at out + r*n + o,
     * so the receive type is c floats resized to an extent of n floats (one rank's row). */
    for (size_t o = 0; o < n; o += g_chunk) {
        int c = (int)(n - o < g_chunk ? n - o : g_chunk);
        MPI_Datatype piece, row;
        st = check(MPI_Type_contiguous(c, MPI_FLOAT, &piece), "all-gather (type)");
        if (st) return st;
        st = check(MPI_Type_create_resized(piece, 0, (MPI_Aint)(n * sizeof(float)), &row), "all-gather (type)");
        MPI_Type_free(&piece);
        if (st) return st;
        st = check(MPI_Type_commit(&row), "all-gather (type)");
        if (!st) st = check(MPI_Allgather(in + o, c, MPI_FLOAT, out + o, 1, row, MPI_COMM_WORLD), "all-gather");
        MPI_Type_free(&row);
        if (st) return st;
    }
    return CT_OK;
}

ct_status ct_dist_check_same(const char *what, const void *bytes, size_t n) {
    ct_status pst = pending();
    if (pst) return pst;
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
void ct_dist_finalize(void) { g_pending = CT_OK; }
int ct_dist_rank(void) { return 0; }
int ct_dist_size(void) { return 1; }
int ct_dist_available(void) { return 0; }
ct_status ct_dist_allreduce_f32(float *buf, size_t n) {
    ct_status st = pending();
    return st ? st : check_buf(buf, n, sizeof(float), "all-reduce");
}
ct_status ct_dist_allreduce_f64(double *buf, size_t n) {
    ct_status st = pending();
    return st ? st : check_buf(buf, n, sizeof(double), "all-reduce");
}
ct_status ct_dist_allgather_f32(float *out, const float *in, size_t n) {
    ct_status st = pending();
    if (!st) st = check_buf(in, n, sizeof(float), "all-gather");
    if (!st) st = check_buf(out, n, sizeof(float), "all-gather");
    if (st) return st;
    memmove(out, in, n * sizeof(float));
    return CT_OK;
}
ct_status ct_dist_check_same(const char *what, const void *bytes, size_t n) {
    (void)what;
    (void)bytes;
    (void)n;
    return pending();
}
void ct_dist_abort(int code) { (void)code; }

#endif

void ct_dist_reduce_cb(double *buf, size_t n, void *ctx) {
    (void)ctx;
    if (g_pending) return; /* the first failure is the one that explains the rest */
    ct_status st = ct_dist_allreduce_f64(buf, n);
    if (!st) return;
    snprintf(g_pending_msg, sizeof g_pending_msg, "SyncBN statistics all-reduce: %s", ct_errmsg());
    g_pending = st;
}
