#include "gaussian_terms.h"

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

static long select_portable(const float *values, long k, float limit, int32_t *selected) {
    long count = 0;
    for (long c = 0; c < k; c++)
        if (values[c] >= limit) selected[count++] = (int32_t)c;
    return count;
}

static double reduce_lanes(const double lanes[8]) {
    return ((lanes[0] + lanes[4]) + (lanes[2] + lanes[6])) + ((lanes[1] + lanes[5]) + (lanes[3] + lanes[7]));
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
    double sum = reduce_lanes(lanes);
    for (; j < d; j++) {
        double r = (double)x[j] - mu[j];
        double t = r * p[j];
        sum = fma(t, r, sum);
    }
    return sum;
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

/// The same arithmetic, 8 lanes of float64 per instruction.
__attribute__((target("avx512f"), always_inline))
static inline double weighted_distance_avx512(const float *x, const double *mu, const double *p, long d) {
    __m512d lanes = _mm512_setzero_pd();
    long j = 0;
    for (; j + 8 <= d; j += 8) {
        __m512d r = _mm512_sub_pd(_mm512_cvtps_pd(_mm256_loadu_ps(x + j)), _mm512_loadu_pd(mu + j));
        __m512d t = _mm512_mul_pd(r, _mm512_loadu_pd(p + j));
        lanes = _mm512_fmadd_pd(t, r, lanes);
    }
    __m256d four = _mm256_add_pd(_mm512_castpd512_pd256(lanes), _mm512_extractf64x4_pd(lanes, 1));
    __m128d two = _mm_add_pd(_mm256_castpd256_pd128(four), _mm256_extractf128_pd(four, 1));
    double sum = _mm_cvtsd_f64(two) + _mm_cvtsd_f64(_mm_unpackhi_pd(two, two));
    for (; j < d; j++) {
        double r = (double)x[j] - mu[j];
        double t = r * p[j];
        sum = fma(t, r, sum);
    }
    return sum;
}

__attribute__((target("avx512f"), always_inline))
static inline void accumulate_term_avx512(const float *x, double q, double *f, double *s, long d) {
    __m512d w = _mm512_set1_pd(q);
    long j = 0;
    for (; j + 8 <= d; j += 8) {
        __m512d v = _mm512_cvtps_pd(_mm256_loadu_ps(x + j));
        _mm512_storeu_pd(f + j, _mm512_fmadd_pd(w, v, _mm512_loadu_pd(f + j)));
        _mm512_storeu_pd(s + j, _mm512_fmadd_pd(w, _mm512_mul_pd(v, v), _mm512_loadu_pd(s + j)));
    }
    for (; j < d; j++) {
        double v = (double)x[j];
        f[j] = fma(q, v, f[j]);
        s[j] = fma(q, v * v, s[j]);
    }
}

__attribute__((target("avx512f")))
static void log_densities_avx512(const float *rows, long stride, long n, long d, const long *term_starts, long k,
                                 const long *scratch, const double *means, const double *precisions,
                                 const double *normalizers, double *out) {
    log_densities_grouped(weighted_distance_avx512, rows, stride, n, d, term_starts, k, scratch, means, precisions,
                          normalizers, out);
}

__attribute__((target("avx512f")))
static void accumulate_avx512(const float *rows, long stride, long n, long d, const long *term_starts,
                              const double *weights, long k, const long *scratch,
                              double *mass, double *first, double *second) {
    accumulate_grouped(accumulate_term_avx512, rows, stride, n, d, term_starts, weights, k, scratch, mass, first,
                       second);
}

__attribute__((target("avx512f")))
static long select_avx512(const float *values, long k, float limit, int32_t *selected) {
    __m512 bound = _mm512_set1_ps(limit);
    __m512i lanes = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
    long count = 0, c = 0;
    for (; c + 16 <= k; c += 16) {
        __mmask16 hits = _mm512_cmp_ps_mask(_mm512_loadu_ps(values + c), bound, _CMP_GE_OQ);
        if (hits) {
            _mm512_mask_compressstoreu_epi32(selected + count, hits, _mm512_add_epi32(lanes, _mm512_set1_epi32((int)c)));
            count += __builtin_popcount(hits);
        }
    }
    for (; c < k; c++)
        if (values[c] >= limit) selected[count++] = (int32_t)c;
    return count;
}

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

long cb_gmm_select(const float *values, long k, float limit, int32_t *selected) {
    return (__builtin_cpu_supports("avx512f") ? select_avx512 : select_portable)(values, k, limit, selected);
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

long cb_gmm_select(const float *values, long k, float limit, int32_t *selected) {
    return select_portable(values, k, limit, selected);
}

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
