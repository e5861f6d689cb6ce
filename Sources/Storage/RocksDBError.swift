/// A failed RocksDB call: RocksDB's status message, the operation and the database path.
///
/// Codes can grow without breaking callers; `description` is the message a user sees.
public struct RocksDBError: Error, CustomStringConvertible, Sendable, Hashable {
    /// What kind of problem this is, from the status RocksDB reported.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        let name: String
        public var description: String { name }
        public static let notFound = Code(name: "not found")
        public static let corruption = Code(name: "corruption")
        public static let notSupported = Code(name: "not supported")
        public static let invalidArgument = Code(name: "invalid argument")
        public static let ioError = Code(name: "I/O error")
        public static let busy = Code(name: "busy")
        public static let timedOut = Code(name: "timed out")
        public static let other = Code(name: "other")
    }

    public var code: Code
    /// RocksDB's message, as it reported it ("Invalid argument: /data/db/CURRENT: does not exist ...").
    public var message: String
    /// The operation that failed ("open", "get in models", "write batch").
    public var operation: String
    /// The database directory.
    public var path: String

    public init(code: Code, message: String, operation: String, path: String) {
        self.code = code
        self.message = message
        self.operation = operation
        self.path = path
    }

    /// An error for a status message from RocksDB, its code read from the message's prefix.
    init(statusMessage: String, operation: String, path: String) {
        let prefixes: [(String, Code)] = [
            ("NotFound", .notFound), ("Corruption", .corruption),
            ("Not implemented", .notSupported), ("Operation not supported", .notSupported),
            ("Not supported", .notSupported), ("Invalid argument", .invalidArgument),
            ("IO error", .ioError), ("Resource busy", .busy), ("Operation timed out", .timedOut),
        ]
        let code = prefixes.first { statusMessage.hasPrefix($0.0) }?.1 ?? .other
        self.init(code: code, message: statusMessage, operation: operation, path: path)
    }

    public var description: String { "\(path): \(operation): \(message)" }

    /// Whether a secondary instance failed because the primary deleted a file it had just
    /// read about (see `Database.retryingRaceWithPrimary`).
    var isRaceWithPrimary: Bool {
        message.contains("No such file or directory") || message.hasPrefix("Operation failed. Try again")
    }
}
