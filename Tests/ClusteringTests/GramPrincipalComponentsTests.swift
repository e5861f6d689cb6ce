import Descriptors
import Testing
@testable import Clustering

@Suite struct GramPrincipalComponentsTests {
    private func rows(_ count: Int, _ d: Int, seed: UInt64) -> [Float] {
        var generator = SeededGenerator(seed: seed)
        // Decreasing spread per column, so that the eigenvalues are distinct.
        return (0..<count * d).map { Float.random(in: -1...1, using: &generator) * Float(d - $0 % d) }
    }

    /// Through the Gram matrix: the same components and eigenvalues as through the covariance.
    @Test func gramPCAEqualsCovariancePCA() throws {
        let count = 12, d = 7, kept = 4
        let values = rows(count, d, seed: 3)
        var statistics = CovarianceStatistics(dimension: d)
        statistics.rows = count
        for i in 0..<count {
            for j in 0..<d {
                statistics.sums[j] += Double(values[i * d + j])
                for l in j..<d { statistics.products[j * d + l] += Double(values[i * d + j]) * Double(values[i * d + l]) }
            }
        }
        let reference = try PrincipalComponents(statistics: statistics, kept: kept)
        let gram = try PrincipalComponents(gramOf: values, count: count, dimension: d, kept: kept)
        for (a, b) in zip(gram.eigenvalues, reference.eigenvalues) { #expect(abs(a - b) <= 1e-4 * b) }
        for (a, b) in zip(gram.components, reference.components) { #expect(abs(a - b) <= 1e-4) }
        for (a, b) in zip(gram.mean, reference.mean) { #expect(abs(a - b) <= 1e-5) }
        #expect(throws: ClusteringError.self) { try PrincipalComponents(gramOf: values, count: count, dimension: d, kept: 8) }
    }

    /// Vector whitening of few long vectors through the Gram PCA: unit L2 norm, and before
    /// the whitening each kept coordinate of the prepared vectors has its eigenvalue as variance.
    @Test func whiteningThroughTheGramPCAGivesUnitNormAndTheEigenvaluesAsVariances() throws {
        let count = 9, d = 30, kept = 5
        let values = rows(count, d, seed: 4)
        var prepared = values
        PCAProjection.prepareVectors(&prepared, dimension: d, power: 0.5)
        let pca = try PrincipalComponents(gramOf: prepared, count: count, dimension: d, kept: kept)
        let whitened = try PCAProjection(pca, whiten: true, power: 0.5).project(values, rows: count)
        for i in 0..<count {
            let norm = (0..<kept).reduce(0.0) { $0 + Double(whitened[i * kept + $1] * whitened[i * kept + $1]) }
            #expect(abs(norm - 1) < 1e-5)
        }
        let projected = try PCAProjection(pca, whiten: false).project(prepared, rows: count)
        for j in 0..<kept {
            let variance = (0..<count).reduce(0.0) { $0 + Double(projected[$1 * kept + j] * projected[$1 * kept + j]) } / Double(count - 1)
            #expect(abs(variance / Double(pca.eigenvalues[j]) - 1) < 1e-4)
        }
    }

    /// Read in blocks of 5 rows (block pairs of the Gram matrix, rows read again per block):
    /// the same PCA as in one block, within float64 rounding, and the same reads every time.
    @Test func theGramPCAInBlocksEqualsItInOneBlock() throws {
        let count = 13, d = 40, kept = 5
        let values = rows(count, d, seed: 5)
        var reads: [[Range<Int>]] = [[], []]
        func pca(_ run: Int, blockRows: Int?) throws -> PrincipalComponents {
            try PrincipalComponents(gramOfRows: count, dimension: d, kept: kept, blockRows: blockRows) { range, target in
                reads[run].append(range)
                for (index, value) in values[range.lowerBound * d ..< range.upperBound * d].enumerated() { target[index] = Double(value) }
            }
        }
        let whole = try PrincipalComponents(gramOf: values, count: count, dimension: d, kept: kept)
        let blocks = try pca(0, blockRows: 5)
        #expect(try pca(1, blockRows: 5) == blocks && reads[0] == reads[1])
        // Mean: 3 blocks; Gram: block a, then each later block; components: 3 blocks.
        #expect(reads[0] == [0..<5, 5..<10, 10..<13, 0..<5, 5..<10, 10..<13, 5..<10, 10..<13, 10..<13, 0..<5, 5..<10, 10..<13])
        for (a, b) in zip(blocks.eigenvalues, whole.eigenvalues) { #expect(abs(a - b) <= 1e-5 * b) }
        for (a, b) in zip(blocks.components, whole.components) { #expect(abs(a - b) <= 1e-5) }
        #expect(blocks.mean == whole.mean)
    }
}
