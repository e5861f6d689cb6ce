import Clustering
import Descriptors
import Foundation

/// Section 2: one EM iteration of Codebook against its own k-means iteration and against
/// scikit-learn's diagonal GaussianMixture from the same model.
struct GaussianMixtureSection {
    let sizes: BenchSizes

    static let kmeansTarget = 2.5
    static let sklearnTarget = 0.15
    /// Codebook's log-likelihood vs an exact float64 NumPy evaluation of the same model.
    static let referenceTolerance = 1e-6
    /// vs scikit-learn's lower bound, which it computes in float32 for float32 input.
    static let sklearnTolerance = 1e-4

    /// Runs on the synthetic corpus, then on the real descriptors if given.
    func run() async throws {
        try await Workload(sizes: sizes).onEachCorpus(syntheticRows: sizes.rows) { try await run(on: $0) }
    }

    private func run(on data: BenchCorpus) async throws {
        let workload = Workload(sizes: sizes)
        let path = data.path, initial = data.initial.codebook
        let corpus = data.matrix
        let backend = LocalBackend(corpus: corpus, threads: sizes.threads)
        let n = corpus.rows, k = sizes.k, d = corpus.dimension
        let gmmRows = min(sizes.gmmRows, n)
        let (model, paths) = try await workload.gaussianMixture(backend: backend, initial: initial,
                                                                tag: "\(data.tag)-\(n)x\(d)-k\(k)")

        // Codebook's k-means iteration, measured again in this run.
        var kmeans = KMeansParameters(k: k)
        kmeans.iterations = 1
        kmeans.tolerance = 0
        kmeans.initialization = .given(initial)
        // Interleaved rounds: k-means iteration, E-pass alone, EM iteration as
        // GaussianMixture.train reports it (E-pass + M-step; its wall time also includes the
        // moment pass that sets the variance floor).
        var em = GaussianMixtureParameters(k: k)
        em.iterations = 1
        em.tolerance = 0
        em.initialization = .given(model)
        var statistics: GaussianMixtureStatistics?
        var iterationTimes: [Double] = []
        var firstReport: GaussianMixtureIterationReport?
        let times = try await Stopwatch.interleaved(sizes.repeats, [
            { _ = try await KMeans.train(on: backend, parameters: kmeans) },
            { statistics = try await backend.run(try GaussianMixtureExpectationPass(model: model)) },
            {
                let result = try await GaussianMixture.train(on: backend, parameters: em)
                iterationTimes.append(result.iterations[0].seconds)
                firstReport = result.iterations[0]
            },
        ])
        let (kmeansIteration, expectation, wall) = (times[0], times[1], times[2])
        let emIteration = Stopwatch.median(iterationTimes)
        guard let statistics else { throw CheckFailure("no E-pass ran") }

        // The same on the rows scikit-learn gets, for like-for-like throughput and the LL check.
        let subset = LocalBackend(corpus: try corpus.slice(0..<gmmRows), threads: sizes.threads)
        var subsetTimes: [Double] = []
        var subsetReport: GaussianMixtureIterationReport?
        for _ in 0..<sizes.repeats {
            let result = try await GaussianMixture.train(on: subset, parameters: em)
            subsetTimes.append(result.iterations[0].seconds)
            subsetReport = result.iterations[0]
        }
        let subsetIteration = Stopwatch.median(subsetTimes)

        let outcome = PythonBaselines(sizes: sizes).run([
            "gmm", "--data", path, "--rows", String(gmmRows), "--means", paths.means, "--variances", paths.variances,
            "--priors", paths.priors, "--threads", String(sizes.threads), "--repeat", String(sizes.repeats),
        ])
        let sklearn = BaselineResult(outcome, library: "sklearn")

        var table = MarkdownTable("GMM (diagonal): one EM iteration, \(data.label), N=\(n) D=\(d) K=\(k), \(sizes.threads) threads",
                                  columns: ["measurement", "rows", "time / iteration", "µs / row", "ratio", "target"])
        func perRow(_ time: Double, _ rows: Int) -> String { format(time / Double(rows) * 1e6, "%.3f") }
        table.add("Codebook k-means iteration (KMeans.train, 1 iteration)", "\(n)", seconds(kmeansIteration),
                  perRow(kmeansIteration, n), "", "")
        table.add("Codebook E-pass (backend.run(GaussianMixtureExpectationPass))", "\(n)", seconds(expectation),
                  perRow(expectation, n), ratio(expectation / kmeansIteration) + " of k-means", "")
        table.add("**Codebook EM iteration** (E + M, GaussianMixture.train report)", "\(n)", seconds(emIteration),
                  perRow(emIteration, n), "**" + ratio(emIteration / kmeansIteration) + " of k-means**",
                  verdict(emIteration / kmeansIteration <= Self.kmeansTarget, "≤ \(Self.kmeansTarget)×"))
        table.add("Codebook GaussianMixture.train wall (moment pass + E + M)", "\(n)", seconds(wall),
                  perRow(wall, n), "", "")
        table.add("Codebook EM iteration on scikit-learn's rows", "\(gmmRows)", seconds(subsetIteration),
                  perRow(subsetIteration, gmmRows), "", "")
        switch sklearn {
        case .skipped(let reason):
            table.add("scikit-learn GaussianMixture iteration", "", "skipped", "", "", "")
            table.note("scikit-learn skipped: \(reason)")
        case .measured:
            let time = sklearn.number("seconds_per_iteration") ?? .nan
            let rows = Int(sklearn.number("rows") ?? Double(gmmRows))
            let sameRows = subsetIteration / time
            table.add("scikit-learn \(sklearn.string("version") ?? "") GaussianMixture iteration", "\(rows)", seconds(time),
                      perRow(time, rows), "", "")
            table.add("**Codebook / scikit-learn, per row, same \(rows) rows**", "", "", "", "**" + ratio(sameRows) + "**",
                      verdict(sameRows <= Self.sklearnTarget, "≤ \(Self.sklearnTarget)×"))
            let fullRows = (emIteration / Double(n)) / (time / Double(rows))
            table.add("Codebook (N=\(n)) / scikit-learn (\(rows) rows), per row", "", "", "", ratio(fullRows), "")
        }
        table.note("scikit-learn time per iteration = fit(max_iter=2) − fit(max_iter=1), float32 input, covariance_type='diag', "
                   + "weights/means/precisions_init from the same model (its own initialisation pass and final E-step cancel).")
        table.print()

        // The check: Σ log p(x) / N of the model both start from.
        var check = MarkdownTable("GMM check (\(data.label)): mean log-likelihood per row of the initial model",
                                  columns: ["figure", "rows", "mean log p(x)", "relative to Codebook", "tolerance"])
        let fullLL = statistics.logLikelihood / Double(statistics.rows)
        check.add("Codebook, E-pass (= iteration 0 report)", "\(n)", format(fullLL, "%.8f"), "", "")
        if let firstReport {
            try Check.agree("Codebook E-pass vs GaussianMixture.train iteration 0", firstReport.meanLogLikelihood, fullLL,
                            tolerance: 1e-12)
        }
        let ours = subsetReport?.meanLogLikelihood ?? .nan
        check.add("Codebook, iteration 0 report", "\(gmmRows)", format(ours, "%.8f"), "", "")
        var failures: [String] = []
        if case .measured = sklearn {
            if let reference = sklearn.number("reference_mean_log_likelihood") {
                let difference = Check.relativeDifference(reference, ours)
                check.add("NumPy float64 evaluation of the same model", "\(gmmRows)", format(reference, "%.8f"),
                          format(difference, "%.2e"), "\(Self.referenceTolerance)")
                if !(difference <= Self.referenceTolerance) {
                    failures.append("mean log-likelihood \(ours) vs float64 reference \(reference)")
                }
            }
            if let bound = sklearn.number("lower_bound_after_1_iteration") {
                let difference = Check.relativeDifference(bound, ours)
                check.add("scikit-learn lower_bound_ after 1 iteration (float32)", "\(gmmRows)", format(bound, "%.8f"),
                          format(difference, "%.2e"), "\(Self.sklearnTolerance)")
                if !(difference <= Self.sklearnTolerance) {
                    failures.append("mean log-likelihood \(ours) vs scikit-learn lower bound \(bound)")
                }
            }
        }
        check.note("scikit-learn's lower_bound_ after max_iter=1 is the mean log-likelihood computed in the E-step of that "
                   + "iteration, i.e. of the initial model, the same quantity as Codebook's iteration-0 report.")
        check.print()
        if !failures.isEmpty { throw CheckFailure(failures.joined(separator: "; ")) }
    }
}
