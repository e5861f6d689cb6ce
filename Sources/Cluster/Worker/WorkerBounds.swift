import ClusterProtocol
import Clustering

/// What a worker keeps about the shards it computed between a job's passes: k-means bounds
/// and k-means‖ distances, each within its own budget (nil: none kept).
struct WorkerCaches: Sendable {
    let bounds: BoundCache?
    let distances: DistanceCache?

    init(boundMemory: Int, seedingMemory: Int) {
        bounds = boundMemory > 0 ? BoundCache(budget: boundMemory) : nil
        distances = seedingMemory > 0 ? DistanceCache(budget: seedingMemory) : nil
    }

    /// `computation`, with a cache attached if it is a k-means assignment pass or a k-means‖
    /// round over the corpus's own rows (a transformed pass computes in full): its shards'
    /// state is then kept between the job's passes, scoped to the job and the corpus file,
    /// so it never describes other rows.
    func attach(to computation: any WireComputation, job: UInt64, corpus: CorpusReference) -> any WireComputation {
        let scope = "job \(job) \(corpus.fileSize) \(corpus.path)"
        if let bounds, var pass = computation as? KMeansAssignmentPass {
            pass.bounds = bounds
            pass.boundScope = scope
            return pass
        }
        if let distances, var pass = computation as? KMeansParallelRoundPass {
            pass.distances = distances
            pass.distanceScope = scope
            return pass
        }
        return computation
    }

    /// `task` with a cache attached to its computation (see above).
    func attach(to task: ShardTask) -> ShardTask {
        ShardTask(header: task.header, assignment: task.assignment,
                  computation: attach(to: task.computation, job: task.header.job, corpus: task.assignment.corpus),
                  session: task.session, carriedRows: task.carriedRows)
    }
}
