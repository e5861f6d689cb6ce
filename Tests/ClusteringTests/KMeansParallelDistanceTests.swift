@testable import Clustering
import Descriptors
import Testing

/// k-means‖ rounds that keep each shard's distances between rounds and measure only the
/// candidates added since: the same statistics, bit for bit, as rounds measuring all of them.
@Suite struct KMeansParallelDistanceTests {
    static let dimension = 8

    /// Rows 0..<n of blobs, and candidates: `first` rows, then `added` more of which the first
    /// repeats candidate 1 (an exact tie, which must go to candidate 1).
    static func data(rows: Int = 3000) throws -> (DescriptorMatrix, [Float], [Float]) {
        let corpus = try blobs(rows: rows, dimension: dimension, blobs: 10, seed: 4, spread: 5)
        let d = dimension
        let first = try (0..<20).flatMap { try corpus.row($0 * 97 % rows) }
        let added = Array(first[d ..< 2 * d]) + (try (0..<30).flatMap { try corpus.row(($0 * 89 + 7) % rows) })
        return (corpus, first, added)
    }

    static func pass(_ candidates: [Float], measured: Int, round: Int, sampling: Double, weighs: Bool = false,
                     cache: DistanceCache?) throws -> KMeansParallelRoundPass {
        var pass = try KMeansParallelRoundPass(candidates: try Codebook(k: candidates.count / dimension, dimension: dimension,
                                                                        centres: candidates),
                                               measured: measured, oversampling: 12, seed: 9, round: round,
                                               sampling: sampling, weighs: weighs)
        pass.distances = cache
        pass.distanceScope = "test"
        return pass
    }

    static func bits(_ s: KMeansParallelRoundStatistics) -> [UInt64] {
        [s.cost.bitPattern, UInt64(s.rows), UInt64(s.sampledRows)] + s.rowIndices.map { UInt64($0) }
            + s.distances.map(\.bitPattern) + s.values.map { UInt64($0.bitPattern) } + s.counts.map { UInt64($0) }
    }

    @Test(arguments: [1.0, 0.37])
    func aRoundOverTheAddedCandidatesEqualsARoundOverAll(sampling: Double) throws {
        let (corpus, first, added) = try Self.data()
        let cache = DistanceCache(budget: 1 << 20)
        let shards = [0..<1000, 1000..<2500, 2500..<3000]
        let workspace = KernelWorkspace()
        for shard in shards {
            _ = try Self.pass(first, measured: 0, round: 1, sampling: sampling, cache: cache)
                .statistics(of: try corpus.slice(shard), shard: 0, workspace: workspace)
        }
        let all = first + added, measured = first.count / Self.dimension
        var tied = 0
        for weighs in [false, true] {
            for shard in shards {
                let rows = try corpus.slice(shard)
                let key = DistanceCache.Key(scope: "test", firstRow: shard.lowerBound, rows: shard.count)
                #expect(cache.holds(key))
                let full = try Self.pass(all, measured: measured, round: 2, sampling: sampling, weighs: weighs, cache: nil)
                    .statistics(of: rows, shard: 0, workspace: workspace)
                let incremental = try Self.pass(all, measured: measured, round: 2, sampling: sampling, weighs: weighs, cache: cache)
                    .statistics(of: rows, shard: 0, workspace: workspace)
                #expect(Self.bits(incremental) == Self.bits(full), "shard \(shard), weighs \(weighs)")
                #expect(full.cost > 0 && (weighs ? full.counts.count == all.count / Self.dimension : !full.rowIndices.isEmpty))
                // The incremental pass kept distances to all the candidates: a second weighting
                // pass measures nothing and counts the same.
                if weighs {
                    let again = try Self.pass(all, measured: all.count / Self.dimension, round: 3, sampling: sampling,
                                              weighs: true, cache: cache).statistics(of: rows, shard: 0, workspace: workspace)
                    #expect(again.counts == full.counts && again.cost.bitPattern == full.cost.bitPattern)
                    // Candidate 1 and its copy (candidate 20) tie exactly: rows go to candidate 1.
                    #expect(full.counts[measured] == 0)
                    tied += full.counts[1]
                }
            }
            // Back to the state after round 1.
            for shard in shards {
                _ = try Self.pass(first, measured: 0, round: 1, sampling: sampling, cache: cache)
                    .statistics(of: try corpus.slice(shard), shard: 0, workspace: workspace)
            }
        }
        #expect(tied > 0)
    }

    /// Kept distances are used only when they cover exactly the previous round's candidates:
    /// poisoned distances (all 0) with the right tag show the round used them; with another
    /// count or other candidates, it measures everything.
    @Test func keptDistancesAreUsedOnlyForTheCandidatesTheyWereMeasuredAgainst() throws {
        let (corpus, first, added) = try Self.data(rows: 500)
        let rows = try corpus.slice(0..<500)
        let all = first + added, measured = first.count / Self.dimension
        let workspace = KernelWorkspace()
        let full = try Self.pass(all, measured: measured, round: 2, sampling: 1, cache: nil)
            .statistics(of: rows, shard: 0, workspace: workspace)
        let key = DistanceCache.Key(scope: "test", firstRow: 0, rows: 500)
        let pass = try Self.pass(all, measured: measured, round: 2, sampling: 1, cache: nil)
        let zeros = [Double](repeating: 0, count: 500), nearest = [Int32](repeating: 0, count: 500)
        for (count, checksum, used) in [(measured, pass.measuredChecksum, true), (measured - 1, pass.measuredChecksum, false),
                                        (measured, pass.measuredChecksum ^ 1, false)] {
            let cache = DistanceCache(budget: 1 << 20)
            cache.keep(ShardDistances(candidates: count, checksum: checksum, distances: zeros, nearest: nearest), for: key)
            let statistics = try Self.pass(all, measured: measured, round: 2, sampling: 1, cache: cache)
                .statistics(of: rows, shard: 0, workspace: workspace)
            if used {
                #expect(statistics.cost == 0)
            } else {
                #expect(Self.bits(statistics) == Self.bits(full))
            }
        }
    }

    /// Seeding with distances kept, without, and within a budget too small for all shards:
    /// the same centres, bit for bit, on 1 and 3 threads, on all rows and on a sample.
    @Test(arguments: [nil, 40] as [Int?])
    func seedingGivesTheSameCentresWithAndWithoutKeptDistances(sample: Int?) async throws {
        let corpus = try blobs(rows: 4000, dimension: 16, blobs: 12, seed: 8, spread: 10)
        var reference: [UInt32]?
        for (memory, threads) in [(0, 1), (DistanceCache.seedingDefault, 1), (DistanceCache.seedingDefault, 3), (20_000, 3)] {
            var parameters = KMeansParameters(k: 24)
            parameters.seed = 5
            parameters.seedingSample = sample
            parameters.initialization = .kmeansParallel
            let backend = LocalBackend(corpus: corpus, shardRows: 300, threads: threads, seedingMemory: memory)
            let centres = try await KMeans.initialCodebook(backend: backend, parameters: parameters).centres.map(\.bitPattern)
            if let reference {
                #expect(centres == reference, "memory \(memory), \(threads) threads")
            } else {
                reference = centres
            }
            if memory > 0 { #expect(backend.seedingDistances!.storedBytes > 0) }
        }
    }

    /// The reduction skips points by the triangle inequality, and shares each step's groups
    /// among threads (from 64 groups per thread, so k = 300 on 3 threads shares): the centres
    /// of a loop that measures every point against every new centre, bit for bit.
    @Test(arguments: [1 as UInt64, 2, 3], [1, 3])
    func theWeightedReductionEqualsThePlainLoop(seed: UInt64, threads: Int) throws {
        let corpus = try blobs(rows: 900, dimension: 12, blobs: 15, seed: seed, spread: 4)
        var values = try (0..<900).flatMap { try corpus.row($0) }
        values += values[0 ..< 12 * 50]  // duplicates
        let points = try Codebook(k: 950, dimension: 12, centres: values)
        var generator = SeededGenerator(seed: seed)
        let weights = (0..<950).map { _ in Double(generator.next() % 4) }  // some 0
        for k in [1, 7, 60, 300] {
            let pruned = try KMeansParallel.weightedPlusPlus(points, weights: weights, k: k, seed: seed, threads: threads)
            let plain = try Self.plainWeightedPlusPlus(points, weights: weights, k: k, seed: seed)
            #expect(pruned.centres.map(\.bitPattern) == plain.centres.map(\.bitPattern), "k \(k), \(threads) threads")
        }
    }

    /// Weighted k-means++ as a plain loop: every point of weight > 0 measured against every
    /// new centre.
    static func plainWeightedPlusPlus(_ points: Codebook, weights: [Double], k: Int, seed: UInt64) throws -> Codebook {
        let d = points.dimension, n = points.k
        var generator = SeededGenerator(seed: seed, stream: 0x6B6D_7C7C)
        var centres = [Float](), mass = weights
        var nearest = [Double](repeating: .infinity, count: n)
        for c in 0..<k {
            let total = mass.reduce(0, +)
            let chosen = total > 0 ? KMeans.draw(mass, total: total, generator: &generator) : Int(generator.next() % UInt64(n))
            centres += points.centre(chosen)
            guard c + 1 < k else { break }
            for i in 0..<n where mass[i] > 0 {
                let distance = points.centres.withUnsafeBufferPointer {
                    VectorMath.squaredDistance($0.baseAddress! + i * d, $0.baseAddress! + chosen * d, d)
                }
                nearest[i] = min(nearest[i], distance)
                mass[i] = weights[i] * nearest[i]
            }
        }
        return try Codebook(k: k, dimension: d, centres: centres)
    }
}
