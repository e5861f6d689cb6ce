@testable import Cluster
import Storage
import TestSupport
import Testing

/// What the registry shows clients and what it stores, checked against each other.
struct JobRegistryTests {
    static func iteration(_ index: Int) -> IterationRecord {
        IterationRecord(phase: "kmeans", iteration: index, valuePerRow: 1, total: 10, rows: 10, seconds: 0, repaired: 0,
                        smallest: 1, largest: 9)
    }

    /// An iteration is shown to clients only once the checkpoint after it is stored, so a
    /// coordinator killed in between never leaves a client told of an iteration the store lacks.
    @Test func anIterationIsShownOnlyWithItsStoredCheckpoint() throws {
        let scratch = try TemporaryDirectory()
        let store = try CodebookStore(path: scratch.file("store"))
        let registry = JobRegistry(store: store)
        let job = TrainingJob(kind: .kmeans, corpus: "corpus.npy", k: 2, iterations: 5, seed: 1, tolerance: 0, shardRows: 10,
                              initialization: "kmeans++")
        let id = try registry.add(job)
        let checkpoint = CheckpointRecord(phase: "kmeans", modelValues: 4, converged: false)

        for index in 0..<2 {
            registry.record(Self.iteration(index), job: id)
            #expect(registry[id]?.record.iterations.count == index, "iteration \(index) shown before its checkpoint")
            try registry.checkpoint(id, record: checkpoint, values: [1, 2, 3, Float(index)], passes: UInt32(index + 1))
            let shown = try #require(registry[id])
            let stored = try #require(try store.job(id)).decode(JobRecord.self, key: "job \(id)")
            #expect(shown.record.iterations == (0...index).map(Self.iteration))
            #expect(stored.iterations == shown.record.iterations)
            #expect(stored.passes == UInt32(index + 1))
            #expect(shown.checkpointValues == [1, 2, 3, Float(index)])
        }
    }
}
