import Descriptors

/// Nearest-centre assignment by squared L2 distance, exact and fast.
///
/// Distances are screened in float32 as ‖c‖² − 2x·c (‖x‖² is the same for every centre)
/// with one sgemm per block of rows. That expansion loses precision when ‖x‖ is large
/// against the gaps between distances, so it is only a screen: every centre whose screened
/// distance is within the rounding bound of the best is re-measured exactly as
/// Σ(x − c)² in float64. The bound is the classical one for a dot product of length D,
/// γ_D·(2‖x‖‖c‖ + ‖c‖²) with γ_D ≈ (D + 4)·u. So the result equals the float64 argmin
/// (ties go to the lowest index), at the cost of a few exact distances on the rare rows
/// where two centres are nearly equidistant.
public struct NearestCentreSearch: Sendable {
    public let codebook: Codebook
    private let norms: [Float]
    private let boundScale: Double
    private let largestNorm: Double

    public init(codebook: Codebook) {
        self.codebook = codebook
        let d = codebook.dimension
        norms = (0..<codebook.k).map { i in
            codebook.centres.withUnsafeBufferPointer { VectorMath.squaredNorm($0.baseAddress! + i * d, d) }
        }
        largestNorm = Double(norms.max() ?? 0).squareRoot()
        boundScale = 2.0 * Double(d + 4) * float32Roundoff * 1.25
        BLAS.configure()
    }

    /// Assigns each row of `rows` to its nearest centre, writing centre indices to
    /// `assignments` and, if given, the exact squared distances (float64) to `distances`.
    /// Blocks of `kernelBlockRows(k:)` rows are processed one after the other: callers that
    /// pass blocks of that size read rows the kernel has just brought into cache.
    ///
    /// `firstRow` and `source` only serve the error for a NaN or infinite row.
    public func assign(_ rows: FloatRows, firstRow: Int, source: String, workspace: KernelWorkspace,
                       assignments: UnsafeMutablePointer<Int32>,
                       distances: UnsafeMutablePointer<Double>? = nil) throws {
        let k = codebook.k, d = codebook.dimension
        precondition(rows.dimension == d, "row dimension must match the codebook")
        let block = kernelBlockRows(k: k)
        workspace.reserve(&workspace.products, block * k)
        var start = 0
        while start < rows.rows {
            let count = min(block, rows.rows - start)
            try assignBlock(FloatRows(base: rows.row(start), rows: count, dimension: d, stride: rows.stride),
                            firstRow: firstRow + start, source: source, workspace: workspace,
                            assignments: assignments + start, distances: distances.map { $0 + start })
            start += count
        }
    }

    private func assignBlock(_ rows: FloatRows, firstRow: Int, source: String, workspace: KernelWorkspace,
                             assignments: UnsafeMutablePointer<Int32>,
                             distances: UnsafeMutablePointer<Double>?) throws {
        let k = codebook.k, d = codebook.dimension
        try codebook.centres.withUnsafeBufferPointer { centresBuffer in
            let centres = centresBuffer.baseAddress!
            try workspace.products.withUnsafeMutableBufferPointer { productsBuffer in
                let products = productsBuffer.baseAddress!
                try norms.withUnsafeBufferPointer { normsBuffer in
                    let norms = normsBuffer.baseAddress!
                    // −2x·c; the scans below add ‖c‖² on the fly.
                    BLAS.gemmTransposedB(m: rows.rows, n: k, k: d, alpha: -2, a: rows.base, lda: rows.stride,
                                         b: centres, ldb: d, beta: 0, c: products, ldc: k)
                    for i in 0..<rows.rows {
                        let x = rows.row(i)
                        let rowNorm = Double(VectorMath.squaredNorm(x, d))
                        guard rowNorm.isFinite else {
                            throw DescriptorError(.nonFinite, "row \(firstRow + i) has a NaN or infinite value (or one too large for float32 arithmetic)",
                                                  path: source, location: "row \(firstRow + i)")
                        }
                        let screened = products + i * k
                        let best = VectorMath.minimum(of: screened, plus: norms, k)
                        let bound = boundScale * (2 * rowNorm.squareRoot() * largestNorm + largestNorm * largestNorm)
                        let limit = Float(Double(best) + 2 * bound)
                        var chosen = -1
                        var rivals = 0
                        VectorMath.forEach(in: screened, plus: norms, k, atMost: limit) { c in
                            if chosen < 0 { chosen = c } else { rivals += 1 }
                        }
                        if rivals == 0 {
                            assignments[i] = Int32(chosen)
                            distances?[i] = VectorMath.squaredDistance(x, centres + chosen * d, d)
                        } else {
                            var bestExact = Double.infinity
                            var bestIndex = 0
                            VectorMath.forEach(in: screened, plus: norms, k, atMost: limit) { c in
                                let exact = VectorMath.squaredDistance(x, centres + c * d, d)
                                if exact < bestExact { bestExact = exact; bestIndex = c }
                            }
                            assignments[i] = Int32(bestIndex)
                            distances?[i] = bestExact
                        }
                    }
                }
            }
        }
    }
}
