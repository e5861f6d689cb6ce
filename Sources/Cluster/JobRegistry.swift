import Synchronization

/// The coordinator's jobs: what clients submitted, how far each got, and its outcome.
/// Shared by the I/O thread (which answers clients) and the tasks that run the jobs.
final class JobRegistry: Sendable {
    struct Record: Sendable {
        var job: TrainingJob
        var state: JobState = .running
        var iterations: [IterationRecord] = []
        var message: String?
        var outcome: (JobOutcome, [[UInt8]])?
    }

    private let records = Mutex<(next: UInt64, jobs: [UInt64: Record])>((1, [:]))

    func add(_ job: TrainingJob) -> UInt64 {
        records.withLock { state in
            let id = state.next
            state.next += 1
            state.jobs[id] = Record(job: job)
            return id
        }
    }

    func record(_ iteration: IterationRecord, job: UInt64) {
        records.withLock { $0.jobs[job]?.iterations.append(iteration) }
    }

    func succeed(_ job: UInt64, outcome: JobOutcome, arrays: [[UInt8]]) {
        records.withLock {
            $0.jobs[job]?.state = .succeeded
            $0.jobs[job]?.outcome = (outcome, arrays)
        }
    }

    func fail(_ job: UInt64, message: String) {
        records.withLock {
            $0.jobs[job]?.state = .failed
            $0.jobs[job]?.message = message
        }
    }

    subscript(job: UInt64) -> Record? { records.withLock { $0.jobs[job] } }

    var summaries: [JobSummary] {
        records.withLock { state in
            state.jobs.keys.sorted().map { id in
                let record = state.jobs[id]!
                return JobSummary(job: id, kind: record.job.kind, corpus: record.job.corpus, state: record.state,
                                  iterations: record.iterations.count, lastValuePerRow: record.iterations.last?.valuePerRow,
                                  message: record.message)
            }
        }
    }
}
