import ArgumentParser
import Cluster
import ClusterProtocol
import Descriptors
import Features
import Foundation
import Storage

/// The embedded default: everything on one machine, nothing to set up.
struct DemoCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "demo",
        abstract: "Extract SIFT from photographs (or generate a synthetic corpus), train a k-means codebook and a GMM on the embedded cluster, encode the images into the store, read one back.")

    @Option(help: "Directory for the demo's files and store.") var dir: String = "demo"
    @Option(help: "JPEG/PNG photographs to start from (default: DIR/photographs if it has any; scripts/fetch-photographs.sh fills it). Without photographs: a synthetic corpus.")
    var photographs: String?
    @Option(help: "Descriptors in the synthetic corpus.") var rows: Int = 200_000
    @Option(help: "k-means clusters.") var k: Int = 64
    @Option(help: "GMM components.") var components: Int = 32

    func run() async throws {
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let corpus = "\(dir)/corpus.fvecs", index = "\(dir)/images.tsv", store = "\(dir)/codebook.db"
        let storeOption = ["--store", store]
        let found = "\(dir)/photographs"
        let photographs = photographs ?? ((try? ImageSource(directory: found))?.entries.isEmpty == false ? found : nil)
        if let photographs {
            print("1. descriptors: SIFT (VLFeat) of the photographs in \(photographs), longer side at most 640 pixels, as RootSIFT")
            try await ExtractCommand.parse(["--images", photographs, "--max-side", "640", "--root-sift", "--out", corpus,
                                            "--index", index]).run()
        } else {
            print("1. corpus: \(rows) SIFT-like 128-D descriptors from 48 clusters, 300 per image")
            try GenerateCommand.parse(["--n", "\(rows)", "--dim", "128", "--clusters", "48", "--seed", "7",
                                       "--out", corpus, "--index", index]).run()
        }
        guard let firstKey = try ImageCollection(index: index, descriptors: corpus).first?.key else {
            throw ValidationError("no image to encode in \(index)")
        }

        print("\n2. k-means codebook, K=\(k), trained by the embedded cluster (a coordinator and one worker per core, over ZeroMQ),"
              + " kept in the store as \"demo-kmeans\"")
        let kmeans = try TrainKMeans.parse(["--corpus", corpus, "--k", "\(k)", "--iterations", "15", "--name", "demo-kmeans",
                                            "--replace", "--out", "\(dir)/centres.npy"] + storeOption)
        try await kmeans.run()

        print("\n3. diagonal GMM, K=\(components), initialised by k-means, kept in the store as \"demo-gmm\"")
        let gmm = try TrainGMM.parse(["--corpus", corpus, "--k", "\(components)", "--iterations", "10", "--name", "demo-gmm",
                                      "--replace", "--out", "\(dir)/gmm"] + storeOption)
        try await gmm.run()

        print("\n4. every image encoded on the cluster into the store: VLAD (signed square root + intra-normalisation)"
              + " as set \"vlad\", improved Fisher vectors as set \"fisher\"")
        let vlad = try EncodeVLAD.parse(["--model", "demo-kmeans", "--set", "vlad", "--replace", "--descriptors", corpus,
                                         "--index", index, "--square-root", "--normalize-components"] + storeOption)
        try await vlad.run()
        let fisher = try EncodeFisher.parse(["--model", "demo-gmm", "--set", "fisher", "--replace", "--descriptors", corpus,
                                             "--index", index, "--improved"] + storeOption)
        try await fisher.run()

        print("\n5. read back by key, and export the sets as .npy")
        let reader = try StoreAccessOptions.parse(storeOption).requester()
        defer { reader.cleanup() }
        let key = "vlad/\(firstKey)"
        guard let (entry, values) = try reader.0.get([key]).first, let values else { throw ExitCode(1) }
        print("\(key): \(entry.encoding?.rawValue ?? "?") vector of \(values.count) values, model \(entry.model ?? "?"), begins "
              + values.prefix(5).map { String(format: "%.4f", $0) }.joined(separator: " ") + " …")
        try ExportSet.parse(["vlad", "--out", "\(dir)/vlad.npy"] + storeOption).run()
        try ExportSet.parse(["fisher", "--out", "\(dir)/fisher.npy"] + storeOption).run()

        print("\n6. the images most like \(firstKey): exact search of set \"vlad\" by inner product (cosine: the vectors are L2-normalised)")
        guard let ranked = try reader.0.search(SearchRequest(set: "vlad", top: 5, key: firstKey)).first else { throw ExitCode(1) }
        for (rank, (neighbour, score)) in zip(ranked.keys, ranked.scores).enumerated() {
            print(String(format: "  %d. %@  %.4f", rank + 1, neighbour, score) + (neighbour == firstKey ? "  (the query itself)" : ""))
        }
        print("\noutputs in \(dir)/: codebook.db (the store: models demo-kmeans and demo-gmm, sets vlad and fisher), corpus.fvecs, "
              + "images.tsv, centres.npy, gmm_{means,variances,priors}.npy, vlad.npy and fisher.npy (+ .keys.txt)")
        let files = photographs.map { " --images \($0)" } ?? ""
        print("try: codebook get \(key) --store \(store)    codebook search vlad --key \(firstKey)\(files) --store \(store)    "
              + "codebook models --store \(store)")
        if let photographs, let first = try? ImageSource(directory: photographs).entries.first?.path {
            print("     codebook search vlad --image \(first) --max-side 640 --root-sift\(files) --store \(store)    "
                  + "(any photograph: extracted and encoded as the set's were)")
        }
    }
}
