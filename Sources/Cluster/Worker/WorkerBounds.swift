import ClusterProtocol
import Clustering

extension BoundCache {
    /// `computation`, with this cache attached if it is a k-means assignment pass over the
    /// corpus's own rows (a transformed pass computes in full): its shards' bounds are then
    /// kept here between the job's passes, scoped to the job and the corpus file, so bounds
    /// never describe other rows.
    func attach(to computation: any WireComputation, job: UInt64, corpus: CorpusReference) -> any WireComputation {
        guard var pass = computation as? KMeansAssignmentPass else { return computation }
        pass.bounds = self
        pass.boundScope = "job \(job) \(corpus.fileSize) \(corpus.path)"
        return pass
    }
}

extension BoundCache {
    /// `task` with the cache attached to its computation, if it is a k-means assignment.
    func attach(to task: ShardTask) -> ShardTask {
        ShardTask(header: task.header, assignment: task.assignment,
                  computation: attach(to: task.computation, job: task.header.job, corpus: task.assignment.corpus),
                  session: task.session, carriedRows: task.carriedRows)
    }
}
