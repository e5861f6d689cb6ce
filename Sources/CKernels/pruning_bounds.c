#include "pruning_bounds.h"
#include "lane_reduction.h"
#include "nearest_centre_screen.h"

#include <math.h>
#include <stdint.h>
#include <string.h>

#define PANEL CB_SCREEN_PANEL
#define TILE CB_SCREEN_TILE_ROWS

/// The float32 value after f (f finite or −∞, not −0): one step of its bit pattern, as
/// `nextafterf(f, +∞)` without the call.
static inline float float_after(float f) {
    uint32_t bits;
    memcpy(&bits, &f, 4);
    bits = f >= 0 ? bits + 1 : bits - 1;
    memcpy(&f, &bits, 4);
    return f;
}

/// RU(v): the float32 value nearest v that is not below it (NaN kept). (float)v rounds to
/// nearest; if that fell below v (never −0 nor +∞ then), the next float32 up is RU(v).
static inline float round_up(double v) {
    float f = (float)v;
    return (double)f < v ? float_after(f) : f;
}

/// RD(max(0, v)), with 0 for a NaN. If (float)v rose above v and is positive (+∞ when v is
/// past float32's range), the float32 before it is RD(v); if it is not positive, 0 is.
static inline float round_down_nonnegative(double v) {
    float f = (float)v;
    if ((double)f > v) {
        if (!(f > 0)) return 0.0f;
        uint32_t bits;
        memcpy(&bits, &f, 4);
        bits -= 1;
        memcpy(&f, &bits, 4);
    }
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

/// `squares_portable(x, c, d)`, and `squares_portable(x, 0, d)` into *norm, in one sweep
/// over x: the same operations in the same order, so the same bits.
static double squares_and_norm_portable(const float *x, const float *c, long d, double *norm) {
    double lanes[8] = {0, 0, 0, 0, 0, 0, 0, 0}, norms[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    long j = 0;
    for (; j + 8 <= d; j += 8)
        for (int l = 0; l < 8; l++) {
            double v = (double)x[j + l], r = v - (double)c[j + l];
            double square = r * r, own = v * v;
            lanes[l] += square;
            norms[l] += own;
        }
    *norm = squares_tail(x, 0, j, d, cb_reduce_lanes(norms));
    return squares_tail(x, c, j, d, cb_reduce_lanes(lanes));
}

/// The shrunk lower bounds of one row's groups, written back; returns their minimum.
static float shrink_portable(float *lower, const double *group_drift, double shrink, long groups) {
    float nearest = INFINITY;
    for (long g = 0; g < groups; g++) {
        lower[g] = round_down_nonnegative(((double)lower[g] - group_drift[g]) * shrink);
        if (lower[g] < nearest) nearest = lower[g];
    }
    return nearest;
}

/// The screened values of the 32 centres of panel `panel` for row x, as the register tiles
/// compute them.
static void panel_values_portable(const float *x, long d, const float *packed, const float *packed_norms, long panel,
                                  float *values) {
    const float *b = packed + panel * d * PANEL;
    for (long c = 0; c < PANEL; c++) {
        float sum = packed_norms[panel * PANEL + c];
        for (long j = 0; j < d; j++) sum = fmaf(x[j], b[j * PANEL + c], sum);
        values[c] = sum;
    }
}

/// A group's smallest screened value, its centre (the lowest on ties) and the second
/// smallest (equal to the smallest on ties), for one row, in portable C.
static void group_portable(const float *x, long d, const float *packed, const float *packed_norms, long c0, long c1,
                           float *best1, float *best2, int32_t *index) {
    float best = INFINITY, second = INFINITY, values[PANEL];
    int32_t at = 0;
    for (long c = c0; c < c1; c++) {
        if (c % PANEL == 0) panel_values_portable(x, d, packed, packed_norms, c / PANEL, values);
        float v = values[c % PANEL];
        if (v < best) {
            second = best;
            best = v;
            at = (int32_t)c;
        } else if (v < second) {
            second = v;
        }
    }
    *best1 = best;
    *best2 = second;
    *index = at;
}

/// Scratch of `cb_prune_assign`, carved out of the caller's bytes.
typedef struct {
    double *exact;     // per row: float64 squared distance to its old centre
    double *norms;     // per row: ‖x‖²
    float *best1, *best2;  // per row and measured group (row i's t-th at i·groups + t)
    int32_t *index;        // the same
    int32_t *lists;        // per group: where its failing rows' results go (i·groups + t)
    long *counts;          // per group: how many
    float *gathered;       // one tile's rows side by side
    int32_t *measured;     // per row: the groups measured, ascending
    long *measured_count;  // per row: how many (0: skipped whole or left to the caller)
    float *picked;         // one row's measured groups: the screened value each bound is made from
    float *bounds;         // and the bounds made from them
} Scratch;

static long group_width(const CBPruneCentres *p) { return p->group_panels * PANEL; }

/// The centre at packed position `position`.
static inline int32_t centre_at(const CBPruneCentres *p, long position) {
    return p->order ? p->order[position] : (int32_t)position;
}

/// Centre c's group.
static inline long group_of(const CBPruneCentres *p, long c) {
    return p->centre_group ? p->centre_group[c] : c / group_width(p);
}

/// Carves `Scratch` for m rows (null base: only counts the bytes).
static long carve(const CBPruneCentres *p, long m, void *base, Scratch *s) {
    long g = p->groups, offset = 0;
    uint8_t *b = base;
#define CARVE(field, type, count)                          \
    s->field = b ? (type *)(b + offset) : 0;               \
    offset += (long)sizeof(type) * (count);                \
    offset = (offset + 63) & ~63L;
    CARVE(exact, double, m)
    CARVE(norms, double, m)
    CARVE(counts, long, g)
    CARVE(best1, float, m * g)
    CARVE(best2, float, m * g)
    CARVE(index, int32_t, m * g)
    CARVE(lists, int32_t, m * g)
    CARVE(gathered, float, TILE * p->d)
    CARVE(measured, int32_t, m * g)
    CARVE(measured_count, long, m)
    CARVE(picked, float, g)
    CARVE(bounds, float, g)
#undef CARVE
    return offset;
}

long cb_prune_scratch_bytes(const CBPruneCentres *centres, long m) {
    Scratch s;
    return carve(centres, m, 0, &s);
}

/// One row's lower bound from a screened value s (see `cb_prune_assign`).
static float screened_lower(double s, double norm, double error, double slack) {
    if (s == INFINITY) return INFINITY;
    double squared = ((norm + s) - error) - slack * ((norm + fabs(s)) + error);
    return round_down_nonnegative(sqrt(squared > 0 ? squared : 0) * (1 - slack));
}

/// `screened_lower` of values[0 ..< count] into bounds, in portable C.
static void screened_lowers_portable(const float *values, long count, double norm, double error, double slack,
                                     float *bounds) {
    for (long t = 0; t < count; t++) bounds[t] = screened_lower(values[t], norm, error, slack);
}

/// e of `cb_prune_assign`.
static double screen_error(double norm, double bound_scale, double largest_norm, double slack) {
    return bound_scale * (2 * sqrt(norm) * (1 + slack) * largest_norm + largest_norm * largest_norm);
}

/// Decides measured row i (steps 2 and 3 of `cb_prune_assign`) from the groups' tiles.
static void decide(const CBPruneCentres *p, const float *x, long i, int32_t old, Scratch *s,
                   double (*squares)(const float *, const float *, long),
                   void (*panel_values)(const float *, long, const float *, const float *, long, float *),
                   void (*screened_lowers)(const float *, long, double, double, double, float *),
                   int32_t *assignment, float *upper, float *lower) {
    long groups = p->groups, d = p->d, width = group_width(p);
    const float *best1 = s->best1 + i * groups, *best2 = s->best2 + i * groups;
    const int32_t *index = s->index + i * groups, *measured = s->measured + i * groups;
    long count = s->measured_count[i];
    double norm = s->norms[i];
    float smallest = INFINITY;
    for (long t = 0; t < count; t++)
        if (best1[t] < smallest) smallest = best1[t];
    double bound = p->bound_scale * (2 * sqrt(norm) * p->largest_norm + p->largest_norm * p->largest_norm);
    float limit = (float)((double)smallest + 2 * bound);
    long near = 0, only = -1;
    for (long t = 0; t < count; t++)
        if (best1[t] <= limit) {
            near++;
            only = t;
        }
    int32_t chosen = -1;
    double nearest = INFINITY;
    if (near == 1 && !(best2[only] <= limit)) {
        chosen = centre_at(p, index[only]);
        // The old centre's distance is known (the same sum, so the same bits).
        nearest = chosen == old ? s->exact[i] : squares(x, p->centres + (long)chosen * d, d);
    } else {
        for (long t = 0; t < count; t++) {
            long g = measured[t];
            if (!(best1[t] <= limit)) continue;
            long c1 = (g + 1) * width < p->k ? (g + 1) * width : p->k;
            float values[PANEL];
            for (long position = g * width; position < c1; position++) {
                if (position % PANEL == 0) panel_values(x, d, p->packed, p->packed_norms, position / PANEL, values);
                if (!(values[position % PANEL] <= limit)) continue;
                int32_t c = centre_at(p, position);
                double exact = c == old ? s->exact[i] : squares(x, p->centres + (long)c * d, d);
                if (exact < nearest || (exact == nearest && c < chosen)) {  // ties keep the lowest index
                    nearest = exact;
                    chosen = c;
                }
            }
        }
    }
    if (old >= 0 && (s->exact[i] < nearest || (s->exact[i] == nearest && old < chosen))) {
        chosen = old;
        nearest = s->exact[i];
    }
    *assignment = chosen;
    *upper = round_up(sqrt(nearest) * (1 + p->slack));
    double error = screen_error(norm, p->bound_scale, p->largest_norm, p->slack);
    int old_measured = 0;
    long old_group = old >= 0 ? group_of(p, old) : -1;
    for (long t = 0; t < count; t++) {
        long g = measured[t];
        // best1 is the value of the centre at position index[t]: if that is not the chosen
        // one, it bounds the group's centres other than the chosen one too.
        s->picked[t] = centre_at(p, index[t]) == chosen ? best2[t] : best1[t];
        if (g == old_group) old_measured = 1;
    }
    screened_lowers(s->picked, count, norm, error, p->slack, s->bounds);
    for (long t = 0; t < count; t++) lower[measured[t]] = s->bounds[t];
    if (old >= 0 && chosen != old && !old_measured) {
        float left = round_down_nonnegative(sqrt(s->exact[i]) * (1 - p->slack));
        if (left < lower[old_group]) lower[old_group] = left;
    }
}

/// The groups g of one row with not limit < lower[g], ascending, into `measured`; returns
/// their number.
static long mark_tail(const float *lower, double limit, long g, long groups, int32_t *measured, long count) {
    for (; g < groups; g++)
        if (!(limit < (double)lower[g])) measured[count++] = (int32_t)g;
    return count;
}

static long mark_portable(const float *lower, double limit, long groups, int32_t *measured) {
    return mark_tail(lower, limit, 0, groups, measured, 0);
}

/// Rows ahead of the one being tested whose values are requested from memory: the test reads
/// most rows (to tighten their bound) in an order the caches cannot foresee from the skipped ones.
#define PREFETCH_AHEAD 4

/// Asks for the d values at x to be brought into the caches.
static inline void prefetch_row(const float *x, long d) {
    for (long j = 0; j < d; j += 16) __builtin_prefetch(x + j);
}

/// The whole kernel, with the arithmetic of one instruction set (inlined into each variant):
/// `squares` (float64 distances), `shrink_row` (step 1's lower bounds), `mark` (the groups
/// to measure) and `measure_group` (a group's best values for its listed rows).
#define ASSIGN_BODY(squares, squares_and_norm, shrink_row, mark, measure_group, panel_values, screened_lowers)      \
    long groups = p->groups, d = p->d, width = group_width(p);                                         \
    double grow = 1 + p->slack, shrink = 1 - p->slack;                                                 \
    int has_old = p->drift != 0, usable = p->largest_norm < 1e15;                                      \
    Scratch s;                                                                                         \
    carve(p, m, scratch, &s);                                                                          \
    long computed = 0;                                                                                 \
    *fallbacks = 0;                                                                                    \
    for (long g = 0; g < groups; g++) s.counts[g] = 0;                                                 \
    for (long i = 0; i < m; i++) {                                                                     \
        const float *x = rows + i * stride;                                                            \
        if (i + PREFETCH_AHEAD < m) prefetch_row(x + PREFETCH_AHEAD * stride, d);                      \
        float *bounds = lower + i * groups;                                                            \
        int32_t *measured = s.measured + i * groups;                                                   \
        s.measured_count[i] = 0;                                                                       \
        double bound = INFINITY;                                                                       \
        if (has_old) {                                                                                 \
            int32_t a = assignments[i];                                                                \
            double nearest = (double)shrink_row(bounds, p->group_drift, shrink, groups);               \
            bound = ((double)upper[i] + p->drift[a]) * grow;                                           \
            if (!(bound * grow < nearest)) {                                                           \
                s.exact[i] = squares_and_norm(x, p->centres + (long)a * d, d, &s.norms[i]);            \
                bound = sqrt(s.exact[i]) * grow;                                                       \
            }                                                                                          \
            if (bound * grow < nearest) {                                                              \
                upper[i] = round_up(bound);                                                            \
                continue;                                                                              \
            }                                                                                          \
        }                                                                                              \
        computed++;                                                                                    \
        if (!has_old) s.norms[i] = squares(x, 0, d); /* else with the tightened bound */           \
        if (!usable || !(s.norms[i] <= 1e30)) {                                                        \
            fallback[(*fallbacks)++] = (int32_t)i;                                                     \
            continue;                                                                                  \
        }                                                                                              \
        long count = has_old ? mark(bounds, bound * grow, groups, measured) : groups;                 \
        for (long t = 0; t < count; t++) {                                                             \
            long g = has_old ? measured[t] : t;                                                        \
            measured[t] = (int32_t)g;                                                                  \
            s.lists[g * m + s.counts[g]++] = (int32_t)(i * groups + t);                                \
            long c1 = (g + 1) * width < p->k ? (g + 1) * width : p->k;                                 \
            *pairs += c1 - g * width;                                                                  \
        }                                                                                              \
        s.measured_count[i] = count;                                                                   \
    }                                                                                                  \
    for (long g = 0; g < groups; g++)                                                                  \
        if (s.counts[g] > 0) measure_group(p, g, rows, stride, m, &s);                                 \
    for (long i = 0; i < m; i++)                                                                       \
        if (s.measured_count[i] > 0)                                                                   \
            decide(p, rows + i * stride, i, has_old ? assignments[i] : -1, &s, squares, panel_values,  \
                   screened_lowers, assignments + i, upper + i, lower + i * groups);                   \
    return computed;

/// Group g's best values for its listed rows, in portable C.
static void measure_portable(const CBPruneCentres *p, long g, const float *rows, long stride, long m, Scratch *s) {
    long width = group_width(p), c1 = (g + 1) * width < p->k ? (g + 1) * width : p->k;
    for (long slot = 0; slot < s->counts[g]; slot++) {
        long at = s->lists[g * m + slot], i = at / p->groups;
        group_portable(rows + i * stride, p->d, p->packed, p->packed_norms, g * width, c1, s->best1 + at,
                       s->best2 + at, s->index + at);
    }
}

long cb_prune_assign_portable(const CBPruneCentres *p, const float *rows, long stride, long m,
                              int32_t *assignments, float *upper, float *lower, void *scratch,
                              int32_t *fallback, long *fallbacks, long *pairs) {
    ASSIGN_BODY(squares_portable, squares_and_norm_portable, shrink_portable, mark_portable, measure_portable,
                panel_values_portable, screened_lowers_portable)
}

#if defined(__x86_64__)
#include <immintrin.h>
#include "screen_panels.h"

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

/// `squares_and_norm_portable`, 8 lanes per instruction.
TARGET double squares_and_norm_avx512(const float *x, const float *c, long d, double *norm) {
    __m512d lanes = _mm512_setzero_pd(), norms = _mm512_setzero_pd();
    long j = 0;
    for (; j + 8 <= d; j += 8) {
        __m512d v = _mm512_cvtps_pd(_mm256_loadu_ps(x + j));
        __m512d r = _mm512_sub_pd(v, _mm512_cvtps_pd(_mm256_loadu_ps(c + j)));
        lanes = _mm512_add_pd(lanes, _mm512_mul_pd(r, r));
        norms = _mm512_add_pd(norms, _mm512_mul_pd(v, v));
    }
    *norm = squares_tail(x, 0, j, d, cb_reduce_lanes_avx512(norms));
    return squares_tail(x, c, j, d, cb_reduce_lanes_avx512(lanes));
}

__attribute__((target("avx512f")))
static double squares_avx512_call(const float *x, const float *c, long d) { return squares_avx512(x, c, d); }

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

/// `shrink_portable`, 16 groups per step (the last step masked).
TARGET float shrink_avx512(float *lower, const double *group_drift, double shrink, long groups) {
    __m512d factor = _mm512_set1_pd(shrink);
    __m512 nearest = _mm512_set1_ps(INFINITY);
    for (long g = 0; g < groups; g += 16) {
        __mmask16 live = groups - g >= 16 ? 0xFFFF : (__mmask16)((1u << (groups - g)) - 1);
        __m512d low, high;
        widen(_mm512_maskz_loadu_ps(live, lower + g), &low, &high);
        low = _mm512_mul_pd(_mm512_sub_pd(low, _mm512_maskz_loadu_pd((__mmask8)live, group_drift + g)), factor);
        high = _mm512_mul_pd(_mm512_sub_pd(high, _mm512_maskz_loadu_pd((__mmask8)(live >> 8), group_drift + g + 8)), factor);
        __m512 bounds = narrow_down(low, high);
        _mm512_mask_storeu_ps(lower + g, live, bounds);
        nearest = _mm512_mask_min_ps(nearest, live, nearest, bounds);
    }
    return _mm512_reduce_min_ps(nearest);
}

/// `mark_portable`, 8 groups per comparison.
TARGET long mark_avx512(const float *lower, double limit, long groups, int32_t *measured) {
    __m512d bound = _mm512_set1_pd(limit);
    long count = 0, g = 0;
    for (; g + 8 <= groups; g += 8) {
        __m512d bounds = _mm512_cvtps_pd(_mm256_loadu_ps(lower + g));
        unsigned failing = _mm512_cmp_pd_mask(bound, bounds, _CMP_NLT_UQ);
        while (failing) {
            measured[count++] = (int32_t)(g + __builtin_ctz(failing));
            failing &= failing - 1;
        }
    }
    return mark_tail(lower, limit, g, groups, measured, count);
}

/// `screened_lowers_portable`, 16 values per step: the same operations in the same order
/// (max(v, 0) of a NaN is 0, as `screened_lower`'s comparison; a value of +∞ gives +∞).
__attribute__((target("avx512f")))
static void screened_lowers_avx512(const float *values, long count, double norm, double error, double slack,
                                   float *bounds) {
    __m512d n = _mm512_set1_pd(norm), e = _mm512_set1_pd(error), epsilon = _mm512_set1_pd(slack);
    __m512d shrink = _mm512_set1_pd(1 - slack), zero = _mm512_setzero_pd();
    long t = 0;
    for (; t + 16 <= count; t += 16) {
        __m512 v = _mm512_loadu_ps(values + t);
        __m512d half[2];
        widen(v, &half[0], &half[1]);
        for (int h = 0; h < 2; h++) {
            __m512d s = half[h];
            __m512d squared = _mm512_sub_pd(_mm512_sub_pd(_mm512_add_pd(n, s), e),
                                            _mm512_mul_pd(epsilon, _mm512_add_pd(_mm512_add_pd(n, _mm512_abs_pd(s)), e)));
            half[h] = _mm512_mul_pd(_mm512_sqrt_pd(_mm512_max_pd(squared, zero)), shrink);
        }
        __m512 lowered = narrow_down(half[0], half[1]);
        __mmask16 infinite = _mm512_cmp_ps_mask(v, _mm512_set1_ps(INFINITY), _CMP_EQ_OQ);
        _mm512_storeu_ps(bounds + t, _mm512_mask_mov_ps(lowered, infinite, _mm512_set1_ps(INFINITY)));
    }
    screened_lowers_portable(values + t, count - t, norm, error, slack, bounds + t);
}

/// `panel_values_portable` in two registers of 16 centres.
__attribute__((target("avx512f")))
static void panel_values_avx512(const float *x, long d, const float *packed, const float *packed_norms, long panel,
                                float *values) {
    const float *b = packed + panel * d * PANEL;
    __m512 low[1] = {_mm512_loadu_ps(packed_norms + panel * PANEL)};
    __m512 high[1] = {_mm512_loadu_ps(packed_norms + panel * PANEL + 16)};
    CB_PANEL_PRODUCTS(1, x, 0, b, d, PANEL, low, high)
    _mm512_storeu_ps(values, low[0]);
    _mm512_storeu_ps(values + 16, high[0]);
}

/// MR gathered rows (d apart) against panels [p0, p1): each row's group best, its centre
/// (lowest on ties) and second best, the same values as `group_portable`.
#define DEFINE_GROUP_TILE(MR)                                                                         \
    TARGET void group_tile##MR(const float *x, long d, const float *packed, const float *norms, long p0, \
                               long p1, float *best1, float *best2, int32_t *index) {              \
        __m512 best[MR], second[MR];                                                                  \
        __m512i at[MR];                                                                               \
        _Pragma("unroll") for (int r = 0; r < MR; r++) {                                              \
            best[r] = second[r] = _mm512_set1_ps(INFINITY);                                           \
            at[r] = _mm512_setzero_si512();                                                           \
        }                                                                                             \
        CB_SCREEN_PANELS(MR, x, d, d, packed, norms, p0, p1, best, second, at)                        \
        _Pragma("unroll") for (int r = 0; r < MR; r++) {                                              \
            float smallest = _mm512_reduce_min_ps(best[r]);                                           \
            __mmask16 ties = _mm512_cmp_ps_mask(best[r], _mm512_set1_ps(smallest), _CMP_EQ_OQ);       \
            int32_t chosen = _mm512_mask_reduce_min_epi32(ties, at[r]);                               \
            __mmask16 own = ties & _mm512_cmpeq_epi32_mask(at[r], _mm512_set1_epi32(chosen));        \
            __m512 others = _mm512_mask_mov_ps(best[r], own, _mm512_set1_ps(INFINITY));               \
            best1[r] = smallest;                                                                   \
            best2[r] = fminf(_mm512_reduce_min_ps(second[r]), _mm512_reduce_min_ps(others));       \
            index[r] = chosen;                                                                     \
        }                                                                                             \
    }

DEFINE_GROUP_TILE(14)
DEFINE_GROUP_TILE(4)
DEFINE_GROUP_TILE(1)

/// Group g's best values for its listed rows: tile by tile, the tile's rows gathered side by
/// side (a copy that stays in L1), then measured while the next tile's rows are prefetched.
__attribute__((target("avx512f")))
static void measure_avx512(const CBPruneCentres *p, long g, const float *rows, long stride, long m, Scratch *s) {
    long d = p->d, count = s->counts[g], groups = p->groups;
    long p0 = g * p->group_panels, panels = (p->k + PANEL - 1) / PANEL;
    long p1 = p0 + p->group_panels < panels ? p0 + p->group_panels : panels;
    const int32_t *list = s->lists + g * m;
    float best1[TILE], best2[TILE];
    int32_t index[TILE];
    long slot = 0;
#define RUN_TILE(MR)                                                                                  \
    for (; slot + MR <= count; slot += MR) {                                                          \
        for (int r = 0; r < MR; r++) {                                                                \
            const float *x = rows + list[slot + r] / groups * stride;                                 \
            for (long j = 0; j < d; j++) s->gathered[r * d + j] = x[j];                               \
        }                                                                                             \
        for (long next = slot + MR; next < slot + MR + TILE && next < count; next++) {                \
            const char *x = (const char *)(rows + list[next] / groups * stride);                      \
            for (long byte = 0; byte < d * (long)sizeof(float); byte += 64) _mm_prefetch(x + byte, _MM_HINT_T0); \
        }                                                                                             \
        group_tile##MR(s->gathered, d, p->packed, p->packed_norms, p0, p1, best1, best2, index);      \
        for (int r = 0; r < MR; r++) {                                                                \
            long at = list[slot + r];                                                                 \
            s->best1[at] = best1[r];                                                                  \
            s->best2[at] = best2[r];                                                                  \
            s->index[at] = index[r];                                                                  \
        }                                                                                             \
    }
    RUN_TILE(14)
    RUN_TILE(4)
    RUN_TILE(1)
#undef RUN_TILE
}

__attribute__((target("avx512f")))
static long assign_avx512(const CBPruneCentres *p, const float *rows, long stride, long m,
                          int32_t *assignments, float *upper, float *lower, void *scratch,
                          int32_t *fallback, long *fallbacks, long *pairs) {
    ASSIGN_BODY(squares_avx512_call, squares_and_norm_avx512, shrink_avx512, mark_avx512, measure_avx512,
                panel_values_avx512, screened_lowers_avx512)
}

long cb_prune_assign(const CBPruneCentres *p, const float *rows, long stride, long m,
                     int32_t *assignments, float *upper, float *lower, void *scratch,
                     int32_t *fallback, long *fallbacks, long *pairs) {
    return (__builtin_cpu_supports("avx512f") ? assign_avx512 : cb_prune_assign_portable)(
        p, rows, stride, m, assignments, upper, lower, scratch, fallback, fallbacks, pairs);
}

#else

long cb_prune_assign(const CBPruneCentres *p, const float *rows, long stride, long m,
                     int32_t *assignments, float *upper, float *lower, void *scratch,
                     int32_t *fallback, long *fallbacks, long *pairs) {
    return cb_prune_assign_portable(p, rows, stride, m, assignments, upper, lower, scratch, fallback, fallbacks, pairs);
}

#endif
