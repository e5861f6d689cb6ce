import Foundation
import Clustering
import Descriptors

/// Seeded SIFT-like data: C blobs with non-negative values, large norms.
func blobs(rows: Int, dimension: Int, blobs: Int, seed: UInt64, spread: Double = 6, scale: Double = 100) throws -> DescriptorMatrix {
    var generator = SeededGenerator(seed: seed)
    let centres = (0..<blobs * dimension).map { _ in generator.nextUnit() * scale }
    var values = [Float]()
    values.reserveCapacity(rows * dimension)
    for _ in 0..<rows {
        let b = Int(generator.next() % UInt64(blobs))
        for j in 0..<dimension {
            values.append(Float(max(0, centres[b * dimension + j] + spread * generator.nextGaussian())))
        }
    }
    return try DescriptorMatrix(rows: rows, dimension: dimension, values: values)
}

/// Exhaustive float64 nearest centre (ties to the lowest index).
func referenceNearest(_ x: [Float], _ codebook: Codebook) -> (index: Int, distance: Double) {
    var best = (index: 0, distance: Double.infinity)
    for c in 0..<codebook.k {
        var distance = 0.0
        for (j, value) in codebook.centre(c).enumerated() {
            let r = Double(x[j]) - Double(value)
            distance += r * r
        }
        if distance < best.distance { best = (c, distance) }
    }
    return best
}

/// Direct float64 log-densities ℓ_k(x) of a diagonal GMM.
func referenceLogDensities(_ x: [Float], _ model: GaussianMixtureModel) -> [Double] {
    let d = model.dimension
    return (0..<model.k).map { c in
        var value = log(Double(model.priors[c])) - 0.5 * Double(d) * log(2 * Double.pi)
        for j in 0..<d {
            let variance = Double(model.variances[c * d + j])
            let r = Double(x[j]) - Double(model.means[c * d + j])
            value -= 0.5 * (log(variance) + r * r / variance)
        }
        return value
    }
}

/// Posteriors and log-likelihood of one row from its log-densities `l`, by the definition in
/// float64: the components with ℓ_k ≥ max ℓ − cutoff, softmax over them, the others 0
/// (cutoff ∞: the full softmax).
func referencePosteriors(_ l: [Double], cutoff: Double) -> (posteriors: [Double], logLikelihood: Double) {
    let top = l.max()!
    let weights = l.map { $0 >= top - cutoff ? exp($0 - top) : 0 }
    let total = weights.reduce(0, +)
    return (weights.map { $0 / total }, top + log(total))
}
