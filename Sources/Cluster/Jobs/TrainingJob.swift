import Descriptors

/// A training job as a client submits it (SUBMIT metadata). Initial models, when given,
/// follow as arrays: centres f32[K·D] for k-means; means, variances, priors for a GMM.
public struct TrainingJob: Codable, Sendable, Equatable {
    public enum Kind: String, Codable, Sendable { case kmeans, gmm }

    public var kind: Kind
    /// The corpus path, as the coordinator and every worker see it.
    public var corpus: String
    public var k: Int
    public var iterations: Int
    public var seed: UInt64
    public var tolerance: Double
    public var shardRows: Int
    /// k-means: "kmeans++", "kmeans||", "random" or "given"; GMM: "kmeans", "kmeans||", "random" or "given".
    public var initialization: String
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

    public init(kind: Kind, corpus: String, k: Int, iterations: Int, seed: UInt64, tolerance: Double, shardRows: Int,
                initialization: String, kmeansIterations: Int? = nil, varianceFloorRatio: Double? = nil,
                name: String? = nil, replace: Bool? = nil, transform: DescriptorTransform? = nil) {
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
}

/// PROGRESS request metadata: the iterations already seen are not sent again.
public struct ProgressRequest: Codable, Sendable, Equatable {
    public var since: Int
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
    /// "kmeans", "em" or "seeding" (a k-means‖ step: `smallest` and `largest` are the candidates).
    public var phase: String
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
}

/// The state of a job.
public enum JobState: String, Codable, Sendable {
    case running, succeeded, failed, cancelled
}

/// PROGRESS-REPLY metadata.
public struct JobProgress: Codable, Sendable, Equatable {
    public var job: UInt64
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
}

/// How far a running pass is (PROGRESS-REPLY `pass`).
public struct PassProgress: Codable, Sendable, Equatable {
    /// The pass's number within its job.
    public var pass: Int
    /// Its computation: "kmeans-assignment", "gmm-expectation", "moments", "sample" (the
    /// last two seed a job), "encode-vlad" or "encode-fisher".
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
}

/// A job as STATUS lists it.
public struct JobSummary: Codable, Sendable, Equatable {
    public var job: UInt64
    /// "kmeans", "gmm", "vlad" or "fisher".
    public var kind: String
    /// The training corpus, or an encoding job's descriptor file.
    public var corpus: String
    public var state: JobState
    public var iterations: Int
    public var lastValuePerRow: Double?
    public var message: String?
}
