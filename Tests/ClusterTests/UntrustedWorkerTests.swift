@testable import Cluster
import ClusterProtocol
import Clustering
import Descriptors
import Foundation
import Synchronization
import Testing
import ZeroMQ

/// A worker written for a test, from the protocol: it registers, heartbeats, computes every
/// TASK with the engine, then hands the honest RESULT to `tamper`, which returns what to send
/// instead (nil: nothing).
final class ScriptedWorker: Sendable {
    private let stopping = Atomic<Bool>(false)
    private let finished = DispatchSemaphore(value: 0)
    /// Messages for the worker's thread to send.
    private let outbox = Mutex<[WireMessage]>([])
    /// TASKs received.
    let tasks = Atomic<Int>(0)

    init(context: ZeroMQContext, endpoint: String, name: String, threads: Int,
         tamper: @escaping @Sendable (WireMessage, PassDescription) -> WireMessage?) {
        // The thread holds the worker until `stop()`.
        let thread = Thread { [self] in
            defer { finished.signal() }
            guard let socket = try? Socket(.dealer, context: context), (try? socket.setLinger(.zero)) != nil,
                  (try? socket.connect(endpoint)) != nil else { return }
            let ready = WireMessage(header: WireHeader(.ready), metadata: WorkerIntroduction(name: name, threads: threads))
            var lastSent = ContinuousClock.now
            func send(_ message: WireMessage) {
                _ = try? socket.send(frames: message.frames, dontWait: true)
                lastSent = ContinuousClock.now
            }
            send(ready)
            var models: [UInt64: (round: UInt32, computation: any WireComputation)] = [:]
            while !stopping.load(ordering: .relaxed) {
                for message in outbox.withLock({ outbox in defer { outbox.removeAll() }; return outbox }) { send(message) }
                if ContinuousClock.now - lastSent > .milliseconds(300) { send(WireMessage(header: WireHeader(.workerHeartbeat))) }
                guard let frames = (try? socket.receive(dontWait: true)) ?? nil, let message = try? WireMessage(frames: frames) else {
                    Thread.sleep(forTimeInterval: 0.002)
                    continue
                }
                if message.header.type == .resync { send(ready) }
                guard message.header.type == .task, let assignment = try? message.decode(TaskAssignment.self) else { continue }
                tasks.add(1, ordering: .relaxed)
                let header = message.header
                if assignment.includesModel, let computation = try? PassDecoder.computation(assignment.computation, arrays: message) {
                    models[header.job] = (header.round, computation)
                }
                guard let model = models[header.job], model.round == header.round else {
                    send(WireMessage(header: WireHeader(.failure, job: header.job, round: header.round, shard: header.shard),
                                     metadata: FailureReport(message: "no model", retry: true)))
                    continue
                }
                do {
                    let computation: any WireComputation = model.computation.forTask(assignment)
                    let honest = try Self.result(computation, assignment: assignment, header: header)
                    if let reply = tamper(honest, assignment.computation) { send(reply) }
                } catch {
                    send(WireMessage(header: WireHeader(.failure, job: header.job, round: header.round, shard: header.shard),
                                     metadata: FailureReport(message: "\(error)")))
                }
            }
        }
        thread.start()
    }

    private static func result<C: WireComputation>(_ computation: C, assignment: TaskAssignment,
                                                   header: WireHeader) throws -> WireMessage {
        // An extract task reads its image files, not a corpus.
        let rows = try assignment.imageFiles.map { _ in try DescriptorMatrix(rows: 0, dimension: 1, values: []) }
            ?? DescriptorMatrix.open(path: assignment.corpus.path).slice(assignment.firstRow ..< assignment.firstRow + assignment.rowCount)
        let statistics = try computation.statistics(of: rows, shard: Int(header.shard), workspace: KernelWorkspace())
        return WireMessage(header: WireHeader(.result, job: header.job, round: header.round, shard: header.shard),
                           metadata: statistics.shape, arrays: statistics.arrays)
    }

    /// Sends `message` (from the worker's socket).
    func send(_ message: WireMessage) { outbox.withLock { $0.append(message) } }

    func stop() {
        stopping.store(true, ordering: .relaxed)
        finished.wait()
    }
}

/// A running coordinator on loopback TCP with a real worker, and peers that lie: the models
/// that come out are those of a run without them, bit for bit.
@Suite(.serialized) struct UntrustedWorkerTests {
    static let rows = 4_000, dimension = 8, k = 4, shardRows = 500

    static func corpus() throws -> String { try Corpora.path(rows: rows, dimension: dimension, clusters: 4, seed: 21) }

    static func job(_ corpus: String, initialization: TrainingJob.InitializationMethod) -> TrainingJob {
        TrainingJob(kind: .kmeans, corpus: corpus, k: k, iterations: 4, seed: 3, tolerance: 0, shardRows: shardRows,
                    initialization: initialization)
    }

    /// The initial centres of the "given" runs (the corpus's first `k` rows), and the
    /// centres of a local run from them.
    static func givenRun(_ corpus: String) async throws -> (given: [Float], expected: [UInt32]) {
        let matrix = try DescriptorMatrix.open(path: corpus)
        let given = try (0..<k).flatMap { try matrix.row($0) }
        return (given, try await reference(corpus, initialization: .given(try Codebook(k: k, dimension: dimension, centres: given))))
    }

    /// The centres of a local run of `job`.
    static func reference(_ corpus: String, initialization: KMeansInitialization) async throws -> [UInt32] {
        var parameters = KMeansParameters(k: k)
        parameters.iterations = 4
        parameters.seed = 3
        parameters.tolerance = 0
        parameters.initialization = initialization
        let backend = LocalBackend(corpus: try DescriptorMatrix.open(path: corpus), shardRows: shardRows, threads: 1)
        return try await KMeans.train(on: backend, parameters: parameters).codebook.centres.map(\.bitPattern)
    }

    /// A coordinator on 127.0.0.1, its endpoints, and a client.
    static func coordinator(_ context: ZeroMQContext, settings: CoordinatorSettings = CoordinatorSettings()) throws
        -> (Coordinator, workers: String, ClusterClient) {
        let coordinator = Coordinator(context: context, workersEndpoint: "tcp://127.0.0.1:*", clientsEndpoint: "tcp://127.0.0.1:*",
                                      settings: settings, logger: quietLogger())
        let endpoints = try coordinator.start()
        return (coordinator, endpoints.workers, try ClusterClient(context: context, endpoint: endpoints.clients, timeout: .seconds(10)))
    }

    static func honestWorker(_ context: ZeroMQContext, _ endpoint: String) -> Worker {
        let worker = Worker(context: context, endpoint: endpoint, settings: WorkerSettings(name: "honest", threads: 1),
                            logger: quietLogger())
        worker.start()
        return worker
    }

    /// The honest worker, started once `first` has registered (so that `first` is served
    /// first), when both are registered.
    static func honestWorker(after first: String, _ context: ZeroMQContext, _ endpoint: String,
                             _ client: ClusterClient) async throws -> Worker {
        #expect(try await waitUntil(timeout: 10) { try client.status().workers.map(\.name) == [first] })
        let worker = honestWorker(context, endpoint)
        #expect(try await waitUntil(timeout: 10) { try client.status().workers.count == 2 })
        return worker
    }

    /// A DEALER on the workers' endpoint that never says READY.
    static func intruder(_ context: ZeroMQContext, _ endpoint: String) throws -> Socket {
        let intruder = try Socket(.dealer, context: context)
        try intruder.setLinger(.zero)
        try intruder.connect(endpoint)
        return intruder
    }

    /// The job's centres once it succeeded (nil if it failed or is still running after 30 s).
    static func centres(of job: UInt64, _ client: ClusterClient) async throws -> [UInt32]? {
        _ = try await waitUntil(timeout: 30) { try client.progress(of: job, since: 0).state != .running }
        guard try client.progress(of: job, since: 0).state == .succeeded else { return nil }
        return try client.result(of: job).1.array(0, as: Float.self, count: k * dimension).map(\.bitPattern)
    }

    /// A peer that never registered sends RESULTs for shards of the running pass (made-up
    /// finite sums, and counts that overflow a merge) before any worker exists: dropped and
    /// counted; the real worker's model is the reference's.
    @Test(.timeLimit(.minutes(1))) func aForgedResultFromAPeerThatNeverRegisteredIsDropped() async throws {
        let corpus = try Self.corpus()
        let (given, expected) = try await Self.givenRun(corpus)
        let context = try ZeroMQContext()
        let (coordinator, workers, client) = try Self.coordinator(context)
        defer { coordinator.stop() }
        let id = try client.submit(Self.job(corpus, initialization: .given), arrays: [Frame.encode(given)])
        #expect(try await waitUntil(timeout: 10) { try client.status().passes.contains { $0.job == id && $0.pass == 1 } })

        let intruder = try Self.intruder(context, workers)
        var forged = KMeansStatistics(k: Self.k, dimension: Self.dimension)
        forged.rows = Self.shardRows
        forged.counts = [Self.shardRows, 0, 0, 0]
        forged.sums = (0..<Self.k * Self.dimension).map { Double($0) * 1000 }
        forged.clusterObjective = [1, 0, 0, 0]
        var overflowing = forged
        overflowing.counts = [Int.max, Int.max, 0, 0]
        for (shard, statistics) in [(0, forged), (1, overflowing)] {
            try intruder.send(frames: WireMessage(header: WireHeader(.result, job: id, round: 1, shard: UInt32(shard)),
                                                  metadata: statistics.shape, arrays: statistics.arrays).frames)
        }
        #expect(try await waitUntil(timeout: 10) { try client.status().droppedResults == 2 })

        let worker = Self.honestWorker(context, workers)
        defer { worker.stop() }
        #expect(try await Self.centres(of: id, client) == expected)
        let status = try client.status()
        #expect(status.droppedResults == 2)
        #expect(status.workers.map(\.name) == ["honest"], "the intruder never became a worker")
    }

    /// The same while a real worker computes the pass: a scripted worker that registered
    /// first holds shard 0 of the last pass (whose statistics make the final centres) back
    /// until the forged RESULT for it has been dealt with.
    @Test(.timeLimit(.minutes(1))) func aForgedResultForAShardInFlightIsDropped() async throws {
        let corpus = try Self.corpus()
        let (given, expected) = try await Self.givenRun(corpus)
        let context = try ZeroMQContext()
        let (coordinator, workers, client) = try Self.coordinator(context)
        defer { coordinator.stop() }
        let held = Mutex<WireMessage?>(nil)
        let holder = ScriptedWorker(context: context, endpoint: workers, name: "holder", threads: 1) { honest, _ in
            guard honest.header.round == 4, honest.header.shard == 0 else { return honest }
            held.withLock { $0 = honest }
            return nil
        }
        defer { holder.stop() }
        let worker = try await Self.honestWorker(after: "holder", context, workers, client)
        defer { worker.stop() }
        let id = try client.submit(Self.job(corpus, initialization: .given), arrays: [Frame.encode(given)])
        // Every shard of the last pass but shard 0 is done; shard 0 waits at the holder.
        #expect(try await waitUntil(timeout: 10) {
            try client.status().passes.contains { $0.job == id && $0.pass == 4 && $0.done == $0.shards - 1 }
        })
        let honestShard0 = try #require(held.withLock { $0 })
        var forged = try KMeansStatistics(shape: try honestShard0.decode(StatisticsShape.self), message: honestShard0)
        forged.sums = forged.sums.map { $0 + 1000 }
        let intruder = try Self.intruder(context, workers)
        try intruder.send(frames: WireMessage(header: honestShard0.header, metadata: forged.shape, arrays: forged.arrays).frames)
        #expect(try await waitUntil(timeout: 10) { try client.status().droppedResults == 1 })
        holder.send(honestShard0)
        #expect(try await Self.centres(of: id, client) == expected)
        #expect(try client.status().droppedResults == 1)
    }

    /// Lies a registered worker tells, and what it tells the truth about otherwise.
    enum Lie: String, CaseIterable, Sendable {
        /// NaN in the k-means sums (they used to fail the job).
        case notANumber
        /// Statistics of another K (they used to be dropped, the shard going straight back to
        /// the liar, so that no iteration ever finished).
        case wrongShape
        /// No rows in its share of the k-means++ sample (all shards: a division by zero).
        case emptySample

        func tamper(_ honest: WireMessage, _ pass: PassDescription) -> WireMessage? {
            let header = honest.header
            switch (self, pass.kind) {
            case (.notANumber, .kmeansAssignment):
                guard let shape = try? honest.decode(StatisticsShape.self),
                      var statistics = try? KMeansStatistics(shape: shape, message: honest) else { return honest }
                statistics.sums[0] = .nan
                return WireMessage(header: header, metadata: statistics.shape, arrays: statistics.arrays)
            case (.wrongShape, .kmeansAssignment):
                var statistics = KMeansStatistics(k: (pass.k ?? 1) + 1, dimension: pass.dimension)
                statistics.rows = 1
                statistics.counts[0] = 1
                return WireMessage(header: header, metadata: statistics.shape, arrays: statistics.arrays)
            case (.emptySample, .sample):
                let sample = RowSample(dimension: pass.dimension)
                return WireMessage(header: header, metadata: sample.shape, arrays: sample.arrays)
            default:
                return honest
            }
        }
    }

    /// The liar registers first and gets most shards; its lies are rejected, it is dropped,
    /// and the honest worker computes everything again: the model is the reference's.
    @Test(.timeLimit(.minutes(1)), arguments: Lie.allCases)
    func aWorkerWhoseResultsCannotBeRightIsDroppedAndItsShardsAreRecomputed(lie: Lie) async throws {
        let corpus = try Self.corpus()
        let expected = try await Self.reference(corpus, initialization: .kmeansPlusPlus)
        let context = try ZeroMQContext()
        let (coordinator, workers, client) = try Self.coordinator(context)
        defer { coordinator.stop() }
        let liar = ScriptedWorker(context: context, endpoint: workers, name: "liar", threads: 4) { lie.tamper($0, $1) }
        defer { liar.stop() }
        let worker = try await Self.honestWorker(after: "liar", context, workers, client)
        defer { worker.stop() }

        let id = try client.submit(Self.job(corpus, initialization: .kmeansPlusPlus))
        let centres = try await Self.centres(of: id, client)
        #expect(centres == expected, "\(lie): \(String(describing: try? client.progress(of: id, since: 0)))")
        #expect(liar.tasks.load(ordering: .relaxed) > 0)
        #expect(try client.status().workers.map(\.name) == ["honest"], "\(lie): the liar was dropped")
    }

    /// A worker that heartbeats but never answers registers first and takes shards of every
    /// pass: they go overdue, the honest worker computes them, and the mute one is dropped.
    @Test(.timeLimit(.minutes(1))) func aWorkerThatNeverAnswersDoesNotHoldItsShardsForever() async throws {
        let corpus = try Self.corpus()
        let expected = try await Self.reference(corpus, initialization: .kmeansPlusPlus)
        let context = try ZeroMQContext()
        var settings = CoordinatorSettings()
        settings.taskDeadlineFloor = .milliseconds(500)
        let (coordinator, workers, client) = try Self.coordinator(context, settings: settings)
        defer { coordinator.stop() }
        let mute = ScriptedWorker(context: context, endpoint: workers, name: "mute", threads: 1) { _, _ in nil }
        defer { mute.stop() }
        let worker = try await Self.honestWorker(after: "mute", context, workers, client)
        defer { worker.stop() }
        let id = try client.submit(Self.job(corpus, initialization: .kmeansPlusPlus))
        #expect(try await Self.centres(of: id, client) == expected)
        #expect(mute.tasks.load(ordering: .relaxed) >= 3)
        #expect(try client.status().workers.map(\.name) == ["honest"], "the mute worker was dropped")
    }

    /// A worker written from the protocol, which leaves out the optional `withSquares`
    /// when it is false, finishes a k-means job (its results used to be rejected forever).
    @Test(.timeLimit(.minutes(1))) func aResultWithoutTheOptionalWithSquaresFieldIsTaken() async throws {
        let corpus = try Self.corpus()
        let expected = try await Self.reference(corpus, initialization: .kmeansPlusPlus)
        let context = try ZeroMQContext()
        let (coordinator, workers, client) = try Self.coordinator(context)
        defer { coordinator.stop() }
        let worker = ScriptedWorker(context: context, endpoint: workers, name: "from-the-document", threads: 2) { honest, _ in
            guard var shape = try? honest.decode(StatisticsShape.self), shape.withSquares == false else { return honest }
            shape.withSquares = nil
            return WireMessage(header: honest.header, metadata: shape, arrays: honest.arrays)
        }
        defer { worker.stop() }
        let id = try client.submit(Self.job(corpus, initialization: .kmeansPlusPlus))
        #expect(try await Self.centres(of: id, client) == expected)
    }
}
