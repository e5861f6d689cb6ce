import ArgumentParser
import Descriptors
import Foundation

struct GenerateCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "generate",
        abstract: "Write a synthetic corpus: a seeded Gaussian mixture, non-negative like SIFT (.fvecs or .npy).")

    @Option(help: "Number of rows.") var n: Int
    @Option(help: "Values per row.") var dim: Int = 128
    @Option(help: "Gaussian clusters the rows are drawn from.") var clusters: Int = 64
    @Option(help: "Random seed.") var seed: UInt64 = 0
    @Option(help: "Output file (.fvecs or .npy).") var out: String
    @Option(help: "Also write an image index (TSV: key, first row, row count) here.") var index: String?
    @Option(help: "Rows per image in the index.") var imageRows: Int = 300

    func validate() throws {
        guard n >= 1, dim >= 1, clusters >= 1, imageRows >= 1 else {
            throw ValidationError("--n, --dim, --clusters and --image-rows must be at least 1")
        }
    }

    func run() throws {
        let started = ContinuousClock.now
        try SyntheticCorpus(rows: n, dimension: dim, clusters: clusters, seed: seed)
            .write(to: out, index: index, imagesOf: imageRows)
        print("wrote \(n)×\(dim) rows to \(out)" + (index.map { " and an index of \((n + imageRows - 1) / imageRows) images to \($0)" } ?? "")
              + String(format: " in %.2f s", (ContinuousClock.now - started).seconds))
    }
}
