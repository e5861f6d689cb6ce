import Clustering
import Descriptors
import Foundation
import Testing

@Suite struct KernelTests {
    /// The screens this CPU runs (`.fused` needs AVX-512).
    static let screens = NearestCentreSearch.Screen.preferred == .fused ? NearestCentreSearch.Screen.allCases : [.blas]

    @Test(arguments: [1 as UInt64, 2, 3], screens)
    func nearestCentreEqualsFloat64Argmin(seed: UInt64, screen: NearestCentreSearch.Screen) throws {
        let data = try blobs(rows: 3000, dimension: 37, blobs: 12, seed: seed, spread: 20, scale: 200)
        var generator = SeededGenerator(seed: seed &+ 100)
        // Centres drawn near the data, plus a pair of near-duplicates to provoke near ties.
        var centres = try (0..<20).flatMap { _ in try data.row(Int(generator.next() % UInt64(data.rows))) }
        centres += centres[0..<37].map { $0 + 1e-3 }
        let codebook = try Codebook(k: 21, dimension: 37, centres: centres)
        let search = NearestCentreSearch(codebook: codebook, screen: screen)
        var assigned = [Int32](repeating: -1, count: data.rows)
        var distances = [Double](repeating: 0, count: data.rows)
        var scratch = [Float]()
        try data.withFloatRows(0..<data.rows, scratch: &scratch) { rows in
            try search.assign(rows, firstRow: 0, source: "test", workspace: KernelWorkspace(),
                              assignments: &assigned, distances: &distances)
        }
        for i in 0..<data.rows {
            let reference = referenceNearest(try data.row(i), codebook)
            #expect(Int(assigned[i]) == reference.index, "seed \(seed), row \(i)")
            #expect(abs(distances[i] - reference.distance) <= 1e-9 * max(1, reference.distance), "seed \(seed), row \(i)")
        }
    }

    /// Every tile shape of the fused kernel (14, 4 and 1 rows; K across panel boundaries,
    /// padded; D not a multiple of 16; at D = 2048 a group of centres is one panel, so rows
    /// carry their standing from group to group), with exact duplicate centres in the same
    /// lane, in different lanes and in different panels: both screens give the float64
    /// argmin, the lowest index on ties.
    @Test(arguments: [1, 16, 37, 128, 2048])
    func screensAgreeOnEveryBlockShape(dimension d: Int) throws {
        var generator = SeededGenerator(seed: UInt64(d))
        for k in [1, 2, 31, 32, 33, 70] {
            let data = try blobs(rows: 41, dimension: d, blobs: 5, seed: UInt64(k * d), spread: 15, scale: 120)
            var centres = (0..<k * d).map { _ in Float(generator.nextUnit() * 120) }
            for (copy, original) in [(k - 1, 0), (17, 1), (33, 2), (65, 33)] where copy < k && original < copy {
                centres.replaceSubrange(copy * d ..< (copy + 1) * d, with: centres[original * d ..< (original + 1) * d])
            }
            let codebook = try Codebook(k: k, dimension: d, centres: centres)
            // Centres at data rows make exact ties with their duplicates for those rows.
            var rows = try (0..<data.rows).flatMap { try data.row($0) }
            rows.replaceSubrange(0..<d, with: centres[0..<d])
            for m in [1, 3, 4, 5, 13, 14, 15, 18, 19, 33, 41] {
                let expected = (0..<m).map { referenceNearest(Array(rows[$0 * d ..< ($0 + 1) * d]), codebook).index }
                for screen in Self.screens {
                    let search = NearestCentreSearch(codebook: codebook, screen: screen)
                    var assigned = [Int32](repeating: -1, count: m)
                    try rows.withUnsafeBufferPointer { buffer in
                        try search.assign(FloatRows(base: buffer.baseAddress!, rows: m, dimension: d, stride: d), firstRow: 0,
                                          source: "test", workspace: KernelWorkspace(), assignments: &assigned)
                    }
                    #expect(assigned.map(Int.init) == expected, "\(screen) k=\(k) d=\(d) m=\(m)")
                }
            }
        }
    }

    @Test(arguments: screens)
    func nearTieAgainstLargeNormPicksTheExactNearest(screen: NearestCentreSearch.Screen) throws {
        // ‖x‖² ≈ 3·10^10: the float32 expansion cannot tell these centres apart.
        let x: [Float] = [100_000, 100_000, 100_000]
        let codebook = try Codebook(k: 2, dimension: 3, centres: [100_000, 100_000, 100_004, 100_000, 100_000, 99_997])
        let search = NearestCentreSearch(codebook: codebook, screen: screen)
        var assigned: [Int32] = [-1]
        try x.withUnsafeBufferPointer { buffer in
            try search.assign(FloatRows(base: buffer.baseAddress!, rows: 1, dimension: 3, stride: 3), firstRow: 0,
                              source: "test", workspace: KernelWorkspace(), assignments: &assigned)
        }
        #expect(assigned == [1])
    }

    @Test(arguments: screens)
    func nonFiniteRowIsRejectedWithItsIndex(screen: NearestCentreSearch.Screen) throws {
        var values = [Float](repeating: 1, count: 40)
        values[23] = .nan
        let data = try DescriptorMatrix(rows: 10, dimension: 4, values: values)
        let search = NearestCentreSearch(codebook: try Codebook(k: 1, dimension: 4, centres: [0, 0, 0, 0]), screen: screen)
        var assigned = [Int32](repeating: 0, count: 10)
        var scratch = [Float]()
        let error = #expect(throws: DescriptorError.self) {
            try data.withFloatRows(0..<10, scratch: &scratch) { rows in
                try search.assign(rows, firstRow: 100, source: "corpus.npy", workspace: KernelWorkspace(), assignments: &assigned)
            }
        }
        #expect(error?.code == .nonFinite)
        #expect(error?.description.contains("row 105") == true)
        #expect(error?.description.contains("corpus.npy") == true)
    }

    /// Half the centres twice: the rows nearest to one of those tie exactly, so the fused
    /// screen leaves them undecided and the sgemm screen takes them, copied side by side,
    /// block after block, while it decides the others.
    /// Assignments and distances are still the float64 ones (lowest index on ties), and a
    /// NaN among them is reported at its own row, not at its place among the copies.
    @Test(arguments: screens)
    func blocksOfUndecidedRowsKeepTheFloat64ArgminAndTheirRowNumbers(screen: NearestCentreSearch.Screen) throws {
        let d = 24, distinct = 20, rows = 700
        let data = try blobs(rows: rows, dimension: d, blobs: 6, seed: 9, spread: 10, scale: 150)
        var generator = SeededGenerator(seed: 10)
        let distinctCentres = try (0..<distinct).flatMap { _ in try data.row(Int(generator.next() % UInt64(rows))) }
        // Centre c + distinct repeats centre c (c < distinct / 2): ties go to c.
        let codebook = try Codebook(k: distinct + distinct / 2, dimension: d,
                                    centres: distinctCentres + distinctCentres[..<(distinct / 2 * d)])
        let search = NearestCentreSearch(codebook: codebook, screen: screen)
        var assigned = [Int32](repeating: -1, count: rows)
        var distances = [Double](repeating: 0, count: rows)
        var scratch = [Float]()
        try data.withFloatRows(0..<rows, scratch: &scratch) { block in
            try search.assign(block, firstRow: 0, source: "test", workspace: KernelWorkspace(),
                              assignments: &assigned, distances: &distances)
        }
        for i in 0..<rows {
            let reference = referenceNearest(try data.row(i), codebook)
            #expect(reference.index < distinct)
            #expect(Int(assigned[i]) == reference.index, "row \(i)")
            #expect(abs(distances[i] - reference.distance) <= 1e-9 * max(1, reference.distance), "row \(i)")
        }

        var values = try (0..<rows).flatMap { try data.row($0) }
        values[437 * d + 5] = .nan
        let poisoned = try DescriptorMatrix(rows: rows, dimension: d, values: values)
        let error = #expect(throws: DescriptorError.self) {
            try poisoned.withFloatRows(0..<rows, scratch: &scratch) { block in
                try search.assign(block, firstRow: 1000, source: "corpus.npy", workspace: KernelWorkspace(), assignments: &assigned)
            }
        }
        #expect(error?.description.contains("row 1437") == true, "\(String(describing: error))")
    }

    /// The GMM screens this CPU runs (`.fused` needs AVX-512).
    static let gaussianScreens = GaussianPosteriors.Screen.preferred == .fused ? GaussianPosteriors.Screen.allCases : [.blas]

    /// A GMM over `blobs` data whose rows lie between several components: seeded means (rows
    /// of the data), variances and priors.
    static func crowdedMixture(seed: UInt64, k: Int, d: Int) throws -> (data: DescriptorMatrix, model: GaussianMixtureModel) {
        let data = try blobs(rows: 500, dimension: d, blobs: k, seed: seed, spread: 10, scale: 150)
        var generator = SeededGenerator(seed: seed)
        let means = try (0..<k).flatMap { _ in try data.row(Int(generator.next() % 500)) }
        let variances = (0..<k * d).map { _ in Float(20 + 200 * generator.nextUnit()) }
        var priors = (0..<k).map { _ in Float(0.1 + generator.nextUnit()) }
        let sum = priors.reduce(0, +)
        priors = priors.map { $0 / sum }
        return (data, try GaussianMixtureModel(k: k, dimension: d, means: means, variances: variances, priors: priors))
    }

    /// Row i's posteriors (0 for the components not listed) and log-likelihood, for every row.
    static func posteriors(of data: DescriptorMatrix, _ kernel: GaussianPosteriors) throws -> [(q: [Double], logLikelihood: Double)] {
        var result: [(q: [Double], logLikelihood: Double)] = []
        var scratch = [Float]()
        try data.withFloatRows(0..<data.rows, scratch: &scratch) { rows in
            try kernel.forEachBlock(rows, firstRow: 0, source: "test", workspace: KernelWorkspace()) { _, block in
                for j in 0..<block.rows.rows {
                    let list = block.list(j)
                    var q = [Double](repeating: 0, count: kernel.model.k)
                    for m in 0..<list.count {
                        #expect(list.posteriors[m] > 0)
                        q[Int(list.components[m])] = list.posteriors[m]
                    }
                    result.append((q, block.logLikelihoods[j]))
                }
            }
        }
        return result
    }

    /// k = 7: one partial panel of the fused screen; k = 40: a whole one and a partial one.
    /// Both cutoffs in use: EM's ln 10⁶ and the Fisher encoder's 30.
    @Test(arguments: [(5 as UInt64, 7), (6, 7), (7, 40)], gaussianScreens)
    func posteriorsEqualDirectFloat64(seedAndK: (UInt64, Int), screen: GaussianPosteriors.Screen) throws {
        let (seed, k) = seedAndK
        let (data, model) = try Self.crowdedMixture(seed: seed, k: k, d: 19)
        for cutoff in [GaussianMixtureExpectationPass.logPosteriorCutoff, 30] {
            let kernel = try GaussianPosteriors(model: model, logPosteriorCutoff: cutoff, screen: screen)
            for (i, row) in try Self.posteriors(of: data, kernel).enumerated() {
                let reference = referencePosteriors(referenceLogDensities(try data.row(i), model), cutoff: cutoff)
                #expect(abs(row.logLikelihood - reference.logLikelihood) <= 1e-9 * abs(reference.logLikelihood),
                        "seed \(seed), cutoff \(cutoff), row \(i)")
                for c in 0..<k {
                    #expect(abs(row.q[c] - reference.posteriors[c]) <= 1e-12 + 1e-9 * reference.posteriors[c],
                            "seed \(seed), cutoff \(cutoff), row \(i), component \(c)")
                }
            }
        }
    }

    /// EM's posteriors against the float64 softmax over all components, within the documented
    /// tolerance: a dropped q is below 10⁻⁶, a kept one too large by a factor of at most
    /// 1 + (K − 1)·10⁻⁶, the log-likelihood too small by at most (K − 1)·10⁻⁶. The data has
    /// components dropped with q well above the old cut's e^−30; both screens give the same bits.
    @Test(arguments: [(5 as UInt64, 7), (7, 40)])
    func expectationPosteriorsAreTheFullSoftmaxWithinTheirTolerance(seedAndK: (UInt64, Int)) throws {
        let (seed, k) = seedAndK
        let (data, model) = try Self.crowdedMixture(seed: seed, k: k, d: 19)
        let slack = Double(k - 1) * 1e-6
        var droppedAboveOldCut = 0
        var results: [[(q: [Double], logLikelihood: Double)]] = []
        for screen in Self.gaussianScreens {
            let kernel = try GaussianPosteriors(model: model, logPosteriorCutoff: GaussianMixtureExpectationPass.logPosteriorCutoff,
                                                screen: screen)
            results.append(try Self.posteriors(of: data, kernel))
        }
        for (i, row) in results[0].enumerated() {
            let full = referencePosteriors(referenceLogDensities(try data.row(i), model), cutoff: .infinity)
            let shortfall = full.logLikelihood - row.logLikelihood
            #expect(shortfall >= -1e-9 * abs(full.logLikelihood) && shortfall <= slack + 1e-9 * abs(full.logLikelihood), "row \(i)")
            for c in 0..<k {
                if row.q[c] == 0 {
                    #expect(full.posteriors[c] < 1e-6, "row \(i), component \(c)")
                    if full.posteriors[c] > 1e-12 { droppedAboveOldCut += 1 }
                } else {
                    let ratio = row.q[c] / full.posteriors[c]
                    #expect(ratio >= 1 - 1e-9 && ratio <= 1 + slack + 1e-9, "row \(i), component \(c)")
                }
            }
        }
        #expect(droppedAboveOldCut > 0)
        for other in results.dropFirst() {
            #expect(zip(other, results[0]).allSatisfy { $0.q.map(\.bitPattern) == $1.q.map(\.bitPattern)
                && $0.logLikelihood.bitPattern == $1.logLikelihood.bitPattern })
        }
    }

    /// D = 1, μ = 0 and 6, σ² = 1, equal priors: ℓ_0 − ℓ_1 = 18 − 6x, so the row x = 0.7 has
    /// component 1 just inside EM's cut (13.8 < ln 10⁶ ≈ 13.8155) and x = 0.69 just outside
    /// (13.86). EM's pass counts component 1 for the first row only; the Fisher encoder's cutoff
    /// (30) keeps it in both.
    @Test(arguments: gaussianScreens)
    func expectationKeepsAComponentJustInsideTheCutAndDropsOneJustOutside(screen: GaussianPosteriors.Screen) throws {
        let model = try GaussianMixtureModel(k: 2, dimension: 1, means: [0, 6], variances: [1, 1], priors: [0.5, 0.5])
        let data = try DescriptorMatrix(rows: 2, dimension: 1, values: [0.7, 0.69])
        let inside = referencePosteriors(referenceLogDensities([0.7], model), cutoff: .infinity).posteriors[1]
        #expect(inside > 1e-6 && inside < 1.1e-6)

        let em = try Self.posteriors(of: data, GaussianPosteriors(
            model: model, logPosteriorCutoff: GaussianMixtureExpectationPass.logPosteriorCutoff, screen: screen))
        #expect(abs(em[0].q[1] - inside) <= 1e-9 * inside)
        #expect(em[1].q == [1, 0])
        let wide = try Self.posteriors(of: data, GaussianPosteriors(model: model, logPosteriorCutoff: 30, screen: screen))
        #expect(wide[1].q[1] > 0.9e-6)

        let statistics = try GaussianMixtureExpectationPass(model: model).statistics(of: data, shard: 0, workspace: KernelWorkspace())
        #expect(statistics.mass[1] == em[0].q[1])
        #expect(statistics.mass[0] == em[0].q[0] + 1)
    }

    /// A NaN, or a value whose square overflows float32, in row 300 (the second block of the fused screen).
    @Test(arguments: [Float.nan, 3e20], gaussianScreens)
    func posteriorsRejectANonFiniteRowWithItsIndex(poison: Float, screen: GaussianPosteriors.Screen) throws {
        let d = 5, rows = 400
        var values = (0..<rows * d).map { Float($0 % 7) }
        values[300 * d + 2] = poison
        let data = try DescriptorMatrix(rows: rows, dimension: d, values: values)
        let model = try GaussianMixtureModel(k: 2, dimension: d, means: [Float](repeating: 1, count: 2 * d),
                                             variances: [Float](repeating: 4, count: 2 * d), priors: [0.5, 0.5])
        let kernel = try GaussianPosteriors(model: model, logPosteriorCutoff: 30, screen: screen)
        var scratch = [Float]()
        let error = #expect(throws: DescriptorError.self) {
            try data.withFloatRows(0..<rows, scratch: &scratch) { block in
                try kernel.forEachBlock(block, firstRow: 100, source: "corpus.npy", workspace: KernelWorkspace()) { _, _ in }
            }
        }
        #expect(error?.code == .nonFinite)
        #expect(error?.description.contains("row 400") == true, "\(String(describing: error))")
    }

    @Test func mergerFoldsInShardOrderWhateverTheArrivalOrder() {
        struct Trace: SufficientStatistics { var shards: [Int]; mutating func merge(_ o: Trace) { shards += o.shards } }
        var merger = OrderedMerger<Trace>(shardCount: 4)
        var taken = [Bool]()
        for shard in [2, 0, 0, 3] { taken.append(merger.add(Trace(shards: [shard]), shard: shard)) }
        #expect(taken == [true, true, false, true])
        #expect(merger.result == nil)
        taken = [merger.add(Trace(shards: [1]), shard: 1)]
        #expect(taken == [true])
        #expect(merger.result?.shards == [0, 1, 2, 3])
    }
}

@Suite struct OpenBLASKernelTests {
    let avx512: Set<String> = ["sse3", "avx", "avx2", "fma", "avx512f", "avx512bw", "avx512dq", "avx512vl"]

    @Test func genericKernelsOnAnAVX512CPUAskForSkylakeX() {
        #expect(OpenBLASKernels.betterCoreType(running: "Prescott", cpuFlags: avx512, environment: [:]) == "SkylakeX")
        #expect(OpenBLASKernels.betterCoreType(running: "Haswell", cpuFlags: avx512, environment: [:]) == "SkylakeX")
    }

    @Test func genericKernelsOnAnAVX2CPUAskForHaswell() {
        #expect(OpenBLASKernels.betterCoreType(running: "Prescott", cpuFlags: ["avx2", "fma"], environment: [:]) == "Haswell")
    }

    @Test func fittingKernelsOrAUserChoiceAreLeftAlone() {
        #expect(OpenBLASKernels.betterCoreType(running: "SkylakeX", cpuFlags: avx512, environment: [:]) == nil)
        #expect(OpenBLASKernels.betterCoreType(running: "Haswell", cpuFlags: ["avx2", "fma"], environment: [:]) == nil)
        #expect(OpenBLASKernels.betterCoreType(running: "Prescott", cpuFlags: ["sse3"], environment: [:]) == nil)
        #expect(OpenBLASKernels.betterCoreType(running: "Prescott", cpuFlags: avx512,
                                               environment: ["OPENBLAS_CORETYPE": "Prescott"]) == nil)
    }
}
