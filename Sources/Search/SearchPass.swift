import Clustering
import Descriptors

/// Exact search as a pass over shards of a set's vectors (rows in key order): each shard
/// gives every query's best `top` rows of its own, and the shards' lists merge into the
/// whole set's. When the shards' rows are multiples of `InnerProductSearch.blockRows` (and
/// start at such a multiple), every score is the same sgemm's as in one search over the
/// whole set, so the merged lists equal it bit for bit (scores, then rows, for ties).
public struct SearchPass: ShardComputation {
    /// The queries, row-major, `queryCount × dimension`.
    public let queries: [Float]
    public let queryCount: Int
    public let dimension: Int
    public let top: Int
    /// The whole set's row number of the shard's first row: neighbours are numbered in the
    /// whole set.
    public var firstRow = 0

    /// Throws `.invalidArgument` unless `top` and `dimension` are at least 1 and `queries`
    /// holds whole queries (at least one).
    public init(queries: [Float], dimension: Int, top: Int) throws {
        guard top >= 1, dimension >= 1, !queries.isEmpty, queries.count % dimension == 0 else {
            throw DescriptorError(.invalidArgument, "top \(top) of \(queries.count) query values of dimension \(dimension); "
                                  + "top and dimension are at least 1, and the queries whole and at least one")
        }
        self.queries = queries
        self.dimension = dimension
        self.top = top
        queryCount = queries.count / dimension
    }

    public func statistics(of rows: DescriptorMatrix, shard index: Int, workspace: KernelWorkspace) throws -> NearestRows {
        guard rows.dimension == dimension else {
            throw DescriptorError(.dimensionMismatch, "the shard's rows have \(rows.dimension) values; the queries \(dimension)",
                                  path: rows.source)
        }
        var scratch: [Float] = []
        let found = try rows.withFloatRows(0..<rows.rows, scratch: &scratch) { block in
            // The search takes packed rows: a view with gaps between them is packed first.
            let packed = block.stride == dimension ? nil
                : (0..<block.rows).flatMap { Array(UnsafeBufferPointer(start: block.base + $0 * block.stride, count: dimension)) }
            return try queries.withUnsafeBufferPointer { q in
                func search(_ v: UnsafeBufferPointer<Float>) throws -> [[Neighbour]] {
                    try InnerProductSearch.search(queries: q, queryCount: queryCount, vectors: v, rows: block.rows,
                                                  dimension: dimension, top: top)
                }
                if let packed { return try packed.withUnsafeBufferPointer(search) }
                return try search(UnsafeBufferPointer(start: block.base, count: block.rows * dimension))
            }
        }
        return NearestRows(top: top, dimension: dimension, rows: rows.rows,
                           neighbours: found.map { $0.map { Neighbour(row: $0.row + firstRow, score: $0.score) } })
    }
}

/// Every query's best rows among the rows searched so far, best first (a higher score, or
/// an equal score and a lower row), at most `top` each.
public struct NearestRows: SufficientStatistics, Equatable {
    public let top: Int
    /// Values per row searched.
    public let dimension: Int
    /// Rows searched.
    public private(set) var rows: Int
    public private(set) var neighbours: [[Neighbour]]

    public init(top: Int, dimension: Int, rows: Int, neighbours: [[Neighbour]]) {
        self.top = top
        self.dimension = dimension
        self.rows = rows
        self.neighbours = neighbours
    }

    /// Keeps each query's best `top` of both lists (another shard's rows: no row is in both).
    public mutating func merge(_ other: NearestRows) {
        precondition(other.neighbours.count == neighbours.count, "merged search results are of the same queries")
        rows += other.rows
        for query in neighbours.indices {
            let a = neighbours[query], b = other.neighbours[query]
            var merged: [Neighbour] = []
            merged.reserveCapacity(min(top, a.count + b.count))
            var i = 0, j = 0
            while merged.count < top, i < a.count || j < b.count {
                if j == b.count || (i < a.count && a[i].ranksBefore(b[j])) {
                    merged.append(a[i])
                    i += 1
                } else {
                    merged.append(b[j])
                    j += 1
                }
            }
            neighbours[query] = merged
        }
    }
}
