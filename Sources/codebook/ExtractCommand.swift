import ArgumentParser
import Descriptors
import Features
import Foundation

struct ExtractCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "extract",
        abstract: "Compute SIFT or dense SIFT descriptors (VLFeat) of JPEG and PNG images: one descriptor file and its image index.")

    @Option(help: "Directory of .jpg/.jpeg/.png images (key: file name without extension).") var images: String?
    @Option(help: "Instead of --images: a list file, one PATH or KEY<TAB>PATH per line (relative to the list's directory).")
    var imageList: String?
    @Option(help: "sift (VLFeat's detector and descriptor) or dsift (dense SIFT as vl_phow computes it).")
    var method: String = "sift"
    @Option(help: "dsift: grid step in pixels.") var step: Int = 4
    @Option(help: "dsift: spatial bin size in pixels.") var binSize: Int = 8
    @Option(help: "Shrink images whose longer side exceeds this (area averaging); 0: never.") var maxSide: Int = 1024
    @Flag(help: "RootSIFT: L1-normalise each descriptor, then take square roots.") var rootSift = false
    @Option(help: "Output descriptors (.npy or .fvecs, float32, 128 per row).") var out: String
    @Option(help: "Output image index (TSV: key, first row, row count), as encode reads it.") var index: String
    @OptionGroup var compute: ComputeOptions
    @Flag(help: "Fail on the first image that cannot be read, instead of skipping it with a warning.") var strict = false

    func validate() throws {
        guard (images != nil) != (imageList != nil) else { throw ValidationError("give either --images DIR or --image-list FILE") }
        guard ["sift", "dsift"].contains(method) else { throw ValidationError("--method must be sift or dsift") }
        guard FeatureExtractor.steps.contains(step), FeatureExtractor.binSizes.contains(binSize) else {
            throw ValidationError("--step must be in \(FeatureExtractor.steps) and --bin-size in \(FeatureExtractor.binSizes)")
        }
        guard maxSide >= 0 else { throw ValidationError("--max-side must be 0 (never) or more") }
        guard maxSide == 0 || maxSide >= FeatureExtractor.minimumSide else {
            throw ValidationError("--max-side must be at least \(FeatureExtractor.minimumSide)")
        }
    }

    func run() throws {
        let started = ContinuousClock.now
        let source = try images.map { try ImageSource(directory: $0) } ?? ImageSource(list: imageList!)
        let extractor = try FeatureExtractor(method: method == "sift" ? .sift : .denseSIFT(step: step, binSize: binSize),
                                         maximumSide: maxSide == 0 ? nil : maxSide, rootSIFT: rootSift)
        let extraction = Extraction(extractor: extractor, threads: compute.threads, strict: strict)
        let summary = try extraction.run(source, descriptors: out, index: index) { skipped in
            FileHandle.standardError.write(Data("warning: skipped \(skipped.path): \(skipped.error)\n".utf8))
        }
        print(String(format: "extracted %d descriptors from %d images in %.2f s; wrote %@ and %@",
                     summary.descriptors, summary.images, (ContinuousClock.now - started).seconds, out, index))
        if !summary.skipped.isEmpty {
            print("skipped \(summary.skipped.count) of \(source.entries.count) images (unreadable):")
            for image in summary.skipped { print("  \(image.path)") }
        }
    }
}
