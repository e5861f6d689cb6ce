import ClusterProtocol

/// Anything that answers Codebook's client requests: a coordinator over ZeroMQ
/// (`ClusterClient`) or a store read directly (`StoreQueries`). The queries below work with
/// either.
public protocol Requester {
    /// The reply to `message`; throws `ClusterError` for an error (code `.notFound` for a missing one).
    func request(_ message: WireMessage) throws -> WireMessage
}

extension Requester {
    /// Vectors by full key (`set/imageKey`): each entry, with the values of those found.
    /// A single missing key throws a `.notFound` `ClusterError`.
    public func get(_ keys: [String]) throws -> [(entry: VectorEntry, values: [Float]?)] {
        let reply = try request(WireMessage(header: WireHeader(.get), metadata: GetRequest(keys: keys)))
        var next = 0
        return try reply.decode(GetReply.self).entries.map { entry in
            guard entry.found else { return (entry, nil) }
            defer { next += 1 }
            return (entry, try reply.array(next, as: Float.self, count: entry.dimension))
        }
    }

    /// One page of vector keys starting with `prefix`.
    public func list(prefix: String, after: String? = nil, limit: Int) throws -> ListReply {
        try request(WireMessage(header: WireHeader(.list), metadata: ListRequest(prefix: prefix, after: after, limit: limit)))
            .decode(ListReply.self)
    }

    /// A model's or a set's record; with `values`, the reply's arrays hold the model.
    public func describe(_ query: DescribeRequest) throws -> (DescribeReply, WireMessage) {
        let reply = try request(WireMessage(header: WireHeader(.describe), metadata: query))
        return (try reply.decode(DescribeReply.self), reply)
    }

    public func catalog() throws -> CatalogReply {
        try request(WireMessage(header: WireHeader(.catalog))).decode(CatalogReply.self)
    }

    /// Stores a model (VLFeat's or another trainer's) under `name`.
    public func importModel(_ request: ImportRequest, arrays: [[UInt8]]) throws -> ModelRecord {
        let reply = try self.request(WireMessage(header: WireHeader(.importModel), metadata: request, arrays: arrays))
        guard let record = try reply.decode(DescribeReply.self).model else { throw ClusterError(.malformed, "IMPORT answered without a model") }
        return record
    }

    /// Stores the vectors of `request.set` projected by a PCA model in the new set `request.into`; its record.
    public func transformSet(_ request: TransformSetRequest) throws -> SetRecord {
        let reply = try self.request(WireMessage(header: WireHeader(.transformSet), metadata: request))
        guard let record = try reply.decode(DescribeReply.self).set else { throw ClusterError(.malformed, "TRANSFORM-SET answered without a set") }
        return record
    }

    /// The `top` nearest vectors of a set for each query: its image keys and scores, best first.
    /// `vectors` holds the `request.queries` query vectors back to back, if the request has them.
    public func search(_ request: SearchRequest, vectors: [Float] = []) throws -> [(query: String?, keys: [String], scores: [Float])] {
        let reply = try self.request(WireMessage(header: WireHeader(.search), metadata: request,
                                                 arrays: request.queries == nil ? [] : [Frame.encode(vectors)]))
        return try reply.decode(SearchReply.self).results.enumerated().map { index, result in
            (result.query, result.keys, try reply.array(index, as: Float.self, count: result.keys.count))
        }
    }
}
