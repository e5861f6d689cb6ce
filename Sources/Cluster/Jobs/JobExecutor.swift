import ClusterProtocol
import Dispatch

/// Runs the coordinator's job tasks on a dispatch queue of their own rather than Swift's
/// cooperative pool, so that jobs keep running when callers block pool threads (a
/// synchronous `stop()`, a blocking request in a test) and `stop()` can wait for them.
final class JobExecutor: TaskExecutor, @unchecked Sendable {
    // @unchecked Sendable: the queue is thread-safe and never reassigned.
    static let shared = JobExecutor()

    private let queue = DispatchQueue(label: "codebook.coordinator.jobs", attributes: .concurrent)

    func enqueue(_ job: consuming ExecutorJob) {
        let job = UnownedJob(job)
        queue.async { job.runSynchronously(on: self.asUnownedTaskExecutor()) }
    }
}
