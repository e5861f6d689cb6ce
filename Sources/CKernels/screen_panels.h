// Shared by the nearest-centre screens (private to CKernels).
#ifndef CB_SCREEN_PANELS_H
#define CB_SCREEN_PANELS_H

#include <immintrin.h>
#include "nearest_centre_screen.h"
#include "panel_products.h"

/// Folds 16 screened values (centres `lanes`) into a row's per-lane best, second and index.
__attribute__((target("avx512f"), always_inline))
static inline void cb_screen_fold(__m512 v, __m512i lanes, __m512 *best, __m512 *second, __m512i *index) {
    __mmask16 better = _mm512_cmp_ps_mask(v, *best, _CMP_LT_OQ);
    *second = _mm512_min_ps(*second, _mm512_max_ps(v, *best));
    *best = _mm512_min_ps(*best, v);
    *index = _mm512_mask_mov_epi32(*index, better, lanes);
}

/// MR rows (x, `stride` floats apart) against packed panels [p0, p1): the screened values
/// ‖c‖² − 2x·c of each panel's 32 centres in registers, folded into each row's per-lane
/// best[r], second[r] and index[r] (lane l: the centres c ≡ l mod 16), panels in order.
#define CB_SCREEN_PANELS(MR, x, stride, d, packed, norms, p0, p1, best, second, index)                     \
    {                                                                                                     \
        const __m512i iota_ = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);   \
        for (long p_ = (p0); p_ < (p1); p_++) {                                                           \
            const float *b_ = (packed) + p_ * (d) * CB_SCREEN_PANEL;                                      \
            /* The sums start from ‖c‖², so padding (+∞) never wins. */                                  \
            __m512 n0_ = _mm512_loadu_ps((norms) + p_ * CB_SCREEN_PANEL);                                 \
            __m512 n1_ = _mm512_loadu_ps((norms) + p_ * CB_SCREEN_PANEL + 16);                            \
            __m512 low_[MR], high_[MR];                                                                   \
            _Pragma("unroll") for (int r_ = 0; r_ < (MR); r_++) { low_[r_] = n0_; high_[r_] = n1_; }      \
            CB_PANEL_PRODUCTS(MR, x, stride, b_, d, CB_SCREEN_PANEL, low_, high_)                         \
            __m512i lanes0_ = _mm512_add_epi32(iota_, _mm512_set1_epi32((int)(p_ * CB_SCREEN_PANEL)));   \
            __m512i lanes1_ = _mm512_add_epi32(lanes0_, _mm512_set1_epi32(16));                           \
            _Pragma("unroll") for (int r_ = 0; r_ < (MR); r_++) {                                         \
                cb_screen_fold(low_[r_], lanes0_, &(best)[r_], &(second)[r_], &(index)[r_]);              \
                cb_screen_fold(high_[r_], lanes1_, &(best)[r_], &(second)[r_], &(index)[r_]);             \
            }                                                                                             \
        }                                                                                                 \
    }

#endif
