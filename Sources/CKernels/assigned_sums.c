#include "assigned_sums.h"
#include "lane_reduction.h"

/// One row, portable C in the documented order.
static double accumulate_row(const float *x, long d, double *sum) {
    double lanes[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    long j = 0;
    for (; j + 8 <= d; j += 8)
        for (int l = 0; l < 8; l++) {
            double v = (double)x[j + l];
            sum[j + l] += v;
            double square = v * v;
            lanes[l] += square;
        }
    double norm = cb_reduce_lanes(lanes);
    for (; j < d; j++) {
        double v = (double)x[j];
        sum[j] += v;
        double square = v * v;
        norm += square;
    }
    return norm;
}

void cb_accumulate_assigned_portable(const float *rows, long stride, long m, long d, const int32_t *assignments,
                                double *sums, double *norm_sums, long *counts) {
    for (long i = 0; i < m; i++) {
        long c = assignments[i];
        norm_sums[c] += accumulate_row(rows + i * stride, d, sums + c * d);
        counts[c] += 1;
    }
}

#if defined(__x86_64__)
#include <immintrin.h>

/// The same arithmetic, 8 lanes of float64 per instruction.
__attribute__((target("avx512f")))
static void accumulate_avx512(const float *rows, long stride, long m, long d, const int32_t *assignments,
                              double *sums, double *norm_sums, long *counts) {
    for (long i = 0; i < m; i++) {
        const float *x = rows + i * stride;
        long c = assignments[i];
        double *sum = sums + c * d;
        __m512d lanes = _mm512_setzero_pd();
        long j = 0;
        for (; j + 8 <= d; j += 8) {
            __m512d v = _mm512_cvtps_pd(_mm256_loadu_ps(x + j));
            _mm512_storeu_pd(sum + j, _mm512_add_pd(_mm512_loadu_pd(sum + j), v));
            lanes = _mm512_add_pd(lanes, _mm512_mul_pd(v, v));
        }
        double norm = cb_reduce_lanes_avx512(lanes);
        for (; j < d; j++) {
            double v = (double)x[j];
            sum[j] += v;
            double square = v * v;
            norm += square;
        }
        norm_sums[c] += norm;
        counts[c] += 1;
    }
}

void cb_accumulate_assigned(const float *rows, long stride, long m, long d, const int32_t *assignments,
                            double *sums, double *norm_sums, long *counts) {
    (__builtin_cpu_supports("avx512f") ? accumulate_avx512 : cb_accumulate_assigned_portable)(rows, stride, m, d, assignments, sums, norm_sums, counts);
}

#else

void cb_accumulate_assigned(const float *rows, long stride, long m, long d, const int32_t *assignments,
                            double *sums, double *norm_sums, long *counts) {
    cb_accumulate_assigned_portable(rows, stride, m, d, assignments, sums, norm_sums, counts);
}

#endif
