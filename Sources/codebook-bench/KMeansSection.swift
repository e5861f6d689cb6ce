import Clustering
import Descriptors
import Foundation

/// Section 1: one Lloyd iteration of Codebook against the bare sgemm it is built on and
/// against faiss and scikit-learn from the same initial centres.
struct KMeansSection {
    let sizes: BenchSizes

    /// Objectives of the final centres must agree this closely (relative).
    static let objectiveTolerance = 1e-3
    static let sgemmTarget = 1.15
    static let libraryTarget = 1.0

    func run() async throws {
        let workload = Workload(sizes: sizes)
        let path = try workload.corpus(rows: sizes.rows)
        let (centresPath, initial) = try workload.initialCentres(corpus: path)
        let corpus = try DescriptorMatrix.open(path: path)
        let backend = LocalBackend(corpus: corpus, threads: sizes.threads)
        let n = corpus.rows, k = sizes.k, d = corpus.dimension

        // Bare sgemm, both ways; the first engine-blocks run also warms the page cache.
        let sgemm = SgemmBaseline(corpus: corpus, codebook: initial, threads: sizes.threads)
        try await sgemm.engineBlocks()
        var one = KMeansParameters(k: k)
        one.iterations = 1
        one.tolerance = 0
        one.initialization = .given(initial)
        // Interleaved: sgemm both ways, Codebook's assignment pass alone (with the sgemm screen
        // too, where the fused one runs), a whole iteration.
        let screen = NearestCentreSearch.Screen.preferred
        var bodies: [() async throws -> Void] = [
            { try await sgemm.engineBlocks() },
            { try sgemm.openBLASThreads() },
            { _ = try await backend.run(KMeansAssignmentPass(codebook: initial)) },
            { _ = try await KMeans.train(on: backend, parameters: one) },
        ]
        if screen == .fused { bodies.append({ _ = try await backend.run(KMeansAssignmentPass(codebook: initial, screen: .blas)) }) }
        let times = try await Stopwatch.interleaved(sizes.repeats, bodies)
        let (engineBlocks, openBLAS, pass, iteration) = (times[0], times[1], times[2], times[3])
        let sgemmBest = min(engineBlocks, openBLAS)

        // Codebook: M iterations from the same centres, for the objective check.
        var many = one
        many.iterations = sizes.iterations
        let trained = try await KMeans.train(on: backend, parameters: many)
        let codebookObjective = try await backend.run(KMeansAssignmentPass(codebook: trained.codebook)).objective

        // faiss and scikit-learn, same files, same threads, same iterations.
        let outcome = PythonBaselines(sizes: sizes).run([
            "kmeans", "--data", path, "--init", centresPath, "--iterations", String(sizes.iterations),
            "--threads", String(sizes.threads), "--repeat", String(sizes.repeats), "--out-dir", sizes.workDirectory,
        ])
        let faiss = BaselineResult(outcome, library: "faiss")
        let sklearn = BaselineResult(outcome, library: "sklearn")

        let flops = 2.0 * Double(n) * Double(k) * Double(d)
        var table = MarkdownTable("k-means: one Lloyd iteration, N=\(n) D=\(d) K=\(k), \(sizes.threads) threads",
                                  columns: ["measurement", "time / iteration", "GFLOP/s (2NKD)", "ratio", "target"])
        table.add("sgemm N×K products, engine blocks (\(kernelBlockRows(k: k)) rows/call, \(sizes.threads) threads of ours)",
                  seconds(engineBlocks), format(flops / engineBlocks / 1e9, "%.1f"), "", "")
        table.add("sgemm N×K products, multithreaded OpenBLAS (\(SgemmBaseline.chunkRows) rows/call)",
                  seconds(openBLAS), format(flops / openBLAS / 1e9, "%.1f"), "", "")
        if screen == .fused {
            table.add("Codebook assignment pass, sgemm screen (Screen.blas, as on CPUs without AVX-512)", seconds(times[4]),
                      format(flops / times[4] / 1e9, "%.1f"), ratio(times[4] / sgemmBest) + " of sgemm", "")
        }
        table.add("Codebook assignment pass (backend.run(KMeansAssignmentPass), Screen.\(screen))", seconds(pass),
                  format(flops / pass / 1e9, "%.1f"), ratio(pass / sgemmBest) + " of sgemm", "")
        table.add("**Codebook k-means iteration** (KMeans.train, 1 iteration, .given)", seconds(iteration),
                  format(flops / iteration / 1e9, "%.1f"), "**" + ratio(iteration / sgemmBest) + " of sgemm**",
                  verdict(iteration / sgemmBest <= Self.sgemmTarget, "≤ \(Self.sgemmTarget)×"))
        var libraryTimes: [Double] = []
        for (name, result) in [("faiss", faiss), ("scikit-learn", sklearn)] {
            switch result {
            case .skipped(let reason):
                table.add("\(name) k-means iteration", "skipped", "", "", "")
                table.note("\(name) skipped: \(reason)")
            case .measured:
                let time = result.number("seconds_per_iteration") ?? .nan
                libraryTimes.append(time)
                table.add("\(name) \(result.string("version") ?? "") iteration", seconds(time),
                          format(flops / time / 1e9, "%.1f"), "Codebook = " + ratio(iteration / time), "")
            }
        }
        if let fastest = libraryTimes.min() {
            table.add("**Codebook / min(faiss, scikit-learn)**", "", "", "**" + ratio(iteration / fastest) + "**",
                      verdict(iteration / fastest <= Self.libraryTarget, "≤ \(Self.libraryTarget)×"))
        }
        table.note("Baseline for the sgemm ratio: the faster sgemm row (\(seconds(sgemmBest))). Medians of \(sizes.repeats) interleaved rounds; "
                   + "the corpus is memory-mapped and in the page cache for every measurement.")
        table.note("scikit-learn time per iteration: \(sklearn.string("timing") ?? "–"); its final centres come from "
                   + "KMeans(algorithm='lloyd', n_init=1, init=centres, tol=0, max_iter=\(sizes.iterations)).fit "
                   + "(n_iter_ = \(sklearn.number("iterations_run").map { String(Int($0)) } ?? "–")). faiss = train time / \(sizes.iterations), "
                   + "max_points_per_centroid = N (no subsampling).")
        table.print()

        // The check: final centres after the same number of Lloyd updates from the same start,
        // every set evaluated by the same exact float64 pass.
        var check = MarkdownTable("k-means check: objective Σ‖x − c‖² of the centres after \(sizes.iterations) Lloyd updates "
                                  + "from the same initial centres (each evaluated by Codebook's exact float64 pass)",
                                  columns: ["library", "objective / row", "relative to Codebook", "library's own figure"])
        check.add("Codebook", format(codebookObjective / Double(n), "%.6f"), "", "report of last iteration (before its update): "
                  + format((trained.iterations.last?.objective ?? .nan) / Double(n), "%.6f"))
        var failures: [String] = []
        for (name, result, ownKey, ownMeaning) in [
            ("faiss", faiss, "objective_last_iteration", "obj[-1], before the last update, float32 sums"),
            ("scikit-learn", sklearn, "inertia", "inertia_, final centres, float32"),
        ] {
            guard case .measured = result, let centresPath = result.string("centres") else { continue }
            let values = try NpyFile.readFloat32(path: centresPath)
            let centres = try Codebook(k: values.rows, dimension: values.columns, centres: values.values)
            let objective = try await backend.run(KMeansAssignmentPass(codebook: centres)).objective
            let difference = Check.relativeDifference(objective, codebookObjective)
            let own = result.number(ownKey).map { format($0 / Double(n), "%.6f") + " (\(ownMeaning))" } ?? ""
            check.add(name, format(objective / Double(n), "%.6f"), format(difference, "%.2e"), own)
            if difference > Self.objectiveTolerance || !objective.isFinite {
                failures.append("\(name) final objective \(objective) vs Codebook \(codebookObjective): relative difference "
                                + format(difference, "%.3e") + " > \(Self.objectiveTolerance)")
            }
        }
        if let faissOwn = faiss.number("objective_last_iteration"), let ours = trained.iterations.last?.objective,
           Check.relativeDifference(ours, faissOwn) > Self.objectiveTolerance {
            failures.append("objective at the last iteration: Codebook \(ours) vs faiss obj[-1] \(faissOwn)")
        }
        check.note("Tolerance: \(Self.objectiveTolerance) relative. Codebook's first-iteration objective (initial centres): "
                   + format((trained.iterations.first?.objective ?? .nan) / Double(n), "%.6f") + " per row.")
        check.print()
        if !failures.isEmpty { throw CheckFailure(failures.joined(separator: "; ")) }
    }
}
