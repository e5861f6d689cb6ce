import Clustering
import Descriptors
import Encoding
import Testing

/// Sizes the randomized comparisons run on: K = 1, D not a multiple of 8 or 16, and D = 1.
struct ProblemShape: Sendable, CustomStringConvertible {
    let kind: DataKind
    let n: Int, k: Int, d: Int
    var description: String { "\(kind) N=\(n) K=\(k) D=\(d)" }

    static let all: [ProblemShape] = [
        ProblemShape(kind: .gaussian, n: 40, k: 1, d: 13),
        ProblemShape(kind: .gaussian, n: 150, k: 3, d: 2),
        ProblemShape(kind: .gaussian, n: 200, k: 5, d: 13),
        ProblemShape(kind: .gaussian, n: 120, k: 4, d: 1),
        ProblemShape(kind: .siftLike, n: 150, k: 1, d: 13),
        ProblemShape(kind: .siftLike, n: 200, k: 6, d: 13),
        ProblemShape(kind: .siftLike, n: 200, k: 4, d: 37),
        ProblemShape(kind: .siftLike, n: 100, k: 3, d: 128),
    ]
    static let seeds: [UInt64] = [1, 2, 3]
}

private func vlad(_ data: [Float], dimension d: Int, centres: [Float], options: VLADOptions) throws -> [Float] {
    let encoder = VLADEncoder(codebook: try Codebook(k: centres.count / d, dimension: d, centres: centres), options: options)
    return try encoder.encode(DescriptorMatrix(rows: data.count / d, dimension: d, values: data))
}

private func expectClose(_ actual: [Float], _ expected: [Double], _ label: String,
                         sourceLocation: SourceLocation = #_sourceLocation) {
    let error = relativeError(actual, expected)
    #expect(error <= 1e-6, "\(label): got \(actual), expected \(expected)", sourceLocation: sourceLocation)
}

@Suite("VLADEncoder")
struct VLADEncoderTests {
    // MARK: Hand-computed cases

    /// VLFeat's own test: x = [1 2 3], μ = 0, one cluster.
    @Test func singlePointSingleCluster() throws {
        let x: [Float] = [1, 2, 3], mu: [Float] = [0, 0, 0]
        let r14 = 14.0.squareRoot(), r2 = 2.0.squareRoot(), r3 = 3.0.squareRoot(), r6 = 6.0.squareRoot()
        let cases: [(VLADOptions, [Double])] = [
            ([], [1 / r14, 2 / r14, 3 / r14]),
            (.unnormalized, [1, 2, 3]),
            ([.normalizeMass, .unnormalized], [1, 2, 3]),
            ([.normalizeComponents, .unnormalized], [1 / r14, 2 / r14, 3 / r14]),
            (.normalizeComponents, [1 / r14, 2 / r14, 3 / r14]),
            ([.squareRoot, .unnormalized], [1, r2, r3]),
            (.squareRoot, [1 / r6, r2 / r6, r3 / r6]),
            ([.squareRoot, .normalizeComponents, .normalizeMass, .unnormalized], [1 / r6, r2 / r6, r3 / r6]),
        ]
        for (options, expected) in cases {
            expectClose(try vlad(x, dimension: 3, centres: mu, options: options), expected, options.name)
        }
    }

    /// Two clusters in 2-D, μ0 = (0,0), μ1 = (10,10); rows 0–1 go to cluster 0 and rows 2–4
    /// to cluster 1, so v0 = (4, −3) (mass 2) and v1 = (0, 3) (mass 3).
    @Test func twoClustersKnownAssignments() throws {
        let centres: [Float] = [0, 0, 10, 10]
        let x: [Float] = [1, 2, 3, -5, 12, 9, 10, 13, 8, 11]
        let r2 = 2.0.squareRoot(), r3 = 3.0.squareRoot(), r7 = 7.0.squareRoot(), r34 = 34.0.squareRoot()
        let r15 = 1.5.squareRoot(), r35 = 3.5.squareRoot(), r725 = 7.25.squareRoot()
        let cases: [(VLADOptions, [Double])] = [
            (.unnormalized, [4, -3, 0, 3]),
            ([], [4 / r34, -3 / r34, 0, 3 / r34]),
            ([.normalizeMass, .unnormalized], [2, -1.5, 0, 1]),
            (.normalizeMass, [2 / r725, -1.5 / r725, 0, 1 / r725]),
            ([.normalizeComponents, .unnormalized], [0.8, -0.6, 0, 1]),
            (.normalizeComponents, [0.8 / r2, -0.6 / r2, 0, 1 / r2]),
            ([.squareRoot, .unnormalized], [2, -r3, 0, r3]),
            (.squareRoot, [2 / 10.0.squareRoot(), -r3 / 10.0.squareRoot(), 0, r3 / 10.0.squareRoot()]),
            ([.squareRoot, .normalizeComponents, .unnormalized], [2 / r7, -r3 / r7, 0, 1]),
            ([.normalizeMass, .squareRoot, .unnormalized], [r2, -r15, 0, 1]),
            ([.normalizeMass, .squareRoot, .normalizeComponents, .unnormalized], [r2 / r35, -r15 / r35, 0, 1]),
            ([.normalizeMass, .squareRoot, .normalizeComponents], [r2 / r35 / r2, -r15 / r35 / r2, 0, 1 / r2]),
        ]
        for (options, expected) in cases {
            expectClose(try vlad(x, dimension: 2, centres: centres, options: options), expected, options.name)
        }
    }

    // MARK: Against the float64 reference

    @Test("every option combination matches the float64 reference", arguments: ProblemShape.all)
    func matchesReference(_ shape: ProblemShape) throws {
        for seed in ProblemShape.seeds {
            let problem = Problem(seed: seed, kind: shape.kind, n: shape.n, k: shape.k, d: shape.d)
            let codebook = try problem.model.codebook
            for options in VLADOptions.allCombinations {
                let encoded = try VLADEncoder(codebook: codebook, options: options).encode(problem.descriptors)
                let expected = Reference.vlad(problem.data, dimension: shape.d, centres: problem.model.means,
                                              k: shape.k, options: options)
                let error = relativeError(encoded, expected)
                #expect(error <= tolerance(squareRoot: options.contains(.squareRoot)),
                        "\(problem), options \(options.name): relative error \(error)")
            }
        }
    }

    // MARK: Against VLFeat

    /// `vl_vlad_encode` given the reference's float64 nearest-centre assignments. (The
    /// SIFT-like data are integers, whose float32 sums are exact, so VLFeat is accurate there.)
    @Test("matches vl_vlad_encode for every flag combination", arguments: ProblemShape.all)
    func matchesVLFeat(_ shape: ProblemShape) throws {
        for seed in ProblemShape.seeds {
            let problem = Problem(seed: seed, kind: shape.kind, n: shape.n, k: shape.k, d: shape.d)
            let codebook = try problem.model.codebook
            let assignments = Reference.assignments(problem.data, dimension: shape.d, centres: codebook.centres, k: shape.k)
            for options in VLADOptions.allCombinations {
                let encoded = try VLADEncoder(codebook: codebook, options: options).encode(problem.descriptors)
                let baseline = VLFeat.vlad(problem.data, dimension: shape.d, centres: codebook.centres, k: shape.k,
                                           assignments: assignments, flags: Int32(options.rawValue))
                let error = relativeError(encoded, baseline)
                #expect(error <= tolerance(squareRoot: options.contains(.squareRoot)),
                        "\(problem), flags \(options.name): relative error to VLFeat \(error)")
            }
        }
    }

    /// VLFeat sums raw x in float32 and then subtracts m_k·μ_k, which cancels when the data's
    /// mean is large against its spread. On non-integer data offset by 100 (spread ≈ 1,
    /// N = 500) VLFeat is 20× (flags without sqrt) to 1× (with sqrt) the tolerance away from
    /// the float64 reference for every flag combination (200× with an offset of 1000), while
    /// Codebook's float64 residual sums stay within 1e−2 of the tolerance. Recorded as a known
    /// issue of VLFeat, not loosened: our check is against the reference.
    @Test func vlfeatCancelsOnOffsetData() throws {
        let seed: UInt64 = 5, offset: Float = 100
        let problem = Problem(seed: seed, kind: .gaussian, n: 500, k: 2, d: 13)
        let data = problem.data.map { $0 + offset }, centres = problem.model.means.map { $0 + offset }
        let codebook = try Codebook(k: 2, dimension: 13, centres: centres)
        let assignments = Reference.assignments(data, dimension: 13, centres: centres, k: 2)
        for options in VLADOptions.allCombinations where !options.contains(.squareRoot) {
            let expected = Reference.vlad(data, dimension: 13, centres: centres, k: 2, options: options)
            let ours = try VLADEncoder(codebook: codebook, options: options)
                .encode(DescriptorMatrix(rows: 500, dimension: 13, values: data))
            let theirs = VLFeat.vlad(data, dimension: 13, centres: centres, k: 2,
                                     assignments: assignments, flags: Int32(options.rawValue))
            let ourError = relativeError(ours, expected), theirError = relativeError(theirs, expected)
            #expect(ourError <= 1e-5, "seed \(seed) offset \(offset), options \(options.name): relative error \(ourError)")
            withKnownIssue("VLFeat 0.9.21 accumulates Σx in float32 and subtracts m·μ (cancellation)") {
                #expect(theirError <= 1e-5, "VLFeat, seed \(seed) offset \(offset), flags \(options.name): relative error \(theirError)")
            }
        }
    }

    // MARK: Edge cases

    @Test("no descriptors encode to zeros", arguments: VLADOptions.allCombinations)
    func emptyImage(_ options: VLADOptions) throws {
        let codebook = try Codebook(k: 3, dimension: 5, centres: (0..<15).map(Float.init))
        let encoded = try VLADEncoder(codebook: codebook, options: options)
            .encode(DescriptorMatrix(rows: 0, dimension: 5, values: []))
        #expect(encoded.count == 15)
        #expect(encoded.allSatisfy { $0 == 0 }, "options \(options.name): \(encoded)")
    }

    /// Two identical centres (1 and 2): every row goes to centre 1, and a row equidistant
    /// from two distinct centres goes to the lower index.
    @Test func tiesGoToTheLowestIndex() throws {
        let centres: [Float] = [9, 9, 1, 1, 1, 1]
        let x: [Float] = [0, 1, 2, 1, 1, 3]
        let encoded = try vlad(x, dimension: 2, centres: centres, options: .unnormalized)
        #expect(encoded == [0, 0, 0, 2, 0, 0], "identical centres: \(encoded)")
        // (1, 0) is at distance 1 from both (0, 0) and (2, 0); (3, 0) is nearer (2, 0).
        let between = try vlad([1, 0], dimension: 2, centres: [2, 0, 0, 0], options: .unnormalized)
        #expect(between == [-1, 0, 0, 0], "equidistant row: \(between)")
        let reversed = try vlad([1, 0], dimension: 2, centres: [0, 0, 2, 0], options: .unnormalized)
        #expect(reversed == [1, 0, 0, 0], "equidistant row, centres swapped: \(reversed)")
    }

    /// Rows with large ‖x‖ between two centres whose squared distances differ by less than
    /// float32 rounding of ‖x‖²: the naive float32 expansion picks the wrong centre, the
    /// encoder must pick the float64 nearest.
    @Test func nearTieFollowsFloat64Distance() throws {
        let seed: UInt64 = 11, d = 16
        var random = SeededGenerator(seed: seed)
        let centres: [Float] = (0..<2 * d).map { _ in Float(200 + 50 * random.nextUnit()) }
        let midpoint = (0..<d).map { (Double(centres[$0]) + Double(centres[d + $0])) / 2 }
        var rows: [[Float]] = []
        for _ in 0..<20_000 where rows.count < 8 {
            let x = midpoint.map { Float($0 + 0.001 * random.nextGaussian()) }
            let exact = Reference.nearestCentre(x[...], centres: centres, k: 2)
            if float32ExpansionNearest(x, centres: centres, k: 2) != exact { rows.append(x) }
        }
        try #require(rows.count == 8, "seed \(seed): found only \(rows.count) rows that fool float32")
        let codebook = try Codebook(k: 2, dimension: d, centres: centres)
        let encoder = VLADEncoder(codebook: codebook, options: .unnormalized)
        for (index, x) in rows.enumerated() {
            let exact = Reference.nearestCentre(x[...], centres: centres, k: 2)
            let encoded = try encoder.encode(DescriptorMatrix(rows: 1, dimension: d, values: x))
            let other = 1 - exact
            #expect(encoded[other * d ..< (other + 1) * d].allSatisfy { $0 == 0 } && encoded.contains { $0 != 0 },
                    "seed \(seed), row \(index): float64 nearest is centre \(exact), encoded \(encoded)")
        }
        // All rows in one image too, against the reference.
        let all = rows.flatMap { $0 }
        let expected = Reference.vlad(all, dimension: d, centres: centres, k: 2, options: .unnormalized)
        let error = relativeError(try encoder.encode(DescriptorMatrix(rows: rows.count, dimension: d, values: all)), expected)
        #expect(error <= 1e-5, "seed \(seed): relative error \(error)")
    }
}

/// The nearest centre by ‖x‖² + ‖c‖² − 2x·c evaluated naively in float32.
private func float32ExpansionNearest(_ x: [Float], centres: [Float], k: Int) -> Int {
    let d = x.count
    var best = 0, bestDistance = Float.infinity
    for c in 0..<k {
        var xx: Float = 0, cc: Float = 0, xc: Float = 0
        for j in 0..<d {
            xx += x[j] * x[j]
            cc += centres[c * d + j] * centres[c * d + j]
            xc += x[j] * centres[c * d + j]
        }
        let distance = xx + cc - 2 * xc
        if distance < bestDistance { best = c; bestDistance = distance }
    }
    return best
}
