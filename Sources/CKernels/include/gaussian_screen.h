#ifndef CODEBOOK_GAUSSIAN_SCREEN_H
#define CODEBOOK_GAUSSIAN_SCREEN_H

#include <stdint.h>

/// The float32 screen of diagonal-GMM log-densities, fused into one pass (x86-64 with AVX-512F):
///
///     ℓ̃_ic = offsets[c] + Σ_j x_ij·w_cj + Σ_j x_ij²·h_cj,   w = μ/σ², h = −½/σ²,
///
/// each a chain of 2·d float32 fused multiply-adds started from the offset, the first d in
/// increasing j over x·w, then the d over x²·h (x² rounded to float32). Components are packed
/// in panels of `CB_GMM_SCREEN_PANEL`, like `cb_screen_nearest`'s centres.
#define CB_GMM_SCREEN_PANEL 32

/// Whether this CPU runs `cb_gmm_screen` (x86-64 with AVX-512F).
int cb_gmm_screen_supported(void);

/// Floats of the packed parameters of k components of dimension d, and of the packed offsets;
/// the latter is also the row stride `cb_gmm_screen` writes its values with.
long cb_gmm_screen_packed_length(long k, long d);
long cb_gmm_screen_offsets_length(long k);

/// Packs w and h (k×d, row-major) and the offsets (k) for `cb_gmm_screen`; padding components
/// get w = h = 0 and offset −∞.
void cb_gmm_screen_pack(const float *weighted_means, const float *half_precisions, const float *offsets,
                        long k, long d, float *packed, float *packed_offsets);

/// ℓ̃ of rows i < m (row i at rows + i·stride) for every packed component, into
/// values[i·ldv + c] with ldv = `cb_gmm_screen_offsets_length(k)` (padding gets −∞), and per
/// row the largest value that is not NaN into best[i] and Σ_j x_ij² (the float32 squares,
/// summed in float32 in any order) into norms[i]. `squares` holds m·d floats of scratch.
void cb_gmm_screen(const float *rows, long stride, long m, long d, const float *packed, const float *packed_offsets,
                   long k, float *squares, float *values, float *best, float *norms);

/// The candidates of n rows of screened values (row i's k values at values + i·ldv), given
/// each row's best value and ‖x‖² (best[i], norms[i]): with
/// bound = scale·(‖x‖·terms[0] + ½‖x‖²·terms[1] + terms[2]) in float64, row i's are the c < k
/// whose value is not below best − cutoff − 2·bound, rounded to float32 (NaN values are kept),
/// written in increasing order to selected[starts[i] ..< starts[i + 1]] (starts[0] is the
/// caller's; `selected` has room for starts[0] + n·k). Returns starts[n], or −1 − i if row i
/// is the first whose ‖x‖² is not finite.
long cb_gmm_candidates(const float *values, long ldv, long n, long k, const float *best, const float *norms, double scale,
                       const double terms[3], double cutoff, int32_t *selected, long *starts);

#endif
