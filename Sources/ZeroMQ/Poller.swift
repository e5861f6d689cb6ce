import CZeroMQ

/// Waits until some of a set of sockets can receive or send (`zmq_poll`).
///
/// Like its sockets, a poller belongs to one thread. It keeps its sockets alive.
public final class Poller {
    /// What to wait for on a socket.
    public struct Events: OptionSet, Sendable, Hashable {
        public let rawValue: Int16
        public init(rawValue: Int16) { self.rawValue = rawValue }

        /// A message can be received without blocking.
        public static let readable = Events(rawValue: Int16(ZMQ_POLLIN))
        /// A message can be sent without blocking.
        public static let writable = Events(rawValue: Int16(ZMQ_POLLOUT))
    }

    /// A socket that is ready, and for what.
    public struct Ready {
        public let socket: Socket
        public let events: Events
    }

    private var sockets: [Socket] = []
    private var items: [zmq_pollitem_t] = []

    public init() {}

    /// Adds `socket` to the set, waiting for `events` (by default, incoming messages).
    public func register(_ socket: Socket, for events: Events = .readable) {
        sockets.append(socket)
        items.append(zmq_pollitem_t(socket: socket.handle, fd: 0, events: events.rawValue, revents: 0))
    }

    /// Waits at most `timeout` (millisecond precision; `nil` waits forever, `.zero` only
    /// looks) and returns the sockets that are ready, in registration order; empty on timeout.
    public func poll(timeout: Duration?) throws -> [Ready] {
        let count = Int32(items.count)
        let timeoutMilliseconds = timeout.zmqMilliseconds
        let readyCount = try items.withUnsafeMutableBufferPointer { items in
            try LibZMQ.check("zmq_poll") { zmq_poll(items.baseAddress, count, Int(timeoutMilliseconds)) }
        }
        guard readyCount > 0 else { return [] }
        return zip(sockets, items).compactMap { socket, item in
            let events = Events(rawValue: item.revents)
            return events.isEmpty ? nil : Ready(socket: socket, events: events)
        }
    }
}
