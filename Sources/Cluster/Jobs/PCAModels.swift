import ClusterProtocol
import Clustering
import Descriptors
import Storage

extension PCAReference {
    /// Throws unless `projection` (the PCA model `name`) has `checksum`.
    public static func require(_ checksum: String, of projection: PCAProjection, named name: String) throws {
        let current = Self.checksum(projection)
        guard current == checksum else {
            throw ClusterError(.conflict, "PCA model \"\(name)\" has changed since the job started (checksum \(current), not \(checksum))")
        }
    }
}

extension PCAProjection {
    /// A projection from its concatenated values (mean D, components k·D, eigenvalues k), checked.
    public init(k: Int, dimension d: Int, values: [Float], whiten: Bool, power: Double? = nil) throws {
        let (kd, overflow) = k.multipliedReportingOverflow(by: d)
        guard k >= 1, d >= 1, !overflow, kd <= Int.max - d - k, values.count == d + kd + k else {
            throw DescriptorError(.dimensionMismatch, "a PCA of D=\(d), D'=\(k) has \(d) + \(k)·\(d) + \(k) values (got \(values.count))")
        }
        try self.init(PrincipalComponents(dimension: d, mean: Array(values[0 ..< d]), components: Array(values[d ..< d + kd]),
                                          eigenvalues: Array(values[(d + kd)...])), whiten: whiten, power: power)
    }

    /// The projection of a stored `pca` model.
    init(record: ModelRecord, values: [Float]) throws {
        try self.init(k: record.k, dimension: record.dimension, values: values, whiten: record.whiten ?? false, power: record.power)
    }
}

extension CodebookStore {
    /// The stored PCA model `name`, checked: it exists and is a PCA.
    public func principalComponents(named name: String) throws -> PCAProjection {
        guard let value = try model(named: name) else { throw StoreError(.notFound, "no PCA model named \"\(name)\" in the store") }
        guard case .principalComponents(let projection, _) = try StoredModel(value, name: name) else {
            throw ClusterError(.invalidRequest, "model \"\(name)\" is not a PCA model")
        }
        return projection
    }

    /// Refuses to apply the PCA `name`, if it was trained on a corpus, to descriptors read
    /// with another transform than it was trained on (`transform`: how they are read now).
    public func requireSameTransform(pca name: String, as transform: DescriptorTransform?) throws {
        guard let value = try model(named: name), let trained = try StoredModel(value, name: name).record.job, trained.set == nil,
              trained.transform != transform else { return }
        let named = { (transform: DescriptorTransform?) in transform.map { "\($0.rawValue)" } ?? "untransformed" }
        throw ClusterError(.invalidRequest, "PCA model \"\(name)\" was trained on \(named(trained.transform)) descriptors; "
                         + "these are read \(named(transform))")
    }

    /// The PCA an encoding with `model` (whose record is `record`) goes through, given the
    /// PCA model asked for (`requested`): the one the model was trained through, and only it.
    public func projection(encodingWith model: String, record: ModelRecord, requested: String?) throws -> PCAProjection? {
        switch (record.pca, requested) {
        case (nil, nil): return nil
        case (nil, let requested?):
            throw ClusterError(.invalidRequest, "model \"\(model)\" was trained on descriptors without a PCA; "
                             + "encode without PCA model \"\(requested)\"")
        case (let needed?, nil):
            throw ClusterError(.invalidRequest, "model \"\(model)\" was trained on descriptors projected by PCA model \"\(needed.name)\"; "
                             + "encode through that PCA")
        case (let needed?, let requested?):
            guard needed.name == requested else {
                throw ClusterError(.invalidRequest, "model \"\(model)\" was trained through PCA model \"\(needed.name)\", not \"\(requested)\"")
            }
            let projection = try principalComponents(named: requested)
            guard PCAReference.checksum(projection) == needed.checksum else {
                throw ClusterError(.conflict, "PCA model \"\(requested)\" has changed since model \"\(model)\" was trained through it "
                                 + "(checksum \(PCAReference.checksum(projection)), trained with \(needed.checksum))")
            }
            return projection
        }
    }
}
