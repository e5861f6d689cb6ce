@testable import Cluster
import Foundation
import Synchronization
import Testing

/// The group flusher's promise: a completion runs after a flush that began after it was
/// queued, with that flush's error, in queue order; urgent writes do not wait for the delay.
struct GroupFlusherTests {
    /// Counts flushes; throws from the flushes whose numbers are listed.
    final class CountingFlush: Sendable {
        let started = Atomic<Int>(0)
        let failing: Set<Int>
        init(failing: Set<Int> = []) { self.failing = failing }

        func callAsFunction() throws {
            let number = started.add(1, ordering: .sequentiallyConsistent).newValue
            if failing.contains(number) { throw ClusterTestError("flush \(number) failed") }
        }
    }

    @Test func everyCompletionRunsInOrderAfterAFlushThatBeganAfterItWasQueued() async throws {
        let flush = CountingFlush()
        let flusher = GroupFlusher(delay: .milliseconds(2)) { try flush() }
        let seen = Mutex<[(index: Int, queuedAfter: Int, ranAfter: Int)]>([])
        for index in 0..<200 {
            let queuedAfter = flush.started.load(ordering: .sequentiallyConsistent)
            flusher.afterNextFlush { error in
                #expect(error == nil)
                seen.withLock { $0.append((index, queuedAfter, flush.started.load(ordering: .sequentiallyConsistent))) }
            }
            if index % 50 == 0 { try await Task.sleep(for: .milliseconds(5)) }
        }
        flusher.flushNow()
        let runs = seen.withLock { $0 }
        #expect(runs.map(\.index) == Array(0..<200))
        #expect(runs.allSatisfy { $0.ranAfter > $0.queuedAfter }, "a completion ran before a flush that covers it")
        #expect(flush.started.load(ordering: .sequentiallyConsistent) < 200, "no grouping: one flush per write")
    }

    @Test func aFailedFlushGivesItsErrorToTheCompletionsItCovered() throws {
        let flush = CountingFlush(failing: [1])
        let flusher = GroupFlusher(delay: .seconds(3600)) { try flush() }
        let errors = Mutex<[String?]>([])
        for _ in 0..<3 { flusher.afterNextFlush { error in errors.withLock { $0.append(error.map { "\($0)" }) } } }
        flusher.flushNow()
        flusher.afterNextFlush { error in errors.withLock { $0.append(error.map { "\($0)" }) } }
        flusher.flushNow()
        #expect(errors.withLock { $0 } == ["flush 1 failed", "flush 1 failed", "flush 1 failed", nil])
    }

    @Test func anUrgentWriteIsFlushedWithoutWaitingForTheDelay() throws {
        let flush = CountingFlush()
        let flusher = GroupFlusher(delay: .seconds(3600)) { try flush() }
        let ran = DispatchSemaphore(value: 0)
        flusher.afterNextFlush { _ in ran.signal() }
        #expect(ran.wait(timeout: .now() + .milliseconds(100)) == .timedOut, "flushed before the delay")
        flusher.afterNextFlush(urgent: true) { _ in ran.signal() }
        #expect(ran.wait(timeout: .now() + 10) == .success)
        #expect(ran.wait(timeout: .now() + 10) == .success)
        #expect(flush.started.load(ordering: .sequentiallyConsistent) == 1)
    }
}
