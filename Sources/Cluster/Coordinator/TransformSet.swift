import ClusterProtocol
import Clustering
import Foundation
import Storage
import Synchronization

extension StoreQueries {
    /// Vectors written per atomic batch by TRANSFORM-SET.
    static let transformBatchVectors = 256

    /// TRANSFORM-SET: the vectors of `request.set` projected by the PCA `request.pca` into the
    /// new set `request.into`, without encoding again. The set's record is written first, then
    /// the vectors, read in key order and each projected alone (as an encoding with a
    /// whitening projects it, so to the same bits), in atomic batches: each vector is whole
    /// or absent. Refuses a missing set or PCA, an existing target set, a set already
    /// whitened, a PCA of another input dimension, and a non-finite stored value. A failure
    /// part way, or `interruption` raised (checked between batches), deletes the new set.
    func transformSet(_ request: TransformSetRequest) throws -> WireMessage {
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
        let d = record.dimension, kept = projection.outputDimension
        guard projection.inputDimension == d else {
            throw ClusterError(.invalidRequest, "PCA model \"\(request.pca)\" takes vectors of \(projection.inputDimension) values "
                               + "but set \"\(request.set)\" has dimension \(d)")
        }
        record.dimension = kept
        record.whitening = PCAReference(name: request.pca, projection: projection)
        record.created = ISO8601DateFormatter().string(from: Date())
        let metadata = try StoredValue(kind: .vector, metadata: VectorRecord(encoding: record.encoding, model: record.model,
                                                                             flags: record.flags)).metadata
        try store.putSet(named: request.into, try StoredValue(kind: .set, metadata: record))
        defer { invalidateSearch(of: request.into) }
        do {
            var keys: [String] = [], projected: [Float] = [], vector = [Float](repeating: 0, count: d)
            func write() throws {
                try projected.withUnsafeBytes { floats in
                    try store.putVectors(set: request.into, keys: keys, metadata: metadata, dimension: kept, floatBytes: floats,
                                         durability: .logged)
                }
                (keys, projected) = ([], [])
                if interruption.isRaised {
                    throw ClusterError(.stopped, "the coordinator stopped before set \"\(request.into)\" was written; it is deleted")
                }
            }
            try store.forEachVector(set: request.set) { key, bytes in
                let floats = try StoredSetBackend.floatBytes(of: bytes, set: request.set, key: key, dimension: d)
                vector.withUnsafeMutableBytes { $0.copyMemory(from: UnsafeRawBufferPointer(rebasing: bytes[floats])) }
                if let bad = vector.firstIndex(where: { !$0.isFinite }) {
                    throw ClusterError(.invalidRequest, "\(request.set)/\(key) has a non-finite value (\(vector[bad])) at position \(bad)")
                }
                keys.append(key)
                projected += projection.project(vector, rows: 1)
                if keys.count == Self.transformBatchVectors { try write() }
            }
            if !keys.isEmpty { try write() }
        } catch {
            // Nothing half-written stays: the set is whole, or absent.
            try? store.deleteSet(named: request.into)
            throw error
        }
        return WireMessage(header: WireHeader(.describeReply), metadata: DescribeReply(set: record))
    }
}

/// Raised once, when the work that checks it should end early (a coordinator stopping).
final class Interruption: Sendable {
    private let raised = Atomic<Bool>(false)

    func raise() { raised.store(true, ordering: .sequentiallyConsistent) }

    var isRaised: Bool { raised.load(ordering: .sequentiallyConsistent) }
}
