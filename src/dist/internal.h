/* internal.h: what the tests reach inside src/dist; not part of the public API. */
#ifndef CONTRAST_DIST_INTERNAL_H
#define CONTRAST_DIST_INTERNAL_H
#include <stddef.h>

/* Elements per MPI call of the chunked collectives (default 2^30, below INT_MAX, as MPI
 * counts are int; 0 restores it). Tests set a few elements so that buffers of a few
 * dozen values cross the chunk boundaries that real ones cross only past 4 GiB. */
void ct_dist__set_chunk(size_t n);

#endif
