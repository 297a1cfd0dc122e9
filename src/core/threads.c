/* threads.c: one knob for parallelism. Our kernels use OpenMP; OpenBLAS is kept
 * at one thread per call so its pool and ours never fight over the cores. */
#include "contrast/core.h"

#include <cblas.h>
#include <omp.h>

void ct_set_threads(int n) {
    if (n <= 0) n = omp_get_num_procs();
    omp_set_num_threads(n);
    openblas_set_num_threads(1);
}

int ct_get_threads(void) { return omp_get_max_threads(); }
