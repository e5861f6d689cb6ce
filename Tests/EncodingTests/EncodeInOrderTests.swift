import Clustering
import Descriptors
import Encoding
import Synchronization
import TestSupport
import Testing

/// `encodeInOrder`: blocks of vectors in collection order, the next block encoded while the
/// last is handed over, and nothing handed over after an error.
@Suite struct EncodeInOrderTests {
    static let rowsPerImage = [40, 0, 7, 130, 1, 65, 12, 3, 90, 5, 21]

    /// The images of `rowsPerImage` over one matrix, with a NaN in image `poisoned`'s last row.
    static func collection(in scratch: TemporaryDirectory, poisoned: Int? = nil) throws -> (ImageCollection, [DescriptorMatrix]) {
        var values: [Float] = [], index = "", first = 0
        var images: [DescriptorMatrix] = []
        for (image, rows) in rowsPerImage.enumerated() {
            var data = Problem(seed: 40 + UInt64(image), kind: .gaussian, n: rows, k: 3, d: 2).data
            if image == poisoned { data[data.count - 1] = .nan }
            images.append(try DescriptorMatrix(rows: rows, dimension: 2, values: data))
            values += data
            index += "image\(image)\t\(first)\t\(rows)\n"
            first += rows
        }
        let matrix = try DescriptorMatrix(rows: first, dimension: 2, values: values)
        return (try ImageCollection(index: scratch.write("index.tsv", text: index), descriptors: matrix), images)
    }

    /// On 1 and 3 threads, with blocks of 1, 3 and all images: consecutive ranges from 0 to
    /// the end, and every vector bit for bit that of encoding its image alone.
    @Test(arguments: [1, 3])
    func blocksAreInOrderAndEqualOneByOne(_ threads: Int) async throws {
        let scratch = try TemporaryDirectory()
        let (collection, images) = try Self.collection(in: scratch)
        for (name, encoder) in try VectorEncoderTests.encoders() {
            let expected = try images.flatMap { try encoder.encode($0) }
            let vectorBytes = encoder.encodedDimension * MemoryLayout<Float>.stride
            for imagesPerBlock in [1, 3, images.count] {
                var got: [Float] = [], ranges: [Range<Int>] = []
                try await encoder.encodeInOrder(collection, threads: threads, blockBytes: imagesPerBlock * vectorBytes + vectorBytes - 1) { range, vectors in
                    ranges.append(range)
                    #expect(vectors.count == range.count * encoder.encodedDimension, "\(name)")
                    got += vectors
                }
                let label = "\(name), \(threads) threads, \(imagesPerBlock) images per block"
                #expect(ranges.first?.lowerBound == 0 && ranges.last?.upperBound == images.count, "\(label): \(ranges)")
                #expect(zip(ranges, ranges.dropFirst()).allSatisfy { $0.upperBound == $1.lowerBound }, "\(label): \(ranges)")
                #expect(ranges.allSatisfy { $0.count <= imagesPerBlock }, "\(label): \(ranges)")
                #expect(got.map(\.bitPattern) == expected.map(\.bitPattern), "\(label)")
            }
        }
    }

    /// A NaN in image 6: its error comes out, and the sink never saw image 6 or a later one
    /// (blocks of 2, so the block before was handed over while image 6's was encoded).
    @Test func anImageErrorEndsTheRunBeforeItsBlock() async throws {
        let scratch = try TemporaryDirectory()
        let (collection, _) = try Self.collection(in: scratch, poisoned: 6)
        for (name, encoder) in try VectorEncoderTests.encoders() {
            var seen: [Range<Int>] = []
            let error = await #expect(throws: DescriptorError.self, "\(name)") {
                try await encoder.encodeInOrder(collection, threads: 2,
                                                blockBytes: 2 * encoder.encodedDimension * MemoryLayout<Float>.stride) { range, _ in
                    seen.append(range)
                }
            }
            #expect(error?.code == .nonFinite, "\(name): \(String(describing: error))")
            #expect(seen == [0..<2, 2..<4, 4..<6], "\(name): \(seen)")
        }
    }

    /// An error thrown by the sink ends the run at once: no further call, the error unchanged.
    @Test func aSinkErrorEndsTheRun() async throws {
        struct Full: Error {}
        let scratch = try TemporaryDirectory()
        let (collection, _) = try Self.collection(in: scratch)
        for (name, encoder) in try VectorEncoderTests.encoders() {
            var calls = 0
            await #expect(throws: Full.self, "\(name)") {
                try await encoder.encodeInOrder(collection, threads: 2, blockBytes: 1) { _, _ in
                    calls += 1
                    if calls == 2 { throw Full() }
                }
            }
            #expect(calls == 2, "\(name)")
        }
    }

    /// Both encoders keep float64 sums in the workspace and leave them 0: alternating them on
    /// one workspace gives each one's fresh vectors.
    @Test func encodersShareAWorkspace() throws {
        let scratch = try TemporaryDirectory()
        let (_, images) = try Self.collection(in: scratch)
        let encoders = try VectorEncoderTests.encoders()
        let workspace = KernelWorkspace()
        for image in images {
            for (name, encoder) in encoders + encoders.reversed() {
                #expect(try encoder.encode(image, workspace: workspace) == encoder.encode(image), "\(name)")
            }
        }
    }
}
