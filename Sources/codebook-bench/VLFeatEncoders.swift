import CVLFeat
import Clustering
import Descriptors

/// VLFeat 0.9.21's VLAD and Fisher encoders over one image at a time, the baseline of the
/// encode section. One instance per thread: it owns its scratch and a `VlKMeans` quantiser.
final class VLFeatImageEncoder {
    private let codebook: Codebook
    private let model: GaussianMixtureModel
    private let quantizer: UnsafeMutablePointer<VlKMeans>
    private var assignments: [UInt32] = []
    private var distances: [Float] = []
    private var soft: [Float] = []

    init(codebook: Codebook, model: GaussianMixtureModel) {
        // VLFeat's own OpenMP must not add threads to ours: per thread, so call it here.
        vl_set_num_threads(1)
        self.codebook = codebook
        self.model = model
        quantizer = vl_kmeans_new(vl_type(VL_TYPE_FLOAT), VlDistanceL2)!
        codebook.centres.withUnsafeBufferPointer {
            vl_kmeans_set_centers(quantizer, $0.baseAddress!, vl_size(codebook.dimension), vl_size(codebook.k))
        }
    }

    deinit { vl_kmeans_delete(quantizer) }

    /// vl_kmeans_quantize, then vl_vlad_encode with the one-hot assignment matrix.
    func vlad(_ rows: FloatRows, flags: Int32, into output: UnsafeMutablePointer<Float>) {
        let n = rows.rows, k = codebook.k, d = codebook.dimension
        precondition(rows.stride == d, "VLFeat needs contiguous rows")
        if assignments.count < n {
            assignments = [UInt32](repeating: 0, count: n)
            distances = [Float](repeating: 0, count: n)
        }
        if soft.count < n * k { soft = [Float](repeating: 0, count: n * k) }
        assignments.withUnsafeMutableBufferPointer { assigned in
            distances.withUnsafeMutableBufferPointer { distances in
                vl_kmeans_quantize(quantizer, assigned.baseAddress!, distances.baseAddress!, rows.base, vl_size(n))
            }
            soft.withUnsafeMutableBufferPointer { soft in
                let s = soft.baseAddress!
                s.update(repeating: 0, count: n * k)
                for i in 0..<n { s[i * k + Int(assigned[i])] = 1 }
                codebook.centres.withUnsafeBufferPointer { centres in
                    vl_vlad_encode(output, vl_type(VL_TYPE_FLOAT), centres.baseAddress!, vl_size(d), vl_size(k),
                                   rows.base, vl_size(n), s, flags)
                }
            }
        }
    }

    /// vl_fisher_encode; returns VLFeat's count of accumulated terms.
    @discardableResult
    func fisher(_ rows: FloatRows, flags: Int32, into output: UnsafeMutablePointer<Float>) -> Int {
        let d = model.dimension, k = model.k
        precondition(rows.stride == d, "VLFeat needs contiguous rows")
        return model.means.withUnsafeBufferPointer { means in
            model.variances.withUnsafeBufferPointer { variances in
                model.priors.withUnsafeBufferPointer { priors in
                    Int(vl_fisher_encode(output, vl_type(VL_TYPE_FLOAT), means.baseAddress!, vl_size(d), vl_size(k),
                                         variances.baseAddress!, priors.baseAddress!, rows.base, vl_size(rows.rows), flags))
                }
            }
        }
    }
}
