import Foundation
import Synchronization

/// One handshake libzmq asks the ZAP handler about (ZeroMQ RFC 27).
public struct ZAPRequest: Sendable, Hashable {
    /// The ZAP domain of the socket the peer connects to (`Socket.setZAPDomain`).
    public var domain: String
    /// The peer's IP address.
    public var address: String
    /// The security mechanism: "NULL", "PLAIN" or "CURVE".
    public var mechanism: String
    /// CURVE: the peer's long-term public key; `nil` for other mechanisms.
    public var curveKey: CurveKey?

    public init(domain: String, address: String, mechanism: String, curveKey: CurveKey?) {
        self.domain = domain
        self.address = address
        self.mechanism = mechanism
        self.curveKey = curveKey
    }
}

/// A ZAP handler's answer to a handshake.
public enum ZAPDecision: Sendable, Hashable {
    /// Admit the peer; every message from its connection carries `userID` as its
    /// `Socket.MessageProperty.userID` (at most 255 bytes).
    case allow(userID: String)
    /// Refuse the handshake; libzmq closes the connection and tells the peer `reason`
    /// (status 400).
    case deny(reason: String)
}

/// A ZAP handler: the thread that answers libzmq's authentication requests for every
/// socket of one context that has a security mechanism (CURVE, PLAIN) and so accepts
/// handshakes (ZeroMQ RFC 27, the Guide's "Ironhouse" pattern).
///
/// It binds a REP socket on `ZAPHandler.endpoint` in its own thread. libzmq consults it only
/// while it is bound, and admits every handshake when no handler is bound, so `start()` it
/// before the secured sockets bind and `stop()` it after they have closed. One per context.
public final class ZAPHandler: Sendable {
    /// The endpoint libzmq sends ZAP requests to, in every context.
    public static let endpoint = "inproc://zeromq.zap.01"

    private let context: ZeroMQContext
    private let decide: @Sendable (ZAPRequest) -> ZAPDecision
    private let stopping = Atomic<Bool>(false)
    private let finished = DispatchSemaphore(value: 0)
    private let started = Atomic<Bool>(false)

    /// A handler for `context` that answers each handshake with `decide` (called on the
    /// handler's thread, one request at a time).
    public init(context: ZeroMQContext, decide: @escaping @Sendable (ZAPRequest) -> ZAPDecision) {
        self.context = context
        self.decide = decide
    }

    /// Starts the thread and returns once it has bound `endpoint`; throws if it cannot
    /// (`EADDRINUSE`: the context has a handler already).
    public func start() throws {
        precondition(!started.exchange(true, ordering: .sequentiallyConsistent), "a ZAPHandler starts once")
        let ready = DispatchSemaphore(value: 0)
        let failure = Mutex<ZeroMQError?>(nil)
        let thread = Thread { [self] in
            run(ready: ready, failure: failure)
            finished.signal()
        }
        thread.name = "zeromq-zap-handler"
        thread.start()
        ready.wait()
        if let error = failure.withLock({ $0 }) { throw error }
    }

    /// Stops the thread and waits for it; its socket is closed when this returns.
    public func stop() {
        guard started.load(ordering: .sequentiallyConsistent),
              !stopping.exchange(true, ordering: .sequentiallyConsistent) else { return }
        finished.wait()
    }

    /// Binds, reports how that went, and serves until `stop()`; the socket is closed on return.
    private func run(ready: DispatchSemaphore, failure: borrowing Mutex<ZeroMQError?>) {
        let socket: Socket
        do {
            socket = try Socket(.rep, context: context)
            try socket.setLinger(.zero)
            try socket.bind(Self.endpoint)
        } catch {
            failure.withLock { $0 = error as? ZeroMQError ?? ZeroMQError(code: EINVAL, operation: "\(error)") }
            ready.signal()
            return
        }
        ready.signal()
        serve(socket)
    }

    private func serve(_ socket: Socket) {
        let poller = Poller()
        poller.register(socket)
        while !stopping.load(ordering: .sequentiallyConsistent) {
            do {
                guard try !poller.poll(timeout: .milliseconds(100)).isEmpty,
                      let frames = try socket.receive(dontWait: true) else { continue }
                _ = try socket.send(frames: reply(to: frames))
            } catch let error as ZeroMQError where error.isContextTerminated {
                return
            } catch {
                // Concerns this one request: libzmq drops the handshake it did not hear about.
                continue
            }
        }
    }

    /// The reply frames for one request: version, request id, status code and text, user
    /// id, metadata (RFC 27). A request that is not a version 1.0 ZAP request gets 500.
    func reply(to frames: [[UInt8]]) -> [[UInt8]] {
        let requestID = frames.count > 1 ? frames[1] : []
        func answer(_ code: String, _ text: String, userID: String = "") -> [[UInt8]] {
            [Array("1.0".utf8), requestID, Array(code.utf8), Array(text.utf8.prefix(255)), Array(userID.utf8.prefix(255)), []]
        }
        guard frames.count >= 6, frames[0] == Array("1.0".utf8) else {
            return answer("500", "not a ZAP 1.0 request")
        }
        let mechanism = String(decoding: frames[5], as: UTF8.self)
        var curveKey: CurveKey?
        if mechanism == "CURVE" {
            guard frames.count == 7, let key = try? CurveKey(bytes: frames[6]) else {
                return answer("500", "a CURVE request carries one 32-byte key")
            }
            curveKey = key
        }
        let request = ZAPRequest(domain: String(decoding: frames[2], as: UTF8.self),
                                 address: String(decoding: frames[3], as: UTF8.self),
                                 mechanism: mechanism, curveKey: curveKey)
        switch decide(request) {
        case .allow(let userID): return answer("200", "OK", userID: userID)
        case .deny(let reason): return answer("400", reason)
        }
    }
}
