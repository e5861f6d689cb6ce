import ArgumentParser
import Cluster
import ClusterProtocol
import Clustering
import Descriptors
import Foundation
import Logging
import Storage

struct TrainCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "train", abstract: "Train a codebook on a corpus, on a cluster or the embedded one.",
        subcommands: [TrainKMeans.self, TrainGMM.self, TrainPCA.self])
}

/// Options shared by every trainer: the corpus, where the job runs, where the model goes.
struct CorpusJobOptions: ParsableArguments {
    @Option(help: "Training corpus (.fvecs, .bvecs, .ivecs or .npy), a path the coordinator and workers can read.")
    var corpus: String?
    @Option(help: "Rows per shard: the unit of work; results depend on it, never on the workers.")
    var shardRows: Int = ShardPlan.defaultShardRows
    @OptionGroup var cluster: ClusterOptions
    @Option(help: "Threads per embedded worker.") var threads: Int = 1
    @Option(help: "Keep the trained model in the coordinator's store under this name.") var name: String?
    @Flag(help: "Overwrite a stored model of the same name.") var replace = false
    @Flag(help: "RootSIFT: train on the L1-normalised square roots of plain SIFT descriptors (applied as they are read).")
    var rootSift = false
    @OptionGroup var output: OutputOptions

    func validate() throws {
        guard shardRows >= 1 else { throw ValidationError("--shard-rows must be at least 1") }
        try validateThreads(threads)
    }

    /// Checks that the model goes somewhere.
    func validateOutputs(out: String?) throws {
        guard out != nil || name != nil else { throw ValidationError("give --out, --name or both") }
    }

    /// The corpus path as other processes on this host see it.
    var absoluteCorpus: String { corpus.map { URL(fileURLWithPath: $0).standardizedFileURL.path } ?? "" }

    /// Submits `job`, shows its progress on `display`, and returns the result.
    func run(_ job: TrainingJob, arrays: [[UInt8]], display: ProgressDisplay) async throws -> (JobOutcome, WireMessage) {
        let client: ClusterClient
        var embedded: EmbeddedCluster?
        (client, embedded) = try cluster.connect(threads: threads)
        defer { cluster.shutDown(&embedded) }
        var job = job
        job.name = name
        job.replace = replace
        job.transform = rootSift ? .rootSIFT : nil
        let id = try client.submit(job, arrays: arrays)
        display.note("job \(id): \(job.kind.rawValue) \(job.kind == .pca ? "D'" : "k")=\(job.k) on \(job.set.map { "set \($0)" } ?? job.corpus)"
                     + "\(job.pca.map { " through PCA \($0)" } ?? "") \(cluster.summary(threads: threads))")
        defer { display.clearBar() }
        return try await client.follow(id, iteration: display.iteration, waiting: { display.note("  \($0)") }, pass: display.pass)
    }
}

/// Options of the codebook trainers (k-means, GMM).
struct TrainingOptions: ParsableArguments {
    @OptionGroup var job: CorpusJobOptions
    @Option(help: "Number of clusters / components.") var k: Int
    @Option(help: "Iterations at most.") var iterations: Int = 25
    @Option(help: "Random seed.") var seed: UInt64 = 0
    @Option(help: ArgumentHelp("Project every descriptor by this stored PCA model first (after --root-sift), on the workers; "
                               + "encoding with the model then needs the same --pca.", valueName: "NAME"))
    var pca: String?

    func validate() throws {
        guard job.corpus != nil else { throw ValidationError("give --corpus") }
        guard k >= 1 else { throw ValidationError("--k must be at least 1") }
        guard iterations >= 1 else { throw ValidationError("--iterations must be at least 1") }
    }

    var absoluteCorpus: String { job.absoluteCorpus }
    var shardRows: Int { job.shardRows }
    var name: String? { job.name }
    var output: OutputOptions { job.output }
    func validateOutputs(out: String?) throws { try job.validateOutputs(out: out) }

    func run(_ training: TrainingJob, arrays: [[UInt8]], display: ProgressDisplay) async throws -> (JobOutcome, WireMessage) {
        var training = training
        training.pca = pca
        return try await job.run(training, arrays: arrays, display: display)
    }
}

struct TrainKMeans: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "kmeans", abstract: "Train a k-means codebook (Lloyd).")

    @OptionGroup var training: TrainingOptions
    @Option(name: .customLong("init"), help: "Initialisation: random, kmeans++ (on a sample of max(64·K, 10,000) rows), kmeans|| (k-means‖: sampling passes on the workers), or a K×D .npy file of centres (default: kmeans|| from K = \(KMeansParallel.preferredFromK), else kmeans++).",
            transform: KMeansStart.init(parsing:))
    var initialization: KMeansStart?
    @Option(help: "Stop when the objective falls by less than this fraction (0: run every iteration).")
    var tolerance: Double = 1e-4
    @Option(help: "Output: the K×D float32 centres (.npy).") var out: String?

    func validate() throws { try training.validateOutputs(out: out) }

    func run() async throws {
        var arrays: [[UInt8]] = []
        let initialization = initialization ?? .preferred(k: training.k)
        if case .centres(let path) = initialization {
            arrays = [Frame.encode(try NpyFile.readFloat32(path: path).values)]
        }
        let job = TrainingJob(kind: .kmeans, corpus: training.absoluteCorpus, k: training.k, iterations: training.iterations,
                              seed: training.seed, tolerance: tolerance, shardRows: training.shardRows,
                              initialization: initialization.jobMethod)
        let display = training.output.display()
        let (outcome, reply) = try await training.run(job, arrays: arrays, display: display)
        let centres = try reply.array(0, as: Float.self, count: outcome.k * outcome.dimension)
        var wrote: [String] = []
        if let out {
            try NpyFile.write(path: out, rows: outcome.k, columns: outcome.dimension, values: centres)
            wrote.append(out)
        }
        if let name = training.name { wrote.append("model \"\(name)\" in the store") }
        display.finish("\(outcome.converged ? "converged" : "stopped") after \(outcome.iterations) iterations; "
                       + "wrote \(outcome.k)×\(outcome.dimension) centres to \(wrote.joined(separator: " and "))")
    }
}

struct TrainGMM: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "gmm", abstract: "Train a diagonal-covariance GMM (EM).")

    @OptionGroup var training: TrainingOptions
    @Option(name: .customLong("init"), help: "Initialisation: kmeans (k-means seeded by k-means++, then per-cluster moments), kmeans|| (the same, k-means seeded by k-means‖), or random (default: kmeans).",
            transform: { try .parse($0, among: [.kmeans, .kmeansParallel, .random]) })
    var initialization: TrainingJob.InitializationMethod = .kmeans
    @Option(help: "k-means iterations for --init kmeans.") var kmeansIterations: Int = 10
    @Option(help: "Initial means (K×D .npy); with --init-variances and --init-priors.") var initMeans: String?
    @Option(help: "Initial variances σ² (K×D .npy).") var initVariances: String?
    @Option(help: "Initial priors (K .npy).") var initPriors: String?
    @Option(help: "Stop when the log-likelihood rises by less than this fraction (0: run every iteration).")
    var tolerance: Double = 1e-6
    @Option(help: "Variance floor as a fraction of the data's largest per-dimension variance.")
    var varianceFloor: Double = 1e-4
    @Option(help: "Output prefix: writes PREFIX_means.npy, PREFIX_variances.npy, PREFIX_priors.npy.") var out: String?

    func validate() throws {
        try training.validateOutputs(out: out)
        let given = [initMeans, initVariances, initPriors].compactMap { $0 }.count
        guard given == 0 || given == 3 else {
            throw ValidationError("--init-means, --init-variances and --init-priors go together")
        }
        guard varianceFloor > 0 else { throw ValidationError("--variance-floor must be > 0") }
    }

    func run() async throws {
        var arrays: [[UInt8]] = []
        var start = initialization
        if let initMeans, let initVariances, let initPriors {
            let model = try ModelFiles.gaussianMixture(means: initMeans, variances: initVariances, priors: initPriors)
            arrays = model.frames
            start = .given
        }
        let job = TrainingJob(kind: .gmm, corpus: training.absoluteCorpus, k: training.k, iterations: training.iterations,
                              seed: training.seed, tolerance: tolerance, shardRows: training.shardRows, initialization: start,
                              kmeansIterations: kmeansIterations, varianceFloorRatio: varianceFloor)
        let display = training.output.display()
        let (outcome, reply) = try await training.run(job, arrays: arrays, display: display)
        let model = try GaussianMixtureModelFiles.model(from: reply, k: outcome.k, dimension: outcome.dimension)
        var wrote = try out.map { try ModelFiles.write(model, prefix: $0) } ?? []
        if let name = training.name { wrote.append("model \"\(name)\" in the store") }
        display.finish("\(outcome.converged ? "converged" : "stopped") after \(outcome.iterations) EM iterations "
                       + "(variance floor \(String(format: "%.4g", outcome.varianceFloor ?? 0))); wrote \(wrote.joined(separator: ", "))")
    }
}
