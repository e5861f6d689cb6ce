import Cluster
import ClusterProtocol
import Clustering
import Descriptors
import Features

/// `search --image`: an image that need not be in the set, encoded here as the set's
/// vectors were (its model, encoding flags, descriptor transform, descriptor PCA and vector
/// whitening, read from the store), through the encode pass the workers run, so an image of
/// the set gives its stored vector bit for bit.
enum ImageQuery {
    /// The vector of the image at `path` for `set`, its descriptors extracted with `parameters`
    /// (those the set's descriptors were extracted with).
    static func vector(of path: String, for set: String, parameters: ExtractionParameters, requester: any Requester) throws -> [Float] {
        guard let record = try requester.describe(DescribeRequest(set: set)).0.set else {
            throw ClusterError(.notFound, "no set named \"\(set)\"")
        }
        let (model, values) = try stored(record.model, requester: requester)
        let codebook = record.encoding == .vlad
            ? try Codebook(k: model.k, dimension: model.dimension, centres: try values.array(0, as: Float.self)) : nil
        let mixture = record.encoding == .fisher
            ? try GaussianMixtureModelFiles.model(from: values, k: model.k, dimension: model.dimension) : nil
        let descriptorPCA = try projection(record.pca, of: set, requester: requester)
        let whitening = try projection(record.whitening, of: set, requester: requester)

        var descriptors = try parameters.extractor().extract(try ImageDecoder().grey(path: path)).descriptors
        let d = FeatureExtractor.dimension, rows = descriptors.count / d
        guard rows > 0 else {
            throw FeatureError(.invalidArgument, "\(path): no descriptors in the image (a side under "
                               + "\(FeatureExtractor.minimumSide) pixels, or no texture)")
        }
        let pass = try EncodePass(encoding: record.encoding, flags: record.flags, codebook: codebook, mixture: mixture,
                                  projection: descriptorPCA, whitening: whitening,
                                  images: [ImageSlice(key: path, firstRow: 0, rowCount: rows)])
        guard pass.descriptorDimension == d else {
            throw DescriptorError(.dimensionMismatch, "the image's descriptors have \(d) values, but set \"\(set)\" was encoded from "
                                  + "descriptors of \(pass.descriptorDimension)", path: path)
        }
        if let transform = record.transform { descriptors.withUnsafeMutableBufferPointer { transform.apply($0, dimension: d) } }
        return try pass.statistics(of: try DescriptorMatrix(rows: rows, dimension: d, values: descriptors), shard: 0,
                                    workspace: KernelWorkspace()).values
    }

    /// The cosine of `values`, the vector of the image at `path`, and the set's stored vector
    /// of that image's key (its file name without extension), if the set holds the key: below
    /// 1, the image was encoded here from other descriptors than the set's (other extraction
    /// options, or another image of the same name).
    static func agreement(of values: [Float], image path: String, set: String, requester: any Requester) throws -> (key: String, cosine: Double)? {
        let key = ImageSource.key(ofName: path)
        let stored: [Float]?
        do {
            stored = try requester.get(["\(set)/\(key)"]).first?.values
        } catch let error as ClusterError where error.code == .notFound {
            return nil
        }
        guard let stored, stored.count == values.count else { return nil }
        var product = 0.0, queryNorm = 0.0, storedNorm = 0.0
        for (x, y) in zip(values, stored) {
            product += Double(x) * Double(y)
            queryNorm += Double(x) * Double(x)
            storedNorm += Double(y) * Double(y)
        }
        guard queryNorm > 0, storedNorm > 0 else { return nil }
        return (key, product / (queryNorm * storedNorm).squareRoot())
    }

    /// A stored model's record and its values.
    private static func stored(_ name: String, requester: any Requester) throws -> (ModelRecord, WireMessage) {
        let (reply, message) = try requester.describe(DescribeRequest(model: name, values: true))
        guard let model = reply.model else { throw ClusterError(.notFound, "no model named \"\(name)\"") }
        return (model, message)
    }

    /// The stored PCA `reference` names, refused if it is no longer the one the set was encoded with.
    private static func projection(_ reference: PCAReference?, of set: String, requester: any Requester) throws -> PCAProjection? {
        guard let reference else { return nil }
        let (model, values) = try stored(reference.name, requester: requester)
        let projection = try PCAFiles.projection(from: values, k: model.k, dimension: model.dimension, whiten: model.whiten ?? false,
                                                 power: model.power)
        guard PCAReference(name: reference.name, projection: projection) == reference else {
            throw ClusterError(.conflict, "PCA model \"\(reference.name)\" is not the one set \"\(set)\" was encoded with "
                               + "(it was replaced since)")
        }
        return projection
    }
}
