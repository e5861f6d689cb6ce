@testable import Clustering
import Descriptors
import Testing

/// Pruned k-means passes (`PrunedAssignment`) give bit-identical statistics to full ones.
@Suite struct PruningTests {
    /// The centres of an unpruned run after each iteration, the initial ones first.
    func trajectory(_ data: DescriptorMatrix, k: Int, iterations: Int, seed: UInt64 = 1) async throws -> [Codebook] {
        var parameters = KMeansParameters(k: k)
        parameters.iterations = iterations
        parameters.tolerance = 0
        parameters.seed = seed
        parameters.initialization = .random
        let backend = LocalBackend(corpus: data, shardRows: 500, threads: 2, boundMemory: 0)
        let start = try await KMeans.initialCodebook(backend: backend, parameters: parameters)
        parameters.initialization = .given(start)
        var codebooks = [start]
        _ = try await KMeans.train(on: backend, parameters: parameters, checkpoint: { codebooks.append($0.codebook) })
        return codebooks
    }

    /// Runs the passes of `codebooks` in order with and without bounds; every pass's
    /// statistics must be equal, bit for bit. Returns the rows (whole) and row × centre
    /// distances skipped per pass.
    @discardableResult
    func expectIdentical(_ data: DescriptorMatrix, _ codebooks: [Codebook], screen: NearestCentreSearch.Screen,
                         shardRows: Int = 500, threads: Int = 2, budget: Int = BoundCache.gibibyte,
                         _ label: String) async throws -> [(rows: Int, pairs: Int)] {
        let plain = LocalBackend(corpus: data, shardRows: shardRows, threads: threads, boundMemory: 0)
        let pruned = LocalBackend(corpus: data, shardRows: shardRows, threads: threads, boundMemory: budget)
        var skipped: [(rows: Int, pairs: Int)] = []
        for (i, codebook) in codebooks.enumerated() {
            let full = try await plain.run(KMeansAssignmentPass(codebook: codebook, screen: screen))
            var pass = KMeansAssignmentPass(codebook: codebook, screen: screen)
            pass.bounds = pruned.assignmentBounds
            let fast = try await pruned.run(pass)
            let same = full == fast  // not in the expectation: it would print every sum
            #expect(same, "\(label), \(screen), pass \(i): statistics differ (counts \(full.counts == fast.counts))")
            #expect(full.objective == fast.objective)
            skipped.append((fast.skippedRows, fast.skippedPairs))
        }
        return skipped
    }

    static var screens: [NearestCentreSearch.Screen] { NearestCentreSearch.Screen.preferred == .fused ? [.fused, .blas] : [.blas] }

    @Test(.timeLimit(.minutes(5)), arguments: [8, 64, 300, 1000])
    func prunedPassesEqualFullOnesOnCrowdedAndSeparatedData(k: Int) async throws {
        for (name, data) in [("crowded", try blobs(rows: 3000, dimension: 16, blobs: 3, seed: UInt64(k), spread: 30)),
                             ("separated", try blobs(rows: 3000, dimension: 16, blobs: 40, seed: UInt64(k) + 1, spread: 2))] {
            let codebooks = try await trajectory(data, k: k, iterations: 8)
            for screen in Self.screens {
                let skipped = try await expectIdentical(data, codebooks, screen: screen, "\(name) k=\(k)")
                #expect(skipped[0].rows == 0 && skipped[0].pairs == 0, "the first pass has no bounds")
                // Late iterations barely move the centres: most distances must be skipped.
                #expect(skipped.last!.pairs > data.rows * k / 4, "\(name) k=\(k) \(screen): only \(skipped) skipped")
            }
        }
    }

    @Test(.timeLimit(.minutes(2)))
    func trainingIsBitIdenticalWithPruningOnOrOffAtAnyThreadCount() async throws {
        let data = try blobs(rows: 4000, dimension: 20, blobs: 12, seed: 5, spread: 10)
        var parameters = KMeansParameters(k: 24)
        parameters.iterations = 10
        parameters.tolerance = 0
        parameters.seed = 3
        let off = try await KMeans.train(on: LocalBackend(corpus: data, shardRows: 333, threads: 1, boundMemory: 0),
                                         parameters: parameters)
        for threads in [1, 3] {
            let on = try await KMeans.train(on: LocalBackend(corpus: data, shardRows: 333, threads: threads, boundMemory: BoundCache.gibibyte), parameters: parameters)
            #expect(on.codebook == off.codebook, "threads \(threads)")
            #expect(on.iterations.map(\.objective) == off.iterations.map(\.objective))
            #expect(on.iterations.dropFirst().contains { ($0.skippedRows ?? 0) > 0 })
        }
        #expect(off.iterations.allSatisfy { $0.skippedRows == 0 })
    }

    /// Exact ties: integer rows, some duplicated, and centres that are duplicated or move onto
    /// the point where a row is exactly as far from a lower-numbered centre as from its own.
    @Test func tiesAndDuplicatesGoToTheLowestIndexAsWithoutBounds() async throws {
        let d = 4
        var values: [Float] = []
        for i in 0..<600 {
            let row: [Float] = [Float(i % 7), Float(i % 3), 0, Float(i % 2)]
            values += row
            if i % 5 == 0 { values += row }  // duplicate rows
        }
        let data = try DescriptorMatrix(rows: values.count / d, dimension: d, values: values)
        func codebook(_ centres: [[Float]]) throws -> Codebook { try Codebook(k: centres.count, dimension: d, centres: centres.flatMap { $0 }) }
        // Centre 0 walks straight towards the rows at x = 0 until they are exactly as far from
        // it as from centre 1 (the triangle inequality is then tight); centres 2 and 3 coincide.
        let passes = try [
            codebook([[-5, 0, 0, 0], [3, 0, 0, 0], [6, 2, 0, 1], [6, 2, 0, 1], [1, 1, 0, 1]]),
            codebook([[-4, 0, 0, 0], [3, 0, 0, 0], [6, 2, 0, 1], [6, 2, 0, 1], [1, 1, 0, 1]]),
            codebook([[-3, 0, 0, 0], [3, 0, 0, 0], [6, 2, 0, 1], [6, 2, 0, 1], [1, 1, 0, 1]]),
            codebook([[-3, 0, 0, 0], [3, 0, 0, 0], [6, 2, 0, 1], [6, 2, 0, 1], [1, 1, 0, 1]]),
            codebook([[0, 0, 0, 0], [0, 0, 0, 0], [6, 2, 0, 1], [6, 2, 0, 1], [1, 1, 0, 1]]),
        ]
        for screen in Self.screens {
            let skipped = try await expectIdentical(data, passes, screen: screen, shardRows: 97, "ties")
            #expect(skipped[3].rows > 0, "an unchanged codebook must skip rows (\(skipped))")
        }
    }

    @Test func evictedOrMissingBoundsAreComputedInFull() async throws {
        let data = try blobs(rows: 2000, dimension: 8, blobs: 6, seed: 8, spread: 4)
        let codebooks = try await trajectory(data, k: 10, iterations: 6)
        // One shard's bounds (500 rows × 12 bytes, one group of centres, + the centres) fit,
        // not two: the other shards are computed in full, and the results stay the same.
        let budget = 500 * 12 + 10 * 8 * 4 + 100
        let skipped = try await expectIdentical(data, codebooks, screen: .preferred, threads: 1, budget: budget, "budget")
        let unlimited = try await expectIdentical(data, codebooks, screen: .preferred, "unlimited")
        #expect(skipped.allSatisfy { $0.rows <= 500 } && skipped.last!.rows > 0, "\(skipped)")
        #expect(unlimited.last!.rows > 500, "\(unlimited)")
    }

    @Test func theCacheKeepsItsBudgetAndDropsStaleEntriesFirst() {
        let cache = BoundCache(budget: 1000)
        func bounds(rows: Int, pass: Float) -> ShardBounds {
            ShardBounds(centres: [pass], order: [], assignments: .init(repeating: 0, count: rows), upper: .init(repeating: 0, count: rows),
                        lower: .init(repeating: 0, count: rows * 16))
        }
        let keys = (0..<4).map { BoundCache.Key(scope: "s", firstRow: $0 * 3, rows: 3) }
        for key in keys.prefix(3) { cache.keep(bounds(rows: 3, pass: 1), for: key) }  // 220 bytes each
        #expect(cache.storedBytes == 660)
        // Pass 2 cycles through the shards: a new one that does not fit is not kept at the
        // expense of bounds the pass has yet to take.
        cache.keep(bounds(rows: 6, pass: 2), for: keys[3])  // 436 bytes
        #expect(!cache.holds(keys[3]) && keys.prefix(3).allSatisfy(cache.holds))
        #expect(cache.take(keys[1]) != nil && cache.take(keys[1]) == nil)
        cache.keep(bounds(rows: 3, pass: 2), for: keys[1])
        // Pass 3: keys 0 and 2 were not taken in pass 2, so they are stale and go, oldest first.
        cache.keep(bounds(rows: 6, pass: 3), for: keys[3])
        #expect(!cache.holds(keys[0]) && cache.holds(keys[1]) && cache.holds(keys[2]) && cache.holds(keys[3]))
        #expect(cache.storedBytes <= 1000)
        cache.keep(bounds(rows: 100, pass: 3), for: keys[1])  // larger than the budget: not kept
        #expect(!cache.holds(keys[1]))
    }

    @Test func boundsRoundOutward() {
        for value in [0.1, 1.0 / 3, 12345.678901, 1e-30, 3e38, 4e38] {
            #expect(Double(PrunedAssignment.roundedUp(value)) >= value)
        }
        #expect(PrunedAssignment.roundedUp(.nan).isNaN)
    }
}
