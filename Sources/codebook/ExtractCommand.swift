import ArgumentParser
import Cluster
import ClusterProtocol
import Descriptors
import Features
import Foundation
import ZeroMQ

struct ExtractCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "extract",
        abstract: "Compute SIFT or dense SIFT descriptors (VLFeat) of JPEG and PNG images: one descriptor file and its image index.")

    @Option(help: "Directory of .jpg/.jpeg/.png images (key: file name without extension).") var images: String?
    @Option(help: "Instead of --images: a list file, one PATH or KEY<TAB>PATH per line (relative to the list's directory).")
    var imageList: String?
    @OptionGroup var extraction: ExtractionOptions
    @Option(help: "Output descriptors (.npy or .fvecs, float32, 128 per row).") var out: String
    @Option(help: "Output image index (TSV: key, first row, row count), as encode reads it.") var index: String
    @OptionGroup var compute: ComputeOptions
    @Flag(help: "Fail on the first image that cannot be read, instead of skipping it with a warning.") var strict = false
    @Option(help: "A running coordinator's clients endpoint (e.g. tcp://HOST:5556): extract on its workers; the coordinator writes --out and --index (paths as it sees them).")
    var coordinator: String?
    @Option(help: "With --coordinator: images per task (0: the coordinator chooses, up to 16).") var imagesPerShard = 0
    @Flag(help: "With --coordinator: replace existing output files (the coordinator refuses otherwise).") var replace = false
    @OptionGroup var keys: ClientKeyOptions

    func validate() throws {
        guard (images != nil) != (imageList != nil) else { throw ValidationError("give either --images DIR or --image-list FILE") }
        guard imagesPerShard >= 0 else { throw ValidationError("--images-per-shard must be 0 (the coordinator chooses) or more") }
    }

    var parameters: ExtractionParameters { extraction.parameters }

    func run() async throws {
        let started = ContinuousClock.now
        let source = try images.map { try ImageSource(directory: $0) } ?? ImageSource(list: imageList!)
        let extractor = try parameters.extractor()
        if let coordinator { return try await extractOnCluster(source, coordinator: coordinator, started: started) }
        let extraction = Extraction(extractor: extractor, threads: compute.threads, strict: strict)
        let summary = try extraction.run(source, descriptors: out, index: index) { skipped in
            warn(skipped: skipped.path, "\(skipped.error)")
        }
        report(descriptors: summary.descriptors, images: summary.images, of: source.entries.count,
               skipped: summary.skipped.map(\.path), seconds: (ContinuousClock.now - started).seconds)
    }

    /// Submits an extraction job with absolute paths and follows it to its end.
    private func extractOnCluster(_ source: ImageSource, coordinator: String, started: ContinuousClock.Instant) async throws {
        let absolute = { URL(fileURLWithPath: $0).standardizedFileURL.path }
        let job = ExtractionJob(images: source.entries.map { ImageSource.Entry(key: $0.key, path: absolute($0.path)) },
                                extraction: parameters, descriptors: absolute(out), index: absolute(index), replace: replace,
                                strict: strict, imagesPerShard: imagesPerShard)
        let client = try ClusterClient(context: try ZeroMQContext(), endpoint: coordinator, security: try keys.security())
        let id = try client.submit(job)
        var warned = 0
        let final = try await client.wait(for: id) { progress in
            for image in (progress.skipped ?? []).dropFirst(warned) { warn(skipped: image.path, PeerText.escaped(image.message)) }
            warned = max(warned, progress.skipped?.count ?? 0)
        }
        let skipped = (final.skipped ?? []).map(\.path)
        report(descriptors: final.descriptors ?? 0, images: source.entries.count - skipped.count, of: source.entries.count,
               skipped: skipped, seconds: (ContinuousClock.now - started).seconds)
    }

    private func warn(skipped path: String, _ why: String) {
        FileHandle.standardError.write(Data("warning: skipped \(path): \(why)\n".utf8))
    }

    private func report(descriptors: Int, images: Int, of total: Int, skipped: [String], seconds: Double) {
        print(String(format: "extracted %d descriptors from %d images in %.2f s; wrote %@ and %@", descriptors, images, seconds, out, index))
        if !skipped.isEmpty {
            print("skipped \(skipped.count) of \(total) images (unreadable):")
            for path in skipped { print("  \(path)") }
        }
    }
}
