import CKernels
import Descriptors

/// Sufficient statistics of one k-means assignment pass: per cluster, the number of rows
/// assigned, the float64 sum of those rows, and the sum of their squared distances to the
/// centre (the objective's share). Optionally the per-cluster sums of squares, for
/// initialising a GMM from hard assignments.
public struct KMeansStatistics: SufficientStatistics, Equatable {
    /// Equal statistics, whatever their forms (sparse or dense).
    public static func == (a: Self, b: Self) -> Bool {
        guard a.listed == b.listed else { return a.expanded() == b.expanded() }
        return a.k == b.k && a.dimension == b.dimension && a.rows == b.rows && a.counts == b.counts && a.sums == b.sums
            && a.clusterObjective == b.clusterObjective && a.sumsOfSquares == b.sumsOfSquares
    }

    public let k: Int
    public let dimension: Int
    public var rows: Int
    /// The sparse form, as a RESULT may carry it: the clusters listed (ascending, each with
    /// rows), and then the arrays below hold theirs only, entry i being cluster `listed[i]`'s.
    /// nil: the dense form, entry c being cluster c's.
    public private(set) var listed: [Int]?
    public var counts: [Int]
    /// K×D, row-major (sparse form: m×D).
    public var sums: [Double]
    public var clusterObjective: [Double]
    /// K×D sums of x², present when the pass asked for them.
    public var sumsOfSquares: [Double]?
    /// Rows whose distances a pruned pass did not compute (see `PrunedAssignment`): how the
    /// statistics were obtained, not part of them, so `==` ignores it.
    public var skippedRows = 0
    /// Row × centre distances a pruned pass did not compute; like `skippedRows`, ignored by `==`.
    public var skippedPairs = 0

    public init(k: Int, dimension: Int, withSquares: Bool = false) {
        self.k = k
        self.dimension = dimension
        rows = 0
        counts = [Int](repeating: 0, count: k)
        sums = [Double](repeating: 0, count: k * dimension)
        clusterObjective = [Double](repeating: 0, count: k)
        sumsOfSquares = withSquares ? sums : nil
    }

    /// Statistics from their arrays, whose sizes the caller has checked: K counts and
    /// objectives, K·D sums (and sums of squares).
    public init(k: Int, dimension: Int, rows: Int, counts: [Int], sums: [Double], clusterObjective: [Double],
                sumsOfSquares: [Double]?) {
        self.init(k: k, listed: nil, dimension: dimension, rows: rows, counts: counts, sums: sums,
                  clusterObjective: clusterObjective, sumsOfSquares: sumsOfSquares)
    }

    /// Statistics in the sparse form (see `listed`), from arrays whose sizes the caller has
    /// checked: m counts and objectives, m·D sums (and sums of squares), m = `listed.count`.
    public init(k: Int, dimension: Int, rows: Int, listed: [Int], counts: [Int], sums: [Double], clusterObjective: [Double],
                sumsOfSquares: [Double]?) {
        self.init(k: k, listed: Optional(listed), dimension: dimension, rows: rows, counts: counts, sums: sums,
                  clusterObjective: clusterObjective, sumsOfSquares: sumsOfSquares)
    }

    private init(k: Int, listed: [Int]?, dimension: Int, rows: Int, counts: [Int], sums: [Double], clusterObjective: [Double],
                 sumsOfSquares: [Double]?) {
        let entries = listed?.count ?? k
        precondition(counts.count == entries && clusterObjective.count == entries && sums.count == entries * dimension
                         && (sumsOfSquares?.count ?? sums.count) == sums.count, "statistics arrays of the wrong sizes")
        self.k = k
        self.listed = listed
        self.dimension = dimension
        self.rows = rows
        self.counts = counts
        self.sums = sums
        self.clusterObjective = clusterObjective
        self.sumsOfSquares = sumsOfSquares
    }

    /// Σ_i ‖x_i − c_a(i)‖², the k-means objective of the centres that made this pass.
    public var objective: Double { clusterObjective.reduce(0, +) }

    /// Makes the statistics dense (nothing if they are).
    public mutating func expand() {
        guard let listed else { return }
        var dense = KMeansStatistics(k: k, dimension: dimension, withSquares: sumsOfSquares != nil)
        dense.rows = rows
        dense.skippedRows = skippedRows
        dense.skippedPairs = skippedPairs
        let d = dimension
        for (i, c) in listed.enumerated() {
            dense.counts[c] = counts[i]
            dense.clusterObjective[c] = clusterObjective[i]
            dense.sums.replaceSubrange(c * d ..< (c + 1) * d, with: sums[i * d ..< (i + 1) * d])
            if let squares = sumsOfSquares { dense.sumsOfSquares!.replaceSubrange(c * d ..< (c + 1) * d, with: squares[i * d ..< (i + 1) * d]) }
        }
        self = dense
    }

    /// The statistics in the dense form.
    public func expanded() -> KMeansStatistics {
        var copy = self
        copy.expand()
        return copy
    }

    /// Adds `other`, the statistics of the shards that follow, into these, which it makes
    /// dense first. A sparse `other` is added without being expanded: only its listed
    /// clusters' values, each added as the dense form would add it. The dense form adds 0
    /// to every other value, which changes nothing but a −0.0 into +0.0; these statistics
    /// hold −0.0 only if every shard sent −0.0 there (x + y is −0.0 only when both are), and
    /// a pass's sums, begun at +0.0, never are: so the merged bits are the same either way.
    public mutating func merge(_ other: KMeansStatistics) {
        precondition(other.k == k && other.dimension == dimension, "merging statistics of different shapes")
        expand()
        rows += other.rows
        skippedRows += other.skippedRows
        skippedPairs += other.skippedPairs
        if let listed = other.listed {
            add(other, listed: listed)
            return
        }
        for i in 0..<k {
            counts[i] += other.counts[i]
            clusterObjective[i] += other.clusterObjective[i]
        }
        for i in sums.indices { sums[i] += other.sums[i] }
        if sumsOfSquares != nil, let theirs = other.sumsOfSquares {
            for i in theirs.indices { sumsOfSquares![i] += theirs[i] }
        }
    }

    /// Adds sparse `other`'s values (entry i to cluster `listed[i]`) into these dense ones.
    private mutating func add(_ other: KMeansStatistics, listed: [Int]) {
        let d = dimension
        for (i, c) in listed.enumerated() {
            counts[c] += other.counts[i]
            clusterObjective[c] += other.clusterObjective[i]
            for j in 0..<d { sums[c * d + j] += other.sums[i * d + j] }
            if sumsOfSquares != nil, let theirs = other.sumsOfSquares {
                for j in 0..<d { sumsOfSquares![c * d + j] += theirs[i * d + j] }
            }
        }
    }
}

/// The k-means assignment pass: assigns every row to its nearest centre and accumulates
/// `KMeansStatistics`.
///
/// With `bounds`, the pass keeps each shard's distance bounds there and, on the next pass
/// over the same rows, skips the rows that provably keep their centre (`PrunedAssignment`):
/// the assignments, hence the statistics, are bit-identical either way.
public struct KMeansAssignmentPass: ShardComputation {
    public let search: NearestCentreSearch
    public let withSquares: Bool
    /// Where shard bounds are kept between passes; nil computes every distance.
    public var bounds: BoundCache?
    /// Names the rows the shards are taken from, in `bounds`' keys: whatever would change
    /// them (another corpus, a transform) must change the scope.
    public var boundScope = ""
    /// The pass's packed centre orders for the bounds' groups, shared by its shards.
    let layouts = CentreLayouts()

    public init(codebook: Codebook, withSquares: Bool = false, screen: NearestCentreSearch.Screen = .preferred) {
        search = NearestCentreSearch(codebook: codebook, screen: screen)
        self.withSquares = withSquares
    }

    /// Shard 0's statistics, which the others are merged into, made dense (a shard's
    /// statistics from a worker may be sparse).
    public func reserveMergeCapacity(in first: inout KMeansStatistics) { first.expand() }

    public func statistics(of rows: DescriptorMatrix, shard index: Int, workspace: KernelWorkspace) throws -> KMeansStatistics {
        let codebook = search.codebook
        let k = codebook.k, d = codebook.dimension
        var statistics = KMeansStatistics(k: k, dimension: d, withSquares: withSquares)
        statistics.rows = rows.rows
        var assignments = [Int32](repeating: 0, count: RowScan.blockRows)
        let key = BoundCache.Key(scope: boundScope, firstRow: rows.firstRow, rows: rows.rows)
        var pruned = bounds.map { PrunedAssignment(search: search, rows: rows.rows, previous: $0.take(key), layouts: layouts) }
        var normSums = [Double](repeating: 0, count: k)
        var scratch = [Double](repeating: 0, count: d)
        // Chunk by chunk, so the sums read rows the assignment has just had in cache.
        let chunk = pruned != nil ? PrunedAssignment.blockRows : search.blockRows
        try RowScan.forEachBlock(rows, workspace: workspace) { block, firstRow in
            try assignments.withUnsafeMutableBufferPointer { assigned in
                var start = 0
                while start < block.rows {
                    let count = min(chunk, block.rows - start)
                    let slice = FloatRows(base: block.row(start), rows: count, dimension: d, stride: block.stride)
                    if pruned != nil {
                        try pruned!.assign(slice, offset: firstRow - rows.firstRow + start, firstRow: firstRow + start,
                                           source: rows.source, workspace: workspace, out: assigned.baseAddress! + start)
                    } else {
                        try search.assign(slice, firstRow: firstRow + start, source: rows.source, workspace: workspace,
                                          assignments: assigned.baseAddress! + start)
                    }
                    cb_accumulate_assigned(block.row(start), block.stride, count, d, assigned.baseAddress! + start,
                                           &statistics.sums, &normSums, &statistics.counts)
                    start += count
                }
                if withSquares {
                    scratch.withUnsafeMutableBufferPointer { first in
                        statistics.sumsOfSquares!.withUnsafeMutableBufferPointer { squares in
                            for i in 0..<block.rows {
                                VectorMath.accumulateMoments(block.row(i), weight: 1, first: first.baseAddress!,
                                                             second: squares.baseAddress! + Int(assigned[i]) * d, d)
                            }
                        }
                    }
                }
            }
        }
        if let pruned, let bounds {
            bounds.keep(pruned.bounds, for: key)
            statistics.skippedRows = pruned.skipped
            statistics.skippedPairs = pruned.skippedPairs
        }
        // Σ‖x − c‖² = Σ‖x‖² − 2c·Σx + n‖c‖², in float64 (cancellation costs a few of its 16
        // digits; rounding below zero is clamped).
        for c in 0..<k where statistics.counts[c] > 0 {
            var cross = 0.0, centreNorm = 0.0
            for j in 0..<d {
                let centre = Double(codebook.centres[c * d + j])
                cross += centre * statistics.sums[c * d + j]
                centreNorm += centre * centre
            }
            statistics.clusterObjective[c] = max(0, normSums[c] - 2 * cross + Double(statistics.counts[c]) * centreNorm)
        }
        return statistics
    }
}
