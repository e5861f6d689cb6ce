import ArgumentParser
import Clustering
import Descriptors
import Encoding
import Foundation

struct EncodeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "encode", abstract: "Encode images as VLAD or Fisher vectors (one row per image, index order).",
        subcommands: [EncodeVLAD.self, EncodeFisher.self])
}

/// Where the images come from and where the vectors go.
struct ImageOptions: ParsableArguments {
    @Option(help: "Descriptor file the index refers to.") var descriptors: String?
    @Option(help: "Image index (TSV: key, first row, row count).") var index: String?
    @Option(help: "Instead of --descriptors/--index: a directory of per-image .npy files.") var imagesDir: String?
    @Option(help: "Output: the vectors as an N×dim float32 .npy, one row per image in index order.") var out: String
    @OptionGroup var compute: ComputeOptions

    func validate() throws {
        guard (descriptors != nil && index != nil) != (imagesDir != nil) else {
            throw ValidationError("give either --descriptors and --index, or --images-dir")
        }
    }

    func collection() throws -> ImageCollection {
        if let imagesDir { return try ImageCollection(directory: imagesDir) }
        return try ImageCollection(index: index!, descriptors: descriptors!)
    }

    /// Encodes every image to `out`, streaming, and prints a summary.
    func encode(with encoder: some VectorEncoder, name: String) async throws {
        let images = try collection()
        let started = Date()
        let writer = try DescriptorWriter(path: out, dimension: encoder.encodedDimension, format: .npy)
        do {
            try await encoder.encodeInOrder(images, threads: compute.threads) { _, vector in try writer.append(vector) }
            try writer.finish()
        } catch {
            writer.cancel()
            throw error
        }
        let seconds = Date().timeIntervalSince(started)
        let rows = images.reduce(0) { $0 + $1.rows }
        print(String(format: "encoded %d images (%d descriptors) as %@ vectors of %d values in %.2f s (%.0f descriptors/s); wrote %@",
                     images.count, rows, name, encoder.encodedDimension, seconds, Double(rows) / max(seconds, 1e-9), out))
    }
}

struct EncodeVLAD: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "vlad", abstract: "VLAD (VLFeat vl_vlad_encode semantics).")

    @Option(help: "k-means centres (K×D .npy).") var centres: String
    @OptionGroup var images: ImageOptions
    @Flag(help: "Signed square root of every value.") var squareRoot = false
    @Flag(help: "Intra-normalisation: L2-normalise each cluster's block.") var normalizeComponents = false
    @Flag(help: "Divide each cluster's residual sum by its descriptor count.") var normalizeMass = false
    @Flag(help: "Skip the final global L2 normalisation.") var unnormalized = false

    func run() async throws {
        var options: VLADOptions = []
        if squareRoot { options.insert(.squareRoot) }
        if normalizeComponents { options.insert(.normalizeComponents) }
        if normalizeMass { options.insert(.normalizeMass) }
        if unnormalized { options.insert(.unnormalized) }
        try await images.encode(with: VLADEncoder(codebook: try ModelFiles.codebook(centres: centres), options: options),
                                name: "VLAD")
    }
}

struct EncodeFisher: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "fisher", abstract: "Fisher vectors (VLFeat vl_fisher_encode semantics).")

    @Option(help: "GMM means (K×D .npy).") var means: String
    @Option(help: "GMM variances σ² (K×D .npy).") var variances: String
    @Option(help: "GMM priors (K .npy).") var priors: String
    @OptionGroup var images: ImageOptions
    @Flag(help: "Signed square root of every value.") var squareRoot = false
    @Flag(help: "Global L2 normalisation.") var normalized = false
    @Flag(help: "Improved Fisher vector: --square-root and --normalized.") var improved = false
    @Flag(help: "Hard-assign each descriptor to its most likely component.") var fast = false

    func run() async throws {
        var options: FisherOptions = []
        if squareRoot { options.insert(.squareRoot) }
        if normalized { options.insert(.normalized) }
        if improved { options.formUnion(.improved) }
        if fast { options.insert(.fast) }
        let model = try ModelFiles.gaussianMixture(means: means, variances: variances, priors: priors)
        try await images.encode(with: try FisherEncoder(model: model, options: options), name: "Fisher")
    }
}
