import TestSupport
import Testing
@testable import Descriptors

@Suite struct ImageCollectionTests {
    /// A 10-row, 2-D `.fvecs` whose row i is [i, -i].
    func corpus(_ dir: TemporaryDirectory) throws -> String {
        let path = dir.file("corpus.fvecs")
        let writer = try DescriptorWriter(path: path, dimension: 2)
        try writer.append((0..<10).flatMap { [Float($0), -Float($0)] })
        try writer.finish()
        return path
    }

    @Test func indexOverOneFile() throws {
        let dir = try TemporaryDirectory()
        let corpus = try corpus(dir)
        let index = dir.write("index.tsv", text: "b\t0\t3\n\n  \nä/1\t3\t0\r\na\t3\t7\n")
        let images = try ImageCollection(index: index, descriptors: corpus)
        #expect(images.count == 3 && images.dimension == 2)
        #expect(images.map(\.key) == ["b", "ä/1", "a"]) // index order, not sorted
        #expect(images.map(\.rows) == [3, 0, 7])
        #expect(try images[0].descriptors().toArray() == [0, 0, 1, -1, 2, -2])
        #expect(try images[1].descriptors().rows == 0)
        let last = try images[2].descriptors()
        #expect(try last.firstRow == 3 && last.row(6) == [9, -9])
    }

    @Test func emptyIndexGivesNoImages() throws {
        let dir = try TemporaryDirectory()
        let images = try ImageCollection(index: dir.write("i.tsv", text: ""), descriptors: try corpus(dir))
        #expect(images.isEmpty && images.dimension == 2)
    }

    @Test(arguments: [
        ("a\t0\t1\nb\t1\n", DescriptorError.Code.malformed, ["line 2", "found 2"]),
        ("a\t0\t1\tx\n", .malformed, ["line 1", "found 4"]),
        ("a\t0\t1\n\t1\t1\n", .malformed, ["line 2", "empty key"]),
        ("a\tx\t1\n", .malformed, ["line 1", "first row is not a non-negative integer"]),
        ("a\t0\t-1\n", .malformed, ["line 1", "row count is not a non-negative integer"]),
        ("a\t0\t1.5\n", .malformed, ["line 1", "row count is not"]),
        ("a\t0\t1\nb\t1\t2\nc\t8\t3\n", .indexOutOfRange, ["line 3", "3 rows from row 8 exceed the 10 rows of", "corpus.fvecs"]),
        ("a\t9223372036854775807\t2\n", .indexOutOfRange, ["line 1", "exceed"]),
        ("a\t0\t1\nb\t1\t1\n\na\t2\t1\n", .duplicateKey, ["line 4", "the key of line 1 again"]),
    ])
    func badIndexLinesAreNamed(text: String, code: DescriptorError.Code, fragments: [String]) throws {
        let dir = try TemporaryDirectory()
        let corpus = try corpus(dir)
        let index = dir.write("bad.tsv", text: text)
        do {
            _ = try ImageCollection(index: index, descriptors: corpus)
            Issue.record("expected \(code)")
        } catch let error as DescriptorError {
            #expect(error.code == code, "\(error)")
            #expect(error.path == index, "\(error)")
            for fragment in fragments { #expect(error.description.contains(fragment), "\(error)") }
        }
    }

    @Test func invalidUTF8KeyIsRejected() throws {
        let dir = try TemporaryDirectory()
        let index = dir.write("u.tsv", [0xFF, 0xFE, 0x09, 0x30, 0x09, 0x31, 0x0A])
        expectError(.malformed, "line 1", "UTF-8") { _ = try ImageCollection(index: index, descriptors: try corpus(dir)) }
    }

    @Test func descriptorsCheckTexmexHeaders() throws {
        let dir = try TemporaryDirectory()
        let corpus = dir.write("c.bvecs", bvecs([[1, 2], [3, 4], [5, 6], [7, 8]], dimensions: [2, 9, 2, 2]))
        let images = try ImageCollection(index: dir.write("i.tsv", text: "x\t0\t2\ny\t2\t2\n"), descriptors: corpus)
        expectError(.dimensionMismatch, "row 1 does not begin with the dimension 2") { _ = try images[0].descriptors() }
        #expect(try images[1].descriptors().toArray() == [5, 6, 7, 8])
    }

    @Test func directoryOfNpyFiles() throws {
        let dir = try TemporaryDirectory()
        try NpyFile.write(path: dir.file("img-b.npy"), rows: 2, columns: 3, values: [1, 2, 3, 4, 5, 6])
        try NpyFile.write(path: dir.file("Img-c.npy"), rows: 1, columns: 3, values: [7, 8, 9])
        try NpyFile.write(path: dir.file("img-a.npy"), rows: 0, columns: 3, values: [])
        dir.write("u8.npy", npy(dict: "{'descr': '|u1', 'fortran_order': False, 'shape': (1, 3), }", data: [250, 0, 1]))
        _ = dir.write("notes.txt", text: "ignored")
        _ = dir.write(".hidden.npy", text: "ignored too")
        let images = try ImageCollection(directory: dir.path)
        #expect(images.map(\.key) == ["Img-c", "img-a", "img-b", "u8"]) // byte order: 'I' < 'i'
        #expect(images.map(\.rows) == [1, 0, 2, 1])
        #expect(images.dimension == 3)
        #expect(try images[2].descriptors().toArray() == [1, 2, 3, 4, 5, 6])
        #expect(try images[3].descriptors().row(0) == [250, 0, 1])

        try NpyFile.write(path: dir.file("img-b.npy"), rows: 1, columns: 3, values: [1, 2, 3])
        expectError(.dimensionMismatch, "img-b.npy", "file changed") { _ = try images[2].descriptors() }
    }

    @Test func directoryErrors() throws {
        let dir = try TemporaryDirectory()
        expectError(.fileNotFound, dir.file("missing")) { _ = try ImageCollection(directory: dir.file("missing")) }
        _ = dir.write("readme.md", text: "x")
        expectError(.invalidArgument, "no .npy files") { _ = try ImageCollection(directory: dir.path) }
        try NpyFile.write(path: dir.file("a.npy"), rows: 1, columns: 3, values: [1, 2, 3])
        try NpyFile.write(path: dir.file("b.npy"), rows: 1, columns: 2, values: [1, 2])
        expectError(.dimensionMismatch, dir.file("b.npy"), "dimension 2 differs from dimension 3", "a.npy") {
            _ = try ImageCollection(directory: dir.path + "/")
        }
        dir.write("b.npy", [1, 2, 3])
        expectError(.malformed, "b.npy", "bad magic") { _ = try ImageCollection(directory: dir.path) }
    }
}

@Suite struct DescriptorTransformTests {
    /// RootSIFT of one row in float64: sign(x)·√(|x| / Σ|x|), zero rows unchanged.
    static func reference(_ row: [Float]) -> [Float] {
        let norm = row.reduce(0.0) { $0 + Double(abs($1)) }
        guard norm > 0 else { return row }
        return row.map { value in
            let root = (Double(abs(value)) / norm).squareRoot()
            return Float(value < 0 ? -root : root)
        }
    }

    @Test func rootSIFTRowsEqualTheFloat64Reference() throws {
        var generator = SeededGenerator(seed: 9)
        let rows = 300, dimension = 128
        var values = (0..<rows * dimension).map { _ in Float(generator.nextUnit() * 255).rounded() }
        values.replaceSubrange(0..<dimension, with: repeatElement(0, count: dimension)) // an all-zero row
        values[dimension] = -3                                                           // a negative value
        let matrix = try DescriptorMatrix(rows: rows, dimension: dimension, values: values).transformed(.rootSIFT)
        let expected = (0..<rows).flatMap { Self.reference(Array(values[$0 * dimension ..< ($0 + 1) * dimension])) }
        #expect(matrix.toArray() == expected)
        #expect(try matrix.row(7) == Array(expected[7 * dimension ..< 8 * dimension]))
        // Slices keep the transform; an untransformed view reads the rows as stored.
        #expect(try matrix.slice(100..<200).toArray() == Array(expected[100 * dimension ..< 200 * dimension]))
        #expect(matrix.transformed(nil).toArray() == values)
        var scratch: [Float] = []
        try matrix.withFloatRows(5..<9, scratch: &scratch) { block in
            #expect(Array(UnsafeBufferPointer(start: block.base, count: 4 * dimension)) == Array(expected[5 * dimension ..< 9 * dimension]))
        }
    }

    @Test func imageCollectionsCarryTheTransform() throws {
        let scratch = try TemporaryDirectory()
        let values = (0..<40).map { Float($0 % 7) }
        let index = scratch.write("i.tsv", text: "a\t0\t2\nb\t2\t3\n")
        let images = try ImageCollection(index: index, descriptors: DescriptorMatrix(rows: 5, dimension: 8, values: values))
            .transformed(.rootSIFT)
        let b = try images[1].descriptors().toArray()
        var expected: [Float] = []
        for row in 2..<5 { expected += Self.reference(Array(values[row * 8 ..< (row + 1) * 8])) }
        #expect(b == expected)
    }
}
