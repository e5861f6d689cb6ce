import Descriptors
import Foundation

/// A PCA applied to rows: y = W·(x − μ), row r of W being component r, divided by
/// √(λ_r + ε) when whitening (ε = `whiteningEpsilonRatio` · λ₁, λ₁ the largest eigenvalue).
///
/// With a `power` (the PCA-whitening of encoded vectors, Jégou & Chum, "Negative evidences
/// and co-occurrences in image retrieval", ECCV 2012), each row is first raised to the
/// power with its sign, x ← sign(x)·|x|^power, and L2-normalised (in float64, rounded once);
/// the projected row is L2-normalised again. Without one, rows are projected as they are
/// (descriptors). Usable without a cluster: `project(_:rows:)` on an array, `project(_:workspace:)`
/// on a matrix, and `train` (below) on any backend.
public struct PCAProjection: Sendable, Equatable {
    /// ε / λ₁ of whitening: it bounds the gain of a component with λ ≈ 0 to 1000/√λ₁.
    public static let whiteningEpsilonRatio = 1e-6
    /// The most bytes of projected rows one call of `project(_:workspace:)` holds (a shard's
    /// rows when training on projected descriptors): 1 GiB.
    public static let maximumProjectedBytes = 1 << 30

    public let principalComponents: PrincipalComponents
    public let whiten: Bool
    /// The power law of vector whitening; `nil` for descriptors.
    public let power: Double?
    /// W, D'×D row-major: the components, scaled when whitening.
    private let weights: [Float]

    /// - Throws: if whitening a PCA whose largest eigenvalue is 0 (data without variance),
    ///   or for a power that is not finite and > 0.
    public init(_ pca: PrincipalComponents, whiten: Bool, power: Double? = nil) throws {
        if let power, !(power.isFinite && power > 0) {
            throw ClusteringError(.invalidArgument, "the power of vector whitening must be finite and > 0 (got \(power))")
        }
        let d = pca.dimension
        var weights = pca.components
        if whiten {
            let largest = Double(pca.eigenvalues[0])
            guard largest > 0 else {
                throw ClusteringError(.invalidArgument, "cannot whiten: the data has no variance (largest eigenvalue 0)")
            }
            let epsilon = Self.whiteningEpsilonRatio * largest
            for r in 0..<pca.outputDimension {
                let scale = 1 / (Double(pca.eigenvalues[r]) + epsilon).squareRoot()
                for j in 0..<d { weights[r * d + j] = Float(Double(weights[r * d + j]) * scale) }
            }
        }
        principalComponents = pca
        self.whiten = whiten
        self.power = power
        self.weights = weights
    }

    /// D, the values of an input row.
    public var inputDimension: Int { principalComponents.dimension }
    /// D', the values of a projected row.
    public var outputDimension: Int { principalComponents.outputDimension }
    /// What is added to each eigenvalue before its square root divides the component (0 without whitening).
    public var epsilon: Double { whiten ? Self.whiteningEpsilonRatio * Double(principalComponents.eigenvalues[0]) : 0 }

    /// Projects the rows of `block` into `output` (block.rows × D'), using `scratch` for the
    /// centred rows. Values must be finite.
    public func project(_ block: FloatRows, into output: UnsafeMutablePointer<Float>, scratch: inout [Float]) {
        precondition(block.dimension == inputDimension, "rows of \(block.dimension) values, the PCA's have \(inputDimension)")
        let d = inputDimension, kept = outputDimension, n = block.rows
        guard n > 0 else { return }
        BLAS.configure()
        if scratch.count < n * d { scratch = [Float](repeating: 0, count: n * d) }
        let mean = principalComponents.mean
        scratch.withUnsafeMutableBufferPointer { centred in
            for i in 0..<n {
                let row = block.row(i), target = centred.baseAddress! + i * d
                if let power {
                    Self.powerNormalize(row, count: d, power: power, into: target)
                } else {
                    for j in 0..<d { target[j] = row[j] }
                }
                for j in 0..<d { target[j] -= mean[j] }
            }
            weights.withUnsafeBufferPointer { w in
                BLAS.gemmTransposedB(m: n, n: kept, k: d, alpha: 1, a: centred.baseAddress!, lda: d,
                                     b: w.baseAddress!, ldb: d, beta: 0, c: output, ldc: kept)
            }
        }
        if power != nil {
            for i in 0..<n { Self.normalize(output + i * kept, count: kept) }
        }
    }

    /// The rows of `matrix` projected, as an in-memory matrix that keeps their row numbers
    /// and source for error messages. Rejects NaN and infinite values, and more than
    /// `maximumProjectedBytes` of projected rows.
    public func project(_ matrix: DescriptorMatrix, workspace: KernelWorkspace) throws -> DescriptorMatrix {
        guard matrix.dimension == inputDimension else {
            throw DescriptorError(.dimensionMismatch, "rows have \(matrix.dimension) values but the PCA's input has \(inputDimension)",
                                  path: matrix.source)
        }
        let kept = outputDimension
        let (count, overflow) = matrix.rows.multipliedReportingOverflow(by: kept)
        guard !overflow, count <= Self.maximumProjectedBytes / 4 else {
            throw DescriptorError(.invalidArgument, "\(matrix.rows) rows projected to \(kept) values would take more than "
                                  + "\(Self.maximumProjectedBytes) bytes; use fewer rows per shard", path: matrix.source)
        }
        var projected = [Float](repeating: 0, count: count)
        var scratch: [Float] = []
        try projected.withUnsafeMutableBufferPointer { output in
            try RowScan.forEachBlock(matrix, workspace: workspace) { block, firstRow in
                try MomentPass.requireFinite(block, firstRow: firstRow, of: matrix)
                project(block, into: output.baseAddress! + (firstRow - matrix.firstRow) * kept, scratch: &scratch)
            }
        }
        return try DescriptorMatrix(rows: matrix.rows, dimension: kept, values: projected, firstRow: matrix.firstRow,
                                source: matrix.source)
    }

    /// `rows` rows of `values` (row-major, D values each) projected: rows × D' values.
    public func project(_ values: [Float], rows: Int) -> [Float] {
        precondition(values.count == rows * inputDimension, "values.count must be rows × D")
        var output = [Float](repeating: 0, count: rows * outputDimension), scratch: [Float] = []
        values.withUnsafeBufferPointer { input in
            output.withUnsafeMutableBufferPointer { out in
                project(FloatRows(base: input.baseAddress!, rows: rows, dimension: inputDimension, stride: inputDimension),
                        into: out.baseAddress!, scratch: &scratch)
            }
        }
        return output
    }

    /// The rows vector whitening learns from: each value raised to `power` with its sign,
    /// then each row L2-normalised, in place (the preparation `project` applies).
    public static func prepareVectors(_ values: inout [Float], dimension: Int, power: Double) {
        values.withUnsafeMutableBufferPointer { buffer in
            for row in 0..<buffer.count / dimension {
                let start = buffer.baseAddress! + row * dimension
                powerNormalize(start, count: dimension, power: power, into: start)
            }
        }
    }

    /// sign(x)·|x|^power of `count` values, L2-normalised (a zero row stays zero), in float64
    /// rounded once. `source` and `target` may be the same.
    private static func powerNormalize(_ source: UnsafePointer<Float>, count: Int, power: Double,
                                       into target: UnsafeMutablePointer<Float>) {
        func raised(_ j: Int) -> Double {
            let value = Double(source[j]), magnitude = power == 1 ? value.magnitude : pow(value.magnitude, power)
            return value < 0 ? -magnitude : magnitude
        }
        var norm = 0.0
        for j in 0..<count { norm += raised(j) * raised(j) }
        let scale = norm > 0 ? 1 / norm.squareRoot() : 0
        for j in 0..<count { target[j] = Float(raised(j) * scale) }
    }

    /// L2-normalises `count` values in place (norm in float64; a zero row stays zero).
    private static func normalize(_ row: UnsafeMutablePointer<Float>, count: Int) {
        var norm = 0.0
        for j in 0..<count { norm += Double(row[j]) * Double(row[j]) }
        guard norm > 0 else { return }
        let scale = 1 / norm.squareRoot()
        for j in 0..<count { row[j] = Float(Double(row[j]) * scale) }
    }
}

extension PrincipalComponents {
    /// The `kept` leading components of the rows `backend` reads: its own way for a
    /// `PrincipalComponentsSource`, else one covariance pass.
    public static func train(on backend: some StatisticsBackend, kept: Int) async throws -> PrincipalComponents {
        if let source = backend as? any PrincipalComponentsSource { return try await source.principalComponents(kept: kept) }
        return try await covariance(of: backend, kept: kept)
    }

    /// The `kept` leading components of the rows `backend` reads, by one covariance pass.
    public static func covariance(of backend: some StatisticsBackend, kept: Int) async throws -> PrincipalComponents {
        try PrincipalComponents(statistics: try await backend.run(CovariancePass(dimension: backend.dimension)), kept: kept)
    }
}

/// A backend that chooses how its rows' principal components are computed (e.g. through
/// their Gram matrix when there are fewer rows than values per row).
public protocol PrincipalComponentsSource: StatisticsBackend {
    func principalComponents(kept: Int) async throws -> PrincipalComponents
}
