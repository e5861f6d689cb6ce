// Shared by the float64 kernels (private to CKernels).
#ifndef CB_LANE_REDUCTION_H
#define CB_LANE_REDUCTION_H

/// ((l0 + l4) + (l2 + l6)) + ((l1 + l5) + (l3 + l7)): the documented order in which every
/// float64 kernel (and `VectorMath.total`) reduces its 8 lanes.
static inline double cb_reduce_lanes(const double l[8]) {
    return ((l[0] + l[4]) + (l[2] + l[6])) + ((l[1] + l[5]) + (l[3] + l[7]));
}

#if defined(__x86_64__)
#include <immintrin.h>

/// `cb_reduce_lanes` of 8 lanes held in one register.
__attribute__((target("avx512f"), always_inline))
static inline double cb_reduce_lanes_avx512(__m512d lanes) {
    __m256d four = _mm256_add_pd(_mm512_castpd512_pd256(lanes), _mm512_extractf64x4_pd(lanes, 1));
    __m128d two = _mm_add_pd(_mm256_castpd256_pd128(four), _mm256_extractf128_pd(four, 1));
    return _mm_cvtsd_f64(two) + _mm_cvtsd_f64(_mm_unpackhi_pd(two, two));
}
#endif

#endif
