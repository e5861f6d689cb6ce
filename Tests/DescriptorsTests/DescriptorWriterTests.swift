import TestSupport
import Testing
@testable import Descriptors

@Suite struct DescriptorWriterTests {
    /// Rows spanning several write buffers, appended in uneven blocks.
    @Test(arguments: ["big.fvecs", "big.npy"])
    func largeStreamingRoundTrip(name: String) throws {
        let dir = try TemporaryDirectory()
        let dimension = 100
        let rows = 6000 // 2.4 MB of values: more than two write buffers
        let writer = try DescriptorWriter(path: dir.file(name), dimension: dimension)
        var generator = SeededGenerator(seed: 7)
        let values = (0..<rows * dimension).map { _ in Float(generator.nextGaussian()) }
        var start = 0
        for block in [1, 999, 3000, 2000] {
            try values.withUnsafeBufferPointer {
                try writer.append(UnsafeBufferPointer(rebasing: $0[start * dimension..<(start + block) * dimension]))
            }
            start += block
        }
        #expect(writer.rows == rows)
        #expect(!dir.names().contains(name)) // nothing at the target before finish()
        try writer.finish()
        #expect(dir.names() == [name]) // and no temporary left behind
        let matrix = try DescriptorMatrix.open(path: dir.file(name))
        #expect(matrix.rows == rows && matrix.dimension == dimension)
        try matrix.checkRows(0..<rows)
        #expect(matrix.toArray() == values)
    }

    @Test func cancelledOrDroppedWriterLeavesExistingFileUntouched() throws {
        let dir = try TemporaryDirectory()
        let path = dir.file("keep.npy")
        try NpyFile.write(path: path, rows: 1, columns: 2, values: [1, 2])
        let before = dir.read("keep.npy")

        let cancelled = try DescriptorWriter(path: path, dimension: 2)
        try cancelled.append([9, 9, 9, 9])
        cancelled.cancel()
        expectError(.invalidArgument, path) { try cancelled.append([1, 2]) }
        expectError(.invalidArgument, path) { try cancelled.finish() }

        do {
            let dropped = try DescriptorWriter(path: path, dimension: 2)
            try dropped.append([8, 8])
        }
        #expect(dir.read("keep.npy") == before)
        #expect(dir.names() == ["keep.npy"])
    }

    @Test func finishReplacesAnExistingFile() throws {
        let dir = try TemporaryDirectory()
        let path = dir.file("r.fvecs")
        try SyntheticCorpus(rows: 10, dimension: 4, clusters: 2, seed: 1).write(to: path)
        let writer = try DescriptorWriter(path: path, dimension: 2)
        try writer.append([1, 2])
        try writer.finish()
        #expect(try DescriptorMatrix.open(path: path).toArray() == [1, 2])
        expectError(.invalidArgument) { try writer.finish() }
    }

    @Test func invalidArgumentsAreRejected() throws {
        let dir = try TemporaryDirectory()
        expectError(.unsupportedFormat, ".bvecs") { _ = try DescriptorWriter(path: dir.file("x.bvecs"), dimension: 4) }
        expectError(.unsupportedFormat) { _ = try DescriptorWriter(path: dir.file("x.csv"), dimension: 4) }
        expectError(.invalidArgument, "dimension 0") { _ = try DescriptorWriter(path: dir.file("x.npy"), dimension: 0) }
        expectError(.fileNotFound, "/no/such/dir/x.npy") { _ = try DescriptorWriter(path: "/no/such/dir/x.npy", dimension: 4) }
        let writer = try DescriptorWriter(path: dir.file("x.fvecs"), dimension: 4)
        expectError(.invalidArgument, "6 values", "dimension 4") { try writer.append([1, 2, 3, 4, 5, 6]) }
        try writer.append([])
        try writer.finish()
        expectError(.malformed, "empty") { _ = try DescriptorMatrix.open(path: dir.file("x.fvecs")) }
    }
}
