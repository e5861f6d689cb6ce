/// An error of the cluster: a message that cannot be decoded, a request the coordinator
/// refuses, a job that failed, a coordinator that does not answer, a key file that cannot
/// be used. Errors of the store, of descriptor files and of models keep their own types
/// (`StoreError`, `DescriptorError`, `ClusteringError`) as they pass through.
///
/// Codes can grow without breaking callers; `description` is the message a user sees.
/// Requests answered with ERROR-REPLY carry the code on the wire as `ErrorReplyCode`.
public struct ClusterError: Error, CustomStringConvertible, Sendable, Equatable {
    /// What kind of problem this is.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        let name: String
        /// Whether the description starts with the code's name, as these texts always have
        /// on the wire ("malformed message: …", "invalid argument: …").
        let leads: Bool
        public var description: String { name }

        /// A message that does not decode, or a result that cannot be right.
        public static let malformed = Code(name: "malformed message", leads: true)
        /// A message of another protocol version.
        public static let unsupportedVersion = Code(name: "unsupported version", leads: false)
        /// A job parameter outside its range (shard rows, images per shard…).
        public static let invalidArgument = Code(name: "invalid argument", leads: true)
        /// A request that cannot be answered as asked (wrong type, fields that contradict each other…).
        public static let invalidRequest = Code(name: "invalid request", leads: false)
        /// The key, model, set or job does not exist (wire: `not-found`).
        public static let notFound = Code(name: "not found", leads: false)
        /// A model or set of that name exists and the request does not replace it (wire: `exists`).
        public static let exists = Code(name: "already exists", leads: false)
        /// The client may not make the request (wire: `forbidden`).
        public static let forbidden = Code(name: "forbidden", leads: false)
        /// The request is beyond one of the coordinator's limits (wire: `limit`).
        public static let limit = Code(name: "limit", leads: false)
        /// The client has too many requests waiting (wire: `too-many-requests`).
        public static let tooManyRequests = Code(name: "too many requests", leads: false)
        /// The job or set is not in a state that allows the request (ended, still running,
        /// written by another job).
        public static let conflict = Code(name: "conflict", leads: false)
        /// The coordinator answered with an error that has no code.
        public static let rejected = Code(name: "rejected", leads: false)
        /// A job failed or was cancelled.
        public static let jobFailed = Code(name: "job failed", leads: false)
        /// The coordinator stopped before the work was done.
        public static let stopped = Code(name: "stopped", leads: false)
        /// No reply came in time, or the handshake was refused.
        public static let unanswered = Code(name: "unanswered", leads: false)
        /// A key file, allow-list or corpus root that cannot be used.
        public static let badFile = Code(name: "bad file", leads: false)
    }

    public var code: Code
    public var message: String
    /// The file concerned (a key file, an allow-list), if any.
    public var path: String?
    /// The peer concerned (an endpoint, a worker), if any; the message names it where it matters.
    public var peer: String?
    /// The error behind this one, if any (the message quotes what it said).
    public var underlying: (any Error)?

    public init(_ code: Code, _ message: String, path: String? = nil, peer: String? = nil,
                underlying: (any Error)? = nil) {
        self.code = code
        self.message = message
        self.path = path
        self.peer = peer
        self.underlying = underlying
    }

    public var description: String {
        (path.map { "\($0): " } ?? "") + (code.leads ? "\(code): " : "") + message
    }

    /// Equal when they say the same: code, message and path.
    public static func == (a: Self, b: Self) -> Bool {
        a.code == b.code && a.message == b.message && a.path == b.path
    }

    /// A malformed message: `why` names the first thing wrong.
    public static func malformed(_ why: String) -> ClusterError { ClusterError(.malformed, why) }
}

extension ClusterError {
    /// The codes that travel in ERROR-REPLY, both ways; every other code travels as none.
    private static let replyCodes: [(Code, ErrorReplyCode)] = [
        (.notFound, .notFound), (.exists, .exists), (.forbidden, .forbidden), (.limit, .limit),
        (.tooManyRequests, .tooManyRequests),
    ]

    /// The ERROR-REPLY `code` for this error, if clients can act on it.
    public var replyCode: ErrorReplyCode? { Self.replyCodes.first { $0.0 == code }?.1 }

    /// The error an ERROR-REPLY from `peer` stands for: `.rejected` if it has no code.
    public init(reply: FailureReport, peer: String?) {
        let code = reply.code.flatMap { code in Self.replyCodes.first { $0.1 == code }?.0 } ?? .rejected
        self.init(code, reply.message, peer: peer)
    }
}
