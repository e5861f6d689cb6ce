import Clustering
import Descriptors
import Features
import Search

/// What a pass computes, as its task metadata says (`computation` in a TASK message).
public struct PassDescription: Codable, Sendable, Equatable {
    public enum Kind: String, Codable, Sendable {
        /// k-means assignment; arrays: centres f32[K·D].
        case kmeansAssignment = "kmeans-assignment"
        /// EM expectation; arrays: means f32[K·D], variances f32[K·D], priors f32[K].
        case gaussianExpectation = "gmm-expectation"
        /// Per-dimension moments; no arrays.
        case moments
        /// Seeded row sample; no arrays.
        case sample
        /// VLAD of the task's images; arrays: centres f32[K·D].
        case encodeVLAD = "encode-vlad"
        /// Fisher vectors of the task's images; arrays: means, variances, priors.
        case encodeFisher = "encode-fisher"
        /// Sum and sum of outer products of the rows (PCA); no arrays.
        case covariance
        /// k-means‖ sampling round; arrays: candidates f32[K·D] (`k` is the candidate count).
        case kmeansParallelRound = "kmeans-parallel-round"
        /// SIFT descriptors of the task's image files (`extraction`); no arrays, no corpus.
        case extract
        /// Exact search of a partition of a stored set; arrays: queries f32[queries·D].
        case search
    }

    public var kind: Kind
    public var dimension: Int
    public var k: Int?
    public var withSquares: Bool?
    public var sampleSize: Int?
    public var totalRows: Int?
    public var seed: UInt64?
    /// Encode passes: VLFeat's flag values of the encoding.
    public var flags: Int?
    /// Applied to every row as the worker reads it, before the computation ("root-sift").
    public var transform: DescriptorTransform?
    /// k-means‖ round: the round number (1…), part of each row's random stream.
    public var round: Int?
    /// k-means‖ round: ℓ, rows sampled per round in expectation.
    public var oversampling: Double?
    /// k-means‖ round: the candidates the previous round measured (the first ones; absent: 0).
    public var measured: Int?
    /// k-means‖ round: the fraction of rows the rounds run on, in (0, 1] (absent: 1).
    public var sampling: Double?
    /// k-means‖ round: the weighting pass, which counts the rows nearest each candidate.
    public var weighs: Bool?
    /// k-means‖ round: the pass of the same job whose candidates (the first `measured`) the
    /// candidates frame extends; it then holds only the rest (`ModelExtension`). Absent: all.
    public var extendsPass: UInt32?
    /// A PCA applied to every row (after `transform`) before the computation; `dimension`
    /// is then its output D'.
    public var projection: ProjectionDescription?
    /// Encode passes: a PCA applied to every encoded vector (vector whitening).
    public var whitening: ProjectionDescription?
    /// Extract passes: what to compute.
    public var extraction: ExtractionParameters?
    /// Extract passes: the most bytes of descriptors one RESULT may carry.
    public var resultBytes: Int?
    /// Search: the neighbours kept per query, and the number of queries.
    public var top: Int?
    public var queries: Int?

    public init(kind: Kind, dimension: Int, k: Int? = nil, withSquares: Bool? = nil, sampleSize: Int? = nil,
                totalRows: Int? = nil, seed: UInt64? = nil, flags: Int? = nil, transform: DescriptorTransform? = nil,
                round: Int? = nil, oversampling: Double? = nil, measured: Int? = nil, sampling: Double? = nil,
                weighs: Bool? = nil, projection: ProjectionDescription? = nil, whitening: ProjectionDescription? = nil,
                extraction: ExtractionParameters? = nil, resultBytes: Int? = nil, top: Int? = nil, queries: Int? = nil) {
        self.extraction = extraction
        self.resultBytes = resultBytes
        self.kind = kind
        self.dimension = dimension
        self.k = k
        self.withSquares = withSquares
        self.sampleSize = sampleSize
        self.totalRows = totalRows
        self.seed = seed
        self.flags = flags
        self.transform = transform
        self.round = round
        self.oversampling = oversampling
        self.measured = measured
        self.sampling = sampling
        self.weighs = weighs
        self.projection = projection
        self.whitening = whitening
        self.top = top
        self.queries = queries
    }
}

/// A shard computation that can travel to workers: a description, model arrays, and a way
/// back from them.
public protocol WireComputation: ShardComputation where Statistics: WireStatistics {
    var description: PassDescription { get }
    var modelArrays: [[UInt8]] { get }
    /// The computation for one task of the pass (most passes are the same for every task).
    func forTask(_ assignment: TaskAssignment) -> Self
}

extension WireComputation {
    public func forTask(_ assignment: TaskAssignment) -> Self { self }
}

/// Shard statistics that can travel back: metadata (`StatisticsShape`) and arrays, decoded
/// with every length checked against the shape.
public protocol WireStatistics: SufficientStatistics {
    var shape: StatisticsShape { get }
    var arrays: [[UInt8]] { get }
    init(shape: StatisticsShape, message: WireMessage) throws
}

/// Shard statistics the coordinator merges into a model. A worker's numbers are its word:
/// before they are merged they are checked against the task they answer, and statistics that
/// cannot be right (not finite, counts that do not add up to the shard's rows, …) are rejected.
/// (Wrong but plausible sums from a registered worker cannot be told from right ones.)
public protocol CheckedStatistics: WireStatistics {
    /// Throws `ClusterError.malformed`, naming the first thing wrong, unless these statistics
    /// (decoded from `shape`) can be those of `pass` over `rows`, the shard's rows of the corpus.
    func check(_ shape: StatisticsShape, against pass: PassDescription, rows: Range<Int>) throws
}

extension CheckedStatistics {
    /// A RESULT for shard rows `rows` of `pass`, decoded and checked (see `check`), with the
    /// seconds the worker says it computed (0 if it says nothing sensible).
    public static func decode(_ message: WireMessage, pass: PassDescription,
                              rows: Range<Int>) throws -> (statistics: Self, computeSeconds: Double) {
        let shape = try message.decode(StatisticsShape.self)
        // Statistics of another shape would trap in `merge`.
        guard shape.dimension == pass.dimension, pass.k == nil || shape.k == pass.k else {
            throw ClusterError.malformed("statistics are k=\(shape.k.map(String.init) ?? "-") D=\(shape.dimension) "
                                      + "but the pass is k=\(pass.k.map(String.init) ?? "-") D=\(pass.dimension)")
        }
        let statistics = try Self(shape: shape, message: message)
        try statistics.check(shape, against: pass, rows: rows)
        let seconds = shape.computeSeconds ?? 0
        return (statistics, seconds.isFinite && seconds > 0 ? seconds : 0)
    }
}

/// The checks `CheckedStatistics` share.
enum StatisticsCheck {
    static func rows(_ claimed: Int, _ shard: Range<Int>) throws {
        guard claimed == shard.count else {
            throw ClusterError.malformed("statistics cover \(claimed) rows but the shard has \(shard.count)")
        }
    }

    /// - Parameter index: the index a value is named by, from its position (a sparse form
    ///   names the dense index).
    static func finite(_ values: [Double], _ name: String, index: (Int) -> Int = { $0 }) throws {
        if let bad = values.firstIndex(where: { !$0.isFinite }) {
            throw ClusterError.malformed("\(name)[\(index(bad))] is \(values[bad])")
        }
    }

    /// Finite and ≥ 0 (sums of squares, masses, distances).
    static func nonNegative(_ values: [Double], _ name: String, index: (Int) -> Int = { $0 }) throws {
        if let bad = values.firstIndex(where: { !($0.isFinite && $0 >= 0) }) {
            throw ClusterError.malformed("\(name)[\(index(bad))] is \(values[bad]), not a finite value ≥ 0")
        }
    }
}

/// The metadata of a RESULT message.
public struct StatisticsShape: Codable, Sendable, Equatable {
    public var rows: Int
    public var dimension: Int
    public var k: Int?
    public var withSquares: Bool?
    public var samples: Int?
    /// Encode passes: the image keys of the vectors, in order.
    public var keys: [String]?
    /// Seconds the worker spent computing the shard (reported, not merged).
    public var computeSeconds: Double?
    /// k-means: rows whose distances the worker's bounds let it skip (reported, 0 ≤ it ≤ rows).
    public var skippedRows: Int?
    /// k-means: row × centre distances the worker's bounds let it skip (reported, 0 ≤ it ≤ rows·k).
    public var skippedPairs: Int?
    /// Extract passes: why each image that could not be read was not, in order.
    public var errors: [String]?
    /// k-means: present when the arrays list only the clusters with rows (the sparse form),
    /// and then how many they list.
    public var clusters: Int?
    /// k-means‖ round: the shard's rows in the rounds' sample.
    public var sampledRows: Int?

    public init(rows: Int, dimension: Int, k: Int? = nil, withSquares: Bool? = nil, samples: Int? = nil,
                keys: [String]? = nil, computeSeconds: Double? = nil, skippedRows: Int? = nil, skippedPairs: Int? = nil,
                errors: [String]? = nil, clusters: Int? = nil, sampledRows: Int? = nil) {
        self.errors = errors
        self.rows = rows
        self.dimension = dimension
        self.k = k
        self.withSquares = withSquares
        self.samples = samples
        self.keys = keys
        self.computeSeconds = computeSeconds
        self.skippedRows = skippedRows
        self.skippedPairs = skippedPairs
        self.clusters = clusters
        self.sampledRows = sampledRows
    }
}

/// Decodes a pass description and its arrays into the computation a worker runs.
public enum PassDecoder {
    public static func computation(_ description: PassDescription, arrays message: WireMessage) throws -> any WireComputation {
        let d = description.dimension
        guard d >= 1 else { throw ClusterError.malformed("pass dimension \(d)") }
        let first = description.kind.modelArrayCount
        let projection = try description.projection?.decode(arrays: message, first: first)
        guard projection == nil || projection?.outputDimension == d else { throw ClusterError.malformed("the projection's output is not the pass's dimension \(d)") }
        let whitening = try description.whitening?.decode(arrays: message, first: first + (projection == nil ? 0 : 3))
        guard whitening == nil || description.kind == .encodeVLAD || description.kind == .encodeFisher else {
            throw ClusterError.malformed("only an encode pass whitens its vectors")
        }
        var computation = try plainComputation(description, arrays: message, projection: projection, whitening: whitening)
        // An encode pass projects each image's rows itself (its rows are the whole file).
        if let projection, description.kind != .encodeVLAD, description.kind != .encodeFisher {
            computation = mapped(computation, projection)
        }
        guard let transform = description.transform else { return computation }
        return mapped(computation, transform)
    }

    private static func mapped<C: WireComputation>(_ computation: C, _ mapping: some WireRowMapping) -> any WireComputation {
        MappedComputation(computation, mapping: mapping)
    }

    /// The computation of `description`, without its transform (an encode pass with its
    /// projection and whitening).
    private static func plainComputation(_ description: PassDescription, arrays message: WireMessage,
                                         projection: PCAProjection?, whitening: PCAProjection?) throws -> any WireComputation {
        let d = description.dimension
        guard d >= 1 else { throw ClusterError.malformed("pass dimension \(d)") }
        do {
            switch description.kind {
            case .kmeansAssignment:
                let k = try positive(description.k, "k")
                let codebook = try Codebook(k: k, dimension: d, centres: try message.array(0, as: Float.self, count: try product(k, d)))
                return KMeansAssignmentPass(codebook: codebook, withSquares: description.withSquares ?? false)
            case .gaussianExpectation:
                let k = try positive(description.k, "k"), kd = try product(k, d)
                let model = try GaussianMixtureModel(k: k, dimension: d,
                                                     means: try message.array(0, as: Float.self, count: kd),
                                                     variances: try message.array(1, as: Float.self, count: kd),
                                                     priors: try message.array(2, as: Float.self, count: k))
                return try GaussianMixtureExpectationPass(model: model)
            case .moments:
                return MomentPass(dimension: d)
            case .covariance:
                return CovariancePass(dimension: d)
            case .sample:
                let size = try positive(description.sampleSize, "sampleSize")
                let total = try positive(description.totalRows, "totalRows")
                return RowSamplePass(sampleSize: size, totalRows: total, seed: description.seed ?? 0)
            case .encodeVLAD:
                let k = try positive(description.k, "k")
                let codebook = try Codebook(k: k, dimension: d, centres: try message.array(0, as: Float.self, count: try product(k, d)))
                return try EncodePass(encoding: .vlad, flags: description.flags ?? 0, codebook: codebook, projection: projection,
                                      whitening: whitening)
            case .encodeFisher:
                let k = try positive(description.k, "k"), kd = try product(k, d)
                let model = try GaussianMixtureModel(k: k, dimension: d,
                                                     means: try message.array(0, as: Float.self, count: kd),
                                                     variances: try message.array(1, as: Float.self, count: kd),
                                                     priors: try message.array(2, as: Float.self, count: k))
                return try EncodePass(encoding: .fisher, flags: description.flags ?? 0, mixture: model, projection: projection,
                                      whitening: whitening)
            case .kmeansParallelRound:
                let k = try positive(description.k, "k")
                let codebook = try Codebook(k: k, dimension: d, centres: try message.array(0, as: Float.self, count: try product(k, d)))
                let measured = description.measured ?? 0, sampling = description.sampling ?? 1
                guard measured >= 0, measured <= k else { throw ClusterError.malformed("pass measured \(measured) is outside 0…\(k)") }
                guard sampling > 0, sampling <= 1 else { throw ClusterError.malformed("pass sampling \(sampling) is outside (0, 1]") }
                return try KMeansParallelRoundPass(candidates: codebook, measured: measured, oversampling: try oversampling(description),
                                                   seed: description.seed ?? 0, round: try positive(description.round, "round"),
                                                   sampling: sampling, weighs: description.weighs ?? false)
            case .extract:
                guard let parameters = description.extraction, description.transform == nil, projection == nil,
                      d == FeatureExtractor.dimension else {
                    throw ClusterError.malformed("an extract pass needs extraction parameters, dimension \(FeatureExtractor.dimension), "
                                                 + "and no transform or projection")
                }
                return try ExtractPass(parameters: parameters, maximumResultBytes: try positive(description.resultBytes, "resultBytes"))
            case .search:
                return try SearchPass(description, arrays: message)
            }
        } catch let error as ClusteringError {
            throw ClusterError.malformed("\(description.kind.rawValue) model: \(error)")
        } catch let error as FeatureError {
            throw ClusterError.malformed("extraction parameters: \(error)")
        }
    }

    static func positive(_ value: Int?, _ name: String) throws -> Int {
        guard let value, value >= 1 else { throw ClusterError.malformed("pass needs \(name) ≥ 1") }
        return value
    }

    /// A k-means‖ pass's ℓ: finite and > 0.
    static func oversampling(_ description: PassDescription) throws -> Double {
        guard let value = description.oversampling, value > 0, value.isFinite else {
            throw ClusterError.malformed("pass needs a finite oversampling > 0")
        }
        return value
    }

    /// `a`·`b` for sizes from the wire: non-negative, without overflow.
    public static func product(_ a: Int, _ b: Int) throws -> Int {
        let (value, overflow) = a.multipliedReportingOverflow(by: b)
        guard a >= 0, b >= 0, !overflow else { throw ClusterError.malformed("array size \(a)×\(b) is out of range") }
        return value
    }
}

/// A row mapping workers apply to every row of a pass: it is named in the pass description,
/// and its arrays (if any) follow the computation's.
public protocol WireRowMapping: RowMapping {
    /// Names the mapping in `description`, the description of the computation on mapped rows.
    func describe(in description: inout PassDescription)
    /// Its array frames, after the computation's.
    var frames: [[UInt8]] { get }
}

extension MappedComputation: WireComputation where Base: WireComputation, Mapping: WireRowMapping {
    public var description: PassDescription {
        var description = base.description
        mapping.describe(in: &description)
        return description
    }
    public var modelArrays: [[UInt8]] { base.modelArrays + mapping.frames }
    public func forTask(_ assignment: TaskAssignment) -> Self { Self(base.forTask(assignment), mapping: mapping) }
}

extension DescriptorTransform: WireRowMapping {
    public func describe(in description: inout PassDescription) { description.transform = self }
    public var frames: [[UInt8]] { [] }
}

extension KMeansAssignmentPass: WireComputation {
    public var description: PassDescription {
        PassDescription(kind: .kmeansAssignment, dimension: search.codebook.dimension, k: search.codebook.k,
                        withSquares: withSquares)
    }
    public var modelArrays: [[UInt8]] { [Frame.encode(search.codebook.centres)] }
}

extension GaussianMixtureExpectationPass: WireComputation {
    public var description: PassDescription {
        PassDescription(kind: .gaussianExpectation, dimension: posteriors.model.dimension, k: posteriors.model.k)
    }
    public var modelArrays: [[UInt8]] { posteriors.model.frames }
}

extension MomentPass: WireComputation {
    public var description: PassDescription { PassDescription(kind: .moments, dimension: dimension) }
    public var modelArrays: [[UInt8]] { [] }
}

extension CovariancePass: WireComputation {
    public var description: PassDescription { PassDescription(kind: .covariance, dimension: dimension) }
    public var modelArrays: [[UInt8]] { [] }
}

extension RowSamplePass: WireComputation {
    public var description: PassDescription {
        // The sample's dimension is the corpus's: the backend fills it in.
        PassDescription(kind: .sample, dimension: 0, sampleSize: sampleSize, totalRows: totalRows, seed: seed)
    }
    public var modelArrays: [[UInt8]] { [] }
}

extension KMeansStatistics: CheckedStatistics {
    public var shape: StatisticsShape { encoded(sparse: sparseIsSmaller).shape }
    public var arrays: [[UInt8]] { encoded(sparse: sparseIsSmaller).arrays }

    /// Whether the sparse form is the smaller: it is what a worker sends.
    public var sparseIsSmaller: Bool {
        let listed = self.listed?.count ?? counts.reduce(0) { $0 + ($1 > 0 ? 1 : 0) }
        // Values per cluster: count, D sums, objective (and D sums of squares); listed: one more, its index.
        let perCluster = 2 + dimension * (sumsOfSquares == nil ? 1 : 2)
        return listed * (perCluster + 1) < k * perCluster
    }

    /// The RESULT metadata and arrays. Dense: counts i64[K], sums f64[K·D], per-cluster
    /// objective f64[K], then sums of squares f64[K·D] if present. Sparse: only the clusters
    /// with rows (a cluster without rows has only zeros, so leaving it out changes no sum):
    /// `clusters` m in the metadata, their indices i64[m] in ascending order, then the same
    /// arrays for those m clusters.
    public func encoded(sparse: Bool) -> (shape: StatisticsShape, arrays: [[UInt8]]) {
        guard listed == nil else { return expanded().encoded(sparse: sparse) }
        var shape = StatisticsShape(rows: rows, dimension: dimension, k: k, withSquares: sumsOfSquares != nil,
                                    skippedRows: skippedRows > 0 ? skippedRows : nil,
                                    skippedPairs: skippedPairs > 0 ? skippedPairs : nil)
        guard sparse else {
            return (shape, [Frame.encode(counts.map(Int64.init)), Frame.encode(sums), Frame.encode(clusterObjective)]
                        + (sumsOfSquares.map { [Frame.encode($0)] } ?? []))
        }
        let listed = counts.indices.filter { counts[$0] > 0 }, d = dimension
        func listedRows(_ values: [Double]) -> [UInt8] { Frame.encode(listed.flatMap { values[$0 * d ..< ($0 + 1) * d] }) }
        shape.clusters = listed.count
        return (shape, [Frame.encode(listed.map(Int64.init)), Frame.encode(listed.map { Int64(counts[$0]) }), listedRows(sums),
                        Frame.encode(listed.map { clusterObjective[$0] })] + (sumsOfSquares.map { [listedRows($0)] } ?? []))
    }

    public init(shape: StatisticsShape, message: WireMessage) throws {
        let k = try PassDecoder.positive(shape.k, "k"), d = try PassDecoder.positive(shape.dimension, "dimension")
        let kd = try PassDecoder.product(k, d)
        let squares = shape.withSquares ?? false
        guard let m = shape.clusters else {
            // The arrays first: their sizes are bounded by the message, the shape's numbers are not.
            let counts = try message.array(0, as: Int64.self, count: k).map { Int($0) }
            let sums = try message.array(1, as: Double.self, count: kd)
            let clusterObjective = try message.array(2, as: Double.self, count: k)
            let sumsOfSquares = squares ? try message.array(3, as: Double.self, count: kd) : nil
            self.init(k: k, dimension: d, rows: shape.rows, counts: counts, sums: sums, clusterObjective: clusterObjective,
                      sumsOfSquares: sumsOfSquares)
            skippedRows = shape.skippedRows ?? 0
            skippedPairs = shape.skippedPairs ?? 0
            return
        }
        // Sparse: K is bounded by the pass (`decode` checks the shape's k against it first).
        guard m >= 0, m <= k else { throw ClusterError.malformed("\(m) clusters listed but k is \(k)") }
        let listed = try message.array(0, as: Int64.self, count: m)
        let listedCounts = try message.array(1, as: Int64.self, count: m)
        let listedSums = try message.array(2, as: Double.self, count: try PassDecoder.product(m, d))
        let listedObjective = try message.array(3, as: Double.self, count: m)
        let listedSquares = squares ? try message.array(4, as: Double.self, count: try PassDecoder.product(m, d)) : nil
        var previous: Int64 = -1
        for (i, cluster) in listed.enumerated() {
            guard cluster >= 0, cluster < k else {
                throw ClusterError.malformed("listed cluster \(cluster) (entry \(i)) is outside 0..<\(k)")
            }
            guard cluster > previous else {
                throw ClusterError.malformed("listed cluster \(cluster) (entry \(i)) follows cluster \(previous): "
                                             + "each cluster is listed at most once, in ascending order")
            }
            guard listedCounts[i] >= 1 else {
                throw ClusterError.malformed("listed cluster \(cluster) has \(listedCounts[i]) rows; a listed cluster has at least 1")
            }
            previous = cluster
        }
        // Kept sparse: the merge adds the listed clusters only (`KMeansStatistics.merge`).
        self.init(k: k, dimension: d, rows: shape.rows, listed: listed.map { Int($0) }, counts: listedCounts.map { Int($0) },
                  sums: listedSums, clusterObjective: listedObjective, sumsOfSquares: listedSquares)
        skippedRows = shape.skippedRows ?? 0
        skippedPairs = shape.skippedPairs ?? 0
    }

    /// Rows as the shard's, counts ≥ 0 adding up to them, finite sums, objectives and sums
    /// of squares ≥ 0, nothing in a cluster without rows, and sums of squares exactly when
    /// the pass asks for them (an absent `withSquares` is false, both ways).
    public func check(_ shape: StatisticsShape, against pass: PassDescription, rows shard: Range<Int>) throws {
        let squares = pass.withSquares ?? false
        guard (sumsOfSquares != nil) == squares else {
            throw ClusterError.malformed(squares ? "sums of squares missing; the pass asks for them"
                                              : "sums of squares sent; the pass does not ask for them")
        }
        try StatisticsCheck.rows(rows, shard)
        guard skippedRows >= 0, skippedRows <= rows else {
            throw ClusterError.malformed("skippedRows \(skippedRows) is not between 0 and the shard's \(rows) rows")
        }
        // k ≤ the pass's K and rows ≤ the shard's, so rows·k does not overflow.
        guard skippedPairs >= 0, skippedPairs <= rows * k else {
            throw ClusterError.malformed("skippedPairs \(skippedPairs) is not between 0 and the shard's \(rows) rows × \(k) centres")
        }
        // A sparse form's values are named by their clusters' dense indices.
        let d = dimension
        let cluster = { (entry: Int) in self.listed?[entry] ?? entry }
        let value = { (position: Int) in cluster(position / d) * d + position % d }
        var total = 0
        for (c, count) in counts.enumerated() {
            // Each count at most the rows left, so the total cannot overflow.
            guard count >= 0, count <= rows - total else {
                throw ClusterError.malformed("cluster \(cluster(c)) has \(count) rows; the counts must be ≥ 0 and add up to the shard's \(rows)")
            }
            total += count
        }
        guard total == rows else {
            throw ClusterError.malformed("the counts add up to \(total) rows but the shard has \(rows)")
        }
        try StatisticsCheck.finite(sums, "sums", index: value)
        try StatisticsCheck.nonNegative(clusterObjective, "clusterObjective", index: cluster)
        if let sumsOfSquares { try StatisticsCheck.nonNegative(sumsOfSquares, "sumsOfSquares", index: value) }
        for (entry, count) in counts.enumerated() where count == 0 {
            let block = entry * dimension ..< (entry + 1) * dimension
            guard clusterObjective[entry] == 0, sums[block].allSatisfy({ $0 == 0 }),
                  sumsOfSquares?[block].allSatisfy({ $0 == 0 }) ?? true else {
                throw ClusterError.malformed("cluster \(cluster(entry)) has no rows but non-zero sums")
            }
        }
    }
}

extension GaussianMixtureStatistics: CheckedStatistics {
    /// How far Σq over the components may be from the shard's rows, as a fraction of them:
    /// each row's posteriors are float64 and sum to 1 up to rounding.
    public static let massTolerance = 1e-6

    public var shape: StatisticsShape { StatisticsShape(rows: rows, dimension: dimension, k: k) }
    /// log-likelihood f64[1], mass f64[K], first moments f64[K·D], second moments f64[K·D].
    public var arrays: [[UInt8]] {
        [Frame.encode([logLikelihood]), Frame.encode(mass), Frame.encode(firstMoments), Frame.encode(secondMoments)]
    }
    public init(shape: StatisticsShape, message: WireMessage) throws {
        let k = try PassDecoder.positive(shape.k, "k"), d = try PassDecoder.positive(shape.dimension, "dimension")
        let kd = try PassDecoder.product(k, d)
        let logLikelihood = try message.array(0, as: Double.self, count: 1)[0]
        let mass = try message.array(1, as: Double.self, count: k)
        let firstMoments = try message.array(2, as: Double.self, count: kd)
        let secondMoments = try message.array(3, as: Double.self, count: kd)
        self.init(k: k, dimension: d)
        rows = shape.rows
        self.logLikelihood = logLikelihood
        self.mass = mass
        self.firstMoments = firstMoments
        self.secondMoments = secondMoments
    }

    /// Rows as the shard's, a finite log-likelihood, masses ≥ 0 adding up to the rows
    /// (within `massTolerance`), finite first moments and second moments ≥ 0.
    public func check(_ shape: StatisticsShape, against pass: PassDescription, rows shard: Range<Int>) throws {
        try StatisticsCheck.rows(rows, shard)
        try StatisticsCheck.finite([logLikelihood], "logLikelihood")
        try StatisticsCheck.nonNegative(mass, "mass")
        let total = mass.reduce(0, +)
        guard abs(total - Double(rows)) <= Self.massTolerance * Double(max(rows, 1)) else {
            throw ClusterError.malformed("the masses add up to \(total) but the shard has \(rows) rows")
        }
        try StatisticsCheck.finite(firstMoments, "firstMoments")
        try StatisticsCheck.nonNegative(secondMoments, "secondMoments")
    }
}

extension MomentStatistics: CheckedStatistics {
    public var shape: StatisticsShape { StatisticsShape(rows: rows, dimension: sums.count) }
    /// sums f64[D], sums of squares f64[D].
    public var arrays: [[UInt8]] { [Frame.encode(sums), Frame.encode(sumsOfSquares)] }
    public init(shape: StatisticsShape, message: WireMessage) throws {
        let sums = try message.array(0, as: Double.self, count: try PassDecoder.positive(shape.dimension, "dimension"))
        let sumsOfSquares = try message.array(1, as: Double.self, count: shape.dimension)
        self.init(dimension: shape.dimension)
        rows = shape.rows
        self.sums = sums
        self.sumsOfSquares = sumsOfSquares
    }

    /// Rows as the shard's, finite sums, sums of squares ≥ 0.
    public func check(_ shape: StatisticsShape, against pass: PassDescription, rows shard: Range<Int>) throws {
        try StatisticsCheck.rows(rows, shard)
        try StatisticsCheck.finite(sums, "sums")
        try StatisticsCheck.nonNegative(sumsOfSquares, "sumsOfSquares")
    }
}

extension CovarianceStatistics: CheckedStatistics {
    public var shape: StatisticsShape { StatisticsShape(rows: rows, dimension: dimension) }
    /// sums f64[D], sums of outer products f64[D·D] (row-major; the upper triangle holds them).
    public var arrays: [[UInt8]] { [Frame.encode(sums), Frame.encode(products)] }
    public init(shape: StatisticsShape, message: WireMessage) throws {
        let d = try PassDecoder.positive(shape.dimension, "dimension")
        let sums = try message.array(0, as: Double.self, count: d)
        let products = try message.array(1, as: Double.self, count: try PassDecoder.product(d, d))
        self.init(dimension: d)
        rows = shape.rows
        self.sums = sums
        self.products = products
    }

    /// Rows as the shard's, finite sums and products, squares (the diagonal) ≥ 0.
    public func check(_ shape: StatisticsShape, against pass: PassDescription, rows shard: Range<Int>) throws {
        try StatisticsCheck.rows(rows, shard)
        try StatisticsCheck.finite(sums, "sums")
        try StatisticsCheck.finite(products, "products")
        try StatisticsCheck.nonNegative((0..<dimension).map { products[$0 * dimension + $0] }, "products (diagonal)")
    }
}

extension RowSample: CheckedStatistics {
    public var shape: StatisticsShape { StatisticsShape(rows: 0, dimension: dimension, samples: count) }
    /// row indices i64[n], values f32[n·D].
    public var arrays: [[UInt8]] { [Frame.encode(rowIndices.map(Int64.init)), Frame.encode(values)] }
    public init(shape: StatisticsShape, message: WireMessage) throws {
        let n = shape.samples ?? 0
        guard n >= 0 else { throw ClusterError.malformed("negative sample count") }
        let d = try PassDecoder.positive(shape.dimension, "dimension")
        self.init(dimension: d)
        rowIndices = try message.array(0, as: Int64.self, count: n).map { Int($0) }
        values = try message.array(1, as: Float.self, count: try PassDecoder.product(n, d))
    }

    /// `rows` 0, as many rows as the shard's quota of the sample (see `RowSamplePass`),
    /// distinct rows of the shard in ascending order, finite values.
    public func check(_ shape: StatisticsShape, against pass: PassDescription, rows shard: Range<Int>) throws {
        guard shape.rows == 0 else { throw ClusterError.malformed("a sample's rows must be 0, not \(shape.rows)") }
        let sampling = RowSamplePass(sampleSize: try PassDecoder.positive(pass.sampleSize, "sampleSize"),
                                     totalRows: try PassDecoder.positive(pass.totalRows, "totalRows"), seed: pass.seed ?? 0)
        let quota = sampling.quota(of: shard)
        guard count == quota else {
            throw ClusterError.malformed("\(count) rows sampled but the shard's share of the sample is \(quota)")
        }
        var previous = shard.lowerBound - 1
        for row in rowIndices {
            guard row > previous, row < shard.upperBound else {
                throw ClusterError.malformed("sampled row \(row) is out of order or outside the shard's rows \(shard)")
            }
            previous = row
        }
        if let bad = values.firstIndex(where: { !$0.isFinite }) {
            throw ClusterError.malformed("sampled value \(bad) is \(values[bad])")
        }
    }
}

// MARK: k-means‖ rounds

extension KMeansParallelRoundPass: WireComputation {
    public var description: PassDescription {
        PassDescription(kind: .kmeansParallelRound, dimension: search.codebook.dimension, k: search.codebook.k,
                        seed: seed, round: round, oversampling: oversampling, measured: measured > 0 ? measured : nil,
                        sampling: sampling < 1 ? sampling : nil, weighs: weighs ? true : nil)
    }
    public var modelArrays: [[UInt8]] { [Frame.encode(search.codebook.centres)] }
}

extension KMeansParallelRoundStatistics: CheckedStatistics {
    /// How far the distances of the rows sent may add up past the shard's cost, as a fraction
    /// of it (they are a subset of its terms, added in another order).
    public static let costTolerance = 1e-9

    public var shape: StatisticsShape {
        StatisticsShape(rows: rows, dimension: dimension, k: candidates, samples: rowIndices.count, sampledRows: sampledRows)
    }
    /// cost f64[1], row indices i64[n], distances f64[n], values f32[n·D], and for the
    /// weighting pass counts i64[k].
    public var arrays: [[UInt8]] {
        [Frame.encode([cost]), Frame.encode(rowIndices.map(Int64.init)), Frame.encode(distances), Frame.encode(values)]
            + (counts.isEmpty ? [] : [Frame.encode(counts.map(Int64.init))])
    }
    public init(shape: StatisticsShape, message: WireMessage) throws {
        let n = shape.samples ?? 0
        guard n >= 0 else { throw ClusterError.malformed("negative sample count") }
        let d = try PassDecoder.positive(shape.dimension, "dimension")
        self.init(dimension: d, candidates: try PassDecoder.positive(shape.k, "k"))
        rows = shape.rows
        cost = try message.array(0, as: Double.self, count: 1)[0]
        rowIndices = try message.array(1, as: Int64.self, count: n).map { Int($0) }
        distances = try message.array(2, as: Double.self, count: n)
        values = try message.array(3, as: Float.self, count: try PassDecoder.product(n, d))
        sampledRows = shape.sampledRows ?? rows
        if message.arrays.count > 4 { counts = try message.array(4, as: Int64.self, count: candidates).map { Int($0) } }
    }

    /// Rows as the shard's, 0…rows sampled, a finite cost ≥ 0, distinct sampled rows of the
    /// shard in ascending order, each with a finite distance ≥ 0 that the pass's rule sends at
    /// the shard's cost, the distances adding up to at most the cost (within `costTolerance`),
    /// finite values; for the weighting pass, no rows sent and counts ≥ 0 of every candidate
    /// adding up to the sampled rows, for any other pass no counts.
    public func check(_ shape: StatisticsShape, against pass: PassDescription, rows shard: Range<Int>) throws {
        try StatisticsCheck.rows(rows, shard)
        guard sampledRows >= 0, sampledRows <= rows else {
            throw ClusterError.malformed("\(sampledRows) sampled rows of a shard of \(rows)")
        }
        try StatisticsCheck.nonNegative([cost], "cost")
        try StatisticsCheck.nonNegative(distances, "distances")
        if pass.weighs == true {
            guard rowIndices.isEmpty, counts.count == candidates, counts.allSatisfy({ $0 >= 0 }),
                  counts.reduce(0, +) == sampledRows else {
                throw ClusterError.malformed("the weighting pass needs no rows sent and counts ≥ 0 of all \(candidates) candidates "
                                             + "adding up to the \(sampledRows) sampled rows")
            }
        } else if !counts.isEmpty {
            throw ClusterError.malformed("only the weighting pass counts rows")
        }
        let ell = try PassDecoder.oversampling(pass), round = try PassDecoder.positive(pass.round, "round")
        let sampling = pass.sampling ?? 1
        var previous = shard.lowerBound - 1
        for (i, row) in rowIndices.enumerated() {
            guard row > previous, row < shard.upperBound else {
                throw ClusterError.malformed("sent row \(row) is out of order or outside the shard's rows \(shard)")
            }
            guard KMeansParallelRoundPass.samples(seed: pass.seed ?? 0, sampling: sampling, row: row),
                  KMeansParallelRoundPass.sends(seed: pass.seed ?? 0, round: round, oversampling: ell, row: row,
                                                distance: distances[i], cost: cost) else {
                throw ClusterError.malformed("row \(row) at distance \(distances[i]) is not sampled at the shard's cost \(cost)")
            }
            previous = row
        }
        let sent = distances.reduce(0, +)
        guard sent <= cost * (1 + Self.costTolerance) else {
            throw ClusterError.malformed("the rows sent are at distances adding up to \(sent), more than the shard's cost \(cost)")
        }
        if let bad = values.firstIndex(where: { !$0.isFinite }) {
            throw ClusterError.malformed("sent value \(bad) is \(values[bad])")
        }
    }
}

extension GaussianMixtureModel {
    /// The model as array frames: means f32[K·D], variances f32[K·D], priors f32[K].
    public var frames: [[UInt8]] { [Frame.encode(means), Frame.encode(variances), Frame.encode(priors)] }
}
