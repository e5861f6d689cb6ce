@testable import Cluster
import ClusterProtocol
import Clustering
import Descriptors
import Storage
import TestSupport
import Testing

/// IMPORT checks what a trained model guarantees: a PCA's components are orthonormal and a
/// GMM's priors sum to 1 (both within 10⁻³). Components of unit length that were not
/// orthogonal, and priors summing to 5, used to be stored; models as the engine exports
/// them still round-trip.
@Suite struct ImportChecksTests {
    static func queries(in scratch: TemporaryDirectory) throws -> StoreQueries {
        StoreQueries(store: try CodebookStore(path: scratch.file("store")))
    }

    @Test func aComputedPCARoundTripsAndNonOrthogonalComponentsAreRefused() async throws {
        let scratch = try TemporaryDirectory()
        let queries = try Self.queries(in: scratch)
        // A corpus of D = 64 with scales 1 … 64 and correlated columns.
        let d = 64, rows = 3000
        var state: UInt64 = 7, values: [Float] = []
        for _ in 0..<rows {
            var row: [Float] = []
            for j in 0..<d {
                state = state &* 6364136223846793005 &+ 1442695040888963407
                row.append(Float(Double(state >> 11) / Double(1 << 53) - 0.5) * Float(j + 1) + (j > 0 ? 0.5 * row[j - 1] : 0))
            }
            values += row
        }
        let corpus = try DescriptorMatrix(rows: rows, dimension: d, values: values)
        let statistics = try await LocalBackend(corpus: corpus, shardRows: 500, threads: 1).run(CovariancePass(dimension: d))
        let pca = try PrincipalComponents(statistics: statistics, kept: 48)
        let arrays = [pca.mean, pca.components, pca.eigenvalues]
        _ = try queries.importModel(ImportRequest(name: "p", kind: .pca, k: 48, dimension: d, replace: false), arrays: arrays.map(Frame.encode))
        let (_, message) = try queries.describe(DescribeRequest(model: "p", values: true))
        #expect(try (0..<3).map { try message.array($0, as: Float.self) } == arrays)

        let s = Float(0.5).squareRoot()
        let error = #expect(throws: (any Error).self) {
            try queries.importModel(ImportRequest(name: "bad", kind: .pca, k: 2, dimension: 3, replace: false),
                                    arrays: [[0, 0, 0], [1, 0, 0, s, s, 0], [2, 1]].map(Frame.encode))
        }
        #expect("\(error.map { "\($0)" } ?? "")".contains("PCA components 0 and 1 have dot product 0.70710677; components must be orthogonal (|dot| ≤ 0.001)"),
                "\(String(describing: error))")
    }

    @Test func normalisedPriorsRoundTripAndOthersAreRefused() throws {
        let scratch = try TemporaryDirectory()
        let queries = try Self.queries(in: scratch)
        // K = 4096 priors normalised in float64 and rounded to float32, as an exported model's.
        let k = 4096, d = 2
        let weights = (0..<k).map { Double(($0 * 7919) % 1000 + 1) }
        let total = weights.reduce(0, +)
        let priors = weights.map { Float($0 / total) }
        let arrays: [[Float]] = [[Float](repeating: 0.5, count: k * d), [Float](repeating: 1, count: k * d), priors]
        _ = try queries.importModel(ImportRequest(name: "g", kind: .gmm, k: k, dimension: d, replace: false), arrays: arrays.map(Frame.encode))
        let (_, message) = try queries.describe(DescribeRequest(model: "g", values: true))
        #expect(try (0..<3).map { try message.array($0, as: Float.self) } == arrays)

        let error = #expect(throws: ClusteringError.self) {
            try queries.importModel(ImportRequest(name: "five", kind: .gmm, k: 2, dimension: 1, replace: false),
                                    arrays: ([[0, 1], [1, 1], [2.5, 2.5]] as [[Float]]).map(Frame.encode))
        }
        #expect(error?.message == "the priors sum to 5.0; they must sum to 1 (within 0.001)", "\(String(describing: error))")
    }
}
