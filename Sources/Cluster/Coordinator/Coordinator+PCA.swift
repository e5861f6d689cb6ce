import ClusterProtocol
import Clustering
import Descriptors
import Storage

extension Coordinator {
    /// The corpus as a job's computations see it: for a job through a PCA (`pca`), its rows
    /// have the PCA's D' values; the PCA must take the corpus's D, and a shard's projected
    /// rows must fit `PCAProjection.maximumProjectedBytes`. A PCA job's D·D float64
    /// statistics are checked against `maximumModelValues` (and D against `maximumDimension`).
    /// Sets the job's `pcaChecksum` to the PCA's, or, if it has one (a resumed job), requires it.
    func projectedCorpus(of job: inout TrainingJob, corpus: CorpusReference) throws -> CorpusReference {
        let d = corpus.dimension
        if job.kind == .pca {
            try settings.check("D", d, against: settings.maximumDimension, setting: "maximumDimension")
            try settings.check("D·D (the covariance statistics of D=\(d), float64 per shard result)", saturatingProduct(d, d),
                               against: settings.maximumModelValues, setting: "maximumModelValues")
            return corpus
        }
        guard let name = job.pca else { return corpus }
        let store = try requireStore(for: "PCA models")
        let projection = try store.principalComponents(named: name)
        try store.requireSameTransform(pca: name, as: job.transform)
        if let checksum = job.pcaChecksum { try PCAReference.require(checksum, of: projection, named: name) }
        job.pcaChecksum = PCAReference.checksum(projection)
        guard projection.inputDimension == d else {
            throw DescriptorError(.dimensionMismatch, "PCA model \"\(name)\" takes rows of \(projection.inputDimension) values "
                                  + "but the corpus has \(d)", path: corpus.path)
        }
        let kept = projection.outputDimension
        let shardBytes = saturatingProduct(min(job.shardRows, corpus.rows), saturatingProduct(kept, 4))
        guard shardBytes <= PCAProjection.maximumProjectedBytes else {
            throw ClusterError(.limit, "a shard's projected rows (\(min(job.shardRows, corpus.rows)) rows of \(kept) float32 values) "
                                + "take \(shardBytes) bytes, above the workers' limit (\(PCAProjection.maximumProjectedBytes)); "
                                + "use fewer rows per shard")
        }
        return CorpusReference(path: corpus.path, rows: corpus.rows, dimension: kept, fileSize: corpus.fileSize)
    }
}

extension Coordinator {
    /// Validates a PCA of a stored set's vectors (vector whitening) and starts it: the
    /// coordinator reads the set, raises every value to the power with its sign,
    /// L2-normalises each vector, and runs the covariance pass over them on its own threads
    /// (the workers read files only). D·D is checked like a corpus's.
    func acceptSetPCA(_ job: TrainingJob) throws -> UInt64 {
        guard let set = job.set, job.kind == .pca else { throw DescriptorError(.invalidArgument, "only a PCA is trained on a set") }
        let store = try requireStore(for: "set \"\(set)\"")
        guard let value = try store.set(named: set) else { throw StoreError(.notFound, "no set named \"\(set)\"") }
        let record = try value.decode(SetRecord.self, key: "set \(set)")
        let shape = CorpusReference(path: "", rows: Int.max, dimension: record.dimension, fileSize: 0)
        var checked = job
        _ = try projectedCorpus(of: &checked, corpus: shape)
        _ = try TrainingJobRunner.validatePCA(job, rows: Int.max, dimension: record.dimension)
        try checkName(of: job)
        let id = try jobs.add(job)
        logger.info("job \(id) accepted", metadata: ["kind": "pca", "set": "\(PeerText.escaped(set))", "k": "\(job.k)"])
        startSetPCA(id, job: job)
        return id
    }

    /// Runs a PCA of a set's vectors as a job task (again from the start if resumed).
    func startSetPCA(_ id: UInt64, job: TrainingJob) {
        let store = self.store
        execute(id, job: job, corpus: nil, initialization: .pca, resumingFrom: nil,
                checkpoints: .immediate(passes: { 0 })) {
            guard let store, let set = job.set else { throw Self.noStore(for: "sets") }
            var vectors = try SetVectors(set: set, store: store)
            PCAProjection.prepareVectors(&vectors.values, dimension: vectors.dimension, power: job.power ?? 0.5)
            let matrix = try DescriptorMatrix(rows: vectors.keys.count, dimension: vectors.dimension, values: vectors.values,
                                          source: "set \(set)")
            return LocalBackend(corpus: matrix, shardRows: job.shardRows)
        }
    }
}

extension ModelRecord {
    /// What a trained model's record says of PCAs: a PCA whether it whitens; a model trained
    /// through one, which (`job.pca`, projecting by `projection`).
    mutating func describe(_ job: TrainingJob, projection: PCAProjection?) {
        if job.kind == .pca {
            whiten = job.whiten ?? false
            if job.set != nil { power = job.power ?? 0.5 }
        }
        if let name = job.pca, let projection { pca = PCAReference(name: name, projection: projection) }
    }
}
