@testable import Cluster
import ClusterProtocol
import Clustering
import Descriptors
import Testing

/// k-means‖ on a cluster: the same centres as the local engine, bit for bit, whatever the
/// workers, and its rounds reported like iterations.
@Suite struct KMeansParallelClusterTests {
    static let rows = 10_000, dimension = 16, shardRows = 1_000, k = 8

    /// Workers keep each shard's distances between rounds (default budget), keep none (0),
    /// or keep about one shard's (15,000 bytes: 12 per row of 1,000-row shards), so most
    /// shards are measured against all candidates: the same centres.
    @Test(.timeLimit(.minutes(1)), arguments: [(1, 1, DistanceCache.seedingDefault), (2, 1, DistanceCache.seedingDefault),
                                               (3, 2, DistanceCache.seedingDefault), (3, 1, 0), (3, 2, 15_000)])
    func kmeansParallelOnAClusterMatchesTheLocalEngineBitForBit(workers: Int, threads: Int, seedingMemory: Int) async throws {
        let corpus = try Corpora.path(rows: Self.rows, dimension: Self.dimension)
        var parameters = KMeansParameters(k: Self.k)
        parameters.iterations = 3
        parameters.seed = 11
        parameters.tolerance = 0
        parameters.initialization = .kmeansParallel
        let backend = LocalBackend(corpus: try DescriptorMatrix.open(path: corpus), shardRows: Self.shardRows, threads: 2)
        let expected = try await KMeans.train(on: backend, parameters: parameters).codebook.centres

        let cluster = try EmbeddedCluster(workers: workers, threadsPerWorker: threads, seedingMemory: seedingMemory,
                                          logger: quietLogger())
        defer { cluster.shutdown() }
        let client = try cluster.client()
        let job = try client.submit(TrainingJob(kind: .kmeans, corpus: corpus, k: Self.k, iterations: 3, seed: 11, tolerance: 0,
                                                shardRows: Self.shardRows, initialization: .kmeansParallel))
        var records: [IterationRecord] = []
        let (_, reply) = try await client.follow(job, every: .milliseconds(10), iteration: { records.append($0) })
        let centres = try reply.array(0, as: Float.self, count: Self.k * Self.dimension)
        #expect(centres.map(\.bitPattern) == expected.map(\.bitPattern),
                "\(workers) worker(s) × \(threads) thread(s), \(seedingMemory) bytes of distances")
        if seedingMemory == DistanceCache.seedingDefault {
            #expect(cluster.workers.contains { $0.keptSeedingBytes > 0 })
        }
        let seeding = records.filter { $0.phase == .seeding }
        #expect(seeding.map(\.iteration) == [1, 2, 3, 4, 5, 6])
        // The rounds run on a sample of 32·K rows.
        #expect(seeding.allSatisfy { $0.rows > 0 && $0.rows < Self.rows && $0.largest >= 1 })
        #expect(records.filter { $0.phase == .kmeans }.map(\.iteration) == [0, 1, 2])
    }
}

extension KMeansParallelClusterTests {
    /// The candidates are the weighting pass's model and live on the coordinator; a round's
    /// shard result may hold every row of the shard: each is checked at submission.
    @Test func kmeansParallelJobsBeyondALimitAreRefused() throws {
        let corpus = try Corpora.path(rows: 1_000, dimension: 16)
        var settings = CoordinatorSettings()
        settings.maximumModelValues = 150
        settings.maximumSampleBytes = 700
        let cluster = try LocalCoordinator(settings: settings)
        defer { cluster.stop() }
        let raw = try RawClient(context: cluster.context, endpoint: cluster.endpoints.clients)
        // k = 2: up to 2·(1 + 0.5·2·5) = 12 candidates.
        let job = JobFixtures.kmeans(corpus, k: 2, initialization: .kmeansParallel)
        let refusal = try raw.error(LimitTests.submit(job))
        LimitTests.expectLimit(refusal, "maximumModelValues", "k-means‖ candidates·D (up to 12 candidates, D=16) is 192")
        // The way out it suggests is one that finishes at a large K: not k-means++.
        #expect(refusal.message.contains("initialise with random centres or a given model"), "\(refusal.message)")
        var roomier = settings
        roomier.maximumModelValues = 200
        let second = try LocalCoordinator(settings: roomier)
        defer { second.stop() }
        LimitTests.expectLimit(try RawClient(context: second.context, endpoint: second.endpoints.clients)
                                        .error(LimitTests.submit(job)),
                                    "maximumSampleBytes", "(up to 12 rows of D=16 float32 values) in bytes is 768")

        let wide = try Corpora.path(rows: 20_000, dimension: 64)
        var small = CoordinatorSettings()
        small.maximumModelValues = 100_000  // messages of 1 MiB at most
        let third = try LocalCoordinator(settings: small)
        defer { third.stop() }
        let whole = JobFixtures.kmeans(wide, k: 2, shardRows: 20_000, initialization: .kmeansParallel)
        LimitTests.expectLimit(try RawClient(context: third.context, endpoint: third.endpoints.clients)
                                        .error(LimitTests.submit(whole)),
                                    "maximumMessageSize, from maximumModelValues", "(up to 20000 rows of D=64) in bytes is 5440000")
    }
}

extension KMeansParallelClusterTests {
    /// A GMM's k-means initialisation seeded by k-means‖: the local engine's model, bit for bit.
    @Test(.timeLimit(.minutes(1)))
    func aGaussianMixtureSeededByKMeansParallelMatchesTheLocalEngine() async throws {
        let corpus = try Corpora.path(rows: Self.rows, dimension: Self.dimension)
        var parameters = GaussianMixtureParameters(k: Self.k)
        parameters.iterations = 2
        parameters.seed = 11
        parameters.tolerance = 0
        parameters.initialization = .kmeans(iterations: 2)
        parameters.kmeansSeeding = .kmeansParallel
        parameters.varianceFloorRatio = 1e-3
        let backend = LocalBackend(corpus: try DescriptorMatrix.open(path: corpus), shardRows: Self.shardRows, threads: 2)
        let expected = try await GaussianMixture.train(on: backend, parameters: parameters).model
        parameters.kmeansSeeding = .kmeansPlusPlus
        let plusPlus = try await GaussianMixture.train(on: backend, parameters: parameters).model

        let cluster = try EmbeddedCluster(workers: 2, threadsPerWorker: 1, logger: quietLogger())
        defer { cluster.shutdown() }
        let client = try cluster.client()
        let job = try client.submit(TrainingJob(kind: .gmm, corpus: corpus, k: Self.k, iterations: 2, seed: 11, tolerance: 0,
                                                shardRows: Self.shardRows, initialization: .kmeansParallel, kmeansIterations: 2,
                                                varianceFloorRatio: 1e-3))
        var records: [IterationRecord] = []
        let (_, reply) = try await client.follow(job, every: .milliseconds(10), iteration: { records.append($0) })
        let means = try reply.array(0, as: Float.self, count: Self.k * Self.dimension)
        #expect(means.map(\.bitPattern) == expected.means.map(\.bitPattern))
        #expect(means != plusPlus.means, "the k-means‖ seeding was used")
        #expect(records.map(\.phase) == Array(repeating: .seeding, count: 6) + [.kmeans, .kmeans, .em, .em])
    }
}
