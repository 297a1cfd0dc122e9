/* mem.c: aligned allocation, overflow-checked sizes and the activation arena. */
#include "contrast/core.h"

#include <stdlib.h>
#include <string.h>

#define CT_ALIGN 64

int ct_size_mul(size_t a, size_t b, size_t *out) {
    if (a != 0 && b > SIZE_MAX / a) return -1;
    *out = a * b;
    return 0;
}

int ct_size_add(size_t a, size_t b, size_t *out) {
    if (b > SIZE_MAX - a) return -1;
    *out = a + b;
    return 0;
}

void *ct_alloc(size_t n) {
    if (n == 0) {
        ct_error(CT_ERR_ARG, "ct_alloc: zero-size allocation");
        return NULL;
    }
    size_t rounded;
    if (ct_size_add(n, CT_ALIGN - 1, &rounded)) {
        ct_error(CT_ERR_NOMEM, "ct_alloc: size %zu overflows", n);
        return NULL;
    }
    rounded &= ~(size_t)(CT_ALIGN - 1);
    void *p = aligned_alloc(CT_ALIGN, rounded);
    if (!p) {
        ct_error(CT_ERR_NOMEM, "ct_alloc: cannot allocate %zu bytes", n);
        return NULL;
    }
    memset(p, 0, rounded);
    return p;
}

void ct_free(void *p) { free(p); }

size_t ct_arena_need(size_t n_floats) {
    return (n_floats * sizeof(float) + CT_ALIGN - 1) & ~(size_t)(CT_ALIGN - 1);
}

ct_status ct_arena_init(ct_arena *a, size_t cap_bytes) {
    a->base = NULL;
    a->cap = a->used = 0;
    if (cap_bytes == 0) return CT_OK;
    a->base = ct_alloc(cap_bytes);
    if (!a->base) return CT_ERR_NOMEM;
    a->cap = cap_bytes;
    return CT_OK;
}

float *ct_arena_floats(ct_arena *a, size_t n) {
    size_t need = ct_arena_need(n);
    if (need > a->cap - a->used) {
        ct_error(CT_ERR_STATE, "arena exhausted: need %zu bytes, %zu of %zu used", need, a->used, a->cap);
        return NULL;
    }
    float *p = (float *)(a->base + a->used);
    a->used += need;
    return p;
}

void ct_arena_reset(ct_arena *a) { a->used = 0; }

void ct_arena_free(ct_arena *a) {
    ct_free(a->base);
    a->base = NULL;
    a->cap = a->used = 0;
}
