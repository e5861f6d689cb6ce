#include "gaussian_screen.h"

#include <math.h>

#define PANEL CB_GMM_SCREEN_PANEL
/// Rows per register tile: 2 accumulators of 16 components per row, 28 of the 32 registers.
#define TILE 14
/// Bytes of packed components met by every row tile of a block before the next ones are read.
#define GROUP_BYTES (256L << 10)

static long panel_count(long k) { return (k + PANEL - 1) / PANEL; }

long cb_gmm_screen_packed_length(long k, long d) { return panel_count(k) * PANEL * 2 * d; }

long cb_gmm_screen_offsets_length(long k) { return panel_count(k) * PANEL; }

void cb_gmm_screen_pack(const float *weighted_means, const float *half_precisions, const float *offsets,
                        long k, long d, float *packed, float *packed_offsets) {
    long panels = panel_count(k);
    for (long p = 0; p < panels; p++)
        for (long j = 0; j < d; j++)
            for (long c = 0; c < PANEL; c++) {
                long i = p * PANEL + c;
                packed[(p * 2 * d + j) * PANEL + c] = i < k ? weighted_means[i * d + j] : 0.0f;
                packed[(p * 2 * d + d + j) * PANEL + c] = i < k ? half_precisions[i * d + j] : 0.0f;
            }
    for (long i = 0; i < panels * PANEL; i++) packed_offsets[i] = i < k ? offsets[i] : -INFINITY;
}

static long select_from(const float *values, long k, float limit, int32_t *selected, long c, long count) {
    for (; c < k; c++)
        if (!(values[c] < limit)) selected[count++] = (int32_t)c;
    return count;
}

/// The row's limit from its best screened value and ‖x‖² (see `cb_gmm_candidates`).
static float row_limit(float best, double norm, double scale, const double terms[3], double cutoff) {
    double bound = scale * (sqrt(norm) * terms[0] + 0.5 * norm * terms[1] + terms[2]);
    return (float)((double)best - cutoff - 2 * bound);
}

#if defined(__x86_64__)
#include <immintrin.h>
#include "panel_products.h"

int cb_gmm_screen_supported(void) { return __builtin_cpu_supports("avx512f") != 0; }

#define TARGET __attribute__((target("avx512f"), always_inline)) static inline

/// MR rows against panels [p0, p1): 2·MR accumulators of 16 components in registers, started
/// from the offsets; the d steps over x·w, then the d over x²·h, the row values broadcast
/// straight from `x` and `x2` (row r at r·stride and r·d).
#define DEFINE_TILE(MR)                                                                              \
    TARGET void tile##MR(const float *x, long stride, const float *x2, long d, const float *packed,  \
                         const float *offsets, long p0, long p1, float *values, long ldv, float *best) { \
        for (long p = p0; p < p1; p++) {                                                              \
            const float *w = packed + p * 2 * d * PANEL, *h = w + d * PANEL;                          \
            __m512 o0 = _mm512_loadu_ps(offsets + p * PANEL), o1 = _mm512_loadu_ps(offsets + p * PANEL + 16); \
            __m512 low[MR], high[MR];                                                                 \
            _Pragma("unroll") for (int r = 0; r < MR; r++) { low[r] = o0; high[r] = o1; }             \
            CB_PANEL_PRODUCTS(MR, x, stride, w, d, PANEL, low, high)                                  \
            CB_PANEL_PRODUCTS(MR, x2, d, h, d, PANEL, low, high)                                      \
            _Pragma("unroll") for (int r = 0; r < MR; r++) {                                          \
                _mm512_storeu_ps(values + r * ldv + p * PANEL, low[r]);                               \
                _mm512_storeu_ps(values + r * ldv + p * PANEL + 16, high[r]);                         \
                /* max_ps returns its second operand if either is NaN: NaN never becomes the best. */ \
                __m512 top = _mm512_max_ps(high[r], _mm512_set1_ps(best[r]));                         \
                best[r] = _mm512_reduce_max_ps(_mm512_max_ps(low[r], top));                           \
            }                                                                                         \
        }                                                                                             \
    }

DEFINE_TILE(14)
DEFINE_TILE(4)
DEFINE_TILE(1)

/// Packed components per group: a group's panels stay in L2 while every row of a block meets them.
static long group_panels(long d) {
    long panels = GROUP_BYTES / (2 * d * PANEL * (long)sizeof(float));
    return panels > 0 ? panels : 1;
}

__attribute__((target("avx512f")))
void cb_gmm_screen(const float *rows, long stride, long m, long d, const float *packed, const float *packed_offsets,
                   long k, float *squares, float *values, float *best, float *norms) {
    long panels = panel_count(k), group = group_panels(d), ldv = panels * PANEL;
    for (long i = 0; i < m; i++) {
        const float *x = rows + i * stride;
        float *x2 = squares + i * d;
        __m512 sum = _mm512_setzero_ps();
        for (long j = 0; j < d; j += 16) {
            __mmask16 lanes = d - j >= 16 ? 0xFFFF : (__mmask16)((1u << (d - j)) - 1);
            __m512 v = _mm512_maskz_loadu_ps(lanes, x + j);
            v = _mm512_mul_ps(v, v);
            _mm512_mask_storeu_ps(x2 + j, lanes, v);
            sum = _mm512_add_ps(sum, v);
        }
        norms[i] = _mm512_reduce_add_ps(sum);
        best[i] = -INFINITY;
    }
    for (long p0 = 0; p0 < panels; p0 += group) {
        long p1 = p0 + group < panels ? p0 + group : panels;
        long i = 0;
        for (; i + TILE <= m; i += TILE)
            tile14(rows + i * stride, stride, squares + i * d, d, packed, packed_offsets, p0, p1, values + i * ldv, ldv, best + i);
        for (; i + 4 <= m; i += 4)
            tile4(rows + i * stride, stride, squares + i * d, d, packed, packed_offsets, p0, p1, values + i * ldv, ldv, best + i);
        for (; i < m; i++)
            tile1(rows + i * stride, stride, squares + i * d, d, packed, packed_offsets, p0, p1, values + i * ldv, ldv, best + i);
    }
}

__attribute__((target("avx512f")))
static long candidates_avx512(const float *values, long k, float limit, int32_t *selected) {
    __m512 bound = _mm512_set1_ps(limit);
    __m512i lanes = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
    long count = 0, c = 0;
    for (; c + 16 <= k; c += 16) {
        // Not below the limit: NaN is kept, so the exact pass sees it.
        __mmask16 hits = _mm512_cmp_ps_mask(_mm512_loadu_ps(values + c), bound, _CMP_NLT_UQ);
        if (hits) {
            _mm512_mask_compressstoreu_epi32(selected + count, hits, _mm512_add_epi32(lanes, _mm512_set1_epi32((int)c)));
            count += __builtin_popcount(hits);
        }
    }
    return select_from(values, k, limit, selected, c, count);
}

long cb_gmm_candidates(const float *values, long ldv, long n, long k, const float *best, const float *norms, double scale,
                       const double terms[3], double cutoff, int32_t *selected, long *starts) {
    int avx512 = __builtin_cpu_supports("avx512f");
    for (long i = 0; i < n; i++) {
        if (!isfinite(norms[i])) return -1 - i;
        float limit = row_limit(best[i], norms[i], scale, terms, cutoff);
        int32_t *row = selected + starts[i];
        starts[i + 1] = starts[i] + (avx512 ? candidates_avx512(values + i * ldv, k, limit, row)
                                            : select_from(values + i * ldv, k, limit, row, 0, 0));
    }
    return starts[n];
}

#else

int cb_gmm_screen_supported(void) { return 0; }

void cb_gmm_screen(const float *rows, long stride, long m, long d, const float *packed, const float *packed_offsets,
                   long k, float *squares, float *values, float *best, float *norms) {
    (void)rows; (void)stride; (void)m; (void)d; (void)packed; (void)packed_offsets; (void)k; (void)squares;
    (void)values; (void)best; (void)norms;
}

long cb_gmm_candidates(const float *values, long ldv, long n, long k, const float *best, const float *norms, double scale,
                       const double terms[3], double cutoff, int32_t *selected, long *starts) {
    for (long i = 0; i < n; i++) {
        if (!isfinite(norms[i])) return -1 - i;
        starts[i + 1] = starts[i] + select_from(values + i * ldv, k, row_limit(best[i], norms[i], scale, terms, cutoff),
                                                selected + starts[i], 0, 0);
    }
    return starts[n];
}

#endif
