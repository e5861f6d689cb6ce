@testable import Cluster
import ClusterProtocol
import Clustering
import Descriptors
import Foundation
import Storage
import TestSupport
import Testing

/// The PCA of a stored set's vectors, through the covariance or the Gram matrix by shape,
/// and TRANSFORM-SET.
@Suite struct SetPCATests {
    /// `count` seeded vectors of `dimension` values, with a decreasing spread per value (so
    /// that the eigenvalues are distinct), stored as set `name`.
    static func storeSet(_ name: String, count: Int, dimension: Int, in store: CodebookStore) throws -> [Float] {
        var generator = SeededGenerator(seed: UInt64(count * 7919 + dimension))
        let values = (0..<count * dimension).map { Float.random(in: -1...1, using: &generator) * Float(dimension - $0 % dimension) }
        let record = SetRecord(encoding: .vlad, model: "km", flags: 0, options: [], dimension: dimension, created: "now")
        try store.putSet(named: name, try StoredValue(kind: .set, metadata: record))
        let metadata = try StoredValue(kind: .vector, metadata: VectorRecord(encoding: .vlad, model: "km", flags: 0)).metadata
        try values.withUnsafeBytes {
            try store.putVectors(set: name, keys: (0..<count).map { String(format: "image%03d", $0) }, metadata: metadata,
                                 dimension: dimension, floatBytes: $0, durability: .logged)
        }
        return values
    }

    static func setPCA(_ set: String, kept: Int, name: String) -> TrainingJob {
        TrainingJob(kind: .pca, corpus: "", k: kept, iterations: 1, seed: 0, tolerance: 0, shardRows: 5, initialization: .none,
                    name: name, whiten: true, set: set, power: 0.5)
    }

    /// Trains `job` on a coordinator with `settings` over `store`; its error, if it is refused or fails.
    static func train(_ job: TrainingJob, settings: CoordinatorSettings = CoordinatorSettings(), store: CodebookStore) async throws {
        let coordinator = try LocalCoordinator(settings: settings, store: store)
        defer { coordinator.stop() }
        let client = try coordinator.client()
        _ = try await client.wait(for: try client.submit(job), every: .milliseconds(10))
    }

    /// The engine's Gram PCA of the set's vectors as the coordinator prepares them.
    static func gramReference(_ values: [Float], count: Int, dimension: Int, kept: Int) throws -> PrincipalComponents {
        var prepared = values
        PCAProjection.prepareVectors(&prepared, dimension: dimension, power: 0.5)
        return try PrincipalComponents(gramOf: prepared, count: count, dimension: dimension, kept: kept)
    }

    /// A set whose D·D is above maximumModelValues but whose N·N is not goes through the Gram
    /// matrix: the same PCA as through the covariance (within float64 rounding, each
    /// component's sign aligned), and the engine's Gram PCA bit for bit.
    @Test(.timeLimit(.minutes(2))) func theGramPCAOfASetEqualsItsCovariancePCA() async throws {
        let scratch = try TemporaryDirectory()
        let store = try CodebookStore(path: scratch.file("store"))
        let (count, d, kept) = (12, 72, 4)
        let values = try Self.storeSet("v", count: count, dimension: d, in: store)
        try await Self.train(Self.setPCA("v", kept: kept, name: "cov"), store: store)
        var narrow = CoordinatorSettings()
        narrow.maximumModelValues = d * d - 1
        try await Self.train(Self.setPCA("v", kept: kept, name: "gram"), settings: narrow, store: store)
        let covariance = try store.principalComponents(named: "cov").principalComponents
        let gram = try store.principalComponents(named: "gram").principalComponents
        for (a, b) in zip(gram.eigenvalues, covariance.eigenvalues) { #expect(abs(a - b) <= 1e-5 * b, "\(a) \(b)") }
        for (a, b) in zip(gram.mean, covariance.mean) { #expect(abs(a - b) <= 1e-6) }
        for r in 0..<kept {
            let (a, b) = (gram.components[r * d ..< (r + 1) * d], covariance.components[r * d ..< (r + 1) * d])
            let sign: Float = zip(a, b).reduce(0) { $0 + $1.0 * $1.1 } < 0 ? -1 : 1
            #expect(zip(a, b).allSatisfy { abs($0 * sign - $1) <= 1e-5 }, "component \(r)")
        }
        let reference = try Self.gramReference(values, count: count, dimension: d, kept: kept)
        #expect(gram == reference)
    }

    /// A set of 5000 values per vector (D·D above the default limit, refused before) and 20
    /// vectors is whitened through its Gram matrix, to the engine's Gram PCA.
    @Test(.timeLimit(.minutes(2))) func aSetOfMoreThan4096ValuesPerVectorIsWhitened() async throws {
        let scratch = try TemporaryDirectory()
        let store = try CodebookStore(path: scratch.file("store"))
        let (count, d, kept) = (20, 5000, 8)
        let values = try Self.storeSet("long", count: count, dimension: d, in: store)
        try await Self.train(Self.setPCA("long", kept: kept, name: "w"), store: store)
        let whitening = try store.principalComponents(named: "w")
        #expect(whitening.whiten && whitening.power == 0.5 && whitening.inputDimension == d && whitening.outputDimension == kept)
        #expect(whitening.principalComponents == (try Self.gramReference(values, count: count, dimension: d, kept: kept)))
    }

    /// What neither method can hold, or too many components, is refused with both sizes named.
    @Test(.timeLimit(.minutes(1))) func aSetPCATooLargeForBothMethodsOrWithTooManyComponentsIsRefused() async throws {
        let scratch = try TemporaryDirectory()
        let store = try CodebookStore(path: scratch.file("store"))
        _ = try Self.storeSet("v", count: 12, dimension: 72, in: store)
        func refusal(kept: Int, limit: Int) async -> String? {
            var settings = CoordinatorSettings()
            settings.maximumModelValues = limit
            do {
                try await Self.train(Self.setPCA("v", kept: kept, name: "p"), settings: settings, store: store)
                return nil
            } catch {
                return "\(error)"
            }
        }
        let both = await refusal(kept: 1, limit: 143)
        #expect(both?.contains("D·D (the covariance of D=72) is 5184, and N·N (the Gram matrix of its 12 or more vectors) "
                               + "is at least 144; both are above the coordinator's limit (maximumModelValues = 143)") == true,
                "\(String(describing: both))")
        // Through the Gram matrix (5183 < 72²) and through the covariance (the default limit).
        for limit in [5183, CoordinatorSettings().maximumModelValues] {
            let components = await refusal(kept: 12, limit: limit)
            #expect(components?.contains("a PCA of the 12 vectors of set \"v\" (D=72) keeps 1…11 components (asked for 12)") == true,
                    "\(limit): \(String(describing: components))")
        }
        let model = await refusal(kept: 11, limit: 700)
        #expect(model?.contains("D'·D (the components of D'=11, D=72) is 792, above the coordinator's limit (maximumModelValues = 700)") == true,
                "\(String(describing: model))")
        #expect(await refusal(kept: 11, limit: 5183) == nil)
    }

    /// The stored bytes of every vector of `set`, by key.
    static func storedVectors(_ set: String, in store: CodebookStore) throws -> [String: [UInt8]] {
        var vectors: [String: [UInt8]] = [:]
        try store.forEachVector(set: set) { vectors[$0] = Array($1) }
        return vectors
    }

    /// TRANSFORM-SET of an encoded set through its whitening stores what encoding with
    /// the whitening stores, byte for byte (vectors and their metadata), and the same set
    /// record; it refuses an existing target, a missing set or PCA, a set already whitened,
    /// and a PCA of another input dimension.
    @Test(.timeLimit(.minutes(3))) func transformSetStoresWhatEncodingWithTheWhiteningStores() async throws {
        let scratch = try TemporaryDirectory()
        let corpus = try Corpora.path(rows: PCAClusterTests.rows, dimension: PCAClusterTests.dimension)
        let store = try CodebookStore(path: scratch.file("store"))
        let cluster = try EmbeddedCluster(workers: 2, threadsPerWorker: 1, store: store, logger: quietLogger())
        defer { cluster.shutdown() }
        let client = try cluster.client()
        _ = try await client.wait(for: try client.submit(PCAClusterTests.kmeansJob(corpus, pca: nil, name: "km")), every: .milliseconds(10))
        let index = scratch.file("index.tsv")
        try (0..<300).map { "image\($0)\t\($0 * 20)\t\(15 + $0 % 5)" }.joined(separator: "\n")
            .write(toFile: index, atomically: true, encoding: .utf8)
        let plain = EncodingJob(encoding: .vlad, model: "km", descriptors: corpus, index: index, set: "v", flags: 0x2,
                                replace: false, imagesPerShard: 40)
        _ = try await client.wait(for: try client.submit(plain), every: .milliseconds(10))
        _ = try await client.wait(for: try client.submit(Self.setPCA("v", kept: 16, name: "w")), every: .milliseconds(10))
        var whitened = plain
        (whitened.set, whitened.whitening) = ("vw", "w")
        _ = try await client.wait(for: try client.submit(whitened), every: .milliseconds(10))

        let record = try client.transformSet(TransformSetRequest(set: "v", pca: "w", into: "vt"))
        var encoded = try store.set(named: "vw")!.decode(SetRecord.self, key: "vw")
        encoded.created = record.created
        #expect(record == encoded && record.dimension == 16)
        let expected = try Self.storedVectors("vw", in: store)
        #expect(expected.count == 300)
        #expect(try Self.storedVectors("vt", in: store) == expected)

        func refusal(_ request: TransformSetRequest) -> ClusterError? {
            #expect(throws: ClusterError.self) { try client.transformSet(request) }
        }
        #expect(refusal(TransformSetRequest(set: "v", pca: "w", into: "vw"))?.message
                == "set \"vw\" exists already; delete it or choose another name")
        #expect(refusal(TransformSetRequest(set: "none", pca: "w", into: "x"))?.message == "no set named \"none\"")
        #expect(refusal(TransformSetRequest(set: "v", pca: "none", into: "x"))?.code == .notFound)
        #expect(refusal(TransformSetRequest(set: "vw", pca: "w", into: "x"))?.message
                == "set \"vw\" holds vectors projected by PCA model \"w\" already")
        let s = Float(0.5).squareRoot()
        _ = try client.importModel(ImportRequest(name: "p2", kind: .pca, k: 1, dimension: 2, replace: false),
                                   arrays: [[0, 0], [s, s], [1]].map(Frame.encode))
        #expect(refusal(TransformSetRequest(set: "v", pca: "p2", into: "x"))?.message
                == "PCA model \"p2\" takes vectors of 2 values but set \"v\" has dimension 72")
        #expect(try store.set(named: "x") == nil)
    }
}
