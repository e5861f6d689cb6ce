import ArgumentParser
import Foundation

/// `codebook-bench`: speed of Codebook's kernels against baselines measured in the same
/// run, each section checking its results so that a fast wrong answer fails.
@main
struct CodebookBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "codebook-bench",
        abstract: "Benchmarks Codebook against sgemm, faiss, scikit-learn and VLFeat, and checks the results.",
        subcommands: [KMeansCommand.self, GaussianMixtureCommand.self, EncodingCommand.self, MemoryCommand.self,
                      AllCommand.self, MemoryChildCommand.self],
        defaultSubcommand: AllCommand.self)
}

struct KMeansCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "kmeans",
                                                    abstract: "k-means iteration vs bare sgemm, faiss and scikit-learn.")
    @OptionGroup var options: BenchOptions
    func run() async throws { try await Bench.run([.kmeans], options) }
}

struct GaussianMixtureCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "gmm",
                                                    abstract: "EM iteration vs k-means iteration and scikit-learn.")
    @OptionGroup var options: BenchOptions
    func run() async throws { try await Bench.run([.gmm], options) }
}

struct EncodingCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "encode",
                                                    abstract: "VLAD and Fisher encoding vs VLFeat.")
    @OptionGroup var options: BenchOptions
    func run() async throws { try await Bench.run([.encode], options) }
}

struct MemoryCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "memory",
                                                    abstract: "Peak resident memory of k-means on a corpus larger than 4 GB (needs --large).")
    @OptionGroup var options: BenchOptions
    func run() async throws { try await Bench.run([.memory], options) }
}

struct AllCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "all",
                                                    abstract: "kmeans, gmm and encode (and memory with --large).")
    @OptionGroup var options: BenchOptions
    func run() async throws {
        try await Bench.run(options.large ? [.kmeans, .gmm, .encode, .memory] : [.kmeans, .gmm, .encode], options)
    }
}

/// Runs in a child process so that its peak RSS is the k-means run's alone.
struct MemoryChildCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "memory-child", shouldDisplay: false)
    @Option var corpus: String
    @Option var k: Int
    @Option var threads: Int
    @Option var iterations: Int
    func run() async throws {
        try await MemorySection.child(corpus: corpus, k: k, threads: threads, iterations: iterations)
    }
}

/// The sections and what they share.
enum Bench {
    enum Section: String { case kmeans, gmm, encode, memory }

    static func run(_ sections: [Section], _ options: BenchOptions) async throws {
        let sizes = try options.sizes()
        try FileManager.default.createDirectory(atPath: sizes.workDirectory, withIntermediateDirectories: true)
        print(Machine.describe(threads: sizes.threads))
        print("Sizes: \(sizes.summary)\n")
        var failures: [String] = []
        for section in sections {
            do {
                switch section {
                case .kmeans: try await KMeansSection(sizes: sizes).run()
                case .gmm: try await GaussianMixtureSection(sizes: sizes).run()
                case .encode: try await EncodingSection(sizes: sizes).run()
                case .memory: try await MemorySection(sizes: sizes, large: options.large).run()
                }
            } catch let failure as CheckFailure {
                print("\n**CHECK FAILED** (\(section.rawValue)): \(failure.message)\n")
                failures.append("\(section.rawValue): \(failure.message)")
            }
        }
        if !failures.isEmpty {
            fflush(nil) // stdout first, so the summary follows the tables
            FileHandle.standardError.write(Data(("codebook-bench: \(failures.count) check(s) failed:\n"
                + failures.map { "  - \($0)\n" }.joined()).utf8))
            throw ExitCode(1)
        }
    }
}
