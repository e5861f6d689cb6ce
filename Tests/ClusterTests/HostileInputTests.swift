@testable import Cluster
import ClusterProtocol
import Clustering
import Descriptors
import Foundation
import Storage
import TestSupport
import Testing
import ZeroMQ

/// Inputs a careless or hostile user can give the coordinator: huge or non-positive shard
/// sizes, files that are not regular files. None may crash or block it.
@Suite struct HostileInputTests {
    static let dimension = 4

    static func kmeansJob(_ corpus: String, shardRows: Int) -> TrainingJob {
        TrainingJob(kind: .kmeans, corpus: corpus, k: 3, iterations: 3, seed: 5, tolerance: 0, shardRows: shardRows,
                    initialization: .kmeansPlusPlus)
    }

    /// A stored k-means codebook named `name` (k = 2) and an index of two images over the first
    /// 200 rows of `corpus`, for encoding jobs.
    static func encodingInputs(store: CodebookStore, corpus: String, scratch: TemporaryDirectory) throws -> String {
        let matrix = try DescriptorMatrix.open(path: corpus)
        let codebook = try Codebook(k: 2, dimension: dimension, centres: matrix.row(0) + matrix.row(1))
        let record = ModelRecord(kind: .kmeans, k: 2, dimension: dimension, source: "imported")
        try store.putModel(named: "m", try StoredValue(kind: .model, metadata: record, values: codebook.centres), replace: false)
        let index = scratch.file("index.tsv")
        try "a\t0\t100\nb\t100\t100\n".write(toFile: index, atomically: true, encoding: .utf8)
        return index
    }

    static func encodingJob(corpus: String, index: String, imagesPerShard: Int, set: String = "s") -> EncodingJob {
        EncodingJob(encoding: .vlad, model: "m", descriptors: corpus, index: index, set: set, flags: 0, replace: false,
                    imagesPerShard: imagesPerShard)
    }

    /// Shards of 2^63 − 1 rows or images are one shard; they used to crash the coordinator
    /// ("Range requires lowerBound <= upperBound"). Shards of fewer than one are refused.
    @Test(.timeLimit(.minutes(2))) func shardsOfIntMaxRowsOrImagesRunAndNonPositiveOnesAreRefused() async throws {
        let scratch = try TemporaryDirectory()
        let corpus = try Corpora.path(rows: 300, dimension: Self.dimension)
        let store = try CodebookStore(path: scratch.file("store"))
        let index = try Self.encodingInputs(store: store, corpus: corpus, scratch: scratch)
        let cluster = try EmbeddedCluster(workers: 1, threadsPerWorker: 1, store: store, logger: quietLogger())
        defer { cluster.shutdown() }
        let client = try cluster.client()

        let (outcome, reply) = try await client.follow(try client.submit(Self.kmeansJob(corpus, shardRows: .max)),
                                                       every: .milliseconds(10), iteration: { _ in })
        let backend = LocalBackend(corpus: try DescriptorMatrix.open(path: corpus), shardRows: 300, threads: 1)
        var parameters = KMeansParameters(k: 3)
        (parameters.iterations, parameters.seed, parameters.tolerance) = (3, 5, 0)
        let expected = try await KMeans.train(on: backend, parameters: parameters).codebook.centres
        #expect(outcome.iterations == 3)
        #expect(try reply.array(0, as: Float.self).map(\.bitPattern) == expected.map(\.bitPattern))

        _ = try await client.wait(for: try client.submit(Self.encodingJob(corpus: corpus, index: index, imagesPerShard: .max)),
                                  every: .milliseconds(10))
        #expect(try store.vectorKeys(prefix: "s/", limit: 10) == ["s/a", "s/b"])

        for shardRows in [0, -1, Int.min] {
            let error = #expect(throws: ClusterError.self) { try client.submit(Self.kmeansJob(corpus, shardRows: shardRows)) }
            #expect(error?.message == "invalid argument: shard rows must be ≥ 1 (got \(shardRows))")
        }
        for images in [0, Int.min] {
            let error = #expect(throws: ClusterError.self) {
                try client.submit(Self.encodingJob(corpus: corpus, index: index, imagesPerShard: images))
            }
            #expect(error?.message == "invalid argument: images per shard must be ≥ 1 (got \(images))")
        }
        #expect(try client.status().jobs.count == 2)
    }

    /// Jobs stored as running with such shard sizes (by an older coordinator, or an edited
    /// store): a restarted coordinator stays up, runs the ones it can and fails the others
    /// with a message. It used to crash on every restart.
    @Test(.timeLimit(.minutes(2))) func aRestartedCoordinatorResumesOrFailsStoredJobsWithHostileShardSizes() async throws {
        let scratch = try TemporaryDirectory()
        let corpus = try Corpora.path(rows: 300, dimension: Self.dimension)
        let path = scratch.file("store")
        do {
            let store = try CodebookStore(path: path)
            let index = try Self.encodingInputs(store: store, corpus: corpus, scratch: scratch)
            let registry = JobRegistry(store: store)
            #expect(try registry.add(Self.kmeansJob(corpus, shardRows: .max)) == 1)
            #expect(try registry.add(Self.kmeansJob(corpus, shardRows: 0)) == 2)
            #expect(try registry.add(nil, encoding: Self.encodingJob(corpus: corpus, index: index, imagesPerShard: .max)) == 3)
            // Another set: a set has one writer at a time.
            #expect(try registry.add(nil, encoding: Self.encodingJob(corpus: corpus, index: index, imagesPerShard: -3, set: "t")) == 4)
        }
        let store = try CodebookStore(path: path)
        let context = try ZeroMQContext()
        let tag = UUID().uuidString
        let coordinator = Coordinator(context: context, workersEndpoint: "inproc://workers-\(tag)",
                                      clientsEndpoint: "inproc://clients-\(tag)", store: store, logger: quietLogger())
        let endpoints = try coordinator.start()
        let worker = Worker(context: context, endpoint: endpoints.workers, settings: WorkerSettings(name: "w", threads: 1),
                            logger: quietLogger())
        worker.start()
        defer {
            worker.stop()
            coordinator.stop()
        }
        let client = try ClusterClient(context: context, endpoint: endpoints.clients)
        let ended = try await waitUntil(timeout: 60) {
            try (1...4).allSatisfy { try client.progress(of: $0, since: 0).state != .running }
        }
        #expect(ended)
        let progress = try (1...4).map { try client.progress(of: $0, since: 0) }
        #expect(progress.map(\.state) == [.succeeded, .failed, .succeeded, .failed])
        #expect(progress[1].message == "cannot resume after a restart: invalid argument: shard rows must be ≥ 1 (got 0)")
        #expect(progress[3].message == "cannot resume after a restart: invalid argument: images per shard must be ≥ 1 (got -3)")
        #expect(try store.vectorKeys(prefix: "s/", limit: 10) == ["s/a", "s/b"])
    }

    /// A SUBMIT or SUBMIT-ENCODING naming a FIFO used to block the coordinator's I/O thread in
    /// open(2) forever: no client or worker was served again. Each now gets an ERROR-REPLY
    /// naming the FIFO within the client's 5 s timeout, and the coordinator serves on.
    @Test(.timeLimit(.minutes(2))) func requestsNamingAFifoGetAnErrorReplyAndTheCoordinatorServesOn() async throws {
        let cluster = try ProcessCluster()
        await cluster.run { cluster in
            try await cluster.startCoordinator()
            let corpus = try Corpora.path(rows: 300, dimension: Self.dimension)
            let fifo = cluster.scratch.file("corpus.npy"), fifoIndex = cluster.scratch.file("index.tsv")
            let index = cluster.scratch.file("real.tsv")
            try "a\t0\t100\n".write(toFile: index, atomically: true, encoding: .utf8)
            try cluster.require(mkfifo(fifo, 0o600) == 0 && mkfifo(fifoIndex, 0o600) == 0, "mkfifo failed")
            let client = try ClusterClient(context: try ZeroMQContext(), endpoint: cluster.clientsEndpoint, timeout: .seconds(5))
            let centres = try DescriptorMatrix.open(path: corpus).row(0) + DescriptorMatrix.open(path: corpus).row(1)
            _ = try client.importModel(ImportRequest(name: "m", kind: .kmeans, k: 2, dimension: Self.dimension, replace: false),
                                       arrays: [Frame.encode(centres)])
            let requests: [(String, () throws -> UInt64)] = [
                (fifo, { try client.submit(Self.kmeansJob(fifo, shardRows: 100)) }),
                (fifoIndex, { try client.submit(Self.encodingJob(corpus: corpus, index: fifoIndex, imagesPerShard: 1)) }),
                (fifo, { try client.submit(Self.encodingJob(corpus: fifo, index: index, imagesPerShard: 1)) }),
            ]
            for (path, request) in requests {
                do {
                    _ = try request()
                    cluster.check(false, "a request naming the FIFO \(path) was accepted")
                } catch let error as ClusterError {
                    cluster.check(error.message.contains("\(path): invalid argument: is a FIFO, not a regular file"), "\(error)")
                }
            }
            let status = try client.status()
            cluster.check(status.jobs.isEmpty, "jobs were accepted: \(status.jobs)")
            cluster.check(try client.catalog().models.map(\.name) == ["m"], "the catalog does not list the imported model")
        }
    }
}
