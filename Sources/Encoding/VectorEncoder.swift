import Clustering
import Descriptors
import Synchronization

/// Turns one image's descriptors into one fixed-size vector.
public protocol VectorEncoder: Sendable {
    /// The length of every encoded vector.
    var encodedDimension: Int { get }
    /// The dimension the descriptors must have.
    var descriptorDimension: Int { get }
    /// Encodes `descriptors` (all rows of one image) into `output` (`encodedDimension` values).
    /// An image with no descriptors encodes to zeros.
    func encode(_ descriptors: DescriptorMatrix, workspace: KernelWorkspace, into output: UnsafeMutableBufferPointer<Float>) throws
}

extension VectorEncoder {
    /// Encodes one image into a new array.
    public func encode(_ descriptors: DescriptorMatrix, workspace: KernelWorkspace = KernelWorkspace()) throws -> [Float] {
        var vector = [Float](repeating: 0, count: encodedDimension)
        try vector.withUnsafeMutableBufferPointer { try encode(descriptors, workspace: workspace, into: $0) }
        return vector
    }

    /// Encodes many images on `threads` threads; `output(i, vector)` receives image i's
    /// vector, possibly from several threads at once and in any order.
    public func encodeAll(_ images: [DescriptorMatrix], threads: Int,
                          output: @escaping @Sendable (Int, [Float]) throws -> Void) async throws {
        for (index, image) in images.enumerated() where image.dimension != descriptorDimension && image.rows > 0 {
            throw ClusteringError(.dimensionMismatch,
                                  "image \(index) has descriptors of dimension \(image.dimension), the model expects \(descriptorDimension)",
                                  context: image.source)
        }
        try await ParallelWork.run(count: images.count, threads: threads) { index, workspace in
            try output(index, try encode(images[index], workspace: workspace))
        }
    }

    /// Encodes every image of `collection` on `threads` threads and hands the vectors to
    /// `sink` in collection order. Works through the collection `chunk` images at a time,
    /// so memory holds at most one chunk of vectors.
    public func encodeInOrder(_ collection: ImageCollection, threads: Int, chunk: Int = 256,
                              sink: (_ index: Int, _ vector: [Float]) throws -> Void) async throws {
        guard collection.dimension == descriptorDimension || collection.isEmpty else {
            throw ClusteringError(.dimensionMismatch,
                                  "descriptors have dimension \(collection.dimension), the model expects \(descriptorDimension)")
        }
        var start = 0
        while start < collection.count {
            let range = start ..< min(collection.count, start + max(chunk, 1))
            let vectors = Mutex([[Float]](repeating: [], count: range.count))
            try await ParallelWork.run(count: range.count, threads: threads) { offset, workspace in
                let image = collection[range.lowerBound + offset]
                let vector = try encode(try image.descriptors(), workspace: workspace)
                vectors.withLock { $0[offset] = vector }
            }
            for (offset, vector) in vectors.withLock({ $0 }).enumerated() { try sink(range.lowerBound + offset, vector) }
            start = range.upperBound
        }
    }

    func checkDimension(_ descriptors: DescriptorMatrix) throws {
        guard descriptors.dimension == descriptorDimension || descriptors.rows == 0 else {
            throw ClusteringError(.dimensionMismatch,
                                  "descriptors have dimension \(descriptors.dimension), the model expects \(descriptorDimension)",
                                  context: descriptors.source)
        }
    }

    /// Throws `.invalidArgument` unless `output` holds exactly `encodedDimension` values.
    func checkOutput(_ output: UnsafeMutableBufferPointer<Float>) throws {
        guard output.count == encodedDimension else {
            throw DescriptorError(.invalidArgument, "an output of \(output.count) values for vectors of \(encodedDimension)")
        }
    }
}

/// Normalisation guards and the signed square root shared by the encoders.
enum Normalization {
    /// The smallest norm divided by (VLFeat's guard against dividing by zero).
    static let minimumNorm = 1e-12

    /// v ← sign(v)·√|v|, element-wise.
    static func signedSquareRoot(_ v: inout ArraySlice<Double>) {
        for i in v.indices { v[i] = v[i] < 0 ? -(-v[i]).squareRoot() : v[i].squareRoot() }
    }

    /// v ← v / max(‖v‖₂, 1e-12).
    static func normalizeL2(_ v: inout ArraySlice<Double>) {
        let norm = v.reduce(0) { $0 + $1 * $1 }.squareRoot()
        let scale = 1 / max(norm, minimumNorm)
        for i in v.indices { v[i] *= scale }
    }
}
