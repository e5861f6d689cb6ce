#ifndef CODEBOOK_ASSIGNED_SUMS_H
#define CODEBOOK_ASSIGNED_SUMS_H

#include <stdint.h>

/// The k-means statistics of m rows (row i at rows + i·stride, d floats) assigned to
/// clusters `assignments[i]`: for each row in order, sums[c·d + j] += x_j and
/// norm_sums[c] += Σ x_j², all in float64, and counts[c] += 1.
///
/// The arithmetic is fixed, whichever instructions run it: each sum element gets one
/// rounded addition per row, and Σ x_j² is taken in 8 lanes (lane l holds the j ≡ l mod 8
/// of the first d − d mod 8 values, x_j² rounded then added), reduced as
/// ((l0 + l4) + (l2 + l6)) + ((l1 + l5) + (l3 + l7)), then the remaining values added in
/// order. So every CPU gives bit-identical statistics.
void cb_accumulate_assigned(const float *rows, long stride, long m, long d, const int32_t *assignments,
                            double *sums, double *norm_sums, long *counts);

/// `cb_accumulate_assigned` in portable C, whatever the CPU (what CPUs without AVX-512 run).
void cb_accumulate_assigned_portable(const float *rows, long stride, long m, long d, const int32_t *assignments,
                                     double *sums, double *norm_sums, long *counts);

#endif
