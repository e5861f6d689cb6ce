#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Dispatch

/// A seeded synthetic corpus of SIFT-like descriptors: rows drawn from a mixture of
/// `clusters` Gaussians, written in blocks to `.fvecs` or `.npy` so `rows` can be 10^7 or
/// more without holding the corpus in memory.
///
/// The model: centre coordinates uniform in `[0, centreScale)`; each cluster has one
/// standard deviation, uniform in `spread`; a row picks its cluster uniformly, adds
/// independent Gaussian noise to each coordinate and clamps at 0 (SIFT values are
/// non-negative, with many zeros). The model draws from stream 0 of `seed` and block `b`
/// of `blockRows` rows from stream `b + 1`, so the bytes depend only on the parameters
/// (blocks are generated in parallel, which changes nothing in the output).
public struct SyntheticCorpus: Sendable, Equatable {
    /// Rows generated per block, each from its own random stream.
    public static let blockRows = 4096

    public var rows: Int
    public var dimension: Int
    public var clusters: Int
    public var seed: UInt64
    /// Centre coordinates are uniform in `[0, centreScale)`.
    public var centreScale: Double = 100
    /// Each cluster's standard deviation is uniform in this range.
    public var spread: ClosedRange<Double> = 2...8

    public init(rows: Int, dimension: Int, clusters: Int, seed: UInt64) {
        self.rows = rows
        self.dimension = dimension
        self.clusters = clusters
        self.seed = seed
    }

    /// The true cluster centres, `clusters × dimension` row-major.
    public func centres() -> [Float] { model().centres }

    /// The true per-cluster standard deviations.
    public func deviations() -> [Float] { model().deviations }

    private func model() -> (centres: [Float], deviations: [Float]) {
        var generator = SeededGenerator(seed: seed, stream: 0)
        let centres = (0..<max(0, clusters * dimension)).map { _ in Float(generator.nextUnit() * centreScale) }
        let deviations = (0..<max(0, clusters)).map { _ in
            Float(spread.lowerBound + generator.nextUnit() * (spread.upperBound - spread.lowerBound))
        }
        return (centres, deviations)
    }

    /// Fills `out` with the rows of block `block` (fewer in the last block).
    private func generate(block: Int, into out: UnsafeMutablePointer<Float>, centres: [Float],
                          deviations: [Float]) {
        var generator = SeededGenerator(seed: seed, stream: UInt64(block + 1))
        let count = min(Self.blockRows, rows - block * Self.blockRows)
        for i in 0..<count {
            let cluster = min(Int(generator.nextUnit() * Double(clusters)), clusters - 1)
            let deviation = Double(deviations[cluster])
            let centre = cluster * dimension
            let row = out + i * dimension
            var j = 0
            while j < dimension { // Box–Muller, both deviates used
                let radius = (-2 * log(max(generator.nextUnit(), 0x1.0p-60))).squareRoot() * deviation
                let angle = 2 * Double.pi * generator.nextUnit()
                row[j] = max(0, centres[centre + j] + Float(radius * cos(angle)))
                if j + 1 < dimension { row[j + 1] = max(0, centres[centre + j + 1] + Float(radius * sin(angle))) }
                j += 2
            }
        }
    }

    /// Writes the corpus to `path` (`.fvecs` or `.npy`, by extension). With `index`, also
    /// writes a TSV image index there grouping consecutive rows into images of `imagesOf`
    /// rows (the last may be smaller), keyed `image-000000`, `image-000001`, … (zero-padded
    /// so byte order is numeric order). Both files are written atomically.
    public func write(to path: String, index: String? = nil, imagesOf: Int = 300) throws {
        guard rows >= 0, clusters > 0, imagesOf > 0, spread.lowerBound >= 0, centreScale > 0 else {
            throw DescriptorError(.invalidArgument,
                                  "need rows ≥ 0, clusters > 0, imagesOf > 0, spread ≥ 0 and centreScale > 0 "
                                  + "(rows=\(rows), clusters=\(clusters), imagesOf=\(imagesOf), spread=\(spread), "
                                  + "centreScale=\(centreScale))", path: path)
        }
        let (values, overflow) = rows.multipliedReportingOverflow(by: dimension)
        guard !overflow, values <= Int.max / 4 else {
            throw DescriptorError(.invalidArgument, "\(rows) rows of dimension \(dimension) need more than Int.max bytes", path: path)
        }
        let writer = try DescriptorWriter(path: path, dimension: dimension)
        let (centres, deviations) = model()
        let blocks = rows / Self.blockRows + (rows % Self.blockRows == 0 ? 0 : 1)
        let batch = 8 // blocks generated in parallel before each append
        var buffer = [Float](repeating: 0, count: min(blocks, batch) * Self.blockRows * dimension)
        for first in stride(from: 0, to: blocks, by: batch) {
            let last = min(blocks, first + batch)
            buffer.withUnsafeMutableBufferPointer { out in
                let out = SendableBuffer(base: out.baseAddress!)
                DispatchQueue.concurrentPerform(iterations: last - first) { k in
                    generate(block: first + k, into: out.base + k * Self.blockRows * dimension,
                             centres: centres, deviations: deviations)
                }
            }
            let count = min(rows, last * Self.blockRows) - first * Self.blockRows
            try buffer.withUnsafeBufferPointer {
                try writer.append(UnsafeBufferPointer(rebasing: $0[0..<count * dimension]))
            }
        }
        try writer.finish()
        if let index {
            let sink = try AtomicFileSink(path: index)
            let images = (rows + imagesOf - 1) / imagesOf
            let width = max(6, String(max(images - 1, 0)).count)
            var text = ""
            for image in 0..<images {
                let number = String(image)
                let first = image * imagesOf
                let key = "image-" + String(repeating: "0", count: width - number.count) + number
                text += "\(key)\t\(first)\t\(min(imagesOf, rows - first))\n"
                if text.utf8.count >= 1 << 16 {
                    try sink.write(Array(text.utf8))
                    text = ""
                }
            }
            try sink.write(Array(text.utf8))
            try sink.commit()
        }
    }
}

/// A buffer's base address handed to parallel block generators, each writing its own block.
private struct SendableBuffer: @unchecked Sendable {
    let base: UnsafeMutablePointer<Float>
}
