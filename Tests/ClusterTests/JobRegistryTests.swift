@testable import Cluster
import ClusterProtocol
import Foundation
import Storage
import TestSupport
import Testing

/// What the registry shows clients and what it stores, checked against each other.
struct JobRegistryTests {
    static func iteration(_ index: Int) -> IterationRecord {
        IterationRecord(phase: .kmeans, iteration: index, valuePerRow: 1, total: 10, rows: 10, seconds: 0, repaired: 0,
                        smallest: 1, largest: 9)
    }

    /// An iteration is shown to clients only once the checkpoint after it is stored, so a
    /// coordinator killed in between never leaves a client told of an iteration the store lacks.
    @Test func anIterationIsShownOnlyWithItsStoredCheckpoint() throws {
        let scratch = try TemporaryDirectory()
        let store = try CodebookStore(path: scratch.file("store"))
        let registry = JobRegistry(store: store)
        let job = TrainingJob(kind: .kmeans, corpus: "corpus.npy", k: 2, iterations: 5, seed: 1, tolerance: 0, shardRows: 10,
                              initialization: .kmeansPlusPlus)
        let id = try registry.add(job)
        let checkpoint = CheckpointRecord(phase: .kmeans, modelValues: 4, converged: false)

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

/// Job records stored before `initialization` and `phase` were enums still decode, and encode
/// back with the same spellings.
struct StoredJobRecordTests {
    /// The metadata of a running GMM job as a coordinator wrote it when these fields were strings.
    static let oldRecord = #"""
        {"checkpoint":{"converged":false,"dataVariances":[1,2],"modelValues":4,"phase":"kmeans","varianceFloor":0.0002},\#
        "initialValues":0,"iterations":[\#
        {"iteration":0,"largest":9,"phase":"seeding","repaired":0,"rows":10,"seconds":0,"smallest":1,"total":10,"valuePerRow":1},\#
        {"iteration":0,"largest":9,"phase":"kmeans","repaired":0,"rows":10,"seconds":0,"smallest":1,"total":10,"valuePerRow":1},\#
        {"iteration":0,"largest":0.6,"phase":"em","repaired":0,"rows":10,"seconds":0,"smallest":0.4,"total":-10,"valuePerRow":-1}],\#
        "job":{"corpus":"corpus.npy","initialization":"kmeans||","iterations":5,"k":2,"kind":"gmm","kmeansIterations":3,\#
        "seed":1,"shardRows":10,"tolerance":0,"varianceFloorRatio":0.0001},"passes":7,"state":"running"}
        """#

    @Test func aJobRecordStoredBeforeTheEnumsDecodesAndKeepsItsSpellings() throws {
        let record = try StoredValue.decodeMetadata(JobRecord.self, from: Array(Self.oldRecord.utf8), of: .job, key: "job 1")
        #expect(record.job?.initialization == .kmeansParallel)
        #expect(record.iterations.map(\.phase) == [.seeding, .kmeans, .em])
        #expect(record.checkpoint?.phase == .kmeans)
        let again = try StoredValue(kind: .job, metadata: record).metadata
        #expect(String(decoding: again, as: UTF8.self) == Self.oldRecord)
        for initialization in TrainingJob.InitializationMethod.allCases {
            let job = Self.oldRecord.replacingOccurrences(of: #""kmeans||""#, with: "\"\(initialization.rawValue)\"")
            #expect(try StoredValue.decodeMetadata(JobRecord.self, from: Array(job.utf8), of: .job, key: "job 1")
                        .job?.initialization == initialization)
        }
    }
}
