import ClusterProtocol
import Clustering
import Descriptors
import Foundation
import Storage
import Synchronization

/// The vectors of a stored set as the rows vector whitening learns from (each raised to the
/// power with its sign and L2-normalised), read from the store block by block in key order
/// on this process's threads: at most a block per thread in memory, never the whole set.
///
/// Its principal components come from the covariance (`run` of a covariance pass, D×D) or,
/// for sets of fewer vectors than values per vector, from the vectors' Gram matrix (N×N,
/// `PrincipalComponents(gramOfRows:…)`), as `method` says.
struct StoredSetBackend: PrincipalComponentsSource {
    /// How the components are computed.
    enum Method: Sendable { case covariance, gram }

    let store: CodebookStore
    let set: String
    /// The set's image keys, in byte order, as read when the backend was made.
    let keys: [String]
    let dimension: Int
    let power: Double
    let method: Method
    let plan: ShardPlan
    let threads: Int

    /// The vectors of `set` (which must exist) whose `keys` are given, or all of them.
    init(set: String, store: CodebookStore, power: Double, method: Method, keys: [String]? = nil, shardRows: Int,
         threads: Int = ProcessInfo.processInfo.activeProcessorCount) throws {
        guard let value = try store.set(named: set) else { throw StoreError(.notFound, "no set named \"\(set)\"") }
        dimension = try value.decode(SetRecord.self, key: "set \(set)").dimension
        let keys = try keys ?? Self.keys(of: set, store: store)
        self.keys = keys
        self.store = store
        self.set = set
        self.power = power
        self.method = method
        plan = ShardPlan(totalRows: keys.count, shardRows: shardRows)
        self.threads = max(1, threads)
    }

    /// The image keys of `set`, in byte order: at most `limit` of them.
    static func keys(of set: String, store: CodebookStore, limit: Int = .max) throws -> [String] {
        let prefix = "\(set)/"
        var keys: [String] = []
        while keys.count < limit {
            let page = try store.vectorKeys(prefix: prefix, after: keys.last.map { prefix + $0 }, limit: min(4096, limit - keys.count))
            guard !page.isEmpty else { break }
            keys += page.map { String($0.dropFirst(prefix.count)) }
        }
        return keys
    }

    var rows: Int { keys.count }

    /// The prepared vectors of rows `range` (row-major), each read from the store and checked.
    func vectors(_ range: Range<Int>) throws -> [Float] {
        var values = [Float](repeating: 0, count: range.count * dimension)
        try values.withUnsafeMutableBytes { target in
            for (index, key) in keys[range].enumerated() {
                guard let stored = try store.vectorValue(set: set, key: key) else {
                    throw StoreError(.notFound, "vector \(set)/\(key) was deleted while the set was being read")
                }
                let floats = try Self.floatBytes(of: stored.bytes, set: set, key: key, dimension: dimension)
                UnsafeMutableRawBufferPointer(rebasing: target[index * 4 * dimension ..< (index + 1) * 4 * dimension])
                    .copyMemory(from: UnsafeRawBufferPointer(rebasing: stored.bytes[floats]))
            }
        }
        PCAProjection.prepareVectors(&values, dimension: dimension, power: power)
        return values
    }

    /// Where the float32 values of the stored vector `set/key` (`bytes`, a `StoredValue`) are,
    /// checked to be the set's `dimension`.
    static func floatBytes(of bytes: UnsafeRawBufferPointer, set: String, key: String, dimension: Int) throws -> Range<Int> {
        let floats = try StoredValue.parts(of: bytes, expecting: .vector, key: "\(set)/\(key)").floatBytes
        guard floats.count == 4 * dimension else {
            throw StoreError(.corrupt, "\(set)/\(key) has \(floats.count / 4) values; set \"\(set)\" has dimension \(dimension)")
        }
        return floats
    }

    func run<C: ShardComputation>(_ computation: C) async throws -> C.Statistics {
        let merger = Mutex(OrderedMerger<C.Statistics>(shardCount: plan.count))
        let backend = self
        try await ParallelWork.run(count: plan.count, threads: threads) { shard, workspace in
            let range = backend.plan.rows(of: shard)
            let rows = try DescriptorMatrix(rows: range.count, dimension: backend.dimension, values: try backend.vectors(range),
                                            firstRow: range.lowerBound, source: "set \(backend.set)")
            let statistics = try computation.statistics(of: rows, shard: shard, workspace: workspace)
            merger.withLock { _ = $0.add(statistics, shard: shard) }
        }
        guard let result = merger.withLock({ $0.result }) else { throw ClusteringError(.invalidArgument, "set \"\(set)\" has no vectors") }
        return result
    }

    func principalComponents(kept: Int) async throws -> PrincipalComponents {
        switch method {
        case .covariance:
            return try await PrincipalComponents.covariance(of: self, kept: kept)
        case .gram:
            return try PrincipalComponents(gramOfRows: rows, dimension: dimension, kept: kept) { range, target in
                for (index, value) in try vectors(range).enumerated() { target[index] = Double(value) }
            }
        }
    }
}
