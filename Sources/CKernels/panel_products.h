// Shared by the fused screens (private to CKernels).
#ifndef CB_PANEL_PRODUCTS_H
#define CB_PANEL_PRODUCTS_H

#include <immintrin.h>

/// Adds, over the d steps of a packed panel `b` (32 values per step: `panel` floats apart),
/// x[r·stride + j] · b[j] to the two 16-lane accumulators low[r], high[r] of each of MR rows,
/// one fused multiply-add per step, in the order j = 0, 1, …
#define CB_PANEL_PRODUCTS(MR, x, stride, b, d, panel, low, high)                                  \
    for (long j_ = 0; j_ < (d); j_++) {                                                           \
        __m512 b0_ = _mm512_loadu_ps((b) + j_ * (panel)), b1_ = _mm512_loadu_ps((b) + j_ * (panel) + 16); \
        _Pragma("unroll") for (int r_ = 0; r_ < (MR); r_++) {                                     \
            __m512 xv_ = _mm512_set1_ps((x)[r_ * (stride) + j_]);                                 \
            (low)[r_] = _mm512_fmadd_ps(xv_, b0_, (low)[r_]);                                     \
            (high)[r_] = _mm512_fmadd_ps(xv_, b1_, (high)[r_]);                                   \
        }                                                                                         \
    }

#endif
