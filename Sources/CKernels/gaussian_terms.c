#include "gaussian_terms.h"
#include "lane_reduction.h"

#include <math.h>

// Scratch layout: component_starts[k + 1], cursors[k + 1], then per grouped position the
// term's index and its row.
long cb_gmm_group_scratch_length(long terms, long k) { return 2 * (k + 1) + 2 * terms; }

void cb_gmm_group_terms(long n, const long *term_starts, const int32_t *components, long k, long *scratch) {
    long terms = term_starts[n];
    long *starts = scratch, *cursors = scratch + k + 1, *index = scratch + 2 * (k + 1), *row = index + terms;
    for (long c = 0; c <= k; c++) starts[c] = 0;
    for (long t = 0; t < terms; t++) starts[components[t] + 1] += 1;
    for (long c = 0; c < k; c++) starts[c + 1] += starts[c];
    for (long c = 0; c <= k; c++) cursors[c] = starts[c];
    for (long i = 0; i < n; i++)
        for (long t = term_starts[i]; t < term_starts[i + 1]; t++) {
            long position = cursors[components[t]]++;
            index[position] = t;
            row[position] = i;
        }
}

/// The tail j = d − d mod 8 … d − 1 of a weighted distance, added in order to `sum`.
static inline __attribute__((always_inline))
double weighted_distance_tail(const float *x, const double *mu, const double *p, long j, long d, double sum) {
    for (; j < d; j++) {
        double r = (double)x[j] - mu[j];
        double t = r * p[j];
        sum = fma(t, r, sum);
    }
    return sum;
}

/// Σ_j (x_j − μ_j)²·p_j in the documented order, plain C.
static inline __attribute__((always_inline))
double weighted_distance(const float *x, const double *mu, const double *p, long d) {
    double lanes[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    long j = 0;
    for (; j + 8 <= d; j += 8)
        for (int l = 0; l < 8; l++) {
            double r = (double)x[j + l] - mu[j + l];
            double t = r * p[j + l];
            lanes[l] = fma(t, r, lanes[l]);
        }
    return weighted_distance_tail(x, mu, p, j, d, cb_reduce_lanes(lanes));
}

/// f += q·x and s += q·x², plain C.
static inline __attribute__((always_inline))
void accumulate_term(const float *x, double q, double *f, double *s, long d) {
    for (long j = 0; j < d; j++) {
        double v = (double)x[j];
        f[j] = fma(q, v, f[j]);
        s[j] = fma(q, v * v, s[j]);
    }
}

typedef double (*distance_function)(const float *, const double *, const double *, long);
typedef void (*accumulate_function)(const float *, double, double *, double *, long);

/// The loops over grouped terms, shared by every variant (inlined with its term function).
static inline __attribute__((always_inline))
void log_densities_grouped(distance_function distance, const float *rows, long stride, long n, long d,
                           const long *term_starts, long k, const long *scratch,
                           const double *means, const double *precisions, const double *normalizers, double *out) {
    long terms = term_starts[n];
    const long *starts = scratch, *index = scratch + 2 * (k + 1), *row = index + terms;
    for (long c = 0; c < k; c++) {
        const double *mu = means + c * d, *p = precisions + c * d;
        for (long position = starts[c]; position < starts[c + 1]; position++)
            out[index[position]] = normalizers[c] - 0.5 * distance(rows + row[position] * stride, mu, p, d);
    }
}

static inline __attribute__((always_inline))
void accumulate_grouped(accumulate_function add, const float *rows, long stride, long n, long d,
                        const long *term_starts, const double *weights, long k, const long *scratch,
                        double *mass, double *first, double *second) {
    long terms = term_starts[n];
    const long *starts = scratch, *index = scratch + 2 * (k + 1), *row = index + terms;
    for (long c = 0; c < k; c++) {
        double *f = first + c * d, *s = second + c * d;
        for (long position = starts[c]; position < starts[c + 1]; position++) {
            double q = weights[index[position]];
            mass[c] += q;
            add(rows + row[position] * stride, q, f, s, d);
        }
    }
}

void cb_gmm_log_densities_portable(const float *rows, long stride, long n, long d, const long *term_starts,
                                   long k, const long *scratch,
                                   const double *means, const double *precisions, const double *normalizers,
                                   double *out) {
    log_densities_grouped(weighted_distance, rows, stride, n, d, term_starts, k, scratch, means, precisions,
                          normalizers, out);
}

void cb_gmm_accumulate_portable(const float *rows, long stride, long n, long d, const long *term_starts,
                                const double *weights, long k, const long *scratch,
                                double *mass, double *first, double *second) {
    accumulate_grouped(accumulate_term, rows, stride, n, d, term_starts, weights, k, scratch, mass, first, second);
}

#if defined(__x86_64__)
#include <immintrin.h>

/// One step of a row's 8 lanes: lanes = fma(r·p, r, lanes) with r = x − μ.
#define CB_LANE_STEP(lanes, x, mean, precision)                                      \
    do {                                                                             \
        __m512d r_ = _mm512_sub_pd(_mm512_cvtps_pd(_mm256_loadu_ps(x)), (mean));    \
        (lanes) = _mm512_fmadd_pd(_mm512_mul_pd(r_, (precision)), r_, (lanes));     \
    } while (0)

/// The same arithmetic as the portable code, 8 lanes of float64 per instruction. Four terms
/// of a component run side by side: each keeps its own lanes (so each result is the
/// documented one), and they share the loads of μ and p and hide each other's fma latency.
__attribute__((target("avx512f")))
static void log_densities_avx512(const float *rows, long stride, long n, long d, const long *term_starts, long k,
                                 const long *scratch, const double *means, const double *precisions,
                                 const double *normalizers, double *out) {
    long terms = term_starts[n];
    const long *starts = scratch, *index = scratch + 2 * (k + 1), *row = index + terms;
    long whole = d - d % 8;
    for (long c = 0; c < k; c++) {
        const double *mu = means + c * d, *p = precisions + c * d;
        long position = starts[c], end = starts[c + 1];
        for (; position + 4 <= end; position += 4) {
            const float *x0 = rows + row[position] * stride, *x1 = rows + row[position + 1] * stride;
            const float *x2 = rows + row[position + 2] * stride, *x3 = rows + row[position + 3] * stride;
            __m512d l0 = _mm512_setzero_pd(), l1 = l0, l2 = l0, l3 = l0;
            for (long j = 0; j < whole; j += 8) {
                __m512d m = _mm512_loadu_pd(mu + j), q = _mm512_loadu_pd(p + j);
                CB_LANE_STEP(l0, x0 + j, m, q);
                CB_LANE_STEP(l1, x1 + j, m, q);
                CB_LANE_STEP(l2, x2 + j, m, q);
                CB_LANE_STEP(l3, x3 + j, m, q);
            }
            out[index[position]] = normalizers[c] - 0.5 * weighted_distance_tail(x0, mu, p, whole, d, cb_reduce_lanes_avx512(l0));
            out[index[position + 1]] = normalizers[c] - 0.5 * weighted_distance_tail(x1, mu, p, whole, d, cb_reduce_lanes_avx512(l1));
            out[index[position + 2]] = normalizers[c] - 0.5 * weighted_distance_tail(x2, mu, p, whole, d, cb_reduce_lanes_avx512(l2));
            out[index[position + 3]] = normalizers[c] - 0.5 * weighted_distance_tail(x3, mu, p, whole, d, cb_reduce_lanes_avx512(l3));
        }
        for (; position < end; position++) {
            const float *x = rows + row[position] * stride;
            __m512d lanes = _mm512_setzero_pd();
            for (long j = 0; j < whole; j += 8) CB_LANE_STEP(lanes, x + j, _mm512_loadu_pd(mu + j), _mm512_loadu_pd(p + j));
            out[index[position]] = normalizers[c] - 0.5 * weighted_distance_tail(x, mu, p, whole, d, cb_reduce_lanes_avx512(lanes));
        }
    }
}
#undef CB_LANE_STEP

/// The floats x[l] with bit l of `mask` set, as float64 (0 elsewhere; nothing else is read).
__attribute__((target("avx512f"), always_inline))
static inline __m512d load_masked_avx512(__mmask8 mask, const float *x) {
    return _mm512_cvtps_pd(_mm512_castps512_ps256(_mm512_maskz_loadu_ps((__mmask16)mask, x)));
}

/// Dimensions per register block of `accumulate_avx512`: 4 registers of Σq·x, 4 of Σq·x².
#define CB_ACCUMULATE_BLOCK 32

/// The same arithmetic, one element per lane (every element is its own fma chain, so any
/// grouping of elements into registers gives the same bits). Each block of 32 dimensions
/// of a component's sums stays in registers while all the component's terms go by, in
/// row order; a last partial block is masked.
__attribute__((target("avx512f")))
static void accumulate_avx512(const float *rows, long stride, long n, long d, const long *term_starts,
                              const double *weights, long k, const long *scratch,
                              double *mass, double *first, double *second) {
    long terms = term_starts[n];
    const long *starts = scratch, *index = scratch + 2 * (k + 1), *row = index + terms;
    for (long c = 0; c < k; c++) {
        long begin = starts[c], end = starts[c + 1];
        if (begin == end) continue;
        for (long position = begin; position < end; position++) mass[c] += weights[index[position]];
        for (long j = 0; j < d; j += CB_ACCUMULATE_BLOCK) {
            // Lanes past d are masked off in every load and store.
            __mmask8 m[4];
            for (int v = 0; v < 4; v++) {
                long left = d - (j + 8 * v);
                m[v] = left >= 8 ? 0xFF : left <= 0 ? 0 : (__mmask8)((1u << left) - 1);
            }
            double *f = first + c * d + j, *s = second + c * d + j;
            __m512d f0 = _mm512_maskz_loadu_pd(m[0], f), f1 = _mm512_maskz_loadu_pd(m[1], f + 8);
            __m512d f2 = _mm512_maskz_loadu_pd(m[2], f + 16), f3 = _mm512_maskz_loadu_pd(m[3], f + 24);
            __m512d s0 = _mm512_maskz_loadu_pd(m[0], s), s1 = _mm512_maskz_loadu_pd(m[1], s + 8);
            __m512d s2 = _mm512_maskz_loadu_pd(m[2], s + 16), s3 = _mm512_maskz_loadu_pd(m[3], s + 24);
            for (long position = begin; position < end; position++) {
                const float *x = rows + row[position] * stride + j;
                __m512d q = _mm512_set1_pd(weights[index[position]]);
                __m512d v0 = load_masked_avx512(m[0], x);
                __m512d v1 = load_masked_avx512(m[1], x + 8);
                __m512d v2 = load_masked_avx512(m[2], x + 16);
                __m512d v3 = load_masked_avx512(m[3], x + 24);
                f0 = _mm512_fmadd_pd(q, v0, f0);
                f1 = _mm512_fmadd_pd(q, v1, f1);
                f2 = _mm512_fmadd_pd(q, v2, f2);
                f3 = _mm512_fmadd_pd(q, v3, f3);
                s0 = _mm512_fmadd_pd(q, _mm512_mul_pd(v0, v0), s0);
                s1 = _mm512_fmadd_pd(q, _mm512_mul_pd(v1, v1), s1);
                s2 = _mm512_fmadd_pd(q, _mm512_mul_pd(v2, v2), s2);
                s3 = _mm512_fmadd_pd(q, _mm512_mul_pd(v3, v3), s3);
            }
            _mm512_mask_storeu_pd(f, m[0], f0);
            _mm512_mask_storeu_pd(f + 8, m[1], f1);
            _mm512_mask_storeu_pd(f + 16, m[2], f2);
            _mm512_mask_storeu_pd(f + 24, m[3], f3);
            _mm512_mask_storeu_pd(s, m[0], s0);
            _mm512_mask_storeu_pd(s + 8, m[1], s1);
            _mm512_mask_storeu_pd(s + 16, m[2], s2);
            _mm512_mask_storeu_pd(s + 24, m[3], s3);
        }
    }
}
#undef CB_ACCUMULATE_BLOCK

/// The portable code compiled for AVX2 + FMA (hardware fma(), same results).
__attribute__((target("avx2,fma")))
static void log_densities_avx2(const float *rows, long stride, long n, long d, const long *term_starts, long k,
                               const long *scratch, const double *means, const double *precisions,
                               const double *normalizers, double *out) {
    log_densities_grouped(weighted_distance, rows, stride, n, d, term_starts, k, scratch, means, precisions,
                          normalizers, out);
}

__attribute__((target("avx2,fma")))
static void accumulate_avx2(const float *rows, long stride, long n, long d, const long *term_starts,
                            const double *weights, long k, const long *scratch,
                            double *mass, double *first, double *second) {
    accumulate_grouped(accumulate_term, rows, stride, n, d, term_starts, weights, k, scratch, mass, first, second);
}

void cb_gmm_log_densities(const float *rows, long stride, long n, long d, const long *term_starts, long k, const long *scratch,
                          const double *means, const double *precisions, const double *normalizers, double *out) {
    if (__builtin_cpu_supports("avx512f"))
        log_densities_avx512(rows, stride, n, d, term_starts, k, scratch, means, precisions, normalizers, out);
    else if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
        log_densities_avx2(rows, stride, n, d, term_starts, k, scratch, means, precisions, normalizers, out);
    else
        cb_gmm_log_densities_portable(rows, stride, n, d, term_starts, k, scratch, means, precisions,
                                      normalizers, out);
}

void cb_gmm_accumulate(const float *rows, long stride, long n, long d, const long *term_starts,
                       const double *weights, long k, const long *scratch,
                       double *mass, double *first, double *second) {
    if (__builtin_cpu_supports("avx512f"))
        accumulate_avx512(rows, stride, n, d, term_starts, weights, k, scratch, mass, first, second);
    else if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
        accumulate_avx2(rows, stride, n, d, term_starts, weights, k, scratch, mass, first, second);
    else
        cb_gmm_accumulate_portable(rows, stride, n, d, term_starts, weights, k, scratch, mass, first,
                                   second);
}

#else

void cb_gmm_log_densities(const float *rows, long stride, long n, long d, const long *term_starts, long k, const long *scratch,
                          const double *means, const double *precisions, const double *normalizers, double *out) {
    cb_gmm_log_densities_portable(rows, stride, n, d, term_starts, k, scratch, means, precisions,
                                  normalizers, out);
}

void cb_gmm_accumulate(const float *rows, long stride, long n, long d, const long *term_starts,
                       const double *weights, long k, const long *scratch,
                       double *mass, double *first, double *second) {
    cb_gmm_accumulate_portable(rows, stride, n, d, term_starts, weights, k, scratch, mass, first,
                               second);
}

#endif
