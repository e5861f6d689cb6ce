import Features

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
    /// Extract passes: the image files of this task, in order.
    public var imageFiles: [ImageSource.Entry]?
    /// Search passes: the partition of the set whose rows `firstRow ..< firstRow + rowCount`
    /// are (the corpus then names no file).
    public var partition: SetPartition?

    public init(corpus: CorpusReference, firstRow: Int, rowCount: Int, computation: PassDescription, includesModel: Bool,
                images: [ImageSlice]? = nil, imageFiles: [ImageSource.Entry]? = nil, partition: SetPartition? = nil) {
        self.imageFiles = imageFiles
        self.corpus = corpus
        self.firstRow = firstRow
        self.rowCount = rowCount
        self.computation = computation
        self.includesModel = includesModel
        self.images = images
        self.partition = partition
    }
}

/// READY metadata: who a worker is.
public struct WorkerIntroduction: Codable, Sendable, Equatable {
    public var name: String
    public var threads: Int
    public var pid: Int32?
    /// Partitions of split searches it keeps from an earlier connection, most recently
    /// searched first: at most `maximumHeldPartitions` (see `PartitionTicket`).
    public var holds: [HeldPartition]?
    /// Whether it takes a k-means‖ round's candidates as an extension of the previous
    /// round's (`ModelExtension`); absent: false.
    public var extendsCandidates: Bool?

    /// The most `holds` a READY may name; the coordinator ignores every one of a READY naming more.
    public static let maximumHeldPartitions = 4096

    public init(name: String, threads: Int, pid: Int32? = nil, holds: [HeldPartition]? = nil, extendsCandidates: Bool? = nil) {
        self.name = name
        self.threads = threads
        self.pid = pid
        self.holds = holds
        self.extendsCandidates = extendsCandidates
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
    /// For an ERROR-REPLY: why the request was refused, when a client can act on it.
    public var code: ErrorReplyCode?

    public init(message: String, retry: Bool? = nil, code: ErrorReplyCode? = nil) {
        self.message = message
        self.retry = retry
        self.code = code
    }

    private enum CodingKeys: String, CodingKey { case message, retry, code }

    /// Decodes a report; a `code` this build does not know counts as none (a generic error),
    /// as Protocols/cluster.md asks of readers.
    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        message = try container.decode(String.self, forKey: .message)
        retry = try container.decodeIfPresent(Bool.self, forKey: .retry)
        code = try container.decodeIfPresent(String.self, forKey: .code).flatMap(ErrorReplyCode.init(rawValue:))
    }
}

/// The `code` of an ERROR-REPLY, spelled as on the wire.
public enum ErrorReplyCode: String, Codable, Sendable, CaseIterable {
    /// The key, model, set or job does not exist.
    case notFound = "not-found"
    /// A model of that name exists and the request does not replace it.
    case exists
    /// The client may not make the request.
    case forbidden
    /// The request is beyond one of the coordinator's limits.
    case limit
    /// The client has too many requests waiting.
    case tooManyRequests = "too-many-requests"
}
