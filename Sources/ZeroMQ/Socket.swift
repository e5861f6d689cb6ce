import CZeroMQ
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A ZeroMQ socket, closed in `deinit`.
///
/// A socket belongs to one thread: libzmq sockets are not thread-safe, so create, use and
/// drop a socket on the thread (the I/O loop) that owns it. That is why `Socket` is not
/// `Sendable`. The socket keeps its context alive.
public final class Socket {
    /// The ZeroMQ socket types this wrapper supports.
    public enum Kind: Sendable, Hashable, CustomStringConvertible {
        case router, dealer, rep, pair

        var zmqType: Int32 {
            switch self {
            case .router: ZMQ_ROUTER
            case .dealer: ZMQ_DEALER
            case .rep: ZMQ_REP
            case .pair: ZMQ_PAIR
            }
        }

        public var description: String {
            switch self {
            case .router: "ROUTER"
            case .dealer: "DEALER"
            case .rep: "REP"
            case .pair: "PAIR"
            }
        }
    }

    /// The context this socket was created in.
    public let context: ZeroMQContext
    /// The socket's type.
    public let kind: Kind
    let handle: UnsafeMutableRawPointer

    /// Opens a socket of type `kind` in `context`.
    public init(_ kind: Kind, context: ZeroMQContext) throws {
        guard let handle = zmq_socket(context.handle, kind.zmqType) else {
            throw ZeroMQError(code: zmq_errno(), operation: "zmq_socket \(kind)")
        }
        self.context = context
        self.kind = kind
        self.handle = handle
    }

    deinit {
        _ = try? LibZMQ.check("zmq_close") { zmq_close(handle) }
    }

    // MARK: Endpoints

    /// Accepts connections on `endpoint` ("tcp://127.0.0.1:*", "inproc://name", ...).
    /// With a wildcard port, `lastEndpoint` tells the port the system chose.
    public func bind(_ endpoint: String) throws {
        try LibZMQ.check("zmq_bind \(endpoint)") { zmq_bind(handle, endpoint) }
    }

    /// Connects to `endpoint`; libzmq connects in the background and reconnects after failures.
    public func connect(_ endpoint: String) throws {
        try LibZMQ.check("zmq_connect \(endpoint)") { zmq_connect(handle, endpoint) }
    }

    /// Drops the connection made by `connect(endpoint)`.
    public func disconnect(_ endpoint: String) throws {
        try LibZMQ.check("zmq_disconnect \(endpoint)") { zmq_disconnect(handle, endpoint) }
    }

    /// The endpoint of the last `bind` or `connect`, with a wildcard port resolved
    /// ("tcp://127.0.0.1:41235"); empty if there was none.
    public var lastEndpoint: String {
        get throws {
            // An endpoint is a transport and an address (an IPC path is at most 108 bytes),
            // so this is ample; libzmq reports EINVAL rather than truncate.
            var buffer = [CChar](repeating: 0, count: 1024)
            var length = buffer.count
            try LibZMQ.check("zmq_getsockopt ZMQ_LAST_ENDPOINT") {
                zmq_getsockopt(handle, ZMQ_LAST_ENDPOINT, &buffer, &length)
            }
            return String(nulTerminated: buffer)
        }
    }

    // MARK: Messages

    /// Sends one message made of `frames` (at least one; a frame may be empty).
    ///
    /// Returns `false` if the message could not be queued without blocking, with `dontWait`
    /// or when the send timeout expired; nothing was sent then. Once the first frame is
    /// queued libzmq accepts the remaining frames of the message, so a message is never
    /// sent in part.
    @discardableResult
    public func send(frames: [[UInt8]], dontWait: Bool = false) throws -> Bool {
        precondition(!frames.isEmpty, "a ZeroMQ message has at least one frame")
        for (index, frame) in frames.enumerated() {
            var flags: Int32 = index == frames.count - 1 ? 0 : ZMQ_SNDMORE
            if dontWait && index == 0 { flags |= ZMQ_DONTWAIT }
            let sent = try frame.withUnsafeBytes { bytes in
                try LibZMQ.call("zmq_send \(kind) frame \(index)") {
                    zmq_send(handle, bytes.baseAddress, bytes.count, flags)
                }
            }
            if sent == nil {
                guard index == 0 else {
                    throw ZeroMQError(code: EAGAIN, operation: "zmq_send \(kind) frame \(index)",
                                      message: "libzmq refused a later frame of a message")
                }
                return false
            }
        }
        return true
    }

    /// Receives one whole message: all its frames, each at its full size.
    ///
    /// Returns `nil` if no message is waiting, with `dontWait` or when the receive timeout
    /// expired. Messages above `setMaxMessageSize(_:)` never arrive: libzmq disconnects
    /// the peer that sent one.
    public func receive(dontWait: Bool = false) throws -> [[UInt8]]? {
        try receive(dontWait: dontWait, property: nil)?.frames
    }

    /// Like `receive(dontWait:)`, with one of the message's metadata properties
    /// (`zmq_msg_gets`): `nil` when the connection does not have it.
    ///
    /// `MessageProperty.userID` is the user id the ZAP handler gave the peer's connection
    /// (see `ZAPHandler`); a connection authenticated by no handler has none.
    ///
    /// A message of more than `maximumFrames` frames (libzmq bounds each frame's size, not
    /// their number) is not kept: its frames are counted and dropped as they are read, and
    /// the call throws `EMSGSIZE` naming their number.
    public func receive(dontWait: Bool = false, property: MessageProperty?,
                        maximumFrames: Int = .max) throws -> (frames: [[UInt8]], property: String?)? {
        var frames: [[UInt8]] = []
        var value: String?
        var message = zmq_msg_t()
        while true {
            try LibZMQ.check("zmq_msg_init") { zmq_msg_init(&message) }
            defer { zmq_msg_close(&message) }
            // The frames of a message arrive together, so only the first can find nothing.
            let flags = dontWait && frames.isEmpty ? ZMQ_DONTWAIT : 0
            let received = try LibZMQ.call("zmq_msg_recv \(kind) frame \(frames.count)") {
                zmq_msg_recv(&message, handle, flags)
            }
            guard received != nil else {
                guard frames.isEmpty else {
                    throw ZeroMQError(code: EAGAIN, operation: "zmq_msg_recv \(kind) frame \(frames.count)",
                                      message: "a message ended before its last frame")
                }
                return nil
            }
            // A ROUTER's routing-id frame carries no metadata: ask each frame until one has it.
            if value == nil, let property, let text = zmq_msg_gets(&message, property.name) {
                value = String(cString: text)
            }
            frames.append([UInt8](UnsafeRawBufferPointer(start: zmq_msg_data(&message),
                                                         count: zmq_msg_size(&message))))
            if zmq_msg_more(&message) == 0 { return (frames, value) }
            if frames.count >= maximumFrames {
                let total = frames.count + (try dropRestOfMessage())
                throw ZeroMQError(code: EMSGSIZE, operation: "zmq_msg_recv \(kind)",
                                  message: "a message of \(total) frames, above the limit of \(maximumFrames); dropped")
            }
        }
    }

    /// Reads the frames left of the message being received without keeping them; returns their number.
    private func dropRestOfMessage() throws -> Int {
        var message = zmq_msg_t()
        var dropped = 0
        while true {
            try LibZMQ.check("zmq_msg_init") { zmq_msg_init(&message) }
            defer { zmq_msg_close(&message) }
            guard try LibZMQ.call("zmq_msg_recv \(kind) frame", { zmq_msg_recv(&message, handle, 0) }) != nil else {
                throw ZeroMQError(code: EAGAIN, operation: "zmq_msg_recv \(kind)", message: "a message ended before its last frame")
            }
            dropped += 1
            if zmq_msg_more(&message) == 0 { return dropped }
        }
    }

    /// A metadata property of a received message's connection (ZMTP properties and the
    /// ZAP handler's user id).
    public struct MessageProperty: Sendable, Hashable {
        /// The property's name as libzmq spells it.
        public let name: String

        public init(name: String) { self.name = name }

        /// The user id the ZAP handler set for the peer ("User-Id").
        public static let userID = MessageProperty(name: "User-Id")
    }
}
