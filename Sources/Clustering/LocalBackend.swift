import Descriptors
import Foundation
import Synchronization

/// Runs shard computations on threads of this process over a memory-mapped corpus.
///
/// Each shard runs on one thread and results are merged in shard order, so the statistics
/// are bit-identical for any thread count.
public struct LocalBackend: StatisticsBackend {
    public let corpus: DescriptorMatrix
    public let plan: ShardPlan
    public let threads: Int
    public let assignmentBounds: BoundCache?
    public let seedingDistances: DistanceCache?

    /// - Parameters:
    ///   - shardRows: rows per shard (the unit of work and of determinism).
    ///   - threads: worker threads (default: one per core).
    ///   - boundMemory: bytes of k-means distance bounds kept between iterations, so that
    ///     rows which cannot change centre are skipped (see `KMeansAssignmentPass`); 0 keeps none.
    ///   - seedingMemory: bytes of k-means‖ distances kept between rounds, so that a round
    ///     measures only the candidates the previous one added (see `KMeansParallelRoundPass`);
    ///     0 keeps none.
    public init(corpus: DescriptorMatrix, shardRows: Int = ShardPlan.defaultShardRows,
                threads: Int = ProcessInfo.processInfo.activeProcessorCount,
                boundMemory: Int = 0, seedingMemory: Int = DistanceCache.seedingDefault) {
        self.corpus = corpus
        self.plan = ShardPlan(totalRows: corpus.rows, shardRows: shardRows)
        self.threads = max(1, threads)
        assignmentBounds = boundMemory > 0 ? BoundCache(budget: boundMemory) : nil
        seedingDistances = seedingMemory > 0 ? DistanceCache(budget: seedingMemory) : nil
    }

    public var rows: Int { corpus.rows }
    public var dimension: Int { corpus.dimension }

    public func run<C: ShardComputation>(_ computation: C) async throws -> C.Statistics {
        let merger = Mutex(OrderedMerger<C.Statistics>(shardCount: plan.count))
        let corpus = self.corpus, plan = self.plan
        try await ParallelWork.run(count: plan.count, threads: threads) { shard, workspace in
            let statistics = try computation.statistics(of: corpus.slice(plan.rows(of: shard)), shard: shard,
                                                        workspace: workspace)
            merger.withLock { _ = $0.add(statistics, shard: shard) }
        }
        guard let result = merger.withLock({ $0.result }) else {
            throw ClusteringError(.invalidArgument, "the corpus has no rows")
        }
        return result
    }
}
