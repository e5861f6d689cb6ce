import ClusterProtocol
import Foundation

/// Group commit for writes kept out of the write-ahead log: one flush makes every write
/// queued before it durable, and then the writers hear of it. A thread of its own runs the
/// flush at most `delay` after the first write it has not yet covered (or at once when a
/// writer is urgent), so the thread that writes never waits on the disk. The thread exists
/// only while writes wait for a flush.
final class GroupFlusher: @unchecked Sendable {
    // @unchecked Sendable: the mutable state below is guarded by `condition`.
    /// Called after a flush: with `nil`, or with the error the flush threw.
    typealias Completion = @Sendable ((any Error)?) -> Void

    private let delay: Duration
    private let flush: @Sendable () throws -> Void
    private let condition = NSCondition()
    private var queued: [Completion] = []
    private var firstQueuedAt = ContinuousClock.now
    private var urgent = false
    private var running = false

    /// - Parameters:
    ///   - delay: the longest a write waits for its flush.
    ///   - flush: makes every write that returned before the call durable.
    init(delay: Duration, flush: @escaping @Sendable () throws -> Void) {
        self.delay = delay
        self.flush = flush
    }

    /// Runs `completion` on the flusher's thread after the first flush that begins after
    /// this call, in the order the completions were queued. With `urgent`, that flush
    /// begins at once.
    func afterNextFlush(urgent: Bool = false, _ completion: @escaping Completion) {
        condition.lock()
        defer { condition.unlock() }
        if queued.isEmpty { firstQueuedAt = .now }
        queued.append(completion)
        self.urgent = self.urgent || urgent
        if running {
            condition.broadcast()
        } else {
            running = true
            let thread = Thread { self.run() }
            thread.name = "codebook-group-flusher"
            thread.start()
        }
    }

    /// Flushes what is queued at once and waits until its completions have run. For a
    /// writer that has stopped writing: new writes would keep it waiting.
    func flushNow() {
        condition.lock()
        defer { condition.unlock() }
        guard running else { return }
        urgent = true
        condition.broadcast()
        while running { condition.wait() }
    }

    private func run() {
        condition.lock()
        while !queued.isEmpty {
            let deadline = firstQueuedAt + delay
            // `NSCondition` waits until a `Date`: each wait is bounded by what the monotonic clock says is left.
            while !urgent && ContinuousClock.now < deadline {
                _ = condition.wait(until: Date(timeIntervalSinceNow: (deadline - .now).seconds))
            }
            let completions = queued
            queued = []
            urgent = false
            condition.unlock()
            var failure: (any Error)?
            do { try flush() } catch { failure = error }
            for completion in completions { completion(failure) }
            condition.lock()
        }
        running = false
        condition.broadcast()
        condition.unlock()
    }
}
