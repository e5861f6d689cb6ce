import CZeroMQ

/// A libzmq context: the I/O threads and the registry of `inproc://` endpoints.
///
/// Every socket keeps its context alive, so `zmq_ctx_term` in `deinit` runs only after the
/// last socket has been closed and never waits on a socket of ours. New sockets start with
/// a linger of 0 (`ZMQ_BLOCKY` off): closing one drops its unsent messages instead of
/// blocking the process; set `Socket.setLinger(_:)` where delivery on close matters.
///
/// `@unchecked Sendable`: libzmq documents contexts as thread-safe, and this class holds
/// no mutable Swift state.
public final class ZeroMQContext: @unchecked Sendable {
    let handle: UnsafeMutableRawPointer

    /// Creates a context with `ioThreads` background I/O threads (libzmq's default is 1).
    public init(ioThreads: Int32 = 1) throws {
        guard let handle = zmq_ctx_new() else {
            throw ZeroMQError(code: zmq_errno(), operation: "zmq_ctx_new")
        }
        self.handle = handle
        do {
            try LibZMQ.check("zmq_ctx_set ZMQ_IO_THREADS") { zmq_ctx_set(handle, ZMQ_IO_THREADS, ioThreads) }
            try LibZMQ.check("zmq_ctx_set ZMQ_BLOCKY") { zmq_ctx_set(handle, ZMQ_BLOCKY, 0) }
        } catch {
            _ = try? LibZMQ.check("zmq_ctx_term") { zmq_ctx_term(handle) }
            throw error
        }
    }

    /// Makes every blocking call on this context's sockets, in any thread, fail with
    /// `ETERM`, and every later call too. The context itself is terminated in `deinit`.
    public func shutdown() throws {
        try LibZMQ.check("zmq_ctx_shutdown") { zmq_ctx_shutdown(handle) }
    }

    deinit {
        // Every socket holds a reference to this context, so none is open any more and
        // zmq_ctx_term cannot block; LibZMQ retries it if a signal interrupts it.
        _ = try? LibZMQ.check("zmq_ctx_term") { zmq_ctx_term(handle) }
    }
}

extension ZeroMQContext {
    /// The version of the libzmq this process runs with ("4.3.4").
    public static var libraryVersion: String {
        var major: Int32 = 0, minor: Int32 = 0, patch: Int32 = 0
        zmq_version(&major, &minor, &patch)
        return "\(major).\(minor).\(patch)"
    }
}
