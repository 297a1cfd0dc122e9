/* rng.c: a counter-based generator (SplitMix64 over key + counter), and FNV-1a.
 *
 * Why counter-based: a sample's augmentation, a dropout mask or a shuffle must
 * depend only on its coordinates (seed, epoch, index, view), never on which thread
 * ran first, so runs are identical at any thread count. */
#include "contrast/core.h"

#include <math.h>

uint64_t ct_mix64(uint64_t x) {
    x += 0x9E3779B97F4A7C15ull;
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
    x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
    return x ^ (x >> 31);
}

uint64_t ct_rng_key(uint64_t seed, uint64_t a, uint64_t b, uint64_t c) {
    uint64_t k = ct_mix64(seed);
    k = ct_mix64(k ^ a);
    k = ct_mix64(k ^ (b * 0xD6E8FEB86659FD93ull));
    return ct_mix64(k ^ (c * 0xA0761D6478BD642Full));
}

ct_rng ct_rng_make(uint64_t key) {
    ct_rng r = {key, 0};
    return r;
}

uint64_t ct_rng_u64(ct_rng *r) {
    return ct_mix64(r->key + 0x632BE59BD9B4E019ull * ++r->ctr);
}

float ct_rng_uniform(ct_rng *r) {
    return (float)(ct_rng_u64(r) >> 40) * (1.0f / 16777216.0f);
}

float ct_rng_normal(ct_rng *r) {
    /* Box-Muller in double; u1 in (0, 1] so log() is finite. */
    double u1 = ((double)(ct_rng_u64(r) >> 11) + 1.0) * (1.0 / 9007199254740992.0);
    double u2 = (double)(ct_rng_u64(r) >> 11) * (1.0 / 9007199254740992.0);
    return (float)(sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2));
}

uint64_t ct_rng_below(ct_rng *r, uint64_t n) {
    /* Lemire's multiply-shift; bias below 2^-32 for the sizes we use. */
    return (uint64_t)(((unsigned __int128)ct_rng_u64(r) * n) >> 64);
}

uint32_t ct_fnv1a32(const void *data, size_t len) {
    const unsigned char *p = data;
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < len; i++) {
        h ^= p[i];
        h *= 16777619u;
    }
    return h;
}
