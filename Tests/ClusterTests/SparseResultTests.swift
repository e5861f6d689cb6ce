@testable import Cluster
import ClusterProtocol
import Clustering
import Descriptors
import Testing

/// k-means RESULTs in the sparse form (only the clusters a shard's rows fell in): the same
/// statistics as the dense form bit for bit, every byte checked, and the cluster's models
/// those of the local engine when K is large against the shards.
@Suite struct SparseResultTests {
    static let shard = ResultCheckTests.shard

    /// K = 40, D = 3, the shard's 10 rows in clusters 2, 5, 6 and 39; sums with a −0.0 and
    /// values of every size, so that a wrong placement or a changed sum shows in the bits.
    static func statistics(squares: Bool = false) -> KMeansStatistics {
        let k = 40, d = 3
        var statistics = KMeansStatistics(k: k, dimension: d, withSquares: squares)
        statistics.rows = 10
        for (c, count) in [(2, 4), (5, 1), (6, 3), (39, 2)] {
            statistics.counts[c] = count
            statistics.clusterObjective[c] = Double(count) * 0.1 + 1e-17
            for j in 0..<d {
                statistics.sums[c * d + j] = j == 1 && c == 5 ? -0.0 : Double(c) * 1.000000000000001 - Double(j) * 1e300
                statistics.sumsOfSquares?[c * d + j] = Double(c * j) + 0.3
            }
        }
        return statistics
    }

    static func pass(squares: Bool = false) -> PassDescription {
        PassDescription(kind: .kmeansAssignment, dimension: 3, k: 40, withSquares: squares)
    }

    static func bits(_ values: [Double]) -> [UInt64] { values.map(\.bitPattern) }

    @Test(arguments: [false, true])
    func bothFormsDecodeToTheSameStatisticsAndMergeToTheSameBits(squares: Bool) throws {
        let statistics = Self.statistics(squares: squares)
        #expect(statistics.sparseIsSmaller)
        let sparse = statistics.encoded(sparse: true), dense = statistics.encoded(sparse: false)
        #expect(sparse.shape.clusters == 4 && dense.shape.clusters == nil)
        #expect(sparse.arrays.reduce(0) { $0 + $1.count } * 4 < dense.arrays.reduce(0) { $0 + $1.count })
        let pass = Self.pass(squares: squares)
        let fromSparse = try KMeansStatistics.decode(ResultCheckTests.message(sparse.shape, sparse.arrays), pass: pass, rows: Self.shard).statistics
        let fromDense = try KMeansStatistics.decode(ResultCheckTests.message(dense.shape, dense.arrays), pass: pass, rows: Self.shard).statistics
        #expect(fromSparse == statistics && fromDense == statistics)
        // The sparse form stays sparse (4 clusters' values, not K's) until it is merged.
        #expect(fromSparse.listed == [2, 5, 6, 39] && fromSparse.counts == [4, 1, 3, 2] && fromSparse.sums.count == 4 * 3)
        #expect(fromDense.listed == nil)
        #expect(Self.bits(fromSparse.expanded().sums) == Self.bits(statistics.sums))
        // Merged after another shard's statistics: the same bits either way.
        var first = Self.statistics(squares: squares), second = first
        first.merge(fromSparse)
        second.merge(fromDense)
        #expect(Self.bits(first.sums) == Self.bits(second.sums) && first.counts == second.counts)
        #expect(Self.bits(first.clusterObjective) == Self.bits(second.clusterObjective))
        #expect(first.sumsOfSquares.map(Self.bits) == second.sumsOfSquares.map(Self.bits))
    }

    /// Shards merged in order, in any mix of forms, shard 0's sparse too (a pass makes it
    /// dense before the others are merged into it, `reserveMergeCapacity`): the bits of the
    /// dense forms' merge, and a dense result.
    @Test(arguments: [false, true])
    func sparseShardsMergeWithoutExpansionToTheBitsOfDenseOnes(squares: Bool) throws {
        let pass = Self.pass(squares: squares)
        let codebook = try Codebook(k: 40, dimension: 3, centres: [Float](repeating: 0, count: 120))
        var shards: [KMeansStatistics] = []
        for shard in 0..<5 {
            var statistics = KMeansStatistics(k: 40, dimension: 3, withSquares: squares)
            statistics.rows = 10
            for (i, c) in [(shard * 7) % 40, (shard * 13 + 1) % 40, 39].enumerated() {
                let count = [1, 2, 7][i]
                statistics.counts[c] += count
                statistics.clusterObjective[c] += Double(shard) * 0.3 + Double(c) * 1e-9
                for j in 0..<3 {
                    statistics.sums[c * 3 + j] += Double(shard + 1) * 1.0000001 - Double(j) * 1e15 + Double(c) / 3
                    statistics.sumsOfSquares?[c * 3 + j] += Double(shard * c + j) + 0.7
                }
            }
            shards.append(statistics)
        }
        func decoded(_ statistics: KMeansStatistics, sparse: Bool) throws -> KMeansStatistics {
            let (shape, arrays) = statistics.encoded(sparse: sparse)
            return try KMeansStatistics.decode(ResultCheckTests.message(shape, arrays), pass: pass, rows: Self.shard).statistics
        }
        var dense = OrderedMerger<KMeansStatistics>(shardCount: shards.count)
        for (index, statistics) in shards.enumerated() { dense.add(try decoded(statistics, sparse: false), shard: index) }
        for forms in [[true, true, true, true, true], [true, false, true, false, true], [false, true, true, false, false]] {
            var merger = OrderedMerger<KMeansStatistics>(shardCount: shards.count)
            for index in shards.indices.reversed() {
                var statistics = try decoded(shards[index], sparse: forms[index])
                #expect((statistics.listed != nil) == forms[index])
                if index == 0 { KMeansAssignmentPass(codebook: codebook, withSquares: squares).reserveMergeCapacity(in: &statistics) }
                merger.add(statistics, shard: index)
            }
            let merged = try #require(merger.result), expected = try #require(dense.result)
            #expect(merged.listed == nil && merged.rows == 50 && merged.counts == expected.counts, "\(forms)")
            #expect(Self.bits(merged.sums) == Self.bits(expected.sums) && Self.bits(merged.clusterObjective) == Self.bits(expected.clusterObjective))
            #expect(merged.sumsOfSquares.map(Self.bits) == expected.sumsOfSquares.map(Self.bits))
        }
    }

    @Test func aWorkerSendsTheSmallerForm() {
        var statistics = Self.statistics()
        #expect(statistics.shape.clusters == 4)
        #expect(statistics.arrays == statistics.encoded(sparse: true).arrays)
        // Rows in every cluster: the dense form is the smaller.
        statistics = KMeansStatistics(k: 2, dimension: 3)
        statistics.rows = 2
        statistics.counts = [1, 1]
        #expect(!statistics.sparseIsSmaller && statistics.shape.clusters == nil)
        #expect(statistics.arrays == statistics.encoded(sparse: false).arrays)
    }

    @Test(arguments: [
        ("index out of range", "listed cluster 40 (entry 3) is outside 0..<40"),
        ("negative index", "listed cluster -1 (entry 0) is outside 0..<40"),
        ("repeated index", "listed cluster 5 (entry 2) follows cluster 5"),
        ("descending", "listed cluster 2 (entry 1) follows cluster 5"),
        ("zero count", "listed cluster 6 has 0 rows; a listed cluster has at least 1"),
        ("negative count", "listed cluster 6 has -3 rows"),
        ("counts short", "the counts add up to 9 rows but the shard has 10"),
        ("more listed than k", "41 clusters listed but k is 40"),
        ("negative listed", "-1 clusters listed"),
        ("fewer arrays than listed", "array 0 has 4 values, expected 5"),
        ("NaN sum", "sums[18] is nan"),
        ("negative objective", "clusterObjective[39] is -1.0"),
    ])
    func sparseStatisticsThatCannotBeRightAreRejected(lie: String, expected: String) {
        var (shape, arrays) = Self.statistics().encoded(sparse: true)
        var listed: [Int64] = [2, 5, 6, 39], counts: [Int64] = [4, 1, 3, 2]
        var sums = (try? Frame.decode(arrays[2], as: Double.self)) ?? []
        var objective: [Double] = (try? Frame.decode(arrays[3], as: Double.self)) ?? []
        switch lie {
        case "index out of range": listed[3] = 40
        case "negative index": listed[0] = -1
        case "repeated index": listed[2] = 5
        case "descending": listed = [5, 2, 6, 39]
        case "zero count": counts = [4, 1, 0, 2]
        case "negative count": counts = [4, 1, -3, 2]
        case "counts short": counts = [4, 1, 2, 2]
        case "more listed than k": shape.clusters = 41
        case "negative listed": shape.clusters = -1
        case "fewer arrays than listed": shape.clusters = 5
        case "NaN sum": sums[6] = .nan
        default: objective[3] = -1
        }
        arrays[0] = Frame.encode(listed)
        arrays[1] = Frame.encode(counts)
        arrays[2] = Frame.encode(sums)
        arrays[3] = Frame.encode(objective)
        let rejection = ResultCheckTests.rejection(KMeansStatistics.self, ResultCheckTests.message(shape, arrays), Self.pass())
        #expect(rejection?.contains(expected) == true, "\(lie): \(String(describing: rejection))")
    }

    // MARK: On a cluster

    static let rows = 1_500, dimension = 4, shardRows = 50, k = 200

    /// K = 200 against 50-row shards: every shard's RESULT is sparse, with the sums of squares
    /// too (the GMM's k-means initialisation asks for them).
    @Test(.timeLimit(.minutes(2)), arguments: [(1, 1), (3, 1), (2, 2)])
    func aClusterSendingSparseResultsMatchesTheLocalEngineBitForBit(workers: Int, threads: Int) async throws {
        let corpus = try Corpora.path(rows: Self.rows, dimension: Self.dimension, clusters: 40)
        let matrix = try DescriptorMatrix.open(path: corpus)
        let backend = LocalBackend(corpus: matrix, shardRows: Self.shardRows, threads: 1)
        var parameters = GaussianMixtureParameters(k: Self.k)
        parameters.iterations = 2
        parameters.seed = 3
        parameters.tolerance = 0
        parameters.initialization = .kmeans(iterations: 3)
        parameters.varianceFloorRatio = 1e-3
        let expected = try await GaussianMixture.train(on: backend, parameters: parameters).model
        // The mechanism under test is in use: a shard's statistics are sparse on the wire.
        let codebook = try Codebook(k: Self.k, dimension: Self.dimension,
                                    centres: try matrix.slice(0 ..< Self.k).toArray())
        let shardStatistics = try KMeansAssignmentPass(codebook: codebook, withSquares: true)
            .statistics(of: try matrix.slice(0 ..< Self.shardRows), shard: 0, workspace: KernelWorkspace())
        #expect(shardStatistics.sparseIsSmaller)

        let cluster = try EmbeddedCluster(workers: workers, threadsPerWorker: threads, logger: quietLogger())
        defer { cluster.shutdown() }
        let client = try cluster.client()
        let job = try client.submit(TrainingJob(kind: .gmm, corpus: corpus, k: Self.k, iterations: 2, seed: 3, tolerance: 0,
                                                shardRows: Self.shardRows, initialization: .kmeans, kmeansIterations: 3,
                                                varianceFloorRatio: 1e-3))
        let (_, reply) = try await client.follow(job, every: .milliseconds(10), iteration: { _ in })
        for (index, values) in [expected.means, expected.variances, expected.priors].enumerated() {
            #expect(try reply.array(index, as: Float.self).map(\.bitPattern) == values.map(\.bitPattern),
                    "array \(index), \(workers) worker(s) × \(threads) thread(s)")
        }
        #expect(try client.status().rejectedResults == 0)
    }
}
