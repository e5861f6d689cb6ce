/// Writes float32 descriptors to an `.fvecs` or `.npy` file, streaming: rows are appended
/// in blocks through a buffer, so memory stays small however many rows are written.
///
/// The data goes to a temporary file in the same directory, renamed over `path` by
/// `finish()`; a writer dropped or cancelled before that leaves any existing file at
/// `path` untouched. An `.npy` header records the row count, so it is written as a
/// placeholder and patched by `finish()`.
///
/// ```swift
/// let writer = try DescriptorWriter(path: "corpus.fvecs", dimension: 128)
/// try writer.append(block)          // any number of whole rows, row-major
/// try writer.finish()
/// ```
public final class DescriptorWriter {
    public let path: String
    public let format: DescriptorFormat
    /// Values per row.
    public let dimension: Int
    /// Rows appended so far.
    public private(set) var rows = 0
    private var sink: AtomicFileSink?
    /// Write the `.npy` shape as `(rows,)` instead of `(rows, 1)`.
    private let vectorShape: Bool

    /// A writer for `path` in the format of its extension (`.fvecs` or `.npy`).
    public convenience init(path: String, dimension: Int) throws {
        try self.init(path: path, dimension: dimension, format: DescriptorFormat(path: path))
    }

    /// A writer for `path` in `format` (`.fvecs` or `.npy`), whatever the extension.
    public convenience init(path: String, dimension: Int, format: DescriptorFormat) throws {
        try self.init(path: path, dimension: dimension, format: format, vectorShape: false)
    }

    init(path: String, dimension: Int, format: DescriptorFormat, vectorShape: Bool) throws {
        guard format == .fvecs || format == .npy else {
            throw DescriptorError(.unsupportedFormat, "can write only .fvecs and .npy, not .\(format.rawValue)",
                                  path: path)
        }
        guard dimension > 0, dimension <= DescriptorMatrix.maximumDimension else {
            throw DescriptorError(.invalidArgument,
                                  "dimension \(dimension) is outside 1...\(DescriptorMatrix.maximumDimension)",
                                  path: path)
        }
        self.path = path
        self.format = format
        self.dimension = dimension
        self.vectorShape = vectorShape
        let sink = try AtomicFileSink(path: path)
        if format == .npy { try sink.write(header()) }
        self.sink = sink
    }

    private func header() -> [UInt8] {
        NpyHeader.encodeFloat32(shape: vectorShape ? [rows] : [rows, dimension])
    }

    /// Appends whole rows: `values.count` must be a multiple of `dimension`.
    public func append(_ values: UnsafeBufferPointer<Float>) throws {
        guard let sink else {
            throw DescriptorError(.invalidArgument, "append after finish() or cancel()", path: path)
        }
        guard values.count % dimension == 0 else {
            throw DescriptorError(.invalidArgument,
                                  "\(values.count) values are not whole rows of dimension \(dimension)",
                                  path: path)
        }
        let count = values.count / dimension
        guard let base = values.baseAddress, count > 0 else { return }
        if format == .npy {
            try sink.write(UnsafeRawBufferPointer(values))
        } else {
            let header = Int32(dimension).littleEndian
            let rowBytes = dimension * MemoryLayout<Float>.size
            for i in 0..<count {
                if 4 + rowBytes <= AtomicFileSink.bufferSize {
                    try sink.append(count: 4 + rowBytes) { out in
                        out.storeBytes(of: header, as: Int32.self)
                        (out + 4).copyMemory(from: base + i * dimension, byteCount: rowBytes)
                    }
                } else {
                    try withUnsafeBytes(of: header) { try sink.write($0) }
                    try sink.write(UnsafeRawBufferPointer(start: base + i * dimension, count: rowBytes))
                }
            }
        }
        rows += count
    }

    /// Appends whole rows: `values.count` must be a multiple of `dimension`.
    public func append(_ values: [Float]) throws {
        try values.withUnsafeBufferPointer { try append($0) }
    }

    /// Completes the file and moves it to `path`. Afterwards the writer accepts nothing more.
    public func finish() throws {
        guard let sink else {
            throw DescriptorError(.invalidArgument, "finish() after finish() or cancel()", path: path)
        }
        self.sink = nil
        do {
            if format == .npy { try sink.overwrite(at: 0, header()) }
            try sink.commit()
        } catch {
            sink.abort()
            throw error
        }
    }

    /// Abandons the file: the temporary is removed and `path` is left as it was.
    public func cancel() {
        sink?.abort()
        sink = nil
    }
}
