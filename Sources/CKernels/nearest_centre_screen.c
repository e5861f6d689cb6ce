#include "nearest_centre_screen.h"

#include <math.h>

#define PANEL CB_SCREEN_PANEL
#define TILE CB_SCREEN_TILE_ROWS
/// Bytes of packed centres met by a whole block of rows before the next ones are read.
#define GROUP_BYTES (256L << 10)

/// Where a row stands between panel groups: per lane, the best and second-best screened
/// values seen so far and the best one's centre.
typedef CBScreenLanes RowState;

static long panel_count(long k) { return (k + PANEL - 1) / PANEL; }

long cb_screen_packed_length(long k, long d) { return panel_count(k) * PANEL * d; }

long cb_screen_norms_length(long k) { return panel_count(k) * PANEL; }

long cb_screen_scratch_bytes(long m) { return m * (long)sizeof(RowState); }

void cb_screen_pack(const float *centres, long k, long d, const float *norms,
                    float *packed, float *packed_norms) {
    long panels = panel_count(k);
    for (long p = 0; p < panels; p++)
        for (long j = 0; j < d; j++)
            for (long c = 0; c < PANEL; c++) {
                long i = p * PANEL + c;
                packed[(p * d + j) * PANEL + c] = i < k ? -2.0f * centres[i * d + j] : 0.0f;
            }
    for (long i = 0; i < panels * PANEL; i++) packed_norms[i] = i < k ? norms[i] : INFINITY;
}

#if defined(__x86_64__)
#include <immintrin.h>
#include "screen_panels.h"

int cb_screen_supported(void) { return __builtin_cpu_supports("avx512f") != 0; }

#define TARGET __attribute__((target("avx512f"), always_inline)) static inline

/// Σ x_j² in float32 (for the bound only).
TARGET float squared_norm(const float *x, long d) {
    __m512 sum = _mm512_setzero_ps();
    long j = 0;
    for (; j + 16 <= d; j += 16) {
        __m512 v = _mm512_loadu_ps(x + j);
        sum = _mm512_fmadd_ps(v, v, sum);
    }
    if (j < d) {
        __m512 v = _mm512_maskz_loadu_ps((__mmask16)((1u << (d - j)) - 1), x + j);
        sum = _mm512_fmadd_ps(v, v, sum);
    }
    return _mm512_reduce_add_ps(sum);
}

/// The decision for row x from its 16 lanes (see `cb_screen_nearest`): the best centre if
/// no other centre's screened value is within the bound of it, else −1.
TARGET int32_t decide(__m512 best, __m512 second, __m512i index, const float *x, long d,
                      double bound_scale, double largest_norm) {
    float smallest = _mm512_reduce_min_ps(best);
    double norm = squared_norm(x, d);
    if (!isfinite(smallest) || !isfinite(norm)) return -1;
    double bound = bound_scale * (2 * sqrt(norm) * largest_norm + largest_norm * largest_norm);
    __m512 limit = _mm512_set1_ps((float)((double)smallest + 2 * bound));
    // One lane within the limit whose runner-up is beyond it: that lane's best is the only candidate.
    __mmask16 near = _mm512_cmp_ps_mask(best, limit, _CMP_LE_OQ);
    if ((near & (near - 1)) != 0 || _mm512_mask_cmp_ps_mask(near, second, limit, _CMP_LE_OQ) != 0) return -1;
    int32_t indices[16];
    _mm512_storeu_si512(indices, index);
    return indices[__builtin_ctz(near)];
}

/// MR rows against panels [p0, p1): 2·MR accumulators of 16 centres in registers, the
/// dimension loop innermost, the row values broadcast straight from the rows. The rows'
/// lanes start fresh when `first` and are read from `state` otherwise; when `last`, each
/// row is decided into `index_out`; its lanes are written back to `state` either way.
#define DEFINE_TILE(MR)                                                                              \
    TARGET void tile##MR(const float *x, long stride, long d, const float *packed, const float *norms, \
                         long p0, long p1, int first, int last, RowState *state,                      \
                         double bound_scale, double largest_norm, int32_t *index_out) {               \
        __m512 best[MR], second[MR];                                                                  \
        __m512i index[MR];                                                                            \
        _Pragma("unroll") for (int r = 0; r < MR; r++) {                                              \
            if (first) {                                                                              \
                best[r] = second[r] = _mm512_set1_ps(INFINITY);                                       \
                index[r] = _mm512_setzero_si512();                                                    \
            } else {                                                                                  \
                best[r] = _mm512_loadu_ps(state[r].best);                                             \
                second[r] = _mm512_loadu_ps(state[r].second);                                         \
                index[r] = _mm512_loadu_si512(state[r].index);                                        \
            }                                                                                         \
        }                                                                                             \
        CB_SCREEN_PANELS(MR, x, stride, d, packed, norms, p0, p1, best, second, index)                \
        _Pragma("unroll") for (int r = 0; r < MR; r++) {                                              \
            if (last)                                                                                 \
                index_out[r] = decide(best[r], second[r], index[r], x + r * stride, d, bound_scale, largest_norm); \
            _mm512_storeu_ps(state[r].best, best[r]);                                                 \
            _mm512_storeu_ps(state[r].second, second[r]);                                             \
            _mm512_storeu_si512(state[r].index, index[r]);                                            \
        }                                                                                             \
    }

DEFINE_TILE(14)
DEFINE_TILE(4)
DEFINE_TILE(1)

/// Packed centres per group: a group's panels stay in L2 while every row of a block meets them.
static long group_panels(long d) {
    long panels = GROUP_BYTES / (d * PANEL * (long)sizeof(float));
    return panels > 0 ? panels : 1;
}

__attribute__((target("avx512f")))
void cb_screen_nearest(const float *rows, long stride, long m, long d,
                       const float *packed, const float *packed_norms, long k,
                       double bound_scale, double largest_norm, void *scratch, int32_t *index) {
    long panels = panel_count(k), group = group_panels(d);
    RowState *state = scratch;
    for (long p0 = 0; p0 < panels; p0 += group) {
        long p1 = p0 + group < panels ? p0 + group : panels;
        int first = p0 == 0, last = p1 == panels;
        long i = 0;
        for (; i + TILE <= m; i += TILE)
            tile14(rows + i * stride, stride, d, packed, packed_norms, p0, p1, first, last, state + i,
                   bound_scale, largest_norm, index + i);
        for (; i + 4 <= m; i += 4)
            tile4(rows + i * stride, stride, d, packed, packed_norms, p0, p1, first, last, state + i,
                  bound_scale, largest_norm, index + i);
        for (; i < m; i++)
            tile1(rows + i * stride, stride, d, packed, packed_norms, p0, p1, first, last, state + i,
                  bound_scale, largest_norm, index + i);
    }
}

#else

int cb_screen_supported(void) { return 0; }

void cb_screen_nearest(const float *rows, long stride, long m, long d,
                       const float *packed, const float *packed_norms, long k,
                       double bound_scale, double largest_norm, void *scratch, int32_t *index) {
    (void)rows; (void)stride; (void)d; (void)packed; (void)packed_norms; (void)k;
    (void)bound_scale; (void)largest_norm; (void)scratch;
    for (long i = 0; i < m; i++) index[i] = -1;
}

#endif
