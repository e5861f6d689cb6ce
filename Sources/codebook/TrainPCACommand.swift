import ArgumentParser
import Cluster
import ClusterProtocol
import Clustering
import Descriptors
import ZeroMQ

struct TrainPCA: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "pca",
        abstract: "Principal components of a corpus's descriptors (one covariance pass on the workers, LAPACK dsyevr), for --pca; "
            + "or the PCA-whitening of a stored set's vectors (--set), for --whiten-with and search --pca.")

    @OptionGroup var job: CorpusJobOptions
    @Option(help: ArgumentHelp("Instead of --corpus: learn from this stored set's vectors (vector whitening: power law, L2, PCA; "
                               + "computed by the coordinator from the set: through the D×D covariance, or the N×N Gram matrix "
                               + "of the set's N vectors when D×D is above the coordinator's --max-model-values (2^24 by default) and N×N is not; then D' ≤ N − 1).",
                               valueName: "SET"))
    var set: String?
    @Option(help: "With --set: the signed power law applied to each value first (then L2-normalised).") var power: Double?
    @Option(help: "Components kept, D' (1…D).") var dimensions: Int
    @Flag(help: "Whiten when applied: divide each component by √(eigenvalue + ε), ε = 1e-6 × the largest eigenvalue.")
    var whiten = false
    @Option(help: "Output prefix: writes PREFIX_mean.npy (D), PREFIX_components.npy (D'×D), PREFIX_eigenvalues.npy (D').")
    var out: String?

    func validate() throws {
        try job.validateOutputs(out: out)
        guard dimensions >= 1 else { throw ValidationError("--dimensions must be at least 1") }
        guard (job.corpus == nil) != (set == nil) else { throw ValidationError("give --corpus or --set") }
        guard set != nil || power == nil else { throw ValidationError("--power goes with --set") }
        guard set == nil || !job.rootSift else { throw ValidationError("--root-sift is for descriptors, not a set's vectors") }
        if let power { guard power > 0, power.isFinite else { throw ValidationError("--power must be finite and > 0") } }
    }

    func run() async throws {
        let training = TrainingJob(kind: .pca, corpus: job.absoluteCorpus, k: dimensions, iterations: 1, seed: 0, tolerance: 0,
                                   shardRows: job.shardRows, initialization: .none, whiten: whiten, set: set, power: power)
        let display = job.output.display()
        let (outcome, reply) = try await job.run(training, arrays: [], display: display)
        let projection = try PCAFiles.projection(from: reply, k: outcome.k, dimension: outcome.dimension, whiten: whiten,
                                                 power: set == nil ? nil : power ?? 0.5)
        var wrote = try out.map { try PCAFiles.write(projection, prefix: $0) } ?? []
        if let name = job.name { wrote.append("model \"\(name)\" in the store") }
        let pca = projection.principalComponents
        let kept = pca.eigenvalues.reduce(0.0) { $0 + Double($1) }
        display.finish("kept \(outcome.k) of \(outcome.dimension) components (eigenvalues \(pca.eigenvalues[0]) … \(pca.eigenvalues.last!), "
                       + "sum \(Float(kept))\(whiten ? ", whitening" : "")); wrote \(wrote.joined(separator: ", "))")
    }
}

/// A PCA as .npy files: PREFIX_mean (D), PREFIX_components (D'×D), PREFIX_eigenvalues (D').
enum PCAFiles {
    static func projection(from message: WireMessage, k: Int, dimension: Int, whiten: Bool, power: Double? = nil) throws -> PCAProjection {
        let (kd, overflow) = k.multipliedReportingOverflow(by: dimension)
        guard !overflow else { throw ClusterError(.invalidRequest, "a PCA of D'=\(k), D=\(dimension) is too large") }
        return try PCAProjection(PrincipalComponents(dimension: dimension, mean: try message.array(0, as: Float.self, count: dimension),
                                                     components: try message.array(1, as: Float.self, count: kd),
                                                     eigenvalues: try message.array(2, as: Float.self, count: k)),
                                 whiten: whiten, power: power)
    }

    static func paths(prefix: String) -> [String] {
        ["\(prefix)_mean.npy", "\(prefix)_components.npy", "\(prefix)_eigenvalues.npy"]
    }

    static func read(prefix: String, whiten: Bool) throws -> PCAProjection {
        let paths = paths(prefix: prefix)
        let mean = try NpyFile.readFloat32(path: paths[0]), components = try NpyFile.readFloat32(path: paths[1])
        let eigenvalues = try NpyFile.readFloat32(path: paths[2])
        return try PCAProjection(PrincipalComponents(dimension: components.columns, mean: mean.values, components: components.values,
                                                     eigenvalues: eigenvalues.values), whiten: whiten)
    }

    /// Writes the three files and returns their paths.
    static func write(_ projection: PCAProjection, prefix: String) throws -> [String] {
        let pca = projection.principalComponents, paths = paths(prefix: prefix)
        try NpyFile.write(path: paths[0], vector: pca.mean)
        try NpyFile.write(path: paths[1], rows: pca.outputDimension, columns: pca.dimension, values: pca.components)
        try NpyFile.write(path: paths[2], vector: pca.eigenvalues)
        return paths
    }
}
