import Clustering
import Descriptors
import Foundation
import Testing

@Suite struct KMeansTests {
    func train(_ data: DescriptorMatrix, k: Int, seed: UInt64 = 1, threads: Int = 2, shardRows: Int = 256,
               iterations: Int = 15, tolerance: Double = 0,
               initialization: KMeansInitialization = .kmeansPlusPlus) async throws -> KMeansResult {
        var parameters = KMeansParameters(k: k)
        parameters.seed = seed
        parameters.iterations = iterations
        parameters.tolerance = tolerance
        parameters.initialization = initialization
        return try await KMeans.train(on: LocalBackend(corpus: data, shardRows: shardRows, threads: threads),
                                      parameters: parameters)
    }

    @Test(arguments: [11 as UInt64, 12, 13, 14])
    func objectiveNeverIncreases(seed: UInt64) async throws {
        let data = try blobs(rows: 2000, dimension: 24, blobs: 9, seed: seed, spread: 15)
        for initialization in [KMeansInitialization.random, .kmeansPlusPlus] {
            let result = try await train(data, k: 16, seed: seed, initialization: initialization)
            for (before, after) in zip(result.iterations, result.iterations.dropFirst()) {
                #expect(after.objective <= before.objective * (1 + 1e-12),
                        "seed \(seed), \(initialization): iteration \(after.iteration) raised the objective \(before.objective) → \(after.objective)")
            }
        }
    }

    /// A backend whose sample pass returns no rows (a cluster's workers could say so).
    struct EmptySampleBackend: StatisticsBackend {
        let rows = 100, dimension = 2
        let plan = ShardPlan(totalRows: 100, shardRows: 50)
        func run<C: ShardComputation>(_ computation: C) async throws -> C.Statistics {
            RowSample(dimension: dimension) as! C.Statistics
        }
    }

    /// It used to divide by the sample's size (SIGFPE).
    @Test func kmeansPlusPlusOnAnEmptySampleFailsInsteadOfDividingByZero() async throws {
        var parameters = KMeansParameters(k: 2)
        parameters.initialization = .kmeansPlusPlus
        let error = await #expect(throws: ClusteringError.self) {
            _ = try await KMeans.train(on: EmptySampleBackend(), parameters: parameters)
        }
        #expect(error?.description.contains("at least one row") == true, "\(String(describing: error))")
    }

    /// Shard quotas add up to the sample, whatever the sizes (they used to overflow Int64).
    @Test func sampleQuotasAddUpWithoutOverflow() {
        for (size, total, shard) in [(10, 1000, 7), (Int.max, Int.max / 3, Int.max / 7), (1 << 40, 1 << 50, 1 << 45)] {
            let pass = RowSamplePass(sampleSize: size, totalRows: total, seed: 0)
            let plan = ShardPlan(totalRows: total, shardRows: shard)
            let quotas = (0..<plan.count).map { pass.quota(of: plan.rows(of: $0)) }
            #expect(quotas.reduce(0, +) == min(size, total) && quotas.allSatisfy { $0 >= 0 }, "\(size) of \(total)")
        }
    }

    @Test func aSamplePassMakesRoomForTheWholeSampleInShardZerosStatistics() throws {
        let pass = RowSamplePass(sampleSize: 500, totalRows: 10_000, seed: 0)
        var first = RowSample(dimension: 8)
        pass.reserveMergeCapacity(in: &first)
        #expect(first.rowIndices.capacity >= 500 && first.values.capacity >= 500 * 8)
        // Through a transform too.
        var transformed = RowSample(dimension: 8)
        TransformedComputation(pass, transform: .rootSIFT).reserveMergeCapacity(in: &transformed)
        #expect(transformed.rowIndices.capacity >= 500)
        // And through a projection (the sample's rows are then the projected ones).
        let identity = try PCAProjection(PrincipalComponents(dimension: 8, mean: [Float](repeating: 0, count: 8),
                                                             components: (0..<64).map { $0 % 9 == 0 ? 1 : 0 },
                                                             eigenvalues: (1...8).reversed().map(Float.init)), whiten: false)
        var projected = RowSample(dimension: 8)
        ProjectedComputation(pass, projection: identity).reserveMergeCapacity(in: &projected)
        #expect(projected.rowIndices.capacity >= 500 && projected.values.capacity >= 500 * 8)
    }

    @Test func objectiveIsTheExactSumOfSquaredDistances() async throws {
        let data = try blobs(rows: 700, dimension: 10, blobs: 4, seed: 3)
        let codebook = try await train(data, k: 6, iterations: 3).codebook
        let statistics = try await LocalBackend(corpus: data, shardRows: 100).run(KMeansAssignmentPass(codebook: codebook))
        let reference = try (0..<data.rows).reduce(0.0) { $0 + referenceNearest(try data.row($1), codebook).distance }
        #expect(abs(statistics.objective - reference) <= 1e-9 * reference)
        #expect(statistics.counts.reduce(0, +) == 700)
    }

    @Test func threadCountDoesNotChangeASingleBit() async throws {
        let data = try blobs(rows: 3000, dimension: 20, blobs: 7, seed: 21)
        let one = try await train(data, k: 12, threads: 1)
        let two = try await train(data, k: 12, threads: 2)
        let seven = try await train(data, k: 12, threads: 7)
        #expect(one.codebook == two.codebook)
        #expect(one.codebook == seven.codebook)
        #expect(one.iterations.map(\.objective) == seven.iterations.map(\.objective))
    }

    @Test func shardSizesAgreeToRounding() async throws {
        let data = try blobs(rows: 3000, dimension: 20, blobs: 7, seed: 22)
        let small = try await train(data, k: 7, shardRows: 97, iterations: 5)
        let large = try await train(data, k: 7, shardRows: 5000, iterations: 5)
        for (a, b) in zip(small.codebook.centres, large.codebook.centres) {
            #expect(abs(a - b) <= 1e-4 * max(1, abs(a)))
        }
    }

    @Test func largerKGivesLowerError() async throws {
        let data = try blobs(rows: 2000, dimension: 16, blobs: 20, seed: 4)
        var previous = Double.infinity
        for k in [2, 4, 8, 16, 32] {
            let objective = try await train(data, k: k, iterations: 10).iterations.last!.objective
            #expect(objective < previous, "k=\(k)")
            previous = objective
        }
    }

    @Test func moreClustersThanDistinctPointsIsRepairedNotNaN() async throws {
        let values: [Float] = (0..<40).flatMap { i -> [Float] in [Float(i % 3), 1] }
        let data = try DescriptorMatrix(rows: 40, dimension: 2, values: values)
        let result = try await train(data, k: 5, iterations: 4, initialization: .random)
        #expect(result.codebook.centres.allSatisfy { $0.isFinite })
        #expect(result.iterations.contains { $0.emptyClustersRepaired > 0 })
        #expect(result.iterations.last!.objective == 0)
    }

    @Test func kLargerThanTheCorpusIsAClearError() async throws {
        let data = try blobs(rows: 5, dimension: 3, blobs: 1, seed: 1)
        let error = await #expect(throws: ClusteringError.self) { try await train(data, k: 10) }
        #expect(error?.description.contains("k=10 but only 5 training rows") == true)
    }

    @Test func nanIsRejectedNamingTheRow() async throws {
        var values = try blobs(rows: 300, dimension: 4, blobs: 2, seed: 1).toArray()
        values[4 * 217 + 2] = .nan
        let data = try DescriptorMatrix(rows: 300, dimension: 4, values: values)
        let error = await #expect(throws: DescriptorError.self) {
            try await train(data, k: 3, initialization: .given(try Codebook(k: 3, dimension: 4, centres: [Float](repeating: 1, count: 12))))
        }
        #expect(error?.code == .nonFinite)
        #expect(error?.description.contains("row 217") == true)
    }

    @Test func convergesBeforeTheLimitWithATolerance() async throws {
        let data = try blobs(rows: 1000, dimension: 8, blobs: 3, seed: 9, spread: 1)
        let result = try await train(data, k: 3, iterations: 50, tolerance: 1e-6)
        #expect(result.converged)
        #expect(result.iterations.count < 50)
    }
}

@Suite struct GaussianMixtureTests {
    func train(_ data: DescriptorMatrix, k: Int, seed: UInt64 = 1, threads: Int = 2, shardRows: Int = 256,
               iterations: Int = 12, initialization: GaussianMixtureInitialization = .kmeans(iterations: 5)) async throws -> GaussianMixtureResult {
        var parameters = GaussianMixtureParameters(k: k)
        parameters.seed = seed
        parameters.iterations = iterations
        parameters.tolerance = 0
        parameters.initialization = initialization
        return try await GaussianMixture.train(on: LocalBackend(corpus: data, shardRows: shardRows, threads: threads),
                                               parameters: parameters)
    }

    @Test(arguments: [31 as UInt64, 32, 33])
    func logLikelihoodNeverDecreases(seed: UInt64) async throws {
        let data = try blobs(rows: 1500, dimension: 12, blobs: 6, seed: seed, spread: 8)
        for initialization in [GaussianMixtureInitialization.kmeans(iterations: 3), .random] {
            let result = try await train(data, k: 8, seed: seed, initialization: initialization)
            for (before, after) in zip(result.iterations, result.iterations.dropFirst()) where after.emptyComponentsRepaired == 0 && before.emptyComponentsRepaired == 0 {
                #expect(after.logLikelihood >= before.logLikelihood - 1e-9 * abs(before.logLikelihood),
                        "seed \(seed), \(initialization): iteration \(after.iteration) lowered the log-likelihood")
            }
            #expect(result.model.variances.allSatisfy { $0.isFinite && $0 > 0 })
            #expect(abs(result.model.priors.reduce(0, +) - 1) < 1e-5)
        }
    }

    @Test func threadCountDoesNotChangeASingleBit() async throws {
        let data = try blobs(rows: 2500, dimension: 10, blobs: 5, seed: 41)
        let one = try await train(data, k: 6, threads: 1)
        let three = try await train(data, k: 6, threads: 3)
        #expect(one.model == three.model)
        #expect(one.iterations.map(\.logLikelihood) == three.iterations.map(\.logLikelihood))
    }

    @Test func logLikelihoodMatchesDirectFloat64() async throws {
        let data = try blobs(rows: 400, dimension: 6, blobs: 3, seed: 42)
        let model = try await train(data, k: 3, iterations: 3).model
        let statistics = try await LocalBackend(corpus: data, shardRows: 64).run(try GaussianMixtureExpectationPass(model: model))
        var reference = 0.0, full = 0.0
        for i in 0..<data.rows {
            let l = referenceLogDensities(try data.row(i), model)
            reference += referencePosteriors(l, cutoff: GaussianMixtureExpectationPass.logPosteriorCutoff).logLikelihood
            full += referencePosteriors(l, cutoff: .infinity).logLikelihood
        }
        #expect(abs(statistics.logLikelihood - reference) <= 1e-9 * abs(reference))
        // Each row's is at most (K − 1)·10⁻⁶ below the uncut one.
        #expect(full - statistics.logLikelihood <= Double(data.rows * 2) * 1e-6 + 1e-9 * abs(full))
    }

    @Test func identicalRowsHitTheVarianceFloorWithoutNaN() async throws {
        let values: [Float] = (0..<60).flatMap { i -> [Float] in [Float(i % 2) * 10, 5, 5] }
        let data = try DescriptorMatrix(rows: 60, dimension: 3, values: values)
        let result = try await train(data, k: 2, iterations: 5)
        #expect(result.model.variances.allSatisfy { $0.isFinite && $0 > 0 })
        #expect(result.model.means.allSatisfy { $0.isFinite })
        #expect(result.iterations.allSatisfy { $0.logLikelihood.isFinite })
    }

    @Test func kLargerThanTheCorpusIsAClearError() async throws {
        let data = try blobs(rows: 4, dimension: 3, blobs: 1, seed: 1)
        let error = await #expect(throws: ClusteringError.self) { try await train(data, k: 9) }
        #expect(error?.description.contains("k=9 but only 4 training rows") == true)
    }
}
