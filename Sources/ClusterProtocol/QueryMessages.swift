/// GET metadata: full vector keys (`set/imageKey`), at most `GetRequest.maximumKeys`.
public struct GetRequest: Codable, Sendable, Equatable {
    public static let maximumKeys = 4096
    public var keys: [String]
    public init(keys: [String]) { self.keys = keys }
}

/// One key of a GET-REPLY; found vectors' values follow as one f32 array each, in order.
public struct VectorEntry: Codable, Sendable, Equatable {
    public var key: String
    public var found: Bool
    public var encoding: EncodingJob.Encoding?
    public var model: String?
    public var flags: Int?
    public var dimension: Int?

    public init(key: String, found: Bool, encoding: EncodingJob.Encoding? = nil, model: String? = nil, flags: Int? = nil,
                dimension: Int? = nil) {
        self.key = key
        self.found = found
        self.encoding = encoding
        self.model = model
        self.flags = flags
        self.dimension = dimension
    }
}

/// GET-REPLY metadata.
public struct GetReply: Codable, Sendable, Equatable {
    public var entries: [VectorEntry]

    public init(entries: [VectorEntry]) {
        self.entries = entries
    }
}

/// LIST metadata: vector keys starting with `prefix`, after `after`, at most `limit`
/// (at most `ListRequest.maximumLimit`).
public struct ListRequest: Codable, Sendable, Equatable {
    public static let maximumLimit = 100_000
    public var prefix: String
    public var after: String?
    public var limit: Int
    public init(prefix: String, after: String? = nil, limit: Int) {
        self.prefix = prefix
        self.after = after
        self.limit = limit
    }
}

/// LIST-REPLY metadata: pass the last key as `after` for the next page while `more`.
public struct ListReply: Codable, Sendable, Equatable {
    public var keys: [String]
    public var more: Bool

    public init(keys: [String], more: Bool) {
        self.keys = keys
        self.more = more
    }
}

/// DESCRIBE metadata: one model or one set; `values` asks for a model's arrays.
public struct DescribeRequest: Codable, Sendable, Equatable {
    public var model: String?
    public var set: String?
    public var values: Bool?
    public init(model: String? = nil, set: String? = nil, values: Bool? = nil) {
        self.model = model
        self.set = set
        self.values = values
    }
}

/// DESCRIBE-REPLY metadata; with `values`, a model's arrays follow (centres; or means,
/// variances, priors).
public struct DescribeReply: Codable, Sendable, Equatable {
    public var model: ModelRecord?
    public var set: SetRecord?

    public init(model: ModelRecord? = nil, set: SetRecord? = nil) {
        self.model = model
        self.set = set
    }
}

/// IMPORT metadata: store the model in the arrays (centres; or means, variances, priors)
/// under `name`. Replied to with DESCRIBE-REPLY.
public struct ImportRequest: Codable, Sendable, Equatable {
    public var name: String
    public var kind: TrainingJob.Kind
    public var k: Int
    public var dimension: Int
    public var replace: Bool
    /// A PCA: whether it whitens (absent: false).
    public var whiten: Bool?
    public init(name: String, kind: TrainingJob.Kind, k: Int, dimension: Int, replace: Bool, whiten: Bool? = nil) {
        self.whiten = whiten
        self.name = name
        self.kind = kind
        self.k = k
        self.dimension = dimension
        self.replace = replace
    }
}

/// CATALOG-REPLY metadata: every model and set.
public struct CatalogReply: Codable, Sendable, Equatable {
    public struct Model: Codable, Sendable, Equatable {
        public var name: String
        public var record: ModelRecord

        public init(name: String, record: ModelRecord) {
            self.name = name
            self.record = record
        }
    }

    public struct Set: Codable, Sendable, Equatable {
        public var name: String
        public var record: SetRecord

        public init(name: String, record: SetRecord) {
            self.name = name
            self.record = record
        }
    }

    /// A stored model or set whose value cannot be read, and why.
    public struct Unreadable: Codable, Sendable, Equatable {
        public var name: String
        public var reason: String

        public init(name: String, reason: String) {
            self.name = name
            self.reason = reason
        }
    }

    public var models: [Model]
    public var sets: [Set]
    /// Models and sets left out of `models` and `sets` as unreadable (absent from an older
    /// coordinator's reply).
    public var unreadableModels: [Unreadable]?
    public var unreadableSets: [Unreadable]?

    public init(models: [Model], sets: [Set], unreadableModels: [Unreadable] = [], unreadableSets: [Unreadable] = []) {
        self.models = models
        self.sets = sets
        self.unreadableModels = unreadableModels
        self.unreadableSets = unreadableSets
    }
}
