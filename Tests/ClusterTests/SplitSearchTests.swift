@testable import Cluster
import ClusterProtocol
import Descriptors
import Foundation
import Search
import Storage
import Synchronization
import TestSupport
import Testing
import ZeroMQ

/// SEARCH split across workers in partitions of the set: the same keys and scores, bit for
/// bit, as the search on the coordinator alone; partitions that stay with the worker that
/// holds them, go elsewhere when it leaves, and are sent again when the set changes; and
/// RESULTs that cannot be right are rejected.
@Suite struct SplitSearchTests {
    static let dimension = 8
    /// Three whole partitions of 4,096 vectors and a short one.
    static let rows = 3 * 4096 + 1234

    /// A store with set `S`: small integer values, so that many scores tie exactly, and
    /// every 10th vector a copy of one in another partition.
    static func store(at path: String) throws -> CodebookStore {
        var random = SystemRandomNumberGenerator()
        var values = (0..<rows * dimension).map { _ in Float(Int.random(in: -2...2, using: &random)) }
        for row in stride(from: 0, to: rows, by: 10) {
            let source = (row + 5000) % rows
            for i in 0..<dimension { values[row * dimension + i] = values[source * dimension + i] }
        }
        let store = try CodebookStore(path: path)
        try put(keys: (0..<rows).map { String(format: "img%05d", ($0 * 7919) % rows) }, vectors: values, in: store)
        return store
    }

    static func put(keys: [String], vectors: [Float], in store: CodebookStore) throws {
        let record = SetRecord(encoding: .vlad, model: "M", flags: 0, options: [], dimension: dimension, created: "now")
        try store.putSet(named: "S", try StoredValue(kind: .set, metadata: record))
        let metadata = try StoredValue(kind: .vector, metadata: VectorRecord(encoding: .vlad, model: "M", flags: 0)).metadata
        try vectors.withUnsafeBytes {
            try store.putVectors(set: "S", keys: keys, metadata: metadata, dimension: dimension, floatBytes: $0, durability: .logged)
        }
    }

    /// A coordinator with `store` and `count` in-process workers of one thread, registered.
    final class Cluster {
        let coordinator: Coordinator
        var workers: [Worker]
        let client: ClusterClient

        let context: ZeroMQContext
        let endpoints: (workers: String, clients: String)

        init(workers count: Int, store: CodebookStore, searchCacheBytes: Int = 1 << 30, partitionMemory: Int = 1 << 30,
             configure: (inout CoordinatorSettings) -> Void = { _ in }) async throws {
            let context = try ZeroMQContext(), tag = UUID().uuidString
            var settings = CoordinatorSettings()
            settings.searchCacheBytes = searchCacheBytes
            settings.searchPartitionRows = 4096
            settings.resumesStoredJobs = false
            configure(&settings)
            coordinator = Coordinator(context: context, workersEndpoint: "inproc://split-workers-\(tag)",
                                      clientsEndpoint: "inproc://split-clients-\(tag)", settings: settings, store: store,
                                      logger: quietLogger())
            let endpoints = try coordinator.start()
            self.context = context
            self.endpoints = endpoints
            workers = (0..<count).map {
                var settings = WorkerSettings(name: "w\($0)", threads: 1)
                settings.partitionMemory = partitionMemory
                return Worker(context: context, endpoint: endpoints.workers, settings: settings, logger: quietLogger())
            }
            workers.forEach { $0.start() }
            client = try ClusterClient(context: context, endpoint: endpoints.clients, timeout: .seconds(60))
            try await waitForWorkers(count)
        }

        func waitForWorkers(_ count: Int) async throws {
            let client = client
            let registered = try await waitUntil(timeout: 20) { try client.status().workers.count == count }
            try #require(registered, "\(count) worker(s) registered")
        }

        func stop() {
            workers.forEach { $0.stop() }
            coordinator.stop()
        }
    }

    typealias Found = [(query: String?, keys: [String], scores: [Float])]

    /// Whether `a` and `b` are the same neighbours with the same scores, bit for bit.
    static func same(_ a: Found, _ b: Found) -> Bool {
        a.count == b.count && zip(a, b).allSatisfy {
            $0.query == $1.query && $0.keys == $1.keys && $0.scores.map(\.bitPattern) == $1.scores.map(\.bitPattern)
        }
    }

    /// Compares split searches on `cluster` with the coordinator-alone search of `store`.
    static func expectSameAsOneNode(_ cluster: Cluster, _ store: CodebookStore, _ what: String) throws {
        let reference = StoreQueries(store: store)
        var random = SystemRandomNumberGenerator()
        for (queryCount, top) in [(1, 1), (7, 10), (100, 100), (2, 5000)] {
            let queries = (0..<queryCount * dimension).map { _ in Float(Int.random(in: -2...2, using: &random)) }
            let request = SearchRequest(set: "S", top: top, queries: queryCount)
            var split = request
            split.split = true
            let expected = try reference.search(request, vectors: queries)
            let found = try cluster.client.search(split, vectors: queries)
            #expect(same(found, expected), "\(what): \(queryCount) queries, top \(top)")
            #expect(found.allSatisfy { !$0.keys.isEmpty })
        }
        let byKey = SearchRequest(set: "S", top: 20, key: "img00042", split: true)
        #expect(same(try cluster.client.search(byKey), try reference.search(SearchRequest(set: "S", top: 20, key: "img00042"))),
                "\(what): by key")
    }

    @Test(.timeLimit(.minutes(3)))
    func theSplitSearchIsTheOneNodeSearchWithOneAndThreeWorkers() async throws {
        let scratch = try TemporaryDirectory()
        let store = try Self.store(at: scratch.file("db"))
        for count in [1, 3] {
            let cluster = try await Cluster(workers: count, store: store)
            defer { cluster.stop() }
            try Self.expectSameAsOneNode(cluster, store, "\(count) worker(s)")
            // Every worker holds partitions of the set; together, all of them.
            let held = cluster.workers.map { $0.partitions.bytes }
            #expect(held.allSatisfy { $0 > 0 } && held.reduce(0, +) >= Self.rows * Self.dimension * 4, "\(held)")
        }
        // A worker that keeps no partition is sent each one again for every search.
        let forgetful = try await Cluster(workers: 1, store: store, partitionMemory: 0)
        defer { forgetful.stop() }
        try Self.expectSameAsOneNode(forgetful, store, "a worker that keeps nothing")
        #expect(forgetful.workers[0].partitions.bytes == 0)
    }

    @Test(.timeLimit(.minutes(3)))
    func aNewVectorAndADepartedWorkerChangeNothingButWhereThePartitionsAre() async throws {
        let scratch = try TemporaryDirectory()
        let store = try Self.store(at: scratch.file("db"))
        let cluster = try await Cluster(workers: 3, store: store)
        defer { cluster.stop() }
        try Self.expectSameAsOneNode(cluster, store, "before")

        // A vector written (the coordinator invalidates the set, as an encoding job does):
        // the workers' partitions are of the old generation and are sent again.
        // (Values of 3: no stored vector, of values −2…2, ties with its score.)
        try Self.put(keys: ["img99999"], vectors: [Float](repeating: 3, count: Self.dimension), in: store)
        cluster.coordinator.queries!.invalidateSearch(of: "S")
        let top = try cluster.client.search(SearchRequest(set: "S", top: 1, queries: 1, split: true),
                                            vectors: [Float](repeating: 1, count: Self.dimension))
        #expect(top[0].keys == ["img99999"] && top[0].scores == [24])
        try Self.expectSameAsOneNode(cluster, store, "after a new vector")

        // A worker leaves: its partitions go to the others.
        cluster.workers.removeFirst().stop()
        try await cluster.waitForWorkers(2)
        try Self.expectSameAsOneNode(cluster, store, "after a worker left")
    }

    @Test(.timeLimit(.minutes(2)))
    func aSetLargerThanTheSearchMemoryIsSplitAndASmallOneIsNot() async throws {
        let scratch = try TemporaryDirectory()
        let store = try Self.store(at: scratch.file("db"))
        let queries = [Float](repeating: 1, count: Self.dimension)
        let expected = try StoreQueries(store: store).search(SearchRequest(set: "S", top: 10, queries: 1), vectors: queries)
        for (cacheBytes, split) in [(1 << 30, false), (1000, true)] {
            let cluster = try await Cluster(workers: 2, store: store, searchCacheBytes: cacheBytes)
            defer { cluster.stop() }
            #expect(Self.same(try cluster.client.search(SearchRequest(set: "S", top: 10, queries: 1), vectors: queries), expected))
            #expect(cluster.workers.contains { $0.partitions.bytes > 0 } == split, "cache of \(cacheBytes) bytes")
        }
    }

    /// A stopped coordinator that ran split searches lets go of its store: a process closes
    /// the store before it exits (`CodebookStore.close`), and waits for the last reference.
    @Test(.timeLimit(.minutes(2)))
    func aStoppedCoordinatorLetsGoOfItsStoreAfterASplitSearch() async throws {
        let scratch = try TemporaryDirectory()
        var store: CodebookStore? = try Self.store(at: scratch.file("db"))
        var cluster: Cluster? = try await Cluster(workers: 1, store: store!)
        let found = try cluster!.client.search(SearchRequest(set: "S", top: 1, queries: 1, split: true),
                                               vectors: [Float](repeating: 1, count: Self.dimension))
        #expect(found.count == 1 && cluster!.workers[0].partitions.bytes > 0)
        cluster!.stop()
        cluster = nil
        #expect(CodebookStore.close(&store, waitingUpTo: .seconds(10)), "the stopped coordinator still holds the store")
    }

    /// A partition travels as one array frame, which a worker accepts only up to the
    /// coordinator's message size: long vectors get fewer rows per partition (whole blocks),
    /// and vectors too long for one block are not split at all.
    @Test func partitionsOfLongVectorsFitTheMessageSize() {
        var settings = CoordinatorSettings()
        settings.maximumModelValues = 1 << 17  // 1 MiB messages
        let block = InnerProductSearch.blockRows
        #expect(settings.searchPartitionRows(dimension: 8) == 8 * block)
        #expect(settings.searchPartitionRows(dimension: 32) == 2 * block)
        #expect(settings.searchPartitionRows(dimension: 64) == block)
        #expect(settings.searchPartitionRows(dimension: 65) == nil)
        settings.searchPartitionRows = 1
        #expect(settings.searchPartitionRows(dimension: 8) == block)
        settings = CoordinatorSettings()
        #expect(settings.searchPartitionRows(dimension: 256) == 65_536)
        #expect(settings.searchPartitionRows(dimension: 32_768) == nil)
        for dimension in [1, 100, 256, 1000, 8192] {
            if let rows = settings.searchPartitionRows(dimension: dimension) {
                #expect(rows % block == 0 && rows * dimension * 4 <= settings.maximumMessageSize, "D = \(dimension)")
            }
        }
    }

    @Test func aSplitSearchWithoutWorkersIsRefused() throws {
        let scratch = try TemporaryDirectory()
        let queries = StoreQueries(store: try SearchQueriesTests.store(at: scratch.file("db"), keys: ["a"], vectors: [1, 2, 3, 4]))
        #expect(throws: ClusterError.self) { try queries.search(SearchRequest(set: "S", top: 1, key: "a", split: true)) }
        #expect(try queries.search(SearchRequest(set: "S", top: 1, key: "a", split: false))[0].keys == ["a"])
    }

    /// While a split search waits for a worker that holds its task, the coordinator answers
    /// other clients: a GET of more keys than the I/O thread answers, a search on the
    /// coordinator alone, and a second split search, refused beyond `maximumSplitSearches`.
    @Test(.timeLimit(.minutes(2)))
    func aSplitSearchInProgressHoldsUpNoOtherClient() async throws {
        let scratch = try TemporaryDirectory()
        let store = try Self.store(at: scratch.file("db"))
        let cluster = try await Cluster(workers: 0, store: store) { $0.maximumSplitSearches = 1 }
        defer { cluster.stop() }
        let staller = StallingWorker(context: cluster.context, endpoint: cluster.endpoints.workers)
        defer { staller.stop() }
        try await cluster.waitForWorkers(1)

        let queries = [Float](repeating: 1, count: Self.dimension)
        let split = SearchRequest(set: "S", top: 3, queries: 1, split: true)
        let searcher = try ClusterClient(context: cluster.context, endpoint: cluster.endpoints.clients, timeout: .seconds(60))
        let running = Task.detached { try searcher.search(split, vectors: queries) }
        #expect(try await waitUntil(timeout: 20) { staller.tasks.load(ordering: .relaxed) > 0 }, "the split search's tasks went out")

        let other = try ClusterClient(context: cluster.context, endpoint: cluster.endpoints.clients, timeout: .seconds(5))
        let keys = (0..<Coordinator.quickGetKeys + 4).map { "S/" + String(format: "img%05d", $0) }
        #expect(try other.get(keys).allSatisfy { $0.entry.found })
        var alone = split
        alone.split = false
        #expect(try other.search(alone, vectors: queries)[0].keys.count == 3)
        #expect {
            try other.search(split, vectors: queries)
        } throws: { ($0 as? ClusterError)?.code == .limit && "\($0)".contains("maximumSplitSearches") }

        // The worker fails the tasks it holds: the first search ends with its error.
        staller.release()
        let outcome = await running.result
        #expect(throws: ClusterError.self) { try outcome.get() }
    }

    // MARK: The scheduler

    /// Partitions of 100 rows, carried as 100 zeros.
    struct Partitions: CarriedShards {
        func place(_ assignment: inout TaskAssignment, items: Range<Int>) {
            RowShards().place(&assignment, items: items)
            assignment.partition = SetPartition(set: "S", generation: 0, includesVectors: false)
        }

        func carry(_ assignment: inout TaskAssignment) {
            assignment.partition?.includesVectors = true
        }

        func rows(_ items: Range<Int>) throws -> [UInt8] { Frame.encode([Float](repeating: 0, count: items.count)) }
    }

    static func searchSpec(round: UInt32) -> RoundSpec {
        var spec = CoordinatorStateTests.spec(job: SplitSets.firstJob, round: round, shards: 2)
        spec.layout = Partitions()
        return spec
    }

    /// (worker, shard, carried) of the TASKs among `directives`; each has the queries' frame
    /// if it includes the model and no other, and is sent with its partition's rows
    /// (`sendCarrying`, for the shard's rows) if and only if it says it carries them.
    static func tasks(_ directives: [CoordinatorState.Directive]) -> [(worker: WorkerID, shard: Int, carried: Bool)] {
        directives.compactMap { directive in
            let (worker, message, rows): (WorkerID, WireMessage, Range<Int>?)
            switch directive {
            case .send(let to, let task): (worker, message, rows) = (to, task, nil)
            case .sendCarrying(let to, let task, _, let items): (worker, message, rows) = (to, task, items)
            default: return nil
            }
            guard message.header.type == .task, let assignment = try? message.decode(TaskAssignment.self) else { return nil }
            let carried = assignment.partition?.includesVectors == true
            #expect(message.arrays.count == (assignment.includesModel ? 1 : 0))
            #expect(carried == (rows != nil))
            #expect(rows.map { $0 == assignment.firstRow ..< assignment.firstRow + assignment.rowCount } ?? true)
            return (worker, Int(message.header.shard), carried)
        }
    }

    @Test func partitionsStayWithTheirWorkerAndMoveWhenItDropsThemOrDies() {
        typealias T = CoordinatorStateTests
        let job = SplitSets.firstJob
        var state = CoordinatorState()
        _ = state.receive(T.ready("alice", threads: 2), from: T.alice, now: at(0))
        // First search: both partitions go to alice with their rows (and the queries).
        let first = Self.tasks(state.start(Self.searchSpec(round: 1), now: at(0)))
        #expect(first.map(\.shard) == [0, 1] && first.allSatisfy { $0.worker == T.alice && $0.carried })
        _ = state.receive(T.result(job: job, round: 1, shard: 0), from: T.alice, now: at(0.1))
        _ = state.receive(T.result(job: job, round: 1, shard: 1), from: T.alice, now: at(0.1))
        // Second search: only the queries.
        let second = Self.tasks(state.start(Self.searchSpec(round: 2), now: at(0.2)))
        #expect(second.count == 2 && second.allSatisfy { $0.worker == T.alice && !$0.carried })
        // Alice dropped partition 0: it is sent again, with its rows.
        let again = Self.tasks(state.receive(T.failure(job: job, round: 2, shard: 0, retry: true), from: T.alice, now: at(0.3)))
        #expect(again.count == 1 && again[0].shard == 0 && again[0].carried)
        // A RESULT for a partition bob was not given is not taken.
        _ = state.receive(T.ready("bob", threads: 2), from: T.bob, now: at(0.4))
        #expect(T.delivered(state.receive(T.result(job: job, round: 2, shard: 1), from: T.bob, now: at(0.4))).isEmpty)
        #expect(state.droppedResults == 1)
        _ = state.receive(T.result(job: job, round: 2, shard: 0), from: T.alice, now: at(0.5))
        _ = state.receive(T.result(job: job, round: 2, shard: 1), from: T.alice, now: at(0.5))
        // Alice goes silent during the third search: bob gets her partitions, with their rows.
        let third = Self.tasks(state.start(Self.searchSpec(round: 3), now: at(0.6)))
        #expect(third.count == 2 && third.allSatisfy { $0.worker == T.alice && !$0.carried })
        _ = state.receive(WireMessage(header: WireHeader(.workerHeartbeat)), from: T.bob, now: at(3.0))
        let moved = Self.tasks(state.tick(now: at(3.6)))
        #expect(moved.map(\.shard) == [0, 1] && moved.allSatisfy { $0.worker == T.bob && $0.carried })
    }

    @Test func aPartitionWaitsForTheBusyWorkerHoldingItRatherThanMove() {
        typealias T = CoordinatorStateTests
        let job = SplitSets.firstJob
        var state = CoordinatorState()
        _ = state.receive(T.ready("alice", threads: 1), from: T.alice, now: at(0))
        func spec(_ round: UInt32) -> RoundSpec {
            var spec = Self.searchSpec(round: round)
            spec.plan = ShardPlan(totalRows: 400, shardRows: 100)
            return spec
        }
        // Alice searches all four partitions (two at a time) and holds them.
        var sent = Self.tasks(state.start(spec(1), now: at(0)))
        for shard in 0..<4 {
            sent += Self.tasks(state.receive(T.result(job: job, round: 1, shard: shard), from: T.alice, now: at(0.1)))
        }
        #expect(sent.map(\.shard) == [0, 1, 2, 3] && sent.allSatisfy { $0.worker == T.alice && $0.carried })
        // Bob, idle, joins; the next search still gives every partition to alice, as she frees up.
        _ = state.receive(T.ready("bob", threads: 1), from: T.bob, now: at(0.2))
        var second = Self.tasks(state.start(spec(2), now: at(0.3)))
        #expect(second.map(\.shard) == [0, 1])
        second += Self.tasks(state.receive(T.result(job: job, round: 2, shard: 0), from: T.alice, now: at(0.4)))
        second += Self.tasks(state.receive(T.result(job: job, round: 2, shard: 1), from: T.alice, now: at(0.4)))
        #expect(second.map(\.shard) == [0, 1, 2, 3] && second.allSatisfy { $0.worker == T.alice && !$0.carried })
    }

    // MARK: Hostile results

    @Test func resultsThatCannotBeRightAreRejected() throws {
        let pass = PassDescription(kind: .search, dimension: 4, top: 2, queries: 2)
        let shard = 4096..<8192
        func check(_ neighbours: [[Neighbour]], top: Int = 2, rows: Int = 4096) throws {
            let statistics = NearestRows(top: top, dimension: 4, rows: rows, neighbours: neighbours)
            let message = WireMessage(header: WireHeader(.result), metadata: statistics.shape, arrays: statistics.arrays)
            _ = try NearestRows.decode(message, pass: pass, rows: shard)
        }
        func message(_ neighbours: [[Neighbour]], top: Int = 2, rows: Int = 4096) -> String {
            do {
                try check(neighbours, top: top, rows: rows)
                return "accepted"
            } catch let error as ClusterError {
                return error.message
            } catch {
                return "\(error)"
            }
        }
        let good = [Neighbour(row: 5000, score: 3), Neighbour(row: 4096, score: 1)]
        try check([good, []])
        #expect(message([good + [Neighbour(row: 4100, score: 0)], []]).contains("outside 0…2"))
        #expect(message([good], top: 2) == "top 2 for 1 queries; the pass has top 2 for 2")
        #expect(message([good, good], top: 3) == "top 3 for 2 queries; the pass has top 2 for 2")
        #expect(message([[Neighbour(row: 8192, score: 1)], []])
            == "query 0 neighbour 0 is row 8192, not one of the shard's rows 4096..<8192")
        #expect(message([[], [Neighbour(row: 4200, score: .nan)]]) == "query 1 neighbour 0 has score NaN")
        #expect(message([[Neighbour(row: 4200, score: 1), Neighbour(row: 4200, score: 1)], []])
            == "query 0 neighbour 1 (row 4200) is out of order or repeated")
        #expect(message([[Neighbour(row: 4200, score: 1), Neighbour(row: 4300, score: 2)], []])
            == "query 0 neighbour 1 (row 4300) is out of order or repeated")
        #expect(message([good, []], rows: 4000) == "statistics cover 4000 rows but the shard has 4096")
    }
}

/// A worker written for a test, from the protocol: it registers (with `threads`) and
/// heartbeats, and takes TASKs without answering them until `release()`, then fails each
/// (for good), or `fail(pass:)`, which fails those of one pass; it says GOODBYE when stopped.
final class StallingWorker: Sendable {
    private let stopping = Atomic<Bool>(false), releasing = Atomic<Bool>(false)
    /// The pass whose TASKs held are to be failed; 0: none.
    private let failing = Atomic<UInt32>(0)
    private let finished = DispatchSemaphore(value: 0)
    /// TASKs received.
    let tasks = Atomic<Int>(0)

    init(context: ZeroMQContext, endpoint: String, threads: Int = 1) {
        let thread = Thread { [self] in
            defer { finished.signal() }
            guard let socket = try? Socket(.dealer, context: context), (try? socket.setLinger(.zero)) != nil,
                  (try? socket.connect(endpoint)) != nil else { return }
            func send(_ message: WireMessage) { _ = try? socket.send(frames: message.frames, dontWait: true) }
            let ready = WireMessage(header: WireHeader(.ready), metadata: WorkerIntroduction(name: "staller", threads: threads))
            send(ready)
            var held: [WireHeader] = [], lastSent = ContinuousClock.now
            func fail(where failed: (WireHeader) -> Bool) {
                for header in held where failed(header) {
                    send(WireMessage(header: WireHeader(.failure, job: header.job, round: header.round, shard: header.shard),
                                     metadata: FailureReport(message: "released", retry: false)))
                }
                held.removeAll(where: failed)
            }
            defer {
                try? socket.setLinger(.milliseconds(200))
                send(WireMessage(header: WireHeader(.goodbye)))
            }
            while !stopping.load(ordering: .relaxed) {
                if ContinuousClock.now - lastSent > .milliseconds(300) {
                    send(WireMessage(header: WireHeader(.workerHeartbeat)))
                    lastSent = .now
                }
                if releasing.load(ordering: .relaxed) { fail { _ in true } }
                let pass = failing.exchange(0, ordering: .relaxed)
                if pass != 0 { fail { $0.round == pass } }
                guard let frames = (try? socket.receive(dontWait: true)) ?? nil, let message = try? WireMessage(frames: frames) else {
                    Thread.sleep(forTimeInterval: 0.002)
                    continue
                }
                if message.header.type == .resync { send(ready) }
                if message.header.type == .task {
                    held.append(message.header)
                    tasks.add(1, ordering: .relaxed)
                }
            }
        }
        thread.start()
    }

    /// Fails the TASKs held, and those that come later.
    func release() { releasing.store(true, ordering: .relaxed) }

    /// Fails the TASKs of pass `pass` held now.
    func fail(pass: UInt32) { failing.store(pass, ordering: .relaxed) }

    /// Stops the thread (at most once) and waits for it.
    func stop() {
        guard !stopping.exchange(true, ordering: .relaxed) else { return }
        finished.wait()
    }
}
