#ifndef CODEBOOK_NEAREST_CENTRE_SCREEN_H
#define CODEBOOK_NEAREST_CENTRE_SCREEN_H

#include <stdint.h>

/// Centres per panel of the packed layout.
#define CB_SCREEN_PANEL 32

/// Rows per register tile of `cb_screen_nearest`.
#define CB_SCREEN_TILE_ROWS 14

/// A row's standing in `cb_screen_nearest`'s scratch: per lane l (the centres c ≡ l mod 16),
/// the smallest and second-smallest screened values and the centre of the smallest (the
/// first such centre on ties). After the call, the scratch holds these for every row.
typedef struct {
    float best[16];
    float second[16];
    int32_t index[16];
} CBScreenLanes;

/// Whether this CPU runs `cb_screen_nearest` (x86-64 with AVX-512F).
int cb_screen_supported(void);

/// Floats of the packed centres for k centres of dimension d (k rounded up to panels).
long cb_screen_packed_length(long k, long d);

/// Floats of the packed squared norms for k centres.
long cb_screen_norms_length(long k);

/// Bytes of the scratch `cb_screen_nearest` needs for m rows.
long cb_screen_scratch_bytes(long m);

/// Packs k centres (row-major k×d) for `cb_screen_nearest`: panel p holds, for each
/// dimension j, the 32 values −2·c[32p + i][j] (zero past k); `packed_norms` holds ‖c‖²
/// (`norms`, k values) followed by +∞ up to the panel boundary, so padding never wins.
void cb_screen_pack(const float *centres, long k, long d, const float *norms,
                    float *packed, float *packed_norms);

/// The nearest centre of each of `m` rows (row i at rows + i·stride, d floats), screened in
/// float32: s(c) = ‖c‖² − 2x·c, accumulated from ‖c‖² over j in order with FMA.
///
/// index[i] is the centre with the smallest s when it is the only centre with
/// s ≤ s_min + 2·bound, where bound = bound_scale·(2‖x‖·largest_norm + largest_norm²) — so
/// the screen alone decides it. Otherwise, or when the row or a screened value is not
/// finite, index[i] = −1 and the caller must decide the row exactly.
///
/// Centres are taken a group of panels (256 KiB) at a time, every row meeting one group
/// before the next is read, so blocks of a few hundred rows keep the centres in L2 whatever
/// k is; `scratch` (`cb_screen_scratch_bytes(m)`) holds each row's standing between groups,
/// and, after the call, row i's final lanes as the i-th `CBScreenLanes`.
void cb_screen_nearest(const float *rows, long stride, long m, long d,
                       const float *packed, const float *packed_norms, long k,
                       double bound_scale, double largest_norm, void *scratch, int32_t *index);

#endif
