import Logging

extension Coordinator {
    /// Logs that `job` (e.g. "encoding job 3") ended with `message`: as a failure, or, once the
    /// coordinator is stopping with its jobs kept in the store, as a job that resumes when a
    /// coordinator starts on the store again (a SIGTERM used to log "job 3 failed" for a job
    /// that then resumed).
    func logJobEnd(_ job: String, _ message: String) {
        if jobs.keepsStoredJobsForNextStart {
            logger.info("\(job) stopped with the coordinator; it resumes when a coordinator starts on this store")
        } else {
            logger.warning("\(job) failed", metadata: ["error": "\(PeerText.escaped(message))"])
        }
    }
}
