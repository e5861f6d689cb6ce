import CKernels
import Descriptors

/// Sufficient statistics of one k-means assignment pass: per cluster, the number of rows
/// assigned, the float64 sum of those rows, and the sum of their squared distances to the
/// centre (the objective's share). Optionally the per-cluster sums of squares, for
/// initialising a GMM from hard assignments.
public struct KMeansStatistics: SufficientStatistics, Equatable {
    public static func == (a: Self, b: Self) -> Bool {
        a.k == b.k && a.dimension == b.dimension && a.rows == b.rows && a.counts == b.counts && a.sums == b.sums
            && a.clusterObjective == b.clusterObjective && a.sumsOfSquares == b.sumsOfSquares
    }

    public let k: Int
    public let dimension: Int
    public var rows: Int
    public var counts: [Int]
    /// K×D, row-major.
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
        precondition(counts.count == k && clusterObjective.count == k && sums.count == k * dimension
                         && (sumsOfSquares?.count ?? sums.count) == sums.count, "statistics arrays of the wrong sizes")
        self.k = k
        self.dimension = dimension
        self.rows = rows
        self.counts = counts
        self.sums = sums
        self.clusterObjective = clusterObjective
        self.sumsOfSquares = sumsOfSquares
    }

    /// Σ_i ‖x_i − c_a(i)‖², the k-means objective of the centres that made this pass.
    public var objective: Double { clusterObjective.reduce(0, +) }

    public mutating func merge(_ other: KMeansStatistics) {
        precondition(other.k == k && other.dimension == dimension, "merging statistics of different shapes")
        rows += other.rows
        skippedRows += other.skippedRows
        skippedPairs += other.skippedPairs
        for i in 0..<k {
            counts[i] += other.counts[i]
            clusterObjective[i] += other.clusterObjective[i]
        }
        for i in sums.indices { sums[i] += other.sums[i] }
        if sumsOfSquares != nil, let theirs = other.sumsOfSquares {
            for i in theirs.indices { sumsOfSquares![i] += theirs[i] }
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

    public init(codebook: Codebook, withSquares: Bool = false, screen: NearestCentreSearch.Screen = .preferred) {
        search = NearestCentreSearch(codebook: codebook, screen: screen)
        self.withSquares = withSquares
    }

    public func statistics(of rows: DescriptorMatrix, shard index: Int, workspace: KernelWorkspace) throws -> KMeansStatistics {
        let codebook = search.codebook
        let k = codebook.k, d = codebook.dimension
        var statistics = KMeansStatistics(k: k, dimension: d, withSquares: withSquares)
        statistics.rows = rows.rows
        var assignments = [Int32](repeating: 0, count: RowScan.blockRows)
        let key = BoundCache.Key(scope: boundScope, firstRow: rows.firstRow, rows: rows.rows)
        var pruned = bounds.map { PrunedAssignment(search: search, rows: rows.rows, previous: $0.take(key)) }
        var normSums = [Double](repeating: 0, count: k)
        var scratch = [Double](repeating: 0, count: d)
        // Chunk by chunk, so the sums read rows the assignment has just had in cache.
        let chunk = search.blockRows
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
