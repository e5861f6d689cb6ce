@testable import Cluster
import ClusterProtocol
import Descriptors
import Testing

/// RESULTs checked off the state machine (`admit` … `checked`), the merge window, and the
/// task deadline that scales with a shard's work: the state machine driven by hand.
@Suite struct ResultClaimTests {
    typealias T = CoordinatorStateTests

    static func claims(_ directives: [CoordinatorState.Directive]) -> [CoordinatorState.ResultClaim] {
        directives.compactMap { if case .check(let claim) = $0 { claim } else { nil } }
    }

    /// A RESULT from the worker its shard is out to comes back as a claim, not taken: the
    /// shard is neither queued nor the worker's, and nothing is delivered until `checked`.
    @Test func anAdmittedResultIsClaimedAndTakenOnlyWhenChecked() throws {
        var state = CoordinatorState()
        _ = state.receive(T.ready("alice", threads: 1), from: T.alice, now: at(0))
        _ = state.start(T.spec(shards: 2), now: at(0))
        let admitted = state.admit(T.result(shard: 0), from: T.alice, now: at(0.1))
        let claim = try #require(Self.claims(admitted).first)
        #expect(claim.shard == 0 && claim.worker == T.alice && T.delivered(admitted).isEmpty)
        // Alice is free for more while it is checked; shard 0 is not sent again.
        #expect(T.tasks(admitted).isEmpty) // shard 1 is already hers (threads + 1)
        #expect(state.status(now: at(0.1)).passes.first?.done == 0)
        let taken = state.checked(claim, failure: nil, now: at(0.2))
        #expect(T.delivered(taken) == [0])
        #expect(state.status(now: at(0.2)).passes.first?.done == 1)
        #expect(state.status(now: at(0.2)).workers.first?.shardsDone == 1)
    }

    /// A claim that fails puts the shard back (for another worker) and counts a strike and
    /// a rejection, as a synchronous check that throws does.
    @Test func aFailedClaimPutsTheShardBack() throws {
        var state = CoordinatorState()
        _ = state.receive(T.ready("alice", threads: 1), from: T.alice, now: at(0))
        _ = state.start(T.spec(shards: 1), now: at(0))
        let claim = try #require(Self.claims(state.admit(T.result(shard: 0), from: T.alice, now: at(0.1))).first)
        _ = state.receive(T.ready("bob", threads: 1), from: T.bob, now: at(0.15))
        let rejected = state.checked(claim, failure: ClusterError.malformed("bad sums"), now: at(0.2))
        #expect(T.tasks(rejected).map(\.worker) == [T.bob] && T.tasks(rejected).map(\.shard) == [0])
        #expect(state.rejectedResults == 1 && state.workers[T.alice]?.strikes == 1)
    }

    /// While a RESULT is checked: the worker that sent it dying does not put the shard back
    /// (it is taken if right), and another holder's RESULT for it is dropped without putting
    /// it back either.
    @Test func aClaimSurvivesItsWorkerAndExcludesOtherResults() throws {
        var settings = CoordinatorSettings()
        settings.taskDeadlineFloor = .seconds(1)
        settings.taskDeadlineRate = 0
        var state = CoordinatorState(settings: settings)
        _ = state.receive(T.ready("alice", threads: 1), from: T.alice, now: at(0))
        _ = state.start(T.spec(shards: 1), now: at(0))
        // Overdue at alice; bob joins and gets the second copy.
        _ = state.receive(T.ready("bob", threads: 1), from: T.bob, now: at(0.5))
        let copies = T.tasks(state.tick(now: at(1.5)))
        #expect(copies.map(\.worker) == [T.bob])
        let claim = try #require(Self.claims(state.admit(T.result(shard: 0), from: T.bob, now: at(1.6))).first)
        let late = state.admit(T.result(shard: 0), from: T.alice, now: at(1.7))
        #expect(Self.claims(late).isEmpty && T.tasks(late).isEmpty && state.droppedResults == 1)
        // Bob goes silent and is declared dead: shard 0 is not queued again.
        _ = state.receive(WireMessage(header: WireHeader(.workerHeartbeat)), from: T.alice, now: at(4.5))
        _ = state.tick(now: at(4.7))
        #expect(state.workers[T.bob] == nil)
        #expect(state.status(now: at(4.7)).passes.first?.queued == 0)
        let taken = state.checked(claim, failure: nil, now: at(4.8))
        #expect(T.delivered(taken) == [0])
        #expect(taken.contains { if case .passFinished = $0 { true } else { false } })
    }

    /// A claim for a pass that ended meanwhile is forgotten.
    @Test func aClaimOfAnEndedPassIsForgotten() throws {
        var state = CoordinatorState()
        _ = state.receive(T.ready("alice", threads: 1), from: T.alice, now: at(0))
        _ = state.start(T.spec(shards: 2), now: at(0))
        let claim = try #require(Self.claims(state.admit(T.result(shard: 0), from: T.alice, now: at(0.1))).first)
        state.cancel(job: 1)
        #expect(state.checked(claim, failure: nil, now: at(0.2)).isEmpty)
    }

    /// Shards go out only within `mergeWindow` of the lowest shard not yet taken, so the
    /// RESULTs that wait for an earlier shard's merge are bounded whatever the plan's size.
    /// Before the window, a slow shard 0 let every other shard finish and wait.
    @Test func shardsGoOutOnlyWithinTheMergeWindow() throws {
        var settings = CoordinatorSettings()
        settings.mergeWindow = 3
        var state = CoordinatorState(settings: settings)
        _ = state.receive(T.ready("alice", threads: 8), from: T.alice, now: at(0))
        #expect(T.tasks(state.start(T.spec(shards: 10), now: at(0))).map(\.shard) == [0, 1, 2])
        // Shards 1 and 2 done, 0 still out: nothing new (3 would be 3 above shard 0).
        #expect(T.tasks(state.receive(T.result(shard: 1), from: T.alice, now: at(0.1))).isEmpty)
        #expect(T.tasks(state.receive(T.result(shard: 2), from: T.alice, now: at(0.2))).isEmpty)
        // Shard 0 done: the window moves to 3 ..< 6.
        #expect(T.tasks(state.receive(T.result(shard: 0), from: T.alice, now: at(0.3))).map(\.shard) == [3, 4, 5])
    }

    /// The overdue shard that holds the window back still gets its second copy.
    @Test func anOverdueShardAtTheWindowsStartIsSentAgain() throws {
        var settings = CoordinatorSettings()
        settings.mergeWindow = 2
        settings.taskDeadlineFloor = .seconds(1)
        settings.taskDeadlineRate = 0
        var state = CoordinatorState(settings: settings)
        _ = state.receive(T.ready("alice", threads: 1), from: T.alice, now: at(0))
        #expect(T.tasks(state.start(T.spec(shards: 4), now: at(0))).map(\.shard) == [0, 1])
        #expect(T.tasks(state.receive(T.result(shard: 1), from: T.alice, now: at(0.1))).isEmpty)
        _ = state.receive(T.ready("bob", threads: 1), from: T.bob, now: at(0.2))
        let copies = T.tasks(state.tick(now: at(1.5)))
        #expect(copies.map(\.shard) == [0] && copies.map(\.worker) == [T.bob])
    }

    /// Before a shard of its pass is back, a task's deadline is what its shard's work
    /// (rows × K × D) takes at `taskDeadlineRate`, never below the floor nor above the
    /// ceiling: a K = 65,536 shard is not sent again after 30 s. Before, it was 30 s for
    /// any pass.
    @Test func theTaskDeadlineScalesWithTheShardsWork() throws {
        var state = CoordinatorState()
        _ = state.receive(T.ready("alice", threads: 1), from: T.alice, now: at(0))
        func spec(round: UInt32, k: Int, rows: Int) -> RoundSpec {
            var spec = T.spec(round: round, shards: 1)
            spec.plan = ShardPlan(totalRows: rows, shardRows: 65_536)
            spec.computation = PassDescription(kind: .kmeansAssignment, dimension: 128, k: k, withSquares: false)
            return spec
        }
        _ = state.start(spec(round: 1, k: 65_536, rows: 65_536), now: at(0))
        let large = state.taskDeadline(of: RoundKey(job: 1, round: 1))
        #expect(abs(large.seconds - 65_536.0 * 65_536 * 128 / 1e9) < 1e-6)
        _ = state.receive(WireMessage(header: WireHeader(.workerHeartbeat)), from: T.alice, now: at(30.9))
        let ticked = state.tick(now: at(31))
        #expect(!ticked.contains { if case .log(let text) = $0 { text.contains("overdue") } else { false } })
        #expect(state.rounds[RoundKey(job: 1, round: 1)]?.overdue.isEmpty == true)
        #expect(state.rounds[RoundKey(job: 1, round: 1)]?.holders[0]?.keys.elementsEqual([T.alice]) == true)

        // Small work: the floor. The last shard's rows count when the plan has only one.
        _ = state.start(spec(round: 2, k: 256, rows: 1000), now: at(31))
        #expect(state.taskDeadline(of: RoundKey(job: 1, round: 2)) == .seconds(30))

        var capped = CoordinatorSettings()
        capped.taskDeadlineCeiling = .seconds(100)
        var bounded = CoordinatorState(settings: capped)
        _ = bounded.start(spec(round: 1, k: 65_536, rows: 65_536), now: at(0))
        #expect(bounded.taskDeadline(of: RoundKey(job: 1, round: 1)) == .seconds(100))
    }
}
