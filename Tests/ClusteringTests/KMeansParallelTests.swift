import Clustering
import Descriptors
import Foundation
import Testing

@Suite struct KMeansParallelTests {
    func seed(_ data: DescriptorMatrix, k: Int, seed: UInt64 = 3, threads: Int = 2, shardRows: Int = 256,
              rounds: Int = 5, oversampling: Double = 2) async throws -> (Codebook, [KMeansParallel.RoundReport]) {
        var reports: [KMeansParallel.RoundReport] = []
        let codebook = try await KMeansParallel.seed(backend: LocalBackend(corpus: data, shardRows: shardRows, threads: threads),
                                                     k: k, seed: seed, rounds: rounds, oversampling: oversampling) {
            reports.append($0)
        }
        return (codebook, reports)
    }

    /// Rows 0, 1, 3 and 4 on a line, candidate 0: d² = 0, 1, 9, 16 and φ_s = 26; a row is sent
    /// when u·26 < ℓ·d², so with ℓ = 26/16 row 4 is sent whatever u (< 1) and row 0 never.
    @Test func aRoundSendsTheRowsTheRuleSamplesByHand() throws {
        let rows = try DescriptorMatrix(rows: 4, dimension: 1, values: [0, 1, 3, 4])
        let pass = try KMeansParallelRoundPass(candidates: try Codebook(k: 1, dimension: 1, centres: [0]),
                                           oversampling: 26.0 / 16, seed: 5, round: 1)
        let statistics = try pass.statistics(of: rows, shard: 0, workspace: KernelWorkspace())
        #expect(statistics.rows == 4 && statistics.cost == 26)
        let expected = [1, 2, 3].filter { KMeansParallelRoundPass.unit(seed: 5, round: 1, row: $0) * 26 < 26.0 / 16 * [0, 1, 9, 16][$0] }
        #expect(expected.contains(3))
        #expect(statistics.rowIndices == expected)
        #expect(statistics.distances == expected.map { [0, 1, 9, 16][$0] })
        #expect(statistics.values == expected.map { [0, 1, 3, 4][$0] })
    }

    /// Two points, each twice: whichever row seeds, round 1 samples both copies of the other
    /// point (probability min(1, ℓ·100/200) = 1 with ℓ = 2·2), round 2 has cost 0 and ends the
    /// rounds, and the weighted reduction returns the two points.
    @Test(arguments: [0 as UInt64, 1, 2, 3])
    func twoPointsGiveTheTwoPoints(seed: UInt64) async throws {
        let data = try DescriptorMatrix(rows: 4, dimension: 2, values: [0, 0, 10, 0, 0, 0, 10, 0])
        let (codebook, reports) = try await self.seed(data, k: 2, seed: seed, shardRows: 1)
        #expect(Set(codebook.centres.chunks(2)) == [[0, 0], [10, 0]], "seed \(seed): \(codebook.centres)")
        #expect(reports.map(\.round) == [1, 2, 6], "seed \(seed)")
        #expect(reports.map(\.cost) == [200, 0, 0], "seed \(seed)")
        #expect(reports.map(\.candidates) == [3, 3, 3], "seed \(seed)")
    }

    @Test func theCentresAreTheSameBitForBitOnAnyNumberOfThreads() async throws {
        let data = try blobs(rows: 3000, dimension: 16, blobs: 12, seed: 8, spread: 10)
        let (reference, reports) = try await seed(data, k: 24, threads: 1)
        #expect(reports.count == 6 && reports.last!.candidates > 24)
        for threads in [2, 3] {
            let (codebook, _) = try await seed(data, k: 24, threads: threads)
            #expect(codebook.centres.map(\.bitPattern) == reference.centres.map(\.bitPattern), "\(threads) threads")
        }
    }

    @Test func roundsAndOversamplingAreChecked() async throws {
        let data = try blobs(rows: 100, dimension: 4, blobs: 2, seed: 1)
        await #expect(throws: ClusteringError.self) { _ = try await seed(data, k: 2, rounds: 0) }
        await #expect(throws: ClusteringError.self) { _ = try await seed(data, k: 2, oversampling: 0) }
        await #expect(throws: ClusteringError.self) { _ = try await seed(data, k: 2, oversampling: .nan) }
    }

    /// k-means‖ and Lloyd end close to k-means++ and Lloyd on clustered data.
    @Test(arguments: [21 as UInt64, 22, 23, 24, 25])
    func theObjectiveAfterLloydIsCloseToKMeansPlusPlus(seed: UInt64) async throws {
        let data = try blobs(rows: 6000, dimension: 16, blobs: 40, seed: seed, spread: 8)
        var objectives: [Double] = []
        for initialization in [KMeansInitialization.kmeansPlusPlus, .kmeansParallel] {
            var parameters = KMeansParameters(k: 40)
            parameters.seed = seed
            parameters.iterations = 15
            parameters.tolerance = 0
            parameters.initialization = initialization
            let result = try await KMeans.train(on: LocalBackend(corpus: data, shardRows: 500, threads: 2), parameters: parameters)
            objectives.append(result.iterations.last!.objective)
        }
        #expect(objectives[1] <= objectives[0] * 1.05, "seed \(seed): k-means++ \(objectives[0]), k-means‖ \(objectives[1])")
    }
}

private extension Array {
    func chunks(_ size: Int) -> [[Element]] {
        stride(from: 0, to: count, by: size).map { Array(self[$0 ..< Swift.min($0 + size, count)]) }
    }
}
