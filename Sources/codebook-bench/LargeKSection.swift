import ArgumentParser
import Cluster
import ClusterProtocol
import Clustering
import Descriptors
import Foundation
import Telemetry

/// Options of the large-k section.
struct LargeKOptions: ParsableArguments {
    @Option(help: "large-k: the values of K, comma-separated (each at most the corpus's rows).")
    var ks: String = "256,4096,65536"
    @Option(help: "large-k: k-means iterations per K (the last is reported; the first also maps the corpus).")
    var largeKIterations: Int = 2
    @Option(help: "large-k: rows per shard.")
    var largeKShardRows: Int = ShardPlan.defaultShardRows
    @Option(help: "large-k: the values of K to seed with k-means‖ (the engine's defaults) on such a cluster, comma-separated (none by default): each step's TASK and RESULT bytes and time.")
    var largeKSeedingKs: String = ""

    func seedingValues() throws -> [Int] {
        let ks = largeKSeedingKs.split(separator: ",").map { Int($0.trimmingCharacters(in: .whitespaces)) }
        guard ks.allSatisfy({ ($0 ?? 0) >= 1 }) else { throw ValidationError("large-k: --large-k-seeding-ks needs integers ≥ 1") }
        return ks.compactMap { $0 }.sorted()
    }

    func values() throws -> [Int] {
        let ks = ks.split(separator: ",").compactMap { Int($0.trimmingCharacters(in: .whitespaces)) }
        guard !ks.isEmpty, ks.allSatisfy({ $0 >= 1 }), largeKIterations >= 1, largeKShardRows >= 1 else {
            throw ValidationError("large-k: need --ks of integers ≥ 1, --large-k-iterations ≥ 1, --large-k-shard-rows ≥ 1")
        }
        return ks.sorted()
    }
}

/// k-means at growing K on a coordinator (in this process) and `codebook worker` processes
/// over tcp 127.0.0.1: per iteration, the coordinator's merge time, the bytes of the TASKs
/// and RESULTs, the iteration's wall time, and the peak memory (VmHWM) of the workers and of
/// this process (which holds the coordinator). The centres must equal the embedded engine's
/// bit for bit on the smallest K.
struct LargeKSection {
    let sizes: BenchSizes
    let cluster: ClusterSizes
    let options: LargeKOptions

    private static let jobBase: UInt64 = 0x1A_0000

    struct Row {
        var k: Int
        var shards: Int
        var iterationSeconds: Double
        var timing: PassTiming
        var taskBytes: Double
        var resultBytes: Double
        var denseResultBytes: Int
        var workerPeaks: [Int?]
        var coordinatorPeak: Int?
    }

    func run() async throws {
        let binary = try cluster.codebookExecutable()
        let path = try sizes.realCorpus ?? Workload(sizes: sizes).corpus(rows: sizes.rows)
        let reference = try ClusterSection.reference(path)
        let ks = try options.values()
        guard let largest = ks.last, largest <= reference.rows else {
            throw ValidationError("large-k: K must be at most the corpus's \(reference.rows) rows")
        }
        var rows: [Row] = []
        for k in ks {
            noteLoadBeforeTiming("large-k K=\(k) on \(reference.rows) rows")
            rows.append(try await measure(k: k, path: path, reference: reference, binary: binary))
        }
        try await checkAgainstEmbedded(k: ks[0], path: path, reference: reference, binary: binary)
        for k in try options.seedingValues() {
            noteLoadBeforeTiming("large-k k-means‖ seeding K=\(k) on \(reference.rows) rows")
            try await seed(k: k, path: path, reference: reference, binary: binary)
        }

        let plan = ShardPlan(totalRows: reference.rows, shardRows: options.largeKShardRows)
        var table = MarkdownTable("k-means at large K: N=\(reference.rows) D=\(reference.dimension), \(plan.count) shards of ≤ \(options.largeKShardRows) rows, "
                                  + "coordinator (in-process) + \(cluster.workers) × `codebook worker --threads 1`, tcp 127.0.0.1; "
                                  + "iteration \(options.largeKIterations) of \(options.largeKIterations)",
                                  columns: ["K", "iteration", "merge (decode + check + add)", "dispatch", "TASK bytes", "RESULT bytes",
                                            "RESULT bytes if dense", "workers' compute Σ", "worker VmHWM", "coordinator process VmHWM"])
        for row in rows {
            table.add(String(row.k), seconds(row.iterationSeconds), milliseconds(row.timing.mergeSeconds),
                      milliseconds(row.timing.dispatchSeconds), bytes(row.taskBytes), bytes(row.resultBytes),
                      bytes(Double(row.denseResultBytes)), seconds(row.timing.workerComputeSeconds),
                      row.workerPeaks.map(mebibytes).joined(separator: ", "), mebibytes(row.coordinatorPeak))
        }
        table.note("From ClusterBackend.timings and the coordinator's codebook_task_bytes_total / codebook_result_bytes_total over the "
                   + "reported iteration (all frames after the routing identity). \"If dense\": the RESULTs' bytes had every shard sent "
                   + "all K clusters (8·K·(D + 2) bytes of arrays each). Given centres: K rows evenly spaced in the corpus.")
        table.note("Worker VmHWM: each K has fresh worker processes. Coordinator: this bench process's VmHWM, which only grows, "
                   + "so K runs in ascending order (it includes the bench's own small state; the corpus is read by the workers).")
        table.note("Target: coordinator and worker below 2 GiB at K = 65,536.")
        table.print()
    }

    /// `largeKIterations` iterations from K evenly spaced rows; the last one's figures.
    private func measure(k: Int, path: String, reference: CorpusReference, binary: String) async throws -> Row {
        let metrics = CoordinatorMetrics(registry: MetricsRegistry())
        let processes = try BenchCluster(workers: cluster.workers, binary: binary, logDirectory: sizes.workDirectory,
                                         tag: "large-k\(k)", metrics: metrics)
        defer { processes.shutdown() }
        let backend = ClusterBackend(coordinator: processes.coordinator, job: Self.jobBase + UInt64(k), corpus: reference,
                                     shardRows: options.largeKShardRows)
        var codebook = try ClusterSection.spacedCentres(path: path, k: k)
        var elapsed = 0.0, taskBytes = 0.0, resultBytes = 0.0
        for _ in 0..<options.largeKIterations {
            let before = Self.counters(metrics)
            (codebook, elapsed) = try await Stopwatch.time { try await ClusterSection.iterate(backend, from: codebook).codebook }
            let after = Self.counters(metrics)
            (taskBytes, resultBytes) = (after.task - before.task, after.result - before.result)
        }
        let plan = ShardPlan(totalRows: reference.rows, shardRows: options.largeKShardRows)
        let peaks = processes.shutdown()
        return Row(k: k, shards: plan.count, iterationSeconds: elapsed, timing: backend.timings.passes.last!,
                   taskBytes: taskBytes, resultBytes: resultBytes, denseResultBytes: plan.count * 8 * k * (reference.dimension + 2),
                   workerPeaks: peaks, coordinatorPeak: Machine.peakResidentBytes(of: "self"))
    }

    /// The centres after one iteration on the cluster equal the embedded engine's.
    private func checkAgainstEmbedded(k: Int, path: String, reference: CorpusReference, binary: String) async throws {
        let processes = try BenchCluster(workers: cluster.workers, binary: binary, logDirectory: sizes.workDirectory, tag: "large-k-check")
        defer { processes.shutdown() }
        let initial = try ClusterSection.spacedCentres(path: path, k: k)
        let remote = try await ClusterSection.iterate(ClusterBackend(coordinator: processes.coordinator, job: Self.jobBase,
                                                                     corpus: reference, shardRows: options.largeKShardRows), from: initial)
        let local = try await ClusterSection.iterate(LocalBackend(corpus: try DescriptorMatrix.open(path: path),
                                                                  shardRows: options.largeKShardRows, threads: sizes.threads), from: initial)
        guard bitIdentical(remote.codebook.centres, local.codebook.centres) else {
            throw CheckFailure("large-k: K=\(k) centres of the cluster and of the embedded engine differ")
        }
        print("large-k: K=\(k) centres after one iteration, cluster vs embedded engine: bit-identical")
    }

    /// k-means‖ seeding at K on the cluster, with the engine's defaults: per step, the TASK and
    /// RESULT bytes and the time; the centres must equal the embedded engine's bit for bit.
    private func seed(k: Int, path: String, reference: CorpusReference, binary: String) async throws {
        let metrics = CoordinatorMetrics(registry: MetricsRegistry())
        let processes = try BenchCluster(workers: cluster.workers, binary: binary, logDirectory: sizes.workDirectory,
                                         tag: "large-k-seeding\(k)", metrics: metrics)
        defer { processes.shutdown() }
        let backend = ClusterBackend(coordinator: processes.coordinator, job: Self.jobBase + 0x1_0000 + UInt64(k), corpus: reference,
                                     shardRows: options.largeKShardRows)
        let parameters = KMeansParameters(k: k)
        let sampling = KMeansParallel.sampling(perCentre: parameters.seedingSample, k: k, rows: reference.rows)
        func seeded(_ backend: some StatisticsBackend, progress: (KMeansParallel.RoundReport) -> Void = { _ in }) async throws -> Codebook {
            try await KMeansParallel.seed(backend: backend, k: k, seed: parameters.seed, rounds: parameters.seedingRounds,
                                          oversampling: parameters.seedingOversampling, sampling: sampling, threads: sizes.threads,
                                          progress: progress)
        }
        var table = MarkdownTable("k-means‖ seeding at K=\(k) on the cluster: N=\(reference.rows) D=\(reference.dimension), "
                                  + "\(backend.plan.count) shards of ≤ \(options.largeKShardRows) rows, coordinator (in-process) + "
                                  + "\(cluster.workers) × `codebook worker --threads 1`, tcp 127.0.0.1; ℓ=\(format(parameters.seedingOversampling, "%g"))K, "
                                  + "R=\(parameters.seedingRounds), sample \(parameters.seedingSample.map { "\($0)·K" } ?? "all") rows",
                                  columns: ["step", "candidates after", "TASK bytes", "RESULT bytes", "time"])
        var before = Self.counters(metrics)
        let (remote, elapsed) = try await Stopwatch.time {
            try await seeded(backend) { report in
                let after = Self.counters(metrics)
                table.add(report.round <= parameters.seedingRounds ? "round \(report.round)" : "weights + reduction",
                          String(report.candidates), bytes(after.task - before.task), bytes(after.result - before.result),
                          seconds(report.seconds))
                before = after
            }
        }
        table.add("seeding", "", "", "", seconds(elapsed))
        table.note("Round 1 includes the first candidate's sample pass. Bytes: the coordinator's codebook_task_bytes_total / "
                   + "codebook_result_bytes_total over the step.")
        table.print()
        let local = try await seeded(LocalBackend(corpus: try DescriptorMatrix.open(path: path), shardRows: options.largeKShardRows,
                                                  threads: sizes.threads))
        guard bitIdentical(remote.centres, local.centres) else {
            throw CheckFailure("large-k: K=\(k) k-means‖ centres of the cluster and of the embedded engine differ")
        }
        print("large-k: K=\(k) k-means‖ centres, cluster vs embedded engine: bit-identical")
    }

    /// The coordinator's TASK and RESULT byte counters.
    private static func counters(_ metrics: CoordinatorMetrics) -> (task: Double, result: Double) {
        let text = String(decoding: metrics.registry.exposition(), as: UTF8.self)
        func value(_ name: String) -> Double {
            text.split(separator: "\n").first { $0.hasPrefix(name + " ") }.flatMap { Double($0.split(separator: " ")[1]) } ?? 0
        }
        return (value("codebook_task_bytes_total"), value("codebook_result_bytes_total"))
    }

    private func bytes(_ value: Double) -> String { format(value / Double(1 << 20), "%.1f MiB") }
}
