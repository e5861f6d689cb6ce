/// TRANSFORM-SET metadata: store the vectors of `set` projected by the PCA model `pca`
/// (vector whitening: power law, L2, projection, whitening, L2, each vector alone, as an
/// encoding with a whitening stores them) in the new set `into`. Answered with a
/// DESCRIBE-REPLY holding the new set's record.
public struct TransformSetRequest: Codable, Sendable, Equatable {
    public var set: String
    public var pca: String
    public var into: String

    public init(set: String, pca: String, into: String) {
        self.set = set
        self.pca = pca
        self.into = into
    }
}
