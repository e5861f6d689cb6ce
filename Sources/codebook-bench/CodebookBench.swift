import ArgumentParser
import ClusterProtocol
import Clustering
import Foundation

/// `codebook-bench`: speed of Codebook's kernels against baselines measured in the same
/// run, each section checking its results so that a fast wrong answer fails.
@main
enum Entry {
    static func main() async {
        OpenBLASKernels.reexecuteWithBetterKernelsIfNeeded()
        await CodebookBench.main()
    }
}

struct CodebookBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "codebook-bench",
        abstract: "Benchmarks Codebook against sgemm, faiss, scikit-learn and VLFeat, and checks the results.",
        subcommands: [KMeansCommand.self, GaussianMixtureCommand.self, EncodingCommand.self, MemoryCommand.self,
                      ClusterCommand.self, LargeKCommand.self, StoreCommand.self, SearchCommand.self, RetrievalCommand.self, PruningCommand.self,
                      SeedingCommand.self, AllCommand.self, MemoryChildCommand.self],
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

struct ClusterCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "cluster",
        abstract: "k-means on a coordinator + `codebook worker` processes (tcp loopback) vs the embedded engine.",
        discussion: """
        Three tables: (1) one iteration, K=--k on the kmeans corpus, embedded LocalBackend vs ClusterBackend with         --workers worker processes of 1 thread, and again with CURVE on (keys from `codebook keys generate`) (target ≤ 1.10× each; centres must be bit-identical); (2) coordinator work per         iteration (dispatch, merge, update vs workers' compute) for K=--k and K=--wide-k on --wide-rows rows; (3) scaling         on fvecs corpora of --scaling-rows and 4× as many rows (target 4 ± 0.5×) and the workers' peak RSS. Writes         ~5 GB of corpora to --work-dir (the larger one is skipped with < 10 GB free); takes a few minutes. Needs the         `codebook` executable next to this one (or --codebook-binary).
        """)
    @OptionGroup var options: BenchOptions
    @OptionGroup var cluster: ClusterBenchOptions
    func run() async throws { try await Bench.run([.cluster], options, cluster: cluster) }
}

struct LargeKCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "large-k",
        abstract: "k-means at K = --ks (256, 4096, 65,536) on a coordinator + `codebook worker` processes: merge time, bytes, peak memory.",
        discussion: """
        On --corpus (real descriptors; else the synthetic kmeans corpus), --large-k-iterations iterations per K from K \
        evenly spaced rows, with fresh worker processes (--workers, 1 thread each) per K. Prints, for the last iteration: \
        its wall time, the coordinator's merge and dispatch time, the TASK and RESULT bytes (and what dense RESULTs \
        would have been), and the VmHWM of the workers and of this process (which holds the coordinator). Checks the \
        smallest K's centres against the embedded engine bit for bit.
        """)
    @OptionGroup var options: BenchOptions
    @OptionGroup var cluster: ClusterBenchOptions
    @OptionGroup var largeK: LargeKOptions
    func run() async throws { try await Bench.run([.largeK], options, cluster: cluster, largeK: largeK) }
}

struct StoreCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "store",
        abstract: "Encoding into the store through an embedded cluster vs batch encode to .npy; concurrent key lookups.",
        discussion: """
        Two tables: (1) VLAD-encoding --store-images images × --image-rows descriptors (K=--store-k) with         VLADEncoder.encodeInOrder to a .npy vs an EncodingJob on an EmbeddedCluster of --workers workers writing a         CodebookStore (target ≥ 0.8×; a sample of stored vectors must equal the .npy rows bit for bit); (2)         --lookup-clients concurrent ClusterClients doing single-key GETs over tcp loopback for --lookup-seconds         (targets 20,000 gets/s, p99 < 5 ms). Writes a ~3 GB corpus and ~2 GB of vectors to --work-dir.
        """)
    @OptionGroup var options: BenchOptions
    @OptionGroup var cluster: ClusterBenchOptions
    func run() async throws { try await Bench.run([.store], options, cluster: cluster) }
}

struct SearchCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "search",
        abstract: "Exact search over --rows vectors × 256 (1,000,000): a batch of 100 queries vs one sgemm; one query's bandwidth.")
    @OptionGroup var options: BenchOptions
    func run() async throws { try await Bench.run([.search], options) }
}

struct RetrievalCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "retrieval",
        abstract: "mAP in the INRIA Holidays protocol: VLAD and Fisher with RootSIFT, descriptor PCA and whitening, Codebook vs VLFeat.",
        discussion: """
        From a folder of photographs (--images, default scikit-image's, fetched with pip) it writes a Holidays layout to \
        --work-dir: each photograph of every third one (in name order) is a query with six near-duplicate copies \
        (a quarter turn, a small rotation, a scale, a crop, a low JPEG quality, a brightness change); the next photographs \
        give the training images (their copies and random crops), the ones after them random crops as distractors. \
        With --holidays DIR it runs on a real INRIA Holidays layout instead (DIR/jpg/100000.jpg …, optional \
        DIR/distractors/ and DIR/train/). Fails if Codebook's and VLFeat's vectors or mAPs disagree.
        """)
    @OptionGroup var options: BenchOptions
    @OptionGroup var retrieval: RetrievalOptions
    func run() async throws { try await Bench.run([.retrieval], options, retrieval: try retrieval.validated()) }
}

struct PruningCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "pruning",
        abstract: "k-means with exact pruning on real descriptors (--corpus): K=4096 vs faiss, K=--k vs no pruning.")
    @OptionGroup var options: BenchOptions
    func run() async throws { try await Bench.run([.pruning], options) }
}

struct SeedingCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "seeding",
        abstract: "k-means‖ vs k-means++ seeding: time against one Lloyd iteration, objective after --iterations (synthetic, and --corpus).")
    @OptionGroup var options: BenchOptions
    @OptionGroup var seeding: SeedingOptions
    func run() async throws { try await Bench.run([.seeding], options, seeding: try seeding.validated()) }
}

struct AllCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "all",
                                                    abstract: "kmeans, gmm, encode and search (memory with --large; cluster and store with --cluster).")
    @OptionGroup var options: BenchOptions
    @OptionGroup var cluster: ClusterBenchOptions
    @Flag(name: .customLong("cluster"),
          help: "Also run the cluster and store sections (several minutes; ~10 GB of corpora in --work-dir).")
    var includeCluster = false
    func run() async throws {
        var sections: [Bench.Section] = [.kmeans, .gmm, .encode, .search]
        if options.corpus != nil { sections.append(.pruning) }
        if options.large { sections.append(.memory) }
        if includeCluster { sections += [.cluster, .store] }
        try await Bench.run(sections, options, cluster: cluster)
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
    enum Section: String { case kmeans, gmm, encode, memory, cluster, largeK = "large-k", store, search, retrieval, pruning, seeding }

    static func run(_ sections: [Section], _ options: BenchOptions, cluster: ClusterBenchOptions? = nil,
                    retrieval: RetrievalOptions? = nil, largeK: LargeKOptions? = nil,
                    seeding: (configs: [SeedingSection.Config], seeds: ClosedRange<UInt64>, realOnly: Bool, baseline: Bool)? = nil) async throws {
        let sizes = try options.sizes()
        let clusterSizes = try (cluster ?? ClusterBenchOptions.parse([])).resolved(quick: sizes.quick)
        try FileManager.default.createDirectory(atPath: sizes.workDirectory, withIntermediateDirectories: true)
        print(Machine.describe(threads: sizes.threads))
        print("Sizes: \(sizes.summary)\n")
        var failures: [String] = []
        for section in sections {
            let monitor = ContentionMonitor()
            defer { print(monitor.summary() + "\n") }
            do {
                switch section {
                case .kmeans: try await KMeansSection(sizes: sizes).run()
                case .gmm: try await GaussianMixtureSection(sizes: sizes).run()
                case .encode: try await EncodingSection(sizes: sizes, cluster: clusterSizes).run()
                case .memory: try await MemorySection(sizes: sizes, large: options.large).run()
                case .cluster: try await ClusterSection(sizes: sizes, cluster: clusterSizes).run()
                case .largeK: try await LargeKSection(sizes: sizes, cluster: clusterSizes, options: largeK ?? LargeKOptions.parse([])).run()
                case .store: try await StoreSection(sizes: sizes, cluster: clusterSizes).run()
                case .search: try await SearchSection(sizes: sizes).run()
                case .retrieval: try await RetrievalSection(sizes: sizes, options: retrieval ?? RetrievalOptions.parse([])).run()
                case .pruning: try await PruningSection(sizes: sizes).run()
                case .seeding:
                    let seeding = try seeding ?? SeedingOptions.parse([]).validated()
                    try await SeedingSection(sizes: sizes, configs: seeding.configs, seeds: seeding.seeds,
                                             realOnly: seeding.realOnly, baseline: seeding.baseline).run()
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
