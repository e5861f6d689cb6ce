@testable import Cluster
import ClusterProtocol
import Clustering
import Descriptors
import Testing
import ZeroMQ

/// A worker's statistics are checked against the task they answer before they are merged:
/// what cannot be right is rejected as a malformed `ClusterError`, what can is taken as it came.
@Suite struct ResultCheckTests {
    static let k = 3, d = 2
    /// The shard: rows 100 ..< 110 of a 1000-row corpus.
    static let shard = 100 ..< 110

    static func message(_ shape: StatisticsShape, _ arrays: [[UInt8]]) -> WireMessage {
        WireMessage(header: WireHeader(.result, job: 1, round: 1, shard: 1), metadata: shape, arrays: arrays)
    }

    static func message(_ statistics: some WireStatistics) -> WireMessage { message(statistics.shape, statistics.arrays) }

    /// Whether `body` throws a malformed-message error.
    static func isMalformed<T>(_ body: () throws -> T) -> Bool {
        do { _ = try body() } catch let error as ClusterError { return error.code == .malformed } catch { return false }
        return false
    }

    /// Decodes and checks `message`; returns the rejection's text, or nil if it was taken.
    static func rejection<S: CheckedStatistics>(_ type: S.Type, _ message: WireMessage, _ pass: PassDescription) -> String? {
        do {
            _ = try S.decode(message, pass: pass, rows: shard)
            return nil
        } catch let error as ClusterError where error.code == .malformed {
            return "\(error)"
        } catch {
            return "not a malformed message: \(error)"
        }
    }

    // MARK: k-means

    static let kmeansPass = PassDescription(kind: .kmeansAssignment, dimension: d, k: k)

    static func kmeans(squares: Bool = false) -> KMeansStatistics {
        var statistics = KMeansStatistics(k: k, dimension: d, withSquares: squares)
        statistics.rows = 10
        statistics.counts = [6, 0, 4]
        statistics.sums = [6, 12, 0, 0, -4, 8]
        statistics.clusterObjective = [1.5, 0, 2]
        if squares { statistics.sumsOfSquares = [6, 24, 0, 0, 4, 16] }
        return statistics
    }

    @Test func rightKMeansStatisticsAreTakenWithOrWithoutTheWithSquaresField() throws {
        #expect(Self.rejection(KMeansStatistics.self, Self.message(Self.kmeans()), Self.kmeansPass) == nil)
        // A worker following the protocol may leave out `withSquares: false`.
        var shape = Self.kmeans().shape
        shape.withSquares = nil
        #expect(Self.rejection(KMeansStatistics.self, Self.message(shape, Self.kmeans().arrays), Self.kmeansPass) == nil)
        var squaresPass = Self.kmeansPass
        squaresPass.withSquares = true
        let (statistics, _) = try KMeansStatistics.decode(Self.message(Self.kmeans(squares: true)), pass: squaresPass, rows: Self.shard)
        #expect(statistics == Self.kmeans(squares: true))
        #expect(Self.rejection(KMeansStatistics.self, Self.message(Self.kmeans()), squaresPass)?.contains("sums of squares missing") == true)
        #expect(Self.rejection(KMeansStatistics.self, Self.message(Self.kmeans(squares: true)), Self.kmeansPass)?.contains("sums of squares sent") == true)
    }

    @Test(arguments: [
        ("rows", "cover 9 rows"), ("negative count", "has -1 rows"), ("counts short", "add up to 9"),
        ("huge count", "has 9223372036854775807 rows"), ("NaN sum", "sums[1] is nan"), ("infinite sum", "sums[0] is inf"),
        ("negative objective", "clusterObjective[2] is -1.0"), ("empty cluster with sums", "cluster 1 has no rows"),
        ("wrong k", "k=4"),
    ])
    func kmeansStatisticsThatCannotBeRightAreRejected(lie: String, expected: String) {
        var statistics = Self.kmeans()
        var k = Self.k
        switch lie {
        case "rows": statistics.rows = 9
        case "negative count": statistics.counts = [7, -1, 4]
        case "counts short": statistics.counts = [5, 0, 4]
        case "huge count": statistics.counts = [Int.max, 0, 0]
        case "NaN sum": statistics.sums[1] = .nan
        case "infinite sum": statistics.sums[0] = .infinity
        case "negative objective": statistics.clusterObjective[2] = -1
        case "empty cluster with sums": statistics.sums[2] = 0.5
        default: k = 4
        }
        // The dense form: the sparse one cannot carry some of these lies (SparseResultTests).
        var (shape, arrays) = statistics.encoded(sparse: false)
        shape.k = k
        if k != Self.k { arrays = KMeansStatistics(k: k, dimension: Self.d).encoded(sparse: false).arrays }
        let rejection = Self.rejection(KMeansStatistics.self, Self.message(shape, arrays), Self.kmeansPass)
        #expect(rejection?.contains(expected) == true, "\(lie): \(String(describing: rejection))")
    }

    // MARK: GMM

    static let gmmPass = PassDescription(kind: .gaussianExpectation, dimension: d, k: k)

    static func gmm() -> GaussianMixtureStatistics {
        var statistics = GaussianMixtureStatistics(k: k, dimension: d)
        statistics.rows = 10
        statistics.logLikelihood = -35.5
        statistics.mass = [2.5, 7.0 - 1e-12, 0.5 + 1e-12]
        statistics.firstMoments = [1, -2, 3, 4, 0.5, 0]
        statistics.secondMoments = [1, 2, 3, 4, 0.5, 0]
        return statistics
    }

    @Test(arguments: ["", "rows", "mass", "negative mass", "NaN likelihood", "infinite moment", "negative second moment"])
    func gaussianMixtureStatisticsAreCheckedAgainstTheShard(lie: String) {
        var statistics = Self.gmm()
        switch lie {
        case "rows": statistics.rows = 11
        case "mass": statistics.mass[1] += 1e-3
        case "negative mass": statistics.mass = [-1, 10.5, 0.5]
        case "NaN likelihood": statistics.logLikelihood = .nan
        case "infinite moment": statistics.firstMoments[3] = -.infinity
        case "negative second moment": statistics.secondMoments[0] = -1e-9
        default: break
        }
        let rejection = Self.rejection(GaussianMixtureStatistics.self, Self.message(statistics), Self.gmmPass)
        #expect((rejection == nil) == lie.isEmpty, "\(lie): \(String(describing: rejection))")
    }

    // MARK: Moments

    @Test(arguments: ["", "rows", "NaN sum", "negative square"])
    func momentsAreCheckedAgainstTheShard(lie: String) {
        var statistics = MomentStatistics(dimension: Self.d)
        statistics.rows = 10
        statistics.sums = [3, -4]
        statistics.sumsOfSquares = [5, 6]
        switch lie {
        case "rows": statistics.rows = 100
        case "NaN sum": statistics.sums[0] = .nan
        case "negative square": statistics.sumsOfSquares[1] = -6
        default: break
        }
        let rejection = Self.rejection(MomentStatistics.self, Self.message(statistics), PassDescription(kind: .moments, dimension: Self.d))
        #expect((rejection == nil) == lie.isEmpty, "\(lie): \(String(describing: rejection))")
    }

    // MARK: Samples

    /// 50 of 1000 rows: the shard 100 ..< 110 contributes ⌊50·110/1000⌋ − ⌊50·100/1000⌋ = 0,
    /// so the tests use 200 of 1000: 22 − 20 = 2 rows.
    static let samplePass = PassDescription(kind: .sample, dimension: d, sampleSize: 200, totalRows: 1000, seed: 4)

    @Test(arguments: ["", "none", "three", "outside", "below", "repeated", "descending", "rows", "NaN"])
    func samplesAreTheShardsQuotaOfItsOwnRows(lie: String) {
        var sample = RowSample(dimension: Self.d)
        sample.rowIndices = [103, 107]
        sample.values = [1, 2, 3, 4]
        var rows = 0
        switch lie {
        case "none": (sample.rowIndices, sample.values) = ([], [])
        case "three": (sample.rowIndices, sample.values) = ([101, 102, 103], [1, 2, 3, 4, 5, 6])
        case "outside": sample.rowIndices = [103, 110]
        case "below": sample.rowIndices = [99, 103]
        case "repeated": sample.rowIndices = [103, 103]
        case "descending": sample.rowIndices = [107, 103]
        case "rows": rows = 10
        case "NaN": sample.values[3] = .nan
        default: break
        }
        var shape = sample.shape
        shape.rows = rows
        let rejection = Self.rejection(RowSample.self, Self.message(shape, sample.arrays), Self.samplePass)
        #expect((rejection == nil) == lie.isEmpty, "\(lie): \(String(describing: rejection))")
    }

    // MARK: Encoded vectors

    /// The sink of an encoding of `images` images ("image-0"…) in shards of 2, vectors of
    /// `dimension` values, for a coordinator that is never started: the check needs none of it.
    static func encodingSink(images: Int, dimension: Int) throws -> EncodingSink {
        let coordinator = Coordinator(context: try ZeroMQContext(), workersEndpoint: "inproc://unused-workers",
                                      clientsEndpoint: "inproc://unused-clients", logger: quietLogger())
        return try EncodingSink(job: 1, set: "S", vector: VectorRecord(encoding: .vlad, model: "M", flags: 0), dimension: dimension,
                                images: (0..<images).map { ImageSlice(key: "image-\($0)", firstRow: $0 * 10, rowCount: 10) },
                                plan: ShardPlan(totalRows: images, shardRows: 2), imagesDone: 0, coordinator: coordinator)
    }

    @Test func encodeResultsMustCarryTheTasksKeysAndRows() throws {
        let sink = try Self.encodingSink(images: 4, dimension: 2)
        func result(_ keys: [String], rows: Int? = nil, vectors: Int? = nil) -> WireMessage {
            WireMessage(header: WireHeader(.result, job: 1, round: 1, shard: 1),
                        metadata: StatisticsShape(rows: rows ?? keys.count, dimension: 2, keys: keys),
                        arrays: [Frame.encode([Float](repeating: 0.5, count: (vectors ?? keys.count) * 2))])
        }
        try sink.check(shard: 1, result(["image-2", "image-3"]))
        #expect(Self.isMalformed { try sink.check(shard: 1, result(["image-3", "image-2"])) })
        #expect(Self.isMalformed { try sink.check(shard: 1, result(["image-0", "image-1"])) })
        #expect(Self.isMalformed { try sink.check(shard: 1, result(["image-2"])) })
        #expect(Self.isMalformed { try sink.check(shard: 1, result(["image-2", "image-3"], rows: 0)) })
        #expect(Self.isMalformed { try sink.check(shard: 1, result(["image-2", "image-3"], vectors: 3)) })
    }

    /// A forged encode RESULT with a NaN or infinite value is rejected, naming the vector, its
    /// image and the value, before anything is stored (before, it was stored as it came).
    @Test(arguments: [Float.nan, .infinity, -.infinity, .signalingNaN])
    func encodedVectorsMustBeFinite(_ bad: Float) throws {
        let sink = try Self.encodingSink(images: 2, dimension: 3)
        var values: [Float] = [0.5, -0.5, .greatestFiniteMagnitude, 0, -0, .leastNonzeroMagnitude]
        let result = { (values: [Float]) in
            WireMessage(header: WireHeader(.result, job: 1, round: 1, shard: 0),
                        metadata: StatisticsShape(rows: 2, dimension: 3, keys: ["image-0", "image-1"]), arrays: [Frame.encode(values)])
        }
        try sink.check(shard: 0, result(values))
        values[4] = bad
        let error = #expect(throws: ClusterError.self) { try sink.check(shard: 0, result(values)) }
        #expect(error?.code == .malformed)
        #expect(error?.message.hasPrefix("vector 1 (image image-1) has value 1 ") == true, "\(String(describing: error))")
    }
}

// MARK: k-means‖ rounds

extension ResultCheckTests {
    /// Round 2 of a k-means‖ seeding with ℓ = 6 and two candidates, over rows 100 ..< 110 of a
    /// 1000-row corpus: the statistics a right worker sends.
    static let parallelPass = PassDescription(kind: .kmeansParallelRound, dimension: d, k: 2, seed: 9, round: 2, oversampling: 6)

    static func parallelRound() throws -> KMeansParallelRoundStatistics {
        let corpus = try DescriptorMatrix(rows: 1000, dimension: d, values: (0..<2000).map { Float($0 % 37) })
        let pass = try KMeansParallelRoundPass(candidates: try Codebook(k: 2, dimension: d, centres: [0, 0, 30, 30]),
                                           oversampling: 6, seed: 9, round: 2)
        return try pass.statistics(of: corpus.slice(shard), shard: 10, workspace: KernelWorkspace())
    }

    @Test(arguments: ["", "rows", "cost NaN", "cost negative", "cost low", "outside", "below", "repeated", "descending",
                      "not sampled", "distance NaN", "distance negative", "value NaN"])
    func kmeansParallelRoundsAreRowsOfTheShardThatTheRuleSends(lie: String) throws {
        var statistics = try Self.parallelRound()
        try #require(statistics.rowIndices.count >= 2 && statistics.rowIndices.count < 10,
                     "the fixture should send some rows, not all: \(statistics.rowIndices)")
        let last = statistics.rowIndices.count - 1
        switch lie {
        case "rows": statistics.rows = 9
        case "cost NaN": statistics.cost = .nan
        case "cost negative": statistics.cost = -1
        case "cost low": statistics.cost = statistics.distances.reduce(0, +) / 2
        case "outside": statistics.rowIndices[last] = 110
        case "below": statistics.rowIndices[0] = 99
        case "repeated": statistics.rowIndices[1] = statistics.rowIndices[0]
        case "descending": statistics.rowIndices.swapAt(0, 1)
        case "not sampled":
            // A row of the shard the rule does not send, claimed at its own distance.
            let sent = Set(statistics.rowIndices)
            let row = try #require(Self.shard.first { !sent.contains($0) })
            let index = statistics.rowIndices.firstIndex { $0 > row } ?? statistics.rowIndices.count
            statistics.rowIndices.insert(row, at: index)
            statistics.distances.insert(0, at: index)
            statistics.values.insert(contentsOf: [0, 0], at: index * Self.d)
        case "distance NaN": statistics.distances[0] = .nan
        case "distance negative": statistics.distances[0] = -1
        case "value NaN": statistics.values[1] = .nan
        default: break
        }
        let rejection = Self.rejection(KMeansParallelRoundStatistics.self, Self.message(statistics), Self.parallelPass)
        #expect((rejection == nil) == lie.isEmpty, "\(lie): \(String(describing: rejection))")
    }

    @Test func kmeansParallelRoundsSurviveTheWire() throws {
        let statistics = try Self.parallelRound()
        let (decoded, _) = try KMeansParallelRoundStatistics.decode(Self.message(statistics), pass: Self.parallelPass, rows: Self.shard)
        #expect(decoded == statistics)
        let pass = try KMeansParallelRoundPass(candidates: try Codebook(k: 2, dimension: Self.d, centres: [0, 0, 30, 30]),
                                           oversampling: 6, seed: 9, round: 2)
        #expect(pass.description == Self.parallelPass)
        let message = WireMessage(header: WireHeader(.task), arrays: pass.modelArrays)
        let worker = try #require(try PassDecoder.computation(pass.description, arrays: message) as? KMeansParallelRoundPass)
        #expect(worker.search.codebook == pass.search.codebook && worker.round == 2 && worker.seed == 9 && worker.oversampling == 6)
        var zero = Self.parallelPass
        zero.oversampling = 0
        #expect(Self.isMalformed { try PassDecoder.computation(zero, arrays: message) })
        zero = Self.parallelPass
        zero.round = nil
        #expect(Self.isMalformed { try PassDecoder.computation(zero, arrays: message) })
    }
}

extension ResultCheckTests {
    /// The weighting pass over the same rows, on a sample of 0.6 of them, after round 2
    /// measured both candidates.
    static let weighingPass = PassDescription(kind: .kmeansParallelRound, dimension: d, k: 2, seed: 9, round: 3, oversampling: 6,
                                              measured: 2, sampling: 0.6, weighs: true)

    static func weighing(sampling: Double = 0.6, weighs: Bool = true) throws -> KMeansParallelRoundStatistics {
        let corpus = try DescriptorMatrix(rows: 1000, dimension: d, values: (0..<2000).map { Float($0 % 37) })
        let pass = try KMeansParallelRoundPass(candidates: try Codebook(k: 2, dimension: d, centres: [0, 0, 30, 30]), measured: 2,
                                               oversampling: 6, seed: 9, round: 3, sampling: sampling, weighs: weighs)
        return try pass.statistics(of: corpus.slice(shard), shard: 10, workspace: KernelWorkspace())
    }

    @Test(arguments: ["", "sampled above rows", "sampled negative", "counts short", "counts negative", "counts sum", "row sent"])
    func theWeightingPassCountsEverySampledRowOnce(lie: String) throws {
        var statistics = try Self.weighing()
        try #require(statistics.sampledRows > 0 && statistics.sampledRows < 10 && statistics.counts.reduce(0, +) == statistics.sampledRows)
        switch lie {
        case "sampled above rows": statistics.sampledRows = 11
        case "sampled negative": statistics.sampledRows = -1
        case "counts short": statistics.counts = [statistics.sampledRows]
        case "counts negative": statistics.counts = [statistics.sampledRows + 1, -1]
        case "counts sum": statistics.counts[0] += 1
        case "row sent":
            statistics.rowIndices = [Self.shard.lowerBound]
            statistics.distances = [0]
            statistics.values = [0, 0]
        default: break
        }
        let rejection = Self.rejection(KMeansParallelRoundStatistics.self, Self.message(statistics), Self.weighingPass)
        #expect((rejection == nil) == lie.isEmpty, "\(lie): \(String(describing: rejection))")
    }

    @Test func aRoundOnASampleSendsOnlySampledRowsAndNoCounts() throws {
        var pass = Self.weighingPass
        pass.weighs = nil
        var statistics = try Self.weighing(weighs: false)
        #expect(Self.rejection(KMeansParallelRoundStatistics.self, Self.message(statistics), pass) == nil)
        statistics.counts = [1, 0]
        #expect(Self.rejection(KMeansParallelRoundStatistics.self, Self.message(statistics), pass) != nil)
        // The same rows sent on all rows: those outside the 0.6 sample are refused.
        let all = try Self.weighing(sampling: 1, weighs: false)
        let outside = all.rowIndices.filter { !KMeansParallelRoundPass.samples(seed: 9, sampling: 0.6, row: $0) }
        try #require(!outside.isEmpty)
        #expect(Self.rejection(KMeansParallelRoundStatistics.self, Self.message(all), pass) != nil)
    }

    @Test func theWeightingPassSurvivesTheWire() throws {
        let statistics = try Self.weighing()
        let (decoded, _) = try KMeansParallelRoundStatistics.decode(Self.message(statistics), pass: Self.weighingPass, rows: Self.shard)
        #expect(decoded == statistics)
        let pass = try KMeansParallelRoundPass(candidates: try Codebook(k: 2, dimension: Self.d, centres: [0, 0, 30, 30]), measured: 2,
                                               oversampling: 6, seed: 9, round: 3, sampling: 0.6, weighs: true)
        #expect(pass.description == Self.weighingPass)
        let message = WireMessage(header: WireHeader(.task), arrays: pass.modelArrays)
        let worker = try #require(try PassDecoder.computation(pass.description, arrays: message) as? KMeansParallelRoundPass)
        #expect(worker.measured == 2 && worker.sampling == 0.6 && worker.weighs)
        for (measured, sampling) in [(3, 0.6), (-1, 0.6), (2, 0), (2, 1.5), (2, .nan)] {
            var bad = Self.weighingPass
            bad.measured = measured
            bad.sampling = sampling
            #expect(Self.isMalformed { try PassDecoder.computation(bad, arrays: message) }, "measured \(measured), sampling \(sampling)")
        }
    }
}
