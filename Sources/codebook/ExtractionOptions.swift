import ArgumentParser
import ClusterProtocol
import Features

/// How descriptors are computed from an image: `extract`'s options, and `search --image`'s
/// (which must be those the set's descriptors were extracted with).
struct ExtractionOptions: ParsableArguments {
    @Option(help: "sift (VLFeat's detector and descriptor) or dsift (dense SIFT as vl_phow computes it).")
    var method: String = "sift"
    @Option(help: "dsift: grid step in pixels.") var step: Int = 4
    @Option(help: "dsift: spatial bin size in pixels.") var binSize: Int = 8
    @Option(help: "Shrink images whose longer side exceeds this (area averaging); 0: never.") var maxSide: Int = 1024
    @Flag(help: "RootSIFT: L1-normalise each descriptor, then take square roots.") var rootSift = false

    func validate() throws {
        guard ["sift", "dsift"].contains(method) else { throw ValidationError("--method must be sift or dsift") }
        guard FeatureExtractor.steps.contains(step), FeatureExtractor.binSizes.contains(binSize) else {
            throw ValidationError("--step must be in \(FeatureExtractor.steps) and --bin-size in \(FeatureExtractor.binSizes)")
        }
        guard maxSide >= 0 else { throw ValidationError("--max-side must be 0 (never) or more") }
        guard maxSide == 0 || maxSide >= FeatureExtractor.minimumSide else {
            throw ValidationError("--max-side must be at least \(FeatureExtractor.minimumSide)")
        }
    }

    var parameters: ExtractionParameters {
        ExtractionParameters(method: method == "sift" ? .sift : .dsift, step: method == "sift" ? nil : step,
                             binSize: method == "sift" ? nil : binSize, maxSide: maxSide, rootSIFT: rootSift)
    }
}
