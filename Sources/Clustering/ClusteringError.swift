/// An error about a model or a training run's parameters: a k, a shape, a value a model
/// cannot hold, a numerical routine that failed. Problems with descriptor files and their
/// rows are `DescriptorError`s.
///
/// Codes can grow without breaking callers; `description` is the message a user sees.
public struct ClusteringError: Error, CustomStringConvertible, Sendable, Equatable {
    /// What kind of problem this is.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        let name: String
        public var description: String { name }
        /// A parameter outside its range (k, iterations, tolerance, a prior…).
        public static let invalidArgument = Code(name: "invalid argument")
        /// Arrays whose sizes do not fit each other (a model's D and the descriptors' D…).
        public static let dimensionMismatch = Code(name: "dimension mismatch")
        /// A model value that is NaN or infinite.
        public static let nonFinite = Code(name: "non-finite value")
        /// A numerical routine (LAPACK) that did not converge.
        public static let numericalFailure = Code(name: "numerical failure")
    }

    public var code: Code
    public var message: String
    /// What the error is about, when the message alone does not say (a file, a model's name).
    public var context: String?
    /// The error behind this one, if any.
    public var underlying: (any Error)?

    public init(_ code: Code, _ message: String, context: String? = nil, underlying: (any Error)? = nil) {
        self.code = code
        self.message = message
        self.context = context
        self.underlying = underlying
    }

    public var description: String {
        var text = context.map { "\($0): " } ?? ""
        text += "\(code): \(message)"
        if let underlying { text += " [\(underlying)]" }
        return text
    }

    /// Equal when they say the same: code, message, context and underlying error's text.
    public static func == (a: Self, b: Self) -> Bool {
        a.code == b.code && a.message == b.message && a.context == b.context
            && a.underlying.map { "\($0)" } == b.underlying.map { "\($0)" }
    }
}
