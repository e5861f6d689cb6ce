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
/// ℓ is screened in float32 with two sgemm products per block of rows, x·(μ/σ²) and
/// x²·(1/σ²). Like the distance screen of `NearestCentreSearch`, the expansion cancels,
/// so every component that could be within `logPosteriorCutoff` of the best (allowing for
/// the rounding bound of the products) is recomputed exactly in float64 from (x − μ)².
/// Components further than the cutoff below the best get q = 0: e^−30 ≈ 1e−13, below the
/// resolution of any sum of posteriors. A component with prior below `minimumPrior` gets
/// ℓ = −∞ (q = 0), as VLFeat does for π < 1e−6 in its Fisher encoder.
public struct GaussianPosteriors: Sendable {
    /// ℓ_best − ℓ_k beyond which a posterior is taken as 0.
    public static let logPosteriorCutoff = 30.0

    public let model: GaussianMixtureModel
    private let meansD: [Double]
    private let precisionsD: [Double]
    private let weightedMeans: [Float]
    private let precisions: [Float]
    /// log π_k − (D/2)·log 2π − ½ Σ log σ²_k: the exact ℓ_k adds −½ Σ (x − μ)²/σ².
    private let logNormalizers: [Double]
    /// The screen's constant: the normaliser − ½ Σ μ²/σ² (the products add the rest).
    private let offsets: [Float]
    private let boundTerms: (weights: Double, precisions: Double, offsets: Double)
    private let boundScale: Double

    /// - Parameter minimumPrior: components with a smaller prior are excluded (q = 0). Compared
    ///   in float64, as VLFeat does: the float32 nearest 1e−6 is below 1e−6.
    public init(model: GaussianMixtureModel, minimumPrior: Double = 0) throws {
        self.model = model
        let k = model.k, d = model.dimension
        guard model.priors.contains(where: { $0 > 0 && Double($0) >= minimumPrior }) else {
            throw DescriptorError(.invalidArgument, "every component's prior is below \(minimumPrior)")
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
        boundTerms = (maxW, maxP, maxA)
        boundScale = 2.5 * Double(d + 4) * float32Roundoff
        BLAS.configure()
    }

    /// The exact log-density term ℓ_k(x) in float64.
    @inline(__always)
    func exactLogDensity(_ x: UnsafePointer<Float>, component c: Int) -> Double {
        let d = model.dimension
        return meansD.withUnsafeBufferPointer { m in
            precisionsD.withUnsafeBufferPointer { p in
                logNormalizers[c] - 0.5 * VectorMath.weightedSquaredDistance(x, m.baseAddress! + c * d, p.baseAddress! + c * d, d)
            }
        }
    }

    /// Computes the posteriors of every row of `rows` and calls `visit(row, posteriors,
    /// logLikelihood)` in row order, where `posteriors` holds the (component, q) pairs with
    /// q > 0 in component order and `logLikelihood` is log p(x) = max ℓ + log Σ exp(ℓ − max ℓ).
    ///
    /// `firstRow` and `source` only serve the error for a NaN or infinite row.
    public func forEachRow(_ rows: FloatRows, firstRow: Int, source: String, workspace: KernelWorkspace,
                           _ visit: (_ row: Int, _ posteriors: PosteriorList, _ logLikelihood: Double) throws -> Void) throws {
        let k = model.k, d = model.dimension
        precondition(rows.dimension == d, "row dimension must match the model")
        let block = kernelBlockRows(k: k)
        workspace.reserve(&workspace.products, block * k)
        workspace.reserve(&workspace.squares, block * d)
        if workspace.candidates.count < k {
            workspace.candidates = [Int32](repeating: 0, count: k)
            workspace.exact = [Double](repeating: 0, count: k)
        }
        var start = 0
        while start < rows.rows {
            let count = min(block, rows.rows - start)
            try visitBlock(FloatRows(base: rows.row(start), rows: count, dimension: d, stride: rows.stride),
                           firstRow: firstRow + start, offset: start, source: source, workspace: workspace, visit)
            start += count
        }
    }

    private func visitBlock(_ rows: FloatRows, firstRow: Int, offset: Int, source: String, workspace: KernelWorkspace,
                            _ visit: (Int, PosteriorList, Double) throws -> Void) throws {
        let k = model.k, d = model.dimension, n = rows.rows
        try workspace.squares.withUnsafeMutableBufferPointer { squaresBuffer in
            let squares = squaresBuffer.baseAddress!
            for i in 0..<n {
                let x = rows.row(i), s = squares + i * d
                for j in 0..<d { s[j] = x[j] * x[j] }
            }
            try workspace.products.withUnsafeMutableBufferPointer { productsBuffer in
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
                try workspace.candidates.withUnsafeMutableBufferPointer { candidatesBuffer in
                    try workspace.exact.withUnsafeMutableBufferPointer { exactBuffer in
                        let candidates = candidatesBuffer.baseAddress!, exact = exactBuffer.baseAddress!
                        do {
                            for i in 0..<n {
                                let x = rows.row(i)
                                let rowNorm = VectorMath.squaredNorm(x, d)
                                guard rowNorm.isFinite else {
                                    throw DescriptorError(.nonFinite, "row \(firstRow + i) has a NaN or infinite value (or one too large for float32 arithmetic)",
                                                          path: source, location: "row \(firstRow + i)")
                                }
                                let screened = products + i * k
                                let best = Double(VectorMath.maximum(screened, k))
                                let normX = Double(rowNorm).squareRoot()
                                let bound = boundScale * (normX * boundTerms.weights
                                    + 0.5 * Double(rowNorm) * boundTerms.precisions + boundTerms.offsets)
                                let limit = Float(best - Self.logPosteriorCutoff - 2 * bound)
                                var count = 0
                                var exactBest = -Double.infinity
                                VectorMath.forEach(in: screened, k, atLeast: limit) { c in
                                    let value = exactLogDensity(x, component: c)
                                    candidates[count] = Int32(c)
                                    exact[count] = value
                                    exactBest = max(exactBest, value)
                                    count += 1
                                }
                                var kept = 0
                                var total = 0.0
                                for m in 0..<count where exact[m] >= exactBest - Self.logPosteriorCutoff {
                                    let weight = exp(exact[m] - exactBest)
                                    candidates[kept] = candidates[m]
                                    exact[kept] = weight
                                    total += weight
                                    kept += 1
                                }
                                let scale = 1 / total
                                for m in 0..<kept { exact[m] *= scale }
                                try visit(offset + i, PosteriorList(components: UnsafePointer(candidates),
                                                                    posteriors: UnsafePointer(exact), count: kept),
                                          exactBest + log(total))
                            }
                        }
                    }
                }
            }
        }
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
