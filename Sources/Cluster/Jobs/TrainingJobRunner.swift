import ClusterProtocol
import Clustering
import Descriptors

/// Runs a `TrainingJob` with the engine's drivers over any backend: the same k-means and
/// EM loops as a local run, reporting every iteration.
public enum TrainingJobRunner {
    /// Checks a job against its corpus before any work: k, iterations, initialisation and
    /// the shapes of given initial models. Returns the decoded initialisation arrays.
    public static func validate(_ job: TrainingJob, corpus: CorpusReference, arrays: [[UInt8]]) throws -> Initialization {
        if job.kind == .pca { return try validatePCA(job, rows: corpus.rows, dimension: corpus.dimension) }
        guard job.k >= 1, job.k <= corpus.rows else {
            throw ClusterError(.invalidArgument, "k=\(job.k) but only \(corpus.rows) training rows in \(corpus.path)")
        }
        guard job.iterations >= 1 else { throw ClusterError(.invalidArgument, "iterations must be ≥ 1 (got \(job.iterations))") }
        guard job.shardRows >= 1 else { throw ClusterError(.invalidArgument, "shard rows must be ≥ 1 (got \(job.shardRows))") }
        guard job.tolerance >= 0, job.tolerance.isFinite else {
            throw ClusterError(.invalidArgument, "the tolerance must be finite and ≥ 0 (got \(job.tolerance))")
        }
        if let ratio = job.varianceFloorRatio, !(ratio > 0 && ratio.isFinite) {
            throw ClusterError(.invalidArgument, "the variance floor ratio must be finite and > 0 (got \(ratio))")
        }
        if let iterations = job.kmeansIterations, iterations < 1 {
            throw ClusterError(.invalidArgument, "k-means iterations must be ≥ 1 (got \(iterations))")
        }
        let message = WireMessage(header: WireHeader(.submit), arrays: arrays)
        let k = job.k, d = corpus.dimension
        func given<T>(_ make: () throws -> T) throws -> T {
            do {
                return try make()
            } catch let error as ClusterError where error.code == .malformed {
                throw ClusteringError(.dimensionMismatch,
                                      "the initial model does not fit k=\(k) and the corpus's dimension \(d): \(error)", underlying: error)
            }
        }
        switch (job.kind, job.initialization) {
        case (.kmeans, .kmeansPlusPlus): return .kmeans(.kmeansPlusPlus)
        case (.kmeans, .kmeansParallel): return .kmeans(.kmeansParallel)
        case (.kmeans, .random): return .kmeans(.random)
        case (.kmeans, .given):
            return .kmeans(.given(try given {
                try Codebook(k: k, dimension: d, centres: try message.array(0, as: Float.self, count: k * d))
            }))
        case (.gmm, .kmeans), (.gmm, .kmeansParallel): return .gmm(.kmeans(iterations: max(1, job.kmeansIterations ?? 10)))
        case (.gmm, .random): return .gmm(.random)
        case (.gmm, .given):
            return .gmm(.given(try given {
                try GaussianMixtureModel(k: k, dimension: d, means: try message.array(0, as: Float.self, count: k * d),
                                         variances: try message.array(1, as: Float.self, count: k * d),
                                         priors: try message.array(2, as: Float.self, count: k))
            }))
        case (.kmeans, .kmeans), (.gmm, .kmeansPlusPlus), (.kmeans, .none), (.gmm, .none), (.pca, _):
            throw ClusterError(.invalidArgument, "unknown \(job.kind.rawValue) initialisation \"\(job.initialization.rawValue)\"")
        }
    }

    /// A PCA job's components kept (`k`, D') against the rows' dimension D, and its shards.
    public static func validatePCA(_ job: TrainingJob, rows: Int, dimension: Int) throws -> Initialization {
        guard job.k >= 1, job.k <= dimension else {
            throw DescriptorError(.invalidArgument, "a PCA keeps 1…D components (D=\(dimension)); \(job.k) asked for")
        }
        guard rows >= 2 else { throw DescriptorError(.invalidArgument, "a PCA needs at least 2 rows (got \(rows))") }
        guard job.shardRows >= 1 else { throw DescriptorError(.invalidArgument, "shard rows must be ≥ 1 (got \(job.shardRows))") }
        guard job.pca == nil else { throw DescriptorError(.invalidArgument, "a PCA is not trained on projected rows") }
        if let power = job.power {
            guard job.set != nil else { throw DescriptorError(.invalidArgument, "a power law applies to a set's vectors only") }
            guard power.isFinite, power > 0 else { throw DescriptorError(.invalidArgument, "the power must be finite and > 0 (got \(power))") }
        }
        guard job.set == nil || job.transform == nil else {
            throw DescriptorError(.invalidArgument, "a set's vectors take no descriptor transform")
        }
        return .pca
    }

    /// A validated initialisation.
    public enum Initialization: Sendable {
        case kmeans(KMeansInitialization)
        case gmm(GaussianMixtureInitialization)
        /// A PCA job: one covariance pass, no initialisation.
        case pca
    }

    /// Where a job stands after an iteration, as the engine's drivers report it.
    public enum Checkpoint: Sendable, Equatable {
        case kmeans(KMeansCheckpoint)
        case gmm(GaussianMixtureCheckpoint)
        /// A PCA job's model, once computed: mean, components, eigenvalues concatenated.
        case pca([Float])
    }

    /// Trains and returns the outcome and the model's arrays (centres; or means, variances, priors).
    /// - Parameters:
    ///   - resumingFrom: the last checkpoint of an interrupted run of the same job.
    ///   - checkpoint: called after every iteration.
    ///   - projection: the PCA every row goes through (after the job's transform), for a job
    ///     with `pca`.
    public static func run(_ job: TrainingJob, id: UInt64, initialization: Initialization, backend: some StatisticsBackend,
                           projection: PCAProjection? = nil, resumingFrom resumePoint: Checkpoint? = nil,
                           checkpoint: @escaping (Checkpoint) async throws -> Void = { _ in },
                           record: @escaping (IterationRecord) -> Void) async throws -> (JobOutcome, [[UInt8]]) {
        if let transform = job.transform {
            var plain = job
            plain.transform = nil
            return try await run(plain, id: id, initialization: initialization, backend: TransformingBackend(backend, transform: transform),
                                 projection: projection, resumingFrom: resumePoint, checkpoint: checkpoint, record: record)
        }
        if let projection {
            return try await run(job, id: id, initialization: initialization, backend: ProjectingBackend(backend, projection: projection),
                                 resumingFrom: resumePoint, checkpoint: checkpoint, record: record)
        }
        let kmeansRecord: (KMeansIterationReport) -> Void = { report in
            record(IterationRecord(phase: .kmeans, iteration: report.iteration, valuePerRow: report.meanObjective,
                                   total: report.objective, rows: report.rows, seconds: report.seconds,
                                   repaired: report.emptyClustersRepaired, smallest: Double(report.smallestCluster),
                                   largest: Double(report.largestCluster), skippedRows: report.skippedRows,
                                   skippedDistances: report.skippedPairFraction(k: job.k)))
        }
        let seedingRecord: (KMeansParallel.RoundReport) -> Void = { report in
            record(IterationRecord(phase: .seeding, iteration: report.round, valuePerRow: report.cost / Double(max(report.rows, 1)),
                                   total: report.cost, rows: report.rows, seconds: report.seconds, repaired: 0,
                                   smallest: Double(report.candidates), largest: Double(report.candidates)))
        }
        switch initialization {
        case .pca:
            let started = ContinuousClock.now
            let projection = try PCAProjection(try await PrincipalComponents.train(on: backend, kept: job.k),
                                               whiten: job.whiten ?? false, power: job.set == nil ? nil : job.power ?? 0.5)
            let pca = projection.principalComponents
            let total = pca.eigenvalues.reduce(0.0) { $0 + Double($1) }
            // The record first: a stored checkpoint publishes the records before it.
            record(IterationRecord(phase: .pca, iteration: 0, valuePerRow: total, total: total, rows: backend.rows,
                                   seconds: (ContinuousClock.now - started).seconds, repaired: 0,
                                   smallest: Double(pca.eigenvalues.last!), largest: Double(pca.eigenvalues[0])))
            try await checkpoint(.pca(pca.mean + pca.components + pca.eigenvalues))
            let outcome = JobOutcome(job: id, kind: .pca, k: job.k, dimension: backend.dimension, iterations: 1, converged: true)
            return (outcome, projection.frames)
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
            case .gmm, .pca: throw ClusterError(.invalidArgument, "job \(id): only a k-means checkpoint can resume a k-means job")
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
            if job.initialization == .kmeansParallel { parameters.kmeansSeeding = .kmeansParallel }
            if let ratio = job.varianceFloorRatio { parameters.varianceFloorRatio = ratio }
            var resume: GaussianMixtureCheckpoint?
            switch resumePoint {
            case nil: break
            case .gmm(let saved): resume = saved
            case .kmeans, .pca: throw ClusterError(.invalidArgument, "job \(id): only a GMM checkpoint can resume a GMM job")
            }
            let result = try await GaussianMixture.train(on: backend, parameters: parameters, resumingFrom: resume,
                                                         checkpoint: { try await checkpoint(.gmm($0)) },
                                                         kmeansProgress: kmeansRecord, seedingProgress: seedingRecord) { report in
                record(IterationRecord(phase: .em, iteration: report.iteration, valuePerRow: report.meanLogLikelihood,
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
