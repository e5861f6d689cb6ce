import ArgumentParser
import Cluster
import ClusterProtocol
import Clustering
import Descriptors
import Encoding
import Foundation

struct EncodeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "encode",
        abstract: "Encode images as VLAD or Fisher vectors: to a .npy file (model files, this process) or into the store (stored model, on the cluster).",
        subcommands: [EncodeVLAD.self, EncodeFisher.self])
}

/// Where the images come from and where the vectors go.
struct ImageOptions: ParsableArguments {
    @Option(help: "Descriptor file the index refers to.") var descriptors: String?
    @Option(help: "Image index (TSV: key, first row, row count).") var index: String?
    @Option(help: "Instead of --descriptors/--index: a directory of per-image .npy files.") var imagesDir: String?
    @Option(help: "File mode: the vectors as an N×dim float32 .npy, one row per image in index order.") var out: String?
    @OptionGroup var compute: ComputeOptions
    @Option(help: "Store mode: encode with this stored model on the cluster…") var model: String?
    @Option(help: "…and keep each image's vector in the store under SET/KEY.") var set: String?
    @Flag(help: "Store mode: empty the set first and encode every image again.") var replace = false
    @Option(help: "Store mode: images per shard.") var imagesPerShard: Int = 64
    @Flag(help: "RootSIFT: encode the L1-normalised square roots of plain SIFT descriptors (applied as they are read).")
    var rootSift = false
    @Option(help: ArgumentHelp("Store mode: project every descriptor by this stored PCA model (after --root-sift), on the workers; "
                               + "the one the model was trained through (required then, refused otherwise).", valueName: "NAME"))
    var pca: String?
    @Option(help: ArgumentHelp("Store mode: project every encoded vector by this stored PCA model (train pca --set … --whiten), "
                               + "on the workers: the set holds the whitened vectors.", valueName: "NAME"))
    var whitenWith: String?
    @OptionGroup var cluster: ClusterOptions
    @OptionGroup var output: OutputOptions

    func validate() throws {
        guard (descriptors != nil && index != nil) != (imagesDir != nil) else {
            throw ValidationError("give either --descriptors and --index, or --images-dir")
        }
        guard (out != nil) != (model != nil && set != nil) else {
            throw ValidationError("give either --out FILE (with model files), or --model NAME and --set SET (the store)")
        }
        guard model == nil || imagesDir == nil else {
            throw ValidationError("store mode reads --descriptors and --index (a directory of .npy files is for --out)")
        }
        guard imagesPerShard >= 1 else { throw ValidationError("--images-per-shard must be at least 1") }
        guard (pca == nil && whitenWith == nil) || model != nil else {
            throw ValidationError("--pca and --whiten-with go with --model and --set (store mode)")
        }
    }

    /// Store mode: submits an encoding job and follows it to the end.
    func encodeIntoStore(_ encoding: EncodingJob.Encoding, flags: Int) async throws {
        let absolute = { URL(fileURLWithPath: $0).standardizedFileURL.path }
        let job = EncodingJob(encoding: encoding, model: model!, descriptors: absolute(descriptors!), index: absolute(index!),
                              set: set!, flags: flags, replace: replace, imagesPerShard: imagesPerShard,
                              transform: rootSift ? .rootSIFT : nil, pca: pca, whitening: whitenWith)
        let client: ClusterClient
        var embedded: EmbeddedCluster?
        (client, embedded) = try cluster.connect()
        defer { cluster.shutDown(&embedded) }
        let display = output.display()
        let started = ContinuousClock.now
        let id = try client.submit(job)
        display.note("job \(id): \(encoding.rawValue) of \(job.index) with model \(job.model) into set \(job.set) \(cluster.summary())")
        var lastReport: ContinuousClock.Instant?
        let final: JobProgress
        do {
            final = try await client.wait(for: id) { progress in
                progress.pass.map(display.pass)
                guard lastReport.map({ ContinuousClock.now - $0 >= .seconds(1) }) ?? true, let done = progress.imagesDone, let total = progress.imagesTotal else { return }
                lastReport = ContinuousClock.now
                display.images(done: done, total: total, message: progress.message)
            }
        } catch {
            display.clearBar()
            throw error
        }
        display.finish(String(format: "stored %d images in set %@ in %.2f s", final.imagesTotal ?? 0, job.set, (ContinuousClock.now - started).seconds))
    }

    func collection() throws -> ImageCollection {
        let images = try imagesDir.map { try ImageCollection(directory: $0) }
            ?? ImageCollection(index: index!, descriptors: descriptors!)
        return rootSift ? images.transformed(.rootSIFT) : images
    }

    /// Encodes every image to `out`, streaming, and prints a summary.
    func encode(with encoder: some VectorEncoder, name: String) async throws {
        let images = try collection()
        let started = ContinuousClock.now
        let writer = try DescriptorWriter(path: out!, dimension: encoder.encodedDimension, format: .npy)
        do {
            try await encoder.encodeInOrder(images, threads: compute.threads) { _, vectors in try writer.append(vectors) }
            try writer.finish()
        } catch {
            writer.cancel()
            throw error
        }
        let seconds = (ContinuousClock.now - started).seconds
        let rows = images.reduce(0) { $0 + $1.rows }
        output.display().finish(String(format: "encoded %d images (%d descriptors) as %@ vectors of %d values in %.2f s (%.0f descriptors/s); wrote %@",
                                       images.count, rows, name, encoder.encodedDimension, seconds, Double(rows) / max(seconds, 1e-9), out!))
    }
}

struct EncodeVLAD: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "vlad", abstract: "VLAD (VLFeat vl_vlad_encode semantics).")

    @Option(help: "File mode: k-means centres (K×D .npy).") var centres: String?
    @OptionGroup var images: ImageOptions
    @Flag(help: "Signed square root of every value.") var squareRoot = false
    @Flag(help: "Intra-normalisation: L2-normalise each cluster's block.") var normalizeComponents = false
    @Flag(help: "Divide each cluster's residual sum by its descriptor count.") var normalizeMass = false
    @Flag(help: "Skip the final global L2 normalisation.") var unnormalized = false

    func validate() throws {
        guard (centres != nil) == (images.out != nil) else {
            throw ValidationError("--centres goes with --out (file mode); --model and --set read the model from the store")
        }
    }

    func run() async throws {
        var options: VLADOptions = []
        if squareRoot { options.insert(.squareRoot) }
        if normalizeComponents { options.insert(.normalizeComponents) }
        if normalizeMass { options.insert(.normalizeMass) }
        if unnormalized { options.insert(.unnormalized) }
        guard let centres else { return try await images.encodeIntoStore(.vlad, flags: options.rawValue) }
        try await images.encode(with: VLADEncoder(codebook: try ModelFiles.codebook(centres: centres), options: options),
                                name: "VLAD")
    }
}

struct EncodeFisher: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "fisher", abstract: "Fisher vectors (VLFeat vl_fisher_encode semantics).")

    @Option(help: "File mode: GMM means (K×D .npy).") var means: String?
    @Option(help: "File mode: GMM variances σ² (K×D .npy).") var variances: String?
    @Option(help: "File mode: GMM priors (K .npy).") var priors: String?
    @OptionGroup var images: ImageOptions
    @Flag(help: "Signed square root of every value.") var squareRoot = false
    @Flag(help: "Global L2 normalisation.") var normalized = false
    @Flag(help: "Improved Fisher vector: --square-root and --normalized.") var improved = false
    @Flag(help: "Hard-assign each descriptor to its most likely component.") var fast = false

    func validate() throws {
        let files = [means, variances, priors].compactMap { $0 }.count
        guard (files == 3 && images.out != nil) || (files == 0 && images.out == nil) else {
            throw ValidationError("--means, --variances and --priors go with --out (file mode); --model and --set read the model from the store")
        }
    }

    func run() async throws {
        var options: FisherOptions = []
        if squareRoot { options.insert(.squareRoot) }
        if normalized { options.insert(.normalized) }
        if improved { options.formUnion(.improved) }
        if fast { options.insert(.fast) }
        guard let means, let variances, let priors else { return try await images.encodeIntoStore(.fisher, flags: options.rawValue) }
        let model = try ModelFiles.gaussianMixture(means: means, variances: variances, priors: priors)
        try await images.encode(with: try FisherEncoder(model: model, options: options), name: "Fisher")
    }
}
