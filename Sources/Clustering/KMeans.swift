import Descriptors
import Foundation
import Logging

/// How k-means chooses its first centres.
public enum KMeansInitialization: Sendable, Equatable {
    /// K distinct rows of a seeded sample drawn across the corpus.
    case random
    /// k-means++ (D² sampling, Arthur & Vassilvitskii 2007) on a seeded sample drawn
    /// across the corpus, so it works when the corpus is far larger than memory.
    case kmeansPlusPlus
    /// k-means‖ (Bahmani et al. 2012): a few sampling passes over every shard, then weighted
    /// k-means++ over the candidates (see `KMeansParallel`).
    case kmeansParallel
    /// These centres.
    case given(Codebook)
}

/// Parameters of a k-means run; every default comes with its reason.
public struct KMeansParameters: Sendable {
    public var k: Int
    /// Lloyd iterations at most. 25 is faiss's default: codebooks for VLAD gain little after.
    public var iterations: Int = 25
    /// Stop when the objective falls by less than this fraction in an iteration; 0 runs
    /// every iteration.
    public var tolerance: Double = 1e-4
    public var initialization: KMeansInitialization = .kmeansPlusPlus
    public var seed: UInt64 = 0
    /// Rows sampled for initialisation; nil: max(64·k, 10,000), as many as the corpus has
    /// at most. faiss samples up to 256·k for training; 64·k is plenty for seeding.
    public var sampleSize: Int?
    /// k-means‖: sampling rounds. 5, as Bahmani et al. found enough with ℓ = 2K.
    public var seedingRounds: Int = 5
    /// k-means‖: ℓ/K, the rows sampled per round per centre. Bahmani et al. use 2; 0.5
    /// gives 4× fewer candidates to reduce, and on 1M real SIFT rows at K = 4096 seeded 2.5×
    /// faster than 2 (with 16·K rows) at a lower objective after Lloyd (codebook-bench seeding).
    public var seedingOversampling: Double = 0.5
    /// k-means‖: the rounds run on a uniform seeded sample of this many rows per centre
    /// (nil: on every row). 32: at K = 4096 on 1M real SIFT rows the whole seeding then
    /// took 0.86–0.93 of a Lloyd iteration (64: 1.2–1.3), and the objective after 25
    /// iterations was still 0.2 % below k-means++'s (mean of 3 seeds; codebook-bench seeding).
    public var seedingSample: Int? = 32

    public init(k: Int) { self.k = k }
}

/// What one iteration did.
public struct KMeansIterationReport: Sendable, Equatable, Codable {
    public let iteration: Int
    /// Σ‖x − c‖² over all rows, for the centres this iteration started with.
    public let objective: Double
    public let rows: Int
    public let seconds: Double
    /// Of `seconds`, the time spent computing the new centres from the merged statistics.
    public let updateSeconds: Double
    /// Empty clusters that were re-seeded by splitting the largest one.
    public let emptyClustersRepaired: Int
    public let smallestCluster: Int
    public let largestCluster: Int
    /// Rows whose distances were not computed because their bounds proved they keep their
    /// centre (nil in records written before pruning existed).
    public let skippedRows: Int?
    /// Of the rows × K distances, how many were not computed (nil as above).
    public let skippedPairs: Int?

    /// The objective per row (mean squared distance to the nearest centre).
    public var meanObjective: Double { rows > 0 ? objective / Double(rows) : 0 }

    /// The fraction of rows skipped (0 when none or unknown).
    public var skippedFraction: Double { rows > 0 ? Double(skippedRows ?? 0) / Double(rows) : 0 }

    /// The fraction of the rows × `k` distances skipped (0 when none or unknown).
    public func skippedPairFraction(k: Int) -> Double { rows > 0 && k > 0 ? Double(skippedPairs ?? 0) / (Double(rows) * Double(k)) : 0 }
}

/// Where a k-means run stands after an iteration: enough to resume it and end with the
/// same centres, bit for bit, as a run that was never interrupted.
public struct KMeansCheckpoint: Sendable, Equatable {
    /// The centres after the last completed iteration.
    public var codebook: Codebook
    /// The completed iterations.
    public var reports: [KMeansIterationReport]
    /// Whether the tolerance already stopped the run.
    public var converged: Bool

    public init(codebook: Codebook, reports: [KMeansIterationReport], converged: Bool) {
        self.codebook = codebook
        self.reports = reports
        self.converged = converged
    }
}

/// The outcome of a k-means run.
public struct KMeansResult: Sendable {
    public let codebook: Codebook
    public let iterations: [KMeansIterationReport]
    /// Whether the tolerance stopped the run before the iteration limit.
    public let converged: Bool
}

/// Lloyd's k-means over any `StatisticsBackend`.
///
/// Each iteration assigns every row to its nearest centre (exactly, see
/// `NearestCentreSearch`), merges the per-shard sums in shard order, and moves each centre
/// to the mean of its rows. An empty cluster is re-seeded next to the largest cluster's
/// centre, c_big + δ with δ a seeded Gaussian direction of length 0.1·(the cluster's RMS
/// radius); c_big itself stays, so the objective cannot increase: the rows nearer c_big + δ
/// move over at the next assignment (faiss splits the same cluster, perturbing both).
public enum KMeans {
    /// The fraction of the largest cluster's RMS radius by which a re-seeded centre is offset.
    public static let splitOffset = 0.1

    /// - Parameters:
    ///   - resumingFrom: continue a run from its last checkpoint instead of initialising.
    ///   - checkpoint: called after every iteration with the state to resume from.
    public static func train(on backend: some StatisticsBackend, parameters: KMeansParameters,
                             resumingFrom start: KMeansCheckpoint? = nil,
                             logger: Logger = Logger(label: "codebook.kmeans", factory: { _ in SwiftLogNoOpLogHandler() }),
                             checkpoint: (KMeansCheckpoint) async throws -> Void = { _ in },
                             progress: (KMeansIterationReport) -> Void = { _ in },
                             seedingProgress: (KMeansParallel.RoundReport) -> Void = { _ in }) async throws -> KMeansResult {
        try validate(parameters, backend: backend)
        var codebook: Codebook
        if let start {
            codebook = start.codebook
        } else {
            codebook = try await initialCodebook(backend: backend, parameters: parameters, progress: seedingProgress)
        }
        var reports = start?.reports ?? []
        var converged = start?.converged ?? false
        for iteration in reports.count ..< (converged ? reports.count : parameters.iterations) {
            let started = ContinuousClock.now
            var pass = KMeansAssignmentPass(codebook: codebook)
            pass.bounds = backend.assignmentBounds
            let statistics = try await backend.run(pass)
            let objective = statistics.objective
            let repaired: Int
            let updateStarted = ContinuousClock.now
            (codebook, repaired) = try update(codebook, from: statistics, seed: parameters.seed, iteration: iteration)
            let report = KMeansIterationReport(iteration: iteration, objective: objective, rows: statistics.rows,
                                               seconds: (ContinuousClock.now - started).seconds,
                                               updateSeconds: (ContinuousClock.now - updateStarted).seconds,
                                               emptyClustersRepaired: repaired,
                                               smallestCluster: statistics.counts.min() ?? 0,
                                               largestCluster: statistics.counts.max() ?? 0,
                                               skippedRows: statistics.skippedRows, skippedPairs: statistics.skippedPairs)
            logger.debug("k-means iteration", metadata: ["iteration": "\(iteration)", "objective": "\(objective)"])
            progress(report)
            if let previous = reports.last?.objective, parameters.tolerance > 0,
               previous - objective <= parameters.tolerance * objective {
                converged = true
            }
            reports.append(report)
            try await checkpoint(KMeansCheckpoint(codebook: codebook, reports: reports, converged: converged))
            if converged { break }
        }
        return KMeansResult(codebook: codebook, iterations: reports, converged: converged)
    }

    static func validate(_ parameters: KMeansParameters, backend: some StatisticsBackend) throws {
        guard parameters.k >= 1 else {
            throw ClusteringError(.invalidArgument, "k must be at least 1 (got \(parameters.k))")
        }
        guard parameters.k <= backend.rows else {
            throw ClusteringError(.invalidArgument, "k=\(parameters.k) but only \(backend.rows) training rows")
        }
        guard parameters.iterations >= 1 else {
            throw ClusteringError(.invalidArgument, "iterations must be at least 1 (got \(parameters.iterations))")
        }
        guard parameters.tolerance >= 0, parameters.tolerance.isFinite else {
            throw ClusteringError(.invalidArgument, "tolerance must be ≥ 0 (got \(parameters.tolerance))")
        }
        if case .given(let codebook) = parameters.initialization {
            guard codebook.k == parameters.k, codebook.dimension == backend.dimension else {
                throw ClusteringError(.dimensionMismatch,
                                      "initial centres are \(codebook.k)×\(codebook.dimension) but k=\(parameters.k) and the corpus has dimension \(backend.dimension)")
            }
        }
    }

    /// The centres `parameters.initialization` starts from (`progress` hears k-means‖'s rounds).
    public static func initialCodebook(backend: some StatisticsBackend, parameters: KMeansParameters,
                                       progress: (KMeansParallel.RoundReport) -> Void = { _ in }) async throws -> Codebook {
        let k = parameters.k, d = backend.dimension
        switch parameters.initialization {
        case .given(let codebook):
            return codebook
        case .random:
            let sample = try await backend.run(RowSamplePass(sampleSize: k, totalRows: backend.rows, seed: parameters.seed))
            return try Codebook(k: k, dimension: d, centres: sample.values)
        case .kmeansPlusPlus:
            let size = parameters.sampleSize ?? max(64 * k, 10_000)
            let sample = try await backend.run(RowSamplePass(sampleSize: size, totalRows: backend.rows, seed: parameters.seed))
            return try plusPlus(sample: sample, k: k, seed: parameters.seed)
        case .kmeansParallel:
            return try await KMeansParallel.seed(backend: backend, k: k, seed: parameters.seed, rounds: parameters.seedingRounds,
                                                 oversampling: parameters.seedingOversampling,
                                                 sampling: KMeansParallel.sampling(perCentre: parameters.seedingSample, k: k,
                                                                                   rows: backend.rows),
                                                 progress: progress)
        }
    }

    /// k-means++ seeding on an in-memory sample (of one row at least).
    static func plusPlus(sample: RowSample, k: Int, seed: UInt64) throws -> Codebook {
        let d = sample.dimension, n = sample.count
        // The draws below are taken modulo n, and the rows read as n×d values.
        guard n >= 1, d >= 1, sample.values.count / d == n, sample.values.count % d == 0 else {
            throw ClusteringError(.invalidArgument, "k-means++ needs a sample of at least one row of \(d) values "
                                  + "(got \(n) rows, \(sample.values.count) values)")
        }
        var generator = SeededGenerator(seed: seed, stream: 0x6B6D_2B2B)
        var centres = [Float]()
        centres.reserveCapacity(k * d)
        var nearest = [Double](repeating: .infinity, count: n)
        var chosen = Int(generator.next() % UInt64(n))
        sample.values.withUnsafeBufferPointer { values in
            let x = values.baseAddress!
            for c in 0..<k {
                centres.append(contentsOf: UnsafeBufferPointer(start: x + chosen * d, count: d))
                guard c + 1 < k else { break }
                var total = 0.0
                for i in 0..<n {
                    nearest[i] = min(nearest[i], VectorMath.squaredDistance(x + i * d, x + chosen * d, d))
                    total += nearest[i]
                }
                if total > 0 {
                    chosen = draw(nearest, total: total, generator: &generator)
                } else {
                    chosen = Int(generator.next() % UInt64(n))
                }
            }
        }
        return try Codebook(k: k, dimension: d, centres: centres)
    }

    /// An index drawn with probability weights[i] / total, `total` being Σ weights > 0: the
    /// first weight > 0 at which u·total less the weights so far falls below 0 (u =
    /// `nextUnit()`), or the last index if rounding leaves none.
    static func draw(_ weights: [Double], total: Double, generator: inout SeededGenerator) -> Int {
        var target = generator.nextUnit() * total
        for i in weights.indices {
            target -= weights[i]
            if target < 0 && weights[i] > 0 { return i }
        }
        return weights.count - 1
    }

    /// New centres from an assignment pass: the means of their rows, empty clusters
    /// re-seeded by splitting. Returns the codebook and the number of clusters re-seeded.
    static func update(_ codebook: Codebook, from statistics: KMeansStatistics, seed: UInt64,
                       iteration: Int) throws -> (Codebook, Int) {
        let k = codebook.k, d = codebook.dimension
        var centres = codebook.centres
        var weight = statistics.counts.map(Double.init)
        for c in 0..<k where statistics.counts[c] > 0 {
            let n = Double(statistics.counts[c])
            for j in 0..<d { centres[c * d + j] = Float(statistics.sums[c * d + j] / n) }
        }
        var repaired = 0
        for c in 0..<k where statistics.counts[c] == 0 {
            var big = 0
            for i in 1..<k where weight[i] > weight[big] { big = i }
            let count = Double(max(statistics.counts[big], 1))
            let radius = (statistics.clusterObjective[big] / count).squareRoot()
            var generator = SeededGenerator(seed: seed, stream: UInt64(iteration) << 32 | UInt64(c))
            let direction = (0..<d).map { _ in generator.nextGaussian() }
            let length = direction.reduce(0) { $0 + $1 * $1 }.squareRoot()
            let scale = radius > 0 ? splitOffset * radius / length : 0
            for j in 0..<d {
                let base = centres[big * d + j]
                // A cluster of identical rows has radius 0: offset by a few float32 steps.
                let offset = scale > 0 ? direction[j] * scale : Double(base.ulp) * 4
                centres[c * d + j] = Float(Double(base) + offset)
            }
            weight[big] /= 2
            weight[c] = weight[big]
            repaired += 1
        }
        return (try Codebook(k: k, dimension: d, centres: centres), repaired)
    }
}
