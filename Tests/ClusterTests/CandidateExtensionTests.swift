@testable import Cluster
import ClusterProtocol
import Clustering
import Descriptors
import Foundation
import Telemetry
import Testing
import ZeroMQ

/// k-means‖ rounds whose TASKs carry only the candidates added since the previous round to a
/// worker holding that round's model (`ModelExtension`): the same pass bit for bit, and every
/// candidate to a worker that does not hold them (new, re-registered, rejected, or saying so).
@Suite struct CandidateExtensionTests {
    static let d = 4

    /// `count` candidates of D = 4, candidate i being (i, i + 0.5, −i, 1/(i + 1)).
    static func candidates(_ count: Int) -> [Float] {
        (0..<count).flatMap { (i: Int) -> [Float] in
            let x = Float(i)
            return [x, x + 0.5, -x, 1 / (x + 1)]
        }
    }

    static func round(_ round: Int, candidates count: Int, measured: Int, weighs: Bool = false) -> PassDescription {
        PassDescription(kind: .kmeansParallelRound, dimension: d, k: count, seed: 5, round: round, oversampling: 2,
                        measured: measured > 0 ? measured : nil, weighs: weighs ? true : nil)
    }

    static func model(_ count: Int) -> [[UInt8]] { [Frame.encode(candidates(count))] }

    // MARK: The coordinator's side

    @Test func aRoundExtendsThePreviousRoundOnlyWhenItsCandidatesBeginWithAllOfThem() throws {
        let previous = (round: UInt32(3), computation: Self.round(1, candidates: 3, measured: 0), model: Self.model(3))
        let partial = try #require(ModelExtension(round: 4, computation: Self.round(2, candidates: 5, measured: 3),
                                                  model: Self.model(5), extending: previous))
        #expect(partial.previous == 3 && partial.computation.extendsPass == 3 && partial.computation.k == 5)
        #expect(partial.model == [Frame.encode(Array(Self.candidates(5)[(3 * Self.d)...]))])
        // A pass that measures no new candidate sends none.
        let weights = try #require(ModelExtension(round: 4, computation: Self.round(2, candidates: 3, measured: 3, weighs: true),
                                                  model: Self.model(3), extending: previous))
        #expect(weights.model == [[]])

        var changed = Self.candidates(5)
        changed[5] = changed[5].nextUp
        for (name, round, computation, model) in [
            ("not the next pass", UInt32(5), Self.round(2, candidates: 5, measured: 3), Self.model(5)),
            ("an earlier candidate changed", 4, Self.round(2, candidates: 5, measured: 3), [Frame.encode(changed)]),
            ("measured is not the previous count", 4, Self.round(2, candidates: 5, measured: 2), Self.model(5)),
            ("round 1 measures nothing", 4, Self.round(1, candidates: 5, measured: 0), Self.model(5)),
            ("another pass kind", 4, PassDescription(kind: .kmeansAssignment, dimension: Self.d, k: 5), Self.model(5)),
        ] {
            #expect(ModelExtension(round: round, computation: computation, model: model, extending: previous) == nil, "\(name)")
        }
    }

    /// alice takes extensions, bob does not (his READY does not say so); carol joins late.
    @Test func theCoordinatorSendsOnlyNewCandidatesToAWorkerHoldingThePreviousRound() throws {
        typealias T = CoordinatorStateTests
        func ready(_ name: String, extends: Bool) -> WireMessage {
            WireMessage(header: WireHeader(.ready), metadata: WorkerIntroduction(name: name, threads: 1, extendsCandidates: extends))
        }
        func spec(round: UInt32, candidates: Int, measured: Int, previous: Int?, shards: Int) -> RoundSpec {
            var spec = T.spec(round: round, shards: shards)
            spec.computation = Self.round(Int(round), candidates: candidates, measured: measured)
            spec.model = Self.model(candidates)
            if let previous {
                spec.modelExtension = ModelExtension(round: round, computation: spec.computation, model: spec.model,
                                                     extending: (round - 1, Self.round(Int(round) - 1, candidates: previous, measured: 0),
                                                                 Self.model(previous)))
            }
            return spec
        }
        /// The TASKs that carry a model: worker, `extendsPass`, candidates sent.
        func models(_ directives: [CoordinatorState.Directive]) -> [(worker: WorkerID, extends: UInt32?, sent: Int)] {
            directives.compactMap { directive in
                guard case .send(let worker, let message) = directive, message.header.type == .task,
                      let assignment = try? message.decode(TaskAssignment.self), assignment.includesModel else { return nil }
                return (worker, assignment.computation.extendsPass, message.arrays[0].count / (4 * Self.d))
            }
        }
        func finish(_ state: inout CoordinatorState, round: UInt32, shards: [(WorkerID, Int)], at time: Double) -> [CoordinatorState.Directive] {
            shards.flatMap { state.receive(T.result(round: round, shard: $0.1), from: $0.0, now: at(time)) }
        }

        var state = CoordinatorState()
        _ = state.receive(ready("alice", extends: true), from: T.alice, now: at(0))
        _ = state.receive(ready("bob", extends: false), from: T.bob, now: at(0))
        // Round 1: every candidate to both.
        let first = state.start(spec(round: 1, candidates: 2, measured: 0, previous: nil, shards: 4), now: at(0))
        #expect(models(first).map(\.sent) == [2, 2])
        _ = finish(&state, round: 1, shards: [(T.alice, 0), (T.bob, 1)], at: 0.1)
        _ = finish(&state, round: 1, shards: [(T.alice, 2), (T.bob, 3)], at: 0.2)

        // Round 2 adds 3: alice gets those 3, bob all 5; carol, new, all 5 (shards 4 and 5:
        // the first four go back to the workers that computed them).
        _ = state.receive(ready("carol", extends: true), from: T.carol, now: at(0.3))
        let second = state.start(spec(round: 2, candidates: 5, measured: 2, previous: 2, shards: 6), now: at(0.4))
        let sent = Dictionary(uniqueKeysWithValues: models(second).map { ($0.worker, $0) })
        #expect(sent[T.alice]?.extends == 1 && sent[T.alice]?.sent == 3)
        #expect(sent[T.bob]?.extends == nil && sent[T.bob]?.sent == 5)
        #expect(sent[T.carol]?.extends == nil && sent[T.carol]?.sent == 5)

        // alice says she does not hold round 1's candidates: round 2's model goes to her whole.
        let aliceShard = Int(try #require(second.compactMap { directive -> UInt32? in
            if case .send(let worker, let message) = directive, worker == T.alice, message.header.type == .task { message.header.shard } else { nil }
        }.first))
        let retried = state.receive(T.failure(round: 2, shard: aliceShard, retry: true,
                                              message: "no candidates of pass 1 of job 1 to extend"), from: T.alice, now: at(0.5))
        #expect(models(retried).map(\.worker) == [T.alice] && models(retried).first?.extends == nil
                && models(retried).first?.sent == 5)
    }

    // MARK: The worker's side

    static func task(round: UInt32, _ computation: PassDescription, arrays: [[UInt8]]) -> [[UInt8]] {
        let corpus = CorpusReference(path: "/data/corpus.npy", rows: 100, dimension: d, fileSize: 100 * d * 4 + 128)
        let assignment = TaskAssignment(corpus: corpus, firstRow: 0, rowCount: 100, computation: computation, includesModel: true)
        return WireMessage(header: WireHeader(.task, job: 1, round: round, shard: 0), metadata: assignment, arrays: arrays).frames
    }

    static func extending(_ previous: UInt32, candidates count: Int, measured: Int, sent: Int? = nil) -> [[UInt8]] {
        var computation = round(2, candidates: count, measured: measured)
        computation.extendsPass = previous
        let end = sent.map { measured + $0 } ?? count
        return task(round: previous + 1, computation, arrays: [Frame.encode(Array(candidates(end)[(measured * d)...]))])
    }

    @Test func aWorkerJoinsTheCandidatesItHoldsAndTheNewOnesIntoTheWholePass() throws {
        var state = WorkerStateTests.connected()
        _ = state.receive(Self.task(round: 1, Self.round(1, candidates: 2, measured: 0), arrays: Self.model(2)), now: at(0.1))
        let computed = WorkerStateTests.computed(state.receive(Self.extending(1, candidates: 5, measured: 2), now: at(0.2)))
        let pass = try #require(computed.first?.computation as? KMeansParallelRoundPass)
        let whole = try KMeansParallelRoundPass(candidates: try Codebook(k: 5, dimension: Self.d, centres: Self.candidates(5)),
                                                measured: 2, oversampling: 2, seed: 5, round: 2)
        #expect(pass.search.codebook.centres.map(\.bitPattern) == whole.search.codebook.centres.map(\.bitPattern))
        #expect(pass.description == whole.description && pass.measured == 2 && computed.first?.assignment.computation.extendsPass == nil)
        #expect(state.cachedModels == [1: 2])
        // The weighting pass after it adds no candidate.
        var weights = Self.round(3, candidates: 5, measured: 5, weighs: true)
        weights.extendsPass = 2
        let weighing = WorkerStateTests.computed(state.receive(Self.task(round: 3, weights, arrays: [[]]), now: at(0.3)))
        #expect((weighing.first?.computation as? KMeansParallelRoundPass)?.search.codebook.k == 5)
    }

    @Test func aWorkerWithoutTheCandidatesItIsToExtendSaysSoAndMayBeSentThemWhole() throws {
        var state = WorkerStateTests.connected()
        let none = state.receive(Self.extending(1, candidates: 5, measured: 2), now: at(0.1))
        #expect(WorkerStateTests.computed(none).isEmpty)
        #expect(WorkerStateTests.failures(none) == [FailureReport(
            message: "no candidates of pass 1 of job 1 to extend (this worker holds no model of the job)", retry: true)])
        // It holds another pass of the job (pass 7's, not pass 1's).
        _ = state.receive(Self.task(round: 7, Self.round(1, candidates: 2, measured: 0), arrays: Self.model(2)), now: at(0.2))
        let other = state.receive(Self.extending(1, candidates: 5, measured: 2), now: at(0.3))
        #expect(WorkerStateTests.failures(other).map(\.retry) == [true])
        #expect(WorkerStateTests.failures(other).first?.message.contains("holds pass 7's model") == true)
        // Pass 1's model, but with 3 candidates where the extension says 2 were measured.
        _ = state.receive(Self.task(round: 1, Self.round(1, candidates: 3, measured: 0), arrays: Self.model(3)), now: at(0.4))
        #expect(WorkerStateTests.failures(state.receive(Self.extending(1, candidates: 5, measured: 2), now: at(0.5))).map(\.retry) == [true])
    }

    @Test(arguments: [
        ("too few new candidates", 2, 1, "array 0 has 4 values, expected 12"),
        ("too many", 2, 4, "array 0 has 16 values, expected 12"),
        ("measured 0", 0, nil, "only a k-means‖ round with 1 ≤ measured ≤ k"),
    ] as [(String, Int, Int?, String)])
    func anExtensionThatCannotBeRightFailsForGood(name: String, measured: Int, sent: Int?, expected: String) throws {
        var state = WorkerStateTests.connected()
        _ = state.receive(Self.task(round: 1, Self.round(1, candidates: 2, measured: 0), arrays: Self.model(2)), now: at(0.1))
        let reply = state.receive(Self.extending(1, candidates: 5, measured: measured, sent: sent), now: at(0.2))
        let failures = WorkerStateTests.failures(reply)
        #expect(failures.map(\.retry) == [false] && failures.first?.message.contains(expected) == true, "\(name): \(failures)")
    }

    // MARK: On a cluster

    static let rows = 8_000, dimension = 32, shardRows = 1_000, k = 64

    /// k-means‖ seeding through a coordinator and Swift workers: the local engine's centres,
    /// bit for bit, with 1 or 2 workers, kept distances or none, and a worker stopped while
    /// a round runs and another started; with 2 steady workers, the weighting pass sends each
    /// only the last round's candidates, fewer than half of all (the old protocol sent every
    /// candidate to each worker).
    @Test(.timeLimit(.minutes(2)), arguments: [(2, DistanceCache.seedingDefault, false), (1, 0, false),
                                               (2, DistanceCache.seedingDefault, true), (2, 0, true)])
    func seedingOnAClusterSendsNewCandidatesOnlyAndMatchesTheLocalEngine(workers count: Int, seedingMemory: Int, churn: Bool) async throws {
        let path = try Corpora.path(rows: Self.rows, dimension: Self.dimension, clusters: 16)
        let parameters = KMeansParameters(k: Self.k)
        let sampling = KMeansParallel.sampling(perCentre: parameters.seedingSample, k: Self.k, rows: Self.rows)
        func seed(_ backend: some StatisticsBackend, progress: (KMeansParallel.RoundReport) -> Void = { _ in }) async throws -> Codebook {
            try await KMeansParallel.seed(backend: backend, k: Self.k, seed: 9, rounds: parameters.seedingRounds,
                                          oversampling: parameters.seedingOversampling, sampling: sampling, threads: 1, progress: progress)
        }
        let expected = try await seed(LocalBackend(corpus: try DescriptorMatrix.open(path: path), shardRows: Self.shardRows, threads: 1))

        let context = try ZeroMQContext()
        let metrics = CoordinatorMetrics(registry: MetricsRegistry())
        let tag = UUID().uuidString
        let coordinator = Coordinator(context: context, workersEndpoint: "inproc://extension-workers-\(tag)",
                                      clientsEndpoint: "inproc://extension-clients-\(tag)", metrics: metrics, logger: quietLogger())
        let endpoints = try coordinator.start()
        var workers: [Worker] = []
        func startWorker() {
            var settings = WorkerSettings(name: "w\(workers.count)", threads: 1)
            settings.seedingMemory = seedingMemory
            workers.append(Worker(context: context, endpoint: endpoints.workers, settings: settings, logger: quietLogger()))
            workers.last!.start()
        }
        for _ in 0..<count { startWorker() }
        defer {
            workers.forEach { $0.stop() }
            coordinator.stop()
        }
        let client = try ClusterClient(context: context, endpoint: endpoints.clients, timeout: .seconds(10))
        try #require(try await waitUntil(timeout: 20) { try client.status().workers.count == count })

        func taskBytes() -> Double {
            String(decoding: metrics.registry.exposition(), as: UTF8.self).split(separator: "\n")
                .first { $0.hasPrefix("codebook_task_bytes_total ") }.flatMap { Double($0.split(separator: " ")[1]) } ?? 0
        }
        let corpus = CorpusReference(path: path, rows: Self.rows, dimension: Self.dimension,
                                     fileSize: Int(try FileManager.default.attributesOfItem(atPath: path)[.size] as! UInt64))
        let backend = ClusterBackend(coordinator: coordinator, job: 1, corpus: corpus, shardRows: Self.shardRows)
        var before = taskBytes()
        var steps: [(report: KMeansParallel.RoundReport, bytes: Double)] = []
        let centres = try await seed(backend) { report in
            steps.append((report, taskBytes() - before))
            before = taskBytes()
            guard churn, report.round == 2 else { return }
            // A worker stops while round 3 runs (its shards go to the others), a new one starts.
            let leaving = workers.removeFirst()
            Thread.detachNewThread {
                Thread.sleep(forTimeInterval: 0.005)
                leaving.stop()
            }
            startWorker()
        }
        #expect(centres.centres.map { $0.bitPattern } == expected.centres.map { $0.bitPattern },
                "\(count) worker(s), \(seedingMemory) bytes of distances, churn: \(churn)")
        if !churn, count == 2, let weighting = steps.last {
            #expect(weighting.bytes < Double(weighting.report.candidates * Self.dimension * 4),
                    "the weighting pass sent \(weighting.bytes) bytes for \(weighting.report.candidates) candidates")
        }
    }
}
