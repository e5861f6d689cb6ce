import CKernels
import Descriptors

/// Exact nearest-centre assignment that skips rows which cannot have changed centre
/// (Hamerly 2010, with the per-group lower bounds of Yinyang k-means, Ding et al. 2015).
///
/// Each row keeps, from the pass that last computed it, its centre a, an upper bound U on
/// its distance to a and, per group g of centres (c ≡ g mod 16, the fused screen's lanes), a
/// lower bound L_g on its distance to the group's centres other than a. When the centres
/// move, by the triangle inequality U grows by a's drift and L_g shrinks by the group's
/// largest drift. A row whose U is below every L_g keeps a; if not, U is tightened to the
/// exact distance and tested again; only the rows that still fail go through
/// `NearestCentreSearch`, which also gives their new bounds. So the rows computed get the
/// search's answer, and a row skipped has a as its only float64 nearest centre: every other
/// centre is strictly farther.
///
/// Rounding: all bounds are on true (real) Euclidean distances between the float32 vectors.
/// `slack` ε = 2(D + 8)·u (u = 2⁻⁵³) is a relative margin that covers, many times over:
/// - a float64 distance Σ(x − c)² (`VectorMath.squaredDistance`): each difference and square
///   rounded, then a sum of D terms, relative error ≤ γ_(D+3) ≈ (D + 3)·u; its square root
///   one more u. So √dist·(1 + ε) ≥ the true distance (drifts, tightened U).
/// - each update U' = (U + δ)·(1 + ε) and L' = (L − Δ)·(1 − ε) (clamped at 0): the one
///   rounded addition or subtraction is off by at most u relative to its result, so U' stays
///   above and L' below the true bound; stored float32 values are rounded outward.
/// - the skip test U·(1 + ε) < L with d(a) ≤ U and d(c) ≥ L for every c ≠ a: the float64
///   distances the search compares are within γ = γ_(D+3) of the true squares, so
///   dist64(a) ≤ U²(1 + γ) < L²(1 − γ) ≤ dist64(c), strictly: a is the float64 argmin and
///   no tie (which would go to the lowest index) can arise.
/// - lower bounds from the screen (`NearestCentreSearch.groupLowerBounds`): the screened
///   value s = ‖c‖² − 2x·c is within the screen's `bound` of its true value; ‖x‖² in float64
///   and the two additions are off by at most ε·(‖x‖² + |s| + bound), which is subtracted.
/// When a drift, bound or value is not finite, the test fails and the row is computed.
struct PrunedAssignment {
    /// Groups of centres per row: c belongs to group c mod 16 (the fused screen's lanes).
    static let groups = Int(CB_PRUNE_GROUPS)

    let search: NearestCentreSearch
    let slack: Double
    /// Whether the bounds below came from an earlier pass (else every row is computed).
    private let hasPrevious: Bool
    /// Per centre, an upper bound on its move since the bounds' centres; per group, the largest.
    private var drift: [Double]
    private var groupDrift: [Double]
    private(set) var assignments: [Int32]
    private(set) var upper: [Float]
    private(set) var lower: [Float]
    /// Rows whose distances were not computed.
    private(set) var skipped = 0

    /// Bounds for `rows` rows, starting from `previous` when they fit this search's centres.
    init(search: NearestCentreSearch, rows: Int, previous: ShardBounds?) {
        self.search = search
        let k = search.codebook.k, d = search.codebook.dimension
        slack = 2 * Double(d + 8) * Double.ulpOfOne / 2
        let groups = Self.groups
        if let previous, previous.centres.count == k * d, previous.assignments.count == rows,
           previous.upper.count == rows, previous.lower.count == rows * groups {
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
                        if !(drift[c] <= groupDrift[c % groups]) { groupDrift[c % groups] = drift[c] }
                    }
                }
            }
        } else {
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
        ShardBounds(centres: search.codebook.centres, assignments: assignments, upper: upper, lower: lower)
    }

    /// Assigns `rows`, which are rows `offset ..<` of the shard (at most `search.blockRows`
    /// of them), writing centre indices to `out` and updating their bounds.
    /// `firstRow` and `source` only serve errors, as in `NearestCentreSearch.assign`.
    mutating func assign(_ rows: FloatRows, offset: Int, firstRow: Int, source: String, workspace: KernelWorkspace,
                         out: UnsafeMutablePointer<Int32>) throws {
        let d = search.codebook.dimension, groups = Self.groups
        precondition(rows.rows <= search.blockRows, "a pruned block must fit one search block")
        workspace.undecided.removeAll(keepingCapacity: true)
        if hasPrevious {
            let limits = filter(rows, offset: offset, out: out, workspace: workspace)
            skipped += rows.rows - limits
        } else {
            workspace.undecided.append(contentsOf: 0..<rows.rows)
        }
        let pending = workspace.undecided
        guard !pending.isEmpty else { return }
        let count = pending.count
        if workspace.prunedDistances.count < count {
            workspace.prunedDistances = [Double](repeating: 0, count: search.blockRows)
        }
        if workspace.prunedAssignments.count < count {
            workspace.prunedAssignments = [Int32](repeating: 0, count: search.blockRows)
        }
        // The rows to compute, side by side unless they are all of them.
        func compute(_ computed: FloatRows) throws {
            do {
                try workspace.prunedAssignments.withUnsafeMutableBufferPointer { chosen in
                    try workspace.prunedDistances.withUnsafeMutableBufferPointer { exact in
                        try search.assign(computed, firstRow: firstRow, source: source, workspace: workspace,
                                          assignments: chosen.baseAddress!, distances: exact.baseAddress!)
                    }
                }
            } catch {
                // A copied row's number is not its own: the whole block, in place, names the row.
                if count < rows.rows {
                    try search.assign(rows, firstRow: firstRow, source: source, workspace: workspace, assignments: out)
                }
                throw error
            }
            for (slot, i) in pending.enumerated() {
                let r = offset + i, a = workspace.prunedAssignments[slot]
                out[i] = a
                assignments[r] = a
                upper[r] = Self.roundedUp(workspace.prunedDistances[slot].squareRoot() * (1 + slack))
                lower.withUnsafeMutableBufferPointer { lower in
                    search.groupLowerBounds(slot: slot, row: computed.row(slot), excluding: Int(a), slack: slack,
                                            workspace: workspace, into: lower.baseAddress! + r * groups)
                }
            }
        }
        if count == rows.rows {
            try compute(rows)
        } else {
            workspace.reserve(&workspace.prunedRows, count * d)
            try workspace.prunedRows.withUnsafeMutableBufferPointer { copies in
                for (slot, i) in pending.enumerated() {
                    (copies.baseAddress! + slot * d).update(from: rows.row(i), count: d)
                }
                try compute(FloatRows(base: copies.baseAddress!, rows: count, dimension: d, stride: d))
            }
        }
    }

    /// The bound test over a block (`cb_prune_filter`): rows that keep their centre get it in
    /// `out` and their updated bounds; the others are listed in `workspace.undecided`.
    /// Returns their number.
    private mutating func filter(_ rows: FloatRows, offset: Int, out: UnsafeMutablePointer<Int32>,
                                 workspace: KernelWorkspace) -> Int {
        let d = search.codebook.dimension, groups = Self.groups
        if workspace.prunedUndecided.count < rows.rows {
            workspace.prunedUndecided = [Int32](repeating: 0, count: search.blockRows)
        }
        let count = search.codebook.centres.withUnsafeBufferPointer { centres in
            assignments.withUnsafeBufferPointer { assignments in
                upper.withUnsafeMutableBufferPointer { upper in
                    lower.withUnsafeMutableBufferPointer { lower in
                        workspace.prunedUndecided.withUnsafeMutableBufferPointer { undecided in
                            cb_prune_filter(rows.base, rows.stride, rows.rows, d, centres.baseAddress!,
                                            assignments.baseAddress! + offset, upper.baseAddress! + offset,
                                            lower.baseAddress! + offset * groups, drift, groupDrift, slack, out,
                                            undecided.baseAddress!)
                        }
                    }
                }
            }
        }
        workspace.undecided.append(contentsOf: workspace.prunedUndecided[..<count].lazy.map { Int($0) })
        return count
    }

    /// The float32 value nearest `value` that is not below it (+∞ past float32's range, NaN kept).
    static func roundedUp(_ value: Double) -> Float {
        let rounded = Float(value)
        return Double(rounded) < value ? rounded.nextUp : rounded
    }
}

extension NearestCentreSearch {
    /// Lower bounds, for row `slot` of the last `assign` call (of at most `blockRows` rows,
    /// whose row is `x`), on its distance to the nearest centre of each group
    /// (`PrunedAssignment.groups`) other than centre `excluded`, from that call's screened
    /// values (see `PrunedAssignment` for the rounding); 0 where no bound can be given.
    func groupLowerBounds(slot: Int, row x: UnsafePointer<Float>, excluding excluded: Int, slack: Double,
                          workspace: KernelWorkspace, into lower: UnsafeMutablePointer<Float>) {
        let groups = PrunedAssignment.groups, k = codebook.k
        func bounds(_ lanes: UnsafePointer<CBScreenLanes>) {
            cb_prune_lower_bounds(lanes, Int32(excluded), x, codebook.dimension, boundScale, largestNorm, slack, lower)
        }
        switch screen {
        case .fused:
            workspace.screenState.withUnsafeBytes { state in
                bounds((state.baseAddress! + slot * MemoryLayout<CBScreenLanes>.stride).assumingMemoryBound(to: CBScreenLanes.self))
            }
        case .blas:
            // Each group's smallest value in `best`, with no index: never the excluded centre.
            var lanes = CBScreenLanes()
            withUnsafeMutableBytes(of: &lanes) { state in
                let best = state.baseAddress!.assumingMemoryBound(to: Float.self)
                let index = (state.baseAddress! + MemoryLayout<CBScreenLanes>.offset(of: \.index)!).assumingMemoryBound(to: Int32.self)
                for g in 0..<groups {
                    best[g] = .infinity
                    index[g] = -1
                }
                workspace.products.withUnsafeBufferPointer { products in
                    let row = products.baseAddress! + slot * k
                    for c in 0..<k where c != excluded {
                        let value = row[c] + norms[c]
                        // `min` would drop a NaN; keep it, so that the group gets no bound.
                        if !(value >= best[c % groups]) { best[c % groups] = value }
                    }
                }
            }
            bounds(&lanes)
        }
    }
}
