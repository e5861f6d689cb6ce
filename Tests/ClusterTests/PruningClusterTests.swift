@testable import Cluster
import ClusterProtocol
import Clustering
import Descriptors
import Foundation
import Testing

/// k-means on the cluster with the workers' bounds on and off: the same centres, bit for bit.
@Suite struct PruningClusterTests {
    static let rows = 20_000, dimension = 16, shardRows = 1_000

    static func job(_ corpus: String) -> TrainingJob {
        TrainingJob(kind: .kmeans, corpus: corpus, k: 24, iterations: 12, seed: 3, tolerance: 0, shardRows: shardRows,
                    initialization: .kmeansPlusPlus)
    }

    /// The centres and iteration records of the job on an embedded cluster.
    static func train(workers: Int, boundMemory: Int, corpus: String) async throws -> ([UInt32], [IterationRecord]) {
        let cluster = try EmbeddedCluster(workers: workers, threadsPerWorker: 1, boundMemory: boundMemory, logger: quietLogger())
        defer { cluster.shutdown() }
        let client = try cluster.client()
        var iterations: [IterationRecord] = []
        let (_, reply) = try await client.follow(try client.submit(job(corpus)), every: .milliseconds(10),
                                                 iteration: { iterations.append($0) })
        return (try reply.array(0, as: Float.self).map(\.bitPattern), iterations)
    }

    @Test(.timeLimit(.minutes(3)))
    func prunedWorkersGiveTheCentresOfUnprunedOnes() async throws {
        let corpus = try Corpora.path(rows: Self.rows, dimension: Self.dimension, clusters: 12)
        let (reference, plain) = try await Self.train(workers: 1, boundMemory: 0, corpus: corpus)
        #expect(plain.allSatisfy { ($0.skippedRows ?? 0) == 0 })
        for workers in [1, 3] {
            let (centres, iterations) = try await Self.train(workers: workers, boundMemory: BoundCache.gibibyte, corpus: corpus)
            #expect(centres == reference, "\(workers) worker(s)")
            #expect(iterations.map(\.total) == plain.map(\.total))
            // The shards go back to the worker holding their bounds, so late iterations skip most rows.
            let skipped = iterations.map { Double($0.skippedRows ?? 0) / Double($0.rows) }
            #expect(skipped.first == 0 && skipped.last! > 0.5, "\(workers) worker(s): skipped \(skipped)")
            // Distances skipped: none in the first pass, at least those of the rows skipped whole after.
            let distances = iterations.map { $0.skippedDistances ?? 0 }
            #expect(distances.first == 0 && zip(distances, skipped).allSatisfy { $0 >= $1 }, "\(workers) worker(s): \(distances)")
        }
    }

    @Test func aResultClaimingMoreSkippedRowsOrDistancesThanItHasIsRejected() throws {
        var statistics = KMeansStatistics(k: 2, dimension: 1)
        statistics.rows = 3
        statistics.counts = [1, 2]
        statistics.skippedRows = 4
        let pass = PassDescription(kind: .kmeansAssignment, dimension: 1, k: 2)
        #expect(throws: ClusterError.self) { try statistics.check(statistics.shape, against: pass, rows: 0..<3) }
        statistics.skippedRows = 3
        try statistics.check(statistics.shape, against: pass, rows: 0..<3)
        for pairs in [-1, 7] {
            statistics.skippedPairs = pairs
            #expect(throws: ClusterError.self) { try statistics.check(statistics.shape, against: pass, rows: 0..<3) }
        }
        statistics.skippedPairs = 6
        try statistics.check(statistics.shape, against: pass, rows: 0..<3)
    }

    /// Shards go back to the worker that computed them in the job's last pass while it has
    /// room (without affinity, the idle newcomer would get every other shard).
    @Test func aShardGoesBackToTheWorkerHoldingItsBounds() {
        typealias T = CoordinatorStateTests
        var state = CoordinatorState()
        _ = state.receive(T.ready("alice", threads: 4), from: T.alice, now: at(0))
        let first = T.tasks(state.start(T.spec(round: 1, shards: 4), now: at(0)))
        #expect(first.map(\.worker) == Array(repeating: T.alice, count: 4))
        for shard in 0..<4 { _ = state.receive(T.result(round: 1, shard: shard), from: T.alice, now: at(0.1)) }
        _ = state.receive(T.ready("bob", threads: 4), from: T.bob, now: at(0.2))
        let second = T.tasks(state.start(T.spec(round: 2, shards: 4), now: at(0.3)))
        #expect(second.map(\.shard) == [0, 1, 2, 3] && second.map(\.worker) == Array(repeating: T.alice, count: 4))
        // Another job has no affinity yet: least loaded first.
        let other = T.tasks(state.start(T.spec(job: 2, round: 1, shards: 2), now: at(0.4)))
        #expect(other.map(\.worker) == [T.bob, T.bob])
    }
}
