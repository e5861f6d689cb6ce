import Clustering
import Search

/// A search task's partition of a stored set: rows `firstRow ..< firstRow + rowCount` of
/// the set's vectors in key order, as the set was at `generation` (a number the
/// coordinator raises whenever a vector of the set is written). A worker may keep a
/// partition it was sent and search it again while the set's generation is the same.
public struct SetPartition: Codable, Sendable, Equatable {
    public var set: String
    public var generation: UInt64
    /// Whether the partition's vectors follow, as the task's last array (f32[rowCount·D]);
    /// without them the worker searches its own copy, or answers with a retryable FAILURE.
    public var includesVectors: Bool
    /// With the vectors: what shows later that this worker was sent them (`PartitionTicket`).
    public var ticket: String?

    public init(set: String, generation: UInt64, includesVectors: Bool, ticket: String? = nil) {
        self.set = set
        self.generation = generation
        self.includesVectors = includesVectors
        self.ticket = ticket
    }
}

extension SearchPass: WireComputation {
    public var description: PassDescription {
        PassDescription(kind: .search, dimension: dimension, top: top, queries: queryCount)
    }
    public var modelArrays: [[UInt8]] { [Frame.encode(queries)] }

    /// The pass for one task: its neighbours numbered from the task's first row.
    public func forTask(_ assignment: TaskAssignment) -> SearchPass {
        var pass = self
        pass.firstRow = assignment.firstRow
        return pass
    }

    /// Decodes a search description and its queries (finite, `queries`·D of them).
    init(_ description: PassDescription, arrays message: WireMessage) throws {
        let top = try PassDecoder.positive(description.top, "top")
        guard top <= SearchRequest.maximumTop else { throw ClusterError.malformed("search top \(top) is above \(SearchRequest.maximumTop)") }
        let count = try PassDecoder.positive(description.queries, "queries")
        let queries = try message.array(0, as: Float.self, count: try PassDecoder.product(count, description.dimension))
        if let bad = queries.firstIndex(where: { !$0.isFinite }) {
            throw ClusterError.malformed("query \(bad / description.dimension) has a non-finite value at position \(bad % description.dimension)")
        }
        self = try SearchPass(queries: queries, dimension: description.dimension, top: top)
    }
}

/// A RESULT of a search task: arrays i64[queries] (each query's number of neighbours),
/// i64[n] (their rows in the whole set) and f32[n] (their scores), n the sum of the counts.
extension NearestRows: CheckedStatistics {
    /// `k`: the neighbours kept per query (`top`).
    public var shape: StatisticsShape { StatisticsShape(rows: rows, dimension: dimension, k: top) }

    public var arrays: [[UInt8]] {
        [Frame.encode(neighbours.map { Int64($0.count) }),
         Frame.encode(neighbours.flatMap { $0.map { Int64($0.row) } }),
         Frame.encode(neighbours.flatMap { $0.map(\.score) })]
    }

    public init(shape: StatisticsShape, message: WireMessage) throws {
        guard let top = shape.k, (1...SearchRequest.maximumTop).contains(top) else {
            throw ClusterError.malformed("search statistics need k (top) in 1…\(SearchRequest.maximumTop)")
        }
        let counts = try message.array(0, as: Int64.self)
        guard counts.count <= SearchRequest.maximumQueries, counts.allSatisfy({ (0...Int64(top)).contains($0) }) else {
            throw ClusterError.malformed("\(counts.count) neighbour counts, or one outside 0…\(top)")
        }
        let total = counts.reduce(0) { $0 + Int($1) }
        let rows = try message.array(1, as: Int64.self, count: total)
        let scores = try message.array(2, as: Float.self, count: total)
        var start = 0
        var neighbours: [[Neighbour]] = []
        for count in counts.map({ Int($0) }) {
            neighbours.append((start ..< start + count).map { Neighbour(row: Int(truncatingIfNeeded: rows[$0]), score: scores[$0]) })
            start += count
        }
        self.init(top: top, dimension: shape.dimension, rows: shape.rows, neighbours: neighbours)
    }

    /// Rejects a search RESULT unless every query of the pass has at most `top` neighbours
    /// (no more than the shard's rows), each a row of the shard, none twice, none NaN, best
    /// first.
    public func check(_ shape: StatisticsShape, against pass: PassDescription, rows shard: Range<Int>) throws {
        try StatisticsCheck.rows(shape.rows, shard)
        guard top == pass.top, let queries = pass.queries, neighbours.count == queries else {
            throw ClusterError.malformed("top \(top) for \(neighbours.count) queries; the pass has top \(pass.top ?? 0) for \(pass.queries ?? 0)")
        }
        for (query, list) in neighbours.enumerated() {
            guard list.count <= min(top, shard.count) else {
                throw ClusterError.malformed("query \(query) has \(list.count) neighbours; at most \(min(top, shard.count)) are asked for")
            }
            for (index, neighbour) in list.enumerated() {
                guard shard.contains(neighbour.row) else {
                    throw ClusterError.malformed("query \(query) neighbour \(index) is row \(neighbour.row), not one of the shard's rows \(shard)")
                }
                guard !neighbour.score.isNaN else { throw ClusterError.malformed("query \(query) neighbour \(index) has score NaN") }
                guard index == 0 || list[index - 1].ranksBefore(neighbour) else {
                    throw ClusterError.malformed("query \(query) neighbour \(index) (row \(neighbour.row)) is out of order or repeated")
                }
            }
        }
    }
}
