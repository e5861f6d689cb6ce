import ArgumentParser

/// Command-line options shared by every section.
struct BenchOptions: ParsableArguments {
    @Option(help: "Corpus rows for kmeans and gmm; vectors for search.") var rows: Int = 1_000_000
    @Option(help: "Descriptor dimension.") var dim: Int = 128
    @Option(help: "Codebook size (centres, GMM components).") var k: Int = 256
    @Option(help: "Threads for Codebook and every baseline.") var threads: Int = 2
    @Option(help: "Timed repetitions; the median is reported.") var `repeat`: Int = 3
    @Option(help: "Where corpora and baseline outputs are cached.") var workDir: String = "/tmp/codebook-bench"
    @Option(help: "Lloyd iterations compared with faiss and scikit-learn.") var iterations: Int = 5
    @Option(help: "Rows for the scikit-learn GMM comparison (per-row throughput is compared).") var gmmRows: Int = 200_000
    @Option(help: "Images to encode (each --image-rows descriptors).") var images: Int = 5000
    @Option(help: "Descriptors per image.") var imageRows: Int = 300
    @Option(help: "Rows of the corpus for the memory section (> 4 GB as fvecs by default).") var largeRows: Int = 8_500_000
    @Option(help: "Real descriptors (.npy, .fvecs, .bvecs; e.g. made by bench/extract_sift.py): the gmm and encode sections run on them too, after the synthetic corpus.")
    var corpus: String?
    @Option(help: "pruning: the K compared with faiss (0: skip that comparison).") var pruningLargeK: Int = 4096
    @Option(help: "Python interpreter for bench/baselines.py.") var python: String = "python3"
    @Option(help: "Path of bench/baselines.py (default: next to the package).") var baselines: String?
    @Flag(help: "Small sizes for a smoke test.") var quick = false
    @Flag(help: "Include the memory section (writes a > 4 GB corpus).") var large = false

    func sizes() throws -> BenchSizes {
        guard threads >= 1, self.repeat >= 1, k >= 1, dim >= 1, iterations >= 2 else {
            throw ValidationError("need threads ≥ 1, repeat ≥ 1, k ≥ 1, dim ≥ 1, iterations ≥ 2")
        }
        var sizes = BenchSizes(rows: rows, dimension: dim, k: k, threads: threads, repeats: self.repeat,
                               workDirectory: workDir, iterations: iterations, gmmRows: min(gmmRows, rows),
                               images: images, imageRows: imageRows, largeRows: largeRows, realCorpus: corpus,
                               pruningLargeK: max(0, pruningLargeK), python: python,
                               baselines: baselines ?? BenchSizes.defaultBaselinesPath(), quick: quick)
        if quick {
            sizes.rows = min(rows, 60_000)
            sizes.k = min(k, 64)
            sizes.repeats = 1
            sizes.iterations = min(iterations, 3)
            sizes.gmmRows = min(gmmRows, 20_000)
            sizes.images = min(images, 200)
            sizes.largeRows = min(largeRows, 200_000)
        }
        guard sizes.k <= sizes.rows, sizes.gmmRows >= sizes.k else {
            throw ValidationError("k=\(sizes.k) needs at least k rows (rows=\(sizes.rows), gmm-rows=\(sizes.gmmRows))")
        }
        return sizes
    }
}

/// The resolved sizes of a run.
struct BenchSizes: Sendable {
    var rows: Int
    var dimension: Int
    var k: Int
    var threads: Int
    var repeats: Int
    var workDirectory: String
    var iterations: Int
    var gmmRows: Int
    var images: Int
    var imageRows: Int
    var largeRows: Int
    /// Real descriptors to run the gmm and encode sections on as well.
    var realCorpus: String?
    /// The pruning section's K against faiss; 0 skips that comparison.
    var pruningLargeK: Int
    var python: String
    var baselines: String
    var quick: Bool

    /// Clusters of the synthetic corpus: twice K, so that k-means has real work to do.
    var corpusClusters: Int { 2 * k }
    /// The corpus seed; fixed so cached files stay valid.
    static let seed: UInt64 = 20_240_601

    var summary: String {
        "rows=\(rows) dim=\(dimension) k=\(k) threads=\(threads) repeat=\(repeats) (median) iterations=\(iterations) "
            + "gmm-rows=\(gmmRows) images=\(images)×\(imageRows) work-dir=\(workDirectory)\(quick ? " [quick]" : "")"
            + (realCorpus.map { " real corpus=\($0)" } ?? "")
    }

    func path(_ name: String) -> String { workDirectory + "/" + name }

    /// bench/baselines.py of the package this binary was built from (.build*/release/… → package root).
    static func defaultBaselinesPath() -> String {
        var url = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath()
        for _ in 0..<6 {
            url.deleteLastPathComponent()
            let candidate = url.appendingPathComponent("bench/baselines.py").path
            if FileManager.default.fileExists(atPath: candidate) { return candidate }
        }
        return "bench/baselines.py"
    }
}

import Foundation
