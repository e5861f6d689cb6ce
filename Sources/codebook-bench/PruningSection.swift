import Clustering
import Descriptors
import Foundation

/// Exact pruning on real descriptors (`--corpus`): whole k-means runs with the distance
/// bounds kept between iterations, against faiss at a large K and against Codebook without
/// bounds at K = --k, from the same given centres with tolerance 0. Checks: the pruned and
/// unpruned centres are bit-identical, and the objective of the final centres is within
/// 1.001× faiss's.
struct PruningSection {
    let sizes: BenchSizes

    static let objectiveTarget = 1.001
    static let faissTarget = 0.3
    static let unprunedTarget = 0.6

    var largeK: Int { sizes.quick ? min(sizes.pruningLargeK, 256) : sizes.pruningLargeK }
    var largeIterations: Int { sizes.quick ? 4 : 20 }
    var smallIterations: Int { sizes.quick ? 5 : 25 }

    func run() async throws {
        guard let path = sizes.realCorpus else {
            throw CheckFailure("the pruning section runs on real descriptors: pass --corpus")
        }
        let contention = ContentionMonitor()
        let file = try DescriptorMatrix.open(path: path)
        let corpus = file.rows > sizes.rows ? try file.slice(0..<sizes.rows) : file
        let n = corpus.rows, d = corpus.dimension
        let name = URL(fileURLWithPath: path).deletingPathExtension().lastPathComponent
        var failures: [String] = []

        var table = MarkdownTable("k-means with exact pruning on real descriptors (\(name)): N=\(n) D=\(d), \(sizes.threads) threads, "
                                  + "same given centres (rows i·N/K), tolerance 0",
                                  columns: ["measurement", "whole training", "per iteration", "ratio", "target"])
        let exact = LocalBackend(corpus: corpus, threads: sizes.threads, boundMemory: 0)
        var pruned: KMeansResult?
        if largeK > 0 {
            pruned = try await compareWithFaiss(corpus, path: path, name: name, exact: exact, table: &table, failures: &failures)
        }

        // K = --k: pruned against unpruned, interleaved, and the centres compared bit for bit.
        let (_, smallInit) = try initialCentres(corpus, k: sizes.k, name: name)
        var runs: [Int: KMeansResult] = [:]
        var cpu: [Int: [Double]] = [:]
        let budgets = [BoundCache.gibibyte, 0]
        let times = try await Stopwatch.interleaved(sizes.repeats, budgets.map { budget in
            {
                var last = Self.processSeconds()
                cpu[budget] = []
                runs[budget] = try await train(corpus, initial: smallInit, iterations: smallIterations, boundMemory: budget) { _ in
                    let now = Self.processSeconds()
                    cpu[budget]!.append(now - last)
                    last = now
                }
            }
        })
        let small = runs[BoundCache.gibibyte]!, unpruned = runs[0]!
        table.add("Codebook, pruned, K=\(sizes.k), \(smallIterations) iterations", seconds(times[0]),
                  seconds(times[0] / Double(smallIterations)), ratio(times[0] / times[1]) + " of unpruned",
                  verdict(times[0] / times[1] <= Self.unprunedTarget, "≤ \(Self.unprunedTarget)×"))
        table.add("Codebook, unpruned (no bounds), K=\(sizes.k), \(smallIterations) iterations", seconds(times[1]),
                  seconds(times[1] / Double(smallIterations)), "", "")
        if small.codebook != unpruned.codebook || small.iterations.map(\.objective) != unpruned.iterations.map(\.objective) {
            failures.append("K=\(sizes.k): pruned and unpruned runs differ")
        }
        if let pruned { table.note("Skipped per iteration, K=\(largeK), whole rows / row × centre distances: " + skipped(pruned)) }
        table.note("Skipped per iteration, K=\(sizes.k), whole rows / row × centre distances: " + skipped(small))
        table.note("Process CPU seconds per iteration, K=\(sizes.k), pruned: " + cpu[BoundCache.gibibyte, default: []].map { format($0, "%.2f") }.joined(separator: " ")
                   + "; unpruned: " + cpu[0, default: []].map { format($0, "%.2f") }.joined(separator: " "))
        table.note("Pruned and unpruned centres at K=\(sizes.k): " + (small.codebook == unpruned.codebook ? "bit-identical." : "**DIFFER**."))
        let largeNote = largeK > 0 ? "faiss: train time = its seconds per iteration × \(largeIterations), one run; Codebook K=\(largeK): one run; " : ""
        table.note(largeNote + "K=\(sizes.k): medians of \(sizes.repeats) interleaved rounds. \(contention.summary())")
        table.print()
        if !failures.isEmpty { throw CheckFailure(failures.joined(separator: "; ")) }
    }

    /// K = `largeK`: one whole pruned run against one faiss run; returns the pruned run.
    func compareWithFaiss(_ corpus: DescriptorMatrix, path: String, name: String, exact: LocalBackend,
                          table: inout MarkdownTable, failures: inout [String]) async throws -> KMeansResult {
        let n = corpus.rows
        let (largePath, largeInit) = try initialCentres(corpus, k: largeK, name: name)
        let (pruned, prunedSeconds) = try await Stopwatch.time {
            try await train(corpus, initial: largeInit, iterations: largeIterations, boundMemory: BoundCache.gibibyte)
        }
        let outcome = PythonBaselines(sizes: sizes).run([
            "kmeans", "--data", path, "--rows", String(n), "--init", largePath, "--iterations", String(largeIterations),
            "--threads", String(sizes.threads), "--repeat", "1", "--out-dir", sizes.workDirectory, "--libraries", "faiss",
        ])
        let faiss = BaselineResult(outcome, library: "faiss")
        let ours = try await exact.run(KMeansAssignmentPass(codebook: pruned.codebook)).objective
        table.add("Codebook, pruned, K=\(largeK), \(largeIterations) iterations", seconds(prunedSeconds),
                  seconds(prunedSeconds / Double(largeIterations)), "", "")
        switch faiss {
        case .skipped(let reason):
            table.add("faiss K=\(largeK)", "skipped", "", "", "")
            table.note("faiss skipped: \(reason)")
        case .measured:
            let perIteration = faiss.number("seconds_per_iteration") ?? .nan
            let faissSeconds = perIteration * Double(largeIterations)
            table.add("faiss \(faiss.string("version") ?? "") Kmeans K=\(largeK) (max_points_per_centroid = N)", seconds(faissSeconds),
                      seconds(perIteration), "Codebook = " + ratio(prunedSeconds / faissSeconds),
                      verdict(prunedSeconds / faissSeconds <= Self.faissTarget, "≤ \(Self.faissTarget)×"))
            if let centresPath = faiss.string("centres") {
                let values = try NpyFile.readFloat32(path: centresPath)
                let theirs = try await exact.run(KMeansAssignmentPass(codebook: try Codebook(k: values.rows, dimension: values.columns,
                                                                                              centres: values.values))).objective
                let objectiveRatio = ours / theirs
                table.add("objective of the final centres, Codebook / faiss (exact float64 pass)", "", "",
                          format(objectiveRatio, "%.6f"), verdict(objectiveRatio <= Self.objectiveTarget, "≤ \(Self.objectiveTarget)"))
                if !(objectiveRatio <= Self.objectiveTarget) {
                    failures.append("K=\(largeK): objective \(ours) is \(format(objectiveRatio, "%.6f"))× faiss's \(theirs)")
                }
            }
        }

        return pruned
    }

    /// User and system CPU seconds of this process so far.
    static func processSeconds() -> Double {
        var time = timespec()
        clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &time)
        return Double(time.tv_sec) + Double(time.tv_nsec) / 1e9
    }

    func train(_ corpus: DescriptorMatrix, initial: Codebook, iterations: Int, boundMemory: Int,
               progress: (KMeansIterationReport) -> Void = { _ in }) async throws -> KMeansResult {
        var parameters = KMeansParameters(k: initial.k)
        parameters.iterations = iterations
        parameters.tolerance = 0
        parameters.initialization = .given(initial)
        return try await KMeans.train(on: LocalBackend(corpus: corpus, threads: sizes.threads, boundMemory: boundMemory),
                                      parameters: parameters, progress: progress)
    }

    /// Rows i·⌊N/K⌋, i < K, written to the work directory for faiss.
    func initialCentres(_ corpus: DescriptorMatrix, k: Int, name: String) throws -> (String, Codebook) {
        let step = corpus.rows / k
        let values = try (0..<k).flatMap { try corpus.row($0 * step) }
        let out = sizes.path("pruning-init-k\(k)-n\(corpus.rows)-of-\(name).npy")
        try NpyFile.write(path: out, rows: k, columns: corpus.dimension, values: values)
        return (out, try Codebook(k: k, dimension: corpus.dimension, centres: values))
    }

    func skipped(_ result: KMeansResult) -> String {
        result.iterations.map {
            format(100 * $0.skippedFraction, "%.0f") + "/" + format(100 * $0.skippedPairFraction(k: result.codebook.k), "%.0f%%")
        }.joined(separator: " ")
    }
}
