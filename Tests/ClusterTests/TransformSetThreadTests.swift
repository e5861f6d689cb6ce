@testable import Cluster
import ClusterProtocol
import Foundation
import Storage
import Synchronization
import TestSupport
import Testing
import ZeroMQ

/// TRANSFORM-SET on a large set: other clients are answered while it runs, and a transform
/// that fails or is stopped part way leaves no new set behind.
@Suite(.serialized) struct TransformSetThreadTests {
    static let dimension = 32, kept = 8

    /// A coordinator over a store holding set "big" of `count` vectors and PCA model "p".
    static func cluster(_ scratch: TemporaryDirectory, count: Int) throws -> (LocalCoordinator, CodebookStore) {
        let store = try CodebookStore(path: scratch.file("store"))
        _ = try SetPCATests.storeSet("big", count: count, dimension: dimension, in: store)
        let cluster = try LocalCoordinator(store: store)
        let components = (0..<kept).flatMap { row in (0..<dimension).map { Float($0 == row ? 1 : 0) } }
        _ = try cluster.client().importModel(ImportRequest(name: "p", kind: .pca, k: kept, dimension: dimension, replace: false),
                                             arrays: [[Float](repeating: 0, count: dimension), components,
                                                      (0..<kept).map { Float(kept - $0) }].map(Frame.encode))
        return (cluster, store)
    }

    /// Sends TRANSFORM-SET of "big" into `into` from a client of its own, which waits `timeout`
    /// for the reply; `done` is set when the reply (or an error) has come.
    static func transform(_ cluster: LocalCoordinator, into: String, done: ReplyFlag? = nil,
                          timeout: Duration = .seconds(120)) throws -> Task<SetRecord, any Error> {
        let client = try ClusterClient(context: cluster.context, endpoint: cluster.endpoints.clients, timeout: timeout)
        return Task.detached {
            defer { done?.came.store(true, ordering: .sequentiallyConsistent) }
            return try client.transformSet(TransformSetRequest(set: "big", pca: "p", into: into))
        }
    }

    /// Waits until a transform job has written vectors: the transform is under way. Its id.
    static func waitForTransformJob(_ client: ClusterClient) async throws -> UInt64 {
        var id: UInt64?
        try #require(await waitUntil(timeout: 60) {
            id = try client.status().jobs.first { $0.kind == "transform" && $0.state == .running }?.job
            return try id.map { try client.progress(of: $0, since: 0).imagesDone ?? 0 > 0 } ?? false
        }, "no transform job wrote vectors")
        return id!
    }

    /// A LIST and a large GET (both answered off the I/O thread) sent once the transform has
    /// begun are answered before it ends. The old coordinator answered TRANSFORM-SET on its
    /// request thread: they waited for the whole set.
    @Test(.timeLimit(.minutes(3))) func otherRequestsAreAnsweredWhileATransformRuns() async throws {
        let scratch = try TemporaryDirectory()
        let count = 60_000
        let (cluster, store) = try Self.cluster(scratch, count: count)
        defer { cluster.stop() }
        let done = ReplyFlag()
        let task = try Self.transform(cluster, into: "t", done: done)
        let client = try cluster.client()
        _ = try await Self.waitForTransformJob(client)
        let listed = try client.list(prefix: "big/", limit: 5)
        let got = try client.get((0..<(Coordinator.quickGetKeys + 1)).map { String(format: "big/image%03d", $0) })
        let answeredFirst = !done.came.load(ordering: .sequentiallyConsistent)
        #expect(answeredFirst, "the LIST and GET waited for the transform")
        #expect(listed.keys.count == 5 && got.allSatisfy { $0.values?.count == Self.dimension })
        let record = try await task.value
        #expect(record.dimension == Self.kept)
        #expect(try store.vectorKeys(prefix: "t/", limit: count + 1).count == count)
    }

    /// A non-finite value part way through the set: the transform fails naming it, and the new
    /// set is gone, record and vectors (the old code left the vectors before it).
    @Test(.timeLimit(.minutes(2))) func aTransformThatFailsPartWayLeavesNoSet() async throws {
        let scratch = try TemporaryDirectory()
        let (cluster, store) = try Self.cluster(scratch, count: 1000)
        defer { cluster.stop() }
        let metadata = try StoredValue(kind: .vector, metadata: VectorRecord(encoding: .vlad, model: "km", flags: 0)).metadata
        var bad = [Float](repeating: 1, count: Self.dimension)
        bad[3] = .nan
        try bad.withUnsafeBytes {
            try store.putVectors(set: "big", keys: ["image700"], metadata: metadata, dimension: Self.dimension, floatBytes: $0,
                                 durability: .logged)
        }
        let error = await #expect(throws: ClusterError.self) { try await Self.transform(cluster, into: "t").value }
        #expect(error?.message == "big/image700 has a non-finite value (nan) at position 3", "\(String(describing: error))")
        #expect(try store.set(named: "t") == nil)
        #expect(try store.vectorKeys(prefix: "t/", limit: 1).isEmpty)
    }

    /// The coordinator stops while a transform runs: the transform ends at its next batch and
    /// deletes the new set (the old code finished it, or left it part written after 30 s).
    @Test(.timeLimit(.minutes(3))) func aTransformUnderWayWhenTheCoordinatorStopsLeavesNoSet() async throws {
        let scratch = try TemporaryDirectory()
        let (cluster, store) = try Self.cluster(scratch, count: 60_000)
        // No reply comes once the coordinator has stopped: the client gives up after 10 s.
        let task = try Self.transform(cluster, into: "t", timeout: .seconds(10))
        _ = try await Self.waitForTransformJob(try cluster.client())
        cluster.stop()
        #expect(try store.set(named: "t") == nil)
        #expect(try store.vectorKeys(prefix: "t/", limit: 1).isEmpty)
        await #expect(throws: ClusterError.self) { try await task.value }
    }
}

/// Set once a reply has come.
final class ReplyFlag: Sendable {
    let came = Atomic<Bool>(false)
}
