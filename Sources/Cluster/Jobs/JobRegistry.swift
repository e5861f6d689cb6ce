import ClusterProtocol
import Clustering
import Foundation
import Storage
import Synchronization

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
            switch outcome.kind {
            case .kmeans: return [Frame.encode(checkpointValues)]
            case .gmm: return try GaussianMixtureModel(k: outcome.k, dimension: outcome.dimension, concatenated: checkpointValues).frames
            case .pca: return try PCAProjection(k: outcome.k, dimension: outcome.dimension, values: checkpointValues, whiten: false).frames
            }
        }

        func storedValue() throws -> StoredValue {
            try StoredValue(kind: .job, metadata: record, values: initialValues + checkpointValues)
        }
    }

    /// What the registry admits and keeps (see `CoordinatorSettings`).
    struct Policy: Sendable {
        var maximumActiveJobs = Int.max
        var finishedJobsKept = Int.max
        var finishedJobLifetime = Double.infinity

        init() {}

        init(_ settings: CoordinatorSettings) {
            maximumActiveJobs = settings.maximumActiveJobs
            finishedJobsKept = settings.finishedJobsKept
            finishedJobLifetime = settings.finishedJobLifetime
        }
    }

    let store: CodebookStore?
    let policy: Policy
    /// `held`: jobs whose task still holds their sets after they ended (a cancelled transform
    /// deleting what it wrote).
    private let entries = Mutex<(next: UInt64, jobs: [UInt64: Entry], held: Set<UInt64>)>((1, [:], []))
    /// Held while a job's record is changed and stored: a job leaves `running` once, and a
    /// job's task never stores a record over its cancellation.
    private let writes = Mutex<Void>(())
    /// Set when the coordinator stops and keeps its jobs: failures no longer reach the store.
    private let keepsStoredJobs = Atomic<Bool>(false)

    init(store: CodebookStore?, policy: Policy = Policy()) {
        self.store = store
        self.policy = policy
    }

    /// Registers (and stores) a new job; returns its id. Refuses a job beyond
    /// `maximumActiveJobs`, and a job that writes a set another job writes or reads, or reads
    /// a set another job writes (a transform job holds its new set until its task has ended).
    func add(_ job: TrainingJob?, encoding: EncodingJob? = nil, extraction: ExtractionJob? = nil, transform: TransformSetJob? = nil,
             initialValues: [Float] = []) throws -> UInt64 {
        var record = JobRecord(job: job, encoding: encoding, extraction: extraction, transform: transform, state: .running,
                               iterations: [], initialValues: initialValues.count)
        // An extraction keeps its images while it runs, to start again after a restart.
        record.imagesTotal = extraction?.images.count
        let (id, entry) = try entries.withLock { state in
            let running = state.jobs.filter { $0.value.record.state == .running }
            guard running.count < policy.maximumActiveJobs else {
                throw ClusterError(.limit, "\(running.count) jobs are running, the coordinator's limit on running jobs "
                                   + "(maximumActiveJobs = \(policy.maximumActiveJobs)); wait for one to end or cancel one")
            }
            try Self.checkSets(of: record, against: state)
            // A store may hold the largest id (written by hand or corrupted): no id is left after it.
            guard state.next < .max else {
                throw ClusterError(.limit, "no job ids are left: the store holds a job of id \(UInt64.max - 1) or higher")
            }
            let id = state.next
            state.next += 1
            let entry = Entry(record: record, initialValues: initialValues)
            state.jobs[id] = entry
            if transform != nil { state.held.insert(id) }
            return (id, entry)
        }
        do {
            try store?.putJob(id, try entry.storedValue())
        } catch {
            entries.withLock { state in
                state.jobs.removeValue(forKey: id)
                state.held.remove(id)
            }
            throw error
        }
        prune()
        return id
    }

    /// Refuses a job that writes a set a running job (or a job's task that still holds its
    /// sets) writes or reads, or reads a set one writes, naming the set and the job.
    func checkSets(of record: JobRecord) throws {
        try entries.withLock { try Self.checkSets(of: record, against: $0) }
    }

    private static func checkSets(of record: JobRecord, against state: (next: UInt64, jobs: [UInt64: Entry], held: Set<UInt64>)) throws {
        guard let conflict = conflict(of: record, against: state) else { return }
        throw ClusterError(.conflict, "\(conflict): wait for job \(conflict.holder) to end or cancel it")
    }

    /// A set `record`'s job would write while another job writes or reads it, or read while
    /// another writes it.
    private struct Conflict: CustomStringConvertible {
        var set: String
        var holder: UInt64
        var holderWrites: Bool

        var description: String {
            holderWrites ? "set \"\(set)\" is being written by job \(holder); a set has one writer at a time"
                         : "set \"\(set)\" is being read by job \(holder); a set is not written while a job reads it"
        }
    }

    /// The first conflict of `record` with a running job (or a job's task that still holds
    /// its sets), by job id.
    private static func conflict(of record: JobRecord, against state: (next: UInt64, jobs: [UInt64: Entry], held: Set<UInt64>)) -> Conflict? {
        let holders = state.jobs.filter { $0.value.record.state == .running || state.held.contains($0.key) }
        for holder in holders.keys.sorted() {
            let other = holders[holder]!.record
            if let set = record.setsWritten.first(where: { other.setsWritten.contains($0) }) ?? record.setsRead.first(where: { other.setsWritten.contains($0) }) {
                return Conflict(set: set, holder: holder, holderWrites: true)
            }
            if let set = record.setsWritten.first(where: { other.setsRead.contains($0) }) {
                return Conflict(set: set, holder: holder, holderWrites: false)
            }
        }
        return nil
    }

    /// Loads every stored job; returns them for the caller to resume the running ones, and
    /// what it skipped, for the caller to log. A job whose stored value cannot be read
    /// (truncated, or not a job record) is stored again as failed, saying why, so that it is
    /// listed, never resumed, and pruned in time; its former bytes are kept under
    /// `CodebookStore.quarantinedJobKey(id)`. A key that is not a job id (id 0, which the
    /// protocol uses for none, or a key not of 8 bytes) is skipped and left as it is;
    /// quarantined values are skipped silently. A running job whose sets conflict with those
    /// of a running job restored before it (by id: the rule `add` applies) is stored as failed,
    /// naming the other job, and never started: it writes and deletes nothing.
    func restore() throws -> (jobs: [(id: UInt64, entry: Entry)], skipped: [String]) {
        guard let store else { return ([], []) }
        let now = Date().timeIntervalSince1970
        var restored: [(id: UInt64, entry: Entry)] = [], skipped: [String] = []
        for (key, id, bytes, value) in try store.jobValues() {
            guard let id, id != 0 else {
                if !CodebookStore.isQuarantinedJobKey(key) {
                    skipped.append("jobs key \(CodebookStore.hex(key)) is not a job id (8 bytes, not 0): its value is left in the store, not loaded")
                }
                continue
            }
            do {
                restored.append((id, try Self.entry(id, value.get(), now: now)))
            } catch {
                let quarantine = CodebookStore.hex(CodebookStore.quarantinedJobKey(id))
                var record = JobRecord(state: .failed, message: "its stored record cannot be read: \(error); its bytes are kept under jobs key \(quarantine)",
                                       iterations: [], initialValues: 0)
                record.ended = now
                let entry = Entry(record: record, initialValues: [])
                // Shown even if the store cannot take it (a full disk, say).
                do {
                    try store.quarantineJob(id, original: bytes, replacement: try entry.storedValue())
                } catch {
                    skipped.append("job \(id): its unreadable record could not be quarantined: \(error)")
                }
                restored.append((id, entry))
            }
        }
        var conflicting: [Int] = []
        entries.withLock { state in
            for index in restored.indices {
                let id = restored[index].id
                if restored[index].entry.record.state == .running, let conflict = Self.conflict(of: restored[index].entry.record, against: state) {
                    restored[index].entry.record.state = .failed
                    restored[index].entry.record.message = "cannot resume after a restart: \(conflict), and job \(conflict.holder) "
                        + "was restored before it"
                    restored[index].entry.record.ended = now
                    conflicting.append(index)
                }
                state.jobs[id] = restored[index].entry
                state.next = max(state.next, id == .max ? id : id + 1)
            }
        }
        for (id, entry) in conflicting.map({ restored[$0] }) {
            // Shown even if the store cannot take it: the job is not started either way.
            do {
                try store.putJob(id, try entry.storedValue())
            } catch {
                skipped.append("job \(id) failed (\(entry.record.message ?? "")) but could not be stored so: \(error)")
            }
        }
        prune()
        return (restored, skipped)
    }

    /// A stored job's entry; throws if its value is not a job record with its values, or
    /// holds more than one job.
    private static func entry(_ id: UInt64, _ value: StoredValue, now: Double) throws -> Entry {
        var record = try value.decode(JobRecord.self, key: "job \(id)")
        let kinds = [record.job != nil, record.encoding != nil, record.extraction != nil, record.transform != nil].count { $0 }
        guard kinds <= 1 else { throw StoreError(.corrupt, "job \(id) holds \(kinds) jobs (a record holds one)") }
        // Stored before jobs had an end time: counted from now.
        if record.state != .running && record.ended == nil { record.ended = now }
        guard record.initialValues >= 0, record.initialValues <= value.values.count else {
            throw StoreError(.corrupt, "job \(id): \(record.initialValues) initial values of \(value.values.count)")
        }
        return Entry(record: record, initialValues: Array(value.values[..<record.initialValues]),
                     checkpointValues: Array(value.values[record.initialValues...]))
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

    /// Applies `change` to a copy of the job's entry, stores it (with `write`, by default
    /// the record alone), and only then shows it to clients. Throws if the job is no longer
    /// running (cancelled, say): its task then ends. For the job's own task, the one writer
    /// of these fields besides `cancel`.
    private func storeThenShow(_ job: UInt64, _ change: (inout Entry) -> Void,
                               write: ((CodebookStore, Entry) throws -> Void)? = nil) throws {
        try writes.withLock { _ in
            guard var entry = self[job] else { return }
            guard entry.record.state == .running else {
                throw ClusterError(.conflict, "job \(job) \(entry.record.state == .cancelled ? "was cancelled" : "has ended")")
            }
            change(&entry)
            if let store { try write.map { try $0(store, entry) } ?? store.putJob(job, try entry.storedValue()) }
            entries.withLock { $0.jobs[job] = entry }
        }
    }

    /// Ends a running job as `state`: stored, shown, then older finished jobs pruned.
    private func end(_ job: UInt64, as state: JobState, _ change: (inout Entry) -> Void = { _ in },
                     write: ((CodebookStore, Entry) throws -> Void)? = nil) throws {
        try storeThenShow(job, { entry in
            change(&entry)
            // An ended extraction needs its images no more (they can be millions).
            entry.record.extraction?.images = []
            entry.record.state = state
            entry.record.ended = Date().timeIntervalSince1970
        }, write: write)
        prune()
    }

    /// Marks a job succeeded; with a model name, stores the model in the same atomic batch.
    func succeed(_ job: UInt64, outcome: JobOutcome, model: (name: String, value: StoredValue, replace: Bool)?) throws {
        try end(job, as: .succeeded, { $0.record.outcome = outcome }) { store, entry in
            if let model {
                try store.putModel(named: model.name, model.value, replace: model.replace, job: (job, try entry.storedValue()))
            } else {
                try store.putJob(job, try entry.storedValue())
            }
        }
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
        try end(job, as: .succeeded)
    }

    /// Counts an extraction job's images done, its descriptors and the images it skipped.
    func progress(_ job: UInt64, imagesDone: Int, descriptors: Int, skipped: [SkippedImageReport]) {
        entries.withLock { state in
            state.jobs[job]?.record.imagesDone = imagesDone
            state.jobs[job]?.record.descriptors = descriptors
            state.jobs[job]?.record.skipped = skipped
        }
    }

    /// Marks a transform job succeeded, storing its new set's record in the same atomic batch.
    func finishTransform(_ job: UInt64, set: (name: String, value: StoredValue)) throws {
        try end(job, as: .succeeded, write: { store, entry in try store.putSet(named: set.name, set.value, job: (job, try entry.storedValue())) })
    }

    /// The task of job `job` holds its sets until `release`, even once the job has ended.
    func hold(_ job: UInt64) { entries.withLock { _ = $0.held.insert(job) } }

    func release(_ job: UInt64) { entries.withLock { _ = $0.held.remove(job) } }

    /// Marks an extraction job succeeded, once its files are in place.
    func finishExtraction(_ job: UInt64) throws {
        try end(job, as: .succeeded)
    }

    /// Marks a running job failed (a job that ended already keeps its state). Once the
    /// coordinator keeps its stored jobs, only clients see the failure.
    func fail(_ job: UInt64, message: String) {
        let keeps = keepsStoredJobs.load(ordering: .sequentiallyConsistent)
        // Shown even if the store cannot take it (a full disk, say): the job is over either way.
        try? end(job, as: .failed, { $0.record.message = message }) { store, entry in
            if !keeps { try? store.putJob(job, try entry.storedValue()) }
        }
    }

    /// Marks a running job cancelled and stores it, so it is not resumed; returns its entry.
    /// Throws not-found for an unknown job, and an error for one that has ended.
    func cancel(_ job: UInt64) throws -> Entry {
        guard let entry = self[job] else { throw ClusterError(.notFound, "no job \(job)") }
        guard entry.record.state == .running else {
            throw ClusterError(.conflict, "job \(job) has already \(entry.record.state == .cancelled ? "been cancelled" : entry.record.state.rawValue); "
                               + "only a running job can be cancelled")
        }
        try end(job, as: .cancelled) { $0.record.message = "cancelled by a client" }
        return self[job] ?? entry
    }

    /// From now on a failing job stays in the store as it is (running, with its last
    /// checkpoint): the coordinator is stopping, and the next one resumes it.
    func keepStoredJobsFromNowOn() { keepsStoredJobs.store(true, ordering: .sequentiallyConsistent) }

    /// Whether jobs that fail from now on stay stored as running, to resume on the next start.
    var keepsStoredJobsForNextStart: Bool { keepsStoredJobs.load(ordering: .sequentiallyConsistent) }

    subscript(job: UInt64) -> Entry? { entries.withLock { $0.jobs[job] } }

    /// The running jobs, by id, then up to `limit` finished ones with ids below `before`,
    /// newest first; and the id to pass as `before` for the next page, if there is one.
    /// How many jobs are in each state, every state listed.
    func countsByState() -> [(state: JobState, count: Int)] {
        let states = entries.withLock { $0.jobs.values.map(\.record.state) }
        return [JobState.running, .succeeded, .failed, .cancelled].map { state in (state, states.count { $0 == state }) }
    }

    func summaries(finished limit: Int, before: UInt64? = nil) -> (jobs: [JobSummary], nextBefore: UInt64?) {
        entries.withLock { state in
            let ids = state.jobs.keys.sorted()
            let running = ids.filter { state.jobs[$0]!.record.state == .running }
            let finished = ids.reversed().filter { id in state.jobs[id]!.record.state != .running && before.map { id < $0 } ?? true }
            let page = finished.prefix(max(0, limit))
            let jobs = (running + page).map { id in
                let record = state.jobs[id]!.record
                return JobSummary(job: id, kind: record.kindName,
                                  corpus: record.job?.corpus ?? record.encoding?.descriptors ?? record.extraction?.descriptors
                                      ?? record.transform?.into ?? "",
                                  state: record.state,
                                  iterations: record.iterations.count, lastValuePerRow: record.iterations.last?.valuePerRow,
                                  message: record.message, imagesDone: record.imagesDone, imagesTotal: record.imagesTotal)
            }
            return (jobs, finished.count > page.count ? page.last : nil)
        }
    }

    /// Deletes the finished jobs beyond the policy (from the store too): all but the
    /// `finishedJobsKept` that ended last, and those that ended more than
    /// `finishedJobLifetime` seconds ago. The job with the highest id stays, so that a
    /// restarted coordinator numbers new jobs after it.
    private func prune() {
        let now = Date().timeIntervalSince1970
        let doomed = entries.withLock { state -> [UInt64] in
            let newest = state.jobs.keys.max()
            let finished = state.jobs.filter { $0.value.record.state != .running }
                .map { (id: $0.key, ended: $0.value.record.ended ?? now) }
                .sorted { ($0.ended, $0.id) > ($1.ended, $1.id) }
            let doomed = finished.enumerated()
                .filter { index, job in job.id != newest && (index >= policy.finishedJobsKept || now - job.ended > policy.finishedJobLifetime) }
                .map(\.element.id)
            for id in doomed { state.jobs.removeValue(forKey: id) }
            return doomed
        }
        guard !doomed.isEmpty, !keepsStoredJobs.load(ordering: .sequentiallyConsistent) else { return }
        try? store?.deleteJobs(doomed)
    }
}
