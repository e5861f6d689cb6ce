import CVLFeat

/// VLFeat 0.9.21's encoders on float32 data, called directly (the interoperability
/// baseline of Protocols/encodings.md). Both accumulate in float32 internally.
enum VLFeat {
    /// `vl_vlad_encode` with hard assignments given as a one-hot N×K float matrix.
    static func vlad(_ data: [Float], dimension d: Int, centres: [Float], k: Int,
                     assignments: [Int], flags: Int32) -> [Float] {
        let n = data.count / d
        var oneHot = [Float](repeating: 0, count: max(n * k, 1))
        for (i, c) in assignments.enumerated() { oneHot[i * k + c] = 1 }
        var encoded = [Float](repeating: 0, count: k * d)
        vl_vlad_encode(&encoded, vl_type(VL_TYPE_FLOAT), centres, vl_size(d), vl_size(k),
                       data, vl_size(n), oneHot, flags)
        return encoded
    }

    /// `vl_fisher_encode` (covariances are the variances σ²) and the number of terms it summed.
    static func fisher(_ data: [Float], model: GMM, flags: Int32) -> (vector: [Float], terms: Int) {
        let d = model.dimension, k = model.k
        var encoded = [Float](repeating: 0, count: 2 * k * d)
        let terms = vl_fisher_encode(&encoded, vl_type(VL_TYPE_FLOAT), model.means, vl_size(d), vl_size(k),
                                     model.variances, model.priors, data, vl_size(data.count / d), flags)
        return (encoded, Int(terms))
    }
}
