#ifndef CODEBOOK_PRUNING_BOUNDS_H
#define CODEBOOK_PRUNING_BOUNDS_H

#include <stdint.h>

#include "nearest_centre_screen.h"

/// Groups of centres of the pruned k-means pass: centre c is in group c mod 16, the lanes
/// of `cb_screen_nearest`.
#define CB_PRUNE_GROUPS 16

/// The bound test of a pruned k-means pass over m rows (row i at rows + i·stride, d floats),
/// whose bounds refer to earlier centres: assignments[i] is row i's centre a, upper[i] an
/// upper bound on its distance to a, lower[16i + g] a lower bound on its distance to the
/// other centres of group g. The centres have since moved by at most drift[c] (centre c)
/// and group_drift[g] (any centre of group g); `centres` are the new ones (k×d).
///
/// For each row: every lower bound becomes RD(max(0, (L − group_drift[g])·(1 − slack)))
/// (RD: float32 rounding down; a NaN gives 0), and U = (upper + drift[a])·(1 + slack); if
/// not U·(1 + slack) < min L, U is tightened to √Σ(x − c_a)²·(1 + slack) (float64, the
/// squares taken in 8 lanes as in `cb_accumulate_assigned`). If then U·(1 + slack) < min L,
/// the row keeps a: out[i] = a and upper[i] = RU(U) (float32 rounding up). Otherwise i is
/// appended to `undecided`. Returns the number of undecided rows.
///
/// The arithmetic is fixed, whichever instructions run it: every CPU gives the same bits.
long cb_prune_filter(const float *rows, long stride, long m, long d, const float *centres,
                     const int32_t *assignments, float *upper, float *lower, const double *drift,
                     const double *group_drift, double slack, int32_t *out, int32_t *undecided);

/// `cb_prune_filter` in portable C, whatever the CPU (what CPUs without AVX-512 run).
long cb_prune_filter_portable(const float *rows, long stride, long m, long d, const float *centres,
                              const int32_t *assignments, float *upper, float *lower, const double *drift,
                              const double *group_drift, double slack, int32_t *out, int32_t *undecided);

/// Lower bounds on the distances of row x (d floats) to each group's centres other than
/// centre `excluded`, from screened values s = ‖c‖² − 2x·c that are within
/// bound_scale·(2‖x‖·largest_norm + largest_norm²) of their true values (`cb_screen_nearest`):
/// in group g, s is lanes->second[g] if lanes->index[g] == excluded, else lanes->best[g].
/// With n = ‖x‖² (float64, 8 lanes as above) and e = bound_scale·(2√n·(1 + slack)·
/// largest_norm + largest_norm²): lower[g] = RD(√max(0, n + s − e − slack·(n + |s| + e))·
/// (1 − slack)), +∞ where s = +∞ (no other centre), 0 where the value is NaN.
///
/// The arithmetic is fixed, whichever instructions run it: every CPU gives the same bits.
void cb_prune_lower_bounds(const CBScreenLanes *lanes, int32_t excluded, const float *x, long d,
                           double bound_scale, double largest_norm, double slack, float *lower);

/// `cb_prune_lower_bounds` in portable C, whatever the CPU.
void cb_prune_lower_bounds_portable(const CBScreenLanes *lanes, int32_t excluded, const float *x, long d,
                                    double bound_scale, double largest_norm, double slack, float *lower);

#endif
