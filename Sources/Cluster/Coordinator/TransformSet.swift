import ClusterProtocol
import Clustering
import Foundation
import Storage
import Synchronization

/// A TRANSFORM-SET as the coordinator keeps it while it runs (a job record's `transform`):
/// the request, and the checksum of its PCA model when it was accepted, which a resumed job
/// requires.
struct TransformSetJob: Codable, Sendable, Equatable {
    var set: String
    var pca: String
    var into: String
    var pcaChecksum: String

    var request: TransformSetRequest { TransformSetRequest(set: set, pca: pca, into: into) }
}

extension StoreQueries {
    /// Vectors written per atomic batch by TRANSFORM-SET.
    static let transformBatchVectors = 256

    /// A TRANSFORM-SET checked against the store: the PCA, and the new set's record.
    struct TransformPlan: Sendable {
        let request: TransformSetRequest
        let projection: PCAProjection
        /// The source set's dimension.
        let inputDimension: Int
        /// The new set's record, written after its last vector.
        let record: SetRecord
    }

    /// Checks a TRANSFORM-SET: refuses a missing set or PCA, an existing target set, a set
    /// already whitened, and a PCA of another input dimension.
    func planTransform(_ request: TransformSetRequest) throws -> TransformPlan {
        try CodebookStore.validate(name: request.into, of: "set")
        guard let value = try store.set(named: request.set) else { throw ClusterError(.notFound, "no set named \"\(request.set)\"") }
        var record = try value.decode(SetRecord.self, key: "set \(request.set)")
        guard try store.set(named: request.into) == nil else {
            throw ClusterError(.exists, "set \"\(request.into)\" exists already; delete it or choose another name")
        }
        if let whitening = record.whitening {
            throw ClusterError(.invalidRequest, "set \"\(request.set)\" holds vectors projected by PCA model \"\(whitening.name)\" already")
        }
        let projection = try store.principalComponents(named: request.pca)
        let d = record.dimension
        guard projection.inputDimension == d else {
            throw ClusterError(.invalidRequest, "PCA model \"\(request.pca)\" takes vectors of \(projection.inputDimension) values "
                               + "but set \"\(request.set)\" has dimension \(d)")
        }
        record.dimension = projection.outputDimension
        record.whitening = PCAReference(name: request.pca, projection: projection)
        record.created = ISO8601DateFormatter().string(from: Date())
        return TransformPlan(request: request, projection: projection, inputDimension: d, record: record)
    }

    /// Writes the vectors of the plan's set, read in key order and each projected alone (as
    /// an encoding with a whitening projects it, so to the same bits), into its new set, in
    /// atomic logged batches (each vector whole or absent), after deleting any vectors a
    /// killed run left there. `afterBatch` gets the vectors written so far, and may throw to
    /// stop. Refuses a non-finite stored value. Writes no set record: the caller writes it
    /// once every vector is in, and deletes the vectors if this throws.
    func writeTransformedVectors(_ plan: TransformPlan, afterBatch: (Int) throws -> Void) throws {
        let (set, into, d, kept) = (plan.request.set, plan.request.into, plan.inputDimension, plan.projection.outputDimension)
        let metadata = try StoredValue(kind: .vector, metadata: VectorRecord(encoding: plan.record.encoding, model: plan.record.model,
                                                                             flags: plan.record.flags)).metadata
        try store.deleteSet(named: into)
        defer { invalidateSearch(of: into) }
        var keys: [String] = [], projected: [Float] = [], vector = [Float](repeating: 0, count: d), written = 0
        func write() throws {
            try projected.withUnsafeBytes { floats in
                try store.putVectors(set: into, keys: keys, metadata: metadata, dimension: kept, floatBytes: floats, durability: .logged)
            }
            written += keys.count
            (keys, projected) = ([], [])
            try afterBatch(written)
        }
        try store.forEachVector(set: set) { key, bytes in
            let floats = try StoredSetBackend.floatBytes(of: bytes, set: set, key: key, dimension: d)
            vector.withUnsafeMutableBytes { $0.copyMemory(from: UnsafeRawBufferPointer(rebasing: bytes[floats])) }
            if let bad = vector.firstIndex(where: { !$0.isFinite }) {
                throw ClusterError(.invalidRequest, "\(set)/\(key) has a non-finite value (\(vector[bad])) at position \(bad)")
            }
            keys.append(key)
            projected += plan.projection.project(vector, rows: 1)
            if keys.count == Self.transformBatchVectors { try write() }
        }
        if !keys.isEmpty { try write() }
    }

    /// TRANSFORM-SET answered from the store alone (a client that opens the store itself):
    /// the vectors, then the new set's record, so that a set with a record is whole. A
    /// failure part way deletes what was written.
    func transformSet(_ request: TransformSetRequest) throws -> WireMessage {
        let plan = try planTransform(request)
        do {
            try writeTransformedVectors(plan) { _ in }
            try store.putSet(named: request.into, try StoredValue(kind: .set, metadata: plan.record))
        } catch {
            try? store.deleteSet(named: request.into)
            throw error
        }
        return WireMessage(header: WireHeader(.describeReply), metadata: DescribeReply(set: plan.record))
    }

    /// The number of vectors in `set` (its keys counted, values not decoded).
    func vectorCount(of set: String) throws -> Int {
        let prefix = "\(set)/"
        var count = 0, last: String?
        while true {
            let page = try store.vectorKeys(prefix: prefix, after: last, limit: 4096)
            guard let end = page.last else { return count }
            count += page.count
            last = end
        }
    }
}

extension Coordinator {
    /// Accepts a TRANSFORM-SET as a job (listed, followed with PROGRESS: vectors written of
    /// the set's, cancelled with CANCEL) and runs it on the transform thread, one at a time;
    /// `send` gets the reply when it ends: DESCRIBE-REPLY with the new set's record (its
    /// header's job: the job's id), or ERROR-REPLY. Refused while another job writes the new
    /// set, or writes the set read (`JobRegistry.add`).
    func acceptTransform(_ request: TransformSetRequest, send: @escaping @Sendable (WireMessage) -> Void) throws {
        guard let queries else { throw Self.noStore(for: "sets") }
        // First, so that a set another job writes is refused naming the job, not as existing.
        var job = TransformSetJob(set: request.set, pca: request.pca, into: request.into, pcaChecksum: "")
        try jobs.checkSets(of: JobRecord(transform: job, state: .running, iterations: [], initialValues: 0))
        let plan = try queries.planTransform(request)
        job.pcaChecksum = PCAReference.checksum(plan.projection)
        let id = try jobs.add(nil, transform: job)
        logger.info("transform job \(id) accepted", metadata: ["set": "\(PeerText.escaped(request.set))",
                                                               "into": "\(PeerText.escaped(request.into))"])
        startTransform(id, plan: plan, send: send)
    }

    /// Starts a stored transform job again from its first vector, after the checks of a
    /// submission: its PCA must be the one it was accepted with, and its new set must have no
    /// record (a running job's set gets it with its success, in one batch: a record means
    /// someone else made the set). The vectors a killed run wrote are deleted first.
    func resumeTransform(_ id: UInt64, job: TransformSetJob) throws {
        guard let queries else { throw Self.noStore(for: "sets") }
        let plan = try queries.planTransform(job.request)
        try PCAReference.require(job.pcaChecksum, of: plan.projection, named: job.pca)
        jobs.hold(id)
        logger.info("transform job \(id) started again", metadata: ["into": "\(PeerText.escaped(job.into))"])
        startTransform(id, plan: plan, send: nil)
    }

    private func startTransform(_ id: UInt64, plan: StoreQueries.TransformPlan, send: (@Sendable (WireMessage) -> Void)?) {
        transformThread.async { [self] in
            let reply: WireMessage
            do {
                guard let queries else { throw Self.noStore(for: "sets") }
                reply = try runTransform(id, plan: plan, queries: queries)
            } catch {
                reply = Self.errorReply(to: id, error)
            }
            // Before the reply: a client that sends the same request again on it is told the
            // set exists, not that this job holds it.
            jobs.release(id)
            send?(reply)
        }
    }

    /// Writes the new set's vectors, then its record and the job's success in one atomic
    /// batch. Between batches it ends if the job was cancelled or the coordinator stops;
    /// ended any way but success, it deletes the vectors written and fails the job (stopping,
    /// a coordinator that keeps its jobs leaves it running in the store, to start again).
    private func runTransform(_ id: UInt64, plan: StoreQueries.TransformPlan, queries: StoreQueries) throws -> WireMessage {
        let into = plan.request.into
        func checkRunning() throws {
            if queries.interruption.isRaised {
                throw ClusterError(.stopped, "the coordinator stopped before set \"\(into)\" was written; it is deleted")
            }
            guard jobs[id]?.record.state == .running else {
                throw ClusterError(.conflict, "job \(id) was cancelled before set \"\(into)\" was written; it is deleted")
            }
        }
        do {
            try checkRunning()
            jobs.progress(id, imagesDone: 0, total: try queries.vectorCount(of: plan.request.set))
            try queries.writeTransformedVectors(plan) { written in
                jobs.progress(id, imagesDone: written)
                try checkRunning()
            }
            try jobs.finishTransform(id, set: (into, try StoredValue(kind: .set, metadata: plan.record)))
        } catch {
            try? queries.store.deleteSet(named: into)
            jobs.fail(id, message: "\(error)")
            logger.warning("transform job \(id) ended without its set", metadata: ["error": "\(PeerText.escaped("\(error)"))"])
            throw error
        }
        queries.invalidateSearch(of: into)
        logger.info("transform job \(id) finished", metadata: ["into": "\(PeerText.escaped(into))"])
        return WireMessage(header: WireHeader(.describeReply, job: id), metadata: DescribeReply(set: plan.record))
    }
}

/// Raised once, when the work that checks it should end early (a coordinator stopping).
final class Interruption: Sendable {
    private let raised = Atomic<Bool>(false)

    func raise() { raised.store(true, ordering: .sequentiallyConsistent) }

    var isRaised: Bool { raised.load(ordering: .sequentiallyConsistent) }
}
