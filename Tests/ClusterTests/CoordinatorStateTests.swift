@testable import Cluster
import ClusterProtocol
import Descriptors
import Testing

/// The instant `seconds` after the state machine tests' time 0.
func at(_ seconds: Double) -> ContinuousClock.Instant { testEpoch + .seconds(seconds) }
private let testEpoch = ContinuousClock.now

/// The coordinator's state machine, driven by hand with an injected clock: no sockets, no sleeps.
@Suite struct CoordinatorStateTests {
    static let alice: WorkerID = Array("alice".utf8)
    static let bob: WorkerID = Array("bob".utf8)
    static let carol: WorkerID = Array("carol".utf8)
    static let model: [[UInt8]] = [Frame.encode([Float](repeating: 1, count: 8))]

    static func spec(job: UInt64 = 1, round: UInt32 = 1, shards: Int = 10) -> RoundSpec {
        let corpus = CorpusReference(path: "/data/corpus.fvecs", rows: shards * 100, dimension: 4, fileSize: shards * 100 * 20)
        return RoundSpec(key: RoundKey(job: job, round: round), corpus: corpus,
                         plan: ShardPlan(totalRows: shards * 100, shardRows: 100),
                         computation: PassDescription(kind: .kmeansAssignment, dimension: 4, k: 2, withSquares: false),
                         model: model)
    }

    static func ready(_ name: String, threads: Int) -> WireMessage {
        WireMessage(header: WireHeader(.ready), metadata: WorkerIntroduction(name: name, threads: threads))
    }

    static func result(job: UInt64 = 1, round: UInt32 = 1, shard: Int) -> WireMessage {
        WireMessage(header: WireHeader(.result, job: job, round: round, shard: UInt32(shard)),
                    metadata: StatisticsShape(rows: 100, dimension: 4, k: 2, withSquares: false))
    }

    static func failure(job: UInt64 = 1, round: UInt32 = 1, shard: Int, retry: Bool, message: String = "disk on fire") -> WireMessage {
        WireMessage(header: WireHeader(.failure, job: job, round: round, shard: UInt32(shard)),
                    metadata: FailureReport(message: message, retry: retry))
    }

    /// The TASKs among `directives`: (worker, shard, includesModel, model frames).
    static func tasks(_ directives: [CoordinatorState.Directive]) -> [(worker: WorkerID, shard: Int, includesModel: Bool, arrays: Int)] {
        directives.compactMap { directive in
            guard case .send(let worker, let message) = directive, message.header.type == .task,
                  let assignment = try? message.decode(TaskAssignment.self) else { return nil }
            return (worker, Int(message.header.shard), assignment.includesModel, message.arrays.count)
        }
    }

    static func delivered(_ directives: [CoordinatorState.Directive]) -> [Int] {
        directives.compactMap { if case .deliver(_, let shard, _) = $0 { shard } else { nil } }
    }

    static func sends(_ directives: [CoordinatorState.Directive], of type: MessageType) -> [WorkerID] {
        directives.compactMap {
            if case .send(let worker, let message) = $0, message.header.type == type { worker } else { nil }
        }
    }

    @Test func shardsGoInAscendingOrderToTheLeastLoadedWorkerUpToThreadsPlusOne() throws {
        var state = CoordinatorState()
        _ = state.receive(Self.ready("alice", threads: 1), from: Self.alice, now: at(0))
        let welcome = state.receive(Self.ready("bob", threads: 2), from: Self.bob, now: at(0))
        #expect(Self.sends(welcome, of: .welcome) == [Self.bob])
        let terms = try #require(welcome.compactMap { if case .send(_, let m) = $0, m.header.type == .welcome { m } else { nil } }.first)
        #expect(try terms.decode(HeartbeatTerms.self) == HeartbeatTerms(intervalMilliseconds: 1000, liveness: 3))

        let tasks = Self.tasks(state.start(Self.spec(shards: 10), now: at(0)))
        // alice: 1 thread → 2 in flight; bob: 2 threads → 3 in flight; ties go to the first worker.
        #expect(tasks.map(\.shard) == [0, 1, 2, 3, 4])
        #expect(tasks.map(\.worker) == [Self.alice, Self.bob, Self.alice, Self.bob, Self.bob])
        let status = state.status(now: at(0))
        #expect(status.workers.map(\.tasksInFlight) == [2, 3])
        #expect(status.passes.first?.queued == 5)
        #expect(status.passes.first?.inFlight == 5)

        // Each result frees one slot: the next queued shard, in order, goes to the freed worker.
        let next = Self.tasks(state.receive(Self.result(shard: 1), from: Self.bob, now: at(0.1)))
        #expect(next.map(\.shard) == [5] && next.map(\.worker) == [Self.bob])
        let after = Self.tasks(state.receive(Self.result(shard: 0), from: Self.alice, now: at(0.2)))
        #expect(after.map(\.shard) == [6] && after.map(\.worker) == [Self.alice])
    }

    @Test func passProgressCountsShardsAndRowsDoneAndRequeuedShardsAreCounted() throws {
        var state = CoordinatorState()
        _ = state.receive(Self.ready("alice", threads: 1), from: Self.alice, now: at(0))
        _ = state.receive(Self.ready("bob", threads: 1), from: Self.bob, now: at(0))
        #expect(state.passProgress(of: 1, now: at(0)) == nil)
        _ = state.start(Self.spec(round: 1, shards: 10), now: at(1))
        _ = state.start(Self.spec(job: 2, shards: 3), now: at(1))
        _ = state.receive(Self.result(shard: 0), from: Self.alice, now: at(2))
        _ = state.receive(Self.result(shard: 0), from: Self.alice, now: at(2.5))  // a duplicate: not counted twice
        #expect(state.passProgress(of: 1, now: at(3)) == PassProgress(pass: 1, kind: "kmeans-assignment", shards: 10, shardsDone: 1,
                                                                  rows: 1000, rowsDone: 100, seconds: 2))
        #expect(state.passProgress(of: 2, now: at(3))?.shardsDone == 0)
        // bob leaves holding two shards of job 1: both go back in the queue.
        #expect(state.requeuedShards == 0)
        _ = state.receive(WireMessage(header: WireHeader(.goodbye)), from: Self.bob, now: at(3))
        #expect(state.requeuedShards == 2)
        // A FAILURE to retry puts its shard back too; a final one does not.
        let held = try #require(state.status(now: at(3)).workers.first?.tasksInFlight)
        #expect(held == 2)
        let shard = try #require(state.rounds[RoundKey(job: 1, round: 1)]?.holders.keys.min())
        _ = state.receive(Self.failure(shard: shard, retry: true), from: Self.alice, now: at(4))
        #expect(state.requeuedShards == 3)
        state.cancel(job: 1)
        #expect(state.passProgress(of: 1, now: at(5)) == nil)
    }

    @Test func taskAssignmentCarriesTheShardRows() throws {
        var state = CoordinatorState()
        _ = state.receive(Self.ready("alice", threads: 1), from: Self.alice, now: at(0))
        let directives = state.start(Self.spec(shards: 3), now: at(0))
        let messages = directives.compactMap { if case .send(_, let m) = $0, m.header.type == .task { m } else { nil } }
        let assignments = try messages.map { try $0.decode(TaskAssignment.self) }
        #expect(assignments.map(\.firstRow) == [0, 100])
        #expect(assignments.map(\.rowCount) == [100, 100])
        #expect(messages.map(\.header.job) == [1, 1] && messages.map(\.header.round) == [1, 1])
    }

    @Test func anEncodePassLayoutPutsTheShardsImagesInTheTaskAndReadsTheWholeFile() throws {
        var state = CoordinatorState()
        _ = state.receive(Self.ready("alice", threads: 2), from: Self.alice, now: at(0))
        let images = (0..<5).map { ImageSlice(key: "img-\($0)", firstRow: $0 * 10, rowCount: 10) }
        var spec = Self.spec(shards: 1)
        spec.plan = ShardPlan(totalRows: images.count, shardRows: 2)
        spec.layout = ImageShards(images: images, rows: spec.corpus.rows)
        let messages = state.start(spec, now: at(0)).compactMap { if case .send(_, let m) = $0, m.header.type == .task { m } else { nil } }
        let assignments = try messages.map { try $0.decode(TaskAssignment.self) }
        #expect(assignments.map { $0.images?.map(\.key) } == [["img-0", "img-1"], ["img-2", "img-3"], ["img-4"]])
        #expect(assignments.allSatisfy { $0.firstRow == 0 && $0.rowCount == spec.corpus.rows })
    }

    @Test func aPassThatIsDoneSaysHowLongItTookAfterItsLastShard() {
        var state = CoordinatorState()
        _ = state.receive(Self.ready("alice", threads: 1), from: Self.alice, now: at(0))
        _ = state.start(Self.spec(shards: 2), now: at(1))
        #expect(!state.receive(Self.result(shard: 0), from: Self.alice, now: at(2)).contains { if case .passFinished = $0 { true } else { false } })
        let last = state.receive(Self.result(shard: 1), from: Self.alice, now: at(3.5))
        guard case .deliver(_, 1, _)? = last.first, case .passFinished(let key, let kind, let duration)? = last.last else {
            Issue.record("\(last)")
            return
        }
        #expect(key == RoundKey(job: 1, round: 1) && kind == .kmeansAssignment && duration == .milliseconds(2500))
    }

    /// A pass that persists first (its job's checkpoint) says so before anything else, and
    /// none of its tasks goes out until the write is done: a checkpoint is never behind the
    /// pass that follows it.
    @Test func aCheckpointIsPersistedBeforeTheNextPassIsSent() {
        var state = CoordinatorState()
        _ = state.receive(Self.ready("alice", threads: 1), from: Self.alice, now: at(0))
        _ = state.start(Self.spec(round: 1, shards: 1), now: at(0))
        let done = state.receive(Self.result(shard: 0), from: Self.alice, now: at(1))
        #expect(Self.delivered(done) == [0])
        var next = Self.spec(round: 2, shards: 3)
        next.persistsFirst = true
        let key = next.key
        let started = state.start(next, now: at(1.5))
        guard started.count == 1, case .persist(key)? = started.first else {
            Issue.record("\(started)")
            return
        }
        // Meanwhile nothing of the pass goes out, whatever happens.
        #expect(Self.tasks(state.tick(now: at(1.6))).isEmpty)
        #expect(Self.tasks(state.receive(Self.ready("bob", threads: 1), from: Self.bob, now: at(1.7))).isEmpty)
        #expect(state.status(now: at(1.7)).passes.first?.queued == 3)
        let persisted = Self.tasks(state.persisted(key, now: at(2)))
        #expect(persisted.map(\.shard) == [0, 1, 2] && persisted.filter(\.includesModel).count == 2)
        // A pass cancelled while it persists stays cancelled.
        var late = Self.spec(job: 2, round: 1, shards: 2)
        late.persistsFirst = true
        _ = state.start(late, now: at(3))
        state.cancel(job: 2)
        #expect(state.persisted(late.key, now: at(3.1)).isEmpty)
    }

    @Test func theModelIsSentOncePerWorkerPerPass() {
        var state = CoordinatorState()
        _ = state.receive(Self.ready("alice", threads: 1), from: Self.alice, now: at(0))
        _ = state.receive(Self.ready("bob", threads: 1), from: Self.bob, now: at(0))
        var tasks = Self.tasks(state.start(Self.spec(shards: 8), now: at(0)))
        for shard in 0..<8 {
            let holder = tasks.first { $0.shard == shard }!.worker
            tasks += Self.tasks(state.receive(Self.result(shard: shard), from: holder, now: at(Double(shard) * 0.01)))
        }
        #expect(tasks.map(\.shard) == Array(0..<8))
        for worker in [Self.alice, Self.bob] {
            let mine = tasks.filter { $0.worker == worker }
            #expect(mine.first?.includesModel == true && mine.first?.arrays == 1)
            #expect(mine.dropFirst().allSatisfy { !$0.includesModel && $0.arrays == 0 })
        }
        // The next pass sends the (new) model again, once per worker.
        let next = Self.tasks(state.start(Self.spec(round: 2, shards: 4), now: at(1)))
        #expect(next.count == 4)
        #expect(next.filter(\.includesModel).map(\.worker) == [Self.alice, Self.bob])
    }

    @Test func aSilentWorkerIsDeclaredDeadAtTickAndItsShardsGoToAnother() {
        var state = CoordinatorState()
        _ = state.receive(Self.ready("alice", threads: 1), from: Self.alice, now: at(0))
        _ = state.receive(Self.ready("bob", threads: 1), from: Self.bob, now: at(0))
        let tasks = Self.tasks(state.start(Self.spec(shards: 6), now: at(0)))
        let alices = tasks.filter { $0.worker == Self.alice }.map(\.shard)
        #expect(alices == [0, 2])
        // Bob keeps talking; alice falls silent.
        for t in stride(from: 0.5, through: 3.0, by: 0.5) {
            _ = state.receive(WireMessage(header: WireHeader(.workerHeartbeat)), from: Self.bob, now: at(t))
            let directives = state.tick(now: at(t))
            #expect(Self.tasks(directives).isEmpty, "nobody is dead at \(t) s")
        }
        #expect(state.status(now: at(3)).workers.count == 2)
        // 3 intervals is the limit: dead only once silent for more than that.
        _ = state.receive(WireMessage(header: WireHeader(.workerHeartbeat)), from: Self.bob, now: at(3.05))
        let directives = state.tick(now: at(3.1))
        #expect(directives.contains { if case .log(let text) = $0 { text.contains("alice") && text.contains("dead") } else { false } })
        #expect(state.status(now: at(3.1)).workers.map(\.name) == ["bob"])
        // Bob is full (2 in flight); as he finishes, alice's shards come to him first, in order.
        var redispatched: [Int] = []
        var sent = Self.tasks(state.receive(Self.result(shard: 1), from: Self.bob, now: at(3.2)))
        redispatched += sent.map(\.shard)
        #expect(sent.allSatisfy { $0.worker == Self.bob })
        sent = Self.tasks(state.receive(Self.result(shard: 3), from: Self.bob, now: at(3.3)))
        redispatched += sent.map(\.shard)
        #expect(redispatched == [0, 2])
        // A dead worker's late result is dropped: the shard is bob's now, and only bob's counts.
        let late = state.receive(Self.result(shard: 0), from: Self.alice, now: at(3.4))
        #expect(Self.delivered(late).isEmpty)
        #expect(Self.sends(late, of: .resync) == [Self.alice], "an unknown worker is asked to introduce itself")
        #expect(state.droppedResults == 1)
        let bobs = state.receive(Self.result(shard: 0), from: Self.bob, now: at(3.5))
        #expect(Self.delivered(bobs) == [0])
        #expect(state.droppedResults == 1)
    }

    @Test func heartbeatsGoToWorkersEveryInterval() {
        var state = CoordinatorState()
        _ = state.receive(Self.ready("alice", threads: 1), from: Self.alice, now: at(0))
        #expect(Self.sends(state.tick(now: at(0.5)), of: .coordinatorHeartbeat).isEmpty)
        _ = state.receive(WireMessage(header: WireHeader(.workerHeartbeat)), from: Self.alice, now: at(0.9))
        #expect(Self.sends(state.tick(now: at(1.0)), of: .coordinatorHeartbeat) == [Self.alice])
        #expect(Self.sends(state.tick(now: at(1.5)), of: .coordinatorHeartbeat).isEmpty)
    }

    @Test func lateResultsAreDroppedAndCounted() {
        var state = CoordinatorState()
        _ = state.receive(Self.ready("alice", threads: 4), from: Self.alice, now: at(0))
        _ = state.start(Self.spec(job: 1, shards: 2), now: at(0))
        #expect(Self.delivered(state.receive(Self.result(shard: 0), from: Self.alice, now: at(0.1))) == [0])
        #expect(Self.delivered(state.receive(Self.result(shard: 1), from: Self.alice, now: at(0.1))) == [1])
        #expect(state.status(now: at(0.1)).passes.isEmpty, "a pass with every shard merged is over")
        // For a finished pass.
        #expect(Self.delivered(state.receive(Self.result(shard: 1), from: Self.alice, now: at(0.2))).isEmpty)
        #expect(state.droppedResults == 1)
        // For a cancelled job.
        _ = state.start(Self.spec(job: 2, shards: 3), now: at(0.3))
        state.cancel(job: 2)
        #expect(state.status(now: at(0.3)).workers.first?.tasksInFlight == 0)
        #expect(Self.delivered(state.receive(Self.result(job: 2, shard: 0), from: Self.alice, now: at(0.4))).isEmpty)
        #expect(state.droppedResults == 2)
        // For a pass that never existed, and for a shard beyond the plan.
        _ = state.start(Self.spec(job: 3, shards: 2), now: at(0.5))
        #expect(Self.delivered(state.receive(Self.result(job: 3, round: 9, shard: 0), from: Self.alice, now: at(0.6))).isEmpty)
        #expect(Self.delivered(state.receive(Self.result(job: 3, shard: 2), from: Self.alice, now: at(0.6))).isEmpty)
        #expect(Self.delivered(state.receive(Self.result(job: 3, shard: Int(UInt32.max)), from: Self.alice, now: at(0.6))).isEmpty)
        #expect(state.droppedResults == 5)
        #expect(state.status(now: at(0.6)).droppedResults == 5)
    }

    @Test func aDuplicateResultIsDeliveredOnce() {
        var state = CoordinatorState()
        _ = state.receive(Self.ready("alice", threads: 1), from: Self.alice, now: at(0))
        _ = state.receive(Self.ready("bob", threads: 1), from: Self.bob, now: at(0))
        _ = state.start(Self.spec(shards: 4), now: at(0))
        var delivered: [Int] = []
        delivered += Self.delivered(state.receive(Self.result(shard: 2), from: Self.alice, now: at(0.1)))
        delivered += Self.delivered(state.receive(Self.result(shard: 2), from: Self.alice, now: at(0.1)))
        delivered += Self.delivered(state.receive(Self.result(shard: 2), from: Self.bob, now: at(0.1)))
        #expect(delivered == [2])
        #expect(state.droppedResults == 2)
        #expect(state.status(now: at(0.1)).passes.first?.done == 1)
    }

    @Test func aRetryableFailureRequeuesTheShardAndResendsTheModel() {
        var state = CoordinatorState()
        _ = state.receive(Self.ready("alice", threads: 1), from: Self.alice, now: at(0))
        let first = Self.tasks(state.start(Self.spec(shards: 5), now: at(0)))
        #expect(first.map(\.shard) == [0, 1])
        let directives = state.receive(Self.failure(shard: 0, retry: true, message: "no model for pass 1"), from: Self.alice, now: at(0.1))
        #expect(!directives.contains { if case .fail = $0 { true } else { false } })
        let again = Self.tasks(directives)
        #expect(again.map(\.shard) == [0], "the shard goes back to the front of the queue")
        #expect(again.first?.includesModel == true, "a retry after a missing model sends the model again")
        #expect(state.status(now: at(0.1)).passes.first?.queued == 3)
    }

    @Test func aFinalFailureFailsThePassWithTheWorkersMessage() {
        var state = CoordinatorState()
        _ = state.receive(Self.ready("alice", threads: 1), from: Self.alice, now: at(0))
        _ = state.start(Self.spec(shards: 5), now: at(0))
        let directives = state.receive(Self.failure(shard: 1, retry: false, message: "rows 100..<200 are unreadable"),
                                       from: Self.alice, now: at(0.1))
        let failures = directives.compactMap { if case .fail(let key, let why) = $0 { (key, why) } else { nil } }
        #expect(failures.count == 1)
        #expect(failures.first?.0 == RoundKey(job: 1, round: 1))
        #expect(failures.first?.1 == "worker alice: rows 100..<200 are unreadable")
        #expect(state.status(now: at(0.1)).passes.isEmpty)
        #expect(Self.tasks(directives).isEmpty)
        // A stale failure (for a shard the worker no longer holds) changes nothing.
        #expect(state.receive(Self.failure(shard: 1, retry: false), from: Self.alice, now: at(0.2))
            .allSatisfy { if case .fail = $0 { false } else { true } })
    }

    @Test func anUnknownWorkerIsAskedToResync() {
        var state = CoordinatorState()
        for message in [WireMessage(header: WireHeader(.workerHeartbeat)), Self.result(shard: 0),
                        Self.failure(shard: 0, retry: true)] {
            let directives = state.receive(message, from: Self.carol, now: at(0))
            #expect(Self.sends(directives, of: .resync) == [Self.carol], "\(message.header.type)")
        }
        #expect(state.status(now: at(0)).workers.isEmpty)
        // A READY without a valid introduction is dropped, not registered.
        let bad = WireMessage(header: WireHeader(.ready), metadata: ["nom": "x"])
        #expect(Self.sends(state.receive(bad, from: Self.carol, now: at(0)), of: .welcome).isEmpty)
        #expect(state.status(now: at(0)).workers.isEmpty)
    }

    @Test func goodbyeRequeuesTheWorkersShards() {
        var state = CoordinatorState()
        _ = state.receive(Self.ready("alice", threads: 1), from: Self.alice, now: at(0))
        _ = state.receive(Self.ready("bob", threads: 1), from: Self.bob, now: at(0))
        let first = Self.tasks(state.start(Self.spec(shards: 6), now: at(0)))
        #expect(first.map(\.shard) == [0, 1, 2, 3])
        let directives = state.receive(WireMessage(header: WireHeader(.goodbye)), from: Self.alice, now: at(0.1))
        #expect(Self.tasks(directives).isEmpty, "bob is full")
        #expect(state.status(now: at(0.1)).workers.map(\.name) == ["bob"])
        #expect(state.status(now: at(0.1)).passes.first?.queued == 4)
        let next = Self.tasks(state.receive(Self.result(shard: 1), from: Self.bob, now: at(0.2)))
        #expect(next.map(\.shard) == [0] && next.first?.worker == Self.bob)
    }

    @Test func aReconnectingWorkerGetsItsShardsBackInTheQueue() {
        var state = CoordinatorState()
        _ = state.receive(Self.ready("alice", threads: 1), from: Self.alice, now: at(0))
        #expect(Self.tasks(state.start(Self.spec(shards: 4), now: at(0))).map(\.shard) == [0, 1])
        // The same identity says READY again (it restarted): its shards are redone, model included.
        let again = Self.tasks(state.receive(Self.ready("alice", threads: 1), from: Self.alice, now: at(1)))
        #expect(again.map(\.shard) == [0, 1])
        #expect(again.first?.includesModel == true)
    }

    @Test func waitingForWorkersWhenAPassHasNoWorker() {
        var state = CoordinatorState()
        #expect(!state.isWaitingForWorkers)
        _ = state.start(Self.spec(shards: 2), now: at(0))
        #expect(state.isWaitingForWorkers)
        _ = state.receive(Self.ready("alice", threads: 1), from: Self.alice, now: at(0))
        #expect(!state.isWaitingForWorkers)
        _ = state.tick(now: at(5))
        #expect(state.isWaitingForWorkers, "alice died")
        #expect(state.status(now: at(5)).passes.first?.queued == 2)
        // A new worker takes the whole pass.
        let tasks = Self.tasks(state.receive(Self.ready("bob", threads: 1), from: Self.bob, now: at(5.1)))
        #expect(tasks.map(\.shard) == [0, 1])
        #expect(!state.isWaitingForWorkers)
        _ = state.receive(Self.result(shard: 0), from: Self.bob, now: at(5.2))
        _ = state.receive(Self.result(shard: 1), from: Self.bob, now: at(5.2))
        #expect(!state.isWaitingForWorkers, "no pass left")
    }

    @Test func olderPassesAreServedFirst() {
        var state = CoordinatorState()
        _ = state.start(Self.spec(job: 2, shards: 2), now: at(0))
        _ = state.start(Self.spec(job: 1, shards: 2), now: at(0))
        let tasks = state.receive(Self.ready("alice", threads: 3), from: Self.alice, now: at(0)).compactMap { directive -> (UInt64, Int)? in
            guard case .send(_, let message) = directive, message.header.type == .task else { return nil }
            return (message.header.job, Int(message.header.shard))
        }
        #expect(tasks.map(\.0) == [1, 1, 2, 2])
        #expect(tasks.map(\.1) == [0, 1, 0, 1])
    }
}

/// Results from peers the coordinator did not send the shard to, results that cannot be
/// right, workers that never answer, and names that are not text: the state machine alone.
@Suite struct UntrustedWorkerStateTests {
    typealias T = CoordinatorStateTests
    static let (alice, bob, carol) = (T.alice, T.bob, T.carol)

    static func logs(_ directives: [CoordinatorState.Directive]) -> [String] {
        directives.compactMap { if case .log(let text) = $0 { text } else { nil } }
    }

    /// A check that rejects every RESULT.
    static func reject(_ key: RoundKey, _ shard: Int, _ message: WireMessage) throws {
        throw ClusterTestError("sums[0] is nan")
    }

    static func settings(floor: Double, factor: Double = 4) -> CoordinatorSettings {
        var settings = CoordinatorSettings()
        settings.taskDeadlineFloor = .seconds(floor)
        settings.taskDeadlineFactor = factor
        return settings
    }

    @Test func aResultFromAPeerTheShardWasNotSentToIsDroppedAndCounted() {
        var state = CoordinatorState()
        _ = state.start(T.spec(shards: 4), now: at(0))
        // Before any worker exists, a peer that never registered forges shard 0.
        let forged = state.receive(T.result(shard: 0), from: Self.carol, now: at(0.1))
        #expect(T.delivered(forged).isEmpty)
        #expect(T.sends(forged, of: .resync) == [Self.carol])
        #expect(state.droppedResults == 1)
        #expect(state.status(now: at(0.1)).passes.first.map { ($0.done, $0.queued) } ?? (-1, -1) == (0, 4))
        // With workers, neither another worker nor the stranger can answer alice's shard.
        _ = state.receive(T.ready("alice", threads: 1), from: Self.alice, now: at(0.2))
        _ = state.receive(T.ready("bob", threads: 1), from: Self.bob, now: at(0.2))
        #expect(T.delivered(state.receive(T.result(shard: 0), from: Self.bob, now: at(0.3))).isEmpty)
        #expect(T.delivered(state.receive(T.result(shard: 0), from: Self.carol, now: at(0.3))).isEmpty)
        #expect(state.droppedResults == 3)
        #expect(state.status(now: at(0.3)).workers.map(\.tasksInFlight) == [2, 2], "bob still holds his own shards")
        #expect(T.delivered(state.receive(T.result(shard: 0), from: Self.alice, now: at(0.4))) == [0])
        #expect(state.rejectedResults == 0)
    }

    @Test func aRejectedResultIsComputedAgainByAnotherWorker() throws {
        var state = CoordinatorState()
        _ = state.receive(T.ready("alice", threads: 1), from: Self.alice, now: at(0))
        _ = state.receive(T.ready("bob", threads: 1), from: Self.bob, now: at(0))
        #expect(T.tasks(state.start(T.spec(shards: 6), now: at(0))).map(\.shard) == [0, 1, 2, 3])
        let rejected = state.receive(T.result(shard: 0), from: Self.alice, now: at(0.1), check: Self.reject)
        #expect(T.delivered(rejected).isEmpty)
        #expect(state.rejectedResults == 1 && state.droppedResults == 0)
        #expect(Self.logs(rejected).contains { $0.contains("alice") && $0.contains("shard 0 rejected") && $0.contains("sums[0] is nan") })
        // Alice's free slot takes the next fresh shard, model included again; shard 0 waits for bob.
        let next = T.tasks(rejected)
        #expect(next.map(\.shard) == [4] && next.first?.worker == Self.alice && next.first?.includesModel == true)
        let bobs = T.tasks(state.receive(T.result(shard: 1), from: Self.bob, now: at(0.2)))
        #expect(bobs.map(\.shard) == [0] && bobs.first?.worker == Self.bob)
        #expect(T.delivered(state.receive(T.result(shard: 0), from: Self.bob, now: at(0.3))) == [0])
        // Alone, a worker whose result was rejected gets the shard again (nobody else could).
        var alone = CoordinatorState()
        _ = alone.receive(T.ready("alice", threads: 1), from: Self.alice, now: at(0))
        _ = alone.start(T.spec(shards: 2), now: at(0))
        let again = alone.receive(T.result(shard: 0), from: Self.alice, now: at(0.1), check: Self.reject)
        #expect(T.tasks(again).map(\.shard) == [0])
    }

    @Test func threeRejectionsInARowDropAWorkerThatIsThenIgnoredForAWhile() {
        var state = CoordinatorState()
        _ = state.receive(T.ready("alice", threads: 4), from: Self.alice, now: at(0))
        #expect(T.tasks(state.start(T.spec(shards: 10), now: at(0))).count == 5)
        // A result taken between two rejections clears the strikes.
        _ = state.receive(T.result(shard: 0), from: Self.alice, now: at(0.1), check: Self.reject)
        #expect(T.delivered(state.receive(T.result(shard: 1), from: Self.alice, now: at(0.1))) == [1])
        _ = state.receive(T.result(shard: 2), from: Self.alice, now: at(0.2), check: Self.reject)
        _ = state.receive(T.result(shard: 3), from: Self.alice, now: at(0.2), check: Self.reject)
        #expect(state.status(now: at(0.2)).workers.map(\.name) == ["alice"], "two strikes in a row")
        let dropped = state.receive(T.result(shard: 4), from: Self.alice, now: at(0.3), check: Self.reject)
        #expect(Self.logs(dropped).contains { $0.contains("alice") && $0.contains("dropped") })
        // It is told why, so that it leaves rather than waiting out the silence.
        let dismissals = dropped.compactMap { directive -> FailureReport? in
            guard case .send(let worker, let message) = directive, worker == Self.alice, message.header.type == .dismiss else { return nil }
            return try? message.decode(FailureReport.self)
        }
        #expect(dismissals == [FailureReport(message: "3 results rejected or tasks overdue in a row")])
        #expect(state.status(now: at(0.3)).workers.isEmpty)
        #expect(state.status(now: at(0.3)).passes.first?.queued == 9, "every shard but 1 waits for a worker")
        #expect(state.rejectedResults == 4)
        // For 60 s its messages are ignored: results counted as dropped, no RESYNC, no WELCOME.
        let late = state.receive(T.result(shard: 5), from: Self.alice, now: at(1))
        #expect(late.isEmpty && state.droppedResults == 1)
        #expect(state.receive(WireMessage(header: WireHeader(.workerHeartbeat)), from: Self.alice, now: at(2)).isEmpty)
        #expect(state.receive(T.ready("alice", threads: 4), from: Self.alice, now: at(30)).isEmpty)
        #expect(state.status(now: at(30)).workers.isEmpty)
        // Then it may introduce itself again.
        _ = state.tick(now: at(61))
        #expect(T.sends(state.receive(WireMessage(header: WireHeader(.workerHeartbeat)), from: Self.alice, now: at(61)), of: .resync)
            == [Self.alice])
        let back = state.receive(T.ready("alice", threads: 4), from: Self.alice, now: at(61.1))
        #expect(T.sends(back, of: .welcome) == [Self.alice] && T.tasks(back).count == 5)
    }

    @Test func anOverdueShardGoesToAnotherWorkerAndTheFirstRightResultIsTaken() {
        var state = CoordinatorState(settings: Self.settings(floor: 2))
        _ = state.receive(T.ready("alice", threads: 1), from: Self.alice, now: at(0))
        _ = state.receive(T.ready("bob", threads: 2), from: Self.bob, now: at(0))
        #expect(T.tasks(state.start(T.spec(shards: 6), now: at(0))).map(\.worker)
            == [Self.alice, Self.bob, Self.alice, Self.bob, Self.bob])
        // Bob does his shards and the one left in 0.5–0.6 s each; alice says nothing.
        #expect(T.tasks(state.receive(T.result(shard: 1), from: Self.bob, now: at(0.5))).map(\.shard) == [5])
        _ = state.receive(T.result(shard: 3), from: Self.bob, now: at(0.6))
        _ = state.receive(T.result(shard: 4), from: Self.bob, now: at(0.6))
        _ = state.receive(T.result(shard: 5), from: Self.bob, now: at(1.0))
        // The deadline is 4 × the slowest shard (0.6 s), at least the floor (2 s).
        #expect(abs(state.taskDeadline(of: RoundKey(job: 1, round: 1)).seconds - 2.4) < 1e-9)
        #expect(T.tasks(state.tick(now: at(2.3))).isEmpty)
        let overdue = state.tick(now: at(2.5))
        #expect(T.tasks(overdue).map(\.shard) == [0, 2] && T.tasks(overdue).allSatisfy { $0.worker == Self.bob })
        #expect(Self.logs(overdue).contains { $0.contains("shard 0 overdue at alice") })
        // Alice answers shard 2 first: taken, and bob's copy is dropped later. Bob answers 0
        // first: taken, and a strike against alice, who had it longer.
        #expect(T.delivered(state.receive(T.result(shard: 2), from: Self.alice, now: at(2.6))) == [2])
        #expect(T.delivered(state.receive(T.result(shard: 0), from: Self.bob, now: at(2.7))) == [0])
        #expect(state.status(now: at(2.7)).passes.isEmpty)
        #expect(state.workers[Self.alice]?.strikes == 1 && state.workers[Self.bob]?.strikes == 0)
        #expect(T.delivered(state.receive(T.result(shard: 0), from: Self.alice, now: at(2.8))).isEmpty)
        #expect(T.delivered(state.receive(T.result(shard: 2), from: Self.bob, now: at(2.8))).isEmpty)
        #expect(state.droppedResults == 2)
    }

    /// The I/O thread sleeps until `nextDeadline`: a task's deadline is among them, not only
    /// the heartbeats, and a task marked overdue is one no longer.
    @Test func theNextDeadlineIsTheEarliestOfHeartbeatsAndTaskDeadlines() {
        var settings = Self.settings(floor: 2)
        settings.heartbeatInterval = .seconds(100)
        var state = CoordinatorState(settings: settings)
        #expect(state.nextDeadline == nil)
        _ = state.receive(T.ready("alice", threads: 1), from: Self.alice, now: at(0))
        #expect(state.nextDeadline == at(100))
        #expect(T.tasks(state.start(T.spec(shards: 3), now: at(1))).map(\.shard) == [0, 1])
        #expect(state.nextDeadline == at(3))
        #expect(Self.logs(state.tick(now: at(3.5))).contains { $0.contains("shard 0 overdue") })
        #expect(state.nextDeadline == at(101))
    }

    /// A second copy goes only to a worker with an idle thread: never behind other work.
    @Test func anOverdueShardWaitsForAnIdleThread() {
        var state = CoordinatorState(settings: Self.settings(floor: 1))
        let key = RoundKey(job: 1, round: 1)
        _ = state.receive(T.ready("alice", threads: 1), from: Self.alice, now: at(0))
        _ = state.receive(T.ready("bob", threads: 1), from: Self.bob, now: at(0))
        _ = state.start(T.spec(shards: 2), now: at(0))
        // Each holds one shard, with room for one more task but no idle thread.
        #expect(T.tasks(state.tick(now: at(1.5))).isEmpty)
        #expect(state.rounds[key]?.overdue.count == 2)
        let freed = state.receive(T.result(shard: 1), from: Self.bob, now: at(1.6))
        #expect(T.tasks(freed).map(\.shard) == [0] && T.tasks(freed).first?.worker == Self.bob)
    }

    /// Alice heartbeats but never answers; bob answers everything at once. The pass ends, the
    /// overdue shards go to bob only once no fresh shard waits, and alice is dropped.
    @Test func aWorkerThatNeverAnswersNoLongerHoldsItsShards() {
        var state = CoordinatorState(settings: Self.settings(floor: 1))
        let key = RoundKey(job: 1, round: 1)
        _ = state.receive(T.ready("alice", threads: 2), from: Self.alice, now: at(0))
        _ = state.receive(T.ready("bob", threads: 1), from: Self.bob, now: at(0))
        var directives = state.start(T.spec(shards: 12), now: at(0))
        var delivered: [Int] = [], bobsTasks: [Int] = []
        var now = 0.0
        while now < 30, !state.status(now: at(now)).passes.isEmpty {
            now += 0.1
            bobsTasks += T.tasks(directives).filter { $0.worker == Self.bob }.map(\.shard)
            directives = state.receive(WireMessage(header: WireHeader(.workerHeartbeat)), from: Self.alice, now: at(now))
            for shard in state.workers[Self.bob]?.inFlight[key]?.sorted() ?? [] {
                let answer = state.receive(T.result(shard: shard), from: Self.bob, now: at(now))
                delivered += T.delivered(answer)
                directives += answer
            }
            directives += state.tick(now: at(now))
        }
        #expect(delivered.sorted() == Array(0..<12), "at \(now) s")
        #expect(state.status(now: at(now)).workers.map(\.name) == ["bob"], "alice was dropped")
        // Alice held 0, 2, 4 at first; bob took every fresh shard before any of hers.
        #expect(bobsTasks == [1, 3, 5, 6, 7, 8, 9, 10, 11, 0, 2, 4])
    }

    /// A worker answering at once with results that are rejected takes no shard from an
    /// honest one for good: the pass ends after a few rejections.
    @Test func aFastLiarDoesNotStarveAnHonestWorker() {
        var state = CoordinatorState()
        let key = RoundKey(job: 1, round: 1)
        _ = state.receive(T.ready("liar", threads: 8), from: Self.carol, now: at(0))
        _ = state.receive(T.ready("bob", threads: 1), from: Self.bob, now: at(0))
        _ = state.start(T.spec(shards: 20), now: at(0))
        var steps = 0
        var delivered = 0
        while !state.status(now: at(0)).passes.isEmpty && steps < 200 {
            steps += 1
            for shard in state.workers[Self.carol]?.inFlight[key]?.sorted() ?? [] {
                _ = state.receive(T.result(shard: shard), from: Self.carol, now: at(Double(steps) * 0.01), check: Self.reject)
            }
            if let shard = state.workers[Self.bob]?.inFlight[key]?.min() {
                delivered += T.delivered(state.receive(T.result(shard: shard), from: Self.bob, now: at(Double(steps) * 0.01))).count
            }
        }
        #expect(delivered == 20, "\(steps) steps")
        #expect(state.rejectedResults == 3)
        #expect(state.status(now: at(0)).workers.map(\.name) == ["bob"])
    }

    @Test func namesAndFailureMessagesFromWorkersAreEscapedAndCut() {
        var state = CoordinatorState()
        let name = "evil\n2026-12-05T00:00:00 critical: forged line\u{1B}[31m" + String(repeating: "é", count: 500)
        let joined = state.receive(T.ready(name, threads: 1), from: Self.alice, now: at(0))
        let shown = state.status(now: at(0)).workers.first?.name ?? ""
        #expect(shown.hasPrefix("evil\\u{A}2026-12-05T00:00:00 critical: forged line\\u{1B}[31m"))
        #expect(shown.unicodeScalars.count <= PeerText.nameLimit + 1 && shown.hasSuffix("…"))
        for text in Self.logs(joined) + [shown] {
            #expect(!text.unicodeScalars.contains { $0.properties.generalCategory == .control }, "\(text)")
        }
        _ = state.start(T.spec(shards: 2), now: at(0))
        let failed = state.receive(T.failure(shard: 0, retry: false, message: "disk\u{1B}[2J\r\nfake"), from: Self.alice, now: at(0.1))
        let why = failed.compactMap { if case .fail(_, let why) = $0 { why } else { nil } }.first ?? ""
        #expect(why.hasSuffix(": disk\\u{1B}[2J\\u{D}\\u{A}fake"), "\(why)")
    }

    @Test func peerTextEscapesControlCharactersAndBackslashes() {
        #expect(PeerText.escaped("a\\b\tc\u{7F}\u{85}\u{202E}d", limit: 100) == "a\\\\b\\u{9}c\\u{7F}\\u{85}\\u{202E}d")
        #expect(PeerText.escaped("plain name-1", limit: 100) == "plain name-1")
        // Cut by scalars, never inside an escape.
        #expect(PeerText.escaped("abc\n", limit: 5) == "abc…")
        #expect(PeerText.escaped("e\u{301}" + String(repeating: "\u{301}", count: 10_000), limit: 8).unicodeScalars.count == 9)
    }
}
