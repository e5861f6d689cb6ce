import Descriptors

/// Per-dimension count, sum and sum of squares of a corpus (float64): its mean and
/// variance, which set the GMM's variance floor. The pass also rejects NaN and infinite
/// values before any training starts.
public struct MomentStatistics: SufficientStatistics, Equatable {
    public var rows: Int
    public var sums: [Double]
    public var sumsOfSquares: [Double]

    public init(dimension: Int) {
        rows = 0
        sums = [Double](repeating: 0, count: dimension)
        sumsOfSquares = sums
    }

    public mutating func merge(_ other: MomentStatistics) {
        rows += other.rows
        for j in sums.indices {
            sums[j] += other.sums[j]
            sumsOfSquares[j] += other.sumsOfSquares[j]
        }
    }

    /// Per-dimension variance (population), ≥ 0.
    public var variances: [Double] {
        guard rows > 0 else { return sums.map { _ in 0 } }
        let n = Double(rows)
        return sums.indices.map { j in
            let mean = sums[j] / n
            return max(0, sumsOfSquares[j] / n - mean * mean)
        }
    }
}

/// The moments pass (see `MomentStatistics`).
public struct MomentPass: ShardComputation {
    public let dimension: Int

    public init(dimension: Int) { self.dimension = dimension }

    public func statistics(of rows: DescriptorMatrix, shard index: Int, workspace: KernelWorkspace) throws -> MomentStatistics {
        var statistics = MomentStatistics(dimension: dimension)
        statistics.rows = rows.rows
        try RowScan.forEachBlock(rows, workspace: workspace) { block, firstRow in
            statistics.sums.withUnsafeMutableBufferPointer { sums in
                statistics.sumsOfSquares.withUnsafeMutableBufferPointer { squares in
                    for i in 0..<block.rows {
                        VectorMath.accumulateMoments(block.row(i), weight: 1, first: sums.baseAddress!,
                                                     second: squares.baseAddress!, dimension)
                    }
                }
            }
            try Self.requireFinite(block, firstRow: firstRow, of: rows)
        }
        return statistics
    }

    /// Throws for the first row of `block` (rows `firstRow…` of `rows`) with a NaN or
    /// infinite value.
    static func requireFinite(_ block: FloatRows, firstRow: Int, of rows: DescriptorMatrix) throws {
        for i in 0..<block.rows where !VectorMath.squaredNorm(block.row(i), block.dimension).isFinite {
            throw DescriptorError(.nonFinite, "row \(firstRow + i) has a NaN or infinite value (or one too large for float32 arithmetic)",
                                  path: rows.source, location: "row \(firstRow + i)")
        }
    }
}
