import Foundation

/// A model as the store keeps it (the metadata of a `models` value; Protocols/storage.md).
/// Values: centres (K·D) for k-means; means (K·D), variances (K·D), priors (K) for a GMM.
public struct ModelRecord: Codable, Sendable, Equatable {
    public var kind: TrainingJob.Kind
    public var k: Int
    public var dimension: Int
    /// "trained" (by a job, whose parameters and iterations follow) or "imported".
    public var source: String
    public var created: String
    public var corpus: String?
    public var corpusRows: Int?
    public var corpusBytes: Int?
    public var job: TrainingJob?
    public var varianceFloor: Double?
    public var training: [IterationRecord]?
    /// PCA: whether it whitens, and vector whitening's power law (a PCA of a set; absent for descriptors).
    public var whiten: Bool?
    public var power: Double?
    /// k-means and GMM trained on projected descriptors: the PCA model they need.
    public var pca: PCAReference?

    /// The number of float values a model of this shape stores; `nil` if K and D are
    /// negative or that number is past `Int.max` (a corrupt record).
    public var valueCount: Int? {
        let (kd, overflow) = k.multipliedReportingOverflow(by: dimension)
        guard k >= 0, dimension >= 0, !overflow else { return nil }
        switch kind {
        case .kmeans: return kd
        case .gmm:
            guard kd <= (Int.max - k) / 2 else { return nil }
            return 2 * kd + k
        case .pca:
            guard kd <= Int.max - k - dimension else { return nil }
            return dimension + kd + k
        }
    }

    public init(kind: TrainingJob.Kind, k: Int, dimension: Int, source: String, corpus: CorpusReference? = nil,
                job: TrainingJob? = nil, varianceFloor: Double? = nil, training: [IterationRecord]? = nil) {
        self.kind = kind
        self.k = k
        self.dimension = dimension
        self.source = source
        created = ISO8601DateFormatter().string(from: Date())
        self.corpus = corpus?.path
        corpusRows = corpus?.rows
        corpusBytes = corpus?.fileSize
        self.job = job
        self.varianceFloor = varianceFloor
        self.training = training
    }
}
