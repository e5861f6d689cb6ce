import Clustering
import Descriptors
import ZeroMQ

/// Runs a `TrainingJob` with the engine's drivers over any backend: the same k-means and
/// EM loops as a local run, reporting every iteration.
public enum TrainingJobRunner {
    /// Checks a job against its corpus before any work: k, iterations, initialisation and
    /// the shapes of given initial models. Returns the decoded initialisation arrays.
    public static func validate(_ job: TrainingJob, corpus: CorpusReference, arrays: [[UInt8]]) throws -> Initialization {
        guard job.k >= 1, job.k <= corpus.rows else {
            throw DescriptorError(.invalidArgument, "k=\(job.k) but only \(corpus.rows) training rows in \(corpus.path)")
        }
        guard job.iterations >= 1 else { throw DescriptorError(.invalidArgument, "iterations must be ≥ 1 (got \(job.iterations))") }
        guard job.shardRows >= 1 else { throw DescriptorError(.invalidArgument, "shard rows must be ≥ 1 (got \(job.shardRows))") }
        guard job.tolerance >= 0 else { throw DescriptorError(.invalidArgument, "the tolerance must be ≥ 0 (got \(job.tolerance))") }
        let message = WireMessage(header: WireHeader(.submit), arrays: arrays)
        let k = job.k, d = corpus.dimension
        func given<T>(_ make: () throws -> T) throws -> T {
            do {
                return try make()
            } catch let error as WireError {
                throw DescriptorError(.dimensionMismatch,
                                      "the initial model does not fit k=\(k) and the corpus's dimension \(d): \(error)")
            }
        }
        switch (job.kind, job.initialization) {
        case (.kmeans, "kmeans++"): return .kmeans(.kmeansPlusPlus)
        case (.kmeans, "kmeans||"): return .kmeans(.kmeansParallel)
        case (.kmeans, "random"): return .kmeans(.random)
        case (.kmeans, "given"):
            return .kmeans(.given(try given {
                try Codebook(k: k, dimension: d, centres: try message.array(0, as: Float.self, count: k * d))
            }))
        case (.gmm, "kmeans"), (.gmm, "kmeans||"): return .gmm(.kmeans(iterations: max(1, job.kmeansIterations ?? 10)))
        case (.gmm, "random"): return .gmm(.random)
        case (.gmm, "given"):
            return .gmm(.given(try given {
                try GaussianMixtureModel(k: k, dimension: d, means: try message.array(0, as: Float.self, count: k * d),
                                         variances: try message.array(1, as: Float.self, count: k * d),
                                         priors: try message.array(2, as: Float.self, count: k))
            }))
        default:
            throw DescriptorError(.invalidArgument, "unknown \(job.kind.rawValue) initialisation \"\(job.initialization)\"")
        }
    }

    /// A validated initialisation.
    public enum Initialization: Sendable {
        case kmeans(KMeansInitialization)
        case gmm(GaussianMixtureInitialization)
    }

    /// Where a job stands after an iteration, as the engine's drivers report it.
    public enum Checkpoint: Sendable, Equatable {
        case kmeans(KMeansCheckpoint)
        case gmm(GaussianMixtureCheckpoint)
    }

    /// Trains and returns the outcome and the model's arrays (centres; or means, variances, priors).
    /// - Parameters:
    ///   - resumingFrom: the last checkpoint of an interrupted run of the same job.
    ///   - checkpoint: called after every iteration.
    public static func run(_ job: TrainingJob, id: UInt64, initialization: Initialization, backend: some StatisticsBackend,
                           resumingFrom resumePoint: Checkpoint? = nil,
                           checkpoint: @escaping (Checkpoint) async throws -> Void = { _ in },
                           record: @escaping (IterationRecord) -> Void) async throws -> (JobOutcome, [[UInt8]]) {
        if let transform = job.transform {
            var plain = job
            plain.transform = nil
            return try await run(plain, id: id, initialization: initialization, backend: TransformingBackend(backend, transform: transform),
                                 resumingFrom: resumePoint, checkpoint: checkpoint, record: record)
        }
        let kmeansRecord: (KMeansIterationReport) -> Void = { report in
            record(IterationRecord(phase: "kmeans", iteration: report.iteration, valuePerRow: report.meanObjective,
                                   total: report.objective, rows: report.rows, seconds: report.seconds,
                                   repaired: report.emptyClustersRepaired, smallest: Double(report.smallestCluster),
                                   largest: Double(report.largestCluster), skippedRows: report.skippedRows))
        }
        let seedingRecord: (KMeansParallel.RoundReport) -> Void = { report in
            record(IterationRecord(phase: "seeding", iteration: report.round, valuePerRow: report.cost / Double(max(report.rows, 1)),
                                   total: report.cost, rows: report.rows, seconds: report.seconds, repaired: 0,
                                   smallest: Double(report.candidates), largest: Double(report.candidates)))
        }
        switch initialization {
        case .kmeans(let start):
            var parameters = KMeansParameters(k: job.k)
            parameters.iterations = job.iterations
            parameters.seed = job.seed
            parameters.tolerance = job.tolerance
            parameters.initialization = start
            var resume: KMeansCheckpoint?
            switch resumePoint {
            case nil: break
            case .kmeans(let saved): resume = saved
            case .gmm: throw DescriptorError(.invalidArgument, "job \(id): a GMM checkpoint cannot resume a k-means job")
            }
            let result = try await KMeans.train(on: backend, parameters: parameters, resumingFrom: resume,
                                                checkpoint: { try await checkpoint(.kmeans($0)) }, progress: kmeansRecord,
                                                seedingProgress: seedingRecord)
            let outcome = JobOutcome(job: id, kind: .kmeans, k: job.k, dimension: backend.dimension,
                                     iterations: result.iterations.count, converged: result.converged)
            return (outcome, [Frame.encode(result.codebook.centres)])
        case .gmm(let start):
            var parameters = GaussianMixtureParameters(k: job.k)
            parameters.iterations = job.iterations
            parameters.seed = job.seed
            parameters.tolerance = job.tolerance
            parameters.initialization = start
            if job.initialization == "kmeans||" { parameters.kmeansSeeding = .kmeansParallel }
            if let ratio = job.varianceFloorRatio { parameters.varianceFloorRatio = ratio }
            var resume: GaussianMixtureCheckpoint?
            switch resumePoint {
            case nil: break
            case .gmm(let saved): resume = saved
            case .kmeans: throw DescriptorError(.invalidArgument, "job \(id): a k-means checkpoint cannot resume a GMM job")
            }
            let result = try await GaussianMixture.train(on: backend, parameters: parameters, resumingFrom: resume,
                                                         checkpoint: { try await checkpoint(.gmm($0)) },
                                                         kmeansProgress: kmeansRecord, seedingProgress: seedingRecord) { report in
                record(IterationRecord(phase: "em", iteration: report.iteration, valuePerRow: report.meanLogLikelihood,
                                       total: report.logLikelihood, rows: report.rows, seconds: report.seconds,
                                       repaired: report.emptyComponentsRepaired, smallest: report.smallestPrior,
                                       largest: report.largestPrior))
            }
            let model = result.model
            let outcome = JobOutcome(job: id, kind: .gmm, k: job.k, dimension: backend.dimension,
                                     iterations: result.iterations.count, converged: result.converged,
                                     varianceFloor: result.varianceFloor)
            return (outcome, model.frames)
        }
    }
}
