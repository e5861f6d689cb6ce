@testable import Cluster
import ClusterProtocol
import Foundation
import Storage
import TestSupport
import Testing

/// TRANSFORM-SET as a job: listed, followed and cancelled like the others, refused beside a
/// job writing one of its sets, and started again after a restart (a stored record that
/// cannot be started again fails with a reason).
@Suite(.serialized) struct TransformJobTests {
    typealias Fixture = TransformSetThreadTests

    /// STATUS lists it (kind "transform", its new set, its vectors), PROGRESS counts its vectors, its new
    /// set has no record until it is whole, and CANCEL ends it: the waiting client gets the
    /// reason and the vectors written are deleted. The old code listed no job.
    @Test(.timeLimit(.minutes(3))) func aTransformIsFollowedAndCancelledAsAJob() async throws {
        let scratch = try TemporaryDirectory()
        let count = 150_000
        let (cluster, store) = try Fixture.cluster(scratch, count: count)
        defer { cluster.stop() }
        let task = try Fixture.transform(cluster, into: "t")
        let client = try cluster.client()
        let id = try await Fixture.waitForTransformJob(client)
        let summary = try #require(try client.status().jobs.first { $0.job == id })
        #expect(summary.kind == "transform" && summary.corpus == "t")
        // STATUS counts its vectors too (it gave no count), and PROGRESS names its kind.
        #expect(summary.imagesTotal == count && (summary.imagesDone ?? 0) > 0, "\(summary)")
        let progress = try client.progress(of: id, since: 0)
        #expect(progress.imagesTotal == count && progress.kind == "transform", "\(progress)")
        #expect(throws: ClusterError.self) { try client.describe(DescribeRequest(set: "t")) }
        #expect(try client.cancel(id).state == .cancelled)
        let error = await #expect(throws: ClusterError.self) { try await task.value }
        #expect(error?.message == "job \(id) was cancelled before set \"t\" was written; it is deleted", "\(String(describing: error))")
        #expect(try store.set(named: "t") == nil)
        #expect(try store.vectorKeys(prefix: "t/", limit: 1).isEmpty)
    }

    /// While a transform of "big" into "t" runs, a second transform into "t", and encoding jobs
    /// replacing "big" or "t", are refused naming the job that holds the set (the old
    /// coordinator queued the transform behind the first, and let the encoding jobs start).
    @Test(.timeLimit(.minutes(3))) func writersOfTheSetsOfARunningTransformAreRefusedNamingTheJob() async throws {
        let scratch = try TemporaryDirectory()
        let (cluster, _) = try Fixture.cluster(scratch, count: 150_000)
        defer { cluster.stop() }
        let corpus = try Corpora.path(rows: 1_000, dimension: 4)
        let client = try cluster.client()
        try JobFixtures.importModel(client, name: "M", k: 4, corpus: corpus)
        let index = try JobFixtures.index(scratch, "index.tsv", count: 10)
        let first = try Fixture.transform(cluster, into: "t")
        let id = try await Fixture.waitForTransformJob(client)
        let writing = "is being written by job \(id); a set has one writer at a time: wait for job \(id) to end or cancel it"
        let error = await #expect(throws: ClusterError.self) { try await Fixture.transform(cluster, into: "t").value }
        #expect(error?.message == "set \"t\" \(writing)", "\(String(describing: error))")
        func encoding(into set: String) -> EncodingJob {
            EncodingJob(encoding: .vlad, model: "M", descriptors: corpus, index: index, set: set, flags: 0, replace: true)
        }
        #expect(throws: ClusterError(.rejected, "set \"big\" is being read by job \(id); a set is not written while a job reads it: "
                                     + "wait for job \(id) to end or cancel it")) { _ = try client.submit(encoding(into: "big")) }
        #expect(throws: ClusterError(.rejected, "set \"t\" \(writing)")) { _ = try client.submit(encoding(into: "t")) }
        #expect(try await first.value.dimension == Fixture.kept)
    }

    /// While an encoding job writes set "S" (no worker: it waits), TRANSFORM-SETs into "S" and
    /// of "S" are refused naming it (the old coordinator answered the first "exists" and ran
    /// the second on a set half written).
    @Test(.timeLimit(.minutes(1))) func aTransformOfOrIntoASetBeingEncodedIsRefusedNamingTheJob() async throws {
        let scratch = try TemporaryDirectory()
        let (cluster, _) = try Fixture.cluster(scratch, count: 10)
        defer { cluster.stop() }
        let corpus = try Corpora.path(rows: 1_000, dimension: 4)
        let client = try cluster.client()
        try JobFixtures.importModel(client, name: "M", k: 4, corpus: corpus)
        let job = try client.submit(EncodingJob(encoding: .vlad, model: "M", descriptors: corpus,
                                                index: try JobFixtures.index(scratch, "index.tsv", count: 10), set: "S", flags: 0,
                                                replace: false))
        let refusal = ClusterError(.rejected, "set \"S\" is being written by job \(job); a set has one writer at a time: "
                                   + "wait for job \(job) to end or cancel it")
        #expect(throws: refusal) { _ = try client.transformSet(TransformSetRequest(set: "big", pca: "p", into: "S")) }
        #expect(throws: refusal) { _ = try client.transformSet(TransformSetRequest(set: "S", pca: "p", into: "u")) }
    }

    /// The registry's rule, every case: a set has one writer, and is not written while read.
    /// A cancelled transform holds its sets until its task lets go of them.
    @Test func conflictingWritersOfASetAreRefusedNamingTheJobHoldingIt() throws {
        let jobs = JobRegistry(store: nil)
        func transform(_ set: String, into: String) -> TransformSetJob {
            TransformSetJob(set: set, pca: "p", into: into, pcaChecksum: "fnv1a64:0000000000000000")
        }
        func encoding(into set: String, replace: Bool) -> EncodingJob {
            EncodingJob(encoding: .vlad, model: "km", descriptors: "/d.npy", index: "/d.tsv", set: set, flags: 0, replace: replace)
        }
        func refusal(_ add: () throws -> UInt64) -> String? {
            do { _ = try add(); return nil } catch let error as ClusterError where error.code == .conflict { return error.message } catch { return "\(error)" }
        }
        let reading = "is being read by job 1; a set is not written while a job reads it: wait for job 1 to end or cancel it"
        let writing = "is being written by job 1; a set has one writer at a time: wait for job 1 to end or cancel it"
        #expect(try jobs.add(nil, transform: transform("a", into: "b")) == 1)
        #expect(refusal { try jobs.add(nil, encoding: encoding(into: "a", replace: true)) } == "set \"a\" \(reading)")
        #expect(refusal { try jobs.add(nil, encoding: encoding(into: "a", replace: false)) } == "set \"a\" \(reading)")
        #expect(refusal { try jobs.add(nil, encoding: encoding(into: "b", replace: true)) } == "set \"b\" \(writing)")
        #expect(refusal { try jobs.add(nil, transform: transform("a", into: "b")) } == "set \"b\" \(writing)")
        #expect(refusal { try jobs.add(nil, transform: transform("c", into: "b")) } == "set \"b\" \(writing)")
        #expect(refusal { try jobs.add(nil, transform: transform("b", into: "c")) } == "set \"b\" \(writing)")
        #expect(refusal { try jobs.add(nil, transform: transform("c", into: "a")) } == "set \"a\" \(reading)")
        #expect(refusal { try jobs.add(SetPCATests.setPCA("b", kept: 2, name: "w"), encoding: nil) } == "set \"b\" \(writing)")
        // Two readers of one set are fine; so is a PCA of a set read.
        #expect(try jobs.add(nil, transform: transform("a", into: "c")) == 2)
        #expect(try jobs.add(SetPCATests.setPCA("a", kept: 2, name: "w"), encoding: nil) == 3)
        let encoder = try jobs.add(nil, encoding: encoding(into: "d", replace: false))
        #expect(refusal { try jobs.add(nil, transform: transform("d", into: "e")) }
                == "set \"d\" is being written by job \(encoder); a set has one writer at a time: wait for job \(encoder) to end or cancel it")
        // Cancelled, job 1 holds "b" until its task ends.
        _ = try jobs.cancel(1)
        #expect(refusal { try jobs.add(nil, encoding: encoding(into: "b", replace: true)) } == "set \"b\" \(writing)")
        jobs.release(1)
        #expect(refusal { try jobs.add(nil, encoding: encoding(into: "b", replace: true)) } == nil)
    }

    /// Stores set "big" of `count` vectors, PCA model "p", and set "expected": "big" through "p",
    /// as an uninterrupted transform writes it.
    static func storeSetAndPCA(count: Int, in store: CodebookStore) throws {
        let d = Fixture.dimension, queries = StoreQueries(store: store)
        _ = try SetPCATests.storeSet("big", count: count, dimension: d, in: store)
        let components = (0..<Fixture.kept).flatMap { row in (0..<d).map { Float($0 == (row * 3) % d ? 1 : 0) } }
        _ = try queries.request(WireMessage(header: WireHeader(.importModel),
                                            metadata: ImportRequest(name: "p", kind: .pca, k: Fixture.kept, dimension: d, replace: false),
                                            arrays: [[Float](repeating: 0.5, count: d), components,
                                                     (0..<Fixture.kept).map { Float(Fixture.kept - $0) }].map(Frame.encode)))
        _ = try queries.transformSet(TransformSetRequest(set: "big", pca: "p", into: "expected"))
    }

    /// The stored vectors of `set`, by key.
    static func vectors(of set: String, in store: CodebookStore) throws -> [String: [UInt8]] {
        var vectors: [String: [UInt8]] = [:]
        try store.forEachVector(set: set) { vectors[$0] = Array($1) }
        return vectors
    }

    /// A store with transform jobs left running: one killed part way (its new set holds wrong
    /// and extra vectors, no record), and four the restarted coordinator cannot run (a bad
    /// set name, a PCA changed since, a new set someone else made meanwhile, a record holding
    /// two jobs). The first is run again and stores what an uninterrupted transform stores;
    /// the others fail naming why, and the set made meanwhile is left alone. The old
    /// coordinator did not know the records: they stayed running for ever.
    @Test(.timeLimit(.minutes(3))) func storedTransformsStartAgainOrFailWithAReason() async throws {
        let scratch = try TemporaryDirectory()
        let path = scratch.file("store"), count = 1000, d = Fixture.dimension
        do {
            let store = try CodebookStore(path: path)
            try Self.storeSetAndPCA(count: count, in: store)
            _ = try SetPCATests.storeSet("other", count: 3, dimension: d, in: store)
            let checksum = PCAReference.checksum(try store.principalComponents(named: "p"))
            func put(_ id: UInt64, _ transform: TransformSetJob, job: TrainingJob? = nil) throws {
                let record = JobRecord(job: job, transform: transform, state: .running, iterations: [], initialValues: 0)
                try store.putJob(id, try StoredValue(kind: .job, metadata: record))
            }
            try put(1, TransformSetJob(set: "big", pca: "p", into: "t", pcaChecksum: checksum))
            try put(2, TransformSetJob(set: "big", pca: "p", into: "bad/name", pcaChecksum: checksum))
            try put(3, TransformSetJob(set: "big", pca: "p", into: "t3", pcaChecksum: "fnv1a64:0000000000000000"))
            try put(4, TransformSetJob(set: "big", pca: "p", into: "other", pcaChecksum: checksum))
            try put(5, TransformSetJob(set: "big", pca: "p", into: "t5", pcaChecksum: checksum), job: SetPCATests.setPCA("big", kept: 2, name: "w"))
            // What a run killed part way left: vectors of the wrong dimension, and a key not in "big".
            let metadata = try StoredValue(kind: .vector, metadata: VectorRecord(encoding: .vlad, model: "km", flags: 0)).metadata
            try [Float](repeating: 9, count: 3 * d).withUnsafeBytes {
                try store.putVectors(set: "t", keys: ["image000", "image001", "zzz"], metadata: metadata, dimension: d, floatBytes: $0,
                                     durability: .logged)
            }
        }
        let progress = try await ExtractionResumeTests.withCoordinator(store: path, workers: 0) { cluster in
            var progress: [JobProgress] = []
            for id in UInt64(1)...5 { progress.append(try await ExtractionResumeTests.ended(id, cluster)) }
            return progress
        }
        #expect(progress.map(\.state) == [.succeeded, .failed, .failed, .failed, .failed], "\(progress)")
        #expect(progress[0].imagesDone == count && progress[0].imagesTotal == count)
        let reasons = progress.map { $0.message ?? "" }
        #expect(reasons[1...3].allSatisfy { $0.hasPrefix("cannot resume after a restart: ") }, "\(reasons)")
        #expect(reasons[1].contains("bad/name"), "\(reasons[1])")
        #expect(reasons[2].contains("PCA model \"p\" has changed"), "\(reasons[2])")
        #expect(reasons[3].contains("set \"other\" exists already"), "\(reasons[3])")
        #expect(reasons[4] == "its stored record cannot be read: corrupt value: job 5 holds 2 jobs (a record holds one); "
                + "its bytes are kept under jobs key \(CodebookStore.hex(CodebookStore.quarantinedJobKey(5)))", "\(reasons[4])")

        let store = try CodebookStore(path: path)
        let written = try Self.vectors(of: "t", in: store), expected = try Self.vectors(of: "expected", in: store)
        #expect(written.count == count && written == expected, "the resumed transform stored other vectors")
        let record = try #require(try store.set(named: "t")).decode(SetRecord.self, key: "t")
        let checksum = PCAReference.checksum(try store.principalComponents(named: "p"))
        #expect(record.dimension == Fixture.kept && record.whitening?.checksum == checksum)
        #expect(try store.vectorKeys(prefix: "other/", limit: 10).count == 3)
        for set in ["t3", "t5"] { #expect(try store.set(named: set) == nil) }
    }

    /// Two stored running jobs that conflict (two transforms into "t", and a PCA of "t" while
    /// it is written) are not both started at restart: the first runs, the others fail naming
    /// it, and the set comes out whole. The old coordinator started all three: the second
    /// transform deleted the first's set and wrote it again.
    @Test(.timeLimit(.minutes(3))) func conflictingStoredJobsAreNotBothStarted() async throws {
        let scratch = try TemporaryDirectory()
        let path = scratch.file("store"), count = 1000
        do {
            let store = try CodebookStore(path: path)
            try Self.storeSetAndPCA(count: count, in: store)
            let checksum = PCAReference.checksum(try store.principalComponents(named: "p"))
            let transform = TransformSetJob(set: "big", pca: "p", into: "t", pcaChecksum: checksum)
            for id in UInt64(1)...2 {
                try store.putJob(id, try StoredValue(kind: .job, metadata: JobRecord(transform: transform, state: .running, iterations: [],
                                                                                      initialValues: 0)))
            }
            try store.putJob(3, try StoredValue(kind: .job, metadata: JobRecord(job: SetPCATests.setPCA("t", kept: 2, name: "w"),
                                                                                 state: .running, iterations: [], initialValues: 0)))
        }
        let progress = try await ExtractionResumeTests.withCoordinator(store: path, workers: 0) { cluster in
            var progress: [JobProgress] = []
            for id in UInt64(1)...3 { progress.append(try await ExtractionResumeTests.ended(id, cluster)) }
            return progress
        }
        #expect(progress.map(\.state) == [.succeeded, .failed, .failed], "\(progress)")
        #expect(progress[1].message == "cannot resume after a restart: set \"t\" is being written by job 1; a set has one writer "
                + "at a time, and job 1 was restored before it", "\(String(describing: progress[1].message))")
        #expect(progress[2].message?.hasPrefix("cannot resume after a restart: set \"t\" is being written by job 1;") == true,
                "\(String(describing: progress[2].message))")
        do {
            let store = try CodebookStore(path: path)
            let written = try Self.vectors(of: "t", in: store), expected = try Self.vectors(of: "expected", in: store)
            #expect(written.count == count && written == expected, "set t is not the transform's")
            #expect(try store.set(named: "t") != nil && store.model(named: "w") == nil)
        }
        // The failures are stored: a second restart starts nothing.
        let again = try await ExtractionResumeTests.withCoordinator(store: path, workers: 0) { cluster in
            try await ExtractionResumeTests.ended(2, cluster)
        }
        #expect(again.state == .failed)
    }
}
