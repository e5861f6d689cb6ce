@testable import Cluster
import Clustering
import Descriptors
import Encoding
import Foundation
import Storage
import Testing
import ZeroMQ

/// PCA on the cluster: the `pca` job, and codebooks and encodings through a stored PCA.
@Suite struct PCAClusterTests {
    static let rows = 6000, dimension = 12, shardRows = 700, kept = 5

    static func pcaJob(_ corpus: String, kept: Int = kept, whiten: Bool = false, name: String? = nil) -> TrainingJob {
        TrainingJob(kind: .pca, corpus: corpus, k: kept, iterations: 1, seed: 0, tolerance: 0, shardRows: shardRows,
                    initialization: "none", name: name, replace: true, whiten: whiten)
    }

    static func kmeansJob(_ corpus: String, pca: String?, name: String) -> TrainingJob {
        TrainingJob(kind: .kmeans, corpus: corpus, k: 6, iterations: 4, seed: 3, tolerance: 0, shardRows: shardRows,
                    initialization: "kmeans++", name: name, pca: pca)
    }

    static func bits(_ values: [Float]) -> [UInt32] { values.map(\.bitPattern) }

    /// The PCA job's model on 1 and 3 workers: the same bits; its mean, eigenvalues and
    /// components those of a float64 two-pass covariance written here.
    @Test(.timeLimit(.minutes(2))) func aPCAJobIsBitIdenticalOnOneAndThreeWorkersAndSolvesTheFloat64Covariance() async throws {
        let corpus = try Corpora.path(rows: Self.rows, dimension: Self.dimension)
        var models: [[[Float]]] = []
        for workers in [1, 3] {
            let cluster = try EmbeddedCluster(workers: workers, threadsPerWorker: 1, logger: quietLogger())
            defer { cluster.shutdown() }
            let client = try cluster.client()
            let (outcome, reply) = try await client.follow(try client.submit(Self.pcaJob(corpus)), every: .milliseconds(10),
                                                           iteration: { _ in })
            #expect(outcome.kind == .pca && outcome.k == Self.kept && outcome.dimension == Self.dimension)
            models.append(try (0..<3).map { try reply.array($0, as: Float.self) })
        }
        #expect(models[0].map(Self.bits) == models[1].map(Self.bits))

        let values = try DescriptorMatrix.open(path: corpus).toArray(), n = Self.rows, d = Self.dimension
        let mean = (0..<d).map { j in (0..<n).reduce(0.0) { $0 + Double(values[$1 * d + j]) } / Double(n) }
        var covariance = [Double](repeating: 0, count: d * d)
        for i in 0..<n {
            for a in 0..<d {
                for b in 0..<d {
                    covariance[a * d + b] += (Double(values[i * d + a]) - mean[a]) * (Double(values[i * d + b]) - mean[b])
                }
            }
        }
        covariance = covariance.map { $0 / Double(n - 1) }
        let (modelMean, components, eigenvalues) = (models[0][0], models[0][1], models[0][2])
        #expect(zip(modelMean, mean).allSatisfy { abs(Double($0) - $1) <= 1e-5 * max(1, abs($1)) })
        let largest = Double(eigenvalues[0])
        for r in 0..<Self.kept {
            let v = (0..<d).map { Double(components[r * d + $0]) }
            for a in 0..<d {
                let product = (0..<d).reduce(0.0) { $0 + covariance[a * d + $1] * v[$1] }
                #expect(abs(product - Double(eigenvalues[r]) * v[a]) <= 1e-4 * largest, "component \(r), row \(a)")
            }
        }
    }

    /// k-means through a stored PCA on 3 workers: the centres of a local run through the same
    /// projection, bit for bit; VLAD through it: the local encoder's vectors on the locally
    /// projected descriptors. The model records the PCA; encoding refuses any other.
    @Test(.timeLimit(.minutes(3))) func trainingAndEncodingThroughAPCAMatchALocalProjectionAndRefuseAnyOther() async throws {
        let scratch = try ScratchDirectory()
        let corpus = try Corpora.path(rows: Self.rows, dimension: Self.dimension)
        let store = try CodebookStore(path: scratch.file("store"))
        let cluster = try EmbeddedCluster(workers: 3, threadsPerWorker: 1, store: store, logger: quietLogger())
        defer { cluster.shutdown() }
        let client = try cluster.client()
        _ = try await client.follow(try client.submit(Self.pcaJob(corpus, whiten: true, name: "p")), every: .milliseconds(10),
                                    iteration: { _ in })
        let projection = try store.principalComponents(named: "p")
        #expect(projection.whiten && projection.outputDimension == Self.kept)

        let (outcome, reply) = try await client.follow(try client.submit(Self.kmeansJob(corpus, pca: "p", name: "km")),
                                                       every: .milliseconds(10), iteration: { _ in })
        #expect(outcome.dimension == Self.kept)
        var parameters = KMeansParameters(k: 6)
        (parameters.iterations, parameters.seed, parameters.tolerance) = (4, 3, 0)
        let matrix = try DescriptorMatrix.open(path: corpus)
        let local = try await KMeans.train(on: ProjectingBackend(LocalBackend(corpus: matrix, shardRows: Self.shardRows, threads: 2),
                                                                 projection: projection), parameters: parameters)
        #expect(Self.bits(try reply.array(0, as: Float.self)) == Self.bits(local.codebook.centres))
        guard case .codebook(_, let record) = try StoredModel(try store.model(named: "km")!, name: "km") else {
            Issue.record("model km is not a codebook")
            return
        }
        #expect(record.pca == PCAReference(name: "p", projection: projection))

        let index = scratch.file("index.tsv")
        try "a\t0\t150\nb\t150\t90\nc\t300\t0\n".write(toFile: index, atomically: true, encoding: .utf8)
        let encoding = EncodingJob(encoding: .vlad, model: "km", descriptors: corpus, index: index, set: "v", flags: 0,
                                   replace: false, imagesPerShard: 2, pca: "p")
        _ = try await client.wait(for: try client.submit(encoding), every: .milliseconds(10))
        let encoder = VLADEncoder(codebook: local.codebook, options: [])
        for (key, rows) in [("a", 0 ..< 150), ("b", 150 ..< 240), ("c", 300 ..< 300)] {
            let expected = try encoder.encode(try projection.project(matrix.slice(rows), workspace: KernelWorkspace()),
                                              workspace: KernelWorkspace())
            let stored = try StoreQueries(store: store).get(["v/\(key)"])[0].values
            #expect(stored.map(Self.bits) == Self.bits(expected), "image \(key)")
        }

        // The PCA is required, and only that one, unchanged.
        _ = try await client.follow(try client.submit(Self.pcaJob(corpus, kept: 4, name: "q")), every: .milliseconds(10),
                                    iteration: { _ in })
        _ = try await client.follow(try client.submit(Self.kmeansJob(corpus, pca: nil, name: "plain")), every: .milliseconds(10),
                                    iteration: { _ in })
        func refusal(model: String, pca: String?) -> String? {
            var job = encoding
            (job.model, job.pca, job.set) = (model, pca, "w")
            return (#expect(throws: ClusterError.self) { try client.submit(job) })?.message
        }
        #expect(refusal(model: "km", pca: nil)?.contains("trained on descriptors projected by PCA model \"p\"") == true)
        #expect(refusal(model: "km", pca: "q")?.contains("trained through PCA model \"p\", not \"q\"") == true)
        #expect(refusal(model: "plain", pca: "p")?.contains("trained on descriptors without a PCA") == true)
        var unknown = Self.kmeansJob(corpus, pca: "none", name: "x")
        #expect((#expect(throws: ClusterError.self) { try client.submit(unknown) })?.message.contains("no PCA model named \"none\"") == true)
        unknown.pca = "plain"
        #expect((#expect(throws: ClusterError.self) { try client.submit(unknown) })?.message.contains("\"plain\" is not a PCA model") == true)
        _ = try await client.follow(try client.submit(Self.pcaJob(corpus, whiten: false, name: "p")), every: .milliseconds(10),
                                    iteration: { _ in })
        #expect(refusal(model: "km", pca: "p")?.contains("PCA model \"p\" has changed since model \"km\" was trained") == true)
    }

    /// A PCA's D·D float64 statistics are checked against maximumModelValues; D' ≤ D.
    @Test func aPCAOfTooManyDimensionsOrComponentsIsRefused() throws {
        let corpus = try Corpora.path(rows: 1_000, dimension: 16)
        var settings = CoordinatorSettings()
        settings.maximumModelValues = 255
        let cluster = try LocalCoordinator(settings: settings)
        defer { cluster.stop() }
        let raw = try RawClient(context: cluster.context, endpoint: cluster.endpoints.clients)
        LimitTests.expectLimit(try raw.error(LimitTests.submit(Self.pcaJob(corpus, kept: 4))), "maximumModelValues",
                                    "D·D (the covariance statistics of D=16, float64 per shard result) is 256")
        settings.maximumModelValues = 256
        let wide = try LocalCoordinator(settings: settings)
        defer { wide.stop() }
        let fits = try RawClient(context: wide.context, endpoint: wide.endpoints.clients)
        #expect(try fits.request(LimitTests.submit(Self.pcaJob(corpus, kept: 16)))?.header.type == .accepted)
        let report = try fits.error(LimitTests.submit(Self.pcaJob(corpus, kept: 17)))
        #expect(report.message == "invalid argument: a PCA keeps 1…D components (D=16); 17 asked for", "\(report.message)")
    }

    /// IMPORT of a PCA, then DESCRIBE with values: the same arrays and whitening flag.
    @Test func aPCAModelImportsAndExportsItsArrays() throws {
        let scratch = try ScratchDirectory()
        let queries = StoreQueries(store: try CodebookStore(path: scratch.file("store")))
        let s = Float(0.5).squareRoot()
        let arrays: [[Float]] = [[1, 2, 3], [s, -s, 0, 0, 0, 1], [2, 0.5]]
        let record = try queries.importModel(ImportRequest(name: "p", kind: .pca, k: 2, dimension: 3, replace: false, whiten: true),
                                             arrays: arrays.map(Frame.encode))
        #expect(record.kind == .pca && record.whiten == true && record.valueCount == 3 + 6 + 2)
        let (reply, message) = try queries.describe(DescribeRequest(model: "p", values: true))
        #expect(reply.model?.whiten == true)
        #expect(try (0..<3).map { try message.array($0, as: Float.self) } == arrays)
        // Components that are not unit rows are refused.
        #expect(throws: (any Error).self) {
            try queries.importModel(ImportRequest(name: "bad", kind: .pca, k: 2, dimension: 3, replace: false),
                                    arrays: [[1, 2, 3], [1, 1, 0, 0, 0, 1], [2, 0.5]].map(Frame.encode))
        }
    }
}
