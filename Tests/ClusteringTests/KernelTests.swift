import Clustering
import Descriptors
import Foundation
import Testing

@Suite struct KernelTests {
    @Test(arguments: [1 as UInt64, 2, 3])
    func nearestCentreEqualsFloat64Argmin(seed: UInt64) throws {
        let data = blobs(rows: 3000, dimension: 37, blobs: 12, seed: seed, spread: 20, scale: 200)
        var generator = SeededGenerator(seed: seed &+ 100)
        // Centres drawn near the data, plus a pair of near-duplicates to provoke near ties.
        var centres = (0..<20).flatMap { _ in data.row(Int(generator.next() % UInt64(data.rows))) }
        centres += centres[0..<37].map { $0 + 1e-3 }
        let codebook = try Codebook(k: 21, dimension: 37, centres: centres)
        let search = NearestCentreSearch(codebook: codebook)
        var assigned = [Int32](repeating: -1, count: data.rows)
        var distances = [Double](repeating: 0, count: data.rows)
        var scratch = [Float]()
        try data.withFloatRows(0..<data.rows, scratch: &scratch) { rows in
            try search.assign(rows, firstRow: 0, source: "test", workspace: KernelWorkspace(),
                              assignments: &assigned, distances: &distances)
        }
        for i in 0..<data.rows {
            let reference = referenceNearest(data.row(i), codebook)
            #expect(Int(assigned[i]) == reference.index, "seed \(seed), row \(i)")
            #expect(abs(distances[i] - reference.distance) <= 1e-9 * max(1, reference.distance), "seed \(seed), row \(i)")
        }
    }

    @Test func nearTieAgainstLargeNormPicksTheExactNearest() throws {
        // ‖x‖² ≈ 3·10^10: the float32 expansion cannot tell these centres apart.
        let x: [Float] = [100_000, 100_000, 100_000]
        let codebook = try Codebook(k: 2, dimension: 3, centres: [100_000, 100_000, 100_004, 100_000, 100_000, 99_997])
        let search = NearestCentreSearch(codebook: codebook)
        var assigned: [Int32] = [-1]
        try x.withUnsafeBufferPointer { buffer in
            try search.assign(FloatRows(base: buffer.baseAddress!, rows: 1, dimension: 3, stride: 3), firstRow: 0,
                              source: "test", workspace: KernelWorkspace(), assignments: &assigned)
        }
        #expect(assigned == [1])
    }

    @Test func nonFiniteRowIsRejectedWithItsIndex() throws {
        var values = [Float](repeating: 1, count: 40)
        values[23] = .nan
        let data = DescriptorMatrix(rows: 10, dimension: 4, values: values)
        let search = NearestCentreSearch(codebook: try Codebook(k: 1, dimension: 4, centres: [0, 0, 0, 0]))
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

    @Test(arguments: [5 as UInt64, 6])
    func posteriorsEqualDirectFloat64(seed: UInt64) throws {
        let d = 19, k = 7
        let data = blobs(rows: 500, dimension: d, blobs: k, seed: seed, spread: 10, scale: 150)
        var generator = SeededGenerator(seed: seed)
        let means = (0..<k).flatMap { _ in data.row(Int(generator.next() % 500)) }
        let variances = (0..<k * d).map { _ in Float(20 + 200 * generator.nextUnit()) }
        var priors = (0..<k).map { _ in Float(0.1 + generator.nextUnit()) }
        let sum = priors.reduce(0, +)
        priors = priors.map { $0 / sum }
        let model = try GaussianMixtureModel(k: k, dimension: d, means: means, variances: variances, priors: priors)
        let kernel = try GaussianPosteriors(model: model)
        var scratch = [Float]()
        try data.withFloatRows(0..<data.rows, scratch: &scratch) { rows in
            try kernel.forEachRow(rows, firstRow: 0, source: "test", workspace: KernelWorkspace()) { i, list, logLikelihood in
                let l = referenceLogDensities(data.row(i), model)
                let top = l.max()!
                let total = l.reduce(0) { $0 + exp($1 - top) }
                #expect(abs(logLikelihood - (top + log(total))) <= 1e-9 * abs(logLikelihood), "seed \(seed), row \(i)")
                var q = [Double](repeating: 0, count: k)
                for m in 0..<list.count { q[Int(list.components[m])] = list.posteriors[m] }
                for c in 0..<k {
                    let reference = exp(l[c] - top) / total
                    #expect(abs(q[c] - reference) <= 1e-12 + 1e-9 * reference, "seed \(seed), row \(i), component \(c)")
                }
            }
        }
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
