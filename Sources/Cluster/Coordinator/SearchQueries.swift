import ClusterProtocol
import Search
import Storage
import Synchronization

/// The vectors of a stored set, in image-key byte order.
struct SetVectors: Sendable {
    var keys: [String] = []
    var values: [Float] = []
    let dimension: Int

    /// Memory held, roughly.
    var bytes: Int { values.count * 4 + keys.reduce(0) { $0 + $1.utf8.count + 16 } }

    /// The row of image key `key`, by binary search on the keys' bytes.
    func row(of key: String) -> Int? {
        let target = Array(key.utf8)
        var low = 0, high = keys.count
        while low < high {
            let middle = (low + high) / 2
            if keys[middle].utf8.lexicographicallyPrecedes(target) { low = middle + 1 } else { high = middle }
        }
        return low < keys.count && keys[low].utf8.elementsEqual(target) ? low : nil
    }

    /// Reads every vector of `set`; each must have the set's dimension.
    init(set: String, store: CodebookStore) throws {
        guard let value = try store.set(named: set) else { throw ClusterError(.notFound, "no set named \"\(set)\"") }
        let dimension = try value.decode(SetRecord.self, key: "set \(set)").dimension
        self.dimension = dimension
        try store.forEachVector(set: set) { key, bytes in
            let floats = try Self.floatBytes(of: bytes, set: set, key: key, dimension: dimension)
            keys.append(key)
            let start = values.count
            values.append(contentsOf: repeatElement(0, count: dimension))
            values.withUnsafeMutableBytes { UnsafeMutableRawBufferPointer(rebasing: $0[(start * 4)...]).copyMemory(from: floats) }
        }
    }

    /// The float32 bytes of the stored value `bytes` of vector `set/key`, which must have
    /// `dimension` values.
    static func floatBytes(of bytes: UnsafeRawBufferPointer, set: String, key: String, dimension: Int) throws -> UnsafeRawBufferPointer {
        let floats = try StoredValue.parts(of: bytes, expecting: .vector, key: "\(set)/\(key)").floatBytes
        guard floats.count == 4 * dimension else {
            throw StoreError(.corrupt, "\(set)/\(key) has \(floats.count / 4) values; set \"\(set)\" has dimension \(dimension)")
        }
        return UnsafeRawBufferPointer(rebasing: bytes[floats])
    }
}

/// Sets' vectors kept in memory after a search, at most `capacity` bytes of them; a set is
/// dropped when it changes (`invalidate`), and a set read while it changed is not kept.
final class SearchCache: Sendable {
    private struct State {
        var sets: [String: SetVectors] = [:]
        var generations: [String: UInt64] = [:]
        var bytes = 0
    }

    private let state = Mutex(State())
    let capacity: Int

    init(capacity: Int) { self.capacity = capacity }

    /// The vectors of `set`, from memory or from `store`.
    func vectors(of set: String, store: CodebookStore) throws -> SetVectors {
        let (cached, generation) = state.withLock { ($0.sets[set], $0.generations[set, default: 0]) }
        if let cached { return cached }
        let vectors = try SetVectors(set: set, store: store)
        let bytes = vectors.bytes
        guard bytes <= capacity else { return vectors }
        state.withLock { state in
            guard state.generations[set, default: 0] == generation, state.sets[set] == nil else { return }
            // Evict whole sets, in no particular order, until this one fits.
            while state.bytes + bytes > capacity, let (name, old) = state.sets.first {
                state.sets[name] = nil
                state.bytes -= old.bytes
            }
            state.sets[set] = vectors
            state.bytes += bytes
        }
        return vectors
    }

    /// Whether the vectors of `set` are in memory.
    func holds(_ set: String) -> Bool { state.withLock { $0.sets[set] != nil } }

    /// How many times `set` has changed (been invalidated).
    func generation(of set: String) -> UInt64 { state.withLock { $0.generations[set, default: 0] } }

    /// Forgets `set`: its vectors changed, or it was deleted.
    func invalidate(_ set: String) {
        state.withLock { state in
            state.generations[set, default: 0] &+= 1
            if let old = state.sets.removeValue(forKey: set) { state.bytes -= old.bytes }
        }
    }
}

/// What a coordinator lends a SEARCH to run it on its workers.
struct SearchWorkers {
    let coordinator: Coordinator
    /// Workers registered when the request came.
    let count: Int
}

/// Where a SEARCH's set is searched: in memory here, or in partitions on the workers (at
/// most `limit` such searches at once).
private enum SearchedSet {
    case here(SetVectors)
    case split(SplitSet, deadline: Duration, limit: Int)

    var dimension: Int {
        switch self {
        case .here(let vectors): vectors.dimension
        case .split(let set, _, _): set.dimension
        }
    }

    var keys: [String] {
        switch self {
        case .here(let vectors): vectors.keys
        case .split(let set, _, _): set.keys
        }
    }

    /// The vector of `key` in `set`.
    func vector(of key: String, in set: String, store: CodebookStore) throws -> [Float] {
        switch self {
        case .here(let vectors):
            guard let row = vectors.row(of: key) else { throw ClusterError(.notFound, "no vector \(set)/\(key)") }
            return Array(vectors.values[row * vectors.dimension ..< (row + 1) * vectors.dimension])
        case .split(let split, _, _):
            guard let value = try store.vectorValue(set: set, key: key) else { throw ClusterError(.notFound, "no vector \(set)/\(key)") }
            let floats = try SetVectors.floatBytes(of: value.bytes, set: set, key: key, dimension: split.dimension)
            return (0..<split.dimension).map { floats.loadUnaligned(fromByteOffset: 4 * $0, as: Float.self) }
        }
    }

    /// Each query's best `top` rows, to `completion`, once: at once when searched here, from
    /// another thread when split (unless this throws). A split search beyond `limit` running
    /// in `splitSets` is refused (`limit`).
    func search(_ queries: [Float], top: Int, splitSets: SplitSets,
                completion: @escaping @Sendable (Result<[[Neighbour]], any Error>) -> Void) throws {
        switch self {
        case .here(let vectors):
            completion(.success(try queries.withUnsafeBufferPointer { q in
                try vectors.values.withUnsafeBufferPointer { v in
                    try InnerProductSearch.search(queries: q, queryCount: queries.count / vectors.dimension, vectors: v,
                                                  rows: vectors.keys.count, dimension: vectors.dimension, top: top)
                }
            }))
        case .split(let set, let deadline, let limit):
            try splitSets.startSearch(limit: limit)
            do {
                try set.start(queries: queries, top: top, deadline: deadline) { found in
                    splitSets.endSearch()
                    completion(found)
                }
            } catch {
                splitSets.endSearch()
                throw error
            }
        }
    }
}

extension StoreQueries {
    /// Answers `request` here (without workers).
    func search(_ request: SearchRequest, message: WireMessage) throws -> WireMessage {
        let answer = Mutex<Result<WireMessage, any Error>?>(nil)
        search(request, message: message, workers: nil) { result in answer.withLock { $0 = result } }
        // Searched here, the reply has come already.
        return try answer.withLock { $0! }.get()
    }

    /// Answers `request` through `reply`, once: on `workers`, in partitions of the set, if
    /// the request asks for it or the set is larger than the search cache and any are
    /// registered, from another thread when that search ends; here and at once otherwise.
    func search(_ request: SearchRequest, message: WireMessage, workers: SearchWorkers?,
                reply: @escaping @Sendable (Result<WireMessage, any Error>) -> Void) {
        do {
            let (searched, queries, queryKeys) = try prepareSearch(request, message: message, workers: workers)
            try searched.search(queries, top: request.top, splitSets: splitSets) { found in
                let keys = searched.keys
                reply(found.map { found in
                    let results = found.enumerated().map { query, neighbours in
                        SearchReply.Result(query: queryKeys?[query], keys: neighbours.map { keys[$0.row] })
                    }
                    return WireMessage(header: WireHeader(.searchReply), metadata: SearchReply(results: results),
                                       arrays: found.map { Frame.encode($0.map(\.score)) })
                })
            }
        } catch {
            reply(.failure(error))
        }
    }

    /// Where `request`'s set is searched, and its queries (projected), each with its key if
    /// it has one; throws if the request cannot be answered.
    private func prepareSearch(_ request: SearchRequest, message: WireMessage,
                               workers: SearchWorkers?) throws -> (SearchedSet, queries: [Float], queryKeys: [String]?) {
        guard (1...SearchRequest.maximumTop).contains(request.top) else {
            throw ClusterError(.invalidRequest, "top must be 1…\(SearchRequest.maximumTop) (got \(request.top))")
        }
        guard [request.key != nil, request.querySet != nil, request.queries != nil].filter({ $0 }).count == 1 else {
            throw ClusterError(.invalidRequest, "SEARCH needs exactly one of key, querySet and queries")
        }
        let searched = try searchedSet(request, workers: workers)
        let d = searched.dimension
        let projection = try request.pca.map { try store.principalComponents(named: $0) }
        if let projection, let name = request.pca {
            guard request.key == nil else {
                throw ClusterError(.invalidRequest, "a key's vector is in set \"\(request.set)\" already: SEARCH with a PCA takes querySet or queries")
            }
            guard projection.outputDimension == d else {
                throw ClusterError(.invalidRequest, "PCA model \"\(name)\" projects to \(projection.outputDimension) values but set \"\(request.set)\" has dimension \(d)")
            }
        }
        // The queries' dimension: the PCA's input, or the set's.
        let qd = projection?.inputDimension ?? d
        var queries: [Float], queryKeys: [String]?
        if let key = request.key {
            queries = try searched.vector(of: key, in: request.set, store: store)
            queryKeys = [key]
        } else if let querySet = request.querySet {
            let stored = try searchCache.vectors(of: querySet, store: store)
            guard stored.dimension == qd else {
                throw ClusterError(.invalidRequest, "set \"\(querySet)\" has dimension \(stored.dimension), "
                                   + (request.pca.map { "PCA model \"\($0)\" takes" } ?? "set \"\(request.set)\"") + " \(qd)")
            }
            (queries, queryKeys) = (stored.values, stored.keys)
        } else {
            let count = request.queries!
            guard (1...SearchRequest.maximumQueries).contains(count) else {
                throw ClusterError(.invalidRequest, "queries must be 1…\(SearchRequest.maximumQueries) (got \(count))")
            }
            guard message.arrays.count == 1 else { throw ClusterError(.invalidRequest, "SEARCH with queries needs one array frame (got \(message.arrays.count))") }
            queries = try message.array(0, as: Float.self)
            guard queries.count == count * qd else {
                let expected = (request.pca.map { "PCA model \"\($0)\" takes" } ?? "set \"\(request.set)\" has dimension") + " \(qd)"
                throw ClusterError(.invalidRequest, queries.count % count == 0
                                   ? "the queries have \(queries.count / count) values each, but \(expected)"
                                   : "the query array has \(queries.count) values; \(count) queries of \(qd) values are \(count * qd)")
            }
        }
        let queryCount = queries.count / qd
        guard queryCount <= SearchRequest.maximumQueries, queryCount * request.top <= SearchRequest.maximumResults else {
            throw ClusterError(.limit, "\(queryCount) queries × top \(request.top) is above \(SearchRequest.maximumResults) results "
                               + "(at most \(SearchRequest.maximumQueries) queries)")
        }
        if let bad = queries.firstIndex(where: { !$0.isFinite }) {
            throw ClusterError(.invalidRequest, "query \(bad / qd) has a non-finite value (\(queries[bad])) at position \(bad % qd)")
        }
        if let projection { queries = projection.project(queries, rows: queryCount) }
        return (searched, queries, queryKeys)
    }

    /// Where `request`'s set is searched (see `search`).
    private func searchedSet(_ request: SearchRequest, workers: SearchWorkers?) throws -> SearchedSet {
        let available = workers.flatMap { $0.count > 0 ? $0 : nil }
        guard request.split != true || available != nil else {
            throw ClusterError(.invalidRequest, "a split search runs on a coordinator's workers, and none are registered")
        }
        guard request.split != false, let available, request.split == true || !searchCache.holds(request.set) else {
            return .here(try searchCache.vectors(of: request.set, store: store))
        }
        let set: SplitSet
        do {
            set = try splitSets.plan(request.set, generation: searchCache.generation(of: request.set), store: store,
                                     coordinator: available.coordinator)
        } catch let error as ClusterError where error.code == .limit && request.split != true {
            // Vectors too long for a partition to travel: searched here, as without workers.
            return .here(try searchCache.vectors(of: request.set, store: store))
        }
        guard request.split == true || set.bytes > searchCache.capacity else {
            return .here(try searchCache.vectors(of: request.set, store: store))
        }
        let settings = available.coordinator.settings
        return .split(set, deadline: settings.splitSearchDeadline, limit: settings.maximumSplitSearches)
    }
}
