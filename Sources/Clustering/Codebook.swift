import Descriptors

/// A k-means codebook: K centres in D dimensions, row-major float32 (K×D).
public struct Codebook: Sendable, Equatable {
    public let k: Int
    public let dimension: Int
    /// Centre `i` occupies `centres[i*dimension ..< (i+1)*dimension]`.
    public var centres: [Float]

    /// Validates shapes and values: K ≥ 1, D ≥ 1, K·D values, all finite.
    public init(k: Int, dimension: Int, centres: [Float]) throws {
        guard k >= 1, dimension >= 1 else {
            throw ClusteringError(.invalidArgument, "a codebook needs k ≥ 1 and dimension ≥ 1 (got k=\(k), D=\(dimension))")
        }
        guard centres.count == k * dimension else {
            throw ClusteringError(.dimensionMismatch,
                                  "expected k×D = \(k)×\(dimension) = \(k * dimension) centre values, got \(centres.count)")
        }
        if let bad = centres.firstIndex(where: { !$0.isFinite }) {
            throw ClusteringError(.nonFinite, "centre \(bad / dimension) has a NaN or infinite value")
        }
        self.k = k
        self.dimension = dimension
        self.centres = centres
    }

    /// Centre `i` as an array.
    public func centre(_ i: Int) -> ArraySlice<Float> { centres[i * dimension ..< (i + 1) * dimension] }
}

/// A Gaussian mixture with diagonal covariances: means and variances (K×D, row-major,
/// variances σ², never standard deviations) and priors (K), all float32.
public struct GaussianMixtureModel: Sendable, Equatable {
    public let k: Int
    public let dimension: Int
    public var means: [Float]
    public var variances: [Float]
    public var priors: [Float]

    /// Validates shapes and values: finite, variances > 0, priors ≥ 0 with a positive sum.
    /// Priors are used as given (not renormalised).
    public init(k: Int, dimension: Int, means: [Float], variances: [Float], priors: [Float]) throws {
        guard k >= 1, dimension >= 1 else {
            throw ClusteringError(.invalidArgument, "a GMM needs k ≥ 1 and dimension ≥ 1 (got k=\(k), D=\(dimension))")
        }
        for (name, array, expected) in [("means", means, k * dimension), ("variances", variances, k * dimension),
                                         ("priors", priors, k)] where array.count != expected {
            throw ClusteringError(.dimensionMismatch, "expected \(expected) \(name) values for k=\(k), D=\(dimension), got \(array.count)")
        }
        if let bad = means.firstIndex(where: { !$0.isFinite }) {
            throw ClusteringError(.nonFinite, "mean of component \(bad / dimension) has a NaN or infinite value")
        }
        if let bad = variances.firstIndex(where: { !($0.isFinite && $0 > 0) }) {
            throw ClusteringError(.invalidArgument,
                                  "variance of component \(bad / dimension), dimension \(bad % dimension) is \(variances[bad]); variances must be finite and > 0")
        }
        if let bad = priors.firstIndex(where: { !($0.isFinite && $0 >= 0) }) {
            throw ClusteringError(.invalidArgument, "prior of component \(bad) is \(priors[bad]); priors must be finite and ≥ 0")
        }
        guard priors.reduce(0, +) > 0 else {
            throw ClusteringError(.invalidArgument, "the priors sum to 0")
        }
        self.k = k
        self.dimension = dimension
        self.means = means
        self.variances = variances
        self.priors = priors
    }
}

extension GaussianMixtureModel {
    /// How far from 1 a normalised model's priors may sum: float32 rounding of K priors is
    /// far below it for any K the engine trains.
    public static let priorSumTolerance = 1e-3

    /// Throws unless the priors sum to 1 within `priorSumTolerance` (summed in float64), as
    /// every trained model's do; an imported model must be normalised too.
    public func checkPriorsNormalised() throws {
        let sum = priors.reduce(0.0) { $0 + Double($1) }
        guard abs(sum - 1) <= Self.priorSumTolerance else {
            throw ClusteringError(.invalidArgument, "the priors sum to \(sum); they must sum to 1 (within \(Self.priorSumTolerance))")
        }
    }

    /// The model from its values in one array: means (K·D), then variances (K·D), then priors (K).
    public init(k: Int, dimension: Int, concatenated values: [Float]) throws {
        let kd = k * dimension
        guard k >= 1, dimension >= 1, values.count == 2 * kd + k else {
            throw ClusteringError(.dimensionMismatch,
                                  "\(values.count) values for a GMM of k=\(k), D=\(dimension) (expected \(2 * max(kd, 0) + max(k, 0)))")
        }
        try self.init(k: k, dimension: dimension, means: Array(values[0..<kd]), variances: Array(values[kd ..< 2 * kd]),
                      priors: Array(values[(2 * kd)...]))
    }

    /// Means, then variances, then priors, in one array.
    public var concatenated: [Float] { means + variances + priors }
}
