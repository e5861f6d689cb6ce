import ArgumentParser
import Clustering
import Descriptors
import Foundation

struct TrainCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "train", abstract: "Train a codebook on a corpus.",
        subcommands: [TrainKMeans.self, TrainGMM.self])
}

/// Options shared by both trainers.
struct TrainingOptions: ParsableArguments {
    @Option(help: "Training corpus (.fvecs, .bvecs, .ivecs or .npy).") var corpus: String
    @Option(help: "Number of clusters / components.") var k: Int
    @Option(help: "Iterations at most.") var iterations: Int = 25
    @Option(help: "Random seed.") var seed: UInt64 = 0
    @Option(help: "Rows per shard: the unit of work; results depend on it, never on threads.")
    var shardRows: Int = ShardPlan.defaultShardRows
    @OptionGroup var compute: ComputeOptions

    func validate() throws {
        guard k >= 1 else { throw ValidationError("--k must be at least 1") }
        guard iterations >= 1 else { throw ValidationError("--iterations must be at least 1") }
        guard shardRows >= 1 else { throw ValidationError("--shard-rows must be at least 1") }
    }

    func backend() throws -> LocalBackend {
        let matrix = try DescriptorMatrix.open(path: corpus)
        print("corpus \(corpus): \(matrix.rows)×\(matrix.dimension) \(matrix.elementType.rawValue), "
              + "\(ShardPlan(totalRows: matrix.rows, shardRows: shardRows).count) shards, \(compute.threads) threads")
        return LocalBackend(corpus: matrix, shardRows: shardRows, threads: compute.threads)
    }
}

struct TrainKMeans: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "kmeans", abstract: "Train a k-means codebook (Lloyd).")

    @OptionGroup var training: TrainingOptions
    @Option(help: "Initialisation: random, kmeans++, or a K×D .npy file of centres.") var initialization: String = "kmeans++"
    @Option(help: "Stop when the objective falls by less than this fraction (0: run every iteration).")
    var tolerance: Double = 1e-4
    @Option(help: "Output: the K×D float32 centres (.npy).") var out: String

    static func initialization(_ name: String, k: Int) throws -> KMeansInitialization {
        switch name {
        case "random": return .random
        case "kmeans++": return .kmeansPlusPlus
        default:
            let array = try NpyFile.readFloat32(path: name)
            return .given(try Codebook(k: array.rows, dimension: array.columns, centres: array.values))
        }
    }

    func run() async throws {
        let backend = try training.backend()
        var parameters = KMeansParameters(k: training.k)
        parameters.iterations = training.iterations
        parameters.seed = training.seed
        parameters.tolerance = tolerance
        parameters.initialization = try Self.initialization(initialization, k: training.k)
        let result = try await KMeans.train(on: backend, parameters: parameters, progress: Report.kmeans)
        try NpyFile.write(path: out, rows: result.codebook.k, columns: result.codebook.dimension,
                          values: result.codebook.centres)
        print("\(result.converged ? "converged" : "stopped") after \(result.iterations.count) iterations; "
              + "wrote \(result.codebook.k)×\(result.codebook.dimension) centres to \(out)")
    }
}

struct TrainGMM: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "gmm", abstract: "Train a diagonal-covariance GMM (EM).")

    @OptionGroup var training: TrainingOptions
    @Option(help: "Initialisation: kmeans (k-means, then per-cluster moments) or random.") var initialization: String = "kmeans"
    @Option(help: "k-means iterations for --init kmeans.") var kmeansIterations: Int = 10
    @Option(help: "Initial means (K×D .npy); with --init-variances and --init-priors.") var initMeans: String?
    @Option(help: "Initial variances σ² (K×D .npy).") var initVariances: String?
    @Option(help: "Initial priors (K .npy).") var initPriors: String?
    @Option(help: "Stop when the log-likelihood rises by less than this fraction (0: run every iteration).")
    var tolerance: Double = 1e-6
    @Option(help: "Variance floor as a fraction of the data's largest per-dimension variance.")
    var varianceFloor: Double = 1e-4
    @Option(help: "Output prefix: writes PREFIX_means.npy, PREFIX_variances.npy, PREFIX_priors.npy.") var out: String

    func validate() throws {
        let given = [initMeans, initVariances, initPriors].compactMap { $0 }.count
        guard given == 0 || given == 3 else {
            throw ValidationError("--init-means, --init-variances and --init-priors go together")
        }
        guard ["kmeans", "random"].contains(initialization) else {
            throw ValidationError("--initialization must be kmeans or random")
        }
    }

    func run() async throws {
        let backend = try training.backend()
        var parameters = GaussianMixtureParameters(k: training.k)
        parameters.iterations = training.iterations
        parameters.seed = training.seed
        parameters.tolerance = tolerance
        parameters.varianceFloorRatio = varianceFloor
        if let initMeans, let initVariances, let initPriors {
            parameters.initialization = .given(try ModelFiles.gaussianMixture(means: initMeans, variances: initVariances,
                                                                             priors: initPriors))
        } else {
            parameters.initialization = initialization == "random" ? .random : .kmeans(iterations: kmeansIterations)
        }
        let result = try await GaussianMixture.train(on: backend, parameters: parameters,
                                                     kmeansProgress: Report.kmeans, progress: Report.gmm)
        let paths = try ModelFiles.write(result.model, prefix: out)
        print("\(result.converged ? "converged" : "stopped") after \(result.iterations.count) EM iterations "
              + "(variance floor \(String(format: "%.4g", result.varianceFloor))); wrote \(paths.joined(separator: ", "))")
    }
}

/// One progress line per iteration.
enum Report {
    static func kmeans(_ report: KMeansIterationReport) {
        print(String(format: "k-means %3d  objective/row %.6g  %.3f s  clusters %d..%d  empty repaired %d",
                     report.iteration, report.meanObjective, report.seconds, report.smallestCluster,
                     report.largestCluster, report.emptyClustersRepaired))
    }

    static func gmm(_ report: GaussianMixtureIterationReport) {
        print(String(format: "EM %3d  log-likelihood/row %.6f  %.3f s  priors %.3g..%.3g  empty repaired %d",
                     report.iteration, report.meanLogLikelihood, report.seconds, report.smallestPrior,
                     report.largestPrior, report.emptyComponentsRepaired))
    }
}
