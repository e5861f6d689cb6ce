// LAPACKE: LAPACK's C interface (dsyevr, the eigen-decomposition of PCA), on Debian backed by
// OpenBLAS's LAPACK through the liblapack.so.3 alternative.
#include <lapacke.h>
