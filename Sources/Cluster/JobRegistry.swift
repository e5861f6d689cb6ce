import Clustering
import Storage
import Synchronization
import ZeroMQ

/// The coordinator's jobs: what clients submitted, how far each got, its last checkpoint
/// and its outcome. Shared by the I/O thread (which answers clients) and the tasks that run
/// the jobs. With a store, every change of a job is written to it (one value per job, so
/// each write is atomic) and `restore` brings the jobs back after a restart.
final class JobRegistry: Sendable {
    struct Entry: Sendable {
        var record: JobRecord
        var initialValues: [Float]
        var checkpointValues: [Float] = []
        /// Iterations done but not yet in a stored checkpoint: clients see them with it.
        var pendingIterations: [IterationRecord] = []

        /// The model arrays of a succeeded job: its last checkpoint's model.
        func modelArrays() throws -> [[UInt8]] {
            guard let outcome = record.outcome else { return [] }
            if outcome.kind == .kmeans { return [Frame.encode(checkpointValues)] }
            return try GaussianMixtureModel(k: outcome.k, dimension: outcome.dimension, concatenated: checkpointValues).frames
        }

        func storedValue() throws -> StoredValue {
            try StoredValue(kind: .job, metadata: record, values: initialValues + checkpointValues)
        }
    }

    let store: CodebookStore?
    private let entries = Mutex<(next: UInt64, jobs: [UInt64: Entry])>((1, [:]))
    /// Set when the coordinator stops and keeps its jobs: failures no longer reach the store.
    private let keepsStoredJobs = Atomic<Bool>(false)

    init(store: CodebookStore?) { self.store = store }

    /// Registers (and stores) a new job; returns its id.
    func add(_ job: TrainingJob?, encoding: EncodingJob? = nil, initialValues: [Float] = []) throws -> UInt64 {
        let (id, entry) = entries.withLock { state in
            let id = state.next
            state.next += 1
            let entry = Entry(record: JobRecord(job: job, encoding: encoding, state: .running, iterations: [],
                                                initialValues: initialValues.count),
                              initialValues: initialValues)
            state.jobs[id] = entry
            return (id, entry)
        }
        try store?.putJob(id, try entry.storedValue())
        return id
    }

    /// Loads every stored job; returns them for the caller to resume the running ones.
    func restore() throws -> [(id: UInt64, entry: Entry)] {
        guard let store else { return [] }
        let restored = try store.allJobs().map { id, value -> (UInt64, Entry) in
            let record = try value.decode(JobRecord.self, key: "job \(id)")
            guard record.initialValues >= 0, record.initialValues <= value.values.count else {
                throw StoreError(.corrupt, "job \(id): \(record.initialValues) initial values of \(value.values.count)")
            }
            return (id, Entry(record: record, initialValues: Array(value.values[..<record.initialValues]),
                              checkpointValues: Array(value.values[record.initialValues...])))
        }
        entries.withLock { state in
            for (id, entry) in restored {
                state.jobs[id] = entry
                state.next = max(state.next, id + 1)
            }
        }
        return restored.map { (id: $0.0, entry: $0.1) }
    }

    /// Holds an iteration until the checkpoint that follows it is stored.
    func record(_ iteration: IterationRecord, job: UInt64) {
        entries.withLock { $0.jobs[job]?.pendingIterations.append(iteration) }
    }

    /// Stores a job's checkpoint, then shows it and the iterations it completes to clients:
    /// an iteration a client was told of survives the coordinator's crash.
    func checkpoint(_ job: UInt64, record checkpoint: CheckpointRecord, values: [Float], passes: UInt32) throws {
        try storeThenShow(job) { entry in
            entry.record.iterations += entry.pendingIterations
            entry.pendingIterations = []
            entry.record.checkpoint = checkpoint
            entry.record.passes = passes
            entry.checkpointValues = values
        }
    }

    /// Applies `change` to a copy of the job's entry, stores it, and only then shows it to
    /// clients. For the job's own task, the one writer of these fields.
    private func storeThenShow(_ job: UInt64, _ change: (inout Entry) -> Void) throws {
        guard var entry = self[job] else { return }
        change(&entry)
        try store?.putJob(job, try entry.storedValue())
        entries.withLock { $0.jobs[job] = entry }
    }

    /// Marks a job succeeded; with a model name, stores the model in the same atomic batch.
    func succeed(_ job: UInt64, outcome: JobOutcome, model: (name: String, value: StoredValue, replace: Bool)?) throws {
        guard var entry = self[job] else { return }
        entry.record.state = .succeeded
        entry.record.outcome = outcome
        if let store {
            if let model {
                try store.putModel(named: model.name, model.value, replace: model.replace, job: (job, try entry.storedValue()))
            } else {
                try store.putJob(job, try entry.storedValue())
            }
        }
        entries.withLock { $0.jobs[job] = entry }
    }

    /// Counts an encoding job's stored images; with `total`, sets the total.
    func progress(_ job: UInt64, imagesDone: Int, total: Int? = nil) {
        entries.withLock { state in
            state.jobs[job]?.record.imagesDone = imagesDone
            if let total { state.jobs[job]?.record.imagesTotal = total }
        }
    }

    /// Marks an encoding job succeeded: stored first, then shown to clients.
    func finishEncoding(_ job: UInt64) throws {
        try storeThenShow(job) { $0.record.state = .succeeded }
    }

    func fail(_ job: UInt64, message: String) {
        let entry = entries.withLock { state -> Entry? in
            state.jobs[job]?.record.state = .failed
            state.jobs[job]?.record.message = message
            return state.jobs[job]
        }
        guard !keepsStoredJobs.load(ordering: .sequentiallyConsistent) else { return }
        if let entry, let value = try? entry.storedValue() { try? store?.putJob(job, value) }
    }

    /// From now on a failing job stays in the store as it is (running, with its last
    /// checkpoint): the coordinator is stopping, and the next one resumes it.
    func keepStoredJobsFromNowOn() { keepsStoredJobs.store(true, ordering: .sequentiallyConsistent) }

    subscript(job: UInt64) -> Entry? { entries.withLock { $0.jobs[job] } }

    var summaries: [JobSummary] {
        entries.withLock { state in
            state.jobs.keys.sorted().map { id in
                let record = state.jobs[id]!.record
                return JobSummary(job: id, kind: record.job?.kind.rawValue ?? record.encoding?.encoding.rawValue ?? "unknown",
                                  corpus: record.job?.corpus ?? record.encoding?.descriptors ?? "", state: record.state,
                                  iterations: record.iterations.count, lastValuePerRow: record.iterations.last?.valuePerRow,
                                  message: record.message)
            }
        }
    }
}
