import ArgumentParser
import Clustering
import Descriptors
import Foundation

/// Options of the seeding section.
struct SeedingOptions: ParsableArguments {
    @Option(parsing: .upToNextOption, help: "k-means‖ configurations to compare with k-means++, as SAMPLE:OVERSAMPLING:ROUNDS (SAMPLE: rows per centre the rounds run on, 0 for all rows; OVERSAMPLING: ℓ/K). Default: the engine's defaults.")
    var seedingConfigs: [String] = []
    @Option(help: "Seeds per initialisation (the objectives and times are their means).") var seedingSeeds: Int = 3
    @Option(help: "The first seed; the seeds are FIRST, FIRST + 1, … (to split the seeds among runs).") var seedingFirstSeed: UInt64 = 1
    @Flag(help: "With --corpus, skip the synthetic corpus.") var seedingRealOnly = false
    @Flag(help: "Skip k-means++ (no objective ratios then), e.g. to see k-means‖'s steps quickly.") var seedingNoBaseline = false

    func validated() throws -> (configs: [SeedingSection.Config], seeds: ClosedRange<UInt64>, realOnly: Bool, baseline: Bool) {
        guard seedingSeeds >= 1, seedingSeeds <= 1000 else { throw ValidationError("--seeding-seeds must be 1…1000") }
        guard seedingFirstSeed <= UInt64.max - 1000 else { throw ValidationError("--seeding-first-seed is too large") }
        let configs = try seedingConfigs.map { text -> SeedingSection.Config in
            let parts = text.split(separator: ":").map(String.init)
            guard parts.count == 3, let sample = Int(parts[0]), sample >= 0, let ell = Double(parts[1]), ell > 0, ell.isFinite,
                  let rounds = Int(parts[2]), rounds >= 1, rounds <= KMeansParallel.maximumRounds else {
                throw ValidationError("--seeding-configs: '\(text)' is not SAMPLE:OVERSAMPLING:ROUNDS (SAMPLE ≥ 0, OVERSAMPLING > 0, ROUNDS ≥ 1)")
            }
            return SeedingSection.Config(sample: sample == 0 ? nil : sample, oversampling: ell, rounds: rounds)
        }
        return (configs.isEmpty ? [SeedingSection.Config.engineDefault] : configs,
                seedingFirstSeed ... seedingFirstSeed + UInt64(seedingSeeds - 1), seedingRealOnly, !seedingNoBaseline)
    }
}

/// Seeding: k-means‖ against k-means++ on the sample of `KMeansParameters.sampleSize` rows,
/// on the synthetic corpus and on `--corpus`: the seeding time against one Lloyd iteration,
/// and the objective after `--iterations` Lloyd iterations (tolerance 0), means over
/// `--seeding-seeds` seeds; the steps of the first seed's k-means‖ seedings, with the
/// reduction's share. Checks: each k-means‖ seeding gives the same centres with the shards'
/// distances kept between rounds and the reduction on the machine's threads, and without
/// kept distances and the reduction on one thread (bit for bit).
struct SeedingSection {
    struct Config: Sendable {
        var sample: Int?
        var oversampling: Double
        var rounds: Int

        static var engineDefault: Config {
            let parameters = KMeansParameters(k: 1)
            return Config(sample: parameters.seedingSample, oversampling: parameters.seedingOversampling,
                          rounds: parameters.seedingRounds)
        }

        var label: String {
            "k-means‖ ℓ=\(format(oversampling, "%g"))K R=\(rounds), " + (sample.map { "sample \($0)·K rows" } ?? "all rows")
        }
    }

    let sizes: BenchSizes
    let configs: [Config]
    let seeds: ClosedRange<UInt64>
    let realOnly: Bool
    /// Whether k-means++ runs first, as the baseline of the objective ratios.
    let baseline: Bool

    static let objectiveTarget = 1.005
    static let timeTarget = 1.0

    func run() async throws {
        if realOnly, let path = sizes.realCorpus {
            let matrix = try DescriptorMatrix.open(path: path)
            try await compare(try matrix.slice(0..<min(sizes.rows, matrix.rows)),
                              label: "real: " + URL(fileURLWithPath: path).lastPathComponent)
            return
        }
        try await Workload(sizes: sizes).onEachCorpus(syntheticRows: sizes.rows) { data in
            try await compare(data.matrix, label: data.label)
        }
    }

    func compare(_ corpus: DescriptorMatrix, label: String) async throws {
        let k = sizes.k, iterations = sizes.iterations
        let backend = LocalBackend(corpus: corpus, threads: sizes.threads)
        var table = MarkdownTable("Seeding on \(label): N=\(corpus.rows) D=\(corpus.dimension) K=\(k), \(sizes.threads) threads, "
                                  + "means of seeds \(seeds.lowerBound)…\(seeds.upperBound), then \(iterations) Lloyd iterations (tolerance 0)",
                                  columns: ["initialisation", "seeding", "seeding / Lloyd iteration", "objective after",
                                            "objective / k-means++'s", "targets"])
        var phases = MarkdownTable("k-means‖ seeding steps on \(label), seed \(seeds.lowerBound) (round 1 includes drawing the first candidate)",
                                   columns: ["initialisation", "step", "candidates after", "seconds", "of which reduction"])
        var failures: [String] = [], perSeed: [String] = []
        var lloyd: [Double] = []
        var baselineObjective: Double?
        let initialisations: [Config?] = (baseline ? [nil] : []) + configs.map(Optional.some)
        for config in initialisations {
            var seedingSeconds: [Double] = [], objectives: [Double] = []
            for seed in seeds {
                var parameters = KMeansParameters(k: k)
                parameters.seed = seed
                parameters.iterations = iterations
                parameters.tolerance = 0
                if let config {
                    parameters.initialization = .kmeansParallel
                    parameters.seedingSample = config.sample
                    parameters.seedingOversampling = config.oversampling
                    parameters.seedingRounds = config.rounds
                }
                var steps: [KMeansParallel.RoundReport] = []
                let (initial, seconds) = try await Stopwatch.time {
                    try await KMeans.initialCodebook(backend: backend, parameters: parameters) { steps.append($0) }
                }
                seedingSeconds.append(seconds)
                if let config, seed == seeds.lowerBound {
                    // The check: no kept distances (every round measures all candidates), the
                    // reduction on one thread.
                    var plainSteps: [KMeansParallel.RoundReport] = []
                    let plain = try await KMeansParallel.seed(
                        backend: LocalBackend(corpus: corpus, threads: sizes.threads, seedingMemory: 0), k: k, seed: seed,
                        rounds: config.rounds, oversampling: config.oversampling,
                        sampling: KMeansParallel.sampling(perCentre: config.sample, k: k, rows: corpus.rows), threads: 1
                    ) { plainSteps.append($0) }
                    if plain != initial {
                        failures.append("\(config.label): centres differ with and without kept distances, or reduction threads")
                    }
                    for (variant, reports) in [("", steps), (" (check: no kept distances, reduction on 1 thread)", plainSteps)] {
                        for step in reports {
                            phases.add(config.label + variant, step.round > config.rounds ? "weighting + reduction" : "round \(step.round)",
                                       "\(step.candidates)", format(step.seconds, "%.3f"), format(step.reductionSeconds, "%.3f"))
                        }
                    }
                }
                parameters.initialization = .given(initial)
                let result = try await KMeans.train(on: backend, parameters: parameters)
                objectives.append(try await backend.run(KMeansAssignmentPass(codebook: result.codebook)).objective)
                lloyd += result.iterations.map(\.seconds)
                print("\(config?.label ?? "k-means++") seed \(seed): seeding \(format(seconds, "%.3f")) s, "
                      + "objective \(format(objectives.last!, "%.8g")), Lloyd iteration median so far \(format(Stopwatch.median(lloyd), "%.3f")) s")
                fflush(nil)
            }
            perSeed.append("\(config?.label ?? "k-means++"): " + objectives.map { format($0, "%.8g") }.joined(separator: ", "))
            let seeding = seedingSeconds.reduce(0, +) / Double(seeds.count), objective = objectives.reduce(0, +) / Double(seeds.count)
            if config == nil { baselineObjective = objective }
            let iteration = Stopwatch.median(lloyd)
            let relative = baselineObjective.map { objective / $0 }
            let targets = config == nil ? "" : verdict(seeding / iteration <= Self.timeTarget, "≤ \(format(Self.timeTarget, "%g")) iteration")
                + (relative.map { ", " + verdict($0 <= Self.objectiveTarget, "objective ≤ \(format(Self.objectiveTarget, "%g"))×") } ?? "")
            table.add(config?.label ?? "k-means++ on max(64·K, 10,000) rows", seconds(seeding), ratio(seeding / iteration),
                      format(objective, "%.6g"), relative.map { format($0, "%.5f") } ?? "—", targets)
        }
        table.note("One Lloyd iteration: \(seconds(Stopwatch.median(lloyd))) (median of every iteration run above). "
                   + "Objective: Σ‖x − c‖² of the final centres, an exact float64 pass. Per seed \(seeds.lowerBound)…\(seeds.upperBound): "
                   + perSeed.joined(separator: "; ") + ".")
        table.print()
        phases.print()
        if !failures.isEmpty { throw CheckFailure(failures.joined(separator: "; ")) }
    }
}
