/* internal.h: helpers shared by the files of src/nn (not part of the API). */
#ifndef CT_NN_INTERNAL_H
#define CT_NN_INTERNAL_H

#include <stdint.h>

/* The maximum of the 2x2 window (a b / c d) whose top-left element has index i in
 * a plane of width W, and that element's index: scan order, the first maximum
 * wins ties. Both the max pool and the BN fused with it pick windows this way,
 * so their outputs and argmax agree bit for bit. Inline, so the callers' window
 * loops still vectorise. */
static inline float max2x2(float a, float b, float c, float d, int32_t i, int32_t W, int32_t *bi) {
    float best = a;
    int32_t k = i;
    k = b > best ? i + 1 : k;
    best = b > best ? b : best;
    k = c > best ? i + W : k;
    best = c > best ? c : best;
    k = d > best ? i + W + 1 : k;
    best = d > best ? d : best;
    *bi = k;
    return best;
}

#endif
