/// Whole-array reads and writes of small `.npy` files, such as codebook centres, GMM
/// parameters or priors. Large corpora go through `DescriptorMatrix.open(path:)` and
/// `DescriptorWriter` instead, which never hold the whole file.
public enum NpyFile {
    /// Writes a `rows × columns` float32 array (row-major `values`) to `path`, atomically.
    public static func write(path: String, rows: Int, columns: Int, values: [Float]) throws {
        guard rows >= 0, values.count == rows * columns else {
            throw DescriptorError(.invalidArgument,
                                  "\(values.count) values do not make \(rows) rows of \(columns)", path: path)
        }
        let writer = try DescriptorWriter(path: path, dimension: columns, format: .npy)
        try writer.append(values)
        try writer.finish()
    }

    /// Writes `values` as a 1-D float32 array of shape `(values.count,)`, atomically.
    public static func write(path: String, vector values: [Float]) throws {
        let writer = try DescriptorWriter(path: path, dimension: 1, format: .npy, vectorShape: true)
        try writer.append(values)
        try writer.finish()
    }

    /// Reads a whole `.npy` array as float32 (uint8 and int32 are converted).
    ///
    /// A 2-D array of shape `(R, C)` gives `rows = R, columns = C`; a 1-D array of shape
    /// `(K,)`, such as GMM priors, gives `rows = K, columns = 1`.
    public static func readFloat32(path: String) throws -> (rows: Int, columns: Int, values: [Float]) {
        let matrix = try DescriptorMatrix.npy(MappedFile(path: path), allowVector: true)
        return (matrix.rows, matrix.dimension, matrix.toArray())
    }
}
