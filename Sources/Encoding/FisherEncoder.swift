import Clustering
import Descriptors

/// Fisher vector options, with VLFeat's flag values (`VL_FISHER_FLAG_*`) as raw values.
public struct FisherOptions: OptionSet, Sendable, Hashable {
    public let rawValue: Int
    public init(rawValue: Int) { self.rawValue = rawValue }

    /// Signed square root of every value.
    public static let squareRoot = FisherOptions(rawValue: 0x1)
    /// Global L2 normalisation.
    public static let normalized = FisherOptions(rawValue: 0x2)
    /// The improved Fisher vector (Perronnin et al. 2010): square root, then L2.
    public static let improved: FisherOptions = [.squareRoot, .normalized]
    /// Hard assignment: each row's posteriors become one-hot at its most likely component.
    public static let fast = FisherOptions(rawValue: 0x4)
}

extension FisherOptions: NamedOptions {
    public static let named: [(name: String, option: FisherOptions)] = [
        ("squareRoot", .squareRoot), ("normalized", .normalized), ("fast", .fast),
    ]
}

/// The Fisher vector of a diagonal GMM, equal to VLFeat 0.9.21's `vl_fisher_encode`.
///
/// With posteriors q_ik (see `GaussianPosteriors`; components with π_k < 1e−6 get q = 0)
/// and z = (x_i − μ_k)/σ_k, over the terms with q_ik ≥ 1e−6:
///
///     u_k = Σ_i q_ik · z          / (N·√π_k)
///     v_k = Σ_i q_ik · (z² − 1)   / (N·√(2π_k))
///
/// N counts every row of the image. Both sums come from float64 moments per component,
/// Σq, Σq·x and Σq·x² (`cb_gmm_accumulate`, one pass over each kept term), as
/// Σq·z = (Σq·x − μ·Σq)/σ and Σq·(z² − 1) = Σq·(x − μ)²/σ² − Σq. Then the signed square root (.squareRoot) and global
/// L2 normalisation (.normalized), in that order. Layout: 2·K·D values, all mean blocks
/// first (u_k at k·D), then all variance blocks (v_k at K·D + k·D).
public struct FisherEncoder: VectorEncoder {
    /// Posteriors below this are skipped (VLFeat skips them too).
    public static let minimumPosterior = 1e-6
    /// Components with a smaller prior are left out (VLFeat: π < 1e−6, compared in float64).
    public static let minimumPrior = 1e-6
    /// ℓ_best − ℓ_k beyond which a posterior is 0 before the terms are chosen: e^−30 ≈ 1e−13,
    /// below the resolution of any sum of posteriors (see `GaussianPosteriors`).
    public static let logPosteriorCutoff = 30.0

    public let posteriors: GaussianPosteriors
    public let options: FisherOptions
    private let means: [Double]
    private let inverseSigmas: [Double]

    public init(model: GaussianMixtureModel, options: FisherOptions = []) throws {
        posteriors = try GaussianPosteriors(model: model, logPosteriorCutoff: Self.logPosteriorCutoff,
                                            minimumPrior: Self.minimumPrior)
        self.options = options
        means = model.means.map(Double.init)
        inverseSigmas = model.variances.map { 1 / Double($0).squareRoot() }
    }

    public var encodedDimension: Int { 2 * posteriors.model.k * posteriors.model.dimension }
    public var descriptorDimension: Int { posteriors.model.dimension }

    public func encode(_ descriptors: DescriptorMatrix, workspace: KernelWorkspace,
                       into output: UnsafeMutableBufferPointer<Float>) throws {
        _ = try encodeCountingTerms(descriptors, workspace: workspace, into: output)
    }

    /// Encodes like `encode` and returns the number of (row, component) terms accumulated,
    /// the figure VLFeat's encoder returns.
    public func encodeCountingTerms(_ descriptors: DescriptorMatrix, workspace: KernelWorkspace,
                                    into output: UnsafeMutableBufferPointer<Float>) throws -> Int {
        try checkDimension(descriptors)
        try checkOutput(output)
        let model = posteriors.model
        let k = model.k, d = model.dimension
        // Per component, over the terms kept: Σq, Σq·x and Σq·x² (float64), from which
        // Σq·z = (Σq·x − μ·Σq)/σ and Σq·(z² − 1) = Σq·(x − μ)²/σ² − Σq. Laid out as
        // [Σq | Σq·x | Σq·x²] in the workspace, so that the vector ends up in place as its last
        // 2·K·D values (all mean blocks, then all variance blocks).
        // They are all 0 between calls: each call clears what it used, or everything if it throws.
        let length = k + 2 * k * d
        if workspace.accumulators.count < length { workspace.accumulators = [Double](repeating: 0, count: length) }
        let kept = workspace.selectedTerms
        var terms = 0
        let fast = options.contains(.fast)
        try workspace.accumulators.withUnsafeMutableBufferPointer { sums in
            let mass = sums.baseAddress!, first = mass + k, second = first + k * d
            do {
                try RowScan.forEachBlock(descriptors, workspace: workspace) { block, firstRow in
                    try posteriors.forEachBlock(block, firstRow: firstRow, source: descriptors.source,
                                                workspace: workspace) { _, posteriors in
                        kept.starts.removeAll(keepingCapacity: true)
                        kept.components.removeAll(keepingCapacity: true)
                        kept.values.removeAll(keepingCapacity: true)
                        kept.starts.append(0)
                        for i in 0..<posteriors.rows.rows {
                            let list = posteriors.list(i)
                            if fast {
                                if list.count > 0 { kept.components.append(Int32(list.mostLikely)); kept.values.append(1) }
                            } else {
                                for m in 0..<list.count where list.posteriors[m] >= Self.minimumPosterior {
                                    kept.components.append(list.components[m])
                                    kept.values.append(list.posteriors[m])
                                }
                            }
                            kept.starts.append(kept.components.count)
                        }
                        terms += kept.components.count
                        kept.accumulateMoments(of: posteriors.rows, k: k, mass: mass, first: first, second: second)
                    }
                }
            } catch {
                mass.update(repeating: 0, count: length)
                throw error
            }
            // Components with no mass (among them those below the minimum prior) stay 0, so
            // only the others' blocks are computed, rooted, summed and scaled: the same values,
            // in the same order, as over the whole vector.
            let n = Double(descriptors.rows)
            var blocks: [Int] = []
            for c in 0..<k where mass[c] > 0 {
                blocks.append(c * d)
                let prior = Double(model.priors[c])
                let meanScale = 1 / (n * prior.squareRoot()), varianceScale = 1 / (n * (2 * prior).squareRoot())
                for j in 0..<d {
                    let index = c * d + j
                    let mean = means[index], inverseSigma = inverseSigmas[index]
                    let centred = first[index] - mean * mass[c]                           // Σq·(x − μ)
                    let squares = (second[index] - mean * first[index]) - mean * centred  // Σq·(x − μ)²
                    first[index] = centred * inverseSigma * meanScale
                    second[index] = (squares * inverseSigma * inverseSigma - mass[c]) * varianceScale
                }
            }
            blocks += blocks.map { k * d + $0 }
            let vector = first  // u at c·D, then v at K·D + c·D
            if options.contains(.squareRoot) {
                for start in blocks {
                    for j in start ..< start + d { vector[j] = vector[j] < 0 ? -(-vector[j]).squareRoot() : vector[j].squareRoot() }
                }
            }
            if options.contains(.normalized) {
                var total = 0.0
                for start in blocks { for j in start ..< start + d { total += vector[j] * vector[j] } }
                let scale = 1 / max(total.squareRoot(), Normalization.minimumNorm)
                for start in blocks { for j in start ..< start + d { vector[j] *= scale } }
            }
            output.update(repeating: 0)
            for start in blocks {
                for j in start ..< start + d { output[j] = Float(vector[j]) }
                (vector + start).update(repeating: 0, count: d)
            }
            for c in 0..<k { mass[c] = 0 }
        }
        return terms
    }
}
