@testable import Cluster
import ClusterProtocol
import Clustering
import Descriptors
import Encoding
import Foundation
import Storage
import TestSupport
import Testing
import ZeroMQ

/// PCA on the cluster: the `pca` job, and codebooks and encodings through a stored PCA.
@Suite struct PCAClusterTests {
    static let rows = 6000, dimension = 12, shardRows = 700, kept = 5

    static func pcaJob(_ corpus: String, kept: Int = kept, whiten: Bool = false, name: String? = nil) -> TrainingJob {
        TrainingJob(kind: .pca, corpus: corpus, k: kept, iterations: 1, seed: 0, tolerance: 0, shardRows: shardRows,
                    initialization: .none, name: name, replace: true, whiten: whiten)
    }

    static func kmeansJob(_ corpus: String, pca: String?, name: String) -> TrainingJob {
        TrainingJob(kind: .kmeans, corpus: corpus, k: 6, iterations: 4, seed: 3, tolerance: 0, shardRows: shardRows,
                    initialization: .kmeansPlusPlus, name: name, pca: pca)
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
        let scratch = try TemporaryDirectory()
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
        // A PCA of plain descriptors is not applied to RootSIFT ones.
        (unknown.pca, unknown.transform) = ("p", .rootSIFT)
        #expect((#expect(throws: ClusterError.self) { try client.submit(unknown) })?.message
                .contains("PCA model \"p\" was trained on untransformed descriptors; these are read root-sift") == true)
        var rootSIFT = encoding
        (rootSIFT.set, rootSIFT.transform) = ("r", .rootSIFT)
        #expect((#expect(throws: ClusterError.self) { try client.submit(rootSIFT) })?.message
                .contains("was trained on untransformed descriptors; these are read root-sift") == true)
        _ = try await client.follow(try client.submit(Self.pcaJob(corpus, whiten: false, name: "p")), every: .milliseconds(10),
                                    iteration: { _ in })
        #expect(refusal(model: "km", pca: "p")?.contains("PCA model \"p\" has changed since model \"km\" was trained") == true)
    }

    /// Vector whitening: a PCA of a set's vectors (power law, L2, then the covariance pass on
    /// the coordinator) equals the engine's on the same prepared vectors; encoding with it
    /// stores each vector projected as a local projection of the plain vector; SEARCH with it
    /// projects the queries.
    @Test(.timeLimit(.minutes(3))) func aSetIsWhitenedEncodedThroughTheWhiteningAndSearchedWithProjectedQueries() async throws {
        let scratch = try TemporaryDirectory()
        let corpus = try Corpora.path(rows: Self.rows, dimension: Self.dimension)
        let store = try CodebookStore(path: scratch.file("store"))
        let cluster = try EmbeddedCluster(workers: 2, threadsPerWorker: 1, store: store, logger: quietLogger())
        defer { cluster.shutdown() }
        let client = try cluster.client()
        _ = try await client.follow(try client.submit(Self.kmeansJob(corpus, pca: nil, name: "km")), every: .milliseconds(10),
                                    iteration: { _ in })
        let index = scratch.file("index.tsv")
        try (0..<12).map { "image\($0)\t\($0 * 400)\t\(300 + $0 * 7)" }.joined(separator: "\n")
            .write(toFile: index, atomically: true, encoding: .utf8)
        let plain = EncodingJob(encoding: .vlad, model: "km", descriptors: corpus, index: index, set: "v", flags: 0x2,
                                replace: false, imagesPerShard: 5)
        _ = try await client.wait(for: try client.submit(plain), every: .milliseconds(10))

        let job = TrainingJob(kind: .pca, corpus: "", k: 4, iterations: 1, seed: 0, tolerance: 0, shardRows: 5,
                              initialization: .none, name: "w", whiten: true, set: "v", power: 0.5)
        let (outcome, reply) = try await client.follow(try client.submit(job), every: .milliseconds(10), iteration: { _ in })
        #expect(outcome.k == 4 && outcome.dimension == 6 * Self.dimension)
        var vectors = try SetVectors(set: "v", store: store)
        PCAProjection.prepareVectors(&vectors.values, dimension: vectors.dimension, power: 0.5)
        let local = try await PrincipalComponents.train(
            on: LocalBackend(corpus: try DescriptorMatrix(rows: 12, dimension: vectors.dimension, values: vectors.values), shardRows: 5,
                             threads: 1), kept: 4)
        #expect(try (0..<3).map { Self.bits(try reply.array($0, as: Float.self)) }
                == [local.mean, local.components, local.eigenvalues].map(Self.bits))
        let whitening = try store.principalComponents(named: "w")
        #expect(whitening.whiten && whitening.power == 0.5)

        var whitened = plain
        (whitened.set, whitened.whitening) = ("vw", "w")
        _ = try await client.wait(for: try client.submit(whitened), every: .milliseconds(10))
        let stored = try SetVectors(set: "v", store: store), projected = try SetVectors(set: "vw", store: store)
        #expect(projected.keys == stored.keys && projected.dimension == 4)
        // The workers whiten each vector alone (one sgemm of one row; a block of rows may round otherwise).
        let locally = (0..<12).flatMap { whitening.project(Array(stored.values[$0 * 72 ..< ($0 + 1) * 72]), rows: 1) }
        #expect(Self.bits(projected.values) == Self.bits(locally))
        let record = try store.set(named: "vw")!.decode(SetRecord.self, key: "vw")
        #expect(record.whitening == PCAReference(name: "w", projection: whitening) && record.dimension == 4)

        let throughPCA = try client.search(SearchRequest(set: "vw", top: 5, querySet: "v", pca: "w"))
        let direct = try client.search(SearchRequest(set: "vw", top: 5, querySet: "vw"))
        #expect(throughPCA.map(\.keys) == direct.map(\.keys))
        #expect(zip(throughPCA, direct).allSatisfy { zip($0.scores, $1.scores).allSatisfy { abs($0 - $1) <= 1e-5 } })
        #expect(throws: ClusterError.self) { try client.search(SearchRequest(set: "vw", top: 5, key: "image0", pca: "w")) }
        let mismatch = #expect(throws: ClusterError.self) { try client.search(SearchRequest(set: "v", top: 5, querySet: "v", pca: "w")) }
        #expect(mismatch?.message.contains("projects to 4 values but set \"v\" has dimension 72") == true, "\(String(describing: mismatch))")
    }

    /// A job through a PCA that was replaced while the coordinator was down fails when the
    /// coordinator comes back, rather than resuming its checkpoint through another PCA.
    @Test(.timeLimit(.minutes(2))) func aJobWhosePCAChangedWhileItWasStoppedFailsOnResume() async throws {
        let scratch = try TemporaryDirectory()
        let corpus = try Corpora.path(rows: Self.rows, dimension: Self.dimension)
        let store = try CodebookStore(path: scratch.file("store"))
        let queries = StoreQueries(store: store)
        let s = Float(0.5).squareRoot()
        let mean = [Float](repeating: 0, count: Self.dimension)
        func pca(_ first: [Float], replace: Bool) throws {
            let components = first + [Float](repeating: 0, count: Self.dimension - 2)
            _ = try queries.importModel(ImportRequest(name: "p", kind: .pca, k: 1, dimension: Self.dimension, replace: replace),
                                        arrays: [mean, components, [1]].map(Frame.encode))
        }
        try pca([s, s], replace: false)
        let first = try LocalCoordinator(store: store)
        let job = try first.client().submit(Self.kmeansJob(corpus, pca: "p", name: "km"))
        first.stop(keepingJobs: true)
        try pca([s, -s], replace: true)
        let second = try LocalCoordinator(store: store)
        defer { second.stop() }
        let progress = try second.client().progress(of: job, since: 0)
        #expect(progress.state == .failed)
        #expect(progress.message?.hasPrefix("cannot resume after a restart: PCA model \"p\" has changed since the job started") == true,
                "\(String(describing: progress.message))")
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
        let scratch = try TemporaryDirectory()
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
