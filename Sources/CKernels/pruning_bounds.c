#include "pruning_bounds.h"
#include "lane_reduction.h"

#include <math.h>

#define GROUPS CB_PRUNE_GROUPS

/// RU(v): the float32 value nearest v that is not below it (NaN kept).
static float round_up(double v) {
    float f = (float)v;
    return (double)f < v ? nextafterf(f, INFINITY) : f;
}

/// RD(max(0, v)), with 0 for a NaN.
static float round_down_nonnegative(double v) {
    float f = (float)v;
    if ((double)f > v) f = nextafterf(f, -INFINITY);
    return f > 0 ? f : 0.0f;
}

/// `sum` plus the squares of the values j ..< d past the 8 lanes, in order.
static inline double squares_tail(const float *x, const float *c, long j, long d, double sum) {
    for (; j < d; j++) {
        double r = (double)x[j] - (c ? (double)c[j] : 0.0);
        double square = r * r;
        sum += square;
    }
    return sum;
}

/// Σ(x_j − c_j)² (c null: Σx_j²) in float64, 8 lanes then the rest in order.
static double squares_portable(const float *x, const float *c, long d) {
    double lanes[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    long j = 0;
    for (; j + 8 <= d; j += 8)
        for (int l = 0; l < 8; l++) {
            double r = (double)x[j + l] - (c ? (double)c[j + l] : 0.0);
            double square = r * r;
            lanes[l] += square;
        }
    return squares_tail(x, c, j, d, cb_reduce_lanes(lanes));
}

/// The shrunk lower bounds of one row, written back; returns their minimum.
static float shrink_portable(float *lower, const double *group_drift, double shrink) {
    float nearest = INFINITY;
    for (int g = 0; g < GROUPS; g++) {
        lower[g] = round_down_nonnegative(((double)lower[g] - group_drift[g]) * shrink);
        if (lower[g] < nearest) nearest = lower[g];
    }
    return nearest;
}

/// One row's lower bounds from its screened values (see `cb_prune_lower_bounds`).
static void lower_portable(const float *screened, double norm, double error, double slack, float *lower) {
    for (int g = 0; g < GROUPS; g++) {
        double s = (double)screened[g];
        if (s == INFINITY) {
            lower[g] = INFINITY;
            continue;
        }
        double squared = ((norm + s) - error) - slack * ((norm + fabs(s)) + error);
        lower[g] = round_down_nonnegative(sqrt(squared > 0 ? squared : 0) * (1 - slack));
    }
}

/// The filter's loop, with the arithmetic of one instruction set (inlined into each variant).
#define FILTER_BODY(squares, shrink_row)                                                              \
    double grow = 1 + slack, shrink = 1 - slack;                                                     \
    long count = 0;                                                                                  \
    for (long i = 0; i < m; i++) {                                                                   \
        const float *x = rows + i * stride;                                                          \
        int32_t a = assignments[i];                                                                  \
        double nearest = (double)shrink_row(lower + i * GROUPS, group_drift, shrink);                \
        double bound = ((double)upper[i] + drift[a]) * grow;                                         \
        /* With no room (nearest = 0), tightening cannot help. */                                    \
        if (!(bound * grow < nearest) && nearest > 0)                                                \
            bound = sqrt(squares(x, centres + (long)a * d, d)) * grow;                               \
        if (bound * grow < nearest) {                                                                \
            out[i] = a;                                                                              \
            upper[i] = round_up(bound);                                                              \
        } else {                                                                                     \
            undecided[count++] = (int32_t)i;                                                         \
        }                                                                                            \
    }                                                                                                \
    return count;

long cb_prune_filter_portable(const float *rows, long stride, long m, long d, const float *centres,
                              const int32_t *assignments, float *upper, float *lower, const double *drift,
                              const double *group_drift, double slack, int32_t *out, int32_t *undecided) {
    FILTER_BODY(squares_portable, shrink_portable)
}

/// The screened value of each group with `excluded` left out.
static void screened_values(const CBScreenLanes *lanes, int32_t excluded, float *screened) {
    for (int g = 0; g < GROUPS; g++) screened[g] = lanes->index[g] == excluded ? lanes->second[g] : lanes->best[g];
}

/// e of `cb_prune_lower_bounds`.
static double screen_error(double norm, double bound_scale, double largest_norm, double slack) {
    return bound_scale * (2 * sqrt(norm) * (1 + slack) * largest_norm + largest_norm * largest_norm);
}

void cb_prune_lower_bounds_portable(const CBScreenLanes *lanes, int32_t excluded, const float *x, long d,
                                    double bound_scale, double largest_norm, double slack, float *lower) {
    float screened[GROUPS];
    screened_values(lanes, excluded, screened);
    double norm = squares_portable(x, 0, d);
    lower_portable(screened, norm, screen_error(norm, bound_scale, largest_norm, slack), slack, lower);
}

#if defined(__x86_64__)
#include <immintrin.h>

#define TARGET __attribute__((target("avx512f"), always_inline)) static inline

/// `squares_portable`, 8 lanes per instruction.
TARGET double squares_avx512(const float *x, const float *c, long d) {
    __m512d lanes = _mm512_setzero_pd();
    long j = 0;
    for (; j + 8 <= d; j += 8) {
        __m512d r = _mm512_cvtps_pd(_mm256_loadu_ps(x + j));
        if (c) r = _mm512_sub_pd(r, _mm512_cvtps_pd(_mm256_loadu_ps(c + j)));
        lanes = _mm512_add_pd(lanes, _mm512_mul_pd(r, r));
    }
    return squares_tail(x, c, j, d, cb_reduce_lanes_avx512(lanes));
}

/// 16 float32 values as two registers of 8 float64.
TARGET void widen(__m512 v, __m512d *low, __m512d *high) {
    *low = _mm512_cvtps_pd(_mm512_castps512_ps256(v));
    *high = _mm512_cvtps_pd(_mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(v), 1)));
}

/// RD(max(0, v)) of two registers of 8 float64 (0 for a NaN: `max` returns its second operand).
TARGET __m512 narrow_down(__m512d low, __m512d high) {
    __m256 zero = _mm256_setzero_ps();
    __m256 a = _mm256_max_ps(_mm512_cvt_roundpd_ps(low, _MM_FROUND_TO_NEG_INF | _MM_FROUND_NO_EXC), zero);
    __m256 b = _mm256_max_ps(_mm512_cvt_roundpd_ps(high, _MM_FROUND_TO_NEG_INF | _MM_FROUND_NO_EXC), zero);
    return _mm512_castpd_ps(_mm512_insertf64x4(_mm512_castpd256_pd512(_mm256_castps_pd(a)), _mm256_castps_pd(b), 1));
}

/// `shrink_portable`, 8 lanes per instruction.
TARGET float shrink_avx512(float *lower, const double *group_drift, double shrink) {
    __m512d low, high, factor = _mm512_set1_pd(shrink);
    widen(_mm512_loadu_ps(lower), &low, &high);
    low = _mm512_mul_pd(_mm512_sub_pd(low, _mm512_loadu_pd(group_drift)), factor);
    high = _mm512_mul_pd(_mm512_sub_pd(high, _mm512_loadu_pd(group_drift + 8)), factor);
    __m512 bounds = narrow_down(low, high);
    _mm512_storeu_ps(lower, bounds);
    return _mm512_reduce_min_ps(bounds);
}

__attribute__((target("avx512f")))
static long filter_avx512(const float *rows, long stride, long m, long d, const float *centres,
                          const int32_t *assignments, float *upper, float *lower, const double *drift,
                          const double *group_drift, double slack, int32_t *out, int32_t *undecided) {
    FILTER_BODY(squares_avx512, shrink_avx512)
}

/// One half (8 lanes) of `lower_portable`'s formula.
TARGET __m512d lower_half(__m512d s, __m512d norm, __m512d error, __m512d slack) {
    __m512d magnitude = _mm512_castsi512_pd(_mm512_and_si512(_mm512_castpd_si512(s), _mm512_set1_epi64(0x7fffffffffffffffLL)));
    __m512d squared = _mm512_sub_pd(_mm512_sub_pd(_mm512_add_pd(norm, s), error),
                                    _mm512_mul_pd(slack, _mm512_add_pd(_mm512_add_pd(norm, magnitude), error)));
    __m512d root = _mm512_sqrt_pd(_mm512_max_pd(squared, _mm512_setzero_pd()));
    return _mm512_mul_pd(root, _mm512_sub_pd(_mm512_set1_pd(1), slack));
}

__attribute__((target("avx512f")))
static void lower_bounds_avx512(const CBScreenLanes *lanes, int32_t excluded, const float *x, long d,
                                double bound_scale, double largest_norm, double slack, float *lower) {
    __mmask16 own = _mm512_cmpeq_epi32_mask(_mm512_loadu_si512(lanes->index), _mm512_set1_epi32(excluded));
    __m512 screened = _mm512_mask_mov_ps(_mm512_loadu_ps(lanes->best), own, _mm512_loadu_ps(lanes->second));
    double n = squares_avx512(x, 0, d);
    __m512d norm = _mm512_set1_pd(n), error = _mm512_set1_pd(screen_error(n, bound_scale, largest_norm, slack));
    __m512d margin = _mm512_set1_pd(slack), low, high;
    widen(screened, &low, &high);
    __m512 bounds = narrow_down(lower_half(low, norm, error, margin), lower_half(high, norm, error, margin));
    __mmask16 none = _mm512_cmp_ps_mask(screened, _mm512_set1_ps(INFINITY), _CMP_EQ_OQ);
    _mm512_storeu_ps(lower, _mm512_mask_mov_ps(bounds, none, _mm512_set1_ps(INFINITY)));
}

long cb_prune_filter(const float *rows, long stride, long m, long d, const float *centres,
                     const int32_t *assignments, float *upper, float *lower, const double *drift,
                     const double *group_drift, double slack, int32_t *out, int32_t *undecided) {
    return (__builtin_cpu_supports("avx512f") ? filter_avx512 : cb_prune_filter_portable)(
        rows, stride, m, d, centres, assignments, upper, lower, drift, group_drift, slack, out, undecided);
}

void cb_prune_lower_bounds(const CBScreenLanes *lanes, int32_t excluded, const float *x, long d,
                           double bound_scale, double largest_norm, double slack, float *lower) {
    (__builtin_cpu_supports("avx512f") ? lower_bounds_avx512 : cb_prune_lower_bounds_portable)(
        lanes, excluded, x, d, bound_scale, largest_norm, slack, lower);
}

#else

long cb_prune_filter(const float *rows, long stride, long m, long d, const float *centres,
                     const int32_t *assignments, float *upper, float *lower, const double *drift,
                     const double *group_drift, double slack, int32_t *out, int32_t *undecided) {
    return cb_prune_filter_portable(rows, stride, m, d, centres, assignments, upper, lower, drift, group_drift,
                                    slack, out, undecided);
}

void cb_prune_lower_bounds(const CBScreenLanes *lanes, int32_t excluded, const float *x, long d,
                           double bound_scale, double largest_norm, double slack, float *lower) {
    cb_prune_lower_bounds_portable(lanes, excluded, x, d, bound_scale, largest_norm, slack, lower);
}

#endif
