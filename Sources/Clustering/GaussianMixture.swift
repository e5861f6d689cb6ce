import Descriptors
import Foundation
import Logging

/// How EM chooses its first model.
public enum GaussianMixtureInitialization: Sendable, Equatable {
    /// Run k-means (same backend, seed and sample), then take each cluster's mean,
    /// per-dimension variance (floored) and share of rows, as VLFeat does.
    case kmeans(iterations: Int)
    /// K rows of a seeded sample as means, the data's variance for every component,
    /// equal priors.
    case random
    /// This model.
    case given(GaussianMixtureModel)
}

/// Parameters of an EM run; every default comes with its reason.
public struct GaussianMixtureParameters: Sendable {
    public var k: Int
    /// EM iterations at most.
    public var iterations: Int = 25
    /// Stop when the log-likelihood rises by less than this fraction of its magnitude;
    /// 0 runs every iteration.
    public var tolerance: Double = 1e-6
    public var initialization: GaussianMixtureInitialization = .kmeans(iterations: 10)
    /// With `.kmeans` initialisation: how k-means is seeded (`.kmeansPlusPlus` or `.kmeansParallel`).
    public var kmeansSeeding: KMeansInitialization = .kmeansPlusPlus
    public var seed: UInt64 = 0
    /// The variance floor as a fraction of the data's largest per-dimension variance.
    /// A floor relative to the data keeps it meaningful in any unit (VLFeat's absolute
    /// 1e-4 is huge for unit-normalised descriptors and nothing for raw SIFT); without one,
    /// a component that settles on a few identical rows has a likelihood that grows
    /// without bound.
    public var varianceFloorRatio: Double = 1e-4

    public init(k: Int) { self.k = k }
}

/// What one EM iteration did.
public struct GaussianMixtureIterationReport: Sendable, Equatable, Codable {
    public let iteration: Int
    /// Σ log p(x) over all rows, for the model this iteration started with.
    public let logLikelihood: Double
    public let rows: Int
    public let seconds: Double
    /// Of `seconds`, the time spent in the M-step.
    public let updateSeconds: Double
    /// Components with no mass that were re-seeded by splitting the heaviest one.
    public let emptyComponentsRepaired: Int
    public let smallestPrior: Double
    public let largestPrior: Double

    /// The log-likelihood per row, the figure reported to users.
    public var meanLogLikelihood: Double { rows > 0 ? logLikelihood / Double(rows) : 0 }
}

/// Where an EM run stands: enough to resume it and end with the same model, bit for bit,
/// as a run that was never interrupted.
public enum GaussianMixtureCheckpoint: Sendable, Equatable {
    /// In the k-means initialisation (after the moments pass that set the floor).
    case initializing(varianceFloor: Double, dataVariances: [Double], kmeans: KMeansCheckpoint)
    /// In EM: the model after the completed iterations.
    case expectationMaximization(varianceFloor: Double, model: GaussianMixtureModel,
                                 reports: [GaussianMixtureIterationReport], converged: Bool)
}

/// The outcome of an EM run.
public struct GaussianMixtureResult: Sendable {
    public let model: GaussianMixtureModel
    public let iterations: [GaussianMixtureIterationReport]
    public let converged: Bool
    /// The variance floor that was applied.
    public let varianceFloor: Double
}

/// EM for a Gaussian mixture with diagonal covariances over any `StatisticsBackend`.
///
/// E-step: posteriors in the log domain (see `GaussianPosteriors`), float64 moments merged
/// in shard order. M-step: π_k = Σq/N, μ_k = Σq·x/Σq, σ²_k = max(Σq·x²/Σq − μ², floor).
/// A component that receives no mass is re-seeded by splitting the heaviest one (half its
/// prior each, the new mean offset by half a standard deviation in a seeded direction).
public enum GaussianMixture {
    /// - Parameters:
    ///   - resumingFrom: continue a run from its last checkpoint.
    ///   - checkpoint: called after every k-means and EM iteration with the state to resume from.
    public static func train(on backend: some StatisticsBackend, parameters: GaussianMixtureParameters,
                             resumingFrom start: GaussianMixtureCheckpoint? = nil,
                             logger: Logger = Logger(label: "codebook.gmm", factory: { _ in SwiftLogNoOpLogHandler() }),
                             checkpoint: (GaussianMixtureCheckpoint) async throws -> Void = { _ in },
                             kmeansProgress: (KMeansIterationReport) -> Void = { _ in },
                             seedingProgress: (KMeansParallel.RoundReport) -> Void = { _ in },
                             progress: (GaussianMixtureIterationReport) -> Void = { _ in }) async throws -> GaussianMixtureResult {
        let k = parameters.k, d = backend.dimension
        guard k >= 1, k <= backend.rows else {
            throw ClusteringError(.invalidArgument, "k=\(k) but only \(backend.rows) training rows")
        }
        guard parameters.iterations >= 1, parameters.tolerance >= 0, parameters.tolerance.isFinite,
              parameters.varianceFloorRatio > 0, parameters.varianceFloorRatio.isFinite else {
            throw ClusteringError(.invalidArgument, "iterations must be ≥ 1, tolerance finite and ≥ 0 and the variance floor ratio finite and > 0")
        }
        let floor: Double
        var model: GaussianMixtureModel
        var reports: [GaussianMixtureIterationReport] = []
        var converged = false
        switch start {
        case .expectationMaximization(let savedFloor, let savedModel, let savedReports, let savedConverged):
            (floor, model, reports, converged) = (savedFloor, savedModel, savedReports, savedConverged)
        case .initializing(let savedFloor, let dataVariances, let kmeans):
            floor = savedFloor
            model = try await initialModel(backend: backend, parameters: parameters, dataVariances: dataVariances, floor: floor,
                                           resumingKMeans: kmeans, checkpoint: checkpoint, kmeansProgress: kmeansProgress,
                                           seedingProgress: seedingProgress)
        case nil:
            let dataVariances = try await backend.run(MomentPass(dimension: d)).variances
            floor = max(parameters.varianceFloorRatio * (dataVariances.max() ?? 0), minimumVarianceFloor)
            model = try await initialModel(backend: backend, parameters: parameters, dataVariances: dataVariances, floor: floor,
                                           resumingKMeans: nil, checkpoint: checkpoint, kmeansProgress: kmeansProgress,
                                           seedingProgress: seedingProgress)
        }
        if case .expectationMaximization = start {} else {
            try await checkpoint(.expectationMaximization(varianceFloor: floor, model: model, reports: [], converged: false))
        }
        for iteration in reports.count ..< (converged ? reports.count : parameters.iterations) {
            let started = ContinuousClock.now
            let statistics = try await backend.run(try GaussianMixtureExpectationPass(model: model))
            let repaired: Int
            let updateStarted = ContinuousClock.now
            (model, repaired) = try maximise(statistics, previous: model, floor: floor, seed: parameters.seed,
                                             iteration: iteration)
            let report = GaussianMixtureIterationReport(
                iteration: iteration, logLikelihood: statistics.logLikelihood, rows: statistics.rows,
                seconds: (ContinuousClock.now - started).seconds, updateSeconds: (ContinuousClock.now - updateStarted).seconds,
                emptyComponentsRepaired: repaired,
                smallestPrior: Double(model.priors.min() ?? 0), largestPrior: Double(model.priors.max() ?? 0))
            logger.debug("EM iteration", metadata: ["iteration": "\(iteration)", "logLikelihood": "\(statistics.logLikelihood)"])
            progress(report)
            let previous = reports.last?.logLikelihood
            reports.append(report)
            if let previous, parameters.tolerance > 0,
               statistics.logLikelihood - previous <= parameters.tolerance * abs(statistics.logLikelihood) {
                converged = true
            }
            try await checkpoint(.expectationMaximization(varianceFloor: floor, model: model, reports: reports,
                                                          converged: converged))
            if converged { break }
        }
        return GaussianMixtureResult(model: model, iterations: reports, converged: converged, varianceFloor: floor)
    }

    /// The floor when the data has no variance at all (every row identical).
    public static let minimumVarianceFloor = 1e-10

    static func initialModel(backend: some StatisticsBackend, parameters: GaussianMixtureParameters,
                             dataVariances: [Double], floor: Double, resumingKMeans: KMeansCheckpoint?,
                             checkpoint: (GaussianMixtureCheckpoint) async throws -> Void,
                             kmeansProgress: (KMeansIterationReport) -> Void,
                             seedingProgress: (KMeansParallel.RoundReport) -> Void) async throws -> GaussianMixtureModel {
        let k = parameters.k, d = backend.dimension
        let flooredData = dataVariances.map { Float(max($0, floor)) }
        switch parameters.initialization {
        case .given(let model):
            guard model.k == k, model.dimension == d else {
                throw ClusteringError(.dimensionMismatch,
                                      "initial GMM is \(model.k)×\(model.dimension) but k=\(k) and the corpus has dimension \(d)")
            }
            return model
        case .random:
            let sample = try await backend.run(RowSamplePass(sampleSize: k, totalRows: backend.rows, seed: parameters.seed))
            return try GaussianMixtureModel(k: k, dimension: d, means: sample.values,
                                            variances: Array((0..<k).map { _ in flooredData }.joined()),
                                            priors: [Float](repeating: 1 / Float(k), count: k))
        case .kmeans(let iterations):
            var kmeansParameters = KMeansParameters(k: k)
            kmeansParameters.iterations = max(1, iterations)
            kmeansParameters.seed = parameters.seed
            kmeansParameters.initialization = parameters.kmeansSeeding
            let kmeans = try await KMeans.train(on: backend, parameters: kmeansParameters, resumingFrom: resumingKMeans,
                                                checkpoint: { state in
                                                    try await checkpoint(.initializing(varianceFloor: floor,
                                                                                       dataVariances: dataVariances,
                                                                                       kmeans: state))
                                                }, progress: kmeansProgress, seedingProgress: seedingProgress)
            let hard = try await backend.run(KMeansAssignmentPass(codebook: kmeans.codebook, withSquares: true))
            return try model(fromHardAssignments: hard, centres: kmeans.codebook, varianceFloor: floor,
                             emptyClusterVariances: flooredData)
        }
    }

    /// A GMM from a hard k-means assignment (a pass `withSquares`): each cluster's mean,
    /// per-dimension variance (floored) and share of rows. An empty cluster keeps its centre
    /// and `emptyClusterVariances`, with prior 0.
    public static func model(fromHardAssignments hard: KMeansStatistics, centres: Codebook, varianceFloor floor: Double,
                             emptyClusterVariances: [Float]) throws -> GaussianMixtureModel {
        let k = centres.k, d = centres.dimension
        guard let squares = hard.sumsOfSquares, hard.k == k, hard.dimension == d, emptyClusterVariances.count == d else {
            throw ClusteringError(.invalidArgument, "hard-assignment statistics with sums of squares for k=\(k), D=\(d) are needed")
        }
        var means = centres.centres
        var variances = Array((0..<k).map { _ in emptyClusterVariances }.joined())
        var priors = [Float](repeating: 0, count: k)
        for c in 0..<k where hard.counts[c] > 0 {
            let n = Double(hard.counts[c])
            priors[c] = Float(n / Double(hard.rows))
            for j in 0..<d {
                let mean = hard.sums[c * d + j] / n
                means[c * d + j] = Float(mean)
                variances[c * d + j] = Float(max(squares[c * d + j] / n - mean * mean, floor))
            }
        }
        return try GaussianMixtureModel(k: k, dimension: d, means: means, variances: variances, priors: priors)
    }

    /// The M-step. Returns the new model and the number of components re-seeded.
    static func maximise(_ statistics: GaussianMixtureStatistics, previous: GaussianMixtureModel, floor: Double,
                         seed: UInt64, iteration: Int) throws -> (GaussianMixtureModel, Int) {
        let k = statistics.k, d = statistics.dimension
        var means = previous.means, variances = previous.variances
        var priors = [Float](repeating: 0, count: k)
        let total = statistics.mass.reduce(0, +)
        for c in 0..<k where statistics.mass[c] > 0 {
            let mass = statistics.mass[c]
            priors[c] = Float(mass / total)
            for j in 0..<d {
                let mean = statistics.firstMoments[c * d + j] / mass
                means[c * d + j] = Float(mean)
                variances[c * d + j] = Float(max(statistics.secondMoments[c * d + j] / mass - mean * mean, floor))
            }
        }
        var repaired = 0
        for c in 0..<k where priors[c] == 0 {
            var heavy = 0
            for i in 1..<k where priors[i] > priors[heavy] { heavy = i }
            var generator = SeededGenerator(seed: seed, stream: 0x474D_4D00 ^ (UInt64(iteration) << 32 | UInt64(c)))
            for j in 0..<d {
                let sigma = Double(variances[heavy * d + j]).squareRoot()
                means[c * d + j] = Float(Double(means[heavy * d + j]) + 0.5 * sigma * generator.nextGaussian())
                variances[c * d + j] = variances[heavy * d + j]
            }
            priors[heavy] /= 2
            priors[c] = priors[heavy]
            repaired += 1
        }
        return (try GaussianMixtureModel(k: k, dimension: d, means: means, variances: variances, priors: priors), repaired)
    }
}
