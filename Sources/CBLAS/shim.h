// CBLAS: OpenBLAS's C interface (sgemm for distances and log-densities) and its
// thread control, which the engine sets to 1 because it runs its own shard threads.
#include <cblas.h>
