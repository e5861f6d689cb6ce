/// Where a job's corpus is: workers open this path themselves (a shared or replicated
/// filesystem) and check that the file is the one the coordinator planned for.
public struct CorpusReference: Codable, Sendable, Equatable {
    public var path: String
    public var rows: Int
    public var dimension: Int
    public var fileSize: Int

    public init(path: String, rows: Int, dimension: Int, fileSize: Int) {
        self.path = path
        self.rows = rows
        self.dimension = dimension
        self.fileSize = fileSize
    }
}

/// TASK metadata: one shard of one pass.
public struct TaskAssignment: Codable, Sendable, Equatable {
    public var corpus: CorpusReference
    public var firstRow: Int
    public var rowCount: Int
    public var computation: PassDescription
    /// Whether the model arrays follow; a worker keeps the model of the pass it is working on.
    public var includesModel: Bool
    /// Encode passes: the images of this task (rows of the whole file).
    public var images: [ImageSlice]?

    public init(corpus: CorpusReference, firstRow: Int, rowCount: Int, computation: PassDescription, includesModel: Bool,
                images: [ImageSlice]? = nil) {
        self.corpus = corpus
        self.firstRow = firstRow
        self.rowCount = rowCount
        self.computation = computation
        self.includesModel = includesModel
        self.images = images
    }
}

/// READY metadata: who a worker is.
public struct WorkerIntroduction: Codable, Sendable, Equatable {
    public var name: String
    public var threads: Int
    public var pid: Int32?

    public init(name: String, threads: Int, pid: Int32? = nil) {
        self.name = name
        self.threads = threads
        self.pid = pid
    }
}

/// WELCOME metadata: the heartbeat the coordinator expects.
public struct HeartbeatTerms: Codable, Sendable, Equatable {
    public var intervalMilliseconds: Int
    public var liveness: Int

    public init(intervalMilliseconds: Int, liveness: Int) {
        self.intervalMilliseconds = intervalMilliseconds
        self.liveness = liveness
    }
}

/// FAILURE and ERROR-REPLY metadata.
public struct FailureReport: Codable, Sendable, Equatable {
    public var message: String
    /// For a worker's FAILURE: whether the task may simply be sent again (for example, the
    /// worker no longer holds the pass's model).
    public var retry: Bool?
    /// For an ERROR-REPLY: "not-found" when the key, model, set or job does not exist.
    public var code: String?

    public init(message: String, retry: Bool? = nil, code: String? = nil) {
        self.message = message
        self.retry = retry
        self.code = code
    }
}
