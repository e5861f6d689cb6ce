import Clustering
import Descriptors
import Encoding

/// An encoding job as a client submits it (SUBMIT-ENCODING metadata): encode every image of
/// an index with a stored model and keep each vector in the store under `set/key`.
public struct EncodingJob: Codable, Sendable, Equatable {
    public enum Encoding: String, Codable, Sendable { case vlad, fisher }

    public var encoding: Encoding
    /// The stored model: a k-means codebook for VLAD, a GMM for Fisher vectors.
    public var model: String
    /// The descriptor file the index refers to, as the coordinator and workers see it.
    public var descriptors: String
    /// The image index (TSV: key, first row, row count), read by the coordinator.
    public var index: String
    public var set: String
    /// VLFeat's flag values: `VLADOptions` or `FisherOptions` raw values.
    public var flags: Int
    /// Delete the set first and encode everything again.
    public var replace: Bool
    /// Images per shard.
    public var imagesPerShard: Int
    /// Transform every descriptor as it is read ("root-sift"), on the workers.
    public var transform: DescriptorTransform?
    /// The stored PCA model every descriptor is projected by (after the transform), on the
    /// workers: the one the model was trained through, which the model requires.
    public var pca: String?
    /// A stored PCA model every encoded vector is projected by, on the workers (vector
    /// whitening): the set holds the whitened vectors.
    public var whitening: String?

    public init(encoding: Encoding, model: String, descriptors: String, index: String, set: String, flags: Int,
                replace: Bool, imagesPerShard: Int = 64, transform: DescriptorTransform? = nil, pca: String? = nil,
                whitening: String? = nil) {
        self.pca = pca
        self.whitening = whitening
        self.encoding = encoding
        self.model = model
        self.descriptors = descriptors
        self.index = index
        self.set = set
        self.flags = flags
        self.replace = replace
        self.imagesPerShard = imagesPerShard
        self.transform = transform
    }
}

extension EncodingJob.Encoding {
    /// The names of the options `flags` sets (`VLADOptions` or `FisherOptions`), as a set's record lists them.
    public func optionNames(flags: Int) -> [String] {
        switch self {
        case .vlad: VLADOptions(rawValue: flags).names
        case .fisher: FisherOptions(rawValue: flags).names
        }
    }
}

/// One image of an encoding task: its key and rows in the descriptor file.
public struct ImageSlice: Codable, Sendable, Equatable {
    public var key: String
    public var firstRow: Int
    public var rowCount: Int

    public init(key: String, firstRow: Int, rowCount: Int) {
        self.key = key
        self.firstRow = firstRow
        self.rowCount = rowCount
    }
}

/// A set as the store keeps it (the metadata of a `sets` value).
public struct SetRecord: Codable, Sendable, Equatable {
    public var encoding: EncodingJob.Encoding
    public var model: String
    public var flags: Int
    /// The options by name ("squareRoot", …), for people.
    public var options: [String]
    /// Values per vector.
    public var dimension: Int
    public var created: String
    /// The transform the descriptors went through before encoding ("root-sift"), if any.
    public var transform: DescriptorTransform?
    /// The PCA the descriptors went through (after the transform), if any.
    public var pca: PCAReference?
    /// The PCA the encoded vectors went through (vector whitening), if any.
    public var whitening: PCAReference?

    public init(encoding: EncodingJob.Encoding, model: String, flags: Int, options: [String], dimension: Int,
                created: String, transform: DescriptorTransform? = nil, pca: PCAReference? = nil,
                whitening: PCAReference? = nil) {
        self.encoding = encoding
        self.model = model
        self.flags = flags
        self.options = options
        self.dimension = dimension
        self.created = created
        self.transform = transform
        self.pca = pca
        self.whitening = whitening
    }
}

/// A vector as the store keeps it (the metadata of a `vectors` value); the values follow.
public struct VectorRecord: Codable, Sendable, Equatable {
    public var encoding: EncodingJob.Encoding
    public var model: String
    public var flags: Int

    public init(encoding: EncodingJob.Encoding, model: String, flags: Int) {
        self.encoding = encoding
        self.model = model
        self.flags = flags
    }
}

/// The encoder of a pass, built from the pass's model arrays; each task adds its images.
public struct EncodePass: WireComputation {
    public let encoder: any VectorEncoder
    public private(set) var description: PassDescription
    public private(set) var modelArrays: [[UInt8]]
    /// The PCA each image's descriptors go through before the encoder, if any.
    public let projection: PCAProjection?
    /// The PCA each encoded vector goes through (vector whitening), if any.
    public let whitening: PCAProjection?
    /// This task's images (empty for the pass as a whole).
    public let images: [ImageSlice]

    /// The pass for `model` (a codebook for VLAD, a GMM for Fisher) with `flags`, encoding
    /// descriptors projected by `projection` (whose output must be the model's dimension).
    public init(encoding: EncodingJob.Encoding, flags: Int, codebook: Codebook? = nil, mixture: GaussianMixtureModel? = nil,
                projection: PCAProjection? = nil, whitening: PCAProjection? = nil, images: [ImageSlice] = []) throws {
        switch (encoding, codebook, mixture) {
        case (.vlad, let codebook?, _):
            encoder = VLADEncoder(codebook: codebook, options: VLADOptions(rawValue: flags))
            description = PassDescription(kind: .encodeVLAD, dimension: codebook.dimension, k: codebook.k, flags: flags)
            modelArrays = [Frame.encode(codebook.centres)]
        case (.fisher, _, let model?):
            encoder = try FisherEncoder(model: model, options: FisherOptions(rawValue: flags))
            description = PassDescription(kind: .encodeFisher, dimension: model.dimension, k: model.k, flags: flags)
            modelArrays = model.frames
        default:
            throw ClusterError(.invalidRequest, "\(encoding.rawValue) encoding needs a \(encoding == .vlad ? "k-means codebook" : "GMM")")
        }
        if let projection {
            guard projection.outputDimension == description.dimension else {
                throw DescriptorError(.dimensionMismatch, "the PCA projects to \(projection.outputDimension) values but the model has "
                                      + "dimension \(description.dimension)")
            }
            description.projection = ProjectionDescription(projection)
            modelArrays += projection.frames
        }
        if let whitening {
            guard whitening.inputDimension == encoder.encodedDimension else {
                throw DescriptorError(.dimensionMismatch, "the whitening PCA takes \(whitening.inputDimension) values but the vectors "
                                      + "have \(encoder.encodedDimension)")
            }
            description.whitening = ProjectionDescription(whitening)
            modelArrays += whitening.frames
        }
        self.projection = projection
        self.whitening = whitening
        self.images = images
    }

    private init(_ pass: EncodePass, images: [ImageSlice]) {
        encoder = pass.encoder
        description = pass.description
        modelArrays = pass.modelArrays
        projection = pass.projection
        whitening = pass.whitening
        self.images = images
    }

    /// D of the descriptors the pass reads: the PCA's input, or the encoder's.
    public var descriptorDimension: Int { projection?.inputDimension ?? encoder.descriptorDimension }
    /// Values per vector: the whitening's output, or the encoder's.
    public var encodedDimension: Int { whitening?.outputDimension ?? encoder.encodedDimension }

    public func forTask(_ assignment: TaskAssignment) -> EncodePass { EncodePass(self, images: assignment.images ?? []) }

    /// Encodes this task's images from `rows` (the whole descriptor file).
    public func statistics(of rows: DescriptorMatrix, shard index: Int, workspace: KernelWorkspace) throws -> EncodedVectors {
        var result = EncodedVectors(dimension: encodedDimension)
        result.values.reserveCapacity(images.count * encodedDimension)
        for image in images {
            guard let range = rows.rowRange(first: image.firstRow, count: image.rowCount) else {
                throw DescriptorError(.indexOutOfRange,
                                      "image \(image.key): \(image.rowCount) rows from row \(image.firstRow) exceed the file's \(rows.rows) rows",
                                      path: rows.source)
            }
            let descriptors = try rows.slice(range)
            let vector = try encoder.encode(try projection?.project(descriptors, workspace: workspace) ?? descriptors,
                                            workspace: workspace)
            result.values += whitening?.project(vector, rows: 1) ?? vector
            result.keys.append(image.key)
        }
        return result
    }
}

/// The vectors of one encoding task, in task order: the RESULT of an encode pass.
public struct EncodedVectors: WireStatistics, Equatable {
    public let dimension: Int
    public var keys: [String] = []
    public var values: [Float] = []

    public init(dimension: Int) { self.dimension = dimension }

    public mutating func merge(_ other: EncodedVectors) {
        keys += other.keys
        values += other.values
    }

    public var shape: StatisticsShape { StatisticsShape(rows: keys.count, dimension: dimension, samples: keys.count, keys: keys) }
    /// The vectors f32[n·dimension], row after row.
    public var arrays: [[UInt8]] { [Frame.encode(values)] }

    public init(shape: StatisticsShape, message: WireMessage) throws {
        let keys = shape.keys ?? []
        let d = try PassDecoder.positive(shape.dimension, "dimension")
        self.init(dimension: d)
        values = try message.array(0, as: Float.self, count: try PassDecoder.product(keys.count, d))
        self.keys = keys
    }
}
