import Clustering
import Descriptors
import Testing

@Suite struct PCAProjectionTests {
    /// A 3-D PCA keeping 2 components, with a mean.
    static func pca() throws -> PrincipalComponents {
        let s = Float(0.5).squareRoot()
        return try PrincipalComponents(dimension: 3, mean: [1, -2, 0.5], components: [s, s, 0, 0, 0, 1], eigenvalues: [4, 0.25])
    }

    /// y = W(x − μ), and whitened y_r / √(λ_r + ε): against a float64 evaluation of the formula.
    @Test func projectionAndWhiteningMatchTheFloat64Formula() throws {
        let pca = try Self.pca()
        let rows: [Float] = [3, 1, 2, -1, 0.5, 0, 0, 0, 0, 10, -7, 3.25]
        for whiten in [false, true] {
            let projection = try PCAProjection(pca, whiten: whiten)
            #expect(projection.epsilon == (whiten ? 4e-6 : 0))
            let projected = projection.project(rows, rows: 4)
            for i in 0..<4 {
                for r in 0..<2 {
                    var value = 0.0
                    for j in 0..<3 {
                        value += Double(pca.components[r * 3 + j]) * (Double(rows[i * 3 + j]) - Double(pca.mean[j]))
                    }
                    if whiten { value /= (Double(pca.eigenvalues[r]) + projection.epsilon).squareRoot() }
                    #expect(abs(Double(projected[i * 2 + r]) - value) <= 1e-5 * max(1, abs(value)), "row \(i) component \(r)")
                }
            }
        }
    }

    /// A matrix (converted from uint8, in blocks) projects to the same bits as its values.
    @Test func aMatrixProjectsLikeItsValuesAndKeepsItsRowNumbers() throws {
        let d = 3, n = 20_000
        let values = (0..<(n * d)).map { Float(($0 * 7919) % 251) }
        let projection = try PCAProjection(try Self.pca(), whiten: true)
        let matrix = try DescriptorMatrix(rows: n, dimension: d, values: values).slice(100 ..< n)
        let projected = try projection.project(matrix, workspace: KernelWorkspace())
        #expect(projected.dimension == 2 && projected.rows == n - 100 && projected.firstRow == 100)
        #expect(projected.toArray().map(\.bitPattern) == projection.project(Array(values[300...]), rows: n - 100).map(\.bitPattern))
    }

    @Test func nonFiniteRowsAndBadModelsAreRefused() throws {
        let projection = try PCAProjection(try Self.pca(), whiten: false)
        let bad = try DescriptorMatrix(rows: 2, dimension: 3, values: [0, 0, 0, 1, .nan, 0])
        let error = #expect(throws: DescriptorError.self) { try projection.project(bad, workspace: KernelWorkspace()) }
        #expect(error?.description.contains("row 1") == true, "\(String(describing: error))")
        let wide = try DescriptorMatrix(rows: 1, dimension: 4, values: [0, 0, 0, 0])
        #expect(throws: DescriptorError.self) { try projection.project(wide, workspace: KernelWorkspace()) }
        let flat = try PrincipalComponents(dimension: 2, mean: [0, 0], components: [1, 0], eigenvalues: [0])
        #expect(throws: ClusteringError.self) { try PCAProjection(flat, whiten: true) }
        #expect(throws: ClusteringError.self) { try PCAProjection(flat, whiten: false, power: 0) }
    }

    /// Vector whitening: signed power, L2, projection, whitening, L2 (float64 formula).
    @Test func vectorWhiteningPowerNormalisesBeforeAndAfter() throws {
        let projection = try PCAProjection(try Self.pca(), whiten: true, power: 0.5)
        let row: [Float] = [4, -9, 0.25]
        let raised = row.map { Double($0 < 0 ? -($0.magnitude.squareRoot()) : $0.squareRoot()) }
        let norm = raised.reduce(0) { $0 + $1 * $1 }.squareRoot()
        var prepared = row
        PCAProjection.prepareVectors(&prepared, dimension: 3, power: 0.5)
        #expect(zip(prepared, raised).allSatisfy { abs(Double($0) - $1 / norm) <= 1e-6 })
        let pca = projection.principalComponents
        let y = (0..<2).map { r in
            (0..<3).reduce(0.0) { $0 + Double(pca.components[r * 3 + $1]) * (raised[$1] / norm - Double(pca.mean[$1])) }
                / (Double(pca.eigenvalues[r]) + projection.epsilon).squareRoot()
        }
        let length = y.reduce(0) { $0 + $1 * $1 }.squareRoot()
        let projected = projection.project(row, rows: 1)
        #expect(zip(projected, y).allSatisfy { abs(Double($0) - $1 / length) <= 1e-5 }, "\(projected) vs \(y)")
    }

    /// k-means through a `ProjectingBackend` sees the projected rows: the same centres as
    /// k-means over the projection, shard by shard, computed beforehand.
    @Test func aProjectingBackendTrainsOnTheProjectedRows() async throws {
        let corpus = try blobs(rows: 2000, dimension: 6, blobs: 4, seed: 5)
        let pca = try await PrincipalComponents.train(on: LocalBackend(corpus: corpus, shardRows: 500, threads: 2), kept: 3)
        let projection = try PCAProjection(pca, whiten: false)
        var projected: [Float] = []
        for start in stride(from: 0, to: 2000, by: 500) {
            projected += try projection.project(corpus.slice(start ..< start + 500), workspace: KernelWorkspace()).toArray()
        }
        var parameters = KMeansParameters(k: 4)
        (parameters.iterations, parameters.seed, parameters.tolerance) = (4, 3, 0)
        let through = try await KMeans.train(on: ProjectingBackend(LocalBackend(corpus: corpus, shardRows: 500, threads: 2),
                                                                   projection: projection), parameters: parameters)
        let direct = try await KMeans.train(on: LocalBackend(corpus: DescriptorMatrix(rows: 2000, dimension: 3, values: projected),
                                                             shardRows: 500, threads: 1), parameters: parameters)
        #expect(through.codebook.dimension == 3)
        #expect(through.codebook.centres.map(\.bitPattern) == direct.codebook.centres.map(\.bitPattern))
    }
}
