import CZeroMQ

/// A failed libzmq call: the errno it reported, libzmq's text for it, and the operation.
///
/// `code` is the errno value (`EINVAL`, `EHOSTUNREACH`, libzmq's own `ETERM`, ...), so new
/// failures need no new cases. "Would block" (`EAGAIN`) is not an error for `send` and
/// `receive`: they report it as `false` or `nil`.
public struct ZeroMQError: Error, CustomStringConvertible, Sendable, Hashable {
    /// The errno value libzmq reported.
    public var code: Int32
    /// libzmq's text for `code` (`zmq_strerror`), or a more precise message from this wrapper.
    public var message: String
    /// The call that failed, with its argument when that helps ("zmq_bind tcp://127.0.0.1:*").
    public var operation: String

    /// An error for `code`, described by `zmq_strerror` unless `message` is given.
    public init(code: Int32, operation: String, message: String? = nil) {
        self.code = code
        self.operation = operation
        self.message = message ?? String(cString: zmq_strerror(code))
    }

    /// Whether the context was shut down or terminated (`ETERM`): the socket's I/O loop
    /// should close its sockets and stop.
    public var isContextTerminated: Bool {
        // zmq.h defines ETERM as ZMQ_HAUSNUMERO + 53, a macro Swift does not import.
        code == ZMQ_HAUSNUMERO + 53
    }

    public var description: String { "\(operation): \(message) (errno \(code))" }
}
