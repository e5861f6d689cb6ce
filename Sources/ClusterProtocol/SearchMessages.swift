/// SEARCH metadata: the `top` vectors of `set` nearest to each query by inner product. The
/// queries are exactly one of: the stored vector `key` of the set, every vector of
/// `querySet`, or `queries` vectors in the request's array frame (f32[queries·D]).
public struct SearchRequest: Codable, Sendable, Equatable {
    public static let maximumTop = 10_000
    public static let maximumQueries = 10_000
    /// At most this many neighbours (queries × top) per reply.
    public static let maximumResults = 1_000_000
    public var set: String
    public var top: Int
    public var key: String?
    public var querySet: String?
    public var queries: Int?
    /// A stored PCA model the queries (of `querySet` or `queries`) are projected by first:
    /// they have its input dimension, the set its output dimension.
    public var pca: String?
    /// Whether the set is searched in partitions on the workers (true), on the coordinator
    /// (false), or, if absent, on the workers when it is larger than the coordinator's
    /// search memory and workers are registered.
    public var split: Bool?

    public init(set: String, top: Int, key: String? = nil, querySet: String? = nil, queries: Int? = nil, pca: String? = nil,
                split: Bool? = nil) {
        self.split = split
        self.pca = pca
        self.set = set
        self.top = top
        self.key = key
        self.querySet = querySet
        self.queries = queries
    }
}

/// SEARCH-REPLY metadata: one result per query, in query order; the scores follow as one
/// f32 array per result.
public struct SearchReply: Codable, Sendable, Equatable {
    public struct Result: Codable, Sendable, Equatable {
        /// The query's key, for queries that are stored vectors.
        public var query: String?
        /// The neighbours' image keys, best first.
        public var keys: [String]

        public init(query: String? = nil, keys: [String]) {
            self.query = query
            self.keys = keys
        }
    }

    public var results: [Result]

    public init(results: [Result]) {
        self.results = results
    }
}
