import CKernels
import Descriptors

/// Exact nearest-centre assignment that skips distances which cannot matter (Hamerly 2010,
/// with the group filter of Yinyang k-means, Ding et al. 2015), in `cb_prune_assign`.
///
/// Each row keeps, from the pass that last computed it, its centre a, an upper bound U on
/// its distance to a and, per group g of centres (`groupPanels` packed panels of 32
/// centres each, the centres packed in the order of a `CentreLayout`: nearby centres
/// together), a lower bound L_g on its distance to the group's centres other than a. When the centres move, by the triangle inequality U grows by a's drift and
/// L_g shrinks by the group's largest drift. A row whose U is below every L_g keeps a; if
/// not, U is tightened to the exact distance and tested again. A row that still fails is
/// measured only against the groups whose L_g is not above U (every centre of the others
/// is strictly farther than a), in register tiles of the rows failing each group; its
/// centre is the float64 nearest of a and the measured centres the screen cannot rule out.
/// So every row gets the float64 argmin (ties to the lowest index), as without bounds.
///
/// Rounding: all bounds are on true (real) Euclidean distances between the float32 vectors.
/// `slack` ε = 2(D + 8)·u (u = 2⁻⁵³) is a relative margin that covers, many times over:
/// - a float64 distance Σ(x − c)² (`VectorMath.squaredDistance`): each difference and square
///   rounded, then a sum of D terms, relative error ≤ γ_(D+3) ≈ (D + 3)·u; its square root
///   one more u. So √dist·(1 + ε) ≥ the true distance (drifts, tightened U) and
///   √dist·(1 − ε) ≤ it (the bound of a's group when the row leaves a).
/// - each update U' = (U + δ)·(1 + ε) and L' = (L − Δ)·(1 − ε) (clamped at 0): the one
///   rounded addition or subtraction is off by at most u relative to its result, so U' stays
///   above and L' below the true bound; stored float32 values are rounded outward.
/// - the skip tests U·(1 + ε) < L with d(a) ≤ U and d(c) ≥ L for every c ≠ a of the group:
///   the float64 distances are within γ = γ_(D+3) of the true squares, so
///   dist64(a) ≤ U²(1 + γ) < L²(1 − γ) ≤ dist64(c), strictly: no unmeasured centre can be
///   the float64 argmin or tie with it.
/// - lower bounds of measured groups: the screened value s = ‖c‖² − 2x·c is within the
///   screen's `bound` of its true value; ‖x‖² in float64 and the two additions are off by at
///   most ε·(‖x‖² + |s| + bound), which is subtracted.
/// When a drift, bound or value is not finite, the test fails and the row is measured.
struct PrunedAssignment {
    /// Packed panels of 32 centres (in the layout's order) per group of the bounds, for `k` centres.
    /// More groups skip more distances but cost more per measured row (each measured group
    /// is gathered, reduced and bounded on its own). Measured on 1M real SIFT rows, 25
    /// iterations from the same centres, CPU time of the pruned pass over the unpruned one
    /// at K = 256: 1.03 with 1 panel per group (8 groups), 0.96 with 2, 1.05 with 4, 1.00
    /// with 8 (one group: Hamerly's bound).
    static func groupPanels(k: Int) -> Int {
        k <= 512 ? 2 : 1
    }
    /// Rows per kernel call: each group's failing rows of a block are measured together in
    /// register tiles of 14 rows, so blocks must be large enough that a group failing for a
    /// tenth of the rows still fills tiles (the rows are then read from L2, so the next
    /// tile's rows are prefetched).
    static let blockRows = 512

    let search: NearestCentreSearch
    /// The centres' packed order, hence the groups, fixed with the bounds.
    let layout: CentreLayout
    let slack: Double
    /// Groups of centres, so lower bounds per row.
    let groups: Int
    /// Whether the bounds below came from an earlier pass (else every distance is measured).
    private let hasPrevious: Bool
    /// Per centre, an upper bound on its move since the bounds' centres; per group, the largest.
    private var drift: [Double]
    private var groupDrift: [Double]
    private(set) var assignments: [Int32]
    private(set) var upper: [Float]
    private(set) var lower: [Float]
    /// Rows whose distances were not computed at all.
    private(set) var skipped = 0
    /// Row × centre distances that were not computed.
    private(set) var skippedPairs = 0

    /// The groups of bounds for `k` centres.
    static func groups(k: Int) -> Int {
        let width = groupPanels(k: k) * Int(CB_SCREEN_PANEL)
        return (k + width - 1) / width
    }

    /// Bounds for `rows` rows, starting from `previous` when they fit this search's centres;
    /// the centres packed as `layouts` gives them (the previous bounds' order, if any).
    init(search: NearestCentreSearch, rows: Int, previous: ShardBounds?, layouts: CentreLayouts) {
        self.search = search
        let k = search.codebook.k, d = search.codebook.dimension
        slack = 2 * Double(d + 8) * Double.ulpOfOne / 2
        let groups = Self.groups(k: k)
        self.groups = groups
        if let previous, previous.centres.count == k * d, previous.assignments.count == rows,
           previous.upper.count == rows, previous.lower.count == rows * groups, previous.order.count == k {
            layout = layouts.layout(order: previous.order, search: search)
            hasPrevious = true
            assignments = previous.assignments
            upper = previous.upper
            lower = previous.lower
            drift = [Double](repeating: 0, count: k)
            groupDrift = [Double](repeating: 0, count: groups)
            search.codebook.centres.withUnsafeBufferPointer { new in
                previous.centres.withUnsafeBufferPointer { old in
                    for c in 0..<k {
                        let moved = VectorMath.squaredDistance(new.baseAddress! + c * d, old.baseAddress! + c * d, d)
                        drift[c] = moved.squareRoot() * (1 + slack)
                        // `max` would drop a NaN; a NaN drift must fail every test.
                        let group = Int(layout.centreGroup[c])
                        if !(drift[c] <= groupDrift[group]) { groupDrift[group] = drift[c] }
                    }
                }
            }
        } else {
            layout = layouts.layout(order: nil, search: search)
            hasPrevious = false
            assignments = [Int32](repeating: 0, count: rows)
            upper = [Float](repeating: 0, count: rows)
            lower = [Float](repeating: 0, count: rows * groups)
            drift = []
            groupDrift = []
        }
    }

    /// The bounds to keep for the next pass.
    var bounds: ShardBounds {
        ShardBounds(centres: search.codebook.centres, order: layout.order, assignments: assignments, upper: upper, lower: lower)
    }

    /// Assigns `rows`, which are rows `offset ..<` of the shard (at most `blockRows`
    /// of them), writing centre indices to `out` and updating their bounds.
    /// `firstRow` and `source` only serve errors, as in `NearestCentreSearch.assign`.
    mutating func assign(_ rows: FloatRows, offset: Int, firstRow: Int, source: String, workspace: KernelWorkspace,
                         out: UnsafeMutablePointer<Int32>) throws {
        let k = search.codebook.k, d = search.codebook.dimension, groups = groups, m = rows.rows
        guard rows.dimension == d else {
            throw DescriptorError(.dimensionMismatch, "rows have dimension \(rows.dimension), the codebook expects \(d)", path: source)
        }
        precondition(m <= Self.blockRows && m * groups < Int(Int32.max), "a pruned block must fit one search block")
        if workspace.prunedFallback.count < m { workspace.prunedFallback = [Int32](repeating: 0, count: Self.blockRows) }
        var fallbacks = 0, pairs = 0
        let computed = search.codebook.centres.withUnsafeBufferPointer { centres in
            layout.panels.withUnsafeBufferPointer { panels in
                layout.panelNorms.withUnsafeBufferPointer { panelNorms in
                    drift.withUnsafeBufferPointer { drift in
                        groupDrift.withUnsafeBufferPointer { groupDrift in
                            var parameters = CBPruneCentres(
                                centres: centres.baseAddress!, packed: panels.baseAddress!, packed_norms: panelNorms.baseAddress!,
                                k: k, d: d, group_panels: Self.groupPanels(k: k), groups: groups, bound_scale: search.boundScale,
                                largest_norm: search.largestNorm, slack: slack, drift: hasPrevious ? drift.baseAddress! : nil,
                                group_drift: hasPrevious ? groupDrift.baseAddress! : nil, order: layout.order,
                                centre_group: layout.centreGroup)
                            let bytes = cb_prune_scratch_bytes(&parameters, Self.blockRows)
                            if workspace.prunedScratch.count < bytes { workspace.prunedScratch = [UInt8](repeating: 0, count: bytes) }
                            return assignments.withUnsafeMutableBufferPointer { assignments in
                                upper.withUnsafeMutableBufferPointer { upper in
                                    lower.withUnsafeMutableBufferPointer { lower in
                                        workspace.prunedScratch.withUnsafeMutableBytes { scratch in
                                            cb_prune_assign(&parameters, rows.base, rows.stride, m, assignments.baseAddress! + offset,
                                                            upper.baseAddress! + offset, lower.baseAddress! + offset * groups,
                                                            scratch.baseAddress!, &workspace.prunedFallback, &fallbacks, &pairs)
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
        // Rows the kernel leaves to the search (values too large or not finite: it throws
        // for the latter, naming the row) get no lower bounds: they are computed again next time.
        for i in workspace.prunedFallback[..<fallbacks].map({ Int($0) }) {
            var chosen: Int32 = 0, distance = 0.0
            try search.assign(FloatRows(base: rows.row(i), rows: 1, dimension: d, stride: d), firstRow: firstRow + i,
                              source: source, workspace: workspace, assignments: &chosen, distances: &distance)
            let r = offset + i
            assignments[r] = chosen
            upper[r] = Self.roundedUp(distance.squareRoot() * (1 + slack))
            for g in 0..<groups { lower[r * groups + g] = 0 }
        }
        for i in 0..<m { out[i] = assignments[offset + i] }
        skipped += m - computed
        skippedPairs += m * k - pairs - fallbacks * k
    }

    /// The float32 value nearest `value` that is not below it (+∞ past float32's range, NaN kept).
    static func roundedUp(_ value: Double) -> Float {
        let rounded = Float(value)
        return Double(rounded) < value ? rounded.nextUp : rounded
    }
}
