@testable import Cluster
import ClusterProtocol
import Clustering
import Descriptors
import Foundation
import Storage
import Synchronization
import TestSupport
import Testing
import ZeroMQ

/// A coordinator on inproc endpoints, with a store if given, and in-process workers
/// started on demand.
final class LocalCoordinator: @unchecked Sendable {
    // @unchecked: used from the test's task only.
    let context: ZeroMQContext
    let coordinator: Coordinator
    let endpoints: (workers: String, clients: String)
    private(set) var workers: [Worker] = []

    /// - Parameter tcp: bind loopback TCP ports instead of inproc endpoints (inproc has no
    ///   message size limit).
    init(settings: CoordinatorSettings = CoordinatorSettings(), store: CodebookStore? = nil, tcp: Bool = false) throws {
        context = try ZeroMQContext()
        let tag = UUID().uuidString
        coordinator = Coordinator(context: context, workersEndpoint: tcp ? "tcp://127.0.0.1:*" : "inproc://jobs-workers-\(tag)",
                                  clientsEndpoint: tcp ? "tcp://127.0.0.1:*" : "inproc://jobs-clients-\(tag)",
                                  settings: settings, store: store, logger: quietLogger())
        endpoints = try coordinator.start()
    }

    func client() throws -> ClusterClient {
        try ClusterClient(context: context, endpoint: endpoints.clients, timeout: .seconds(10))
    }

    func startWorker() {
        let worker = Worker(context: context, endpoint: endpoints.workers,
                            settings: WorkerSettings(name: "local-\(workers.count)", threads: 1), logger: quietLogger())
        worker.start()
        workers.append(worker)
    }

    func stopWorkers() {
        workers.forEach { $0.stop() }
        workers = []
    }

    func stop(keepingJobs: Bool = false) {
        stopWorkers()
        coordinator.stop(keepingJobs: keepingJobs)
    }
}

/// A raw DEALER client: sends a request and returns the reply as it came, ERROR-REPLY included.
final class RawClient {
    let socket: Socket

    init(context: ZeroMQContext, endpoint: String) throws {
        socket = try Socket(.dealer, context: context)
        try socket.setLinger(.zero)
        try socket.setReceiveTimeout(.seconds(10))
        try socket.connect(endpoint)
    }

    func request(_ message: WireMessage) throws -> WireMessage? {
        _ = try socket.send(frames: [[]] + message.frames)
        guard let frames = try socket.receive() else { return nil }
        return try WireMessage(frames: Array(frames.dropFirst()))
    }

    /// The ERROR-REPLY to `message`; throws if the reply is something else.
    func error(_ message: WireMessage) throws -> FailureReport {
        guard let reply = try request(message) else { throw ClusterTestError("no reply to \(message.header.type)") }
        guard reply.header.type == .errorReply else {
            throw ClusterTestError("\(message.header.type) answered \(reply.header.type), not ERROR-REPLY")
        }
        return try reply.decode(FailureReport.self)
    }
}

enum JobFixtures {
    static func kmeans(_ corpus: String, k: Int = 4, iterations: Int = 1_000_000, shardRows: Int = 250,
                       initialization: TrainingJob.InitializationMethod = .kmeansPlusPlus) -> TrainingJob {
        TrainingJob(kind: .kmeans, corpus: corpus, k: k, iterations: iterations, seed: 3, tolerance: 0, shardRows: shardRows,
                    initialization: initialization)
    }

    /// An index of `count` images of `rows` rows each, from row 0 on.
    static func index(_ scratch: TemporaryDirectory, _ name: String, count: Int, rows: Int = 2) throws -> String {
        let path = scratch.file(name)
        let lines = (0..<count).map { "image-\(String(format: "%05d", $0))\t\($0 * rows)\t\(rows)\n" }
        try lines.joined().write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    /// Imports a k-means model of k×D centres (rows of the corpus) as `name`.
    static func importModel(_ client: ClusterClient, name: String, k: Int, corpus: String) throws {
        let matrix = try DescriptorMatrix.open(path: corpus)
        let centres = try (0..<k).flatMap { try matrix.row($0 * 37 % matrix.rows) }
        _ = try client.importModel(ImportRequest(name: name, kind: .kmeans, k: k, dimension: matrix.dimension, replace: true),
                                   arrays: [Frame.encode(centres)])
    }
}

/// CANCEL: a running job stops, its shards are dropped, it is stored as cancelled and never resumed.
@Suite(.serialized) struct CancelTests {
    /// The pass a job's task waits on ends when the job's passes are cancelled (before,
    /// its continuation was dropped and the task waited forever).
    @Test(.timeLimit(.minutes(1))) func cancellingAJobsPassesEndsThePassItsTaskWaitsOn() async throws {
        let corpus = try Corpora.path(rows: 1_000, dimension: 4)
        let cluster = try LocalCoordinator()
        defer { cluster.stop() }
        let backend = ClusterBackend(coordinator: cluster.coordinator, job: 77,
                                     corpus: try Coordinator.corpusReference(corpus), shardRows: 100)
        let outcome = Mutex<Result<MomentStatistics, any Error>?>(nil)
        Task {
            let result: Result<MomentStatistics, any Error>
            do { result = .success(try await backend.run(MomentPass(dimension: 4))) } catch { result = .failure(error) }
            outcome.withLock { $0 = result }
        }
        #expect(await waitUntil(timeout: 10) { (try? cluster.client().status().passes.count) == 1 })
        cluster.coordinator.cancelPasses(of: 77)
        // Waited for with a bound: a pass that never ends fails the test instead of hanging it.
        #expect(await waitUntil(timeout: 10) { outcome.withLock { $0 != nil } }, "the pass still waits")
        #expect(throws: ClusterError.self) { try outcome.withLock { $0 }?.get() }
        #expect(try cluster.client().status().passes.isEmpty)
    }

    @Test(.timeLimit(.minutes(1))) func aCancelledTrainingJobStopsIsStoredCancelledAndIsNotResumed() async throws {
        let scratch = try TemporaryDirectory()
        let corpus = try Corpora.path(rows: 1_000, dimension: 4)
        let storePath = scratch.file("store")
        let (running, finished): (UInt64, UInt64)
        do {
            let cluster = try LocalCoordinator(store: try CodebookStore(path: storePath))
            let client = try cluster.client()
            cluster.startWorker()
            finished = try client.submit(JobFixtures.kmeans(corpus, iterations: 2))
            _ = try await client.wait(for: finished)
            cluster.stopWorkers()
            // No worker: the job waits on its sample pass, its shards queued.
            running = try client.submit(JobFixtures.kmeans(corpus))
            #expect(await waitUntil(timeout: 10) { (try? client.status().passes.first?.job) == running })
            let progress = try client.cancel(running)
            #expect(progress.job == running)
            #expect(progress.state == .cancelled)
            #expect(try client.progress(of: running, since: 0).state == .cancelled)
            #expect(await waitUntil(timeout: 10) { (try? client.status().passes.isEmpty) == true },
                    "the cancelled job's shards are dropped")
            #expect(try client.status().jobs.first { $0.job == running }?.state == .cancelled)
            // Cancelling again, a finished job, or an unknown one: clear errors.
            let raw = try RawClient(context: cluster.context, endpoint: cluster.endpoints.clients)
            let again = try raw.error(WireMessage(header: WireHeader(.cancel, job: running)))
            #expect(again.message == "job \(running) has already been cancelled; only a running job can be cancelled")
            #expect(again.code == nil)
            let done = try raw.error(WireMessage(header: WireHeader(.cancel, job: finished)))
            #expect(done.message == "job \(finished) has already succeeded; only a running job can be cancelled")
            let unknown = try raw.error(WireMessage(header: WireHeader(.cancel, job: 999)))
            #expect(unknown.message == "no job 999")
            #expect(unknown.code == .notFound)
            #expect(throws: ClusterError(.rejected, "job \(running) was cancelled")) { _ = try client.result(of: running) }
            // A worker that joins now gets no work.
            cluster.startWorker()
            try await Task.sleep(for: .milliseconds(500))
            let later = try client.status()
            #expect(later.workers.count == 1)
            #expect(later.workers.allSatisfy { $0.shardsDone == 0 && $0.tasksInFlight == 0 })
            cluster.stop(keepingJobs: true)
        }
        let stored = try #require(try CodebookStore(path: storePath).job(running)).decode(JobRecord.self, key: "job")
        #expect(stored.state == .cancelled)
        // Restarted on the same store, the coordinator does not resume the cancelled job.
        let restarted = try LocalCoordinator(store: try CodebookStore(path: storePath))
        defer { restarted.stop() }
        let client = try restarted.client()
        #expect(try client.progress(of: running, since: 0).state == .cancelled)
        #expect(try client.progress(of: finished, since: 0).state == .succeeded)
        #expect(try client.status().passes.isEmpty)
    }

    /// A cancelled encoding job keeps the vectors already stored; a second encoding job into
    /// a set that a running job writes is refused, naming that job.
    @Test(.timeLimit(.minutes(1))) func aSetHasOneWriterAndACancelledEncodingJobKeepsItsVectors() async throws {
        let scratch = try TemporaryDirectory()
        let corpus = try Corpora.path(rows: 1_000, dimension: 4)
        let cluster = try LocalCoordinator(store: try CodebookStore(path: scratch.file("store")))
        defer { cluster.stop() }
        let client = try cluster.client()
        try JobFixtures.importModel(client, name: "M", k: 4, corpus: corpus)
        let half = try JobFixtures.index(scratch, "half.tsv", count: 10)
        let all = try JobFixtures.index(scratch, "all.tsv", count: 20)
        func encoding(_ index: String, set: String = "S", replace: Bool = false) -> EncodingJob {
            EncodingJob(encoding: .vlad, model: "M", descriptors: corpus, index: index, set: set, flags: 0, replace: replace,
                        imagesPerShard: 3)
        }
        cluster.startWorker()
        _ = try await client.wait(for: try client.submit(encoding(half)))
        cluster.stopWorkers()
        let job = try client.submit(encoding(all))
        #expect(try client.progress(of: job, since: 0).imagesDone == 10)
        // One writer per set: refused while job runs, whether it would replace the set or add to it.
        for replace in [false, true] {
            #expect(throws: ClusterError(.rejected, "set \"S\" is being written by job \(job); a set has one writer at a time: "
                                         + "wait for job \(job) to end or cancel it")) {
                _ = try client.submit(encoding(all, replace: replace))
            }
        }
        let other = try client.submit(encoding(half, set: "T"))
        try client.cancel(other)
        let cancelled = try client.cancel(job)
        #expect(cancelled.state == .cancelled)
        #expect(cancelled.imagesDone == 10)
        #expect(try client.list(prefix: "S/", limit: 100).keys.count == 10, "the vectors stored before the cancel stay")
        // The set has no writer any more.
        cluster.startWorker()
        let next = try client.submit(encoding(all))
        #expect(try await client.wait(for: next).imagesDone == 20)
        #expect(try client.list(prefix: "S/", limit: 100).keys.count == 20)
    }
}

/// Every limit of `CoordinatorSettings` is refused with ERROR-REPLY code "limit", naming it.
@Suite struct LimitTests {
    static func expectLimit(_ report: FailureReport, _ setting: String, _ fragment: String,
                            sourceLocation: SourceLocation = #_sourceLocation) {
        #expect(report.code == .limit, "\(report)", sourceLocation: sourceLocation)
        #expect(report.message.contains("(\(setting) = "), "\(report.message)", sourceLocation: sourceLocation)
        #expect(report.message.contains(fragment), "\(report.message)", sourceLocation: sourceLocation)
    }

    static func submit(_ job: TrainingJob, arrays: [[UInt8]] = []) -> WireMessage {
        WireMessage(header: WireHeader(.submit), metadata: job, arrays: arrays)
    }

    @Test func theDefaultMessageSizeIsWhatTheLargestModelsStatisticsNeed() {
        let settings = CoordinatorSettings()
        #expect(settings.maximumModelValues == 1 << 24)
        #expect(settings.maximumMessageSize == 8 << 24)
        var small = settings
        small.maximumModelValues = 10
        #expect(small.maximumMessageSize == 1 << 20)
    }

    /// A model with D = 2^20 and k-means++ (a 300-row corpus, its file sparse) used to be
    /// accepted, and the coordinator then held the 1.2 GiB sample about twice.
    @Test func aHugeDimensionIsRefusedAtSubmission() throws {
        let scratch = try TemporaryDirectory()
        let path = scratch.file("wide.npy")
        let rows = 300, dimension = 1 << 20
        var header = "{'descr': '<f4', 'fortran_order': False, 'shape': (\(rows), \(dimension)), }"
        while (10 + header.utf8.count + 1) % 64 != 0 { header += " " }
        header += "\n"
        var bytes: [UInt8] = [0x93] + Array("NUMPY".utf8) + [1, 0]
        bytes += [UInt8(header.utf8.count & 0xFF), UInt8(header.utf8.count >> 8)] + Array(header.utf8)
        #expect(FileManager.default.createFile(atPath: path, contents: Data(bytes)))
        let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: path))
        try handle.truncate(atOffset: UInt64(bytes.count + rows * dimension * 4))
        try handle.close()

        let cluster = try LocalCoordinator()
        defer { cluster.stop() }
        let raw = try RawClient(context: cluster.context, endpoint: cluster.endpoints.clients)
        let report = try raw.error(Self.submit(JobFixtures.kmeans(path, k: 4)))
        Self.expectLimit(report, "maximumDimension", "D is 1048576")
        // With D allowed, the sample is what does not fit.
        var settings = CoordinatorSettings()
        settings.maximumDimension = 1 << 20
        let wide = try LocalCoordinator(settings: settings)
        defer { wide.stop() }
        let sample = try RawClient(context: wide.context, endpoint: wide.endpoints.clients)
            .error(Self.submit(JobFixtures.kmeans(path, k: 4)))
        Self.expectLimit(sample, "maximumSampleBytes", "300 rows of D=1048576")
    }

    @Test func trainingJobsBeyondALimitAreRefused() throws {
        let corpus = try Corpora.path(rows: 1_000, dimension: 16)
        var settings = CoordinatorSettings()
        settings.maximumDimension = 16
        settings.maximumModelValues = 100
        settings.maximumSampleBytes = 20_000
        settings.maximumRequestArrayBytes = 300
        let cluster = try LocalCoordinator(settings: settings)
        defer { cluster.stop() }
        let raw = try RawClient(context: cluster.context, endpoint: cluster.endpoints.clients)
        Self.expectLimit(try raw.error(Self.submit(JobFixtures.kmeans(corpus, k: 8))), "maximumModelValues",
                         "K·D (k=8, D=16) is 128")
        Self.expectLimit(try raw.error(Self.submit(JobFixtures.kmeans(corpus, k: 2))), "maximumSampleBytes",
                         "the seeding sample (1000 rows of D=16 float32 values) in bytes is 64000")
        #expect(try raw.request(Self.submit(JobFixtures.kmeans(corpus, k: 2, initialization: .random)))?.header.type == .accepted)
        let given = [Frame.encode([Float](repeating: 1, count: 5 * 16))]
        Self.expectLimit(try raw.error(Self.submit(JobFixtures.kmeans(corpus, k: 5, initialization: .given), arrays: given)),
                         "maximumRequestArrayBytes", "is 320")
        let imported = WireMessage(header: WireHeader(.importModel),
                                   metadata: ImportRequest(name: "M", kind: .kmeans, k: 1, dimension: 17, replace: false),
                                   arrays: [Frame.encode([Float](repeating: 1, count: 17))])
        Self.expectLimit(try raw.error(imported), "maximumDimension", "D is 17")
    }

    /// A shard's sample result must fit in one message: too many rows per shard is refused.
    @Test func aShardSampleLargerThanAMessageIsRefused() throws {
        let corpus = try Corpora.path(rows: 20_000, dimension: 64)
        var settings = CoordinatorSettings()
        settings.maximumModelValues = 1024
        let cluster = try LocalCoordinator(settings: settings)
        defer { cluster.stop() }
        let raw = try RawClient(context: cluster.context, endpoint: cluster.endpoints.clients)
        Self.expectLimit(try raw.error(Self.submit(JobFixtures.kmeans(corpus, k: 4, shardRows: 20_000))),
                         "maximumMessageSize, from maximumModelValues", "use fewer rows per shard")
        let accepted = try raw.request(Self.submit(JobFixtures.kmeans(corpus, k: 4, shardRows: 2_000)))
        #expect(accepted?.header.type == .accepted)
        try cluster.client().cancel(accepted?.header.job ?? 0)
    }

    /// A frame above the derived message size is dropped by ZeroMQ with the connection; one
    /// below it is answered.
    @Test func framesAboveTheMessageSizeAreNotTaken() throws {
        var settings = CoordinatorSettings()
        settings.maximumModelValues = 1024
        let cluster = try LocalCoordinator(settings: settings, tcp: true)
        defer { cluster.stop() }
        let fits = try RawClient(context: cluster.context, endpoint: cluster.endpoints.clients)
        let small = WireMessage(header: WireHeader(.status), arrays: [[UInt8](repeating: 0, count: 1 << 19)])
        #expect(try fits.request(small)?.header.type == .statusReply)
        let tooLarge = try RawClient(context: cluster.context, endpoint: cluster.endpoints.clients)
        try tooLarge.socket.setReceiveTimeout(.seconds(2))
        let large = WireMessage(header: WireHeader(.status), arrays: [[UInt8](repeating: 0, count: 2 << 20)])
        #expect(try tooLarge.request(large) == nil)
    }

    @Test func encodingJobsBeyondALimitAreRefused() async throws {
        let scratch = try TemporaryDirectory()
        let corpus = try Corpora.path(rows: 1_000, dimension: 16)
        var settings = CoordinatorSettings()
        settings.maximumModelValues = 1024
        settings.maximumImagesPerJob = 400
        settings.maximumActiveJobs = 1
        let cluster = try LocalCoordinator(settings: settings, store: try CodebookStore(path: scratch.file("store")))
        defer { cluster.stop() }
        let client = try cluster.client()
        try JobFixtures.importModel(client, name: "M", k: 64, corpus: corpus)
        let raw = try RawClient(context: cluster.context, endpoint: cluster.endpoints.clients)
        func encoding(_ index: String, imagesPerShard: Int) -> WireMessage {
            WireMessage(header: WireHeader(.submitEncoding),
                        metadata: EncodingJob(encoding: .vlad, model: "M", descriptors: corpus, index: index, set: "S",
                                              flags: 0, replace: false, imagesPerShard: imagesPerShard))
        }
        Self.expectLimit(try raw.error(encoding(try JobFixtures.index(scratch, "many.tsv", count: 401), imagesPerShard: 8)),
                         "maximumImagesPerJob", "the number of images is 401")
        // 300 VLAD vectors of 64·16 values are 1.2 MiB, above the 1 MiB message size;
        // before, such a RESULT was dropped by ZeroMQ and the shard sent again forever.
        let index = try JobFixtures.index(scratch, "index.tsv", count: 300)
        Self.expectLimit(try raw.error(encoding(index, imagesPerShard: .max)), "maximumMessageSize, from maximumModelValues",
                         "a shard's result (300 vectors of 1024 float32 values) in bytes is 1228800")
        let first = try #require(try raw.request(encoding(index, imagesPerShard: 100)))
        #expect(first.header.type == .accepted)
        // One job runs (no worker): a second is over the limit of running jobs.
        let second = try raw.error(Self.submit(JobFixtures.kmeans(corpus, k: 2, initialization: .random)))
        Self.expectLimit(second, "maximumActiveJobs", "1 jobs are running")
        try client.cancel(first.header.job)
        #expect(try raw.request(Self.submit(JobFixtures.kmeans(corpus, k: 2, initialization: .random)))?.header.type == .accepted)
    }
}

/// The coordinator holds a job's seeding sample once: the shards' samples are appended into
/// room made for the whole sample, not into an array grown by doubling.
@Suite struct SampleMemoryTests {
    @Test(.timeLimit(.minutes(1))) func theMergedSampleIsAllocatedOnceAtItsSize() async throws {
        let corpus = try Corpora.path(rows: 1_000, dimension: 4)
        let cluster = try LocalCoordinator()
        defer { cluster.stop() }
        cluster.startWorker()
        // Shards of 400, 400 and 200 rows: grown by doubling, 1600 values became 3200, then 6400.
        let backend = ClusterBackend(coordinator: cluster.coordinator, job: 5,
                                     corpus: try Coordinator.corpusReference(corpus), shardRows: 400)
        let sample = try await backend.run(RowSamplePass(sampleSize: 1_000, totalRows: 1_000, seed: 1))
        #expect(sample.count == 1_000)
        #expect(sample.values.count == 4_000)
        #expect(sample.values.capacity < 5_000, "capacity \(sample.values.capacity)")
    }
}

/// Finished jobs are kept for a while and up to a count; STATUS lists them a page at a time.
@Suite struct JobRetentionTests {
    static func cancelledJobs(_ count: Int, on cluster: LocalCoordinator, corpus: String) throws -> [UInt64] {
        let client = try cluster.client()
        return try (0..<count).map { _ in
            let id = try client.submit(JobFixtures.kmeans(corpus, k: 2))
            try client.cancel(id)
            return id
        }
    }

    @Test func statusListsRunningJobsThenPagesOfFinishedOnesNewestFirst() throws {
        let corpus = try Corpora.path(rows: 1_000, dimension: 4)
        let cluster = try LocalCoordinator()
        defer { cluster.stop() }
        let ids = try Self.cancelledJobs(5, on: cluster, corpus: corpus)
        let client = try cluster.client()
        let running = try client.submit(JobFixtures.kmeans(corpus, k: 2))
        var pages: [[UInt64]] = []
        var before: UInt64?
        repeat {
            let status = try client.status(finishedJobs: 2, before: before)
            #expect(status.jobs.first?.job == running && status.jobs.first?.state == .running)
            pages.append(status.jobs.dropFirst().map(\.job))
            before = status.jobsBefore
        } while before != nil && pages.count < 10
        #expect(pages == [[ids[4], ids[3]], [ids[2], ids[1]], [ids[0]]])
        #expect(try client.status().jobs.count == 6, "20 finished jobs by default")
    }

    @Test func finishedJobsBeyondTheCountOrTheLifetimeAreDeletedFromTheStore() async throws {
        let scratch = try TemporaryDirectory()
        let corpus = try Corpora.path(rows: 1_000, dimension: 4)
        let storePath = scratch.file("store")
        var settings = CoordinatorSettings()
        settings.finishedJobsKept = 2
        do {
            let cluster = try LocalCoordinator(settings: settings, store: try CodebookStore(path: storePath))
            let client = try cluster.client()
            let ids = try Self.cancelledJobs(4, on: cluster, corpus: corpus)
            // The last one with a given initial model, which goes with its job when that is deleted.
            let given = try client.submit(JobFixtures.kmeans(corpus, k: 2, initialization: .given),
                                          arrays: [Frame.encode([Float](repeating: 0.5, count: 8))])
            try client.cancel(given)
            #expect(try client.status(finishedJobs: 100).jobs.map(\.job) == [given, ids[3]])
            #expect(throws: ClusterError(.notFound, "no job \(ids[0])")) { _ = try client.progress(of: ids[0], since: 0) }
            cluster.stop(keepingJobs: true)
        }
        #expect(try CodebookStore(path: storePath).allJobs().map(\.id) == [4, 5])
        // A lifetime of 0: only the newest job stays, and new ids follow it after a restart.
        settings.finishedJobLifetime = 0
        let cluster = try LocalCoordinator(settings: settings, store: try CodebookStore(path: storePath))
        defer { cluster.stop() }
        let client = try cluster.client()
        #expect(try client.status().jobs.map(\.job) == [5])
        let next = try client.submit(JobFixtures.kmeans(corpus, k: 2))
        #expect(next == 6)
        try client.cancel(next)
        #expect(try client.status().jobs.map(\.job) == [6])
        #expect(throws: ClusterError(.notFound, "no job 5")) { _ = try client.progress(of: 5, since: 0) }
    }
}
