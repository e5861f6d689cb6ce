import CLAPACK
import Descriptors

/// The count, the sum Σx and the sum of outer products Σxxᵀ of a corpus's rows, in float64:
/// the sufficient statistics of its mean and covariance. `products` is D×D, row-major; only
/// its upper triangle (j ≥ i) is accumulated.
public struct CovarianceStatistics: SufficientStatistics, Equatable {
    public var rows: Int
    public var sums: [Double]
    public var products: [Double]

    public init(dimension: Int) {
        rows = 0
        sums = [Double](repeating: 0, count: dimension)
        products = [Double](repeating: 0, count: dimension * dimension)
    }

    public var dimension: Int { sums.count }

    public mutating func merge(_ other: CovarianceStatistics) {
        rows += other.rows
        for j in sums.indices { sums[j] += other.sums[j] }
        for j in products.indices { products[j] += other.products[j] }
    }
}

/// The covariance pass: `CovarianceStatistics` of each shard, Σxxᵀ as one float64 dsyrk per
/// block of rows (OpenBLAS single-threaded, so a shard's sums are the same on every thread).
/// Rejects NaN and infinite values.
public struct CovariancePass: ShardComputation {
    public let dimension: Int

    public init(dimension: Int) { self.dimension = dimension }

    public func statistics(of rows: DescriptorMatrix, shard index: Int, workspace: KernelWorkspace) throws -> CovarianceStatistics {
        BLAS.configure()
        let d = dimension
        var statistics = CovarianceStatistics(dimension: d)
        statistics.rows = rows.rows
        var wide: [Double] = []
        try RowScan.forEachBlock(rows, workspace: workspace) { block, firstRow in
            try MomentPass.requireFinite(block, firstRow: firstRow, of: rows)
            wide.removeAll(keepingCapacity: true)
            for i in 0..<block.rows {
                let row = block.row(i)
                for j in 0..<d { wide.append(Double(row[j])) }
            }
            statistics.sums.withUnsafeMutableBufferPointer { sums in
                for i in 0..<block.rows {
                    for j in 0..<d { sums[j] += wide[i * d + j] }
                }
            }
            wide.withUnsafeBufferPointer { a in
                statistics.products.withUnsafeMutableBufferPointer { c in
                    BLAS.addGram(n: d, k: block.rows, a: a.baseAddress!, c: c.baseAddress!)
                }
            }
        }
        return statistics
    }
}

/// Principal components of a corpus: its mean, the unit eigenvectors of its covariance with
/// the largest eigenvalues (largest first) and those eigenvalues.
///
/// The covariance is the sample covariance, (Σxxᵀ − n·μμᵀ) / (n − 1), in float64; its
/// eigen-decomposition is LAPACK's `dsyevr`. Each component's sign makes its entry of largest
/// magnitude (the first such) positive. Eigenvalues below 0 (rounding) are reported as 0.
public struct PrincipalComponents: Sendable, Equatable {
    /// Input values per row, D.
    public let dimension: Int
    /// μ, D values.
    public let mean: [Float]
    /// D'×D, row-major: component r is row r.
    public let components: [Float]
    /// D' variances along the components, non-increasing.
    public let eigenvalues: [Float]

    /// Components kept, D'.
    public var outputDimension: Int { eigenvalues.count }

    /// A model from its arrays (e.g. imported), checked: shapes, finite values, unit
    /// components and non-negative, non-increasing eigenvalues, in O(D'·D). Whether the
    /// components are orthogonal, which costs D'²·D, is checked apart (`checkOrthogonal()`),
    /// where a model enters from outside (IMPORT): a model is rebuilt from its arrays at every
    /// use (each worker's pass, each search with a PCA), and those arrays were checked once.
    public init(dimension: Int, mean: [Float], components: [Float], eigenvalues: [Float]) throws {
        let kept = eigenvalues.count
        guard dimension >= 1, kept >= 1, kept <= dimension else {
            throw ClusteringError(.invalidArgument, "a PCA needs 1 ≤ D' ≤ D (D=\(dimension), D'=\(kept))")
        }
        guard mean.count == dimension, components.count == kept * dimension else {
            throw ClusteringError(.dimensionMismatch, "a PCA of D=\(dimension), D'=\(kept) needs \(dimension) mean values and \(kept * dimension) "
                                  + "component values (got \(mean.count) and \(components.count))")
        }
        guard mean.allSatisfy(\.isFinite), components.allSatisfy(\.isFinite), eigenvalues.allSatisfy(\.isFinite) else {
            throw ClusteringError(.nonFinite, "a PCA's values must be finite")
        }
        guard eigenvalues.allSatisfy({ $0 >= 0 }), zip(eigenvalues, eigenvalues.dropFirst()).allSatisfy({ $0 >= $1 }) else {
            throw ClusteringError(.invalidArgument, "a PCA's eigenvalues must be ≥ 0 and non-increasing")
        }
        for r in 0..<kept {
            let norm = components[r * dimension ..< (r + 1) * dimension].reduce(0.0) { $0 + Double($1) * Double($1) }
            guard abs(norm - 1) <= 1e-3 else { throw ClusteringError(.invalidArgument, "PCA component \(r) has norm² \(norm), not 1") }
        }
        self.dimension = dimension
        self.mean = mean
        self.components = components
        self.eigenvalues = eigenvalues
    }

    /// The largest |cᵢ·cⱼ| (i ≠ j) of orthonormal components is their float32 rounding (about
    /// 10⁻⁷ for a computed PCA); components further from orthogonal are refused.
    public static let orthogonalityTolerance = 1e-3

    /// Throws unless every two distinct components have a dot product within
    /// `orthogonalityTolerance` of 0 (computed in float32, one sgemm of D'²·D).
    public func checkOrthogonal() throws {
        let kept = outputDimension
        guard kept > 1 else { return }
        var products = [Float](repeating: 0, count: kept * kept)
        components.withUnsafeBufferPointer { c in
            BLAS.gemmTransposedB(m: kept, n: kept, k: dimension, alpha: 1, a: c.baseAddress!, lda: dimension,
                                 b: c.baseAddress!, ldb: dimension, beta: 0, c: &products, ldc: kept)
        }
        for i in 0..<kept {
            for j in (i + 1)..<kept where !(Double(abs(products[i * kept + j])) <= Self.orthogonalityTolerance) {
                throw ClusteringError(.invalidArgument, "PCA components \(i) and \(j) have dot product \(products[i * kept + j]); "
                                      + "components must be orthogonal (|dot| ≤ \(Self.orthogonalityTolerance))")
            }
        }
    }

    /// The `kept` leading components of the corpus whose statistics are `statistics`
    /// (at least 2 rows, and at most rows − 1 components).
    public init(statistics: CovarianceStatistics, kept: Int) throws {
        let d = statistics.dimension, n = statistics.rows
        guard (1...d).contains(kept) else { throw ClusteringError(.invalidArgument, "the components kept must be 1…\(d) (got \(kept))") }
        guard n >= 2 else { throw ClusteringError(.invalidArgument, "a PCA needs at least 2 rows (got \(n))") }
        // n rows span at most n − 1 dimensions around their mean; further components are noise.
        guard kept <= n - 1 else {
            throw ClusteringError(.invalidArgument, "a PCA of \(n) rows keeps 1…\(min(d, n - 1)) components (got \(kept))")
        }
        let mean = statistics.sums.map { $0 / Double(n) }
        var covariance = [Double](repeating: 0, count: d * d)
        for i in 0..<d {
            for j in i..<d {
                covariance[i * d + j] = (statistics.products[i * d + j] - Double(n) * mean[i] * mean[j]) / Double(n - 1)
            }
        }
        let (values, vectors) = try Self.leadingEigenpairs(of: &covariance, dimension: d, count: kept)
        try self.init(dimension: d, mean: mean.map(Float.init), components: vectors.map(Float.init),
                      eigenvalues: values.map { Float(max(0, $0)) })
    }

    /// The `count` largest eigenvalues of the symmetric d×d `matrix` (upper triangle used;
    /// destroyed), largest first, and their unit eigenvectors as rows (count×d), signed so
    /// that each one's entry of largest magnitude is positive.
    static func leadingEigenpairs(of matrix: inout [Double], dimension d: Int, count: Int) throws -> ([Double], [Double]) {
        // lapack_int is a macro Swift cannot see: int32_t in Debian's LAPACKE (not the ILP64 build).
        var found: Int32 = 0
        var values = [Double](repeating: 0, count: d)
        var vectors = [Double](repeating: 0, count: d * count)
        var support = [Int32](repeating: 0, count: 2 * d)
        let info = LAPACKE_dsyevr(LAPACK_ROW_MAJOR, CChar(UInt8(ascii: "V")), CChar(UInt8(ascii: "I")), CChar(UInt8(ascii: "U")),
                                  Int32(d), &matrix, Int32(d), 0, 0, Int32(d - count + 1), Int32(d),
                                  0, &found, &values, &vectors, Int32(count), &support)
        guard info == 0, found == count else {
            throw ClusteringError(.numericalFailure, "the eigen-decomposition (LAPACK dsyevr) failed: info \(info), \(found) of \(count) eigenvalues found")
        }
        // dsyevr gives them in ascending order, eigenvector c in column c.
        var leading: [Double] = [], rows: [Double] = []
        for column in (0..<count).reversed() {
            leading.append(values[column])
            var vector = (0..<d).map { vectors[$0 * count + column] }
            let largest = vector.indices.max { abs(vector[$0]) < abs(vector[$1]) || (abs(vector[$0]) == abs(vector[$1]) && $0 > $1) }!
            if vector[largest] < 0 { vector = vector.map { -$0 } }
            rows += vector
        }
        return (leading, rows)
    }
}
