#ifndef CODEBOOK_GAUSSIAN_TERMS_H
#define CODEBOOK_GAUSSIAN_TERMS_H

#include <stdint.h>

/// Float64 kernels of the diagonal-GMM posteriors and their statistics, over a block of
/// rows (row i at rows + i·stride, d floats) and a list of (row, component) terms: the
/// terms of row i are t = term_starts[i] ..< term_starts[i + 1], of component components[t].
///
/// Both kernels take the terms grouped by component (each component's rows in increasing
/// order, see `cb_gmm_group_terms`), so a component's float64 parameters or sums stay in L1
/// while its rows go by. Each result is still computed term by term in the order below, so
/// grouping changes no bit of it.
///
/// The arithmetic is fixed, whichever instructions run it (AVX-512, AVX2 + FMA, or portable
/// C where fma() is the exactly rounded fused multiply-add), so every CPU gives
/// bit-identical results. "8 lanes" means: lane l takes the j ≡ l (mod 8) of the first
/// d − d mod 8 values, the lanes are reduced as ((l0 + l4) + (l2 + l6)) + ((l1 + l5) + (l3 + l7)),
/// and the remaining values are then added in order.

/// The number of longs of scratch `cb_gmm_group_terms` needs for `terms` terms and k components.
long cb_gmm_group_scratch_length(long terms, long k);

/// Groups the terms of n rows by component: fills `scratch` (see
/// `cb_gmm_group_scratch_length`) with the order the kernels below take them in.
void cb_gmm_group_terms(long n, const long *term_starts, const int32_t *components, long k, long *scratch);

/// The exact log-density terms: for every term t of row i and component c = components[t],
/// out[t] = normalizers[c] − ½·Σ_j (x_ij − μ_cj)²·p_cj, μ and p (precisions) being K×d
/// float64 row-major. The sum runs in 8 lanes, each term as r = (double)x_ij − μ_cj,
/// t = r·p_cj (rounded), lane = fma(t, r, lane). `scratch` from `cb_gmm_group_terms`.
void cb_gmm_log_densities(const float *rows, long stride, long n, long d, const long *term_starts, long k, const long *scratch,
                          const double *means, const double *precisions, const double *normalizers, double *out);

/// Adds the weighted moments of the terms: for every term t of row i, with c = components[t]
/// and q = weights[t], taken per component in row order: mass[c] += q and, for every j,
/// first[c·d + j] = fma(q, x_ij, first[c·d + j]), second[c·d + j] = fma(q, x_ij², second[c·d + j])
/// (x_ij² is exact in float64). `scratch` from `cb_gmm_group_terms`.
void cb_gmm_accumulate(const float *rows, long stride, long n, long d, const long *term_starts,
                       const double *weights, long k, const long *scratch,
                       double *mass, double *first, double *second);

/// The two kernels in portable C, whatever the CPU (for tests).
void cb_gmm_log_densities_portable(const float *rows, long stride, long n, long d, const long *term_starts,
                                   long k, const long *scratch,
                                   const double *means, const double *precisions, const double *normalizers,
                                   double *out);
void cb_gmm_accumulate_portable(const float *rows, long stride, long n, long d, const long *term_starts,
                                const double *weights, long k, const long *scratch,
                                double *mass, double *first, double *second);

#endif
