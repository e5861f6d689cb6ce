extension DescriptorMatrix {
    /// The largest dimension a file may declare; anything larger is taken as corruption.
    public static let maximumDimension = 1 << 20

    /// Memory-maps the descriptor file at `path`, in the format its extension names
    /// (`.fvecs`, `.bvecs`, `.ivecs`, `.npy`). Nothing is read beyond headers.
    ///
    /// Texmex files: the size must be a whole number of rows and the first and last rows'
    /// headers must hold the dimension; the headers in between are checked by
    /// `checkRows(_:)` as the rows are scanned. An empty texmex file is an error, since its
    /// dimension is unknown. `.npy` files must be 2-D, C order, `<f4`, `|u1` or `<i4`; a
    /// shape `(0, D)` gives a matrix of no rows.
    ///
    /// Throws a `DescriptorError` naming the file and the byte at fault.
    public static func open(path: String) throws -> DescriptorMatrix {
        try open(path: path, format: DescriptorFormat(path: path))
    }

    /// Memory-maps the descriptor file at `path` in `format`, whatever its extension.
    public static func open(path: String, format: DescriptorFormat) throws -> DescriptorMatrix {
        let file = try MappedFile(path: path)
        if let elementType = format.texmexElementType {
            return try texmex(file, elementType: elementType)
        }
        return try npy(file, allowVector: false)
    }

    private static func texmex(_ file: MappedFile, elementType: ElementType) throws -> DescriptorMatrix {
        let path = file.path
        guard let bytes = file.bytes, file.size >= 4 else {
            throw DescriptorError(file.size == 0 ? .malformed : .truncated,
                                  file.size == 0 ? "empty texmex file: no row gives the dimension"
                                                 : "file of \(file.size) bytes is shorter than one row header",
                                  path: path, location: "byte 0")
        }
        let dimension = Int(Int32(littleEndian: bytes.loadUnaligned(as: Int32.self)))
        guard dimension > 0, dimension <= maximumDimension else {
            throw DescriptorError(.malformed, "row 0 does not begin with a dimension in 1...\(maximumDimension)",
                                  path: path, location: "row 0, byte 0")
        }
        let rowBytes = 4 + dimension * elementType.size
        let rows = file.size / rowBytes
        guard file.size % rowBytes == 0 else {
            let start = rows * rowBytes
            throw DescriptorError(.truncated,
                                  "file of \(file.size) bytes is not a whole number of \(rowBytes)-byte rows "
                                  + "(dimension \(dimension)): row \(rows) starting at byte \(start) is incomplete",
                                  path: path, location: "byte \(start)")
        }
        let matrix = try DescriptorMatrix(file: file, offset: 4, rows: rows, dimension: dimension,
                                      elementType: elementType, rowStride: rowBytes, rowHeaders: true)
        try matrix.checkRows(rows - 1 ..< rows)
        return matrix
    }

    /// Opens an `.npy` file; with `allowVector`, a 1-D shape `(K,)` is read as K rows of one value.
    static func npy(_ file: MappedFile, allowVector: Bool) throws -> DescriptorMatrix {
        let path = file.path
        let header = try NpyHeader(bytes: file.bytes, count: file.size, path: path)
        let shape = header.shape
        let (rows, dimension): (Int, Int)
        switch shape.count {
        case 2: (rows, dimension) = (shape[0], shape[1])
        case 1 where allowVector: (rows, dimension) = (shape[0], 1)
        default:
            throw DescriptorError(.unsupportedFormat,
                                  "shape \(NpyHeader.describe(shape)) is not 2-D\(allowVector ? " or 1-D" : "")",
                                  path: path, location: "byte \(header.dataOffset)")
        }
        guard dimension > 0, dimension <= maximumDimension else {
            throw DescriptorError(.unsupportedFormat,
                                  "shape \(NpyHeader.describe(shape)) has dimension \(dimension), expected 1...\(maximumDimension)",
                                  path: path, location: "byte \(header.dataOffset)")
        }
        let rowBytes = dimension * header.elementType.size
        let (expected, overflow) = rows.multipliedReportingOverflow(by: rowBytes)
        let actual = file.size - header.dataOffset
        guard !overflow, expected <= actual else {
            throw DescriptorError(.truncated,
                                  "shape \(NpyHeader.describe(shape)) needs \(overflow ? "more than Int.max" : "\(expected)") "
                                  + "data bytes but the file has \(actual)",
                                  path: path, location: "byte \(header.dataOffset)")
        }
        return try DescriptorMatrix(file: file, offset: header.dataOffset, rows: rows, dimension: dimension,
                                elementType: header.elementType, rowStride: rowBytes)
    }
}
