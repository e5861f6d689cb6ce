import ClusterProtocol
import Clustering
import Synchronization
import Storage

/// The store's side of the client protocol: GET, LIST, DESCRIBE, CATALOG, IMPORT, SEARCH and TRANSFORM-SET,
/// answered from a `CodebookStore`. The coordinator answers them with this; so do readers
/// that open the store directly (a RocksDB secondary instance).
public struct StoreQueries: Requester {
    public let store: CodebookStore
    /// Vector metadata seen before, decoded: every vector of a set shares its metadata, so a
    /// GET parses JSON once per set rather than once per vector.
    private let vectorRecords = VectorRecordCache()
    /// Sets' vectors kept for SEARCH.
    let searchCache: SearchCache
    /// Sets searched on a coordinator's workers.
    let splitSets = SplitSets()
    /// Raised when the coordinator stops: a TRANSFORM-SET under way ends, deleting its new set.
    let interruption = Interruption()

    /// Default of `searchCacheBytes`: 1 GiB.
    public static let defaultSearchCacheBytes = 1 << 30

    /// `searchCacheBytes` bounds the sets' vectors kept in memory between SEARCH requests
    /// (a larger set is read from the store for each request).
    public init(store: CodebookStore, searchCacheBytes: Int = defaultSearchCacheBytes) {
        self.store = store
        searchCache = SearchCache(capacity: searchCacheBytes)
    }

    /// Drops the vectors of `set` kept for SEARCH: call it whenever the set's vectors change.
    public func invalidateSearch(of set: String) { searchCache.invalidate(set) }

    /// The store's requests, each with its handler: the one list of them (the coordinator
    /// hands every type listed here to `request`).
    private static let handlers: [MessageType: @Sendable (StoreQueries, WireMessage) throws -> WireMessage] = [
        .get: { try $0.get(try $1.decode(GetRequest.self)) },
        .list: { try $0.list(try $1.decode(ListRequest.self)) },
        .describe: { try $0.describe(try $1.decode(DescribeRequest.self)) },
        .catalog: { queries, _ in try queries.catalog() },
        .importModel: { try $0.importModel(try $1.decode(ImportRequest.self), message: $1) },
        .search: { try $0.search(try $1.decode(SearchRequest.self), message: $1) },
        .transformSet: { try $0.transformSet(try $1.decode(TransformSetRequest.self)) },
    ]

    /// Whether requests of `type` are the store's (answered by `request`).
    public static func answers(_ type: MessageType) -> Bool { handlers[type] != nil }

    public func request(_ message: WireMessage) throws -> WireMessage {
        guard let handler = Self.handlers[message.header.type] else {
            throw ClusterError(.invalidRequest, "\(message.header.type) is not a store query")
        }
        return try handler(self, message)
    }

    private func get(_ request: GetRequest) throws -> WireMessage {
        guard request.keys.count <= GetRequest.maximumKeys else {
            throw ClusterError(.invalidRequest, "at most \(GetRequest.maximumKeys) keys per GET (got \(request.keys.count))")
        }
        var entries: [VectorEntry] = [], arrays: [[UInt8]] = []
        for key in request.keys {
            guard let slash = key.firstIndex(of: "/"),
                  let value = try store.vectorValue(set: String(key[..<slash]), key: String(key[key.index(after: slash)...])) else {
                entries.append(VectorEntry(key: key, found: false))
                continue
            }
            // The float32 bytes go into the reply as they are stored (both little-endian),
            // copied once from where RocksDB keeps them.
            let (metadata, floatBytes) = try StoredValue.parts(of: value.bytes, expecting: .vector, key: key)
            let record = try vectorRecords.record(for: UnsafeRawBufferPointer(rebasing: value.bytes[metadata]), key: key)
            entries.append(VectorEntry(key: key, found: true, encoding: record.encoding, model: record.model,
                                       flags: record.flags, dimension: floatBytes.count / 4))
            arrays.append([UInt8](value.bytes[floatBytes]))
        }
        if request.keys.count == 1, entries[0].found == false {
            throw ClusterError(.notFound, "no vector \(request.keys[0])")
        }
        return WireMessage(header: WireHeader(.getReply), metadata: GetReply(entries: entries), arrays: arrays)
    }

    private func list(_ request: ListRequest) throws -> WireMessage {
        guard request.limit >= 1, request.limit <= ListRequest.maximumLimit else {
            throw ClusterError(.invalidRequest, "limit must be 1…\(ListRequest.maximumLimit) (got \(request.limit))")
        }
        let keys = try store.vectorKeys(prefix: request.prefix, after: request.after, limit: request.limit + 1)
        return WireMessage(header: WireHeader(.listReply),
                           metadata: ListReply(keys: Array(keys.prefix(request.limit)), more: keys.count > request.limit))
    }

    private func describe(_ request: DescribeRequest) throws -> WireMessage {
        if let name = request.model {
            guard let value = try store.model(named: name) else { throw ClusterError(.notFound, "no model named \"\(name)\"") }
            let model = try StoredModel(value, name: name)
            return WireMessage(header: WireHeader(.describeReply), metadata: DescribeReply(model: model.record),
                               arrays: request.values == true ? Self.arrays(of: model) : [])
        }
        if let name = request.set {
            guard let value = try store.set(named: name) else { throw ClusterError(.notFound, "no set named \"\(name)\"") }
            return WireMessage(header: WireHeader(.describeReply),
                               metadata: DescribeReply(set: try value.decode(SetRecord.self, key: "set \(name)")))
        }
        throw ClusterError(.invalidRequest, "DESCRIBE needs a model or a set")
    }

    static func arrays(of model: StoredModel) -> [[UInt8]] { model.arrays.map(Frame.encode) }

    /// Every readable model and set; the others are listed as unreadable, with the reason.
    private func catalog() throws -> WireMessage {
        var catalog = CatalogReply(models: [], sets: [])
        for name in try store.modelNames() {
            do {
                guard let value = try store.model(named: name) else { continue }
                catalog.models.append(CatalogReply.Model(name: name, record: try StoredModel(value, name: name).record))
            } catch {
                catalog.unreadableModels?.append(CatalogReply.Unreadable(name: name, reason: "\(error)"))
            }
        }
        for name in try store.setNames() {
            do {
                guard let value = try store.set(named: name) else { continue }
                catalog.sets.append(CatalogReply.Set(name: name, record: try value.decode(SetRecord.self, key: "set \(name)")))
            } catch {
                catalog.unreadableSets?.append(CatalogReply.Unreadable(name: name, reason: "\(error)"))
            }
        }
        return WireMessage(header: WireHeader(.catalogReply), metadata: catalog)
    }

    private func importModel(_ request: ImportRequest, message: WireMessage) throws -> WireMessage {
        let k = request.k, d = request.dimension, kd = try PassDecoder.product(k, d)
        var record = ModelRecord(kind: request.kind, k: k, dimension: d, source: "imported")
        if request.kind == .pca { record.whiten = request.whiten ?? false }
        let model: StoredModel
        do {
            switch request.kind {
            case .kmeans:
                model = .codebook(try Codebook(k: k, dimension: d, centres: try message.array(0, as: Float.self, count: kd)), record)
            case .gmm:
                let mixture = try GaussianMixtureModel(k: k, dimension: d, means: try message.array(0, as: Float.self, count: kd),
                                                       variances: try message.array(1, as: Float.self, count: kd),
                                                       priors: try message.array(2, as: Float.self, count: k))
                try mixture.checkPriorsNormalised()
                model = .gaussianMixture(mixture, record)
            case .pca:
                let pca = try PrincipalComponents(dimension: d, mean: try message.array(0, as: Float.self, count: d),
                                                  components: try message.array(1, as: Float.self, count: kd),
                                                  eigenvalues: try message.array(2, as: Float.self, count: k))
                try pca.checkOrthogonal()
                model = .principalComponents(try PCAProjection(pca, whiten: record.whiten ?? false), record)
            }
        } catch let error as ClusterError where error.code == .malformed {
            throw ClusterError(.invalidRequest, "the imported arrays do not fit k=\(k), D=\(d): \(error)", underlying: error)
        }
        // The checked arrays go to the store as they are: no concatenated copy of the model.
        try store.putModel(named: request.name, metadata: try StoredValue(kind: .model, metadata: record).metadata,
                           arrays: model.arrays, replace: request.replace)
        return WireMessage(header: WireHeader(.describeReply), metadata: DescribeReply(model: record))
    }
}

/// Decoded `VectorRecord`s by their metadata bytes (a handful: one per set and model).
final class VectorRecordCache: Sendable {
    private let records = Mutex<[[UInt8]: VectorRecord]>([:])
    private static let capacity = 64

    func record(for metadata: UnsafeRawBufferPointer, key: String) throws -> VectorRecord {
        let bytes = Array(metadata)
        if let record = records.withLock({ $0[bytes] }) { return record }
        let record = try StoredValue.decodeMetadata(VectorRecord.self, from: bytes, of: .vector, key: key)
        records.withLock { cache in
            if cache.count >= Self.capacity { cache.removeAll() }
            cache[bytes] = record
        }
        return record
    }
}
