import Descriptors

/// A seeded sample of rows drawn across all shards, for initialisation on corpora far
/// larger than memory: shard s contributes ⌊S·end_s/N⌋ − ⌊S·start_s/N⌋ rows (S in all),
/// chosen by a generator seeded with (seed, s), so the sample is the same whoever reads
/// which shard.
public struct RowSample: SufficientStatistics, Equatable {
    public let dimension: Int
    /// Absolute row indices, ascending.
    public var rowIndices: [Int]
    /// The rows' values, row-major.
    public var values: [Float]

    public init(dimension: Int) {
        self.dimension = dimension
        rowIndices = []
        values = []
    }

    public var count: Int { rowIndices.count }

    public mutating func merge(_ other: RowSample) {
        rowIndices += other.rowIndices
        values += other.values
    }
}

/// The sampling pass (see `RowSample`).
public struct RowSamplePass: ShardComputation {
    public let sampleSize: Int
    public let totalRows: Int
    public let seed: UInt64

    public init(sampleSize: Int, totalRows: Int, seed: UInt64) {
        self.sampleSize = min(sampleSize, totalRows)
        self.totalRows = totalRows
        self.seed = seed
    }

    /// Rows the shard of rows `rows` contributes: ⌊S·end/N⌋ − ⌊S·start/N⌋ (exact: the
    /// products are taken in double width).
    public func quota(of rows: Range<Int>) -> Int {
        func share(_ end: Int) -> Int { totalRows.dividingFullWidth(sampleSize.multipliedFullWidth(by: end)).quotient }
        return share(rows.upperBound) - share(rows.lowerBound)
    }

    /// Room for the whole sample.
    public func reserveMergeCapacity(in first: inout RowSample) {
        first.rowIndices.reserveCapacity(sampleSize)
        let (values, overflow) = sampleSize.multipliedReportingOverflow(by: first.dimension)
        if !overflow { first.values.reserveCapacity(values) }
    }

    public func statistics(of rows: DescriptorMatrix, shard index: Int, workspace: KernelWorkspace) throws -> RowSample {
        var sample = RowSample(dimension: rows.dimension)
        let start = rows.firstRow
        let quota = quota(of: start ..< start + rows.rows)
        guard quota > 0 else { return sample }
        // Selection sampling (Knuth's Algorithm S): `quota` of `rows.rows`, in row order.
        var generator = SeededGenerator(seed: seed, stream: UInt64(index))
        var needed = quota
        for i in 0..<rows.rows where needed > 0 {
            if Double(rows.rows - i) * generator.nextUnit() < Double(needed) {
                try rows.checkRows(i ..< i + 1)
                let values = try rows.row(i)
                if let bad = values.firstIndex(where: { !$0.isFinite }) {
                    throw DescriptorError(.nonFinite, "row \(start + i) has a NaN or infinite value (dimension \(bad))",
                                          path: rows.source, location: "row \(start + i)")
                }
                sample.rowIndices.append(start + i)
                sample.values += values
                needed -= 1
            }
        }
        // Each read maps the pages around its row (fault-around): on a corpus larger than
        // memory, hand the shard's pages back as RowScan does.
        if (rows.file?.size ?? 0) > RowScan.residentBudget { rows.release(0..<rows.rows) }
        return sample
    }
}
