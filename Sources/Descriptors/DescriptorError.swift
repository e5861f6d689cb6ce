#if canImport(Glibc)
import Glibc
#else
import Darwin
#endif

/// An error about an input file: descriptors and their rows, images, image lists. What went
/// wrong, and where (file, byte offset, line, row).
///
/// Codes can grow without breaking callers; `description` is the message a user sees.
public struct DescriptorError: Error, CustomStringConvertible, Sendable, Equatable {
    /// What kind of problem this is.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        let name: String
        public var description: String { name }
        public static let fileNotFound = Code(name: "file not found")
        public static let ioFailure = Code(name: "I/O failure")
        public static let truncated = Code(name: "truncated")
        public static let dimensionMismatch = Code(name: "dimension mismatch")
        public static let unsupportedFormat = Code(name: "unsupported format")
        public static let nonFinite = Code(name: "non-finite value")
        public static let indexOutOfRange = Code(name: "index out of range")
        public static let duplicateKey = Code(name: "duplicate key")
        public static let malformed = Code(name: "malformed")
        public static let invalidArgument = Code(name: "invalid argument")
    }

    public var code: Code
    public var message: String
    /// The file concerned, if any.
    public var path: String?
    /// A byte offset, line number or row in the file, in words ("byte 4100", "line 7", "row 12").
    public var location: String?
    /// The system or library error behind this one, if any.
    public var underlying: (any Error)?

    public init(_ code: Code, _ message: String, path: String? = nil, location: String? = nil,
                underlying: (any Error)? = nil) {
        self.code = code
        self.message = message
        self.path = path
        self.location = location
        self.underlying = underlying
    }

    public var description: String {
        var text = ""
        if let path { text += path }
        if let location { text += text.isEmpty ? location : " (\(location))" }
        if !text.isEmpty { text += ": " }
        text += "\(code): \(message)"
        if let underlying { text += " [\(underlying)]" }
        return text
    }

    /// Equal when they say the same: code, message, place and underlying error's text.
    public static func == (a: Self, b: Self) -> Bool {
        a.code == b.code && a.message == b.message && a.path == b.path && a.location == b.location
            && a.underlying.map { "\($0)" } == b.underlying.map { "\($0)" }
    }
}

/// A failed system call's `errno`, shown as `strerror` shows it.
public struct SystemCallError: Error, CustomStringConvertible, Sendable, Equatable {
    public var errno: Int32
    public init(errno: Int32) { self.errno = errno }
    public var description: String { String(cString: strerror(errno)) }
}
