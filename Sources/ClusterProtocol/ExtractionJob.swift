import Clustering
import Descriptors
import Features

/// What an extraction computes, as SUBMIT-EXTRACTION and the `extract` pass say it: the
/// options of `codebook extract`.
public struct ExtractionParameters: Codable, Sendable, Equatable {
    public enum Method: String, Codable, Sendable { case sift, dsift }

    public var method: Method
    /// Dense SIFT: grid step and bin size in pixels (absent: 4 and 8).
    public var step: Int?
    public var binSize: Int?
    /// Shrink images whose longer side exceeds this; absent or 0: never.
    public var maxSide: Int?
    /// RootSIFT of every descriptor.
    public var rootSIFT: Bool?

    public init(method: Method, step: Int? = nil, binSize: Int? = nil, maxSide: Int? = nil, rootSIFT: Bool? = nil) {
        self.method = method
        self.step = step
        self.binSize = binSize
        self.maxSide = maxSide
        self.rootSIFT = rootSIFT
    }

    /// The extractor these parameters describe; throws `FeatureError.invalidArgument` for
    /// values outside `FeatureExtractor`'s ranges, or a negative `maxSide`.
    public func extractor() throws -> FeatureExtractor {
        let side = maxSide ?? 0
        guard side >= 0 else { throw FeatureError(.invalidArgument, "a maximum side of \(side) is negative") }
        return try FeatureExtractor(method: method == .sift ? .sift : .denseSIFT(step: step ?? 4, binSize: binSize ?? 8),
                                    maximumSide: side == 0 ? nil : side, rootSIFT: rootSIFT ?? false)
    }
}

/// An extraction job as a client submits it (SUBMIT-EXTRACTION metadata): the descriptors of
/// every image, computed on the workers, in one file written by the coordinator, with the
/// image index `codebook extract` writes.
public struct ExtractionJob: Codable, Sendable, Equatable {
    /// The images in output order, with paths as the coordinator and every worker see them
    /// (absolute).
    public var images: [ImageSource.Entry]
    public var extraction: ExtractionParameters
    /// The descriptor file the coordinator writes (`.npy` or `.fvecs`).
    public var descriptors: String
    /// The image index the coordinator writes (TSV: key, first row, row count).
    public var index: String
    /// Replace existing output files (otherwise the job is refused if either exists).
    public var replace: Bool
    /// Fail the job at the first image that cannot be read, instead of skipping it.
    public var strict: Bool
    /// Images per task.
    public var imagesPerShard: Int

    public init(images: [ImageSource.Entry], extraction: ExtractionParameters, descriptors: String, index: String,
                replace: Bool = false, strict: Bool = false, imagesPerShard: Int = 16) {
        self.images = images
        self.extraction = extraction
        self.descriptors = descriptors
        self.index = index
        self.replace = replace
        self.strict = strict
        self.imagesPerShard = imagesPerShard
    }
}

/// An image an extraction skipped because it could not be read (PROGRESS-REPLY `skipped`).
public struct SkippedImageReport: Codable, Sendable, Equatable {
    public var key: String
    public var path: String
    /// Why, in the worker's words.
    public var message: String

    public init(key: String, path: String, message: String) {
        self.key = key
        self.path = path
        self.message = message
    }
}

/// The `extract` pass: the descriptors of each of a task's images, read by the worker
/// from the image files (it reads no corpus).
public struct ExtractPass: WireComputation {
    public let parameters: ExtractionParameters
    public let extractor: FeatureExtractor
    /// The most bytes of descriptors one task's RESULT may carry.
    public let maximumResultBytes: Int
    /// This task's images (empty for the pass as a whole).
    public let images: [ImageSource.Entry]
    public var decoder = ImageDecoder()

    public init(parameters: ExtractionParameters, maximumResultBytes: Int, images: [ImageSource.Entry] = []) throws {
        self.parameters = parameters
        extractor = try parameters.extractor()
        self.maximumResultBytes = maximumResultBytes
        self.images = images
    }

    public var description: PassDescription {
        PassDescription(kind: .extract, dimension: FeatureExtractor.dimension, extraction: parameters, resultBytes: maximumResultBytes)
    }
    public var modelArrays: [[UInt8]] { [] }

    public func forTask(_ assignment: TaskAssignment) -> ExtractPass { ExtractPass(self, images: assignment.imageFiles ?? []) }

    private init(_ pass: ExtractPass, images: [ImageSource.Entry]) {
        parameters = pass.parameters
        extractor = pass.extractor
        maximumResultBytes = pass.maximumResultBytes
        decoder = pass.decoder
        self.images = images
    }

    /// Extracts this task's images in order (`rows` is not read). An image that cannot be
    /// decoded is reported, not thrown; descriptors beyond `maximumResultBytes` are an error.
    public func statistics(of rows: DescriptorMatrix, shard index: Int, workspace: KernelWorkspace) throws -> ExtractedDescriptors {
        var result = ExtractedDescriptors()
        for image in images {
            result.keys.append(image.key)
            do {
                let values = try extractor.extract(decoder.grey(path: image.path)).descriptors
                guard (result.values.count + values.count) * 4 <= maximumResultBytes else {
                    throw ClusterError(.limit, "the descriptors of this task's images up to \(image.path) take more than "
                                       + "\(maximumResultBytes) bytes, the RESULT limit of the job; use fewer images per shard")
                }
                result.counts.append(values.count / FeatureExtractor.dimension)
                result.values += values
            } catch let error as ClusterError {
                throw error
            } catch {
                result.counts.append(-1)
                result.errors.append(ExtractedDescriptors.cut("\(error)"))
            }
        }
        return result
    }
}

/// The descriptors of one extraction task: the RESULT of an `extract` pass.
public struct ExtractedDescriptors: WireStatistics, Equatable {
    /// The longest reason given for an unreadable image, in UTF-8 bytes.
    public static let maximumErrorBytes = 1024

    /// Every image of the task, in task order.
    public var keys: [String] = []
    /// Descriptors per image; −1 for an image that could not be read.
    public var counts: [Int] = []
    /// Why, for each image counted −1, in order.
    public var errors: [String] = []
    /// The descriptors, image after image, 128 values each.
    public var values: [Float] = []

    public init() {}

    public mutating func merge(_ other: ExtractedDescriptors) {
        keys += other.keys
        counts += other.counts
        errors += other.errors
        values += other.values
    }

    public var rows: Int { values.count / FeatureExtractor.dimension }

    public var shape: StatisticsShape {
        StatisticsShape(rows: rows, dimension: FeatureExtractor.dimension, keys: keys, errors: errors)
    }
    /// counts i64[n], descriptors f32[rows·128].
    public var arrays: [[UInt8]] { [Frame.encode(counts.map(Int64.init)), Frame.encode(values)] }

    public init(shape: StatisticsShape, message: WireMessage) throws {
        keys = shape.keys ?? []
        errors = shape.errors ?? []
        guard shape.dimension == FeatureExtractor.dimension else {
            throw ClusterError.malformed("descriptors of dimension \(shape.dimension); an extraction's have \(FeatureExtractor.dimension)")
        }
        counts = try message.array(0, as: Int64.self, count: keys.count).map { Int($0) }
        values = try message.array(1, as: Float.self, count: try PassDecoder.product(shape.rows, FeatureExtractor.dimension))
    }

    /// Throws `ClusterError.malformed`, naming the first problem, unless these can be the
    /// descriptors of `images`: the same keys in order, counts ≥ −1 adding up to the rows,
    /// one reason (of at most `maximumErrorBytes`) per unreadable image, and every value
    /// finite and within 0…255 (VLFeat's scaled SIFT, and RootSIFT's 0…1).
    public func check(against images: [ImageSource.Entry]) throws {
        guard keys == images.map(\.key) else { throw ClusterError.malformed("the keys are not the task's images") }
        var total = 0
        for (image, count) in zip(images, counts) {
            guard count >= -1, count <= rows - total else {
                throw ClusterError.malformed("image \(image.key) has \(count) descriptors; counts must be ≥ −1 and add up to the \(rows) rows")
            }
            total += max(count, 0)
        }
        guard total == rows else { throw ClusterError.malformed("the counts add up to \(total) descriptors but \(rows) were sent") }
        let unreadable = counts.count { $0 < 0 }
        guard errors.count == unreadable else {
            throw ClusterError.malformed("\(errors.count) reasons for \(unreadable) unreadable images")
        }
        if let long = errors.firstIndex(where: { $0.utf8.count > Self.maximumErrorBytes }) {
            throw ClusterError.malformed("reason \(long) has \(errors[long].utf8.count) bytes, more than \(Self.maximumErrorBytes)")
        }
        if let bad = values.firstIndex(where: { !($0 >= 0 && $0 <= 255) }) {
            throw ClusterError.malformed("descriptor \(bad / FeatureExtractor.dimension) value \(bad % FeatureExtractor.dimension) "
                                         + "is \(values[bad]), not within 0…255")
        }
    }

    /// `text` cut to at most `maximumErrorBytes` bytes of UTF-8, on a character boundary.
    static func cut(_ text: String) -> String {
        guard text.utf8.count > maximumErrorBytes else { return text }
        var cut = ""
        for character in text {
            guard cut.utf8.count + character.utf8.count <= maximumErrorBytes - 3 else { break }
            cut.append(character)
        }
        return cut + "…"
    }
}
