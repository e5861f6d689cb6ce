import CZeroMQ
import Synchronization

/// One event of a socket's connections, as its monitor reports it (`zmq_socket_monitor`).
public struct SocketEvent: Sendable, Hashable {
    /// Kinds of events; a set of them chooses what a monitor reports.
    public struct Kind: OptionSet, Sendable, Hashable {
        public let rawValue: Int32
        public init(rawValue: Int32) { self.rawValue = rawValue }

        /// A connection was made (the handshake follows).
        public static let connected = Kind(rawValue: ZMQ_EVENT_CONNECTED)
        /// A connection was lost.
        public static let disconnected = Kind(rawValue: ZMQ_EVENT_DISCONNECTED)
        /// The security handshake completed.
        public static let handshakeSucceeded = Kind(rawValue: ZMQ_EVENT_HANDSHAKE_SUCCEEDED)
        /// The handshake failed for no reason the peer gave (`value`: an errno), for example
        /// a CURVE server that could not read a client's HELLO made for another key.
        public static let handshakeFailedNoDetail = Kind(rawValue: ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL)
        /// The handshake broke the protocol (`value`: a `ZMQ_PROTOCOL_ERROR_*` code, such as
        /// `SocketEvent.mechanismMismatch`).
        public static let handshakeFailedProtocol = Kind(rawValue: ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL)
        /// The peer's authenticator refused the handshake (`value`: its ZAP status code, 400).
        public static let handshakeFailedAuthentication = Kind(rawValue: ZMQ_EVENT_HANDSHAKE_FAILED_AUTH)
    }

    /// `handshakeFailedProtocol`'s value when the two sides use different security mechanisms
    /// (one CURVE, the other none).
    public static let mechanismMismatch = UInt32(ZMQ_PROTOCOL_ERROR_ZMTP_MECHANISM_MISMATCH)

    /// What happened (one kind).
    public let kind: Kind
    /// The event's value: an errno, a protocol error code or a status code (see `Kind`).
    public let value: UInt32
    /// The endpoint the connection belongs to.
    public let endpoint: String
}

/// The events of one socket's connections, received on a PAIR socket of the same context.
/// Like the socket, it belongs to one thread.
public final class SocketMonitor {
    private let receiver: Socket

    init(receiver: Socket) { self.receiver = receiver }

    /// The next event that has arrived, or `nil` if none has.
    public func next() throws -> SocketEvent? {
        while let frames = try receiver.receive(dontWait: true) {
            // Frame 0: the event (u16) and its value (u32), in host order; frame 1: the endpoint.
            guard frames.count == 2, frames[0].count == 6 else { continue }
            let event = frames[0].withUnsafeBytes { $0.loadUnaligned(as: UInt16.self) }
            let value = frames[0].withUnsafeBytes { $0.loadUnaligned(fromByteOffset: 2, as: UInt32.self) }
            return SocketEvent(kind: SocketEvent.Kind(rawValue: Int32(event)), value: value,
                               endpoint: String(decoding: frames[1], as: UTF8.self))
        }
        return nil
    }
}

/// Numbers the monitors' inproc endpoints, which must be unique in their context.
private let monitorCount = Atomic<UInt64>(0)

extension Socket {
    /// Starts reporting this socket's events of `kinds`; call before `connect` or `bind` to
    /// see the first connection's. One monitor per socket.
    public func monitor(_ kinds: SocketEvent.Kind) throws -> SocketMonitor {
        let endpoint = "inproc://zeromq-monitor-\(monitorCount.add(1, ordering: .relaxed).newValue)"
        try LibZMQ.check("zmq_socket_monitor") { zmq_socket_monitor(handle, endpoint, kinds.rawValue) }
        let receiver = try Socket(.pair, context: context)
        try receiver.setLinger(.zero)
        try receiver.connect(endpoint)
        return SocketMonitor(receiver: receiver)
    }
}
