import CVLFeat
import Clustering
import Descriptors
import Encoding
import Foundation
import Synchronization

/// Section 3: VLAD and Fisher encoding throughput of Codebook against VLFeat on the same
/// images, codebook, GMM and thread count, and the vectors compared; also the whole
/// `codebook encode` process on the same files, as a user runs it.
struct EncodingSection {
    let sizes: BenchSizes
    /// Where the `codebook` executable is.
    let cluster: ClusterSizes

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
        let (model, paths) = try await workload.gaussianMixture(backend: backend, initial: codebook,
                                                                tag: "encode-\(data.tag)-\(corpus.rows)x\(d)-k\(k)")
        // The same images, codebook and GMM as files, for the `codebook encode` process.
        let files = "encode-\(data.tag)-\(images.count)x\(sizes.imageRows)-k\(k)"
        let index = sizes.path(files + ".tsv"), centres = sizes.path(files + "-centres.npy")
        try images.enumerated().map { "image\($0.offset)\t\($0.element.firstRow)\t\($0.element.rows)\n" }.joined()
            .write(toFile: index, atomically: true, encoding: .utf8)
        try NpyFile.write(path: centres, rows: k, columns: d, values: codebook.centres)
        let executable = try? cluster.codebookExecutable()

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
            let vectorsPath = sizes.path(files + "-vectors.npy")
            let modelFiles = encoding == .vlad ? ["vlad", "--centres", centres]
                : ["fisher", "--means", paths.means, "--variances", paths.variances, "--priors", paths.priors, "--improved"]
            let command = ["encode"] + modelFiles + ["--descriptors", data.path, "--index", index, "--out", vectorsPath,
                                                "--threads", String(sizes.threads)]
            var bodies: [() async throws -> Void] = [
                {
                    try await ours.encodeAll(images, threads: sizes.threads) { index, vector in
                        if checked.contains(index) { ourVectors.withLock { $0[index] = vector } }
                    }
                },
                {
                    theirVectors = try await vlfeat(encoding, images: images, codebook: codebook, model: model,
                                                    length: ours.encodedDimension, keep: checked)
                },
            ]
            if let executable { bodies.append({ try Self.runProcess(executable, command) }) }
            let times = try await Stopwatch.interleaved(sizes.repeats, bodies)
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
            table.add(encoding.rawValue + " (engine: encodeAll)", seconds(ourTime), seconds(theirTime),
                      format(Double(rows) / ourTime, "%.0f"), format(Double(rows) / theirTime, "%.0f"),
                      "**" + ratio(speedUp) + "**", "", format(worst, "%.1e"))
            if executable != nil {
                // The process wrote every image's vector: those checked must be the engine's, bit for bit.
                let written = try NpyFile.readFloat32(path: vectorsPath)
                for index in checked.sorted() {
                    let row = Array(written.values[index * written.columns ..< (index + 1) * written.columns])
                    if row != ourVectors.withLock({ $0[index] }) {
                        failures.append("\(encoding.rawValue): `codebook encode` wrote another vector for image \(index)")
                    }
                }
                let processTime = times[2], processSpeedUp = theirTime / processTime
                table.add(encoding.rawValue + " (whole `codebook " + command.prefix(2).joined(separator: " ") + "` process)",
                          seconds(processTime), seconds(theirTime), format(Double(rows) / processTime, "%.0f"),
                          format(Double(rows) / theirTime, "%.0f"), "**" + ratio(processSpeedUp) + "**",
                          verdict(processSpeedUp >= encoding.target, "≥ \(encoding.target)×"), "")
            }
        }
        table.note("Codebook: encodeAll(images, threads: \(sizes.threads)) (VLADEncoder options [], FisherEncoder .improved). "
                   + "VLFeat: vl_kmeans_quantize (L2, float) + vl_vlad_encode (flags 0, one-hot assignments) and vl_fisher_encode "
                   + "(VL_FISHER_FLAG_IMPROVED), one image per call on \(sizes.threads) threads of ours, vl_set_num_threads(1) on each.")
        table.note("Vectors of images \(checked.sorted()) compared, tolerance \(Encoding.vlad.tolerance) (VLAD) and "
                   + "\(Encoding.fisher.tolerance) (Fisher, after the square root) as max|Δ|/max|ref|, ref = VLFeat. "
                   + "Medians of \(sizes.repeats) interleaved rounds; vectors are encoded and dropped (no output I/O) by both.")
        if executable == nil {
            table.note("The whole-process rows need the `codebook` executable next to this one (or --codebook-binary).")
        } else {
            table.note("Whole process: `codebook encode vlad|fisher … --descriptors CORPUS --index INDEX --out VECTORS.npy "
                       + "--threads \(sizes.threads)` on the same images (index written to --work-dir), from start to exit: "
                       + "reading, encoding, writing and syncing the .npy; its vectors must equal the engine's bit for bit. "
                       + "The target applies to it.")
        }
        table.print()
        if !failures.isEmpty { throw CheckFailure(failures.joined(separator: "; ")) }
    }

    /// Runs `executable arguments` to its end; a failure is a check failure with its output.
    private static func runProcess(_ executable: String, _ arguments: [String]) throws {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        let output = Pipe()
        process.standardOutput = output
        process.standardError = output
        process.standardInput = FileHandle.nullDevice
        try process.run()
        let text = output.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        guard process.terminationStatus == 0 else {
            throw CheckFailure("codebook \(arguments.joined(separator: " ")) exited with \(process.terminationStatus): "
                               + String(decoding: text, as: UTF8.self))
        }
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
                try image.withFloatRows(0..<image.rows, scratch: &scratch) { rows in
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
