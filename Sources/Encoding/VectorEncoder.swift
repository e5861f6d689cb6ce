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
    /// `sink` in collection order, a block of consecutive images at a time: `vectors` holds
    /// `images.count` vectors of `encodedDimension` values, row after row, valid only during
    /// the call. Blocks are at most `blockBytes` (at least one image), and two are kept: `sink`
    /// runs on the calling thread while the next block is encoded, so writing the vectors
    /// overlaps encoding, and memory stays at two blocks whatever the collection's size.
    /// An error (from an image or from `sink`) ends the run; `sink` never sees the images after it.
    public func encodeInOrder(_ collection: ImageCollection, threads: Int, blockBytes: Int = 16 << 20,
                              sink: (_ images: Range<Int>, _ vectors: UnsafeBufferPointer<Float>) throws -> Void) async throws {
        guard collection.dimension == descriptorDimension || collection.isEmpty else {
            throw ClusteringError(.dimensionMismatch,
                                  "descriptors have dimension \(collection.dimension), the model expects \(descriptorDimension)")
        }
        let length = encodedDimension
        let blockImages = max(1, min(collection.count, blockBytes / (length * MemoryLayout<Float>.stride)))
        let blocks = [UnsafeMutableBufferPointer<Float>.allocate(capacity: blockImages * length),
                      .allocate(capacity: blockImages * length)]
        defer { blocks.forEach { $0.deallocate() } }
        let shared = blocks.map { VectorBlock(values: $0) }
        let pool = WorkspacePool(threads: threads)
        /// Encodes `range` into block `slot` on the worker threads.
        func encodeBlock(_ range: Range<Int>, into slot: Int) async throws {
            let block = shared[slot]
            try await ParallelWork.run(count: range.count, threads: threads, pool: pool) { offset, workspace in
                let output = UnsafeMutableBufferPointer(rebasing: block.values[offset * length ..< (offset + 1) * length])
                try encode(try collection[range.lowerBound + offset].descriptors(), workspace: workspace, into: output)
            }
        }
        var encoded: (range: Range<Int>, slot: Int)?
        var start = 0
        while start < collection.count || encoded != nil {
            let range = start ..< min(collection.count, start + blockImages)
            let slot = encoded.map { 1 - $0.slot } ?? 0
            // The next block is encoded (by threads of its own) while this thread hands the last one to `sink`.
            async let next: Void = range.isEmpty ? () : encodeBlock(range, into: slot)
            if let encoded {
                try sink(encoded.range, UnsafeBufferPointer(rebasing: blocks[encoded.slot][0 ..< encoded.range.count * length]))
            }
            try await next
            encoded = range.isEmpty ? nil : (range, slot)
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
    static func signedSquareRoot(_ v: UnsafeMutableBufferPointer<Double>) {
        for i in v.indices { v[i] = v[i] < 0 ? -(-v[i]).squareRoot() : v[i].squareRoot() }
    }

    /// v ← v / max(‖v‖₂, 1e-12).
    static func normalizeL2(_ v: UnsafeMutableBufferPointer<Double>) {
        let norm = v.reduce(0) { $0 + $1 * $1 }.squareRoot()
        let scale = 1 / max(norm, minimumNorm)
        for i in v.indices { v[i] *= scale }
    }
}

/// A block of vectors handed to the encoding threads, each writing its own images' rows.
private struct VectorBlock: @unchecked Sendable {
    let values: UnsafeMutableBufferPointer<Float>
}
