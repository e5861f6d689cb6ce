import Descriptors

/// A training job as a client submits it (SUBMIT metadata). Initial models, when given,
/// follow as arrays: centres f32[K·D] for k-means; means, variances, priors for a GMM.
public struct TrainingJob: Codable, Sendable, Equatable {
    /// `pca`: principal components of the corpus (or of a stored set's vectors); `k` is D',
    /// the components kept.
    public enum Kind: String, Codable, Sendable { case kmeans, gmm, pca }

    /// How a job chooses its initial model, spelled as on the wire (`initialization`).
    public enum InitializationMethod: String, Codable, Sendable, CaseIterable {
        /// k-means: k-means++ on a sample of the corpus.
        case kmeansPlusPlus = "kmeans++"
        /// k-means: k-means‖, sampling passes over every row; GMM: its k-means seeded so.
        case kmeansParallel = "kmeans||"
        /// K rows drawn at random.
        case random
        /// GMM: k-means (seeded by k-means++), then each cluster's moments.
        case kmeans
        /// The initial model follows as arrays.
        case given
        /// PCA: no initial model.
        case none
    }

    public var kind: Kind
    /// The corpus path, as the coordinator and every worker see it.
    public var corpus: String
    public var k: Int
    public var iterations: Int
    public var seed: UInt64
    public var tolerance: Double
    public var shardRows: Int
    /// k-means: `kmeansPlusPlus`, `kmeansParallel`, `random` or `given`; GMM: `kmeans`,
    /// `kmeansParallel`, `random` or `given`.
    public var initialization: InitializationMethod
    /// GMM: k-means iterations of the "kmeans" initialisation.
    public var kmeansIterations: Int?
    /// GMM: the variance floor as a fraction of the data's largest per-dimension variance.
    public var varianceFloorRatio: Double?
    /// Store the trained model under this name (the coordinator needs a store).
    public var name: String?
    /// Overwrite a model of that name.
    public var replace: Bool?
    /// Transform every descriptor as it is read ("root-sift"), on the workers.
    public var transform: DescriptorTransform?
    /// k-means and GMM: the stored PCA model every descriptor is projected by (after the
    /// transform), on the workers.
    public var pca: String?
    /// With `pca`: the checksum of that PCA (`PCAReference`), which the coordinator sets when it
    /// accepts the job; the job fails if the PCA changes before it ends (a resumed job, say).
    public var pcaChecksum: String?
    /// PCA: divide each component by √(eigenvalue + ε) when applied.
    public var whiten: Bool?
    /// PCA of a stored set's vectors (`corpus` is then empty): vector whitening, computed
    /// by the coordinator from the set.
    public var set: String?
    /// PCA of a set: the power law applied to each vector first (default 0.5), then L2.
    public var power: Double?

    public init(kind: Kind, corpus: String, k: Int, iterations: Int, seed: UInt64, tolerance: Double, shardRows: Int,
                initialization: InitializationMethod, kmeansIterations: Int? = nil, varianceFloorRatio: Double? = nil,
                name: String? = nil, replace: Bool? = nil, transform: DescriptorTransform? = nil, pca: String? = nil,
                whiten: Bool? = nil, set: String? = nil, power: Double? = nil) {
        self.pca = pca
        self.whiten = whiten
        self.set = set
        self.power = power
        self.kind = kind
        self.corpus = corpus
        self.k = k
        self.iterations = iterations
        self.seed = seed
        self.tolerance = tolerance
        self.shardRows = shardRows
        self.initialization = initialization
        self.kmeansIterations = kmeansIterations
        self.varianceFloorRatio = varianceFloorRatio
        self.name = name
        self.replace = replace
        self.transform = transform
    }
}

/// ACCEPTED metadata.
public struct JobTicket: Codable, Sendable, Equatable {
    public var job: UInt64

    public init(job: UInt64) {
        self.job = job
    }
}

/// PROGRESS request metadata: the iterations already seen are not sent again.
public struct ProgressRequest: Codable, Sendable, Equatable {
    public var since: Int

    public init(since: Int) {
        self.since = since
    }
}

/// STATUS metadata (optional): which page of finished jobs to list after the running ones.
public struct StatusRequest: Codable, Sendable, Equatable {
    public static let defaultLimit = 20
    public static let maximumLimit = 1000
    /// Finished jobs to list, 0…`maximumLimit` (absent: `defaultLimit`).
    public var jobsLimit: Int?
    /// Only finished jobs with smaller ids (absent: from the newest).
    public var jobsBefore: UInt64?

    public init(jobsLimit: Int? = nil, jobsBefore: UInt64? = nil) {
        self.jobsLimit = jobsLimit
        self.jobsBefore = jobsBefore
    }
}

/// One iteration of a job, as PROGRESS-REPLY carries it.
public struct IterationRecord: Codable, Sendable, Equatable {
    /// What an iteration belongs to, spelled as on the wire.
    public enum Phase: String, Codable, Sendable {
        /// A k-means iteration (also of a GMM's k-means initialisation).
        case kmeans
        /// An EM iteration.
        case em
        /// A k-means‖ seeding step: `smallest` and `largest` are the candidates.
        case seeding
        /// A PCA's one record: `total` the sum of the eigenvalues kept, `smallest` and `largest`
        /// the last and first of them.
        case pca
    }

    public var phase: Phase
    public var iteration: Int
    /// k-means: objective per row; EM: log-likelihood per row.
    public var valuePerRow: Double
    /// k-means: the objective Σ‖x − c‖²; EM: the log-likelihood Σ log p(x).
    public var total: Double
    public var rows: Int
    public var seconds: Double
    public var repaired: Int
    /// k-means: smallest and largest cluster (rows); EM: smallest and largest prior.
    public var smallest: Double
    public var largest: Double
    /// k-means: rows whose distances the workers' bounds let them skip.
    public var skippedRows: Int? = nil
    /// k-means: the fraction of the rows × K distances the workers' bounds let them skip.
    public var skippedDistances: Double? = nil

    public init(phase: Phase, iteration: Int, valuePerRow: Double, total: Double, rows: Int, seconds: Double, repaired: Int,
                smallest: Double, largest: Double, skippedRows: Int? = nil, skippedDistances: Double? = nil) {
        self.phase = phase
        self.iteration = iteration
        self.valuePerRow = valuePerRow
        self.total = total
        self.rows = rows
        self.seconds = seconds
        self.repaired = repaired
        self.smallest = smallest
        self.largest = largest
        self.skippedRows = skippedRows
        self.skippedDistances = skippedDistances
    }
}

/// The state of a job.
public enum JobState: String, Codable, Sendable {
    case running, succeeded, failed, cancelled
}

/// PROGRESS-REPLY metadata.
public struct JobProgress: Codable, Sendable, Equatable {
    public var job: UInt64
    /// The job's kind, as STATUS lists it (`JobSummary.kind`); absent from older coordinators.
    public var kind: String?
    public var state: JobState
    /// Iterations from `since` on.
    public var iterations: [IterationRecord]
    /// Why the job failed, or what it waits for ("no workers alive").
    public var message: String?
    /// Encoding jobs: images encoded so far (this run and earlier ones) and in all.
    public var imagesDone: Int?
    public var imagesTotal: Int?
    /// The pass running now, if any.
    public var pass: PassProgress?
    /// Extraction jobs: descriptors extracted so far, and the images skipped so far, in order.
    public var descriptors: Int?
    public var skipped: [SkippedImageReport]?

    public init(job: UInt64, kind: String? = nil, state: JobState, iterations: [IterationRecord], message: String? = nil,
                imagesDone: Int? = nil, imagesTotal: Int? = nil, pass: PassProgress? = nil, descriptors: Int? = nil,
                skipped: [SkippedImageReport]? = nil) {
        self.kind = kind
        self.descriptors = descriptors
        self.skipped = skipped
        self.job = job
        self.state = state
        self.iterations = iterations
        self.message = message
        self.imagesDone = imagesDone
        self.imagesTotal = imagesTotal
        self.pass = pass
    }
}

/// How far a running pass is (PROGRESS-REPLY `pass`).
public struct PassProgress: Codable, Sendable, Equatable {
    /// The pass's number within its job.
    public var pass: Int
    /// Its computation: a `PassDescription.Kind` raw value. A string, because readers accept
    /// kinds added later (Protocols/cluster.md).
    public var kind: String
    public var shards: Int
    public var shardsDone: Int
    /// Rows of the corpus the pass reads (images, for an encoding pass) and of its shards done.
    public var rows: Int
    public var rowsDone: Int
    /// Since the pass started.
    public var seconds: Double

    public init(pass: Int, kind: String, shards: Int, shardsDone: Int, rows: Int, rowsDone: Int, seconds: Double) {
        self.pass = pass
        self.kind = kind
        self.shards = shards
        self.shardsDone = shardsDone
        self.rows = rows
        self.rowsDone = rowsDone
        self.seconds = seconds
    }
}

/// RESULT-REPLY metadata; the model's arrays follow (centres, or means, variances, priors).
public struct JobOutcome: Codable, Sendable, Equatable {
    public var job: UInt64
    public var kind: TrainingJob.Kind
    public var k: Int
    public var dimension: Int
    public var iterations: Int
    public var converged: Bool
    public var varianceFloor: Double?

    public init(job: UInt64, kind: TrainingJob.Kind, k: Int, dimension: Int, iterations: Int, converged: Bool,
                varianceFloor: Double? = nil) {
        self.job = job
        self.kind = kind
        self.k = k
        self.dimension = dimension
        self.iterations = iterations
        self.converged = converged
        self.varianceFloor = varianceFloor
    }
}

/// A job as STATUS lists it.
public struct JobSummary: Codable, Sendable, Equatable {
    public var job: UInt64
    /// "kmeans", "gmm", "pca", "vlad", "fisher", "extract" or "transform".
    public var kind: String
    /// The training corpus, or an encoding job's descriptor file.
    public var corpus: String
    public var state: JobState
    public var iterations: Int
    public var lastValuePerRow: Double?
    public var message: String?
    /// As in `JobProgress`: encoding and extraction jobs' images done and in all; transform
    /// jobs' vectors.
    public var imagesDone: Int?
    public var imagesTotal: Int?

    public init(job: UInt64, kind: String, corpus: String, state: JobState, iterations: Int, lastValuePerRow: Double? = nil,
                message: String? = nil, imagesDone: Int? = nil, imagesTotal: Int? = nil) {
        self.imagesDone = imagesDone
        self.imagesTotal = imagesTotal
        self.job = job
        self.kind = kind
        self.corpus = corpus
        self.state = state
        self.iterations = iterations
        self.lastValuePerRow = lastValuePerRow
        self.message = message
    }
}
