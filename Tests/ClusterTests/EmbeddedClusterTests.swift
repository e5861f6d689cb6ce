@testable import Cluster
import ClusterProtocol
import Clustering
import Descriptors
import Foundation
import Logging
import Testing

func quietLogger() -> Logger {
    var logger = Logger(label: "cluster-tests")
    logger.logLevel = .critical
    return logger
}

/// The cluster's results are the local engine's, bit for bit, whatever the workers.
@Suite struct EmbeddedClusterTests {
    static let rows = 10_000, dimension = 16, shardRows = 1_000, k = 8

    static func kmeansJob(_ corpus: String) -> TrainingJob {
        TrainingJob(kind: .kmeans, corpus: corpus, k: k, iterations: 5, seed: 11, tolerance: 0, shardRows: shardRows,
                    initialization: .kmeansPlusPlus)
    }

    static func gmmJob(_ corpus: String) -> TrainingJob {
        TrainingJob(kind: .gmm, corpus: corpus, k: k, iterations: 4, seed: 11, tolerance: 0, shardRows: shardRows,
                    initialization: .kmeans, kmeansIterations: 3, varianceFloorRatio: 1e-3)
    }

    /// The models of a local run (LocalBackend, same shard rows and seed) on the corpus's rows,
    /// transformed by `transform` if given.
    static func local(_ corpus: String, transform: DescriptorTransform? = nil) async throws -> (centres: [Float], gmm: [[Float]]) {
        let backend = LocalBackend(corpus: try DescriptorMatrix.open(path: corpus).transformed(transform), shardRows: shardRows,
                                   threads: 2)
        var kmeans = KMeansParameters(k: k)
        kmeans.iterations = 5
        kmeans.seed = 11
        kmeans.tolerance = 0
        kmeans.initialization = .kmeansPlusPlus
        let centres = try await KMeans.train(on: backend, parameters: kmeans).codebook.centres
        var gmm = GaussianMixtureParameters(k: k)
        gmm.iterations = 4
        gmm.seed = 11
        gmm.tolerance = 0
        gmm.initialization = .kmeans(iterations: 3)
        gmm.varianceFloorRatio = 1e-3
        let model = try await GaussianMixture.train(on: backend, parameters: gmm).model
        return (centres, [model.means, model.variances, model.priors])
    }

    static func bits(_ values: [Float]) -> [UInt32] { values.map(\.bitPattern) }

    @Test(arguments: [(1, 1), (2, 1), (3, 1), (1, 2), (2, 2), (3, 2)])
    func embeddedClusterMatchesTheLocalEngineBitForBit(workers: Int, threads: Int) async throws {
        let corpus = try Corpora.path(rows: Self.rows, dimension: Self.dimension)
        let expected = try await Self.local(corpus)
        let cluster = try EmbeddedCluster(workers: workers, threadsPerWorker: threads, logger: quietLogger())
        defer { cluster.shutdown() }
        let client = try cluster.client()

        let kmeans = try client.submit(Self.kmeansJob(corpus))
        var iterations: [IterationRecord] = []
        let (outcome, reply) = try await client.follow(kmeans, every: .milliseconds(10), iteration: { iterations.append($0) })
        #expect(outcome.k == Self.k && outcome.dimension == Self.dimension && outcome.iterations == 5)
        #expect(iterations.map(\.iteration) == [0, 1, 2, 3, 4])
        let centres = try reply.array(0, as: Float.self, count: Self.k * Self.dimension)
        #expect(Self.bits(centres) == Self.bits(expected.centres), "\(workers) worker(s) × \(threads) thread(s)")

        let gmm = try client.submit(Self.gmmJob(corpus))
        let (gmmOutcome, gmmReply) = try await client.follow(gmm, every: .milliseconds(10), iteration: { _ in })
        #expect(gmmOutcome.kind == .gmm && gmmOutcome.iterations == 4)
        for (index, name) in ["means", "variances", "priors"].enumerated() {
            let values = try gmmReply.array(index, as: Float.self)
            #expect(Self.bits(values) == Self.bits(expected.gmm[index]), "\(name), \(workers) worker(s) × \(threads) thread(s)")
        }
        // Every worker was heard from, and nothing was dropped in a healthy run.
        let status = try client.status()
        #expect(status.workers.count == workers)
        #expect(status.droppedResults == 0)
        #expect(status.jobs.map(\.state) == [.succeeded, .succeeded])
    }

    /// RootSIFT training on the cluster (the transform travels in each pass's description and
    /// is applied by the workers as they read) equals the engine on transformed rows.
    @Test func rootSIFTTrainingOnTheClusterMatchesTheEngineOnTransformedRows() async throws {
        let corpus = try Corpora.path(rows: Self.rows, dimension: Self.dimension)
        let expected = try await Self.local(corpus, transform: .rootSIFT)
        let plain = try await Self.local(corpus)
        let cluster = try EmbeddedCluster(workers: 2, threadsPerWorker: 1, logger: quietLogger())
        defer { cluster.shutdown() }
        let client = try cluster.client()
        var kmeansJob = Self.kmeansJob(corpus), gmmJob = Self.gmmJob(corpus)
        kmeansJob.transform = .rootSIFT
        gmmJob.transform = .rootSIFT
        let (_, reply) = try await client.follow(try client.submit(kmeansJob), every: .milliseconds(10), iteration: { _ in })
        let centres = try reply.array(0, as: Float.self, count: Self.k * Self.dimension)
        #expect(Self.bits(centres) == Self.bits(expected.centres))
        #expect(Self.bits(centres) != Self.bits(plain.centres))
        let (_, gmmReply) = try await client.follow(try client.submit(gmmJob), every: .milliseconds(10), iteration: { _ in })
        for (index, name) in ["means", "variances", "priors"].enumerated() {
            #expect(Self.bits(try gmmReply.array(index, as: Float.self)) == Self.bits(expected.gmm[index]), "\(name)")
        }
    }

    /// The runner used by the coordinator, over a LocalBackend, gives the same arrays as
    /// the cluster (and so as the engine): the wire adds nothing.
    @Test func trainingJobRunnerOnALocalBackendMatchesTheEngine() async throws {
        let corpus = try Corpora.path(rows: Self.rows, dimension: Self.dimension)
        let expected = try await Self.local(corpus)
        let matrix = try DescriptorMatrix.open(path: corpus)
        let reference = CorpusReference(path: corpus, rows: matrix.rows, dimension: matrix.dimension, fileSize: matrix.file?.size ?? 0)
        let backend = LocalBackend(corpus: matrix, shardRows: Self.shardRows, threads: 1)
        let job = Self.kmeansJob(corpus)
        let start = try TrainingJobRunner.validate(job, corpus: reference, arrays: [])
        let (_, arrays) = try await TrainingJobRunner.run(job, id: 1, initialization: start, backend: backend) { _ in }
        #expect(Self.bits(try Frame.decode(arrays[0], as: Float.self)) == Self.bits(expected.centres))
    }

    /// The covariance pass (PCA's statistics) on 1, 2 and 3 workers: the local engine's sums,
    /// bit for bit (shards merged in shard order).
    @Test(.timeLimit(.minutes(2))) func covarianceStatisticsAreBitIdenticalOnAnyNumberOfWorkers() async throws {
        let corpus = try Corpora.path(rows: Self.rows, dimension: Self.dimension)
        let matrix = try DescriptorMatrix.open(path: corpus)
        let reference = CorpusReference(path: corpus, rows: matrix.rows, dimension: matrix.dimension, fileSize: matrix.file?.size ?? 0)
        let pass = CovariancePass(dimension: Self.dimension)
        let local = try await LocalBackend(corpus: matrix, shardRows: Self.shardRows, threads: 2).run(pass)
        for workers in 1...3 {
            let cluster = try EmbeddedCluster(workers: workers, threadsPerWorker: 1, logger: quietLogger())
            defer { cluster.shutdown() }
            let backend = ClusterBackend(coordinator: cluster.coordinator, job: 1, corpus: reference, shardRows: Self.shardRows)
            let statistics = try await backend.run(pass)
            #expect(statistics.rows == Self.rows && statistics.sums.map(\.bitPattern) == local.sums.map(\.bitPattern)
                    && statistics.products.map(\.bitPattern) == local.products.map(\.bitPattern), "\(workers) worker(s)")
        }
    }

    /// A job task that asks for its next pass after the coordinator began to stop gets an
    /// error at once; it used to wait forever (and `stop()` 30 s for it).
    @Test(.timeLimit(.minutes(1))) func aPassSubmittedAfterTheCoordinatorStoppedFailsAtOnce() async throws {
        let corpus = try Corpora.path(rows: Self.rows, dimension: Self.dimension)
        let matrix = try DescriptorMatrix.open(path: corpus)
        let reference = CorpusReference(path: corpus, rows: matrix.rows, dimension: matrix.dimension, fileSize: matrix.file?.size ?? 0)
        let cluster = try EmbeddedCluster(workers: 1, threadsPerWorker: 1, logger: quietLogger())
        cluster.shutdown()
        let backend = ClusterBackend(coordinator: cluster.coordinator, job: 1, corpus: reference, shardRows: Self.shardRows)
        let codebook = try Codebook(k: 1, dimension: Self.dimension, centres: matrix.row(0))
        let error = await #expect(throws: ClusterError.self) {
            _ = try await backend.run(KMeansAssignmentPass(codebook: codebook))
        }
        #expect(error?.code == .jobFailed && error?.message == "the coordinator stopped", "\(String(describing: error))")
    }
}
