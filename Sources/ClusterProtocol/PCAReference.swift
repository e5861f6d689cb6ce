import Clustering

/// The PCA model a k-means or GMM model was trained through (a model record's `pca`): its
/// name and a checksum of its values, so that encoding with another PCA, or with the same
/// name after it was replaced, is refused.
public struct PCAReference: Codable, Sendable, Equatable {
    public var name: String
    /// "fnv1a64:" and 16 hex digits: FNV-1a (64-bit) over the little-endian bytes of the
    /// model's values (mean, components, eigenvalues), then one byte 1 if it whitens, else 0.
    public var checksum: String

    public init(name: String, projection: PCAProjection) {
        self.name = name
        checksum = Self.checksum(projection)
    }

    public static func checksum(_ projection: PCAProjection) -> String {
        var hash = FNV1a()
        let pca = projection.principalComponents
        for value in pca.mean + pca.components + pca.eigenvalues {
            var bits = value.bitPattern.littleEndian
            withUnsafeBytes(of: &bits) { hash.add($0) }
        }
        hash.add(projection.whiten ? 1 : 0)
        return "fnv1a64:" + hash.value.hexDigits
    }
}
