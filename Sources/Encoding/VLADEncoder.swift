import Clustering
import Descriptors

/// VLAD options, with VLFeat's flag values (`VL_VLAD_FLAG_*`) as raw values.
public struct VLADOptions: OptionSet, Sendable, Hashable {
    public let rawValue: Int
    public init(rawValue: Int) { self.rawValue = rawValue }

    /// Intra-normalisation: each cluster's block divided by its L2 norm.
    public static let normalizeComponents = VLADOptions(rawValue: 0x1)
    /// Signed square root of every value.
    public static let squareRoot = VLADOptions(rawValue: 0x2)
    /// Skip the final global L2 normalisation.
    public static let unnormalized = VLADOptions(rawValue: 0x4)
    /// Divide each cluster's residual sum by its number of descriptors.
    public static let normalizeMass = VLADOptions(rawValue: 0x8)
}

extension VLADOptions: NamedOptions {
    public static let named: [(name: String, option: VLADOptions)] = [
        ("normalizeComponents", .normalizeComponents), ("squareRoot", .squareRoot),
        ("unnormalized", .unnormalized), ("normalizeMass", .normalizeMass),
    ]
}

/// VLAD (vector of locally aggregated descriptors), equal to VLFeat 0.9.21's
/// `vl_vlad_encode` with hard nearest-centre assignments.
///
/// Per cluster k with m_k descriptors assigned (nearest centre, exact, ties to the lowest
/// index):
///
///     v_k = Σ_{i→k} (x_i − μ_k)            (÷ m_k with .normalizeMass; 0 if m_k = 0)
///     v   ← sign(v)·√|v|                    (.squareRoot)
///     v_k ← v_k / max(‖v_k‖₂, 1e−12)        (.normalizeComponents)
///     Φ   ← Φ / max(‖Φ‖₂, 1e−12)            (unless .unnormalized)
///
/// Layout: K·D values, v_k at offset k·D. Residuals are summed in float64 (summing raw x
/// and subtracting m_k·μ_k would cancel when the data's mean is large against its spread).
public struct VLADEncoder: VectorEncoder {
    public let search: NearestCentreSearch
    public let options: VLADOptions

    public init(codebook: Codebook, options: VLADOptions = []) {
        search = NearestCentreSearch(codebook: codebook)
        self.options = options
    }

    public var encodedDimension: Int { search.codebook.k * search.codebook.dimension }
    public var descriptorDimension: Int { search.codebook.dimension }

    public func encode(_ descriptors: DescriptorMatrix, workspace: KernelWorkspace,
                       into output: UnsafeMutableBufferPointer<Float>) throws {
        try checkDimension(descriptors)
        try checkOutput(output)
        let codebook = search.codebook
        let k = codebook.k, d = codebook.dimension
        // The float64 sums live in the thread's workspace, reused image after image (a fresh
        // K·D array per image costs more in page faults than the sums themselves). They are
        // all 0 between calls, as the Fisher encoder expects of the same workspace.
        if workspace.accumulators.count < k * d { workspace.accumulators = [Double](repeating: 0, count: k * d) }
        var mass = [Int](repeating: 0, count: k)
        var assignments = [Int32](repeating: 0, count: RowScan.blockRows)
        try workspace.accumulators.withUnsafeMutableBufferPointer { accumulators in
            let sums = UnsafeMutableBufferPointer(rebasing: accumulators[0 ..< k * d])
            defer { sums.update(repeating: 0) }
            try RowScan.forEachBlock(descriptors, workspace: workspace) { block, firstRow in
                try assignments.withUnsafeMutableBufferPointer { assigned in
                    try search.assign(block, firstRow: firstRow, source: descriptors.source, workspace: workspace,
                                      assignments: assigned.baseAddress!)
                    codebook.centres.withUnsafeBufferPointer { centres in
                        for i in 0..<block.rows {
                            let c = Int(assigned[i])
                            let x = block.row(i), mu = centres.baseAddress! + c * d, v = sums.baseAddress! + c * d
                            for j in 0..<d { v[j] += Double(x[j]) - Double(mu[j]) }
                            mass[c] += 1
                        }
                    }
                }
            }
            for c in 0..<k {
                let block = UnsafeMutableBufferPointer(rebasing: sums[c * d ..< (c + 1) * d])
                if options.contains(.normalizeMass), mass[c] > 0 {
                    let scale = 1 / Double(mass[c])
                    for j in block.indices { block[j] *= scale }
                }
                if options.contains(.squareRoot) { Normalization.signedSquareRoot(block) }
                if options.contains(.normalizeComponents) { Normalization.normalizeL2(block) }
            }
            if !options.contains(.unnormalized) { Normalization.normalizeL2(sums) }
            for i in 0..<output.count { output[i] = Float(sums[i]) }
        }
    }
}
