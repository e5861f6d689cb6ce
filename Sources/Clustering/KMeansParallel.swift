import Descriptors
import Foundation

/// k-means‖ seeding (Bahmani et al., "Scalable K-Means++", VLDB 2012) as passes over the
/// shards, so that seeding at large K costs a few distributed passes instead of a K²
/// sequential loop on the coordinator.
///
/// 1. The first candidate is the row a one-row `RowSamplePass` with the seed picks.
/// 2. Rounds 1…R: a `KMeansParallelRoundPass` over every shard measures d²(x), the exact
///    squared distance of each sampled row to its nearest candidate (the rows of a uniform
///    seeded sample of fraction `sampling`, all rows at 1), and the cost φ = Σ d². Row x
///    becomes a candidate when u(seed, round, x)·φ < ℓ·d²(x) (u uniform in [0, 1), see
///    `KMeansParallelRoundPass.unit`), i.e. with probability min(1, ℓ·d²/φ), ℓ =
///    `oversampling`·K. A shard cannot know φ, only its own share φ_s ≤ φ: it sends every
///    row with u·φ_s < ℓ·d² (a superset), and the coordinator keeps those with u·φ < ℓ·d².
///    So one pass per round, and the candidates depend on the seed only, not on who
///    computed which shard. Workers that keep each shard's d² between rounds measure only
///    the candidates added by the previous round.
/// 3. One more pass of the same kind counts the sampled rows nearest each candidate (weights).
/// 4. Weighted k-means++ on the coordinator reduces the candidates to K centres.
///
/// Expected candidates: 1 + ℓ·R; they are capped at `candidateLimit` (rows past the cap,
/// in shard and row order, are dropped and the rounds end there).
public enum KMeansParallel {
    /// What one seeding step did, for progress lines.
    public struct RoundReport: Sendable, Equatable {
        /// 1…R for the sampling rounds, R + 1 for the weighting pass.
        public let round: Int
        /// Σ d² of every sampled row to its nearest candidate, before this round's rows were added.
        public let cost: Double
        /// The sampled rows.
        public let rows: Int
        /// Candidates after this round.
        public let candidates: Int
        /// The whole step: the pass (round 1: and the first candidate's) and, after the
        /// weighting pass, the reduction.
        public let seconds: Double
        /// Of `seconds`, the reduction to K centres (0 but for the weighting pass).
        public var reductionSeconds = 0.0
    }

    /// The K from which the command line seeds k-means with k-means‖ by default: at K = 4096
    /// on 1M real SIFT rows it seeded over 20× faster than k-means++ on its 64·K sample, at
    /// a lower objective after Lloyd (codebook-bench seeding); smaller K were not measured.
    public static let preferredFromK = 4096

    /// The most candidates kept: twice the expected 1 + ℓ·R, and at least 2·K.
    public static func candidateLimit(k: Int, rounds: Int, oversampling: Double) -> Int {
        let expected = 1 + oversampling * Double(k) * Double(rounds)
        return Int(min(max(2 * expected, 2 * Double(k)), Double(Int32.max)))
    }

    /// The fraction of `rows` rows that makes a sample of `perCentre`·K rows (nil: all rows).
    public static func sampling(perCentre: Int?, k: Int, rows: Int) -> Double {
        guard let perCentre, rows > 0 else { return 1 }
        return min(1, Double(perCentre) * Double(k) / Double(rows))
    }

    /// K centres for `backend`'s rows by k-means‖, the rounds running on a uniform sample of
    /// fraction `sampling` of the rows, the reduction on `threads` threads of this process
    /// (the same centres on any number).
    public static func seed(backend: some StatisticsBackend, k: Int, seed: UInt64, rounds: Int, oversampling: Double,
                            sampling: Double = 1, threads: Int = ProcessInfo.processInfo.activeProcessorCount,
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
        var measured = 0
        func pass(round: Int, weighs: Bool = false) throws -> KMeansParallelRoundPass {
            var pass = try KMeansParallelRoundPass(candidates: try Codebook(k: candidates.count / d, dimension: d, centres: candidates),
                                                   measured: measured, oversampling: ell, seed: seed, round: round,
                                                   sampling: sampling, weighs: weighs)
            pass.distances = backend.seedingDistances
            pass.distanceScope = "k-means‖ seed \(seed) sampling \(sampling)"
            measured = candidates.count / d
            return pass
        }
        for round in 1...rounds {
            let result = try await backend.run(try pass(round: round))
            if result.cost > 0 {
                for (i, row) in result.rowIndices.enumerated() where candidates.count / d < limit {
                    if KMeansParallelRoundPass.sends(seed: seed, round: round, oversampling: ell, row: row,
                                                     distance: result.distances[i], cost: result.cost) {
                        candidates += result.values[i * d ..< (i + 1) * d]
                    }
                }
            }
            progress(RoundReport(round: round, cost: result.cost, rows: result.sampledRows, candidates: candidates.count / d,
                                 seconds: (ContinuousClock.now - started).seconds))
            started = ContinuousClock.now
            // No row is away from the candidates, or the cap is reached: more rounds add nothing.
            if result.cost == 0 || candidates.count / d >= limit { break }
        }
        let pool = try Codebook(k: candidates.count / d, dimension: d, centres: candidates)
        let weights = try await backend.run(try pass(round: rounds + 1, weighs: true))
        guard weights.counts.count == pool.k else {
            throw ClusteringError(.invalidArgument, "k-means‖ weighting pass counted \(weights.counts.count) candidates, not \(pool.k)")
        }
        let reducing = ContinuousClock.now
        let centres = try weightedPlusPlus(pool, weights: weights.counts.map(Double.init), k: k, seed: seed, threads: threads)
        progress(RoundReport(round: rounds + 1, cost: weights.cost, rows: weights.sampledRows, candidates: pool.k,
                             seconds: (ContinuousClock.now - started).seconds,
                             reductionSeconds: (ContinuousClock.now - reducing).seconds))
        return centres
    }

    /// Rounds at most (the round number is part of each row's random stream, see `unit`).
    public static let maximumRounds = 1000

    /// k-means++ over weighted points: the first centre drawn with probability ∝ weight, each
    /// next one ∝ weight·d² to the nearest centre so far. Points of weight 0 are never drawn
    /// unless all have weight 0; when every weighted point is taken (fewer distinct points
    /// than K), the rest repeat drawn points, and Lloyd's empty-cluster repair splits them.
    ///
    /// d² is the exact float64 distance, as a plain loop over every point would compute it,
    /// but a point is only measured against a new centre c when the triangle inequality
    /// leaves it a chance to come nearer: points are grouped by their nearest centre a, and
    /// a point with ‖c − a‖² ≥ 4·d² (a whole group, with its largest d²) cannot have
    /// ‖x − c‖ < ‖x − a‖. The test carries a relative margin of 10⁻⁹, far above the float64
    /// rounding of the distances it compares (≤ (D + 2)·2⁻⁵³ relative each: float32
    /// coordinates subtract exactly in float64), so a point it skips has ‖x − c‖² ≥ d² in
    /// float64 too, and min(d², ‖x − c‖²) = d² is what the loop would have stored.
    static func weightedPlusPlus(_ points: Codebook, weights: [Double], k: Int, seed: UInt64,
                                 threads: Int = 1) throws -> Codebook {
        let d = points.dimension, n = points.k
        precondition(weights.count == n, "one weight per point")
        var generator = SeededGenerator(seed: seed, stream: 0x6B6D_7C7C)
        var centres = [Float]()
        centres.reserveCapacity(k * d)
        // Weighted d² of each point to its nearest centre so far; before the first, the weight.
        var mass = weights
        var nearest = [Double](repeating: .infinity, count: n)
        // Per centre drawn: its point, the points of weight > 0 nearest it, their largest d².
        var drawn: [Int] = []
        var members: [[Int32]] = []
        var largest: [Double] = []
        points.centres.withUnsafeBufferPointer { values in
            let x = values.baseAddress!
            for c in 0..<k {
                let total = mass.reduce(0, +)
                let chosen = total > 0 ? KMeans.draw(mass, total: total, generator: &generator)
                                       : Int(generator.next() % UInt64(n))
                let y = x + chosen * d
                centres.append(contentsOf: UnsafeBufferPointer(start: y, count: d))
                guard c + 1 < k else { break }
                var moved: [Int32] = []
                if c == 0 {
                    for i in 0..<n where mass[i] > 0 { moved.append(Int32(i)) }
                    for i in moved { nearest[Int(i)] = VectorMath.squaredDistance(x + Int(i) * d, y, d) }
                } else {
                    moved = ReductionGroups.narrow(groups: drawn.count, threads: threads, x: x, y: y, d: d,
                                                   drawn: drawn, members: &members, largest: &largest, nearest: &nearest)
                }
                for i in moved { mass[Int(i)] = weights[Int(i)] * nearest[Int(i)] }
                drawn.append(chosen)
                largest.append(moved.reduce(0) { max($0, nearest[Int($1)]) })
                members.append(moved)
            }
        }
        return try Codebook(k: k, dimension: d, centres: centres)
    }
}

/// One step of `KMeansParallel.weightedPlusPlus`: the points a new centre takes from the
/// groups of the centres drawn before it.
private enum ReductionGroups {
    static let margin = 1 + 1e-9
    /// Groups per thread below which a step runs on one thread (a step is then too short to share).
    static let groupsPerThread = 64

    /// Measures against the new centre `y` the points of each group that the triangle
    /// inequality leaves a chance (see `weightedPlusPlus`), updates `nearest`, `members` and
    /// `largest`, and returns the points that moved, in group order and in each group's
    /// order, whatever `threads`: the groups are split into contiguous ranges, each range
    /// touches only its own groups and their points, and the ranges' moves are joined in order.
    static func narrow(groups: Int, threads: Int, x: UnsafePointer<Float>, y: UnsafePointer<Float>, d: Int,
                       drawn: [Int], members: inout [[Int32]], largest: inout [Double],
                       nearest: inout [Double]) -> [Int32] {
        let parts = max(1, min(threads, groups / groupsPerThread))
        return drawn.withUnsafeBufferPointer { drawn in
            members.withUnsafeMutableBufferPointer { members in
                largest.withUnsafeMutableBufferPointer { largest in
                    nearest.withUnsafeMutableBufferPointer { nearest in
                        nonisolated(unsafe) let (drawn, members, largest, nearest, x, y) = (drawn, members, largest, nearest, x, y)
                        nonisolated(unsafe) let visit = { (range: Range<Int>) -> [Int32] in
                            var moved: [Int32] = []
                            for a in range where !members[a].isEmpty {
                                let apart = VectorMath.squaredDistance(x + drawn[a] * d, y, d)
                                guard apart < 4 * largest[a] * margin else { continue }
                                var staying: [Int32] = [], stayingLargest = 0.0
                                for i in members[a] {
                                    let p = Int(i)
                                    if apart < 4 * nearest[p] * margin {
                                        let distance = VectorMath.squaredDistance(x + p * d, y, d)
                                        if distance < nearest[p] {
                                            nearest[p] = distance
                                            moved.append(i)
                                            continue
                                        }
                                    }
                                    staying.append(i)
                                    stayingLargest = max(stayingLargest, nearest[p])
                                }
                                members[a] = staying
                                largest[a] = stayingLargest
                            }
                            return moved
                        }
                        guard parts > 1 else { return visit(0..<groups) }
                        let results = UnsafeMutableBufferPointer<[Int32]>.allocate(capacity: parts)
                        results.initialize(repeating: [])
                        defer { results.deallocate() }
                        nonisolated(unsafe) let slots = results
                        DispatchQueue.concurrentPerform(iterations: parts) { part in
                            slots[part] = visit(groups * part / parts ..< groups * (part + 1) / parts)
                        }
                        let moved = Array(results.joined())
                        _ = results.deinitialize()
                        return moved
                    }
                }
            }
        }
    }
}

/// What one k-means‖ round sends back for its shards: the cost and the rows that may be
/// sampled, or for the weighting pass the rows nearest each candidate (see `KMeansParallel`).
public struct KMeansParallelRoundStatistics: SufficientStatistics, Equatable {
    public let dimension: Int
    /// The candidates the round measured against.
    public let candidates: Int
    /// The rows the statistics cover.
    public var rows: Int
    /// Of those, the rows in the rounds' sample.
    public var sampledRows: Int
    /// Σ d² over the sampled rows, float64, in row order (shards added in shard order).
    public var cost: Double
    /// Absolute indices of the rows sent, ascending.
    public var rowIndices: [Int]
    /// d² of each row sent.
    public var distances: [Double]
    /// The rows sent, row-major.
    public var values: [Float]
    /// The weighting pass: per candidate, the sampled rows nearest it; otherwise empty.
    public var counts: [Int]

    public init(dimension: Int, candidates: Int) {
        self.dimension = dimension
        self.candidates = candidates
        rows = 0
        sampledRows = 0
        cost = 0
        counts = []
        rowIndices = []
        distances = []
        values = []
    }

    public mutating func merge(_ other: KMeansParallelRoundStatistics) {
        precondition(other.dimension == dimension && other.candidates == candidates, "merging statistics of different rounds")
        rows += other.rows
        sampledRows += other.sampledRows
        cost += other.cost
        precondition(counts.isEmpty || other.counts.isEmpty || counts.count == other.counts.count, "counts of different candidates")
        if counts.isEmpty {
            counts = other.counts
        } else if !other.counts.isEmpty {
            for i in counts.indices { counts[i] += other.counts[i] }
        }
        rowIndices += other.rowIndices
        distances += other.distances
        values += other.values
    }
}

/// A shard's k-means‖ distances kept between rounds (`DistanceCache`): for each row of the
/// shard in the rounds' sample, its exact squared distance to the nearest of the first
/// `candidates` candidates and that candidate's index (the lowest among exact ties).
public struct ShardDistances: CachedShardState {
    /// How many candidates were measured, and `KMeansParallelRoundPass.checksum` of them.
    let candidates: Int
    let checksum: UInt64
    let distances: [Double]
    let nearest: [Int32]

    public var bytes: Int { 12 * distances.count }
    public var generation: UInt64 { checksum }
}

/// k-means‖ distances kept between rounds (see `KMeansParallelRoundPass`).
public typealias DistanceCache = ShardCache<ShardDistances>

extension ShardCache where Entry == ShardDistances {
    /// 256 MiB: 12 bytes per sampled row, so 22 million sampled rows.
    public static var seedingDefault: Int { 1 << 28 }
}

/// One k-means‖ round over a shard: the cost Σ d² of its sampled rows to the nearest
/// candidate, and every sampled row with u·φ_s < ℓ·d², φ_s the shard's cost; or, for the
/// weighting pass (`weighs`), the sampled rows nearest each candidate.
///
/// The rows the rounds run on are a uniform sample, row x being in it when
/// u(seed, 0, x) < `sampling` (all rows at 1), so the sample depends on the seed only.
///
/// Candidates only grow from one round to the next, so d²(x) = min(d² to the first
/// `measured` candidates, d² to the rest), and the exact float64 minimum does not depend on
/// how the candidates are split. With `distances`, each shard's d² and nearest candidate
/// are kept there, tagged with the candidates they were measured against (count and
/// checksum); a shard whose kept distances cover exactly the previous round's candidates
/// measures only the candidates added since. Any other shard (no entry: moved, evicted, a
/// new worker) measures all of them, with the same result bit for bit: its nearest
/// candidate is the lowest index among exact ties either way, as the newer candidates only
/// replace an older one when strictly nearer.
public struct KMeansParallelRoundPass: ShardComputation {
    /// Over all the candidates.
    public let search: NearestCentreSearch
    /// Over the candidates `measured...`, if there are some and earlier ones.
    let added: NearestCentreSearch?
    /// The candidates the previous round measured (the first ones); 0 in round 1.
    public let measured: Int
    /// ℓ, the expected number of rows sampled per round.
    public let oversampling: Double
    public let seed: UInt64
    public let round: Int
    /// The fraction of the rows in the sample the rounds run on, in (0, 1].
    public let sampling: Double
    /// The weighting pass: counts the sampled rows nearest each candidate, sends no rows.
    public let weighs: Bool
    /// Where shards' distances are kept between rounds; nil measures every candidate.
    public var distances: DistanceCache?
    /// Names the rows the shards are taken from, in `distances`' keys (as
    /// `KMeansAssignmentPass.boundScope`).
    public var distanceScope = ""
    /// `checksum` of the first `measured` candidates, and of all.
    let measuredChecksum: UInt64
    let checksum: UInt64

    /// Throws `.invalidArgument` unless 0 ≤ `measured` ≤ the candidates and 0 < `sampling` ≤ 1.
    public init(candidates: Codebook, measured: Int = 0, oversampling: Double, seed: UInt64, round: Int,
                sampling: Double = 1, weighs: Bool = false, screen: NearestCentreSearch.Screen = .preferred) throws {
        guard measured >= 0, measured <= candidates.k else {
            throw ClusteringError(.invalidArgument, "k-means‖ measured candidates \(measured) outside 0…\(candidates.k)")
        }
        guard sampling > 0, sampling <= 1 else {
            throw ClusteringError(.invalidArgument, "k-means‖ sampling fraction must be in (0, 1] (got \(sampling))")
        }
        let d = candidates.dimension
        search = NearestCentreSearch(codebook: candidates, screen: screen)
        added = measured > 0 && measured < candidates.k
            ? NearestCentreSearch(codebook: try Codebook(k: candidates.k - measured, dimension: d,
                                                         centres: Array(candidates.centres[(measured * d)...])), screen: screen)
            : nil
        self.measured = measured
        self.oversampling = oversampling
        self.seed = seed
        self.round = round
        self.sampling = sampling
        self.weighs = weighs
        measuredChecksum = Self.checksum(candidates.centres[..<(measured * d)])
        checksum = Self.checksum(candidates.centres[(measured * d)...], continuing: measuredChecksum)
    }

    /// FNV-1a (64-bit) over the values' bit patterns, a 32-bit word at a time, continuing
    /// from `hash`: what a shard's kept distances were measured against.
    static func checksum(_ values: ArraySlice<Float>, continuing hash: UInt64 = 0xcbf2_9ce4_8422_2325) -> UInt64 {
        var hash = hash
        for value in values {
            hash ^= UInt64(value.bitPattern)
            hash = hash &* 0x100_0000_01b3
        }
        return hash
    }

    /// Row `row`'s uniform draw in round `round`: the first `nextUnit()` of
    /// `SeededGenerator(seed: seed, stream: round·2⁴⁸ + row)`, a pure function of the three.
    /// Round 0's draw decides the row's membership of the sample.
    public static func unit(seed: UInt64, round: Int, row: Int) -> Double {
        var generator = SeededGenerator(seed: seed, stream: UInt64(round) << 48 | UInt64(row))
        return generator.nextUnit()
    }

    /// Whether row `row` is in the sample of fraction `sampling`: u(seed, 0, row) < `sampling`.
    public static func samples(seed: UInt64, sampling: Double, row: Int) -> Bool {
        sampling >= 1 || unit(seed: seed, round: 0, row: row) < sampling
    }

    /// Whether a shard whose cost is `shardCost` sends row `row` at distance `distance`:
    /// u·φ_s < ℓ·d² (the coordinator applies the same rule with the total cost).
    public static func sends(seed: UInt64, round: Int, oversampling: Double, row: Int, distance: Double,
                             cost: Double) -> Bool {
        unit(seed: seed, round: round, row: row) * cost < oversampling * distance
    }

    public func statistics(of rows: DescriptorMatrix, shard index: Int, workspace: KernelWorkspace) throws -> KMeansParallelRoundStatistics {
        let d = search.codebook.dimension, k = search.codebook.k
        var result = KMeansParallelRoundStatistics(dimension: d, candidates: k)
        result.rows = rows.rows
        let sampled = (0..<rows.rows).filter { Self.samples(seed: seed, sampling: sampling, row: rows.firstRow + $0) }
        result.sampledRows = sampled.count
        let key = DistanceCache.Key(scope: distanceScope, firstRow: rows.firstRow, rows: rows.rows)
        var kept = distances?.take(key)
        if let entry = kept, entry.candidates != measured || entry.checksum != measuredChecksum || entry.distances.count != sampled.count {
            kept = nil
        }
        // Nearest among the candidates from `first` on, with the exact d² to it.
        var nearest = kept?.nearest ?? [Int32](repeating: 0, count: sampled.count)
        var exact = kept?.distances ?? [Double](repeating: .infinity, count: sampled.count)
        let (measuring, first) = kept == nil ? (search, 0) : (added, measured)
        if let measuring {
            try measure(rows, sampled: sampled, with: measuring, first: first, workspace: workspace,
                        nearest: &nearest, distances: &exact)
        }
        for distance in exact { result.cost += distance }
        if weighs {
            result.counts = [Int](repeating: 0, count: k)
            for candidate in nearest { result.counts[Int(candidate)] += 1 }
        } else {
            for (i, row) in sampled.enumerated()
            where Self.sends(seed: seed, round: round, oversampling: oversampling, row: rows.firstRow + row,
                             distance: exact[i], cost: result.cost) {
                try rows.checkRows(row ..< row + 1)
                result.rowIndices.append(rows.firstRow + row)
                result.distances.append(exact[i])
                result.values += try rows.row(row)
            }
        }
        if (rows.file?.size ?? 0) > RowScan.residentBudget { rows.release(0..<rows.rows) }
        distances?.keep(ShardDistances(candidates: k, checksum: checksum, distances: exact, nearest: nearest), for: key)
        return result
    }

    /// Measures the sampled rows against `search`'s candidates, which are candidates
    /// `first...` of the pass: a row whose exact d² to one of them is below `distances`'
    /// takes it (a tie keeps the earlier candidate, of lower index).
    private func measure(_ rows: DescriptorMatrix, sampled: [Int], with search: NearestCentreSearch, first: Int,
                         workspace: KernelWorkspace, nearest: inout [Int32], distances: inout [Double]) throws {
        let d = search.codebook.dimension, all = sampled.count == rows.rows
        var chosen = [Int32](repeating: 0, count: RowScan.blockRows)
        var measured = [Double](repeating: 0, count: RowScan.blockRows)
        var gathered = all ? [] : [Float](repeating: 0, count: RowScan.blockRows * d)
        var next = 0
        try RowScan.forEachBlock(rows, workspace: workspace) { block, firstRow in
            let offset = firstRow - rows.firstRow
            let start = next
            while next < sampled.count, sampled[next] < offset + block.rows { next += 1 }
            guard next > start else { return }
            let count = next - start
            try gathered.withUnsafeMutableBufferPointer { copies in
                let measuredRows: FloatRows
                if all {
                    measuredRows = block
                } else {
                    for slot in 0..<count {
                        (copies.baseAddress! + slot * d).update(from: block.row(sampled[start + slot] - offset), count: d)
                    }
                    measuredRows = FloatRows(base: copies.baseAddress!, rows: count, dimension: d, stride: d)
                }
                try chosen.withUnsafeMutableBufferPointer { chosen in
                    try measured.withUnsafeMutableBufferPointer { measured in
                        try search.assign(measuredRows, firstRow: firstRow, source: rows.source, workspace: workspace,
                                          assignments: chosen.baseAddress!, distances: measured.baseAddress!)
                    }
                }
            }
            for slot in 0..<count where measured[slot] < distances[start + slot] {
                distances[start + slot] = measured[slot]
                nearest[start + slot] = Int32(first) + chosen[slot]
            }
        }
    }
}
