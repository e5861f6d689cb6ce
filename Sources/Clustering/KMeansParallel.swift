import Descriptors
import Foundation

/// k-means‖ seeding (Bahmani et al., "Scalable K-Means++", VLDB 2012) as passes over the
/// shards, so that seeding at large K costs a few distributed passes instead of a K²
/// sequential loop on the coordinator.
///
/// 1. The first candidate is the row a one-row `RowSamplePass` with the seed picks.
/// 2. Rounds 1…R: a `KMeansParallelRoundPass` over every shard measures d²(x), the exact
///    squared distance of each row to its nearest candidate, and the cost φ = Σ d². Row x
///    becomes a candidate when u(seed, round, x)·φ < ℓ·d²(x) (u uniform in [0, 1), see
///    `KMeansParallelRoundPass.unit`), i.e. with probability min(1, ℓ·d²/φ), ℓ =
///    `oversampling`·K. A shard cannot know φ, only its own share φ_s ≤ φ: it sends every
///    row with u·φ_s < ℓ·d² (a superset), and the coordinator keeps those with u·φ < ℓ·d².
///    So one pass per round, and the candidates depend on the seed only, not on who
///    computed which shard.
/// 3. One k-means assignment pass over the candidates counts the rows nearest each (weights).
/// 4. Weighted k-means++ on the coordinator reduces the candidates to K centres.
///
/// Expected candidates: 1 + ℓ·R; they are capped at `candidateLimit` (rows past the cap,
/// in shard and row order, are dropped and the rounds end there).
public enum KMeansParallel {
    /// What one seeding step did, for progress lines.
    public struct RoundReport: Sendable, Equatable {
        /// 1…R for the sampling rounds, R + 1 for the weighting pass.
        public let round: Int
        /// Σ d² of every row to its nearest candidate, before this round's rows were added.
        public let cost: Double
        public let rows: Int
        /// Candidates after this round.
        public let candidates: Int
        public let seconds: Double
    }

    /// The most candidates kept: twice the expected 1 + ℓ·R, and at least 2·K.
    public static func candidateLimit(k: Int, rounds: Int, oversampling: Double) -> Int {
        let expected = 1 + oversampling * Double(k) * Double(rounds)
        return Int(min(max(2 * expected, 2 * Double(k)), Double(Int32.max)))
    }

    /// K centres for `backend`'s rows by k-means‖.
    public static func seed(backend: some StatisticsBackend, k: Int, seed: UInt64, rounds: Int, oversampling: Double,
                            progress: (RoundReport) -> Void = { _ in }) async throws -> Codebook {
        guard rounds >= 1, rounds <= maximumRounds else {
            throw ClusteringError(.invalidArgument, "k-means‖ rounds must be 1…\(maximumRounds) (got \(rounds))")
        }
        guard oversampling > 0, oversampling.isFinite else {
            throw ClusteringError(.invalidArgument, "k-means‖ oversampling must be a finite value > 0 (got \(oversampling))")
        }
        let d = backend.dimension, ell = oversampling * Double(k)
        let limit = candidateLimit(k: k, rounds: rounds, oversampling: oversampling)
        var started = ContinuousClock.now
        let first = try await backend.run(RowSamplePass(sampleSize: 1, totalRows: backend.rows, seed: seed))
        guard first.count == 1 else {
            throw ClusteringError(.invalidArgument, "k-means‖ needs at least one row (the sample has \(first.count))")
        }
        var candidates = first.values
        for round in 1...rounds {
            let pass = KMeansParallelRoundPass(candidates: try Codebook(k: candidates.count / d, dimension: d, centres: candidates),
                                               oversampling: ell, seed: seed, round: round)
            let result = try await backend.run(pass)
            if result.cost > 0 {
                for (i, row) in result.rowIndices.enumerated() where candidates.count / d < limit {
                    if KMeansParallelRoundPass.sends(seed: seed, round: round, oversampling: ell, row: row,
                                                     distance: result.distances[i], cost: result.cost) {
                        candidates += result.values[i * d ..< (i + 1) * d]
                    }
                }
            }
            progress(RoundReport(round: round, cost: result.cost, rows: result.rows, candidates: candidates.count / d,
                                 seconds: (ContinuousClock.now - started).seconds))
            started = ContinuousClock.now
            // No row is away from the candidates, or the cap is reached: more rounds add nothing.
            if result.cost == 0 || candidates.count / d >= limit { break }
        }
        let pool = try Codebook(k: candidates.count / d, dimension: d, centres: candidates)
        let weights = try await backend.run(KMeansAssignmentPass(codebook: pool))
        let centres = try weightedPlusPlus(pool, weights: weights.counts.map(Double.init), k: k, seed: seed)
        progress(RoundReport(round: rounds + 1, cost: weights.objective, rows: weights.rows, candidates: pool.k,
                             seconds: (ContinuousClock.now - started).seconds))
        return centres
    }

    /// Rounds at most (the round number is part of each row's random stream, see `unit`).
    public static let maximumRounds = 1000

    /// k-means++ over weighted points: the first centre drawn with probability ∝ weight, each
    /// next one ∝ weight·d² to the nearest centre so far. Points of weight 0 are never drawn
    /// unless all have weight 0; when every weighted point is taken (fewer distinct points
    /// than K), the rest repeat drawn points, and Lloyd's empty-cluster repair splits them.
    static func weightedPlusPlus(_ points: Codebook, weights: [Double], k: Int, seed: UInt64) throws -> Codebook {
        let d = points.dimension, n = points.k
        precondition(weights.count == n, "one weight per point")
        var generator = SeededGenerator(seed: seed, stream: 0x6B6D_7C7C)
        var centres = [Float]()
        centres.reserveCapacity(k * d)
        // Weighted d² of each point to its nearest centre so far; before the first, the weight.
        var mass = weights
        var nearest = [Double](repeating: .infinity, count: n)
        points.centres.withUnsafeBufferPointer { values in
            let x = values.baseAddress!
            for c in 0..<k {
                let total = mass.reduce(0, +)
                let chosen = total > 0 ? KMeans.draw(mass, total: total, generator: &generator)
                                       : Int(generator.next() % UInt64(n))
                centres.append(contentsOf: UnsafeBufferPointer(start: x + chosen * d, count: d))
                guard c + 1 < k else { break }
                for i in 0..<n where mass[i] > 0 {
                    nearest[i] = min(nearest[i], VectorMath.squaredDistance(x + i * d, x + chosen * d, d))
                    mass[i] = weights[i] * nearest[i]
                }
            }
        }
        return try Codebook(k: k, dimension: d, centres: centres)
    }
}

/// What one k-means‖ round sends back for its shards: the cost and the rows that may be
/// sampled (see `KMeansParallel`).
public struct KMeansParallelRoundStatistics: SufficientStatistics, Equatable {
    public let dimension: Int
    /// The candidates the round measured against.
    public let candidates: Int
    /// The rows the statistics cover.
    public var rows: Int
    /// Σ d² over those rows, float64, in row order (shards added in shard order).
    public var cost: Double
    /// Absolute indices of the rows sent, ascending.
    public var rowIndices: [Int]
    /// d² of each row sent.
    public var distances: [Double]
    /// The rows sent, row-major.
    public var values: [Float]

    public init(dimension: Int, candidates: Int) {
        self.dimension = dimension
        self.candidates = candidates
        rows = 0
        cost = 0
        rowIndices = []
        distances = []
        values = []
    }

    public mutating func merge(_ other: KMeansParallelRoundStatistics) {
        precondition(other.dimension == dimension && other.candidates == candidates, "merging statistics of different rounds")
        rows += other.rows
        cost += other.cost
        rowIndices += other.rowIndices
        distances += other.distances
        values += other.values
    }
}

/// One k-means‖ sampling round over a shard: the cost Σ d² of its rows to the nearest
/// candidate, and every row with u·φ_s < ℓ·d², φ_s the shard's cost.
public struct KMeansParallelRoundPass: ShardComputation {
    public let search: NearestCentreSearch
    /// ℓ, the expected number of rows sampled per round.
    public let oversampling: Double
    public let seed: UInt64
    public let round: Int

    public init(candidates: Codebook, oversampling: Double, seed: UInt64, round: Int,
                screen: NearestCentreSearch.Screen = .preferred) {
        search = NearestCentreSearch(codebook: candidates, screen: screen)
        self.oversampling = oversampling
        self.seed = seed
        self.round = round
    }

    /// Row `row`'s uniform draw in round `round`: the first `nextUnit()` of
    /// `SeededGenerator(seed: seed, stream: round·2⁴⁸ + row)`, a pure function of the three.
    public static func unit(seed: UInt64, round: Int, row: Int) -> Double {
        var generator = SeededGenerator(seed: seed, stream: UInt64(round) << 48 | UInt64(row))
        return generator.nextUnit()
    }

    /// Whether a shard whose cost is `shardCost` sends row `row` at distance `distance`:
    /// u·φ_s < ℓ·d² (the coordinator applies the same rule with the total cost).
    public static func sends(seed: UInt64, round: Int, oversampling: Double, row: Int, distance: Double,
                             cost: Double) -> Bool {
        unit(seed: seed, round: round, row: row) * cost < oversampling * distance
    }

    public func statistics(of rows: DescriptorMatrix, shard index: Int, workspace: KernelWorkspace) throws -> KMeansParallelRoundStatistics {
        let d = search.codebook.dimension
        var result = KMeansParallelRoundStatistics(dimension: d, candidates: search.codebook.k)
        result.rows = rows.rows
        var distances = [Double](repeating: 0, count: rows.rows)
        var assignments = [Int32](repeating: 0, count: RowScan.blockRows)
        try distances.withUnsafeMutableBufferPointer { exact in
            try assignments.withUnsafeMutableBufferPointer { assigned in
                try RowScan.forEachBlock(rows, workspace: workspace) { block, firstRow in
                    try search.assign(block, firstRow: firstRow, source: rows.source, workspace: workspace,
                                      assignments: assigned.baseAddress!,
                                      distances: exact.baseAddress! + (firstRow - rows.firstRow))
                }
            }
        }
        for distance in distances { result.cost += distance }
        for i in 0..<rows.rows where Self.sends(seed: seed, round: round, oversampling: oversampling, row: rows.firstRow + i,
                                               distance: distances[i], cost: result.cost) {
            try rows.checkRows(i ..< i + 1)
            result.rowIndices.append(rows.firstRow + i)
            result.distances.append(distances[i])
            result.values += try rows.row(i)
        }
        if (rows.file?.size ?? 0) > RowScan.residentBudget { rows.release(0..<rows.rows) }
        return result
    }
}
