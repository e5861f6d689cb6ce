import CKernels
import Descriptors

/// Nearest-centre assignment by squared L2 distance, exact and fast.
///
/// Distances are screened in float32 as ‖c‖² − 2x·c (‖x‖² is the same for every centre).
/// That expansion loses precision when ‖x‖ is large against the gaps between distances, so
/// it is only a screen: every centre whose screened distance is within the rounding bound
/// of the best is re-measured exactly as Σ(x − c)² in float64. A screened value is off by at
/// most γ·(2‖x‖‖c‖ + 2‖c‖²), γ ≈ (D + 1)·u, for either screen below; the bound allowed is
/// 2.5·(D + 4)·u·(2‖x‖‖c‖ + ‖c‖²) with the largest ‖c‖, which covers it. So the result
/// equals the float64 argmin (ties go to the lowest index), at the cost of a few exact
/// distances on the rare rows where two centres are nearly equidistant.
///
/// Two screens, same result:
/// - `.fused` (x86-64 with AVX-512): our own kernel (`cb_screen_nearest`) computes the
///   products in registers, keeps per row only the best centre and the runner-up, and
///   decides every row whose runner-up is beyond the bound; no N×K product matrix is
///   written or read back. The rows it leaves undecided go through `.blas`.
/// - `.blas`: one sgemm per block of rows into a K-wide product matrix, then a minimum and
///   a candidate scan per row.
public struct NearestCentreSearch: Sendable {
    /// How distances are screened (see the type's documentation).
    public enum Screen: Sendable, CaseIterable {
        case fused, blas

        /// `.fused` where this CPU runs it, else `.blas`.
        public static let preferred: Screen = cb_screen_supported() != 0 ? .fused : .blas
    }

    public let codebook: Codebook
    public let screen: Screen
    let norms: [Float]
    let boundScale: Double
    let largestNorm: Double
    /// −2·centres in `cb_screen_pack`'s panel layout, and their norms padded with +∞ (the
    /// fused screen's and the pruned pass's).
    let panels: [Float]
    let panelNorms: [Float]

    /// A search over `codebook`; with `.fused` on a CPU without AVX-512, `assign` throws.
    public init(codebook: Codebook, screen: Screen = .preferred) {
        self.codebook = codebook
        self.screen = screen
        let k = codebook.k, d = codebook.dimension
        norms = (0..<k).map { i in
            codebook.centres.withUnsafeBufferPointer { VectorMath.squaredNorm($0.baseAddress! + i * d, d) }
        }
        largestNorm = Double(norms.max() ?? 0).squareRoot()
        boundScale = 2.0 * Double(d + 4) * float32Roundoff * 1.25
        var panels = [Float](repeating: 0, count: cb_screen_packed_length(k, d))
        var panelNorms = [Float](repeating: 0, count: cb_screen_norms_length(k))
        cb_screen_pack(codebook.centres, k, d, norms, &panels, &panelNorms)
        self.panels = panels
        self.panelNorms = panelNorms
        BLAS.configure()
    }

    /// Rows per kernel call: for `.fused`, each group of packed centres (256 KiB) meets this
    /// many rows (128 KiB at D = 128) while both are in L2; for `.blas`, `kernelBlockRows(k:)`.
    public var blockRows: Int { screen == .fused ? 256 : kernelBlockRows(k: codebook.k) }

    /// Assigns each row of `rows` to its nearest centre, writing centre indices to
    /// `assignments` and, if given, the exact squared distances (float64) to `distances`.
    /// Blocks of `blockRows` rows are processed one after the other: callers that pass blocks
    /// of that size read rows the kernel has just brought into cache. Throws
    /// `.dimensionMismatch` for rows of another dimension than the codebook's, and
    /// `.invalidArgument` for the fused screen on a CPU without AVX-512.
    ///
    /// `firstRow` and `source` only serve error messages.
    public func assign(_ rows: FloatRows, firstRow: Int, source: String, workspace: KernelWorkspace,
                       assignments: UnsafeMutablePointer<Int32>,
                       distances: UnsafeMutablePointer<Double>? = nil) throws {
        let k = codebook.k, d = codebook.dimension
        guard rows.dimension == d else {
            throw DescriptorError(.dimensionMismatch, "rows have dimension \(rows.dimension), the codebook expects \(d)", path: source)
        }
        guard screen == .blas || Screen.preferred == .fused else {
            throw DescriptorError(.invalidArgument, "the fused screen needs AVX-512, which this CPU lacks")
        }
        let block = blockRows
        switch screen {
        case .fused:
            if workspace.screenState.count < cb_screen_scratch_bytes(block) {
                workspace.screenState = [UInt8](repeating: 0, count: cb_screen_scratch_bytes(block))
            }
        case .blas:
            workspace.reserve(&workspace.products, block * k)
        }
        var start = 0
        while start < rows.rows {
            let count = min(block, rows.rows - start)
            let slice = FloatRows(base: rows.row(start), rows: count, dimension: d, stride: rows.stride)
            switch screen {
            case .fused:
                try fusedBlock(slice, firstRow: firstRow + start, source: source, workspace: workspace,
                               assignments: assignments + start, distances: distances.map { $0 + start })
            case .blas:
                try blasBlock(slice, rowNumber: { firstRow + start + $0 }, source: source, workspace: workspace,
                              assignments: assignments + start, distances: distances.map { $0 + start })
            }
            start += count
        }
    }

    /// The fused screen over a block; the rows it leaves undecided (a rival within the bound,
    /// or a value that is not finite) are copied side by side and go to `blasBlock` together,
    /// so that one sgemm screens them however many they are.
    private func fusedBlock(_ rows: FloatRows, firstRow: Int, source: String, workspace: KernelWorkspace,
                            assignments: UnsafeMutablePointer<Int32>, distances: UnsafeMutablePointer<Double>?) throws {
        let k = codebook.k, d = codebook.dimension
        cb_screen_nearest(rows.base, rows.stride, rows.rows, d, panels, panelNorms, k, boundScale, largestNorm,
                          &workspace.screenState, assignments)
        workspace.undecided.removeAll(keepingCapacity: true)
        for i in 0..<rows.rows {
            if assignments[i] < 0 {
                workspace.undecided.append(i)
            } else if let distances {
                distances[i] = codebook.centres.withUnsafeBufferPointer {
                    VectorMath.squaredDistance(rows.row(i), $0.baseAddress! + Int(assignments[i]) * d, d)
                }
            }
        }
        let undecided = workspace.undecided
        guard !undecided.isEmpty else { return }
        let count = undecided.count
        workspace.reserve(&workspace.undecidedRows, count * d)
        workspace.reserve(&workspace.products, count * k)
        if workspace.undecidedAssignments.count < count {
            workspace.undecidedAssignments = [Int32](repeating: 0, count: count)
            workspace.undecidedDistances = [Double](repeating: 0, count: count)
        }
        try workspace.undecidedRows.withUnsafeMutableBufferPointer { copies in
            for (slot, i) in undecided.enumerated() {
                (copies.baseAddress! + slot * d).update(from: rows.row(i), count: d)
            }
            try workspace.undecidedAssignments.withUnsafeMutableBufferPointer { chosen in
                try workspace.undecidedDistances.withUnsafeMutableBufferPointer { exact in
                    try blasBlock(FloatRows(base: copies.baseAddress!, rows: count, dimension: d, stride: d),
                                  rowNumber: { firstRow + undecided[$0] }, source: source, workspace: workspace,
                                  assignments: chosen.baseAddress!, distances: distances == nil ? nil : exact.baseAddress!)
                    for (slot, i) in undecided.enumerated() {
                        assignments[i] = chosen[slot]
                        distances?[i] = exact[slot]
                    }
                }
            }
        }
    }

    /// The largest screened distance that may still belong to the nearest centre of `x`,
    /// whose best screened distance is `best`; throws for a NaN or infinite row.
    @inline(__always)
    private func screenLimit(_ x: UnsafePointer<Float>, best: Float, row: Int, source: String) throws -> Float {
        let rowNorm = Double(VectorMath.squaredNorm(x, codebook.dimension))
        guard rowNorm.isFinite else {
            throw DescriptorError(.nonFinite, "row \(row) has a NaN or infinite value (or one too large for float32 arithmetic)",
                                  path: source, location: "row \(row)")
        }
        let bound = boundScale * (2 * rowNorm.squareRoot() * largestNorm + largestNorm * largestNorm)
        return Float(Double(best) + 2 * bound)
    }

    /// The sgemm screen over a block.
    /// `rowNumber` maps a row of the block to its number in `source`, for errors.
    private func blasBlock(_ rows: FloatRows, rowNumber: (Int) -> Int, source: String, workspace: KernelWorkspace,
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
                        let screened = products + i * k
                        let limit = try screenLimit(x, best: VectorMath.minimum(of: screened, plus: norms, k),
                                                    row: rowNumber(i), source: source)
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
