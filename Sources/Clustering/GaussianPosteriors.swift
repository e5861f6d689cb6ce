import CKernels
import Descriptors

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Posterior probabilities of the components of a diagonal GMM, per row, in the log domain.
///
///     ℓ_k(x) = log π_k − (D/2)·log 2π − ½ Σ_d log σ²_kd − ½ Σ_d (x_d − μ_kd)² / σ²_kd
///     q_k(x) = exp(ℓ_k − max_j ℓ_j) / Σ_j exp(ℓ_j − max_j ℓ_j)
///
/// over the components with ℓ_k ≥ max_j ℓ_j − `logPosteriorCutoff` (the others get q = 0; the
/// cutoff is chosen by the user: `GaussianMixtureExpectationPass.logPosteriorCutoff`,
/// `FisherEncoder.logPosteriorCutoff`).
///
/// ℓ is screened in float32 as offset_k + x·(μ/σ²) − ½x²·(1/σ²). Like the distance screen of
/// `NearestCentreSearch`, the expansion cancels, so every component that could be within
/// the cutoff of the best (allowing for the rounding bound of the screen) is
/// recomputed exactly in float64 from (x − μ)²: the tighter the cutoff, the fewer.
///
/// The rounding bound: each screened value is the offset plus 2·D products, summed in some
/// order (float32 fma or sgemm), so the arithmetic errs by at most (2D + 1)·u·(1 + O(u))·S,
/// S = |offset| + Σ|x·μ/σ²| + ½Σx²/σ²; the inputs add 2u·S at most (the offset and μ/σ² are
/// rounded once, x²/σ² twice: 1/σ² and x²; x itself is exact). So it is off by at most
/// (2D + 3)·u·(1 + O(u))·S, and by
/// Cauchy–Schwarz S ≤ ‖x‖·‖μ/σ²‖ + ½‖x‖²·‖1/σ²‖ + |offset|. The bound allowed,
/// 2.5·(D + 4)·u times that sum with the largest norms over the components (`boundTerms`),
/// covers it with room for the float32 ‖x‖² (off by D·u relative at most), the float64
/// arithmetic of the bound and the exact values, and the float32 rounding of the limit.
///
/// Two screens, same posteriors (the candidates differ only beyond the cutoff of the exact
/// best, where the exact pass drops them):
/// - `.fused` (x86-64 with AVX-512): our own kernel (`cb_gmm_screen`) computes the 2·D
///   products of 14 rows × 32 components in registers and writes each value once.
/// - `.blas`: two sgemm products per block of rows, x·(μ/σ²) and x²·(1/σ²), added to the offsets.
/// A cutoff c drops only components whose weight relative to the best, e^(ℓ_k − ℓ_best), is
/// below e^−c (up to the float64 rounding of ℓ_best − c), so every dropped posterior is below
/// e^−c. Against the softmax over all components, each kept q is too large by a factor of at
/// most 1 + (K − 1)·e^−c and the row's log-likelihood too small by at most (K − 1)·e^−c nats.
/// A component with prior below `minimumPrior` gets ℓ = −∞ (q = 0), as VLFeat does for
/// π < 1e−6 in its Fisher encoder.
public struct GaussianPosteriors: Sendable {
    /// ℓ_best − ℓ_k beyond which a posterior is taken as 0.
    public let logPosteriorCutoff: Double

    /// How log-densities are screened (see the type's documentation).
    public enum Screen: Sendable, CaseIterable {
        case fused, blas

        /// `.fused` where this CPU runs it, else `.blas`.
        public static let preferred: Screen = cb_gmm_screen_supported() != 0 ? .fused : .blas
    }

    public let model: GaussianMixtureModel
    public let screen: Screen
    private let meansD: [Double]
    private let precisionsD: [Double]
    private let weightedMeans: [Float]
    private let precisions: [Float]
    /// log π_k − (D/2)·log 2π − ½ Σ log σ²_k: the exact ℓ_k adds −½ Σ (x − μ)²/σ².
    private let logNormalizers: [Double]
    /// The screen's constant: the normaliser − ½ Σ μ²/σ² (the products add the rest).
    private let offsets: [Float]
    /// The largest ‖μ/σ²‖, ‖1/σ²‖ and |offset| over the components, for the rounding bound.
    private let boundTerms: [Double]
    private let boundScale: Double
    /// The fused screen's packed parameters and offsets (`.fused` only).
    private let packed: [Float]
    private let packedOffsets: [Float]

    /// - Parameter logPosteriorCutoff: components with ℓ_k < ℓ_best − this (in float64) get
    ///   q = 0; finite and ≥ 0.
    /// - Parameter minimumPrior: components with a smaller prior are excluded (q = 0). Compared
    ///   in float64, as VLFeat does: the float32 nearest 1e−6 is below 1e−6.
    /// - Parameter screen: with `.fused` on a CPU without AVX-512, `forEachBlock` throws.
    public init(model: GaussianMixtureModel, logPosteriorCutoff: Double, minimumPrior: Double = 0,
                screen: Screen = .preferred) throws {
        guard logPosteriorCutoff.isFinite && logPosteriorCutoff >= 0 else {
            throw ClusteringError(.invalidArgument, "the log-posterior cutoff \(logPosteriorCutoff) is not a finite number ≥ 0")
        }
        self.model = model
        self.screen = screen
        self.logPosteriorCutoff = logPosteriorCutoff
        let k = model.k, d = model.dimension
        guard model.priors.contains(where: { $0 > 0 && Double($0) >= minimumPrior }) else {
            throw ClusteringError(.invalidArgument, "every component's prior is below \(minimumPrior)")
        }
        var meansD = [Double](repeating: 0, count: k * d)
        var precisionsD = meansD
        var weightedMeans = [Float](repeating: 0, count: k * d)
        var precisions = weightedMeans
        var logNormalizers = [Double](repeating: -.infinity, count: k)
        var offsets = [Float](repeating: -.infinity, count: k)
        var maxW = 0.0, maxP = 0.0, maxA = 0.0
        let logTwoPi = log(2 * Double.pi)
        for c in 0..<k {
            var logDet = 0.0, meanTerm = 0.0, wNorm = 0.0, pNorm = 0.0
            for j in 0..<d {
                let index = c * d + j
                let mean = Double(model.means[index]), variance = Double(model.variances[index])
                let precision = 1 / variance
                meansD[index] = mean
                precisionsD[index] = precision
                weightedMeans[index] = Float(mean * precision)
                precisions[index] = Float(precision)
                logDet += log(variance)
                meanTerm += mean * mean * precision
                wNorm += mean * precision * mean * precision
                pNorm += precision * precision
            }
            let prior = model.priors[c]
            if prior > 0 && Double(prior) >= minimumPrior {
                logNormalizers[c] = log(Double(prior)) - 0.5 * Double(d) * logTwoPi - 0.5 * logDet
                offsets[c] = Float(logNormalizers[c] - 0.5 * meanTerm)
                maxA = max(maxA, abs(Double(offsets[c])))
            }
            maxW = max(maxW, wNorm.squareRoot())
            maxP = max(maxP, pNorm.squareRoot())
        }
        self.meansD = meansD
        self.precisionsD = precisionsD
        self.weightedMeans = weightedMeans
        self.precisions = precisions
        self.logNormalizers = logNormalizers
        self.offsets = offsets
        boundTerms = [maxW, maxP, maxA]
        boundScale = 2.5 * Double(d + 4) * float32Roundoff
        if screen == .fused {
            var packed = [Float](repeating: 0, count: cb_gmm_screen_packed_length(k, d))
            var packedOffsets = [Float](repeating: 0, count: cb_gmm_screen_offsets_length(k))
            let halfPrecisions = precisions.map { -0.5 * $0 }
            cb_gmm_screen_pack(weightedMeans, halfPrecisions, offsets, k, d, &packed, &packedOffsets)
            self.packed = packed
            self.packedOffsets = packedOffsets
        } else {
            packed = []
            packedOffsets = []
        }
        BLAS.configure()
    }

    /// The float64 model as `cb_gmm_log_densities` takes it.
    private func withExactTerms<R>(_ body: ((means: UnsafePointer<Double>, precisions: UnsafePointer<Double>,
                                             normalizers: UnsafePointer<Double>)) throws -> R) rethrows -> R {
        try meansD.withUnsafeBufferPointer { means in
            try precisionsD.withUnsafeBufferPointer { precisions in
                try logNormalizers.withUnsafeBufferPointer { normalizers in
                    try body((means.baseAddress!, precisions.baseAddress!, normalizers.baseAddress!))
                }
            }
        }
    }

    /// Rows per kernel call: for `.fused`, each group of packed components (256 KiB) meets
    /// this many rows while both, and the block's values, are in L2; for `.blas`, `kernelBlockRows(k:)`.
    public var blockRows: Int { screen == .fused ? 256 : kernelBlockRows(k: model.k) }

    /// Computes the posteriors of `rows` block by block (`blockRows` rows at a time)
    /// and calls `visit(offset, block)` for each, in row order, where `offset` is the index in
    /// `rows` of the block's first row (see `PosteriorBlock`). Throws `.dimensionMismatch` for
    /// rows of another dimension than the model's, and `.invalidArgument` for the fused
    /// screen on a CPU without AVX-512.
    ///
    /// `firstRow` and `source` only serve error messages.
    public func forEachBlock(_ rows: FloatRows, firstRow: Int, source: String, workspace: KernelWorkspace,
                             _ visit: (_ offset: Int, _ block: PosteriorBlock) throws -> Void) throws {
        let k = model.k, d = model.dimension
        guard rows.dimension == d else {
            throw DescriptorError(.dimensionMismatch, "rows have dimension \(rows.dimension), the model expects \(d)", path: source)
        }
        guard screen == .blas || Screen.preferred == .fused else {
            throw DescriptorError(.invalidArgument, "the fused screen needs AVX-512, which this CPU lacks")
        }
        let block = blockRows
        workspace.reserve(&workspace.products, block * valueStride)
        workspace.reserve(&workspace.squares, block * d)
        workspace.reserve(&workspace.rowSummaries, 2 * block)
        var start = 0
        while start < rows.rows {
            let count = min(block, rows.rows - start)
            let slice = FloatRows(base: rows.row(start), rows: count, dimension: d, stride: rows.stride)
            switch screen {
            case .fused:
                workspace.rowSummaries.withUnsafeMutableBufferPointer { summaries in
                    cb_gmm_screen(slice.base, slice.stride, count, d, packed, packedOffsets, k, &workspace.squares,
                                  &workspace.products, summaries.baseAddress!, summaries.baseAddress! + block)
                }
            case .blas:
                blasScreen(slice, workspace: workspace)
            }
            try refine(slice, firstRow: firstRow + start, source: source, summaries: block, workspace: workspace)
            try workspace.posteriors.withBlock(slice) { try visit(start, $0) }
            start += count
        }
    }

    /// The row stride of the screened values in `workspace.products`.
    private var valueStride: Int { screen == .fused ? cb_gmm_screen_offsets_length(model.k) : model.k }

    /// ℓ in float32 for every row and component of `rows`, into `workspace.products`, with two
    /// sgemm products; the rows' best values and ‖x‖² into `workspace.rowSummaries` as `cb_gmm_screen` does.
    private func blasScreen(_ rows: FloatRows, workspace: KernelWorkspace) {
        let k = model.k, d = model.dimension, n = rows.rows
        workspace.squares.withUnsafeMutableBufferPointer { squaresBuffer in
            let squares = squaresBuffer.baseAddress!
            for i in 0..<n {
                let x = rows.row(i), s = squares + i * d
                for j in 0..<d { s[j] = x[j] * x[j] }
            }
            workspace.products.withUnsafeMutableBufferPointer { productsBuffer in
                let products = productsBuffer.baseAddress!
                // Each row starts as the constant of ℓ; the products add x·μ/σ² and −½x²/σ².
                offsets.withUnsafeBufferPointer { offsets in
                    for i in 0..<n { (products + i * k).update(from: offsets.baseAddress!, count: k) }
                }
                weightedMeans.withUnsafeBufferPointer { w in
                    BLAS.gemmTransposedB(m: n, n: k, k: d, alpha: 1, a: rows.base, lda: rows.stride,
                                         b: w.baseAddress!, ldb: d, beta: 1, c: products, ldc: k)
                }
                precisions.withUnsafeBufferPointer { p in
                    BLAS.gemmTransposedB(m: n, n: k, k: d, alpha: -0.5, a: squares, lda: d,
                                         b: p.baseAddress!, ldb: d, beta: 1, c: products, ldc: k)
                }
                workspace.rowSummaries.withUnsafeMutableBufferPointer { summaries in
                    for i in 0..<n {
                        summaries[i] = VectorMath.maximum(products + i * k, k)
                        summaries[blockRows + i] = VectorMath.squaredNorm(rows.row(i), d)
                    }
                }
            }
        }
    }

    /// From the screened ℓ: the candidates of every row (within the cutoff and the rounding
    /// bound of the row's best), their exact ℓ in float64, then the posteriors of those
    /// within the cutoff of the exact best, into `workspace.posteriors`.
    private func refine(_ rows: FloatRows, firstRow: Int, source: String, summaries norms: Int, workspace: KernelWorkspace) throws {
        let k = model.k, d = model.dimension, n = rows.rows, stride = valueStride
        let terms = workspace.posteriors
        terms.starts.removeAll(keepingCapacity: true)
        terms.starts.append(contentsOf: repeatElement(0, count: n + 1))
        // Rows at a time, as many as k candidates each fit in 2^16 (the whole block at K = 256).
        var i = 0
        while i < n {
            let rowsNow = min(n - i, max(1, (1 << 16) / k)), first = terms.starts[i]
            if terms.components.count < first + rowsNow * k {
                terms.components += repeatElement(0, count: max(first + rowsNow * k, 2 * terms.components.count) - terms.components.count)
            }
            let end = workspace.products.withUnsafeBufferPointer { products in
                workspace.rowSummaries.withUnsafeBufferPointer { summaries in
                    terms.starts.withUnsafeMutableBufferPointer { starts in
                        cb_gmm_candidates(products.baseAddress! + i * stride, stride, rowsNow, k, summaries.baseAddress! + i,
                                          summaries.baseAddress! + norms + i, boundScale, boundTerms, logPosteriorCutoff,
                                          &terms.components, starts.baseAddress! + i)
                    }
                }
            }
            guard end >= 0 else {
                let row = firstRow + i - 1 - end
                throw DescriptorError(.nonFinite, "row \(row) has a NaN or infinite value (or one too large for float32 arithmetic)",
                                      path: source, location: "row \(row)")
            }
            i += rowsNow
        }
        let count = terms.starts[n]
        if terms.values.count < count { terms.values = [Double](repeating: 0, count: max(count, 2 * terms.values.count)) }
        terms.group(k: k)
        withExactTerms { model in
            cb_gmm_log_densities(rows.base, rows.stride, n, d, terms.starts, k, terms.scratch,
                                 model.means, model.precisions, model.normalizers, &terms.values)
        }
        if terms.logLikelihoods.count < n { terms.logLikelihoods = [Double](repeating: 0, count: max(n, 1024)) }
        // Per row: the exact best, then q for the candidates within the cutoff, compacted in place.
        terms.components.withUnsafeMutableBufferPointer { componentsBuffer in
            terms.values.withUnsafeMutableBufferPointer { valuesBuffer in
                terms.starts.withUnsafeMutableBufferPointer { starts in
                    let components = componentsBuffer.baseAddress!, values = valuesBuffer.baseAddress!
                    var kept = 0
                    for i in 0..<n {
                        let first = starts[i], end = starts[i + 1]
                        var exactBest = -Double.infinity
                        for t in first..<end { exactBest = max(exactBest, values[t]) }
                        let rowStart = kept
                        var total = 0.0
                        for t in first..<end where values[t] >= exactBest - logPosteriorCutoff {
                            let weight = exp(values[t] - exactBest)
                            components[kept] = components[t]
                            values[kept] = weight
                            total += weight
                            kept += 1
                        }
                        let scale = 1 / total
                        for t in rowStart..<kept { values[t] *= scale }
                        starts[i] = rowStart
                        terms.logLikelihoods[i] = exactBest + log(total)
                    }
                    starts[n] = kept
                }
            }
        }
    }
}

/// The posteriors of a block of rows as term lists: the terms of row i are
/// `starts[i] ..< starts[i + 1]`, each a component (in increasing order within the row) and
/// its posterior q > 0. Valid only inside the visit call.
public struct PosteriorBlock {
    public let rows: FloatRows
    public let starts: UnsafePointer<Int>
    public let components: UnsafePointer<Int32>
    public let posteriors: UnsafePointer<Double>
    /// log p(x) of each row: max ℓ + log Σ exp(ℓ − max ℓ) over the components' log densities ℓ.
    public let logLikelihoods: UnsafePointer<Double>

    /// Row i's posteriors.
    public func list(_ i: Int) -> PosteriorList {
        PosteriorList(components: components + starts[i], posteriors: posteriors + starts[i], count: starts[i + 1] - starts[i])
    }
}

/// Term lists over a block of rows (the terms of row i are `starts[i] ..< starts[i + 1]`),
/// the grouping `cb_gmm_group_terms` makes of them, and per-row log-likelihoods: the scratch
/// of `GaussianPosteriors`, and of callers that accumulate moments of terms they choose.
public final class TermLists {
    /// n + 1 offsets into `components` and `values` (which may be longer).
    public var starts: [Int] = []
    public var components: [Int32] = []
    /// Exact ℓ, then posteriors (or any weights).
    public var values: [Double] = []
    var logLikelihoods: [Double] = []
    var scratch: [Int] = []

    public init() {}

    /// Groups the terms by component for the kernels.
    func group(k: Int) {
        let needed = cb_gmm_group_scratch_length(starts.last ?? 0, k)
        if scratch.count < needed { scratch = [Int](repeating: 0, count: max(needed, 2 * scratch.count)) }
        cb_gmm_group_terms(starts.count - 1, starts, components, k, &scratch)
    }

    func withBlock<R>(_ rows: FloatRows, _ body: (PosteriorBlock) throws -> R) rethrows -> R {
        try starts.withUnsafeBufferPointer { starts in
            try components.withUnsafeBufferPointer { components in
                try values.withUnsafeBufferPointer { values in
                    try logLikelihoods.withUnsafeBufferPointer { logLikelihoods in
                        try body(PosteriorBlock(rows: rows, starts: starts.baseAddress!, components: components.baseAddress!,
                                                posteriors: values.baseAddress!, logLikelihoods: logLikelihoods.baseAddress!))
                    }
                }
            }
        }
    }

    /// Adds, per component, Σq, Σq·x and Σq·x² of these terms over `rows` (weights in `values`)
    /// to `mass` (K), `first` and `second` (K×D), in float64 (`cb_gmm_accumulate`).
    public func accumulateMoments(of rows: FloatRows, k: Int, mass: UnsafeMutablePointer<Double>,
                                  first: UnsafeMutablePointer<Double>, second: UnsafeMutablePointer<Double>) {
        group(k: k)
        cb_gmm_accumulate(rows.base, rows.stride, rows.rows, rows.dimension, starts, values, k, scratch, mass, first, second)
    }
}

/// The non-zero posteriors of one row, in component order. Valid only inside the visit call.
public struct PosteriorList {
    public let components: UnsafePointer<Int32>
    public let posteriors: UnsafePointer<Double>
    public let count: Int

    /// The first component with the largest posterior.
    public var mostLikely: Int {
        var best = 0
        for m in 1..<max(count, 1) where posteriors[m] > posteriors[best] { best = m }
        return Int(components[best])
    }
}
