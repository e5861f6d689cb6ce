import CVLFeat
import Clustering
import Descriptors
import Encoding
import Foundation
import Synchronization

/// Section 3: VLAD and Fisher encoding throughput of Codebook against VLFeat on the same
/// images, codebook, GMM and thread count, and the vectors compared.
struct EncodingSection {
    let sizes: BenchSizes

    enum Encoding: String {
        case vlad = "VLAD", fisher = "Fisher (improved)"

        /// max|Δ| / max|ref| allowed between Codebook's and VLFeat's vectors: VLFeat computes
        /// in float32, and the improved Fisher vector's square root magnifies its error on
        /// small values (on real SIFT VLFeat is 1.1e-4 from an exact float64 evaluation).
        var tolerance: Double { self == .vlad ? 1e-5 : 3e-4 }
        /// Speed-up over VLFeat's encoding loop.
        var target: Double { self == .vlad ? 5 : 3 }
    }

    /// Runs on the synthetic images, then on images of the real descriptors if given.
    func run() async throws {
        try await Workload(sizes: sizes).onEachCorpus(syntheticRows: sizes.images * sizes.imageRows,
                                                      imagesOf: sizes.imageRows) { try await run(on: $0) }
    }

    private func run(on data: BenchCorpus) async throws {
        let workload = Workload(sizes: sizes)
        let corpus = data.matrix
        let images = try data.images(count: sizes.images, rows: sizes.imageRows)
        let rows = images.reduce(0) { $0 + $1.rows }
        let k = sizes.k, d = corpus.dimension

        // The codebook and GMM the encoders use, trained on the corpus the images come from.
        let backend = LocalBackend(corpus: corpus, threads: sizes.threads)
        let initial = data.initial.codebook
        var parameters = KMeansParameters(k: k)
        parameters.iterations = 5
        parameters.tolerance = 0
        parameters.initialization = .given(initial)
        let codebook = try await KMeans.train(on: backend, parameters: parameters).codebook
        let (model, _) = try await workload.gaussianMixture(backend: backend, initial: codebook, tag: "encode-\(data.tag)-\(corpus.rows)x\(d)-k\(k)")

        let checked = Set([0, 1, images.count / 2, images.count - 1])
        var table = MarkdownTable("Encoding (\(data.label)): \(images.count) images × \(sizes.imageRows) descriptors, D=\(d) K=\(k), \(sizes.threads) threads",
                                  columns: ["encoding", "Codebook", "VLFeat 0.9.21", "Codebook desc/s", "VLFeat desc/s",
                                            "speed-up", "target", "max|Δ|/max|ref|"])
        var failures: [String] = []
        for encoding in [Encoding.vlad, .fisher] {
            let ours: any VectorEncoder = encoding == .vlad
                ? VLADEncoder(codebook: codebook, options: []) : try FisherEncoder(model: model, options: .improved)
            let ourVectors = Mutex<[Int: [Float]]>([:])
            var theirVectors: [Int: [Float]] = [:]
            let times = try await Stopwatch.interleaved(sizes.repeats, [
                {
                    try await ours.encodeAll(images, threads: sizes.threads) { index, vector in
                        if checked.contains(index) { ourVectors.withLock { $0[index] = vector } }
                    }
                },
                {
                    theirVectors = try await vlfeat(encoding, images: images, codebook: codebook, model: model,
                                                    length: ours.encodedDimension, keep: checked)
                },
            ])
            let (ourTime, theirTime) = (times[0], times[1])
            var worst = 0.0
            for index in checked.sorted() {
                guard let mine = ourVectors.withLock({ $0[index] }), let theirs = theirVectors[index] else {
                    failures.append("\(encoding.rawValue): image \(index) has no vector"); continue
                }
                let difference = Check.vectorDifference(mine, theirs)
                worst = max(worst, difference)
                if !(difference <= encoding.tolerance) {
                    failures.append("\(encoding.rawValue) image \(index): max|Δ|/max|ref| = " + format(difference, "%.3e")
                                    + " > \(encoding.tolerance)")
                }
            }
            let speedUp = theirTime / ourTime
            table.add(encoding.rawValue, seconds(ourTime), seconds(theirTime), format(Double(rows) / ourTime, "%.0f"),
                      format(Double(rows) / theirTime, "%.0f"), "**" + ratio(speedUp) + "**",
                      verdict(speedUp >= encoding.target, "≥ \(encoding.target)×"), format(worst, "%.1e"))
        }
        table.note("Codebook: encodeAll(images, threads: \(sizes.threads)) (VLADEncoder options [], FisherEncoder .improved). "
                   + "VLFeat: vl_kmeans_quantize (L2, float) + vl_vlad_encode (flags 0, one-hot assignments) and vl_fisher_encode "
                   + "(VL_FISHER_FLAG_IMPROVED), one image per call on \(sizes.threads) threads of ours, vl_set_num_threads(1) on each.")
        table.note("Vectors of images \(checked.sorted()) compared, tolerance \(Encoding.vlad.tolerance) (VLAD) and "
                   + "\(Encoding.fisher.tolerance) (Fisher, after the square root) as max|Δ|/max|ref|, ref = VLFeat. "
                   + "Medians of \(sizes.repeats) interleaved rounds; vectors are encoded and dropped (no output I/O) by both.")
        table.print()
        if !failures.isEmpty { throw CheckFailure(failures.joined(separator: "; ")) }
    }

    /// VLFeat over all images on `threads` threads: thread t takes images t, t + threads, …
    private func vlfeat(_ encoding: Encoding, images: [DescriptorMatrix], codebook: Codebook, model: GaussianMixtureModel,
                        length: Int, keep: Set<Int>) async throws -> [Int: [Float]] {
        let kept = Mutex<[Int: [Float]]>([:])
        let threads = sizes.threads
        try await ParallelWork.run(count: threads, threads: threads) { thread, _ in
            let encoder = VLFeatImageEncoder(codebook: codebook, model: model)
            var output = [Float](repeating: 0, count: length)
            var scratch: [Float] = []
            for index in stride(from: thread, to: images.count, by: threads) {
                let image = images[index]
                image.withFloatRows(0..<image.rows, scratch: &scratch) { rows in
                    output.withUnsafeMutableBufferPointer { out in
                        switch encoding {
                        case .vlad: encoder.vlad(rows, flags: 0, into: out.baseAddress!)
                        case .fisher: encoder.fisher(rows, flags: Int32(VL_FISHER_FLAG_IMPROVED), into: out.baseAddress!)
                        }
                    }
                }
                if keep.contains(index) { kept.withLock { $0[index] = output } }
            }
        }
        return kept.withLock { $0 }
    }
}
