import TestSupport
import Testing
@testable import Descriptors

@Suite struct TexmexReaderTests {
    @Test func fvecsRoundTripThroughWriter() throws {
        let dir = try TemporaryDirectory()
        let path = dir.file("a.fvecs")
        let values = (0..<5 * 3).map { Float($0) * 0.5 - 2 }
        let writer = try DescriptorWriter(path: path, dimension: 3)
        try writer.append(Array(values[0..<6]))
        try writer.append(Array(values[6...]))
        try writer.finish()
        #expect(dir.read("a.fvecs") == fvecs((0..<5).map { Array(values[$0 * 3..<$0 * 3 + 3]) }))
        let matrix = try DescriptorMatrix.open(path: path)
        #expect(matrix.rows == 5 && matrix.dimension == 3 && matrix.elementType == .float32)
        #expect(matrix.hasRowHeaders)
        #expect(matrix.toArray() == values)
        #expect(try matrix.row(4) == [4, 4.5, 5])
        try matrix.checkRows(0..<5)
    }

    @Test func bvecsConvertThroughStridedFloatRows() throws {
        let dir = try TemporaryDirectory()
        let rows: [[UInt8]] = [[0, 1, 2, 255], [10, 20, 30, 40], [7, 7, 7, 7]]
        let path = dir.write("b.bvecs", bvecs(rows))
        let matrix = try DescriptorMatrix.open(path: path)
        #expect(matrix.elementType == .uint8 && matrix.rows == 3 && matrix.dimension == 4)
        var scratch: [Float] = []
        let seen = try matrix.withFloatRows(1..<3, scratch: &scratch) { block in
            (0..<block.rows).map { Array(UnsafeBufferPointer(start: block.row($0), count: block.dimension)) }
        }
        #expect(seen == [[10, 20, 30, 40], [7, 7, 7, 7]])
        #expect(try matrix.slice(0..<1).row(0) == [0, 1, 2, 255])
    }

    @Test func fvecsRowsArePassedInPlaceWithTheirStride() throws {
        let dir = try TemporaryDirectory()
        let path = dir.write("s.fvecs", fvecs([[1, 2], [3, 4], [5, 6]]))
        let matrix = try DescriptorMatrix.open(path: path)
        var scratch: [Float] = []
        let (stride, second) = try matrix.withFloatRows(1..<3, scratch: &scratch) { block in
            (block.stride, [block.row(1)[0], block.row(1)[1]])
        }
        #expect(stride == 3) // the row header sits between rows
        #expect(second == [5, 6])
        #expect(scratch.isEmpty)
    }

    @Test func ivecsRead() throws {
        let dir = try TemporaryDirectory()
        let path = dir.write("c.ivecs", ivecs([[-1, 2], [300000, 4]]))
        let matrix = try DescriptorMatrix.open(path: path)
        #expect(matrix.elementType == .int32)
        #expect(matrix.toArray() == [-1, 2, 300000, 4])
    }

    @Test func truncatedFileNamesTheIncompleteRow() throws {
        let dir = try TemporaryDirectory()
        let path = dir.write("t.fvecs", fvecs([[1, 2], [3, 4]]) + bytes(int32: 2) + [1, 2])
        expectError(.truncated, path, "byte 24", "row 2") { _ = try DescriptorMatrix.open(path: path) }
    }

    @Test func emptyAndTinyFilesAreRejected() throws {
        let dir = try TemporaryDirectory()
        let empty = dir.write("e.fvecs", [])
        expectError(.malformed, empty, "empty") { _ = try DescriptorMatrix.open(path: empty) }
        let tiny = dir.write("t.bvecs", [1, 0])
        expectError(.truncated, tiny) { _ = try DescriptorMatrix.open(path: tiny) }
    }

    @Test func insaneFirstDimensionIsRejected() throws {
        let dir = try TemporaryDirectory()
        for (name, dimension) in [("zero.fvecs", Int32(0)), ("negative.fvecs", -3), ("huge.fvecs", 1 << 21)] {
            let path = dir.write(name, bytes(int32: dimension) + [UInt8](repeating: 0, count: 64))
            expectError(.malformed, path, "row 0 does not begin with a dimension in 1...1048576") {
                _ = try DescriptorMatrix.open(path: path)
            }
        }
    }

    @Test func lastRowHeaderIsCheckedAtOpen() throws {
        let dir = try TemporaryDirectory()
        let path = dir.write("l.bvecs", bvecs([[1, 2], [3, 4], [5, 6]], dimensions: [2, 2, 7]))
        expectError(.dimensionMismatch, path, "row 2 does not begin with the dimension 2", "byte 12") {
            _ = try DescriptorMatrix.open(path: path)
        }
    }

    @Test func checkRowsCatchesACorruptedHeaderInTheMiddle() throws {
        let dir = try TemporaryDirectory()
        var rows = (0..<20).map { i in [Float(i), 0, 0, 0] }
        rows[12] = [9, 9, 9, 9]
        var dimensions = [Int](repeating: 4, count: 20)
        dimensions[12] = 64
        let path = dir.write("m.fvecs", fvecs(rows, dimensions: dimensions))
        let matrix = try DescriptorMatrix.open(path: path)
        try matrix.checkRows(0..<12)
        try matrix.checkRows(13..<20)
        expectError(.dimensionMismatch, path, "row 12 does not begin with the dimension 4", "byte \(12 * 20)") {
            try matrix.checkRows(8..<16)
        }
        // Row numbers are absolute in the file, also through a slice.
        expectError(.dimensionMismatch, "row 12 ", "byte 240") { try matrix.slice(10..<20).checkRows(0..<5) }
    }

    @Test func checkRowsIsANoOpWithoutHeaders() throws {
        try DescriptorMatrix(rows: 2, dimension: 2, values: [1, 2, 3, 4]).checkRows(0..<2)
        let dir = try TemporaryDirectory()
        let path = dir.file("n.npy")
        try NpyFile.write(path: path, rows: 2, columns: 2, values: [1, 2, 3, 4])
        let matrix = try DescriptorMatrix.open(path: path)
        #expect(!matrix.hasRowHeaders)
        try matrix.checkRows(0..<2)
    }

    @Test func formatIsChosenByExtension() throws {
        #expect(try DescriptorFormat(path: "/a.b/x.FVECS") == .fvecs)
        #expect(try DescriptorFormat(path: "base.bvecs") == .bvecs)
        #expect(try DescriptorFormat(path: "dir/x.npy") == .npy)
        expectError(.unsupportedFormat, "x.csv") { _ = try DescriptorFormat(path: "x.csv") }
        expectError(.unsupportedFormat, "a.npy/x") { _ = try DescriptorFormat(path: "a.npy/x") }
        expectError(.unsupportedFormat, "data.txt") { _ = try DescriptorMatrix.open(path: "data.txt") }
        expectError(.fileNotFound, "/nonexistent/x.fvecs") { _ = try DescriptorMatrix.open(path: "/nonexistent/x.fvecs") }
    }

    @Test func explicitFormatOverridesExtension() throws {
        let dir = try TemporaryDirectory()
        let path = dir.write("raw.dat", bvecs([[1, 2, 3]]))
        #expect(try DescriptorMatrix.open(path: path, format: .bvecs).toArray() == [1, 2, 3])
    }
}
