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
            throw ClusteringError(.invalidArgument, "a PCA of \(count) rows of \(d) values keeps 1…\(min(d, count - 1)) "
                                  + "components (asked for \(kept))")
        }
        guard values.allSatisfy(\.isFinite) else { throw ClusteringError(.nonFinite, "a PCA's rows must be finite") }
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
                throw ClusteringError(.invalidArgument, "the \(count) rows span fewer than \(kept) dimensions (component \(r) has variance 0)")
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
}
