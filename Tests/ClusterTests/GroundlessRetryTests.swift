@testable import Cluster
import ClusterProtocol
import Testing

/// FAILURE `retry` says a worker lacks what a task relied on (the pass's model, the
/// candidates it extends, a partition's rows). A worker that asks again for a task that
/// carried all it needs is answered as one whose RESULT was rejected: a strike, and the
/// shard goes to another worker if there is one; otherwise it would be sent the same task
/// for ever.
@Suite struct GroundlessRetryTests {
    typealias T = CoordinatorStateTests

    /// Answers each TASK of `directives` for `retrier` with FAILURE retry, and each for another
    /// worker with its RESULT, up to `steps` messages; returns how many TASKs `retrier` was
    /// sent, whether it was dismissed and whether the pass finished.
    static func run(_ state: inout CoordinatorState, _ directives: [CoordinatorState.Directive], retrier: WorkerID,
                    steps: Int = 200) -> (sent: Int, dismissed: Bool, finished: Bool) {
        var pending = T.tasks(directives), dismissed = false, finished = false
        var sent = pending.count { $0.worker == retrier }
        for step in 0..<steps {
            guard !pending.isEmpty else { break }
            let task = pending.removeFirst()
            let answer = task.worker == retrier ? T.failure(shard: task.shard, retry: true) : T.result(shard: task.shard)
            let next = state.receive(answer, from: task.worker, now: at(0.001 * Double(step + 1)))
            dismissed = dismissed || T.sends(next, of: .dismiss).contains(retrier)
            finished = finished || next.contains { if case .passFinished = $0 { true } else { false } }
            pending += T.tasks(next)
            sent += T.tasks(next).count { $0.worker == retrier }
        }
        return (sent, dismissed, finished)
    }

    @Test func aLoneWorkerThatRetriesEveryTaskIsDroppedNotSentItForEver() {
        var state = CoordinatorState()
        _ = state.receive(T.ready("mallory", threads: 1), from: T.alice, now: at(0))
        let outcome = Self.run(&state, state.start(T.spec(shards: 3), now: at(0)), retrier: T.alice)
        #expect(outcome.dismissed && !outcome.finished)
        // Its first two tasks (threads + 1: the second relies on the model the first carried),
        // then one after each retry but the last.
        #expect(outcome.sent <= state.settings.strikesBeforeDrop + 2, "it was sent \(outcome.sent) tasks")
        // The pass waits for a worker; the dropped one's messages are ignored meanwhile.
        #expect(state.isWaitingForWorkers)
        #expect(T.tasks(state.receive(T.ready("mallory", threads: 1), from: T.alice, now: at(1))).isEmpty)
    }

    @Test func anotherWorkerFinishesThePass() {
        var state = CoordinatorState()
        _ = state.receive(T.ready("mallory", threads: 1), from: T.alice, now: at(0))
        _ = state.receive(T.ready("bob", threads: 1), from: T.bob, now: at(0))
        let outcome = Self.run(&state, state.start(T.spec(shards: 6), now: at(0)), retrier: T.alice)
        #expect(outcome.finished)
        #expect(outcome.sent <= state.settings.strikesBeforeDrop + 2, "it was sent \(outcome.sent) tasks")
    }
}
