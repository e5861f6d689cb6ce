import Descriptors

/// Sufficient statistics of one EM expectation pass, in float64: per component the mass
/// Σq, the first moments Σq·x and second moments Σq·x² (K×D each), and the
/// log-likelihood Σ log p(x) of the model that made the pass.
public struct GaussianMixtureStatistics: SufficientStatistics, Equatable {
    public let k: Int
    public let dimension: Int
    public var rows: Int
    public var logLikelihood: Double
    public var mass: [Double]
    public var firstMoments: [Double]
    public var secondMoments: [Double]

    public init(k: Int, dimension: Int) {
        self.k = k
        self.dimension = dimension
        rows = 0
        logLikelihood = 0
        mass = [Double](repeating: 0, count: k)
        firstMoments = [Double](repeating: 0, count: k * dimension)
        secondMoments = firstMoments
    }

    public mutating func merge(_ other: GaussianMixtureStatistics) {
        precondition(other.k == k && other.dimension == dimension, "merging statistics of different shapes")
        rows += other.rows
        logLikelihood += other.logLikelihood
        for i in 0..<k { mass[i] += other.mass[i] }
        for i in firstMoments.indices {
            firstMoments[i] += other.firstMoments[i]
            secondMoments[i] += other.secondMoments[i]
        }
    }
}

/// The EM expectation pass: posteriors of every row (see `GaussianPosteriors`) and the
/// weighted moments they give.
public struct GaussianMixtureExpectationPass: ShardComputation {
    /// ln 10⁶ (the float64 nearest): a component is kept when its weight relative to the row's
    /// best is ≥ 10⁻⁶, so every posterior dropped is below 10⁻⁶, the Fisher encoder's
    /// threshold for its terms. Against the float64 softmax over all components, each kept q is
    /// too large by a factor of at most 1 + (K − 1)·10⁻⁶ (so off by at most (K − 1)·10⁻⁶),
    /// and each row's log-likelihood too small by at most (K − 1)·10⁻⁶ nats.
    public static let logPosteriorCutoff = 13.815510557964274

    public let posteriors: GaussianPosteriors

    public init(model: GaussianMixtureModel) throws {
        posteriors = try GaussianPosteriors(model: model, logPosteriorCutoff: Self.logPosteriorCutoff)
    }

    public func statistics(of rows: DescriptorMatrix, shard index: Int,
                           workspace: KernelWorkspace) throws -> GaussianMixtureStatistics {
        let k = posteriors.model.k, d = posteriors.model.dimension
        var statistics = GaussianMixtureStatistics(k: k, dimension: d)
        statistics.rows = rows.rows
        var logLikelihood = 0.0
        try RowScan.forEachBlock(rows, workspace: workspace) { block, firstRow in
            try statistics.mass.withUnsafeMutableBufferPointer { mass in
                try statistics.firstMoments.withUnsafeMutableBufferPointer { first in
                    try statistics.secondMoments.withUnsafeMutableBufferPointer { second in
                        try posteriors.forEachBlock(block, firstRow: firstRow, source: rows.source, workspace: workspace) { _, terms in
                            for i in 0..<terms.rows.rows { logLikelihood += terms.logLikelihoods[i] }
                            workspace.posteriors.accumulateMoments(of: terms.rows, k: k, mass: mass.baseAddress!,
                                                                   first: first.baseAddress!, second: second.baseAddress!)
                        }
                    }
                }
            }
        }
        statistics.logLikelihood = logLikelihood
        return statistics
    }
}
