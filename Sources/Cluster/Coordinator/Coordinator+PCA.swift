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
    /// coordinator reads the set block by block, raises every value to the power with its
    /// sign, L2-normalises each vector, and computes the components on its own threads
    /// (the workers read files only), through the covariance or the Gram matrix (see
    /// `CoordinatorSettings.setPCAMethod`).
    func acceptSetPCA(_ job: TrainingJob) throws -> UInt64 {
        guard let set = job.set, job.kind == .pca else { throw DescriptorError(.invalidArgument, "only a PCA is trained on a set") }
        let store = try requireStore(for: "set \"\(set)\"")
        _ = try settings.setPCAMethod(job, store: store)
        try checkName(of: job)
        let id = try jobs.add(job)
        logger.info("job \(id) accepted", metadata: ["kind": "pca", "set": "\(PeerText.escaped(set))", "k": "\(job.k)"])
        startSetPCA(id, job: job)
        return id
    }

    /// Runs a PCA of a set's vectors as a job task (again from the start if resumed).
    func startSetPCA(_ id: UInt64, job: TrainingJob) {
        let store = self.store, settings = self.settings
        execute(id, job: job, corpus: nil, initialization: .pca, resumingFrom: nil,
                checkpoints: .immediate(passes: { 0 })) {
            guard let store, let set = job.set else { throw Self.noStore(for: "sets") }
            let (method, keys) = try settings.setPCAMethod(job, store: store)
            return try StoredSetBackend(set: set, store: store, power: job.power ?? 0.5, method: method, keys: keys,
                                        shardRows: job.shardRows)
        }
    }
}

extension CoordinatorSettings {
    /// How the PCA `job` of a stored set is computed, its shapes checked against the limits:
    /// the D×D covariance when D·D ≤ `maximumModelValues`; else the N×N Gram matrix of the
    /// set's N vectors, when N·N ≤ `maximumModelValues` (then N < D), with the set's keys
    /// (at most ⌊√maximumModelValues⌋ + 1 are read to decide). D ≤ `maximumDimension`,
    /// D'·D ≤ `maximumModelValues`, and D' ≤ min(N − 1, D) (by either method).
    func setPCAMethod(_ job: TrainingJob, store: CodebookStore) throws -> (method: StoredSetBackend.Method, keys: [String]?) {
        guard let set = job.set else { throw DescriptorError(.invalidArgument, "a PCA of a set needs the set") }
        guard let value = try store.set(named: set) else { throw StoreError(.notFound, "no set named \"\(set)\"") }
        let d = try value.decode(SetRecord.self, key: "set \(set)").dimension
        _ = try TrainingJobRunner.validatePCA(job, rows: Int.max, dimension: d)
        try check("D", d, against: maximumDimension, setting: "maximumDimension")
        try check("D'·D (the components of D'=\(job.k), D=\(d))", saturatingProduct(job.k, d), against: maximumModelValues,
                  setting: "maximumModelValues")
        // N vectors span at most N − 1 dimensions around their mean: more components would be
        // noise, and whitening would divide by their eigenvalues of ~0.
        func checkComponents(of count: Int) throws {
            guard count >= 2, job.k <= count - 1 else {
                throw ClusteringError(.invalidArgument, "a PCA of the \(count) vectors of set \"\(set)\" (D=\(d)) keeps "
                                      + "1…\(max(1, count - 1)) components (asked for \(job.k))")
            }
        }
        let covariance = saturatingProduct(d, d)
        if covariance <= maximumModelValues {
            try checkComponents(of: try StoredSetBackend.keys(of: set, store: store, limit: job.k + 1).count)
            return (.covariance, nil)
        }
        var largest = Int(Double(maximumModelValues).squareRoot())
        while saturatingProduct(largest + 1, largest + 1) <= maximumModelValues { largest += 1 }
        while largest > 0, saturatingProduct(largest, largest) > maximumModelValues { largest -= 1 }
        let keys = try StoredSetBackend.keys(of: set, store: store, limit: largest + 1)
        guard keys.count <= largest else {
            throw ClusterError(.limit, "set \"\(set)\" is too large for a PCA: D·D (the covariance of D=\(d)) is \(covariance), "
                               + "and N·N (the Gram matrix of its \(keys.count) or more vectors) is at least \(keys.count * keys.count); "
                               + "both are above the coordinator's limit (maximumModelValues = \(maximumModelValues))")
        }
        try checkComponents(of: keys.count)
        return (.gram, keys)
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
