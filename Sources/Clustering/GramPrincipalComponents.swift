import Descriptors
import Foundation

extension PrincipalComponents {
    /// The `kept` leading components of `count` rows (`values`, row-major, `dimension` each)
    /// through their n×n Gram matrix instead of the D×D covariance: for few rows of many
    /// values (encoded vectors: n images, D = K·d values), where the covariance would not fit.
    /// See `init(gramOfRows:dimension:kept:blockRows:read:)`.
    public init(gramOf values: [Float], count: Int, dimension d: Int, kept: Int) throws {
        precondition(values.count == count * d, "values must be count × dimension")
        try self.init(gramOfRows: count, dimension: d, kept: kept) { range, target in
            for (index, value) in values[range.lowerBound * d ..< range.upperBound * d].enumerated() { target[index] = Double(value) }
        }
    }

    /// Bytes of float64 rows one block holds in `init(gramOfRows:…)` (it holds two): 64 MiB.
    public static let gramBlockBytes = 64 << 20

    /// The `kept` leading components of `count` rows of `dimension` values, read block by
    /// block (`read(rows, into)` writes rows.count × D float64 values, row-major), through
    /// their n×n Gram matrix: for few rows of many values, where the D×D covariance would
    /// not fit. Memory: the n×n Gram matrix, two blocks of `blockRows` rows, and the
    /// components (D'×D float64).
    ///
    /// With X the centred rows (float64), G = XXᵀ, computed block pair by block pair (its
    /// upper triangle, blocks in row order: the same bits for the same rows and blocks); an
    /// eigenpair (λ, u) of G (LAPACK `dsyevr`) gives the covariance's component ±Xᵀu/√λ with
    /// variance λ/(n − 1), signed as `init(statistics:kept:)` signs them. The rows are read
    /// three times (mean, Gram, components), those of later blocks again for each earlier
    /// block. At most n − 1 components have a positive variance: `kept` must be 1…min(D, n − 1).
    public init(gramOfRows count: Int, dimension d: Int, kept: Int, blockRows: Int? = nil,
                read: (Range<Int>, UnsafeMutableBufferPointer<Double>) throws -> Void) throws {
        guard d >= 1, count >= 2, (1...min(d, count - 1)).contains(kept) else {
            throw ClusteringError(.invalidArgument, "a PCA of \(count) rows of \(d) values keeps 1…\(max(1, min(d, count - 1))) "
                                  + "components (asked for \(kept))")
        }
        let block = max(1, min(count, blockRows ?? Self.gramBlockBytes / 8 / d))
        let blocks = (0..<(count + block - 1) / block).map { $0 * block ..< min(count, ($0 + 1) * block) }
        var first = [Double](repeating: 0, count: block * d), second = first
        /// Reads `rows` into `buffer`, checked finite, centred by `mean` if given.
        func load(_ rows: Range<Int>, into buffer: inout [Double], centredBy mean: [Double]?) throws {
            try buffer.withUnsafeMutableBufferPointer { target in
                let values = UnsafeMutableBufferPointer(rebasing: target[0 ..< rows.count * d])
                try read(rows, values)
                if let bad = values.firstIndex(where: { !$0.isFinite }) {
                    throw ClusteringError(.nonFinite, "a PCA's rows must be finite (row \(rows.lowerBound + bad / d), value \(bad % d))")
                }
                guard let mean else { return }
                for i in 0..<rows.count { for j in 0..<d { values[i * d + j] -= mean[j] } }
            }
        }
        BLAS.configure()
        var mean = [Double](repeating: 0, count: d)
        for rows in blocks {
            try load(rows, into: &first, centredBy: nil)
            for i in 0..<rows.count { for j in 0..<d { mean[j] += first[i * d + j] } }
        }
        for j in 0..<d { mean[j] /= Double(count) }
        // The upper triangle of G, block (a, b ≥ a) = X_a·X_bᵀ.
        var gram = [Double](repeating: 0, count: count * count)
        for (a, rows) in blocks.enumerated() {
            try load(rows, into: &first, centredBy: mean)
            for columns in blocks[a...] {
                if columns != rows { try load(columns, into: &second, centredBy: mean) }
                let other = columns == rows ? first : second
                first.withUnsafeBufferPointer { x in
                    other.withUnsafeBufferPointer { y in
                        gram.withUnsafeMutableBufferPointer { g in
                            BLAS.gemm(m: rows.count, n: columns.count, k: d, a: x.baseAddress!, lda: d, b: y.baseAddress!, ldb: d,
                                      transposedB: true, beta: 0, c: g.baseAddress! + rows.lowerBound * count + columns.lowerBound,
                                      ldc: count)
                        }
                    }
                }
            }
        }
        let (eigenvalues, vectors) = try Self.leadingEigenpairs(of: &gram, dimension: count, count: kept)
        for r in 0..<kept where !(eigenvalues[r] > 0) {
            throw ClusteringError(.invalidArgument, "the \(count) rows span fewer than \(kept) dimensions (component \(r) has variance 0)")
        }
        // Uᵀ·X (D'×D), block by block: row r of U is eigenvector r of G.
        var products = [Double](repeating: 0, count: kept * d)
        for rows in blocks {
            try load(rows, into: &first, centredBy: mean)
            vectors.withUnsafeBufferPointer { u in
                first.withUnsafeBufferPointer { x in
                    products.withUnsafeMutableBufferPointer { c in
                        BLAS.gemm(m: kept, n: d, k: rows.count, a: u.baseAddress! + rows.lowerBound, lda: count, b: x.baseAddress!,
                                  ldb: d, transposedB: false, beta: 1, c: c.baseAddress!, ldc: d)
                    }
                }
            }
        }
        var components = [Float](repeating: 0, count: kept * d)
        for r in 0..<kept {
            let scale = 1 / eigenvalues[r].squareRoot()
            var component = products[r * d ..< (r + 1) * d].map { $0 * scale }
            // The sign convention of `init(statistics:kept:)`: the entry of largest magnitude positive.
            let largest = component.indices.max { abs(component[$0]) < abs(component[$1]) || (abs(component[$0]) == abs(component[$1]) && $0 > $1) }!
            if component[largest] < 0 { component = component.map { -$0 } }
            for j in 0..<d { components[r * d + j] = Float(component[j]) }
        }
        try self.init(dimension: d, mean: mean.map(Float.init), components: components,
                      eigenvalues: eigenvalues.map { Float($0 / Double(count - 1)) })
    }
}
