/* loader.c: batches of augmented views, prepared by background pthreads.
 *
 * Batch k of an epoch always lands in queue slot k % nslots, and a worker may start
 * batch k only once the consumer has released batch k - nslots, so the queue is
 * bounded and batches come out in order. What a batch holds depends only on (seed,
 * epoch, k): the permutation is drawn from ct_rng_key(seed, epoch, n, SHUFFLE) and each
 * view from ct_rng_key(seed, epoch, index, view), so the thread count never matters. */
#include "data_internal.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define SHUFFLE_STREAM 0x53485546u /* "SHUF": a view number no sample uses */

enum { SLOT_FREE, SLOT_FILLING, SLOT_READY, SLOT_HELD };

typedef struct {
    ct_batch b;
    int state;
} slot;

struct ct_loader_state {
    const ct_dataset *ds;
    ct_augment aug, local; /* local: the local crops' pipeline (nlocal > 0) */
    int nlocal;
    int64_t batch, n_batches;
    int views;
    uint64_t seed;
    int64_t epoch, *perm; /* perm: (n) this epoch's order */
    int drop_last, nthreads, nslots, started;
    int shard_rank, shard_size; /* this process takes slice shard_rank of shard_size of every batch */
    size_t scratch_n;
    float *scratch0;      /* scratch for threads == 0 */
    slot *slots;
    pthread_t *threads;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int64_t next_fill, next_take, busy;
    int held, shutdown;
};

static void fill_batch(struct ct_loader_state *s, ct_batch *b, int64_t k, float *scratch) {
    const ct_dataset *ds = s->ds;
    int64_t n0 = k * s->batch, n = ds->n - n0 < s->batch ? ds->n - n0 : s->batch;
    if (s->shard_size > 1) { /* every batch is full (drop_last), so the slices are equal */
        n = s->batch / s->shard_size;
        n0 += s->shard_rank * n;
    }
    size_t per = (size_t)b->c * b->h * b->w;
    b->n = n;
    b->batch_no = k;
    for (int64_t i = 0; i < n; i++) {
        int64_t idx = s->perm[n0 + i];
        b->index[i] = idx;
        b->labels[i] = ds->labels[idx];
        for (int v = 0; v < s->views; v++)
            ct_augment_view(b->x + ((size_t)v * n + i) * per, scratch, &s->aug, ds, idx,
                            ct_rng_key(s->seed, (uint64_t)s->epoch, (uint64_t)idx, (uint64_t)v));
        size_t lper = (size_t)b->c * b->lh * b->lw;
        for (int j = 0; j < s->nlocal; j++)
            ct_augment_view(b->xl + ((size_t)j * n + i) * lper, scratch, &s->local, ds, idx,
                            ct_rng_key(s->seed, (uint64_t)s->epoch, (uint64_t)idx, (uint64_t)(s->views + j)));
    }
}

static void *worker(void *arg) {
    struct ct_loader_state *s = arg;
    float *scratch = NULL; /* sized when work arrives: local crops may need more (set_local) */
    size_t have = 0;
    pthread_mutex_lock(&s->mu);
    while (!s->shutdown) {
        int64_t k = s->next_fill;
        if (!s->started || k >= s->n_batches || s->slots[k % s->nslots].state != SLOT_FREE) {
            pthread_cond_wait(&s->cv, &s->mu);
            continue;
        }
        if (have < s->scratch_n) {
            free(scratch);
            have = s->scratch_n;
            if (!(scratch = malloc(have * sizeof(float)))) break; /* checked: NULL ends the worker */
        }
        slot *sl = &s->slots[k % s->nslots];
        sl->state = SLOT_FILLING;
        s->next_fill++;
        s->busy++;
        pthread_mutex_unlock(&s->mu);
        fill_batch(s, &sl->b, k, scratch);
        pthread_mutex_lock(&s->mu);
        sl->state = SLOT_READY;
        s->busy--;
        pthread_cond_broadcast(&s->cv);
    }
    pthread_mutex_unlock(&s->mu);
    free(scratch);
    return NULL;
}

static void free_state(struct ct_loader_state *s) {
    if (!s) return;
    for (int i = 0; s->slots && i < s->nslots; i++) {
        ct_free(s->slots[i].b.x);
        ct_free(s->slots[i].b.xl);
        ct_free(s->slots[i].b.labels);
        ct_free(s->slots[i].b.index);
    }
    free(s->slots);
    free(s->threads);
    ct_free(s->perm);
    ct_free(s->scratch0);
    free(s);
}

ct_status ct_loader_init(ct_loader *L, const ct_dataset *ds, const ct_augment *aug, int64_t batch, int views,
                         int drop_last, uint64_t seed, int threads) {
    memset(L, 0, sizeof *L);
    ct_status st = ct_augment_check(aug, ds);
    if (st) return st;
    if (batch < 1) return ct_error(CT_ERR_ARG, "loader: batch size %lld < 1", (long long)batch);
    if (views != 1 && views != 2) return ct_error(CT_ERR_ARG, "loader: views must be 1 or 2, not %d", views);
    if (threads < 0 || threads > 64) return ct_error(CT_ERR_ARG, "loader: threads must be 0..64, not %d", threads);
    if (batch > ds->n) batch = ds->n;
    int64_t nb = drop_last ? ds->n / batch : (ds->n + batch - 1) / batch;
    if (nb < 1) return ct_error(CT_ERR_ARG, "loader: no complete batch of %lld in %lld samples", (long long)batch,
                                (long long)ds->n);
    struct ct_loader_state *s = calloc(1, sizeof *s);
    if (!s) return ct_error(CT_ERR_NOMEM, "loader: out of memory");
    s->ds = ds;
    s->aug = *aug;
    s->seed = seed;
    s->drop_last = drop_last;
    s->nthreads = threads;
    s->nslots = threads == 0 ? 1 : threads + 2; /* room to run ahead by a couple of batches */
    s->scratch_n = ct_augment_scratch_floats(aug, ds);
    s->slots = calloc((size_t)s->nslots, sizeof *s->slots);
    s->perm = ct_alloc((size_t)ds->n * sizeof(int64_t));
    int oh = aug->out_h > 0 ? aug->out_h : ds->h, ow = aug->out_w > 0 ? aug->out_w : ds->w;
    size_t xn;
    if (ct_size_mul((size_t)views * batch * ds->c, (size_t)oh * ow * sizeof(float), &xn)) {
        free_state(s);
        return ct_error(CT_ERR_NOMEM, "loader: batch size overflows");
    }
    if (!s->slots || !s->perm) { free_state(s); return ct_error(CT_ERR_NOMEM, "loader: out of memory"); }
    for (int i = 0; i < s->nslots; i++) {
        ct_batch *b = &s->slots[i].b;
        b->views = views;
        b->c = ds->c; b->h = oh; b->w = ow;
        b->x = ct_alloc(xn);
        b->labels = ct_alloc((size_t)batch * sizeof(int32_t));
        b->index = ct_alloc((size_t)batch * sizeof(int64_t));
        if (!b->x || !b->labels || !b->index) { free_state(s); return CT_ERR_NOMEM; }
    }
    if (threads == 0 && !(s->scratch0 = ct_alloc(s->scratch_n * sizeof(float)))) {
        free_state(s);
        return CT_ERR_NOMEM;
    }
    s->shard_size = 1;
    L->batch = s->batch = batch;
    L->n_batches = s->n_batches = nb;
    L->views = s->views = views;
    L->s = s;
    if (threads > 0) {
        s->threads = calloc((size_t)threads, sizeof *s->threads);
        if (!s->threads || pthread_mutex_init(&s->mu, NULL) || pthread_cond_init(&s->cv, NULL)) {
            free_state(s);
            memset(L, 0, sizeof *L);
            return ct_error(CT_ERR_NOMEM, "loader: cannot set up threads");
        }
        for (int i = 0; i < threads; i++) {
            if (pthread_create(&s->threads[i], NULL, worker, s)) {
                s->nthreads = i; /* stop those already running */
                ct_loader_free(L);
                return ct_error(CT_ERR_NOMEM, "loader: cannot start thread %d", i);
            }
        }
    }
    return CT_OK;
}

ct_status ct_loader_set_local(ct_loader *L, const ct_augment *local, int nlocal) {
    struct ct_loader_state *s = L->s;
    if (!s || s->started || s->nlocal) return ct_error(CT_ERR_STATE, "loader: set local crops once, before the first epoch");
    if (s->views != 2) return ct_error(CT_ERR_ARG, "loader: local crops need two global views, not %d", s->views);
    if (nlocal < 1 || nlocal > 64) return ct_error(CT_ERR_ARG, "loader: local crops must be 1..64, not %d", nlocal);
    ct_status st = ct_augment_check(local, s->ds);
    if (st) return st;
    const ct_dataset *ds = s->ds;
    int lh = local->out_h > 0 ? local->out_h : ds->h, lw = local->out_w > 0 ? local->out_w : ds->w;
    size_t xn, need = ct_augment_scratch_floats(local, ds);
    if (ct_size_mul((size_t)nlocal * s->batch * ds->c, (size_t)lh * lw * sizeof(float), &xn))
        return ct_error(CT_ERR_NOMEM, "loader: local crop batch size overflows");
    if (s->nthreads) pthread_mutex_lock(&s->mu); /* workers read scratch_n as they take a batch */
    if (need > s->scratch_n) {
        s->scratch_n = need;
        if (s->scratch0) {
            ct_free(s->scratch0);
            if (!(s->scratch0 = ct_alloc(need * sizeof(float)))) st = CT_ERR_NOMEM;
        }
    }
    for (int i = 0; i < s->nslots && !st; i++) {
        ct_batch *b = &s->slots[i].b;
        ct_free(b->xl); /* left by an earlier attempt that ran out of memory */
        if (!(b->xl = ct_alloc(xn))) st = CT_ERR_NOMEM;
        b->nlocal = nlocal;
        b->lh = lh;
        b->lw = lw;
    }
    if (!st) {
        s->local = *local;
        s->nlocal = nlocal;
    }
    if (s->nthreads) pthread_mutex_unlock(&s->mu);
    return st ? ct_error(st, "loader: out of memory for local crops") : CT_OK;
}

ct_status ct_loader_start_epoch(ct_loader *L, int64_t epoch) {
    struct ct_loader_state *s = L->s;
    if (!s) return ct_error(CT_ERR_STATE, "loader: not initialised");
    if (s->nthreads) {
        pthread_mutex_lock(&s->mu);
        s->started = 0; /* workers take nothing new; wait for those mid-batch */
        while (s->busy > 0) pthread_cond_wait(&s->cv, &s->mu);
    }
    const int64_t n = s->ds->n;
    for (int64_t i = 0; i < n; i++) s->perm[i] = i;
    ct_rng r = ct_rng_make(ct_rng_key(s->seed, (uint64_t)epoch, (uint64_t)n, SHUFFLE_STREAM));
    for (int64_t i = n - 1; i > 0; i--) {
        int64_t j = (int64_t)ct_rng_below(&r, (uint64_t)i + 1), t = s->perm[i];
        s->perm[i] = s->perm[j];
        s->perm[j] = t;
    }
    s->epoch = epoch;
    s->next_fill = s->next_take = 0;
    for (int i = 0; i < s->nslots; i++) s->slots[i].state = SLOT_FREE;
    s->started = 1;
    if (s->nthreads) {
        pthread_cond_broadcast(&s->cv);
        pthread_mutex_unlock(&s->mu);
    }
    return CT_OK;
}

ct_status ct_loader_shard(ct_loader *L, int rank, int size) {
    struct ct_loader_state *s = L->s;
    if (!s || s->started || s->next_take != 0)
        return ct_error(CT_ERR_STATE, "loader: shard before the first epoch starts");
    if (size < 1 || rank < 0 || rank >= size || s->batch % size != 0 || !s->drop_last)
        return ct_error(CT_ERR_ARG, "loader: cannot split batches of %lld into %d slices (needs drop_last and a multiple)",
                        (long long)s->batch, size);
    s->shard_rank = rank;
    s->shard_size = size;
    return CT_OK;
}

ct_status ct_loader_next(ct_loader *L, ct_batch **out) {
    struct ct_loader_state *s = L->s;
    *out = NULL;
    if (!s || !s->started) return ct_error(CT_ERR_STATE, "loader: call ct_loader_start_epoch first");
    if (s->nthreads == 0) {
        if (s->next_take >= L->n_batches) return CT_OK;
        fill_batch(s, &s->slots[0].b, s->next_take++, s->scratch0);
        *out = &s->slots[0].b;
        return CT_OK;
    }
    pthread_mutex_lock(&s->mu);
    if (s->next_take > 0) { /* release the batch handed out last time */
        slot *prev = &s->slots[(s->next_take - 1) % s->nslots];
        if (prev->state == SLOT_HELD) prev->state = SLOT_FREE;
        pthread_cond_broadcast(&s->cv);
    }
    if (s->next_take < L->n_batches) {
        slot *sl = &s->slots[s->next_take % s->nslots];
        while (sl->state != SLOT_READY) pthread_cond_wait(&s->cv, &s->mu);
        sl->state = SLOT_HELD;
        s->next_take++;
        *out = &sl->b;
    }
    pthread_mutex_unlock(&s->mu);
    return CT_OK;
}

void ct_loader_free(ct_loader *L) {
    if (!L || !L->s) return;
    struct ct_loader_state *s = L->s;
    if (s->threads) {
        pthread_mutex_lock(&s->mu);
        s->shutdown = 1;
        pthread_cond_broadcast(&s->cv);
        pthread_mutex_unlock(&s->mu);
        for (int i = 0; i < s->nthreads; i++) pthread_join(s->threads[i], NULL);
        pthread_mutex_destroy(&s->mu);
        pthread_cond_destroy(&s->cv);
    }
    free_state(s);
    memset(L, 0, sizeof *L);
}

ct_status ct_augment_throughput(const ct_dataset *ds, const ct_augment *aug, int64_t n_images, int threads,
                                double *views_per_s) {
    *views_per_s = 0;
    int64_t batch = 256;
    if (n_images > ds->n) n_images = ds->n;
    if (n_images < batch) batch = n_images > 0 ? n_images : 1;
    ct_loader L;
    ct_status st = ct_loader_init(&L, ds, aug, batch, 2, 1, 1234, threads);
    if (st) return st;
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    int64_t views = 0;
    st = ct_loader_start_epoch(&L, 0);
    ct_batch *b;
    while (!st && views < 2 * n_images && (st = ct_loader_next(&L, &b)) == CT_OK && b) views += 2 * b->n;
    clock_gettime(CLOCK_MONOTONIC, &t1);
    ct_loader_free(&L);
    double dt = (double)(t1.tv_sec - t0.tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0.tv_nsec);
    if (!st && dt > 0) *views_per_s = (double)views / dt;
    return st;
}
