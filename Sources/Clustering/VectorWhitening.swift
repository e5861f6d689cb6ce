import Descriptors
import Foundation

extension PrincipalComponents {
    /// The `kept` leading components of `count` rows (`values`, row-major, `dimension` each)
    /// through their n×n Gram matrix instead of the D×D covariance: for few rows of many
    /// values (encoded vectors: n images, D = K·d values), where the covariance would not fit.
    ///
    /// With X the centred rows (float64), G = XXᵀ; an eigenpair (λ, u) of G gives the
    /// covariance's component ±Xᵀu/√λ with variance λ/(n − 1) (LAPACK `dsyevr` on G; signed
    /// as `init(statistics:kept:)` signs them). At most
    /// n − 1 components have a positive variance: `kept` must be 1…min(D, n − 1).
    public init(gramOf values: [Float], count: Int, dimension d: Int, kept: Int) throws {
        precondition(values.count == count * d, "values must be count × dimension")
        guard count >= 2, (1...min(d, count - 1)).contains(kept) else {
            throw DescriptorError(.invalidArgument, "a PCA of \(count) rows of \(d) values keeps 1…\(min(d, count - 1)) "
                                  + "components (asked for \(kept))")
        }
        guard values.allSatisfy(\.isFinite) else { throw DescriptorError(.nonFinite, "a PCA's rows must be finite") }
        var mean = [Double](repeating: 0, count: d)
        for i in 0..<count { for j in 0..<d { mean[j] += Double(values[i * d + j]) } }
        for j in 0..<d { mean[j] /= Double(count) }
        // Xᵀ (D×n, row-major), so that Gram = (Xᵀ)ᵀXᵀ is one dsyrk.
        var transposed = [Double](repeating: 0, count: d * count)
        for i in 0..<count { for j in 0..<d { transposed[j * count + i] = Double(values[i * d + j]) - mean[j] } }
        var gram = [Double](repeating: 0, count: count * count)
        transposed.withUnsafeBufferPointer { a in
            gram.withUnsafeMutableBufferPointer { BLAS.addGram(n: count, k: d, a: a.baseAddress!, c: $0.baseAddress!) }
        }
        let (eigenvalues, vectors) = try Self.leadingEigenpairs(of: &gram, dimension: count, count: kept)
        var components = [Float](repeating: 0, count: kept * d)
        for r in 0..<kept {
            guard eigenvalues[r] > 0 else {
                throw DescriptorError(.invalidArgument, "the \(count) rows span fewer than \(kept) dimensions (component \(r) has variance 0)")
            }
            let scale = 1 / eigenvalues[r].squareRoot()
            var component = (0..<d).map { j in
                (0..<count).reduce(0.0) { $0 + transposed[j * count + $1] * vectors[r * count + $1] } * scale
            }
            // The sign convention of `init(statistics:kept:)`: the entry of largest magnitude positive.
            let largest = component.indices.max { abs(component[$0]) < abs(component[$1]) || (abs(component[$0]) == abs(component[$1]) && $0 > $1) }!
            if component[largest] < 0 { component = component.map { -$0 } }
            for j in 0..<d { components[r * d + j] = Float(component[j]) }
        }
        try self.init(dimension: d, mean: mean.map(Float.init), components: components,
                      eigenvalues: eigenvalues.map { Float($0 / Double(count - 1)) })
    }

    /// The rows' coordinates on the components, (x − μ)·Cᵀ: `count` rows of `outputDimension`
    /// values (sgemm; float32).
    public func project(_ values: [Float], count: Int) -> [Float] {
        precondition(values.count == count * dimension, "values must be count × dimension")
        let d = dimension, kept = outputDimension
        var centred = values
        for i in 0..<count { for j in 0..<d { centred[i * d + j] -= mean[j] } }
        var out = [Float](repeating: 0, count: count * kept)
        guard count > 0 else { return out }
        centred.withUnsafeBufferPointer { a in
            components.withUnsafeBufferPointer { b in
                out.withUnsafeMutableBufferPointer { c in
                    BLAS.gemmTransposedB(m: count, n: kept, k: d, alpha: 1, a: a.baseAddress!, lda: d,
                                         b: b.baseAddress!, ldb: d, beta: 0, c: c.baseAddress!, ldc: kept)
                }
            }
        }
        return out
    }
}

/// PCA-whitening of encoded vectors (Jégou & Chum, ECCV 2012): a signed power law, the
/// projection on the leading principal components, each coordinate divided by the square
/// root of its eigenvalue, and L2 re-normalisation.
public struct VectorWhitening: Sendable, Equatable {
    /// Learnt on vectors after the power law.
    public let components: PrincipalComponents
    /// α of v ← sign(v)·|v|^α, applied first; 1 leaves the vectors as they are (e.g. when
    /// the encoder's square root already was the power law).
    public let power: Double
    /// Eigenvalues below this fraction of the largest are raised to it before dividing,
    /// so that a direction of almost no variance is not blown up.
    public static let eigenvalueFloor: Float = 1e-9

    public init(components: PrincipalComponents, power: Double) {
        precondition(power > 0, "the power is positive")
        self.components = components
        self.power = power
    }

    /// Learns the whitening to `kept` dimensions from `count` training vectors.
    public init(training values: [Float], count: Int, dimension: Int, kept: Int, power: Double) throws {
        guard power > 0, power.isFinite else { throw DescriptorError(.invalidArgument, "the power must be > 0 (got \(power))") }
        let powered = Self.applyPower(values, power)
        self.init(components: try PrincipalComponents(gramOf: powered, count: count, dimension: dimension, kept: kept), power: power)
    }

    /// `count` whitened, L2-normalised vectors of `components.outputDimension` values.
    public func apply(_ values: [Float], count: Int) -> [Float] {
        var out = components.project(Self.applyPower(values, power), count: count)
        let kept = components.outputDimension
        let largest = components.eigenvalues.first ?? 0
        let scales = components.eigenvalues.map { 1 / max($0, largest * Self.eigenvalueFloor, .leastNormalMagnitude).squareRoot() }
        for i in 0..<count {
            var norm = 0.0
            for j in 0..<kept {
                out[i * kept + j] *= scales[j]
                norm += Double(out[i * kept + j]) * Double(out[i * kept + j])
            }
            let scale = Float(1 / max(norm.squareRoot(), 1e-12))
            for j in 0..<kept { out[i * kept + j] *= scale }
        }
        return out
    }

    private static func applyPower(_ values: [Float], _ power: Double) -> [Float] {
        guard power != 1 else { return values }
        return values.map { $0 < 0 ? -Float(pow(Double(-$0), power)) : Float(pow(Double($0), power)) }
    }
}
