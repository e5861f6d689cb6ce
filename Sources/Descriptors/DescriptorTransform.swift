/// A transform applied to every descriptor as it is read, before any computation sees it.
public enum DescriptorTransform: String, Codable, Sendable, Equatable {
    /// RootSIFT (Arandjelović & Zisserman, "Three things everyone should know to improve
    /// object retrieval", CVPR 2012): L1-normalise, then take the square root of each value,
    /// so that Euclidean distances between rows become Hellinger distances between the
    /// original histograms. Values are taken with their sign, `sign(x)·√(|x| / Σ|x|)`, which
    /// is the paper's transform for non-negative data such as SIFT; an all-zero row stays zero.
    case rootSIFT = "root-sift"

    /// Transforms `count` values at `row` in place.
    ///
    /// The L1 norm is summed in float64 and each value computed in float64, then rounded
    /// once to float32: the result is the float64 reference rounded.
    public func apply(_ row: UnsafeMutablePointer<Float>, count: Int) {
        switch self {
        case .rootSIFT:
            var norm = 0.0
            for j in 0..<count { norm += Double(row[j].magnitude) }
            guard norm > 0, norm.isFinite else { return }
            for j in 0..<count {
                let value = Double(row[j])
                let root = (value.magnitude / norm).squareRoot()
                row[j] = Float(value < 0 ? -root : root)
            }
        }
    }

    /// Transforms every row of a row-major buffer of `dimension`-value rows in place.
    public func apply(_ values: UnsafeMutableBufferPointer<Float>, dimension: Int) {
        guard let base = values.baseAddress, dimension > 0 else { return }
        for row in 0..<values.count / dimension { apply(base + row * dimension, count: dimension) }
    }
}
