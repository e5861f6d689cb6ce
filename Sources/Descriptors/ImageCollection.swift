#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// An ordered list of images to encode, each a key and its descriptor rows.
///
/// Two sources:
/// - an index over one descriptor file: a UTF-8 TSV with one line per image,
///   `key<TAB>first_row<TAB>row_count`, in the order to encode. Blank lines are skipped; a
///   row count of 0 is an image without descriptors. Keys must be unique and non-empty.
/// - a directory of per-image `.npy` files: the key is the file name without `.npy`, images
///   are sorted by key in byte order, all files must share one dimension. Other files and
///   hidden files (names starting with `.`) are ignored.
///
/// Everything is validated when the collection is built. Per-image files are mapped only
/// when `Image.descriptors()` is called, so a collection of 10^5 files does not hold 10^5
/// memory maps (Linux allows about 65 000 per process).
public struct ImageCollection: RandomAccessCollection, Sendable {
    /// One image: its key and where its descriptors are.
    public struct Image: Sendable {
        /// The image's key, as given by the index or the file name.
        public let key: String
        /// Its number of descriptors.
        public let rows: Int
        fileprivate let source: Source
        /// Applied to the descriptors as they are read.
        fileprivate var transform: DescriptorTransform?

        /// The image's descriptors as a matrix view. For an indexed file, a slice whose
        /// texmex row headers have been checked; for a per-image file, a fresh memory map
        /// whose shape is checked against the one seen when the collection was built.
        /// Carries the collection's transform, if any.
        public func descriptors() throws -> DescriptorMatrix {
            let matrix = try storedDescriptors()
            return transform.map { matrix.transformed($0) } ?? matrix
        }

        private func storedDescriptors() throws -> DescriptorMatrix {
            switch source {
            case .rows(let matrix):
                try matrix.checkRows(0..<matrix.rows)
                return matrix
            case .file(let path, let dimension):
                let matrix = try DescriptorMatrix.open(path: path, format: .npy)
                guard matrix.dimension == dimension, matrix.rows == rows else {
                    throw DescriptorError(.dimensionMismatch,
                                          "file changed: now \(matrix.rows)×\(matrix.dimension), "
                                          + "was \(rows)×\(dimension)", path: path)
                }
                return matrix
            }
        }
    }

    fileprivate enum Source: Sendable {
        case rows(DescriptorMatrix)
        case file(path: String, dimension: Int)
    }

    /// The images, in encoding order.
    public private(set) var images: [Image]
    /// Values per descriptor, shared by every image.
    public let dimension: Int

    public var startIndex: Int { images.startIndex }
    public var endIndex: Int { images.endIndex }
    public subscript(position: Int) -> Image { images[position] }

    /// The same images, with `transform` applied to their descriptors as they are read.
    public func transformed(_ transform: DescriptorTransform) -> ImageCollection {
        var copy = self
        copy.images = images.map { image in
            var image = image
            image.transform = transform
            return image
        }
        return copy
    }

    /// Reads the TSV index at `index` over the descriptor file at `descriptors` (any format
    /// that `DescriptorMatrix.open(path:)` reads).
    public init(index: String, descriptors: String) throws {
        try self.init(index: index, descriptors: DescriptorMatrix.open(path: descriptors))
    }

    /// Reads the TSV index at `index` over the rows of `descriptors`.
    ///
    /// Throws `.malformed` (wrong field count, bad number, empty key, invalid UTF-8),
    /// `.indexOutOfRange` (rows past the end of `descriptors`) or `.duplicateKey`, each
    /// naming the index file and line, and what is wrong, without quoting the line: the file
    /// may be anything its reader could open.
    public init(index: String, descriptors matrix: DescriptorMatrix) throws {
        let file = try MappedFile(path: index)
        let text = UnsafeRawBufferPointer(start: file.bytes, count: file.size)
        var images: [Image] = []
        var lineOfKey: [String: Int] = [:]
        let lines = text.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false)
        for (offset, rawLine) in lines.enumerated() {
            let lineNumber = offset + 1
            func failure(_ code: DescriptorError.Code, _ message: String) -> DescriptorError {
                DescriptorError(code, message, path: index, location: "line \(lineNumber)")
            }
            var line = rawLine[...]
            if line.last == UInt8(ascii: "\r") { line = line.dropLast() }
            if line.allSatisfy({ $0 == 0x20 || $0 == 0x09 }) { continue }
            let fields = line.split(separator: UInt8(ascii: "\t"), omittingEmptySubsequences: false)
            guard fields.count == 3 else {
                throw failure(.malformed, "expected 3 tab-separated fields (key, first row, row count), found \(fields.count)")
            }
            guard let key = String(validating: fields[0], as: UTF8.self) else {
                throw failure(.malformed, "key is not valid UTF-8")
            }
            guard !key.isEmpty else { throw failure(.malformed, "empty key") }
            func number(_ field: Slice<UnsafeRawBufferPointer>, _ name: String) throws -> Int {
                let digits = String(decoding: field, as: UTF8.self).split(separator: " ")
                guard digits.count == 1, let value = Int(digits[0]), value >= 0 else {
                    throw failure(.malformed, "\(name) is not a non-negative integer")
                }
                return value
            }
            let first = try number(fields[1], "first row")
            let count = try number(fields[2], "row count")
            guard let rows = matrix.rowRange(first: first, count: count) else {
                throw failure(.indexOutOfRange,
                              "\(count) rows from row \(first) exceed the \(matrix.rows) rows of \(matrix.source)")
            }
            if let previous = lineOfKey[key] {
                throw failure(.duplicateKey, "the key of line \(previous) again")
            }
            lineOfKey[key] = lineNumber
            try images.append(Image(key: key, rows: count, source: .rows(matrix.slice(rows))))
        }
        self.images = images
        dimension = matrix.dimension
    }

    /// Reads every `.npy` file in `directory`, sorted by key in byte order.
    ///
    /// Throws `.fileNotFound` for a missing directory, `.invalidArgument` if it holds no
    /// `.npy` file, `.dimensionMismatch` naming the first file whose dimension differs, and
    /// any error of `DescriptorMatrix.open(path:)`.
    public init(directory: String) throws {
        let keys = try Self.visibleNames(in: directory, where: { $0.hasSuffix(".npy") && $0.count > 4 }).map { String($0.dropLast(4)) }
            .sorted { $0.utf8.lexicographicallyPrecedes($1.utf8) }
        guard !keys.isEmpty else {
            throw DescriptorError(.invalidArgument, "no .npy files in directory", path: directory)
        }
        let prefix = directory.hasSuffix("/") ? directory : directory + "/"
        var images: [Image] = []
        var reference: (path: String, dimension: Int)?
        for key in keys {
            let path = prefix + key + ".npy"
            let matrix = try DescriptorMatrix.open(path: path, format: .npy)
            if let reference, reference.dimension != matrix.dimension {
                throw DescriptorError(.dimensionMismatch,
                                      "dimension \(matrix.dimension) differs from dimension \(reference.dimension) of \(reference.path)",
                                      path: path)
            }
            reference = reference ?? (path, matrix.dimension)
            images.append(Image(key: key, rows: matrix.rows, source: .file(path: path, dimension: matrix.dimension)))
        }
        self.images = images
        dimension = reference?.dimension ?? 0
    }

    /// The names in `directory` that do not start with `.` and that `include` takes, in no
    /// particular order. Throws `.fileNotFound` for a missing directory, `.ioFailure` if it
    /// cannot be listed, and `.malformed` for a name that is not valid UTF-8 and that
    /// `include` takes as decoded with replacement characters (its bytes escaped in the
    /// message): such a file could not be opened by its decoded name.
    public static func visibleNames(in directory: String, where include: (String) -> Bool = { _ in true }) throws -> [String] {
        guard let handle = opendir(directory) else {
            let err = errno
            throw DescriptorError(err == ENOENT ? .fileNotFound : .ioFailure, "cannot list directory",
                                  path: directory, underlying: SystemCallError(errno: err))
        }
        defer { closedir(handle) }
        var names: [String] = []
        while let entry = readdir(handle) {
            let bytes = withUnsafeBytes(of: entry.pointee.d_name) { Array($0.prefix(while: { $0 != 0 })) }
            let name = String(decoding: bytes, as: UTF8.self)
            guard !name.hasPrefix("."), include(name) else { continue }
            guard String(validating: bytes, as: UTF8.self) != nil else {
                throw DescriptorError(.malformed, "the name of file \"\(escaped(bytes))\" is not valid UTF-8; rename it", path: directory)
            }
            names.append(name)
        }
        return names
    }

    /// Bytes as text: printable ASCII as it is, other bytes (and the backslash) as `\xNN`.
    static func escaped(_ bytes: [UInt8]) -> String {
        bytes.map { (0x20..<0x7f).contains($0) && $0 != UInt8(ascii: "\\") ? String(UnicodeScalar($0))
                                                                        : "\\x" + ($0 < 16 ? "0" : "") + String($0, radix: 16, uppercase: true) }
            .joined()
    }
}
