import Descriptors
import Testing
import TestSupport

/// The numeric modules are built with `-Ounchecked` in release, which removes preconditions:
/// every size, range and row index a caller passes in is checked by a thrown error instead.
@Suite struct BoundaryCheckTests {
    static let matrix = try! DescriptorMatrix(rows: 3, dimension: 2, values: [1, 2, 3, 4, 5, 6])

    @Test func anInMemoryMatrixNeedsRowsTimesDimensionValues() {
        expectError(.invalidArgument, "5 values", "3 rows × 2") { _ = try DescriptorMatrix(rows: 3, dimension: 2, values: [1, 2, 3, 4, 5]) }
        expectError(.invalidArgument) { _ = try DescriptorMatrix(rows: -1, dimension: -2, values: [1, 2]) }
        expectError(.invalidArgument) { _ = try DescriptorMatrix(rows: Int.max, dimension: 2, values: []) }
    }

    @Test(arguments: [-1 ..< 1, 2 ..< 4, 3 ..< 4, 0 ..< Int.max])
    func rowRangesOutsideTheViewAreRefused(range: Range<Int>) {
        var scratch = [Float]()
        expectError(.indexOutOfRange, "of 3") { _ = try Self.matrix.slice(range) }
        expectError(.indexOutOfRange, "of 3") { try Self.matrix.withFloatRows(range, scratch: &scratch) { _ in } }
        expectError(.indexOutOfRange, "of 3") { try Self.matrix.checkRows(range) }
    }

    @Test func rowIndicesOutsideTheViewAreRefused() throws {
        for index in [-1, 3, Int.max, Int.min] {
            expectError(.indexOutOfRange, "row \(index) of 3") { _ = try Self.matrix.row(index) }
        }
        #expect(try Self.matrix.row(2) == [5, 6])
        #expect(try Self.matrix.slice(1 ..< 3).row(0) == [3, 4])
    }

    @Test func aFileViewMustLieWithinTheFile() throws {
        let directory = try TemporaryDirectory()
        let file = try MappedFile(path: directory.write("rows.bin", [UInt8](repeating: 0, count: 64)))
        // 4 rows of 4 float32 values fill the 64 bytes exactly; one more byte does not fit.
        #expect(try DescriptorMatrix(file: file, offset: 0, rows: 4, dimension: 4, elementType: .float32, rowStride: 16).rows == 4)
        expectError(.invalidArgument, "do not fit in 64 bytes") {
            _ = try DescriptorMatrix(file: file, offset: 1, rows: 4, dimension: 4, elementType: .float32, rowStride: 16)
        }
        expectError(.invalidArgument) {
            _ = try DescriptorMatrix(file: file, offset: 0, rows: Int.max, dimension: 4, elementType: .float32, rowStride: 16)
        }
        expectError(.invalidArgument) {
            _ = try DescriptorMatrix(file: file, offset: 0, rows: 2, dimension: 4, elementType: .float32, rowStride: 8)
        }
        expectError(.invalidArgument, "with row headers") {
            _ = try DescriptorMatrix(file: file, offset: 0, rows: 1, dimension: 4, elementType: .float32, rowStride: 20,
                                     rowHeaders: true)
        }
    }
}
