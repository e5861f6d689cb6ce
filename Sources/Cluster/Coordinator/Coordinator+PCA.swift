import Clustering
import Descriptors
import Storage

extension Coordinator {
    /// The corpus as a job's computations see it: for a job through a PCA (`pca`), its rows
    /// have the PCA's D' values; the PCA must take the corpus's D, and a shard's projected
    /// rows must fit `PCAProjection.maximumProjectedBytes`. A PCA job's D·D float64
    /// statistics are checked against `maximumModelValues` (and D against `maximumDimension`).
    func projectedCorpus(of job: TrainingJob, corpus: CorpusReference) throws -> CorpusReference {
        let d = corpus.dimension
        if job.kind == .pca {
            try settings.check("D", d, against: settings.maximumDimension, setting: "maximumDimension")
            try settings.check("D·D (the covariance statistics of D=\(d), float64 per shard result)", saturatingProduct(d, d),
                               against: settings.maximumModelValues, setting: "maximumModelValues")
            return corpus
        }
        guard let name = job.pca else { return corpus }
        let projection = try requireStore(for: "PCA models").principalComponents(named: name)
        guard projection.inputDimension == d else {
            throw DescriptorError(.dimensionMismatch, "PCA model \"\(name)\" takes rows of \(projection.inputDimension) values "
                                  + "but the corpus has \(d)", path: corpus.path)
        }
        let kept = projection.outputDimension
        let shardBytes = saturatingProduct(min(job.shardRows, corpus.rows), saturatingProduct(kept, 4))
        guard shardBytes <= PCAProjection.maximumProjectedBytes else {
            throw LimitExceeded("a shard's projected rows (\(min(job.shardRows, corpus.rows)) rows of \(kept) float32 values) "
                                + "take \(shardBytes) bytes, above the workers' limit (\(PCAProjection.maximumProjectedBytes)); "
                                + "use fewer rows per shard")
        }
        return CorpusReference(path: corpus.path, rows: corpus.rows, dimension: kept, fileSize: corpus.fileSize)
    }
}

extension ModelRecord {
    /// What a trained model's record says of PCAs: a PCA whether it whitens; a model trained
    /// through one, which (`job.pca`, projecting by `projection`).
    mutating func describe(_ job: TrainingJob, projection: PCAProjection?) {
        if job.kind == .pca { whiten = job.whiten ?? false }
        if let name = job.pca, let projection { pca = PCAReference(name: name, projection: projection) }
    }
}
