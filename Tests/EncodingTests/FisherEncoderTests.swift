import Clustering
import Descriptors
import Encoding
import Testing

#if canImport(Glibc)
import Glibc
#endif

private func fisher(_ data: [Float], _ gmm: GMM, options: FisherOptions) throws -> [Float] {
    try FisherEncoder(model: gmm.model, options: options)
        .encode(DescriptorMatrix(rows: data.count / gmm.dimension, dimension: gmm.dimension, values: data))
}

@Suite("FisherEncoder")
struct FisherEncoderTests {
    // MARK: Hand-computed cases (K = 1, so every posterior is 1)

    /// D = 1, μ = 1, σ² = 4, π = 1, x = 3, −1, 5: z = 1, −1, 2, N = 3,
    /// u = (1 − 1 + 2)/3 = 2/3, v = (0 + 0 + 3)/(3√2) = 1/√2.
    @Test func oneDimension() throws {
        let gmm = GMM(k: 1, dimension: 1, means: [1], variances: [4], priors: [1])
        let u = 2.0 / 3, v = 1 / 2.0.squareRoot()
        let su = u.squareRoot(), sv = v.squareRoot()
        let cases: [(FisherOptions, [Double])] = [
            ([], [u, v]),
            (.fast, [u, v]),
            (.squareRoot, [su, sv]),
            (.normalized, [u / (u * u + v * v).squareRoot(), v / (u * u + v * v).squareRoot()]),
            (.improved, [su / (u + v).squareRoot(), sv / (u + v).squareRoot()]),
            ([.improved, .fast], [su / (u + v).squareRoot(), sv / (u + v).squareRoot()]),
        ]
        for (options, expected) in cases {
            let encoded = try fisher([3, -1, 5], gmm, options: options)
            #expect(relativeError(encoded, expected) <= 1e-6, "\(options.name): got \(encoded), expected \(expected)")
        }
    }

    /// D = 2, μ = (0, 10), σ² = (1, 9), π = 0.25 (priors are used as given), rows (1, 13),
    /// (−1, 4), (2, 10): z = (1, 1), (−1, −2), (2, 0); Σz = (2, −1), Σ(z² − 1) = (3, 2);
    /// u = Σz/(3·√0.25) = (4/3, −2/3), v = Σ(z² − 1)/(3·√0.5) = (√2, 2√2/3).
    @Test func twoDimensionsWithPrior() throws {
        let gmm = GMM(k: 1, dimension: 2, means: [0, 10], variances: [1, 9], priors: [0.25])
        let x: [Float] = [1, 13, -1, 4, 2, 10]
        let r2 = 2.0.squareRoot()
        let plain: [Double] = [4.0 / 3, -2.0 / 3, r2, 2 * r2 / 3]
        let norm = plain.reduce(0) { $0 + $1 * $1 }.squareRoot()
        let rooted = plain.map { $0 < 0 ? -(-$0).squareRoot() : $0.squareRoot() }
        let rootedNorm = plain.reduce(0) { $0 + abs($1) }.squareRoot()
        let cases: [(FisherOptions, [Double])] = [
            ([], plain),
            (.squareRoot, rooted),
            (.normalized, plain.map { $0 / norm }),
            (.improved, rooted.map { $0 / rootedNorm }),
        ]
        for (options, expected) in cases {
            let encoded = try fisher(x, gmm, options: options)
            #expect(relativeError(encoded, expected) <= 1e-6, "\(options.name): got \(encoded), expected \(expected)")
        }
        let (counted, terms) = try encodeCounting(x, gmm, options: [])
        #expect(terms == 3 && relativeError(counted, plain) <= 1e-6, "terms \(terms), vector \(counted)")
    }

    /// K = 2, D = 1, μ = (0, 4), σ² = (1, 1), π = (½, ½): ℓ₁ − ℓ₀ = 4x − 8, so x = 2 has
    /// q = (½, ½) and x = 4 has q = (s, 1 − s) with s = 1/(1 + e⁸). With z₀ = x, z₁ = x − 4 and N = 2:
    /// u₀ = (½·2 + s·4)/(2√½), u₁ = (½·(−2))/(2√½), v₀ = (½·3 + s·15)/2, v₁ = (½·3 − (1 − s))/2.
    /// (Catches a log-density that counts −½ Σ μ²/σ² twice: x = μ₁ must favour component 1.)
    @Test func twoComponentsClosedFormPosteriors() throws {
        let gmm = GMM(k: 2, dimension: 1, means: [0, 4], variances: [1, 1], priors: [0.5, 0.5])
        let s = 1 / (1 + exp(8.0)), h = 0.5.squareRoot()
        let expected: [Double] = [(1 + 4 * s) / (2 * h), -1 / (2 * h), (1.5 + 15 * s) / 2, (1.5 - (1 - s)) / 2]
        let (encoded, terms) = try encodeCounting([2, 4], gmm, options: [])
        #expect(relativeError(encoded, expected) <= 1e-6, "got \(encoded), expected \(expected)")
        #expect(terms == 4, "terms \(terms)")
        // .fast: x = 2 ties and goes to component 0 (the first maximum), x = 4 to component 1.
        let fast = try fisher([2, 4], gmm, options: .fast)
        let expectedFast: [Double] = [2 / (2 * h), 0, 3.0 / 2, -1.0 / 2]
        #expect(relativeError(fast, expectedFast) <= 1e-6, "fast: got \(fast), expected \(expectedFast)")
    }

    // MARK: Against the float64 reference

    @Test("every option combination matches the float64 reference", arguments: ProblemShape.all)
    func matchesReference(_ shape: ProblemShape) throws {
        for seed in ProblemShape.seeds {
            let problem = Problem(seed: seed, kind: shape.kind, n: shape.n, k: shape.k, d: shape.d)
            let model = try problem.model.model
            for options in FisherOptions.allCombinations {
                let encoder = try FisherEncoder(model: model, options: options)
                var encoded = [Float](repeating: 0, count: encoder.encodedDimension)
                let terms = try encoded.withUnsafeMutableBufferPointer {
                    try encoder.encodeCountingTerms(problem.descriptors, workspace: KernelWorkspace(), into: $0)
                }
                let expected = Reference.fisher(problem.data, model: problem.model, options: options)
                let error = relativeError(encoded, expected.vector)
                #expect(error <= tolerance(squareRoot: options.contains(.squareRoot)),
                        "\(problem), options \(options.name): relative error \(error)")
                #expect(terms == expected.terms, "\(problem), options \(options.name): \(terms) terms, reference \(expected.terms)")
            }
        }
    }

    // MARK: Against VLFeat

    @Test("matches vl_fisher_encode for every flag combination", arguments: ProblemShape.all)
    func matchesVLFeat(_ shape: ProblemShape) throws {
        for seed in ProblemShape.seeds {
            let problem = Problem(seed: seed, kind: shape.kind, n: shape.n, k: shape.k, d: shape.d)
            let model = try problem.model.model
            for options in FisherOptions.allCombinations {
                let encoded = try FisherEncoder(model: model, options: options).encode(problem.descriptors)
                let baseline = VLFeat.fisher(problem.data, model: problem.model, flags: Int32(options.rawValue))
                let error = relativeError(encoded, baseline.vector)
                #expect(error <= tolerance(squareRoot: options.contains(.squareRoot)),
                        "\(problem), flags \(options.name): relative error to VLFeat \(error)")
            }
        }
    }

    /// VLFeat's return value (terms accumulated) equals ours when no posterior is near the
    /// 1e−6 threshold (VLFeat's posteriors are float32, so a q within rounding of 1e−6 could
    /// fall on either side).
    @Test func termCountMatchesVLFeat() throws {
        var checked: [UInt64] = []
        for seed: UInt64 in 1...10 where checked.count < 3 {
            let problem = Problem(seed: seed, kind: .gaussian, n: 60, k: 3, d: 2)
            let q = Reference.posteriors(problem.data, model: problem.model)
            if q.contains(where: { $0 > 0.9e-6 && $0 < 1.1e-6 }) { continue }  // within 10% of the threshold
            checked.append(seed)
            for options in FisherOptions.allCombinations {
                let (_, terms) = try encodeCounting(problem.data, problem.model, options: options)
                let baseline = VLFeat.fisher(problem.data, model: problem.model, flags: Int32(options.rawValue))
                #expect(terms == baseline.terms, "\(problem), options \(options.name): \(terms) terms, VLFeat \(baseline.terms)")
                // Overlapping components: without .fast some rows count twice.
                let expectedRange = options.contains(.fast) ? problem.n ... problem.n : problem.n + 1 ... 3 * problem.n
                #expect(expectedRange.contains(terms), "\(problem), options \(options.name): \(terms) terms")
            }
        }
        #expect(checked.count == 3, "only seeds \(checked) have no posterior near 1e-6")
    }

    // MARK: Edge cases

    @Test("no descriptors encode to zeros", arguments: FisherOptions.allCombinations)
    func emptyImage(_ options: FisherOptions) throws {
        let gmm = Problem(seed: 1, kind: .gaussian, n: 0, k: 3, d: 5).model
        let (encoded, terms) = try encodeCounting([], gmm, options: options)
        #expect(encoded.count == 30 && terms == 0)
        #expect(encoded.allSatisfy { $0 == 0 }, "options \(options.name): \(encoded)")
    }

    /// A component with π < 1e−6 gets q = 0 and zero blocks even where it is by far the most
    /// likely, and the other components share the rows as if it were absent.
    @Test("a prior below 1e-6 gives zero blocks", arguments: FisherOptions.allCombinations)
    func negligiblePrior(_ options: FisherOptions) throws {
        let seed: UInt64 = 4, k = 3, d = 5
        var gmm = Problem(seed: seed, kind: .gaussian, n: 0, k: k, d: d).model
        gmm.priors = [0.5, 5e-7, 0.5]
        var random = SeededGenerator(seed: seed)
        let data = (0..<40 * d).map { Float(Double(gmm.means[d + $0 % d]) + 0.3 * random.nextGaussian()) }
        let (encoded, terms) = try encodeCounting(data, gmm, options: options)
        let expected = Reference.fisher(data, model: gmm, options: options)
        #expect(encoded[d ..< 2 * d].allSatisfy { $0 == 0 } && encoded[k * d + d ..< k * d + 2 * d].allSatisfy { $0 == 0 },
                "seed \(seed), options \(options.name): blocks of component 1 are \(encoded)")
        let error = relativeError(encoded, expected.vector)
        #expect(error <= tolerance(squareRoot: options.contains(.squareRoot)),
                "seed \(seed), options \(options.name): relative error \(error)")
        #expect(terms == expected.terms, "seed \(seed), options \(options.name): \(terms) terms, reference \(expected.terms)")
        let baseline = VLFeat.fisher(data, model: gmm, flags: Int32(options.rawValue))
        #expect(relativeError(encoded, baseline.vector) <= tolerance(squareRoot: options.contains(.squareRoot)),
                "seed \(seed), flags \(options.name): relative error to VLFeat \(relativeError(encoded, baseline.vector))")
    }

    /// The float32 prior nearest 1e−6 is 9.99999997e−7 < 1e−6: VLFeat (comparing in double)
    /// drops that component; so must we.
    @Test func priorJustBelowThresholdInDouble() throws {
        let seed: UInt64 = 6, d = 3
        var gmm = Problem(seed: seed, kind: .gaussian, n: 0, k: 2, d: d).model
        gmm.priors = [1, Float(1e-6)]
        #expect(Double(gmm.priors[1]) < 1e-6)
        var random = SeededGenerator(seed: seed)
        let data = (0..<20 * d).map { Float(Double(gmm.means[d + $0 % d]) + 0.3 * random.nextGaussian()) }
        let (encoded, terms) = try encodeCounting(data, gmm, options: [])
        let baseline = VLFeat.fisher(data, model: gmm, flags: 0)
        let expected = Reference.fisher(data, model: gmm, options: [])
        #expect(baseline.vector[d ..< 2 * d].allSatisfy { $0 == 0 }, "VLFeat keeps the component: \(baseline.vector)")
        #expect(encoded[d ..< 2 * d].allSatisfy { $0 == 0 } && encoded[3 * d ..< 4 * d].allSatisfy { $0 == 0 },
                "seed \(seed): component 1 (prior \(gmm.priors[1])) has blocks \(encoded)")
        #expect(relativeError(encoded, expected.vector) <= 1e-5 && relativeError(encoded, baseline.vector) <= 1e-5,
                "seed \(seed): \(encoded) vs reference \(expected.vector), VLFeat \(baseline.vector)")
        #expect(terms == baseline.terms && terms == expected.terms,
                "seed \(seed): \(terms) terms, VLFeat \(baseline.terms), reference \(expected.terms)")
    }
}


func encodeCounting(_ data: [Float], _ gmm: GMM, options: FisherOptions) throws -> (vector: [Float], terms: Int) {
    let encoder = try FisherEncoder(model: gmm.model, options: options)
    var encoded = [Float](repeating: 0, count: encoder.encodedDimension)
    let terms = try encoded.withUnsafeMutableBufferPointer {
        try encoder.encodeCountingTerms(DescriptorMatrix(rows: data.count / gmm.dimension, dimension: gmm.dimension, values: data),
                                        workspace: KernelWorkspace(), into: $0)
    }
    return (encoded, terms)
}
