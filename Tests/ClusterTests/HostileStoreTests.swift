@testable import Cluster
import ClusterProtocol
import Descriptors
import Foundation
import Storage
import TestSupport
import Testing

/// Stores whose job records are hostile (written by hand or corrupted) and training jobs
/// whose numbers no run can use: the coordinator starts, serves, and refuses or fails them
/// with a reason.
@Suite(.serialized) struct HostileStoreTests {
    static func job(_ corpus: String, kind: TrainingJob.Kind = .kmeans, tolerance: Double = 0,
                    kmeansIterations: Int? = nil, varianceFloorRatio: Double? = nil) -> TrainingJob {
        TrainingJob(kind: kind, corpus: corpus, k: 4, iterations: 3, seed: 1, tolerance: tolerance, shardRows: 100,
                    initialization: kind == .kmeans ? .kmeansPlusPlus : .kmeans, kmeansIterations: kmeansIterations,
                    varianceFloorRatio: varianceFloorRatio)
    }

    /// A coordinator on a new store that holds `record` (and `values`) as job `id`.
    static func coordinator(storing record: JobRecord, values: [Float] = [], as id: UInt64,
                            in scratch: TemporaryDirectory) throws -> LocalCoordinator {
        let path = scratch.file("store")
        try CodebookStore(path: path).putJob(id, try StoredValue(kind: .job, metadata: record, values: values))
        return try LocalCoordinator(store: try CodebookStore(path: path))
    }

    /// A job stored under the largest id used to stop the coordinator from starting (an
    /// overflow trap numbering the next job), and STATUS never listed it (only ids below
    /// 2^64 − 1); now it starts, lists the job, and refuses new jobs, as no id is left after it.
    @Test(.timeLimit(.minutes(2))) func aJobOfTheLargestIdDoesNotStopTheCoordinator() async throws {
        let scratch = try TemporaryDirectory()
        let corpus = try Corpora.path(rows: 400, dimension: 8, clusters: 4, seed: 3)
        var record = JobRecord(job: Self.job(corpus), state: .succeeded, iterations: [], initialValues: 0)
        record.ended = Date().timeIntervalSince1970
        let cluster = try Self.coordinator(storing: record, as: .max, in: scratch)
        defer { cluster.stop() }
        let client = try cluster.client()
        #expect(try client.progress(of: .max, since: 0).state == .succeeded)
        #expect(try client.status().jobs.map(\.job) == [.max])
        let error = #expect(throws: ClusterError.self) { try client.submit(Self.job(corpus)) }
        #expect(error?.message.contains("no job ids are left: the store holds a job of id 18446744073709551614 or higher") == true,
                "\(String(describing: error))")
    }

    /// Job keys the coordinator cannot interpret: a key of 3 bytes stopped it from starting
    /// ("job key of 3 bytes, expected 8"), a job of id 0 (which the protocol uses for none)
    /// was loaded and listed, and an unreadable record was overwritten by a failed one, its
    /// bytes lost. Now it starts; the first two are skipped and left in the store as they
    /// were; the unreadable one is listed as failed and its bytes are kept under its
    /// quarantine key.
    @Test(.timeLimit(.minutes(2))) func uninterpretableJobKeysAreSkippedAndUnreadableRecordsKept() async throws {
        let scratch = try TemporaryDirectory()
        let corpus = try Corpora.path(rows: 400, dimension: 8, clusters: 4, seed: 3)
        var record = JobRecord(job: Self.job(corpus), state: .succeeded, iterations: [], initialValues: 0)
        record.ended = Date().timeIntervalSince1970
        let good = try StoredValue(kind: .job, metadata: record).bytes
        let unreadable = Array(good.prefix(good.count / 2))
        let path = scratch.file("store")
        do {
            let store = try CodebookStore(path: path)
            try store.putJob(0, try StoredValue(bytes: good, expecting: .job, key: ""))
            try store.putJob(2, try StoredValue(bytes: good, expecting: .job, key: ""))
        }
        do {
            let database = try Database(path: path, columnFamilies: CodebookStore.columnFamilies)
            let jobs = try #require(database.columnFamily(named: "jobs"))
            try database.put([0, 0, 1], good, in: jobs)
            try database.put(CodebookStore.jobKey(1), unreadable, in: jobs)
        }
        do {
            let cluster = try LocalCoordinator(store: try CodebookStore(path: path))
            defer { cluster.stop() }
            let client = try cluster.client()
            #expect(try client.status().jobs.map(\.job).sorted() == [1, 2])
            let failed = try client.progress(of: 1, since: 0)
            #expect(failed.state == .failed)
            #expect(failed.message?.hasPrefix("its stored record cannot be read: corrupt value: job 1") == true
                    && failed.message?.hasSuffix("its bytes are kept under jobs key 71756172616e74696e6564206a6f62200000000000000001") == true,
                    "\(String(describing: failed.message))")
        }
        let database = try Database(path: path, columnFamilies: CodebookStore.columnFamilies)
        let jobs = try #require(database.columnFamily(named: "jobs"))
        #expect(try database.get([0, 0, 1], in: jobs) == good)
        #expect(try database.get(CodebookStore.jobKey(0), in: jobs) == good)
        #expect(try database.get(CodebookStore.quarantinedJobKey(1), in: jobs) == unreadable)
    }

    /// One corrupt model or set failed CATALOG as a whole ("codebook models" listed
    /// nothing); now the readable ones are listed and the others reported with the reason.
    @Test(.timeLimit(.minutes(1))) func aCorruptModelOrSetDoesNotHideTheOthersFromTheCatalog() throws {
        let scratch = try TemporaryDirectory()
        let path = scratch.file("store")
        do {
            let store = try CodebookStore(path: path)
            let record = ModelRecord(kind: .kmeans, k: 2, dimension: 2, source: "imported")
            try store.putModel(named: "good", try StoredValue(kind: .model, metadata: record, values: [0, 0, 1, 1]), replace: false)
            try store.putModel(named: "short", try StoredValue(kind: .model, metadata: record, values: [0, 0, 1]), replace: false)
        }
        do {
            let database = try Database(path: path, columnFamilies: CodebookStore.columnFamilies)
            try database.put(Array("cut".utf8), [1, 2, 3], in: try #require(database.columnFamily(named: "models")))
            try database.put(Array("s".utf8), [1, 2, 3], in: try #require(database.columnFamily(named: "sets")))
        }
        let cluster = try LocalCoordinator(store: try CodebookStore(path: path))
        defer { cluster.stop() }
        let catalog = try cluster.client().catalog()
        #expect(catalog.models.map(\.name) == ["good"] && catalog.sets.isEmpty)
        #expect(catalog.unreadableModels?.map(\.name) == ["cut", "short"])
        #expect(catalog.unreadableModels?.last?.reason == "corrupt value: model short: 3 values for a kmeans of k=2, D=2",
                "\(String(describing: catalog.unreadableModels))")
        #expect(catalog.unreadableSets?.map(\.name) == ["s"])
        #expect(catalog.unreadableSets?.first?.reason.hasPrefix("corrupt value: set s:") == true, "\(String(describing: catalog.unreadableSets))")
    }

    /// A k-means job whose stored checkpoint is an EM one (a GMM's means, variances and
    /// priors, K·D values first) used to resume from those values as centres and succeed
    /// with a model no run computed; now it fails, saying why.
    @Test(.timeLimit(.minutes(2))) func aKMeansJobDoesNotResumeFromACheckpointOfAnotherPhase() async throws {
        let scratch = try TemporaryDirectory()
        let corpus = try Corpora.path(rows: 400, dimension: 8, clusters: 4, seed: 3)
        var record = JobRecord(job: Self.job(corpus), state: .running, iterations: [], initialValues: 0)
        record.checkpoint = CheckpointRecord(phase: .em, modelValues: 2 * 4 * 8 + 4, converged: false, varianceFloor: 1e-6)
        let values = [Float](repeating: 0, count: 4 * 8) + [Float](repeating: 1, count: 4 * 8) + [Float](repeating: 0.25, count: 4)
        let cluster = try Self.coordinator(storing: record, values: values, as: 1, in: scratch)
        defer { cluster.stop() }
        cluster.startWorker()
        let client = try cluster.client()
        try await waitUntil(timeout: 60) { try client.progress(of: 1, since: 0).state != .running }
        let progress = try client.progress(of: 1, since: 0)
        #expect(progress.state == .failed)
        #expect(progress.message?.hasPrefix("cannot resume after a restart: corrupt value: a k-means checkpoint of phase em") == true,
                "\(String(describing: progress.message))")
    }

    /// Numbers a run cannot use are refused at submission. They used to be accepted: NaN
    /// and 0 as variance floor ratios failed when the job started, an infinite one after
    /// the whole k-means initialisation, an infinite tolerance failed saying it was not
    /// ≥ 0, and k-means iterations below 1 were taken as 1.
    @Test(.timeLimit(.minutes(1))) func trainingNumbersNoRunCanUseAreRefusedAtSubmission() async throws {
        let corpus = try Corpora.path(rows: 400, dimension: 8, clusters: 4, seed: 3)
        let cluster = try LocalCoordinator()
        defer { cluster.stop() }
        let client = try cluster.client()
        let refused: [(TrainingJob, String)] = [
            (Self.job(corpus, tolerance: .infinity), "the tolerance must be finite and ≥ 0 (got inf)"),
            (Self.job(corpus, kind: .gmm, tolerance: .infinity), "the tolerance must be finite and ≥ 0 (got inf)"),
            (Self.job(corpus, kind: .gmm, varianceFloorRatio: .nan), "the variance floor ratio must be finite and > 0 (got nan)"),
            (Self.job(corpus, kind: .gmm, varianceFloorRatio: 0), "the variance floor ratio must be finite and > 0 (got 0.0)"),
            (Self.job(corpus, kind: .gmm, varianceFloorRatio: .infinity), "the variance floor ratio must be finite and > 0 (got inf)"),
            (Self.job(corpus, kind: .gmm, kmeansIterations: 0), "k-means iterations must be ≥ 1 (got 0)"),
            (Self.job(corpus, kind: .gmm, kmeansIterations: -3), "k-means iterations must be ≥ 1 (got -3)"),
        ]
        for (job, message) in refused {
            let error = #expect(throws: ClusterError.self) { try client.submit(job) }
            #expect(error?.message == "invalid argument: " + message, "\(String(describing: error))")
        }
        #expect(try client.status().jobs.isEmpty)
    }
}
