/// The element type of stored descriptor values.
public enum ElementType: String, Sendable, Equatable {
    case float32
    case uint8
    case int32

    /// Bytes per value.
    public var size: Int {
        switch self {
        case .float32, .int32: 4
        case .uint8: 1
        }
    }
}

/// A block of rows as float32, ready for BLAS: row `i` starts at `base + i * stride`.
///
/// Valid only inside the closure that received it.
public struct FloatRows {
    public let base: UnsafePointer<Float>
    public let rows: Int
    public let dimension: Int
    /// Distance between consecutive rows, in floats (≥ `dimension`).
    public let stride: Int

    public init(base: UnsafePointer<Float>, rows: Int, dimension: Int, stride: Int) {
        self.base = base
        self.rows = rows
        self.dimension = dimension
        self.stride = stride
    }

    /// The `i`-th row.
    @inline(__always)
    public func row(_ i: Int) -> UnsafePointer<Float> { base + i * stride }
}

/// A read-only N×D matrix of descriptors: a view over a memory-mapped file or an
/// in-memory buffer. Slicing rows (a shard) is another view, copying nothing.
///
/// Rows may be strided (texmex files put a 4-byte dimension before every row) and may
/// hold uint8 or int32 values, which are converted to float32 block by block. A view may
/// carry a `DescriptorTransform` (RootSIFT), applied to every row as it is read.
public struct DescriptorMatrix: @unchecked Sendable {
    // @unchecked Sendable: the storage is immutable after construction and kept alive by
    // `owner`; every view only reads it.
    public let rows: Int
    public let dimension: Int
    public let elementType: ElementType
    /// Where the data came from, for error messages ("in-memory" otherwise).
    public let source: String
    /// The file the rows live in, if they are memory-mapped.
    public let file: MappedFile?
    private let owner: AnyObject?
    private let base: UnsafeRawPointer?
    /// Bytes between consecutive rows.
    private let rowStride: Int
    /// The absolute index of this view's first row in the underlying storage.
    public let firstRow: Int
    /// Whether each row is preceded by a little-endian int32 holding the dimension (texmex
    /// `.fvecs`/`.bvecs`/`.ivecs`). Those headers are checked lazily by `checkRows(_:)`.
    public let hasRowHeaders: Bool
    /// The transform applied to every row as it is read, if any.
    public let transform: DescriptorTransform?

    /// A view over `file`: `rows` rows of `dimension` values starting at byte `offset`,
    /// `rowStride` bytes apart. With `rowHeaders`, the 4 bytes before each row hold its
    /// dimension as a little-endian int32 (texmex layout).
    ///
    /// Throws `.invalidArgument` unless the rows (and their headers) lie within the file.
    public init(file: MappedFile, offset: Int, rows: Int, dimension: Int,
                elementType: ElementType, rowStride: Int, rowHeaders: Bool = false) throws {
        let rowBytes = dimension.multipliedReportingOverflow(by: elementType.size)
        let lastRow = (rows - 1).multipliedReportingOverflow(by: rowStride)
        let end = offset.addingReportingOverflow(lastRow.partialValue)
        guard rows >= 0, dimension >= 0, !rowBytes.overflow, rowStride >= rowBytes.partialValue,
              offset >= (rowHeaders ? 4 : 0),
              rows == 0 || (!lastRow.overflow && !end.overflow && rowBytes.partialValue <= file.size - end.partialValue)
        else {
            throw DescriptorError(.invalidArgument, "\(rows) rows of \(dimension) \(elementType) values, \(rowStride) bytes apart "
                                  + "from byte \(offset)\(rowHeaders ? " with row headers" : ""), do not fit in \(file.size) bytes",
                                  path: file.path)
        }
        self.hasRowHeaders = rowHeaders
        self.rows = rows
        self.dimension = dimension
        self.elementType = elementType
        self.source = file.path
        self.file = file
        self.owner = file
        self.base = file.bytes.map { $0 + offset }
        self.rowStride = rowStride
        self.firstRow = 0
        self.transform = nil
    }

    /// An in-memory matrix owning `values` (row-major, `rows × dimension`); throws
    /// `.invalidArgument` if there are not exactly that many values. `firstRow` and
    /// `source` say where the rows came from, for error messages (rows derived from a file's,
    /// e.g. projected).
    public init(rows: Int, dimension: Int, values: [Float], firstRow: Int = 0, source: String = "in-memory") throws {
        let count = rows.multipliedReportingOverflow(by: dimension)
        guard rows >= 0, dimension >= 0, !count.overflow, values.count == count.partialValue else {
            throw DescriptorError(.invalidArgument, "\(values.count) values are not \(rows) rows × \(dimension)")
        }
        let box = FloatBuffer(values)
        self.rows = rows
        self.dimension = dimension
        self.elementType = .float32
        self.source = source
        self.file = nil
        self.owner = box
        self.base = UnsafeRawPointer(box.pointer)
        self.rowStride = dimension * 4
        self.firstRow = firstRow
        self.hasRowHeaders = false
        self.transform = nil
    }

    private init(parent: DescriptorMatrix, rows range: Range<Int>, transform: DescriptorTransform?) {
        self.rows = range.count
        self.dimension = parent.dimension
        self.elementType = parent.elementType
        self.source = parent.source
        self.file = parent.file
        self.owner = parent.owner
        self.base = parent.base.map { $0 + range.lowerBound * parent.rowStride }
        self.rowStride = parent.rowStride
        self.firstRow = parent.firstRow + range.lowerBound
        self.hasRowHeaders = parent.hasRowHeaders
        self.transform = transform
    }

    /// The rows `first ..< first + count` if they lie within this view, `nil` otherwise
    /// (negative values, or a sum past `Int.max`, included): for row numbers from input.
    public func rowRange(first: Int, count: Int) -> Range<Int>? {
        guard first >= 0, count >= 0, first <= rows, count <= rows - first else { return nil }
        return first ..< first + count
    }

    /// Throws `.indexOutOfRange` unless `range` lies within this view's rows: the check of
    /// every row range a caller passes in (the numeric modules are built without preconditions).
    private func checkBounds(_ range: Range<Int>) throws {
        // lowerBound ≤ upperBound is checked too: an unchecked build does not enforce it.
        guard range.lowerBound >= 0, range.lowerBound <= range.upperBound, range.upperBound <= rows else {
            throw DescriptorError(.indexOutOfRange, "rows \(range.lowerBound)..<\(range.upperBound) of \(rows)", path: source)
        }
    }

    /// The rows in `range` (relative to this view) as a view of their own; throws
    /// `.indexOutOfRange` if they are not all in this view.
    public func slice(_ range: Range<Int>) throws -> DescriptorMatrix {
        try checkBounds(range)
        return DescriptorMatrix(parent: self, rows: range, transform: transform)
    }

    /// The same rows with `transform` applied to each as it is read (`nil`: as stored).
    public func transformed(_ transform: DescriptorTransform?) -> DescriptorMatrix {
        DescriptorMatrix(parent: self, rows: 0..<rows, transform: transform)
    }

    /// Verifies that every row in `range` (relative to this view) carries a header equal to
    /// `dimension`. Opening a texmex file checks only the first and last rows, since checking
    /// all would read the whole file; a scan calls this once per block instead. A no-op for
    /// `.npy` files and in-memory matrices.
    ///
    /// Throws `.dimensionMismatch` naming the file, the absolute row and its byte offset (not
    /// the value found: the file may be anything).
    public func checkRows(_ range: Range<Int>) throws {
        try checkBounds(range)
        guard hasRowHeaders, let base else { return }
        for i in range {
            let header = base + i * rowStride - 4
            let found = Int(Int32(littleEndian: header.loadUnaligned(as: Int32.self)))
            if found != dimension {
                let offset = file?.bytes.map { header - $0 } ?? 0
                let row = firstRow + i
                throw DescriptorError(.dimensionMismatch, "row \(row) does not begin with the dimension \(dimension)",
                                      path: source, location: "row \(row), byte \(offset)")
            }
        }
    }

    /// Byte range of `range` rows within the mapped file (for paging advice).
    private func fileBytes(_ range: Range<Int>) -> Range<Int>? {
        guard let file, let fileBase = file.bytes, let base, !range.isEmpty else { return nil }
        let start = (base - fileBase) + range.lowerBound * rowStride
        return start ..< start + (range.count - 1) * rowStride + dimension * elementType.size
    }

    /// Hints that `range` will be read next and sequentially.
    public func prefetch(_ range: Range<Int>) {
        if let bytes = fileBytes(range) { file?.adviseSequential(bytes) }
    }

    /// Hints that `range` has been read and its pages may be dropped.
    public func release(_ range: Range<Int>) {
        if let bytes = fileBytes(range) { file?.adviseDone(bytes) }
    }

    /// Calls `body` with rows `range` as float32. Float rows are passed in place (no
    /// copy); uint8 and int32 rows, and rows of a transformed view, are converted into
    /// `scratch`, which grows as needed. Throws `.indexOutOfRange` if `range` is not within
    /// this view.
    public func withFloatRows<R>(_ range: Range<Int>, scratch: inout [Float],
                                 _ body: (FloatRows) throws -> R) throws -> R {
        try checkBounds(range)
        return try withFloatRowsInBounds(range, scratch: &scratch, body)
    }

    /// `withFloatRows` for a range already known to be within this view.
    private func withFloatRowsInBounds<R>(_ range: Range<Int>, scratch: inout [Float],
                                          _ body: (FloatRows) throws -> R) rethrows -> R {
        let count = range.count
        guard let base, count > 0 else {
            return try [Float](repeating: 0, count: 1).withUnsafeBufferPointer {
                try body(FloatRows(base: $0.baseAddress!, rows: 0, dimension: dimension, stride: dimension))
            }
        }
        let first = base + range.lowerBound * rowStride
        switch elementType {
        case .float32 where transform == nil && rowStride % 4 == 0 && Int(bitPattern: first) % 4 == 0:
            return try body(FloatRows(base: first.assumingMemoryBound(to: Float.self), rows: count,
                                      dimension: dimension, stride: rowStride / 4))
        default:
            let needed = count * dimension
            if scratch.count < needed { scratch = [Float](repeating: 0, count: needed) }
            return try scratch.withUnsafeMutableBufferPointer { buffer in
                let out = buffer.baseAddress!
                for i in 0..<count {
                    convertRow(first + i * rowStride, into: out + i * dimension)
                }
                transform?.apply(UnsafeMutableBufferPointer(start: out, count: needed), dimension: dimension)
                return try body(FloatRows(base: UnsafePointer(out), rows: count, dimension: dimension,
                                          stride: dimension))
            }
        }
    }

    private func convertRow(_ source: UnsafeRawPointer, into destination: UnsafeMutablePointer<Float>) {
        switch elementType {
        case .uint8:
            let values = source.assumingMemoryBound(to: UInt8.self)
            for j in 0..<dimension { destination[j] = Float(values[j]) }
        case .int32:
            for j in 0..<dimension {
                destination[j] = Float(source.loadUnaligned(fromByteOffset: j * 4, as: Int32.self))
            }
        case .float32:
            for j in 0..<dimension {
                destination[j] = source.loadUnaligned(fromByteOffset: j * 4, as: Float.self)
            }
        }
    }

    /// Row `i` copied out as float32 (for small reads such as sampling; not for scans);
    /// throws `.indexOutOfRange` if there is no such row.
    public func row(_ i: Int) throws -> [Float] {
        guard i >= 0, i < rows else { throw DescriptorError(.indexOutOfRange, "row \(i) of \(rows)", path: source) }
        var out = [Float](repeating: 0, count: dimension)
        guard let base else { return out }
        out.withUnsafeMutableBufferPointer {
            convertRow(base + i * rowStride, into: $0.baseAddress!)
            transform?.apply($0.baseAddress!, count: dimension)
        }
        return out
    }

    /// All rows copied into one row-major float32 array (for small matrices only).
    public func toArray() -> [Float] {
        var out = [Float]()
        out.reserveCapacity(rows * dimension)
        var scratch = [Float]()
        let block = 4096
        var start = 0
        while start < rows {
            let end = min(rows, start + block)
            withFloatRowsInBounds(start..<end, scratch: &scratch) { rows in
                for i in 0..<rows.rows {
                    out.append(contentsOf: UnsafeBufferPointer(start: rows.row(i), count: dimension))
                }
            }
            start = end
        }
        return out
    }
}

/// Owns an in-memory matrix's values at a stable address.
final class FloatBuffer {
    let pointer: UnsafeMutablePointer<Float>
    let count: Int

    init(_ values: [Float]) {
        count = values.count
        pointer = .allocate(capacity: max(count, 1))
        values.withUnsafeBufferPointer { source in
            if let address = source.baseAddress { pointer.initialize(from: address, count: count) }
        }
    }

    deinit { pointer.deallocate() }
}
