import ClusterProtocol
import Clustering
import Descriptors
import Storage

extension Coordinator {
    /// Validates a training job against its corpus (and the store, for a named model) and starts it.
    func accept(_ job: TrainingJob, arrays: [[UInt8]]) throws -> UInt64 {
        if job.set != nil { return try acceptSetPCA(job) }
        var job = try allowed(job)
        job.pcaChecksum = nil
        let corpus = try Self.corpusReference(job.corpus)
        let seen = try projectedCorpus(of: &job, corpus: corpus)
        let initialization = try TrainingJobRunner.validate(job, corpus: seen, arrays: arrays)
        try settings.check(job, corpus: seen)
        try checkName(of: job)
        let initialValues = try arrays.flatMap { try Frame.decode($0, as: Float.self) }
        let id = try jobs.add(job, initialValues: initialValues)
        logger.info("job \(id) accepted", metadata: ["kind": "\(job.kind.rawValue)", "corpus": "\(PeerText.escaped(job.corpus))", "k": "\(job.k)"])
        launch(id, job: job, corpus: corpus, initialization: initialization, resumingFrom: nil)
        return id
    }

    /// Refuses a job whose model name is invalid, or taken without `replace`.
    func checkName(of job: TrainingJob) throws {
        if let name = job.name {
            let store = try requireStore(for: "model \"\(name)\"")
            try CodebookStore.validate(name: name, of: "model")
            if job.replace != true, try store.model(named: name) != nil {
                throw ClusterError(.exists, "a model named \"\(name)\" exists")
            }
        }
    }

    func requireStore(for what: String) throws -> CodebookStore {
        guard let store else { throw Self.noStore(for: what) }
        return store
    }

    /// The error for a request that needs the store this coordinator was started without.
    static func noStore(for what: String) -> ClusterError {
        ClusterError(.notFound, "this coordinator has no store to keep \(what) in")
    }

    static func corpusReference(_ path: String) throws -> CorpusReference {
        let matrix = try DescriptorMatrix.open(path: path)
        return CorpusReference(path: path, rows: matrix.rows, dimension: matrix.dimension, fileSize: matrix.file?.size ?? 0)
    }

    /// Runs a training job on the workers as a task: iterations and checkpoints go to the
    /// registry (and store).
    func launch(_ id: UInt64, job: TrainingJob, corpus: CorpusReference, initialization: TrainingJobRunner.Initialization,
                resumingFrom resume: TrainingJobRunner.Checkpoint?, passesBefore: UInt32 = 0) {
        let backend = ClusterBackend(coordinator: self, job: id, corpus: corpus, shardRows: job.shardRows,
                                     passesBefore: passesBefore)
        execute(id, job: job, corpus: corpus, initialization: initialization, resumingFrom: resume,
                checkpoints: .beforeNextPass(of: backend)) { backend }
    }

    /// Runs a training job as a task over the backend `makeBackend` gives (called in the
    /// task; what it throws fails the job). The task holds the coordinator only while the job
    /// runs (see `stop()`).
    func execute<Backend: StatisticsBackend>(_ id: UInt64, job: TrainingJob, corpus: CorpusReference?,
                                             initialization: TrainingJobRunner.Initialization,
                                             resumingFrom resume: TrainingJobRunner.Checkpoint?,
                                             checkpoints: CheckpointTiming,
                                             makeBackend: @escaping @Sendable () throws -> Backend) {
        let done = trackJobTask()
        Task.detached(executorPreference: JobExecutor.shared) { [weak self] in
            await self?.run(id, job: job, corpus: corpus, initialization: initialization, resumingFrom: resume,
                            checkpoints: checkpoints, makeBackend: makeBackend)
            done.signal()
        }
    }

    private func run<Backend: StatisticsBackend>(_ id: UInt64, job: TrainingJob, corpus: CorpusReference?,
                                                 initialization: TrainingJobRunner.Initialization,
                                                 resumingFrom resume: TrainingJobRunner.Checkpoint?,
                                                 checkpoints: CheckpointTiming,
                                                 makeBackend: () throws -> Backend) async {
        let jobs = self.jobs
        do {
                let backend = try makeBackend()
                let projection = try job.pca.map { try requireStore(for: "PCA models").principalComponents(named: $0) }
                if let projection, let name = job.pca, let checksum = job.pcaChecksum {
                    try PCAReference.require(checksum, of: projection, named: name)
                }
                let (outcome, _) = try await TrainingJobRunner.run(
                    job, id: id, initialization: initialization, backend: backend, projection: projection, resumingFrom: resume,
                    checkpoint: { checkpoint in
                        let (record, values) = StoredCheckpoint.record(checkpoint)
                        // Written before the next pass's tasks go out (a `persist` directive of
                        // the coordinator's state machine), or below after the last pass.
                        let passes = checkpoints.passes()
                        try checkpoints.hold { try jobs.checkpoint(id, record: record, values: values, passes: passes) }
                    },
                    record: { [metrics] in
                        jobs.record($0, job: id)
                        metrics?.iterations.increment()
                    })
                try checkpoints.release()
                var model: (name: String, value: StoredValue, replace: Bool)?
                if let name = job.name, let entry = jobs[id] {
                    var record = ModelRecord(kind: job.kind, k: outcome.k, dimension: outcome.dimension, source: "trained",
                                             corpus: corpus, job: job, varianceFloor: outcome.varianceFloor,
                                             training: entry.record.iterations)
                    record.describe(job, projection: projection)
                    model = (name, try StoredValue(kind: .model, metadata: record, values: entry.checkpointValues),
                             job.replace ?? false)
                }
                try jobs.succeed(id, outcome: outcome, model: model)
                logger.info("job \(id) finished", metadata: ["iterations": "\(outcome.iterations)"])
        } catch {
            jobs.fail(id, message: "\(error)")
            cancelPasses(of: id)
            if jobs[id]?.record.state == .failed { logJobEnd("job \(id)", "\(error)") }
        }
    }

    /// Brings back the store's jobs; those that were running resume: training from its last
    /// checkpoint, encoding with the images not yet stored.
    func resumeStoredJobs() throws {
        let (restored, skipped) = try jobs.restore()
        for reason in skipped { logger.warning("stored job skipped", metadata: ["reason": "\(PeerText.escaped(reason))"]) }
        for (id, entry) in restored where entry.record.state == .running {
            guard settings.resumesStoredJobs else {
                jobs.fail(id, message: "abandoned: the embedded run that started it ended")
                continue
            }
            do {
                // At most two passes run between checkpoints; number the new ones well after.
                let stored = entry.record.passes ?? 0
                guard stored <= UInt32.max / 2 else { throw StoreError(.corrupt, "job \(id) claims \(stored) passes") }
                let passesBefore = stored + 16
                if let transform = entry.record.transform {
                    try resumeTransform(id, job: transform)
                } else if entry.record.extraction != nil {
                    try resumeExtraction(id, record: entry.record, passesBefore: passesBefore)
                } else if let encoding = entry.record.encoding {
                    logger.info("encoding job \(id) resumed")
                    try startEncoding(id, job: try allowed(encoding), passesBefore: passesBefore)
                } else if let stored = entry.record.job, stored.set != nil {
                    logger.info("job \(id) (a PCA of set \(PeerText.escaped(stored.set!))) started again")
                    startSetPCA(id, job: stored)
                } else if let stored = entry.record.job {
                    var job = try allowed(stored)
                    let corpus = try Self.corpusReference(job.corpus)
                    let (initialization, resume) = try Self.resumePoint(job, entry: entry,
                                                                        corpus: try projectedCorpus(of: &job, corpus: corpus))
                    logger.info("job \(id) resumed", metadata: ["iterations done": "\(entry.record.iterations.count)"])
                    launch(id, job: job, corpus: corpus, initialization: initialization, resumingFrom: resume,
                           passesBefore: passesBefore)
                }
            } catch {
                jobs.fail(id, message: "cannot resume after a restart: \(error)")
                logger.warning("job \(id) cannot resume", metadata: ["error": "\(PeerText.escaped("\(error)"))"])
            }
        }
    }

    private static func resumePoint(_ job: TrainingJob, entry: JobRegistry.Entry, corpus: CorpusReference) throws
        -> (TrainingJobRunner.Initialization, TrainingJobRunner.Checkpoint?) {
        // A stored k too large for the corpus makes no arrays here; `validate` rejects it.
        let (kd, overflow) = job.k.multipliedReportingOverflow(by: corpus.dimension)
        let counts = job.initialization != .given || overflow || kd < 0 ? [] : job.kind == .kmeans ? [kd] : [kd, kd, job.k]
        var arrays: [[UInt8]] = [], offset = 0
        for count in counts where offset + count <= entry.initialValues.count {
            arrays.append(Frame.encode(Array(entry.initialValues[offset ..< offset + count])))
            offset += count
        }
        let initialization = try TrainingJobRunner.validate(job, corpus: corpus, arrays: arrays)
        // A PCA job is one pass: it runs again.
        guard job.kind != .pca, let checkpoint = entry.record.checkpoint else { return (initialization, nil) }
        let values = entry.checkpointValues
        return (initialization, job.kind == .kmeans
            ? .kmeans(try StoredCheckpoint.kmeans(checkpoint, values: values, k: job.k, dimension: corpus.dimension))
            : .gmm(try StoredCheckpoint.gaussianMixture(checkpoint, values: values, k: job.k, dimension: corpus.dimension)))
    }
}
