import Descriptors
import Storage
import ZeroMQ

extension Coordinator {
    /// Validates a training job against its corpus (and the store, for a named model) and starts it.
    func accept(_ job: TrainingJob, arrays: [[UInt8]]) throws -> UInt64 {
        let job = try allowed(job)
        let corpus = try Self.corpusReference(job.corpus)
        let initialization = try TrainingJobRunner.validate(job, corpus: corpus, arrays: arrays)
        try settings.check(job, corpus: corpus)
        if let name = job.name {
            let store = try requireStore(for: "model \"\(name)\"")
            try CodebookStore.validate(name: name, of: "model")
            if job.replace != true, try store.model(named: name) != nil {
                throw ClusterError(.exists, "a model named \"\(name)\" exists")
            }
        }
        let initialValues = try arrays.flatMap { try Frame.decode($0, as: Float.self) }
        let id = try jobs.add(job, initialValues: initialValues)
        logger.info("job \(id) accepted", metadata: ["kind": "\(job.kind.rawValue)", "corpus": "\(PeerText.escaped(job.corpus))", "k": "\(job.k)"])
        launch(id, job: job, corpus: corpus, initialization: initialization, resumingFrom: nil)
        return id
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

    /// Runs a training job as a task: iterations and checkpoints go to the registry (and store).
    /// The task holds the coordinator only while the job runs (see `stop()`).
    func launch(_ id: UInt64, job: TrainingJob, corpus: CorpusReference, initialization: TrainingJobRunner.Initialization,
                resumingFrom resume: TrainingJobRunner.Checkpoint?, passesBefore: UInt32 = 0) {
        let done = trackJobTask()
        Task.detached(executorPreference: JobExecutor.shared) { [weak self] in
            await self?.run(id, job: job, corpus: corpus, initialization: initialization, resumingFrom: resume,
                            passesBefore: passesBefore)
            done.signal()
        }
    }

    private func run(_ id: UInt64, job: TrainingJob, corpus: CorpusReference, initialization: TrainingJobRunner.Initialization,
                     resumingFrom resume: TrainingJobRunner.Checkpoint?, passesBefore: UInt32) async {
        let backend = ClusterBackend(coordinator: self, job: id, corpus: corpus, shardRows: job.shardRows,
                                     passesBefore: passesBefore)
        let jobs = self.jobs
        do {
                let (outcome, _) = try await TrainingJobRunner.run(
                    job, id: id, initialization: initialization, backend: backend, resumingFrom: resume,
                    checkpoint: { checkpoint in
                        let (record, values) = switch checkpoint {
                        case .kmeans(let state): StoredCheckpoint.record(state)
                        case .gmm(let state): StoredCheckpoint.record(state)
                        }
                        try jobs.checkpoint(id, record: record, values: values, passes: backend.lastPass)
                    },
                    record: { [metrics] in
                        jobs.record($0, job: id)
                        metrics?.iterations.increment()
                    })
                var model: (name: String, value: StoredValue, replace: Bool)?
                if let name = job.name, let entry = jobs[id] {
                    let record = ModelRecord(kind: job.kind, k: outcome.k, dimension: outcome.dimension, source: "trained",
                                             corpus: corpus, job: job, varianceFloor: outcome.varianceFloor,
                                             training: entry.record.iterations)
                    model = (name, try StoredValue(kind: .model, metadata: record, values: entry.checkpointValues),
                             job.replace ?? false)
                }
                try jobs.succeed(id, outcome: outcome, model: model)
                logger.info("job \(id) finished", metadata: ["iterations": "\(outcome.iterations)"])
        } catch {
            jobs.fail(id, message: "\(error)")
            cancelPasses(of: id)
            if jobs[id]?.record.state == .failed { logger.warning("job \(id) failed", metadata: ["error": "\(PeerText.escaped("\(error)"))"]) }
        }
    }

    /// Brings back the store's jobs; those that were running resume: training from its last
    /// checkpoint, encoding with the images not yet stored.
    func resumeStoredJobs() throws {
        for (id, entry) in try jobs.restore() where entry.record.state == .running {
            guard settings.resumesStoredJobs else {
                jobs.fail(id, message: "abandoned: the embedded run that started it ended")
                continue
            }
            do {
                // At most two passes run between checkpoints; number the new ones well after.
                let stored = entry.record.passes ?? 0
                guard stored <= UInt32.max / 2 else { throw StoreError(.corrupt, "job \(id) claims \(stored) passes") }
                let passesBefore = stored + 16
                if let encoding = entry.record.encoding {
                    logger.info("encoding job \(id) resumed")
                    try startEncoding(id, job: try allowed(encoding), passesBefore: passesBefore)
                } else if let stored = entry.record.job {
                    let job = try allowed(stored)
                    let corpus = try Self.corpusReference(job.corpus)
                    let (initialization, resume) = try Self.resumePoint(job, entry: entry, corpus: corpus)
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
        guard let checkpoint = entry.record.checkpoint else { return (initialization, nil) }
        let values = entry.checkpointValues
        return (initialization, job.kind == .kmeans
            ? .kmeans(try StoredCheckpoint.kmeans(checkpoint, values: values, k: job.k, dimension: corpus.dimension))
            : .gmm(try StoredCheckpoint.gaussianMixture(checkpoint, values: values, k: job.k, dimension: corpus.dimension)))
    }
}
