import ArgumentParser
import Clustering
import Descriptors
import Foundation

/// Options of the seeding section.
struct SeedingOptions: ParsableArguments {
    @Option(parsing: .upToNextOption, help: "k-means‖ configurations to compare with k-means++, as SAMPLE:OVERSAMPLING:ROUNDS (SAMPLE: rows per centre the rounds run on, 0 for all rows; OVERSAMPLING: ℓ/K). Default: the engine's defaults.")
    var seedingConfigs: [String] = []
    @Option(help: "Seeds per initialisation (the objectives and times are their means).") var seedingSeeds: Int = 3
    @Flag(help: "With --corpus, skip the synthetic corpus.") var seedingRealOnly = false

    func validated() throws -> (configs: [SeedingSection.Config], seeds: Int, realOnly: Bool) {
        guard seedingSeeds >= 1 else { throw ValidationError("--seeding-seeds must be ≥ 1") }
        let configs = try seedingConfigs.map { text -> SeedingSection.Config in
            let parts = text.split(separator: ":").map(String.init)
            guard parts.count == 3, let sample = Int(parts[0]), sample >= 0, let ell = Double(parts[1]), ell > 0, ell.isFinite,
                  let rounds = Int(parts[2]), rounds >= 1, rounds <= KMeansParallel.maximumRounds else {
                throw ValidationError("--seeding-configs: '\(text)' is not SAMPLE:OVERSAMPLING:ROUNDS (SAMPLE ≥ 0, OVERSAMPLING > 0, ROUNDS ≥ 1)")
            }
            return SeedingSection.Config(sample: sample == 0 ? nil : sample, oversampling: ell, rounds: rounds)
        }
        return (configs.isEmpty ? [SeedingSection.Config.engineDefault] : configs, seedingSeeds, seedingRealOnly)
    }
}

/// Seeding: k-means‖ against k-means++ on the sample of `KMeansParameters.sampleSize` rows,
/// on the synthetic corpus and on `--corpus`: the seeding time against one Lloyd iteration,
/// and the objective after `--iterations` Lloyd iterations (tolerance 0), means over
/// `--seeding-seeds` seeds. Checks: each k-means‖ seeding gives the same centres with the
/// shards' distances kept between rounds and without (bit for bit).
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
    let seeds: Int
    let realOnly: Bool

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
                                  + "means of \(seeds) seeds, then \(iterations) Lloyd iterations (tolerance 0)",
                                  columns: ["initialisation", "seeding", "seeding / Lloyd iteration", "objective after",
                                            "objective / k-means++'s", "targets"])
        var failures: [String] = []
        var lloyd: [Double] = []
        var baseline = 0.0
        for (index, config) in ([nil] + configs.map(Optional.some)).enumerated() {
            var seedingSeconds: [Double] = [], objectives: [Double] = []
            for seed in 1...UInt64(seeds) {
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
                let (initial, seconds) = try await Stopwatch.time {
                    try await KMeans.initialCodebook(backend: backend, parameters: parameters)
                }
                seedingSeconds.append(seconds)
                if config != nil, seed == 1 {
                    let plain = try await KMeans.initialCodebook(backend: LocalBackend(corpus: corpus, threads: sizes.threads,
                                                                                       seedingMemory: 0),
                                                                 parameters: parameters)
                    if plain != initial { failures.append("\(config!.label): centres differ with and without kept distances") }
                }
                parameters.initialization = .given(initial)
                let result = try await KMeans.train(on: backend, parameters: parameters)
                objectives.append(try await backend.run(KMeansAssignmentPass(codebook: result.codebook)).objective)
                lloyd += result.iterations.map(\.seconds)
            }
            let seeding = seedingSeconds.reduce(0, +) / Double(seeds), objective = objectives.reduce(0, +) / Double(seeds)
            if index == 0 { baseline = objective }
            let iteration = Stopwatch.median(lloyd)
            let targets = index == 0 ? "" : verdict(seeding / iteration <= Self.timeTarget, "≤ \(format(Self.timeTarget, "%g")) iteration") + ", "
                + verdict(objective / baseline <= Self.objectiveTarget, "objective ≤ \(format(Self.objectiveTarget, "%g"))×")
            table.add(config?.label ?? "k-means++ on max(64·K, 10,000) rows", seconds(seeding), ratio(seeding / iteration),
                      format(objective, "%.6g"), format(objective / baseline, "%.5f"), targets)
        }
        table.note("One Lloyd iteration: \(seconds(Stopwatch.median(lloyd))) (median of every iteration run above). "
                   + "Objective: Σ‖x − c‖² of the final centres, an exact float64 pass.")
        table.print()
        if !failures.isEmpty { throw CheckFailure(failures.joined(separator: "; ")) }
    }
}
