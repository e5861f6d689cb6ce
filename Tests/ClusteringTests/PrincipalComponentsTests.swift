import Clustering
import Descriptors
import Testing

@Suite struct PrincipalComponentsTests {
    static func statistics(_ corpus: DescriptorMatrix, threads: Int, shardRows: Int = 256) async throws -> CovarianceStatistics {
        try await LocalBackend(corpus: corpus, shardRows: shardRows, threads: threads).run(CovariancePass(dimension: corpus.dimension))
    }

    /// Covariance [[0.8, 0.4], [0.4, 0.8]] (mean 0, n − 1 = 5): eigenvalues 1.2 and 0.4 along
    /// (1, 1)/√2 and (1, −1)/√2 (a tie of magnitudes: the first entry is made positive).
    @Test func aHandComputedTwoByTwoCase() async throws {
        let corpus = try DescriptorMatrix(rows: 6, dimension: 2, values: [1, 0, -1, 0, 0, 1, 0, -1, 1, 1, -1, -1])
        let pca = try PrincipalComponents(statistics: try await Self.statistics(corpus, threads: 1), kept: 2)
        let s = Float(0.5).squareRoot()
        #expect(pca.mean == [0, 0])
        #expect(zip(pca.eigenvalues, [1.2, 0.4]).allSatisfy { abs($0 - $1) < 1e-6 }, "\(pca.eigenvalues)")
        #expect(zip(pca.components, [s, s, s, -s]).allSatisfy { abs($0 - $1) < 1e-6 }, "\(pca.components)")
    }

    @Test func statisticsAreBitIdenticalAcrossThreadsAndTheEigenpairsSolveTheFloat64Covariance() async throws {
        let d = 6, corpus = try blobs(rows: 3000, dimension: d, blobs: 4, seed: 41)
        let one = try await Self.statistics(corpus, threads: 1)
        for threads in [2, 3] { #expect(try await Self.statistics(corpus, threads: threads) == one) }

        // Two-pass float64 reference covariance.
        let values = corpus.toArray(), n = corpus.rows
        let mean = (0..<d).map { j in (0..<n).reduce(0.0) { $0 + Double(values[$1 * d + j]) } / Double(n) }
        var covariance = [Double](repeating: 0, count: d * d)
        for i in 0..<n {
            for a in 0..<d {
                for b in 0..<d {
                    covariance[a * d + b] += (Double(values[i * d + a]) - mean[a]) * (Double(values[i * d + b]) - mean[b]) / Double(n - 1)
                }
            }
        }
        let pca = try PrincipalComponents(statistics: one, kept: d)
        #expect(zip(pca.mean, mean).allSatisfy { abs(Double($0) - $1) <= 1e-5 * max(1, abs($1)) })
        let largest = Double(pca.eigenvalues[0])
        for r in 0..<d {
            let v = (0..<d).map { Double(pca.components[r * d + $0]) }, lambda = Double(pca.eigenvalues[r])
            for a in 0..<d {
                let product = (0..<d).reduce(0.0) { $0 + covariance[a * d + $1] * v[$1] }
                #expect(abs(product - lambda * v[a]) <= 1e-5 * largest, "component \(r), row \(a)")
            }
            for s in 0..<d {
                let dot = (0..<d).reduce(0.0) { $0 + v[$1] * Double(pca.components[s * d + $1]) }
                #expect(abs(dot - (r == s ? 1 : 0)) <= 1e-5, "components \(r)·\(s)")
            }
        }
        let trace = (0..<d).reduce(0.0) { $0 + covariance[$1 * d + $1] }
        #expect(abs(pca.eigenvalues.reduce(0.0) { $0 + Double($1) } - trace) <= 1e-5 * trace)
        // Keeping fewer: the leading ones, the same.
        let two = try PrincipalComponents(statistics: one, kept: 2)
        #expect(two.eigenvalues == Array(pca.eigenvalues.prefix(2)) && two.components == Array(pca.components.prefix(2 * d)))
    }

    @Test func badInputIsRefused() async throws {
        let corpus = try DescriptorMatrix(rows: 3, dimension: 2, values: [1, 2, 3, .nan, 5, 6])
        let error = await #expect(throws: DescriptorError.self) { try await Self.statistics(corpus, threads: 1) }
        #expect(error?.code == .nonFinite && error?.location == "row 1")
        let statistics = try await Self.statistics(DescriptorMatrix(rows: 3, dimension: 2, values: [1, 2, 3, 4, 5, 7]), threads: 1)
        for kept in [0, 3] { #expect(throws: ClusteringError.self) { try PrincipalComponents(statistics: statistics, kept: kept) } }
        // Two rows span one dimension around their mean.
        let two = try await Self.statistics(DescriptorMatrix(rows: 2, dimension: 2, values: [1, 2, 3, 5]), threads: 1)
        #expect(try PrincipalComponents(statistics: two, kept: 1).outputDimension == 1)
        let tooMany = #expect(throws: ClusteringError.self) { try PrincipalComponents(statistics: two, kept: 2) }
        #expect(tooMany?.message == "a PCA of 2 rows keeps 1…1 components (got 2)")
        let single = try await Self.statistics(DescriptorMatrix(rows: 1, dimension: 2, values: [1, 2]), threads: 1)
        #expect(throws: ClusteringError.self) { try PrincipalComponents(statistics: single, kept: 1) }
        #expect(throws: ClusteringError.self) {
            try PrincipalComponents(dimension: 2, mean: [0, 0], components: [1, 0, 0, 2], eigenvalues: [2, 1])
        }
    }

    /// Building a model from its arrays checks what costs O(D'·D); whether its components are
    /// orthogonal (D'²·D) is checked apart, by IMPORT, not at every rebuild of a stored or
    /// sent model. The old build refused these components itself, at every use.
    @Test func orthogonalityIsCheckedApartFromBuilding() async throws {
        let s = Float(0.5).squareRoot()
        let skewed = try PrincipalComponents(dimension: 3, mean: [0, 0, 0], components: [1, 0, 0, s, s, 0], eigenvalues: [2, 1])
        let error = #expect(throws: ClusteringError.self) { try skewed.checkOrthogonal() }
        #expect(error?.message == "PCA components 0 and 1 have dot product 0.70710677; components must be orthogonal (|dot| ≤ 0.001)")
        let corpus = try DescriptorMatrix(rows: 6, dimension: 2, values: [1, 0, -1, 0, 0, 1, 0, -1, 1, 1, -1, -1])
        try PrincipalComponents(statistics: try await Self.statistics(corpus, threads: 1), kept: 2).checkOrthogonal()
    }
}
