import ArgumentParser
import Clustering
import Descriptors
import Encoding
import Foundation

/// The embedded default: everything on one machine, nothing to set up.
struct DemoCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "demo",
        abstract: "Generate a corpus, train a k-means codebook and a GMM, encode its images as VLAD and Fisher vectors.")

    @Option(help: "Directory for the demo's files.") var dir: String = "demo"
    @Option(help: "Descriptors in the synthetic corpus.") var rows: Int = 200_000
    @Option(help: "k-means clusters.") var k: Int = 64
    @Option(help: "GMM components.") var components: Int = 32
    @OptionGroup var compute: ComputeOptions

    func run() async throws {
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let corpus = "\(dir)/corpus.fvecs", index = "\(dir)/images.tsv"
        print("1. corpus: \(rows) SIFT-like 128-D descriptors from 48 clusters, 300 per image")
        try GenerateCommand.parse(["--n", "\(rows)", "--dim", "128", "--clusters", "48", "--seed", "7",
                                   "--out", corpus, "--index", index]).run()
        let threads = ["--threads", "\(compute.threads)"]
        print("\n2. k-means codebook, K=\(k), trained by the embedded cluster (a coordinator and one worker per core, over ZeroMQ)")
        var kmeans = try TrainKMeans.parse(["--corpus", corpus, "--k", "\(k)", "--iterations", "15",
                                            "--out", "\(dir)/centres.npy"])
        try await kmeans.run()
        print("\n3. diagonal GMM, K=\(components), initialised by k-means, trained by the embedded cluster")
        var gmm = try TrainGMM.parse(["--corpus", corpus, "--k", "\(components)", "--iterations", "10",
                                      "--out", "\(dir)/gmm"])
        try await gmm.run()
        print("\n4. VLAD (signed square root + intra-normalisation) and improved Fisher vectors")
        var vlad = try EncodeVLAD.parse(["--centres", "\(dir)/centres.npy", "--descriptors", corpus, "--index", index,
                                         "--square-root", "--normalize-components", "--out", "\(dir)/vlad.npy"] + threads)
        try await vlad.run()
        var fisher = try EncodeFisher.parse(["--means", "\(dir)/gmm_means.npy", "--variances", "\(dir)/gmm_variances.npy",
                                             "--priors", "\(dir)/gmm_priors.npy", "--descriptors", corpus, "--index", index,
                                             "--improved", "--out", "\(dir)/fisher.npy"] + threads)
        try await fisher.run()
        let vectors = try NpyFile.readFloat32(path: "\(dir)/vlad.npy")
        let first = vectors.values.prefix(6).map { String(format: "%.4f", $0) }.joined(separator: " ")
        print("\nfirst image's VLAD vector begins: \(first) …")
        print("outputs in \(dir)/: corpus.fvecs, images.tsv, centres.npy, gmm_{means,variances,priors}.npy, vlad.npy, fisher.npy")
    }
}
