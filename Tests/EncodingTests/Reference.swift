import Clustering
import Descriptors
import Encoding

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

// Slow, obviously correct float64 encoders written from Protocols/encodings.md, independently of
// the sources under test: exhaustive distances, direct log-sum-exp, no screening.

enum Reference {
    /// Priors below this make a component's posterior 0 and its Fisher blocks 0 (compared in float64).
    static let minimumPrior = 1e-6
    /// Fisher terms with a smaller posterior are skipped.
    static let minimumPosterior = 1e-6
    /// Normalisations divide by max(‖v‖, minimumNorm).
    static let minimumNorm = 1e-12

    /// Index of the nearest centre by squared L2 in float64; ties go to the lowest index.
    static func nearestCentre(_ x: ArraySlice<Float>, centres: [Float], k: Int) -> Int {
        let d = x.count
        var best = 0, bestDistance = Double.infinity
        for c in 0..<k {
            var distance = 0.0
            for (j, value) in x.enumerated() {
                let r = Double(value) - Double(centres[c * d + j])
                distance += r * r
            }
            if distance < bestDistance { best = c; bestDistance = distance }
        }
        return best
    }

    static func assignments(_ data: [Float], dimension d: Int, centres: [Float], k: Int) -> [Int] {
        (0..<data.count / d).map { i in nearestCentre(data[i * d ..< (i + 1) * d], centres: centres, k: k) }
    }

    /// VLAD by the definition: mass → signed √ → intra L2 → global L2.
    static func vlad(_ data: [Float], dimension d: Int, centres: [Float], k: Int, options: VLADOptions) -> [Double] {
        let n = data.count / d
        let assigned = assignments(data, dimension: d, centres: centres, k: k)
        var phi = [Double](repeating: 0, count: k * d)
        var mass = [Double](repeating: 0, count: k)
        for i in 0..<n {
            let c = assigned[i]
            mass[c] += 1
            for j in 0..<d { phi[c * d + j] += Double(data[i * d + j]) - Double(centres[c * d + j]) }
        }
        for c in 0..<k {
            let range = c * d ..< (c + 1) * d
            if options.contains(.normalizeMass), mass[c] > 0 {
                for j in range { phi[j] /= mass[c] }
            }
            if options.contains(.squareRoot) { signedSquareRoot(&phi, range) }
            if options.contains(.normalizeComponents) { normalize(&phi, range) }
        }
        if !options.contains(.unnormalized) { normalize(&phi, 0 ..< k * d) }
        return phi
    }

    /// log π_k − (D/2) log 2π − ½ Σ log σ² − ½ Σ (x − μ)²/σ², or −∞ for π_k < 1e−6.
    static func logDensity(_ x: ArraySlice<Float>, component c: Int, model: GMM) -> Double {
        let d = model.dimension
        let prior = Double(model.priors[c])
        guard prior >= minimumPrior else { return -.infinity }
        var value = log(prior) - 0.5 * Double(d) * log(2 * Double.pi)
        for (j, xj) in x.enumerated() {
            let variance = Double(model.variances[c * d + j])
            let r = Double(xj) - Double(model.means[c * d + j])
            value -= 0.5 * (log(variance) + r * r / variance)
        }
        return value
    }

    /// Posteriors q (N×K) by direct log-sum-exp over all components.
    static func posteriors(_ data: [Float], model: GMM) -> [Double] {
        let d = model.dimension, k = model.k, n = data.count / d
        var q = [Double](repeating: 0, count: n * k)
        for i in 0..<n {
            let x = data[i * d ..< (i + 1) * d]
            let l = (0..<k).map { logDensity(x, component: $0, model: model) }
            let top = l.max()!
            let total = l.reduce(0) { $0 + exp($1 - top) }
            for c in 0..<k { q[i * k + c] = exp(l[c] - top) / total }
        }
        return q
    }

    /// The Fisher vector by the definition, and the number of (row, component) terms summed.
    static func fisher(_ data: [Float], model: GMM, options: FisherOptions) -> (vector: [Double], terms: Int) {
        let d = model.dimension, k = model.k, n = data.count / d
        var q = posteriors(data, model: model)
        if options.contains(.fast) {
            for i in 0..<n {
                var best = 0
                for c in 1..<max(k, 1) where q[i * k + c] > q[i * k + best] { best = c }
                for c in 0..<k { q[i * k + c] = c == best ? 1 : 0 }
            }
        }
        var phi = [Double](repeating: 0, count: 2 * k * d)
        var terms = 0
        for c in 0..<k where Double(model.priors[c]) >= minimumPrior {
            let prior = Double(model.priors[c])
            for i in 0..<n where q[i * k + c] >= minimumPosterior {
                terms += 1
                for j in 0..<d {
                    let z = (Double(data[i * d + j]) - Double(model.means[c * d + j]))
                        / Double(model.variances[c * d + j]).squareRoot()
                    phi[c * d + j] += q[i * k + c] * z
                    phi[k * d + c * d + j] += q[i * k + c] * (z * z - 1)
                }
            }
            for j in 0..<d {
                phi[c * d + j] /= Double(n) * prior.squareRoot()
                phi[k * d + c * d + j] /= Double(n) * (2 * prior).squareRoot()
            }
        }
        if options.contains(.squareRoot) { signedSquareRoot(&phi, 0 ..< 2 * k * d) }
        if options.contains(.normalized) { normalize(&phi, 0 ..< 2 * k * d) }
        return (phi, terms)
    }

    static func signedSquareRoot(_ v: inout [Double], _ range: Range<Int>) {
        for j in range { v[j] = v[j] < 0 ? -(-v[j]).squareRoot() : v[j].squareRoot() }
    }

    static func normalize(_ v: inout [Double], _ range: Range<Int>) {
        let norm = range.reduce(0.0) { $0 + v[$1] * v[$1] }.squareRoot()
        for j in range { v[j] /= max(norm, minimumNorm) }
    }
}

// MARK: - Test data and comparison

/// A diagonal GMM's parameters as plain arrays (the model under test is built from them).
struct GMM: Sendable {
    var k: Int
    var dimension: Int
    var means: [Float]
    var variances: [Float]
    var priors: [Float]
}

/// The kinds of random data the comparisons run on.
enum DataKind: String, Sendable, CustomStringConvertible {
    /// Centres N(0, 3²), spread σ² ∈ [0.5, 2]: well conditioned.
    case gaussian
    /// SIFT-like: integers in 0…255 around centres near 180 with σ ≈ 10…20, so ‖x‖ is large
    /// against the gaps between distances and a float32 expansion ‖x‖² − 2x·c + ‖c‖² cancels.
    case siftLike
    var description: String { rawValue }
}

/// One seeded random problem: N rows drawn from a K-component diagonal GMM in D dimensions.
struct Problem: CustomStringConvertible {
    let seed: UInt64
    let kind: DataKind
    let n: Int
    let model: GMM
    let data: [Float]

    var description: String { "\(kind) seed \(seed) N=\(n) K=\(model.k) D=\(model.dimension)" }
    var descriptors: DescriptorMatrix { get throws { try DescriptorMatrix(rows: n, dimension: model.dimension, values: data) } }

    init(seed: UInt64, kind: DataKind, n: Int, k: Int, d: Int) {
        var random = SeededGenerator(seed: seed)
        var means = [Float](), variances = [Float](), priors = [Float]()
        for _ in 0..<k {
            priors.append(Float(0.2 + random.nextUnit()))
            for _ in 0..<d {
                switch kind {
                case .gaussian:
                    means.append(Float(3 * random.nextGaussian()))
                    variances.append(Float(0.5 + 1.5 * random.nextUnit()))
                case .siftLike:
                    means.append(Float(170 + 20 * random.nextUnit()))
                    variances.append(Float(100 + 300 * random.nextUnit()))
                }
            }
        }
        let total = priors.reduce(0, +)
        priors = priors.map { $0 / total }
        var data = [Float]()
        for _ in 0..<n {
            var u = random.nextUnit(), c = 0
            while c < k - 1 && u >= Double(priors[c]) { u -= Double(priors[c]); c += 1 }
            for j in 0..<d {
                let value = Double(means[c * d + j]) + Double(variances[c * d + j]).squareRoot() * random.nextGaussian()
                data.append(kind == .siftLike ? Float(min(255, max(0, value.rounded()))) : Float(value))
            }
        }
        self.seed = seed
        self.kind = kind
        self.n = n
        self.model = GMM(k: k, dimension: d, means: means, variances: variances, priors: priors)
        self.data = data
    }
}

extension GMM {
    var codebook: Codebook { get throws { try Codebook(k: k, dimension: dimension, centres: means) } }
    var model: GaussianMixtureModel {
        get throws { try GaussianMixtureModel(k: k, dimension: dimension, means: means, variances: variances, priors: priors) }
    }
}

/// max |a − b| / max |b|, or max |a − b| if b is all zeros.
func relativeError(_ a: [Float], _ b: [Double]) -> Double {
    precondition(a.count == b.count)
    let scale = b.reduce(0) { max($0, abs($1)) }
    let difference = zip(a, b).reduce(0) { max($0, abs(Double($1.0) - $1.1)) }
    return scale > 0 ? difference / scale : difference
}

func relativeError(_ a: [Float], _ b: [Float]) -> Double { relativeError(a, b.map(Double.init)) }

/// Protocols/encodings.md: 1e−5 relative, 3e−4 once a signed square root has amplified rounding near 0.
func tolerance(squareRoot: Bool) -> Double { squareRoot ? 3e-4 : 1e-5 }

extension VLADOptions {
    /// All 16 subsets of the four flags.
    static let allCombinations = (0..<16).map { VLADOptions(rawValue: $0) }
    var name: String {
        let names: [(VLADOptions, String)] = [(.normalizeComponents, "intra"), (.squareRoot, "sqrt"),
                                              (.unnormalized, "unnormalized"), (.normalizeMass, "mass")]
        let parts = names.filter { contains($0.0) }.map(\.1)
        return parts.isEmpty ? "[]" : parts.joined(separator: "+")
    }
}

extension FisherOptions {
    /// All 8 subsets of {squareRoot, normalized, fast}.
    static let allCombinations = (0..<8).map { FisherOptions(rawValue: $0) }
    var name: String {
        let names: [(FisherOptions, String)] = [(.squareRoot, "sqrt"), (.normalized, "normalized"), (.fast, "fast")]
        let parts = names.filter { contains($0.0) }.map(\.1)
        return parts.isEmpty ? "[]" : parts.joined(separator: "+")
    }
}
