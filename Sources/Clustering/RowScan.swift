import Descriptors

/// Reads a shard block by block as float32, the way every kernel wants it: row headers
/// checked, uint8 converted, and on corpora larger than memory the pages of a finished
/// block handed back to the kernel so resident memory stays bounded.
public enum RowScan {
    /// Rows per block handed to the kernels (they sub-block further for BLAS).
    public static let blockRows = 8192
    /// Corpora whose file exceeds this many bytes have their pages released after use.
    public static let residentBudget = 1 << 30

    /// Calls `body(block, firstRow)` for consecutive blocks of `rows`, where `firstRow` is
    /// the absolute row index (for error messages) of the block's first row.
    public static func forEachBlock(_ rows: DescriptorMatrix, workspace: KernelWorkspace,
                                    _ body: (FloatRows, Int) throws -> Void) throws {
        let release = (rows.file?.size ?? 0) > residentBudget
        rows.prefetch(0..<rows.rows)
        var start = 0
        while start < rows.rows {
            let range = start ..< min(rows.rows, start + blockRows)
            try rows.checkRows(range)
            try rows.withFloatRows(range, scratch: &workspace.conversion) { block in
                try body(block, rows.firstRow + range.lowerBound)
            }
            if release { rows.release(range) }
            start = range.upperBound
        }
    }
}
