import Foundation
import Synchronization

/// Wakes a thread that waits in `Poller.poll(timeout:)` from any other thread: an
/// `inproc://` PAIR pair, one end rung by other threads (behind a mutex), the other
/// registered in the waiting thread's poller. Ringing never blocks: past the pair's
/// high-water mark a ring is dropped, as the rings already queued wake the thread anyway.
///
/// `Doorbell` is `Sendable`; its `listener` belongs, like every socket, to one thread:
/// the one that polls it.
public final class Doorbell: Sendable {
    private let bell: Mutex<Socket>

    /// Creates the pair in `context` and the listener that the waiting thread polls.
    public static func make(context: ZeroMQContext) throws -> (Doorbell, DoorbellListener) {
        let endpoint = "inproc://codebook-doorbell-\(UUID().uuidString)"
        let listener = try Socket(.pair, context: context)
        try listener.setLinger(.zero)
        try listener.bind(endpoint)
        let bell = try Socket(.pair, context: context)
        try bell.setLinger(.zero)
        try bell.connect(endpoint)
        return (Doorbell(bell), DoorbellListener(listener))
    }

    private init(_ bell: consuming sending Socket) { self.bell = Mutex(bell) }

    /// Wakes the listener's thread: its current or next wait returns.
    public func ring() {
        // A failure (the listener is gone, the context shut down) leaves nobody to wake.
        bell.withLock { _ = try? $0.send(frames: [[]], dontWait: true) }
    }
}

/// The waiting end of a `Doorbell`: register it in a poller, and after every wait call
/// `drain()`, then look at whatever the ringing threads left for this one.
public final class DoorbellListener {
    let socket: Socket

    fileprivate init(_ socket: Socket) { self.socket = socket }

    /// Takes the rings that arrived: a ring after this call wakes the next wait.
    public func drain() {
        while (try? socket.receive(dontWait: true)) ?? nil != nil {}
    }
}

extension Poller {
    /// Adds a doorbell's listener to the set: a ring makes `poll` return.
    public func register(_ listener: DoorbellListener) {
        register(listener.socket)
    }
}
