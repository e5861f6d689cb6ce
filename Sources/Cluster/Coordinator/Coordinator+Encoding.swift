import ClusterProtocol
import Clustering
import Descriptors
import Encoding
import Foundation
import Storage

extension Coordinator {
    /// Validates an encoding job (model, images, set) and starts it.
    func accept(_ job: EncodingJob) throws -> UInt64 {
        let job = try allowed(job)
        let store = try requireStore(for: "set \"\(job.set)\"")
        let plan = try EncodingPlan(job, store: store)
        let encoder = plan.pass.encoder
        try settings.checkEncoding(images: plan.images, imagesPerShard: job.imagesPerShard,
                                   model: (plan.pass.description.k ?? 0, encoder.descriptorDimension),
                                   vectorDimension: plan.pass.encodedDimension)
        let id = try jobs.add(nil, encoding: job)
        logger.info("encoding job \(id) accepted", metadata: ["set": "\(job.set)", "model": "\(job.model)"])
        try startEncoding(id, job: job, passesBefore: 0)
        return id
    }

    /// Plans what is left of an encoding job and hands it to the workers. A first start with
    /// `replace` empties the set; a resumed job (`passesBefore` > 0) keeps what is stored.
    func startEncoding(_ id: UInt64, job: EncodingJob, passesBefore: UInt32) throws {
        let store = try requireStore(for: "set \"\(job.set)\"")
        let plan = try EncodingPlan(job, store: store)
        if job.replace && passesBefore == 0 {
            try store.deleteSet(named: job.set)
            queries?.invalidateSearch(of: job.set)
        }
        if try store.set(named: job.set) == nil {
            try store.putSet(named: job.set, try StoredValue(kind: .set, metadata: plan.setRecord))
        }
        let remaining = try plan.images.filter { try !store.hasVector(set: job.set, key: $0.key) }
        let done = plan.images.count - remaining.count
        jobs.progress(id, imagesDone: done, total: plan.images.count)
        guard !remaining.isEmpty else {
            try jobs.finishEncoding(id)
            return
        }
        let spec = RoundSpec(key: RoundKey(job: id, round: passesBefore + 1), corpus: plan.descriptors,
                             plan: ShardPlan(totalRows: remaining.count, shardRows: job.imagesPerShard),
                             computation: plan.passDescription, model: plan.pass.modelArrays,
                             layout: ImageShards(images: remaining, rows: plan.descriptors.rows))
        let vector = VectorRecord(encoding: job.encoding, model: job.model, flags: job.flags)
        submit(spec, to: try EncodingSink(job: id, set: job.set, vector: vector, dimension: plan.pass.encodedDimension,
                                      images: remaining, plan: spec.plan, imagesDone: done, coordinator: self))
    }
}

/// What an encoding job needs, checked against the store: the model, the images, the set.
struct EncodingPlan {
    let pass: EncodePass
    let descriptors: CorpusReference
    let images: [ImageSlice]
    let setRecord: SetRecord
    let transform: DescriptorTransform?

    /// The pass as the workers get it: the encoding, and the job's transform of the descriptors.
    var passDescription: PassDescription {
        var description = pass.description
        description.transform = transform
        return description
    }

    init(_ job: EncodingJob, store: CodebookStore) throws {
        guard job.imagesPerShard >= 1 else {
            throw ClusterError(.invalidArgument, "images per shard must be ≥ 1 (got \(job.imagesPerShard))")
        }
        try CodebookStore.validate(name: job.set, of: "set")
        guard let value = try store.model(named: job.model) else {
            throw ClusterError(.notFound, "no model named \"\(job.model)\" in the store")
        }
        let stored = try StoredModel(value, name: job.model)
        let projection = try store.projection(encodingWith: job.model, record: stored.record, requested: job.pca)
        if let name = job.pca { try store.requireSameTransform(pca: name, as: job.transform) }
        let whitening = try job.whitening.map { try store.principalComponents(named: $0) }
        switch (job.encoding, stored) {
        case (.vlad, .codebook(let codebook, _)):
            pass = try EncodePass(encoding: .vlad, flags: job.flags, codebook: codebook, projection: projection, whitening: whitening)
        case (.fisher, .gaussianMixture(let model, _)):
            pass = try EncodePass(encoding: .fisher, flags: job.flags, mixture: model, projection: projection, whitening: whitening)
        case (let encoding, let model):
            throw ClusterError(.invalidRequest, "model \"\(job.model)\" is a \(model.record.kind.rawValue) model; "
                               + "\(encoding == .vlad ? "VLAD needs a k-means codebook" : "Fisher vectors need a GMM")")
        }
        let collection = try ImageCollection(index: job.index, descriptors: job.descriptors)
        guard collection.isEmpty || collection.dimension == pass.descriptorDimension else {
            throw DescriptorError(.dimensionMismatch,
                                  "descriptors have dimension \(collection.dimension) but model \"\(job.model)\" "
                                  + (projection == nil ? "has" : "takes, through its PCA,") + " \(pass.descriptorDimension)",
                                  path: job.descriptors)
        }
        images = try collection.map { image in
            ImageSlice(key: image.key, firstRow: try image.descriptors().firstRow, rowCount: image.rows)
        }
        descriptors = try Coordinator.corpusReference(job.descriptors)
        setRecord = SetRecord(encoding: job.encoding, model: job.model, flags: job.flags,
                              options: job.encoding.optionNames(flags: job.flags),
                              dimension: pass.encodedDimension, created: ISO8601DateFormatter().string(from: Date()),
                              transform: job.transform, pca: stored.record.pca,
                              whitening: job.whitening.flatMap { name in whitening.map { PCAReference(name: name, projection: $0) } })
        transform = job.transform
        if !job.replace, let existing = try store.set(named: job.set) {
            let record = try existing.decode(SetRecord.self, key: "set \(job.set)")
            guard record.encoding == setRecord.encoding, record.model == setRecord.model, record.flags == setRecord.flags,
                  record.dimension == setRecord.dimension, record.transform == setRecord.transform, record.pca == setRecord.pca,
                  record.whitening == setRecord.whitening else {
                let transforms = [record.transform, setRecord.transform].map { $0.map { ", \($0.rawValue) descriptors" } ?? "" }
                throw ClusterError(.exists,
                                 "set \"\(job.set)\" holds \(record.encoding.rawValue) vectors of model \"\(record.model)\" (flags \(record.flags), "
                                 + "\(record.dimension) values\(transforms[0])); this job makes \(setRecord.encoding.rawValue) vectors of model \"\(job.model)\" "
                                 + "(flags \(job.flags), \(setRecord.dimension) values\(transforms[1])); use another set, or replace it")
            }
        }
    }
}

/// Writes an encoding pass's vectors to the store as their shards arrive, each shard in
/// one atomic batch kept out of the write-ahead log (a vector lost in a crash is encoded
/// again, to the same bits). The job counts a shard's images as stored, and ends, once the
/// coordinator's `vectorFlusher` has made them durable. Called only from the coordinator's
/// merge thread.
final class EncodingSink: RoundSink, @unchecked Sendable {
    // @unchecked Sendable: created by the coordinator, then touched only by its merge thread.
    let job: UInt64
    let set: String
    /// Every vector's metadata (a `VectorRecord`), encoded once.
    let metadata: [UInt8]
    let dimension: Int
    /// The pass's images; shard s holds `images[plan.rows(of: s)]`.
    let images: [ImageSlice]
    let plan: ShardPlan
    private var shardsLeft: Int
    private var imagesDone: Int
    /// The vectors `check` accepted, until `deliver` stores them (each RESULT is decoded once).
    private var checked: [Int: (keys: [String], floatBytes: [UInt8])] = [:]
    private weak var coordinator: Coordinator?

    init(job: UInt64, set: String, vector: VectorRecord, dimension: Int, images: [ImageSlice], plan: ShardPlan, imagesDone: Int,
         coordinator: Coordinator) throws {
        self.job = job
        self.set = set
        metadata = try StoredValue(kind: .vector, metadata: vector).metadata
        self.dimension = dimension
        self.images = images
        self.plan = plan
        shardsLeft = plan.count
        self.imagesDone = imagesDone
        self.coordinator = coordinator
    }

    /// Checks the shard's image keys and its vectors' frame (little-endian float32, as
    /// stored) without copying the vectors: the set's dimension, exactly the task's images
    /// in order, `rows` their number, a frame of exactly one vector per key, and every value
    /// finite (a NaN or infinity would poison every search of the set).
    func check(shard: Int, _ message: WireMessage) throws {
        checked[shard] = nil
        let shape = try message.decode(StatisticsShape.self)
        let keys = shape.keys ?? []
        guard shape.dimension == dimension else {
            throw ClusterError.malformed("vectors of \(shape.dimension) values, the set's have \(dimension)")
        }
        guard shard < plan.count, keys == images[plan.rows(of: shard)].map(\.key) else {
            throw ClusterError.malformed("the keys are not the task's images")
        }
        guard shape.rows == keys.count else {
            throw ClusterError.malformed("rows is \(shape.rows) but the task has \(keys.count) images")
        }
        guard let frame = message.arrays.first, frame.count == keys.count * dimension * 4 else {
            throw ClusterError.malformed("\(message.header.type) array 0 has \(message.arrays.first?.count ?? 0) bytes, "
                                      + "expected \(keys.count) vectors of \(dimension) float32 values")
        }
        if let bad = Self.firstNonFinite(frame) {
            let value = Float(bitPattern: frame.withUnsafeBytes { $0.loadUnaligned(fromByteOffset: 4 * bad, as: UInt32.self) }.littleEndian)
            throw ClusterError.malformed("vector \(bad / dimension) (image \(keys[bad / dimension])) has value "
                                         + "\(bad % dimension) \(value)")
        }
        checked[shard] = (keys, frame)
    }

    /// The index of the first float32 of `frame` that is NaN or infinite (all exponent bits set).
    private static func firstNonFinite(_ frame: [UInt8]) -> Int? {
        frame.withUnsafeBytes { bytes in
            (0 ..< bytes.count / 4).first { bytes.loadUnaligned(fromByteOffset: 4 * $0, as: UInt32.self).littleEndian & 0x7F80_0000 == 0x7F80_0000 }
        }
    }

    func deliver(shard: Int, message: WireMessage) {
        guard let coordinator, let store = coordinator.store, let flusher = coordinator.vectorFlusher else { return }
        guard let (keys, floatBytes) = checked.removeValue(forKey: shard) else {
            preconditionFailure("shard \(shard) delivered without a check that passed")
        }
        do {
            try floatBytes.withUnsafeBytes { floats in
                try store.putVectors(set: set, keys: keys, metadata: metadata, dimension: dimension, floatBytes: floats,
                                     durability: .unlogged)
            }
            coordinator.queries?.invalidateSearch(of: set)
            imagesDone += keys.count
            shardsLeft -= 1
            coordinator.metrics?.vectorsWritten.increment(by: keys.count)
            let (job, imagesDone, last) = (job, imagesDone, shardsLeft == 0)
            flusher.afterNextFlush(urgent: last) { [weak coordinator] error in
                guard let coordinator else { return }
                do {
                    if let error { throw error }
                    coordinator.jobs.progress(job, imagesDone: imagesDone)
                    guard last else { return }
                    try coordinator.jobs.finishEncoding(job)
                    coordinator.logger.info("encoding job \(job) finished", metadata: ["images": "\(imagesDone)"])
                } catch {
                    Self.fail(job, "shard \(shard): \(error)", coordinator: coordinator)
                }
            }
        } catch {
            Self.fail(job, "shard \(shard): \(error)", coordinator: coordinator)
        }
    }

    func fail(_ message: String) {
        guard let coordinator else { return }
        Self.fail(job, message, coordinator: coordinator, cancellingPasses: false)
    }

    /// Fails the job, if it still runs, and, unless the pass has already ended, drops its other shards.
    private static func fail(_ job: UInt64, _ message: String, coordinator: Coordinator, cancellingPasses: Bool = true) {
        guard coordinator.jobs[job]?.record.state == .running else { return }
        coordinator.jobs.fail(job, message: message)
        coordinator.logJobEnd("encoding job \(job)", message)
        if cancellingPasses { coordinator.cancelPasses(of: job) }
    }

    func addDispatchTime(_ duration: Duration) {}
}
