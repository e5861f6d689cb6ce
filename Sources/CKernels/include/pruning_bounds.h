#ifndef CODEBOOK_PRUNING_BOUNDS_H
#define CODEBOOK_PRUNING_BOUNDS_H

#include <stdint.h>

/// The centres of a pruned k-means pass (Yinyang k-means' group filter, Ding et al. 2015).
///
/// Group g holds the centres of packed panels [g·group_panels, (g + 1)·group_panels) of
/// `cb_screen_pack`'s layout: positions 32·group_panels·g ..< min(k, 32·group_panels·(g + 1)),
/// which hold centres order[position] (the packed centres are `centres` permuted so; null
/// `order`: the identity). `centre_group[c]` is centre c's group (null: c / (32·group_panels)).
/// `drift` (k values) and `group_drift` (per group, the largest of its centres') bound how
/// far the centres moved since the rows' bounds were computed; `drift` null: the rows have
/// no bounds yet, every distance is measured.
typedef struct {
    const float *centres;        ///< k×d, row-major
    const float *packed;         ///< −2·centres, `cb_screen_pack`
    const float *packed_norms;   ///< ‖c‖², +∞ padded, `cb_screen_pack`
    long k, d, group_panels, groups;
    double bound_scale, largest_norm;  ///< the screen's error bound, as in `cb_screen_nearest`
    double slack;                      ///< relative rounding margin ε of the bounds
    const double *drift;
    const double *group_drift;
    const int32_t *order;         ///< k values: the centre at each packed position, or null
    const int32_t *centre_group;  ///< k values: each centre's group, or null
} CBPruneCentres;

/// Bytes of the scratch `cb_prune_assign` needs for m rows.
long cb_prune_scratch_bytes(const CBPruneCentres *centres, long m);

/// Exact nearest-centre assignment of m rows (row i at rows + i·stride), skipping what the
/// bounds prove cannot matter. Row i's state: assignments[i] (its centre a), upper[i] (an
/// upper bound on its distance to a), lower[G·i + g] (a lower bound on its distance to
/// group g's centres other than a), with respect to the centres before the drifts.
///
/// 1. Every lower bound becomes RD(max(0, (L − group_drift[g])·(1 − ε))) and
///    U = (upper + drift[a])·(1 + ε) (RD: float32 rounding down; NaN gives 0). If not
///    U·(1 + ε) < min L, U is tightened to √Σ(x − c_a)²·(1 + ε) (float64, 8 lanes reduced as
///    `cb_reduce_lanes`). If then U·(1 + ε) < min L, the row keeps a (skipped whole).
/// 2. Otherwise the row is measured against every group g with not U·(1 + ε) < L_g (all
///    groups without bounds): the screened values s = ‖c‖² − 2x·c of the group's centres
///    (float32 FMAs over j in order from ‖c‖², as `cb_screen_nearest`), in register tiles of
///    the group's failing rows. The candidates are a and every measured centre with
///    s ≤ RN(s_min + 2·bound) (bound as `cb_screen_nearest`'s); the row's centre is the
///    candidate with the smallest Σ(x − c)² in float64, ties to the lowest centre index
///    (whatever the packed order).
///    Every unmeasured centre is strictly farther than a (its bound), so the result is the
///    float64 argmin over all k centres.
/// 3. New bounds: upper = RU(√dist·(1 + ε)); a measured group's lower bound from its
///    smallest screened value other than the new centre's: with n = ‖x‖² (float64) and
///    e = bound_scale·(2√n·(1 + ε)·largest_norm + largest_norm²),
///    RD(√max(0, n + s − e − ε·(n + |s| + e))·(1 − ε)), +∞ for a group with no other centre;
///    an unmeasured group keeps its shrunk bound, lowered to RD(√dist(a)·(1 − ε)) if it is
///    a's group and the row left a.
///
/// m·groups must be below 2³¹. Rows whose ‖x‖² is not finite or above 1e30, or every measured row if largest_norm is
/// not below 1e15, are listed in `fallback` (*fallbacks of them; their outputs undefined):
/// the caller decides them. Returns the rows not skipped whole; adds the row × centre pairs
/// screened to *pairs. The arithmetic is fixed, whichever instructions run it: every CPU
/// gives the same bits.
long cb_prune_assign(const CBPruneCentres *centres, const float *rows, long stride, long m,
                     int32_t *assignments, float *upper, float *lower, void *scratch,
                     int32_t *fallback, long *fallbacks, long *pairs);

/// `cb_prune_assign` in portable C, whatever the CPU (what CPUs without AVX-512 run).
long cb_prune_assign_portable(const CBPruneCentres *centres, const float *rows, long stride, long m,
                              int32_t *assignments, float *upper, float *lower, void *scratch,
                              int32_t *fallback, long *fallbacks, long *pairs);

#endif
