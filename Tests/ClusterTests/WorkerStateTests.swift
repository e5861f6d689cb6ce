@testable import Cluster
import ClusterProtocol
import Descriptors
import Search
import Testing
import ZeroMQ

/// The worker's state machine, driven by hand with an injected clock: no sockets, no sleeps.
@Suite struct WorkerStateTests {
    /// Heartbeats every second, silent after 3, back-off 1 s doubling up to 8 s.
    static func settings() -> WorkerSettings {
        var settings = WorkerSettings(name: "w", threads: 2)
        settings.heartbeatInterval = .seconds(1)
        settings.liveness = 3
        settings.reconnectInitial = .seconds(1)
        settings.reconnectMaximum = .seconds(8)
        return settings
    }

    /// A worker asked for 100,000,000 threads started them all, until the machine ran out.
    @Test func threadsAreBoundedOnBothSides() {
        #expect(WorkerSettings(name: "w", threads: .max).threads == WorkerSettings.maximumThreads)
        #expect(WorkerSettings(name: "w", threads: 100_000_000).threads == 1024)
        #expect(WorkerSettings(name: "w", threads: -5).threads == 1)
        #expect(WorkerSettings(name: "w", threads: 16).threads == 16)
    }

    /// A state machine that has connected at t = 0 (its READY sent).
    static func connected() -> WorkerState {
        var state = WorkerState(settings: settings())
        #expect(state.start().count == 1)
        _ = state.connected(now: at(0))
        return state
    }

    static func frames(_ message: WireMessage) -> [[UInt8]] { message.frames }

    static func task(job: UInt64 = 1, round: UInt32, shard: UInt32 = 0, withModel: Bool) -> [[UInt8]] {
        let corpus = CorpusReference(path: "/data/corpus.fvecs", rows: 100, dimension: 4, fileSize: 100 * 20)
        let assignment = TaskAssignment(corpus: corpus, firstRow: 0, rowCount: 100,
                                        computation: PassDescription(kind: .kmeansAssignment, dimension: 4, k: 2, withSquares: false),
                                        includesModel: withModel)
        return WireMessage(header: WireHeader(.task, job: job, round: round, shard: shard), metadata: assignment,
                           arrays: withModel ? [Frame.encode([Float](repeating: 1, count: 8))] : []).frames
    }

    static func sent(_ directives: [WorkerState.Directive]) -> [MessageType] {
        directives.compactMap { if case .send(let message) = $0 { message.header.type } else { nil } }
    }

    static func computed(_ directives: [WorkerState.Directive]) -> [ShardTask] {
        directives.compactMap { if case .compute(let task) = $0 { task } else { nil } }
    }

    static func failures(_ directives: [WorkerState.Directive]) -> [FailureReport] {
        directives.compactMap {
            if case .send(let message) = $0, message.header.type == .failure { try? message.decode(FailureReport.self) } else { nil }
        }
    }

    static func disconnects(_ directives: [WorkerState.Directive]) -> Bool {
        directives.contains { if case .disconnect = $0 { true } else { false } }
    }

    static func logs(_ directives: [WorkerState.Directive]) -> [String] {
        directives.compactMap { if case .log(_, let text) = $0 { text } else { nil } }
    }

    /// Ticks at `time` and, if the back-off is over, reconnects; returns the reconnection's directives.
    static func reconnect(_ state: inout WorkerState, at time: Double) -> [WorkerState.Directive] {
        let directives = state.tick(now: at(time))
        guard directives.contains(where: { if case .connect = $0 { true } else { false } }) else { return directives }
        return directives + state.connected(now: at(time))
    }

    @Test func readyOnConnectAndHeartbeatsOnScheduleWhileTheCoordinatorIsHeard() throws {
        var state = WorkerState(settings: Self.settings(), pid: 42)
        let ready = state.connected(now: at(0))
        #expect(Self.sent(ready) == [.ready])
        guard case .send(let introduction) = ready.first else { Issue.record("no READY"); return }
        #expect(try introduction.decode(WorkerIntroduction.self) == WorkerIntroduction(name: "w", threads: 2, pid: 42, extendsCandidates: true))
        #expect(state.nextDeadline == at(1))
        #expect(state.tick(now: at(0.5)).isEmpty)
        #expect(Self.sent(state.tick(now: at(1))) == [.workerHeartbeat])
        _ = state.receive(WireMessage(header: WireHeader(.coordinatorHeartbeat)).frames, now: at(1.5))
        #expect(Self.sent(state.tick(now: at(2))) == [.workerHeartbeat])
        // Any message sent counts as a heartbeat: a RESULT at 2.5 puts the next one at 3.5.
        let result = WireMessage(header: WireHeader(.result, job: 1, round: 1, shard: 0))
        #expect(Self.sent(state.finished(result, session: 1, now: at(2.5))) == [.result])
        #expect(state.tick(now: at(3)).isEmpty)
        #expect(state.nextDeadline == at(3.5))
        #expect(state.isConnected)
    }

    @Test func theWelcomeSetsTheHeartbeatTerms() {
        var state = Self.connected()
        let welcome = WireMessage(header: WireHeader(.welcome), metadata: HeartbeatTerms(intervalMilliseconds: 250, liveness: 2))
        #expect(state.receive(welcome.frames, now: at(0)).isEmpty)
        #expect(state.interval == .milliseconds(250) && state.liveness == 2)
        #expect(Self.sent(state.tick(now: at(0.25))) == [.workerHeartbeat])
        // Silent after 2 × 0.25 s.
        #expect(Self.disconnects(state.tick(now: at(0.51))))
        // Nonsense terms are ignored.
        var other = Self.connected()
        let zero = WireMessage(header: WireHeader(.welcome), metadata: HeartbeatTerms(intervalMilliseconds: 0, liveness: 0))
        _ = other.receive(zero.frames, now: at(0))
        #expect(other.interval == .seconds(1) && other.liveness == 3)
    }

    @Test func aSilentCoordinatorIsLeftAndRetriedWithABackOffThatDoublesUpToTheCap() {
        var state = Self.connected()
        // Silent for exactly 3 intervals: still alive; for more: the session ends.
        #expect(!Self.disconnects(state.tick(now: at(3))))
        var time = 3.01
        var waits: [Double] = []
        for _ in 0..<6 {
            let end = state.tick(now: at(time))
            #expect(Self.disconnects(end))
            #expect(Self.logs(end).contains { $0.hasPrefix("the coordinator was silent for 3 s; reconnecting in") })
            guard case .silent = state.lastEnd else { Issue.record("ended by \(String(describing: state.lastEnd))"); return }
            #expect(!state.isConnected)
            let until = state.nextDeadline!
            waits.append((until - at(time)).seconds)
            // Nothing before the back-off is over; then a new connection and a new READY.
            #expect(state.tick(now: until - .milliseconds(1)).isEmpty)
            let reconnection = Self.reconnect(&state, at: (until - at(0)).seconds)
            #expect(Self.sent(reconnection) == [.ready])
            time = (until - at(0)).seconds + 3.01
        }
        #expect(waits == [1, 2, 4, 8, 8, 8])
    }

    @Test func aSessionThatHeardTheCoordinatorStartsTheBackOffAgain() {
        var state = Self.connected()
        _ = state.tick(now: at(3.01)) // never heard: 1 s
        _ = Self.reconnect(&state, at: 4.01)
        _ = state.tick(now: at(7.02)) // never heard: 2 s
        #expect(state.nextDeadline == at(9.02))
        _ = Self.reconnect(&state, at: 9.02)
        _ = state.receive(WireMessage(header: WireHeader(.coordinatorHeartbeat)).frames, now: at(9.5))
        // Heard, then silent (the coordinator restarted): back to 1 s.
        let end = state.tick(now: at(12.6))
        #expect(Self.disconnects(end))
        #expect(state.nextDeadline == at(13.6))
    }

    @Test func resyncIsAnsweredWithReady() {
        var state = Self.connected()
        #expect(Self.sent(state.receive(WireMessage(header: WireHeader(.resync)).frames, now: at(0.5))) == [.ready])
    }

    @Test func aTaskWithItsModelIsComputedAndLaterTasksOfThePassReuseIt() {
        var state = Self.connected()
        let first = Self.computed(state.receive(Self.task(round: 1, shard: 0, withModel: true), now: at(0.1)))
        let second = Self.computed(state.receive(Self.task(round: 1, shard: 1, withModel: false), now: at(0.2)))
        #expect(first.map(\.header.shard) == [0] && second.map(\.header.shard) == [1])
        #expect(first.first?.session == 1)
        #expect(state.cachedModels == [1: 1])
    }

    @Test func aTaskForAnEvictedModelIsAnsweredWithARetryableFailure() throws {
        var state = Self.connected()
        _ = state.receive(Self.task(round: 1, withModel: true), now: at(0.1))
        // Pass 2's model replaces pass 1's: a late task of pass 1 has none.
        _ = state.receive(Self.task(round: 2, withModel: true), now: at(0.2))
        let late = state.receive(Self.task(round: 1, shard: 3, withModel: false), now: at(0.3))
        #expect(Self.computed(late).isEmpty)
        #expect(Self.failures(late) == [FailureReport(message: "no model for pass 1 of job 1", retry: true)])
        guard case .send(let failure) = late.first else { return }
        #expect(failure.header == WireHeader(.failure, job: 1, round: 1, shard: 3))

        // A reconnection drops every model: pass 2's next task gets the same answer.
        _ = state.tick(now: at(3.5))
        #expect(state.cachedModels.isEmpty)
        _ = Self.reconnect(&state, at: 4.5)
        let afterReconnect = state.receive(Self.task(round: 2, shard: 4, withModel: false), now: at(4.6))
        #expect(Self.failures(afterReconnect).map(\.retry) == [true])
    }

    /// A coordinator that sends tasks of ever more jobs (hostile, or one session that lasts
    /// many jobs) does not make the worker keep a model for each: the jobs it was last sent
    /// tasks of keep theirs, the others get FAILURE `retry` and are sent them again.
    @Test func modelsAreKeptForTheJobsLastSentTasksOnly() {
        var state = Self.connected()
        let jobs = UInt64(WorkerState.maximumModelJobs) + 10
        for job in 1...jobs {
            #expect(Self.computed(state.receive(Self.task(job: job, round: 1, withModel: true), now: at(0.1))).count == 1)
            // Job 1 is sent a task each time, so it stays among the latest.
            #expect(Self.computed(state.receive(Self.task(job: 1, round: 1, withModel: false), now: at(0.1))).count == 1)
        }
        #expect(state.cachedModels.count == WorkerState.maximumModelJobs)
        #expect(state.cachedModels[1] == 1 && state.cachedModels[jobs] == 1 && state.cachedModels[2] == nil)
        let dropped = state.receive(Self.task(job: 2, round: 1, shard: 1, withModel: false), now: at(0.2))
        #expect(Self.failures(dropped) == [FailureReport(message: "no model for pass 1 of job 2", retry: true)])
    }

    @Test func aTaskThatCannotBeDecodedFailsForGood() {
        var state = Self.connected()
        let garbage = WireMessage(header: WireHeader(.task, job: 1, round: 1, shard: 0), arrays: []).frames
        let reply = state.receive(garbage, now: at(0.1))
        #expect(Self.failures(reply).map(\.retry) == [false])
    }

    @Test func aResultOfAnEarlierSessionIsNotSent() {
        var state = Self.connected()
        let task = Self.computed(state.receive(Self.task(round: 1, withModel: true), now: at(0.1)))[0]
        _ = state.tick(now: at(3.5))
        let result = WireMessage(header: WireHeader(.result, job: 1, round: 1, shard: 0))
        // During the back-off, and on the next connection: dropped (its shard went back to the queue).
        #expect(state.finished(result, session: task.session, now: at(4)).isEmpty)
        _ = Self.reconnect(&state, at: 4.5)
        #expect(state.finished(result, session: task.session, now: at(4.6)).isEmpty)
        #expect(Self.sent(state.finished(result, session: task.session + 1, now: at(4.7))) == [.result])
    }

    @Test func aRefusedHandshakeIsNamedAndRetriedWithAGrowingBackOff() {
        var state = Self.connected()
        var waits: [Double] = []
        var time = 0.0
        for _ in 0..<5 {
            let end = state.refused("the coordinator at tcp://127.0.0.1:1 refused this worker's key", now: at(time))
            #expect(Self.disconnects(end))
            #expect(Self.logs(end).first?.hasPrefix("the coordinator refused the connection: the coordinator at tcp://127.0.0.1:1 "
                                                    + "refused this worker's key; reconnecting in") == true)
            #expect(state.lastEnd == .refused("the coordinator at tcp://127.0.0.1:1 refused this worker's key"))
            let until = state.nextDeadline!
            waits.append((until - at(time)).seconds)
            time = (until - at(0)).seconds
            _ = Self.reconnect(&state, at: time)
        }
        #expect(waits == [1, 2, 4, 8, 8])
        // A refusal reported while waiting out a back-off changes nothing.
        _ = state.tick(now: at(time + 3.01))
        let until = state.nextDeadline
        #expect(state.refused("again", now: at(time + 3.5)).isEmpty)
        #expect(state.nextDeadline == until)
    }

    /// A lone worker whose RESULTs the coordinator always rejects is dismissed after its
    /// strikes; each dismissal is logged and the back-off grows to its cap instead of
    /// restarting at the initial one (it heard the coordinator, but that is no reason to
    /// come back at once).
    @Test func aDismissedWorkerSaysWhyAndBacksOffUpToTheCapEvenThoughItHeardTheCoordinator() throws {
        var state = Self.connected()
        var waits: [Double] = []
        var time = 0.0
        for _ in 0..<5 {
            let welcome = WireMessage(header: WireHeader(.welcome), metadata: HeartbeatTerms(intervalMilliseconds: 1000, liveness: 3))
            _ = state.receive(welcome.frames, now: at(time + 0.1))
            _ = state.receive(Self.task(round: 1, withModel: true), now: at(time + 0.2))
            let dismiss = WireMessage(header: WireHeader(.dismiss),
                                      metadata: FailureReport(message: "3 results rejected or tasks overdue in a row"))
            let end = state.receive(dismiss.frames, now: at(time + 0.3))
            #expect(Self.disconnects(end))
            #expect(Self.logs(end).first?.hasPrefix("the coordinator dismissed this worker: 3 results rejected or tasks overdue "
                                                    + "in a row; reconnecting in") == true)
            #expect(state.lastEnd == .dismissed("3 results rejected or tasks overdue in a row"))
            #expect(state.cachedModels.isEmpty)
            let until = state.nextDeadline!
            waits.append((until - at(time + 0.3)).seconds)
            time = (until - at(0)).seconds
            _ = Self.reconnect(&state, at: time)
        }
        #expect(waits == [1, 2, 4, 8, 8])
    }

    @Test func aFailedConnectionIsRetriedAfterTheBackOff() {
        var state = WorkerState(settings: Self.settings())
        #expect(state.start().count == 1)
        let failed = state.connectFailed("no such host", now: at(0))
        #expect(Self.logs(failed) == ["cannot connect: no such host; reconnecting in 1 s"])
        #expect(state.tick(now: at(0.5)).isEmpty)
        #expect(state.tick(now: at(1)).count == 1)
    }

    @Test func goodbyeOnStopOnlyWhenConnected() {
        var state = Self.connected()
        #expect(Self.sent(state.stop()) == [.goodbye])
        #expect(state.nextDeadline == nil)
        var waiting = Self.connected()
        _ = waiting.tick(now: at(3.5))
        #expect(waiting.stop().isEmpty)
    }

    @Test func malformedAndUnexpectedMessagesAreLoggedAndDropped() {
        var state = Self.connected()
        #expect(Self.logs(state.receive([[1, 2, 3]], now: at(0.5))).first?.hasPrefix("dropped a malformed message") == true)
        #expect(Self.logs(state.receive(WireMessage(header: WireHeader(.status)).frames, now: at(0.6)))
            == ["unexpected status from the coordinator dropped"])
        // Even a malformed message shows the coordinator is there.
        #expect(!Self.disconnects(state.tick(now: at(3.5))))
    }
}

/// The corpora a worker keeps open are bounded: the coordinator names the paths, and each
/// open one holds its file mapped.
@Suite struct CorpusCacheTests {
    @Test func onlyTheCorporaLastUsedStayOpen() throws {
        let cache = CorpusCache()
        let paths = try (0..<CorpusCache.capacity + 4).map { try Corpora.path(rows: 10, dimension: 2, seed: UInt64(1000 + $0)) }
        func open(_ path: String) throws {
            let matrix = try DescriptorMatrix.open(path: path)
            let size = matrix.file?.size ?? 0
            _ = try cache.open(CorpusReference(path: path, rows: matrix.rows, dimension: matrix.dimension, fileSize: size))
        }
        for path in paths {
            try open(path)
            try open(paths[0])  // used each time: it stays
        }
        #expect(cache.paths.count == CorpusCache.capacity)
        #expect(cache.paths.last == paths[0] && cache.paths.contains(paths.last!) && !cache.paths.contains(paths[1]))
        // A corpus whose file is not the one planned for is not kept.
        #expect(throws: DescriptorError.self) { _ = try cache.open(CorpusReference(path: paths[1], rows: 11, dimension: 2, fileSize: 0)) }
        #expect(!cache.paths.contains(paths[1]) && cache.paths.count <= CorpusCache.capacity)
    }
}

/// The tasks a worker lets wait for its compute threads are bounded: a coordinator that sends
/// far more than `threads` + a few at once is answered FAILURE `retry` for the rest.
@Suite struct TaskQueueTests {
    @Test func aFullQueueTakesNoMoreUntilATaskIsTaken() throws {
        let queue = TaskQueue(limit: 3)
        let pass = try SearchPass(queries: [1, 0], dimension: 2, top: 1)
        let task = { (shard: UInt32) in
            ShardTask(header: WireHeader(.task, job: 1, round: 1, shard: shard),
                      assignment: TaskAssignment(corpus: CorpusReference(path: "c", rows: 1, dimension: 2, fileSize: 0), firstRow: 0,
                                                 rowCount: 1, computation: pass.description, includesModel: true),
                      computation: pass, session: 1)
        }
        #expect((0..<5).map { queue.push(task($0)) } == [true, true, true, false, false])
        #expect(queue.pop()?.header.shard == 0)
        #expect(queue.push(task(5)))
        #expect(!queue.push(task(6)))
        #expect([queue.pop(), queue.pop(), queue.pop()].map { $0?.header.shard } == [1, 2, 5])
    }
}
