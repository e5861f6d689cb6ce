import Cluster
import ClusterProtocol
import Clustering
import Descriptors
import Foundation

/// Section 5: k-means on a cluster (an in-process coordinator and `codebook worker`
/// processes over tcp loopback) against the embedded single-process engine, scaling with
/// the corpus, and where the coordinator's time goes; the first comparison once more with
/// CURVE on (keys from `codebook keys generate`). Centres must be bit-identical.
struct ClusterSection {
    let sizes: BenchSizes
    let cluster: ClusterSizes

    static let overheadTarget = 1.10
    static let scalingTarget = 4.0
    static let scalingTolerance = 0.5
    /// Free space needed before writing the larger scaling corpus.
    static let requiredFreeBytes = 10_000_000_000
    static let shardRows = ShardPlan.defaultShardRows

    /// What one k-means iteration cost on each backend.
    struct Round {
        var localSeconds = 0.0
        var clusterSeconds = 0.0
        /// The same iteration on the CURVE cluster, when there is one.
        var secureSeconds: Double?
        var report: KMeansIterationReport?
        var timing: PassTiming?
    }

    /// Job ids of the bench's backends (not from the coordinator's registry, which these bypass).
    private static let jobBase: UInt64 = 0xBE_0000

    func run() async throws {
        let binary = try cluster.codebookExecutable()
        let workload = Workload(sizes: sizes)
        var failures: [String] = []

        // 1 and 3 (K = sizes.k): the kmeans section's corpus and initial centres.
        let path = try workload.corpus(rows: sizes.rows)
        let (_, initial) = try workload.initialCentres(corpus: path)
        let rounds = max(3, sizes.repeats)
        let keys = try BenchKeys(binary: binary, directory: sizes.workDirectory, tag: "k\(initial.k)-curve")
        let narrow = try await compare(path: path, initial: initial, rounds: rounds, binary: binary, tag: "k\(initial.k)",
                                       secure: keys, failures: &failures)

        var overhead = MarkdownTable("Cluster overhead: one k-means iteration, N=\(narrow.rows) D=\(sizes.dimension) K=\(initial.k), "
                                     + "embedded engine vs coordinator + \(cluster.workers) worker processes",
                                     columns: ["backend", "time / iteration (median)", "min – max", "ratio", "target"])
        let local = narrow.rounds.map(\.localSeconds), remote = narrow.rounds.map(\.clusterSeconds)
        let ratioValue = Stopwatch.median(remote) / Stopwatch.median(local)
        overhead.add("(a) embedded: LocalBackend, \(sizes.threads) threads, \(Self.shardRows)-row shards", seconds(Stopwatch.median(local)),
                     seconds(local.min()!) + " – " + seconds(local.max()!), "baseline", "")
        overhead.add("(b) ClusterBackend: in-process Coordinator + \(cluster.workers) × `codebook worker --threads 1`, tcp 127.0.0.1",
                     seconds(Stopwatch.median(remote)), seconds(remote.min()!) + " – " + seconds(remote.max()!),
                     "**" + ratio(ratioValue) + "**", verdict(ratioValue <= Self.overheadTarget, "≤ \(Self.overheadTarget)×"))
        let secure = narrow.rounds.compactMap(\.secureSeconds)
        let secureRatio = Stopwatch.median(secure) / Stopwatch.median(local)
        overhead.add("(c) as (b) with CURVE on: coordinator `--secret-key/--worker-keys/--client-keys`, workers `--secret-key/--coordinator-key`",
                     seconds(Stopwatch.median(secure)), seconds(secure.min()!) + " – " + seconds(secure.max()!),
                     "**" + ratio(secureRatio) + "**", verdict(secureRatio <= Self.overheadTarget, "≤ \(Self.overheadTarget)×"))
        overhead.add("centres after \(rounds + 1) iterations (a) vs (b) vs (c)", narrow.identical ? "bit-identical" : "**DIFFER**", "", "",
                     verdict(narrow.identical, "bit-identical"))
        overhead.note("KMeans.train (1 iteration, .given centres) per round, (a) then (b) then (c), each continuing its own centres; "
                      + "\(rounds) timed rounds after 1 warm-up round (worker start-up, first mapping of the corpus, CURVE handshakes). "
                      + "Centres compared bit for bit after every round.")
        overhead.note("Worker peak RSS (VmHWM) on this \(format(Double(narrow.fileBytes) / 1e9, "%.2f")) GB .npy corpus: "
                      + narrow.peaks.map(mebibytes).joined(separator: ", ") + ".")
        overhead.print()

        // 3 (K = --wide-k): a separate, smaller corpus.
        let widePath = try workload.corpus(rows: cluster.wideRows)
        let wideInitial = try Self.spacedCentres(path: widePath, k: cluster.wideK)
        let wideRounds = max(3, sizes.repeats)
        let wide = try await compare(path: widePath, initial: wideInitial, rounds: wideRounds, binary: binary,
                                     tag: "k\(cluster.wideK)", failures: &failures)
        var work = MarkdownTable("Coordinator work per k-means iteration (medians of the timed rounds; \(cluster.workers) worker processes × 1 thread)",
                                 columns: ["K", "N (shards)", "iteration wall", "pass wall", "dispatch (send TASKs)", "merge (decode + add)",
                                           "update (new centres)", "coordinator total", "workers' compute Σ shards",
                                           "compute ÷ workers", "wall − compute ÷ workers", "embedded (a) time"])
        for (k, result) in [(initial.k, narrow), (cluster.wideK, wide)] {
            let timed = result.rounds
            func median(_ f: (Round) -> Double) -> Double { Stopwatch.median(timed.map(f)) }
            let wall = median(\.clusterSeconds)
            let passWall = median { $0.timing?.wallSeconds ?? .nan }
            let dispatch = median { $0.timing?.dispatchSeconds ?? .nan }
            let merge = median { $0.timing?.mergeSeconds ?? .nan }
            let update = median { $0.report?.updateSeconds ?? .nan }
            let compute = median { $0.timing?.workerComputeSeconds ?? .nan }
            let ideal = compute / Double(cluster.workers)
            work.add(String(k), "\(result.rows) (\(result.shards))", seconds(wall), seconds(passWall), milliseconds(dispatch),
                     milliseconds(merge), milliseconds(update), milliseconds(dispatch + merge + update) + " (" + format(100 * (dispatch + merge + update) / wall, "%.1f") + " %)",
                     seconds(compute), seconds(ideal), milliseconds(wall - ideal) + " (" + format(100 * (wall - ideal) / wall, "%.1f") + " %)",
                     seconds(median(\.localSeconds)))
            if !result.identical { work.note("**K=\(k): centres of (a) and (b) differ** (see the check failure)") }
        }
        work.note("From ClusterBackend.timings (PassTimingLog) and KMeansIterationReport.updateSeconds. dispatch/merge run on the "
                  + "coordinator's I/O thread; update runs in KMeans.train after the pass. Workers' compute = Σ over shards of the "
                  + "seconds each worker reports; ÷ workers is the wall time of a perfectly balanced pass.")
        work.note("K=\(cluster.wideK) runs on a separate \(wide.rows)-row corpus file: the first \(wide.rows) rows of the "
                  + "\(narrow.rows)-row corpus (same generator, seed and clusters; rows are generated per block), so ~\(format(Double(cluster.wideK) / Double(initial.k) * Double(wide.rows) / Double(narrow.rows), "%.1f"))× "
                  + "the K=\(initial.k) compute), from \(cluster.wideK) evenly spaced rows; centres (a) vs (b) "
                  + (wide.identical ? "bit-identical" : "**differ**") + " after \(wideRounds + 1) iterations.")
        work.print()

        // 2: scaling.
        try await scaling(binary: binary, workload: workload, failures: &failures)
        if !failures.isEmpty { throw CheckFailure(failures.joined(separator: "; ")) }
    }

    /// A warm-up round and `rounds` timed rounds of one iteration on each backend (and on a
    /// CURVE cluster too, given `secure` keys), each continuing from its own centres; the
    /// centres compared after every round.
    private func compare(path: String, initial: Codebook, rounds: Int, binary: String, tag: String,
                         secure keys: BenchKeys? = nil, failures: inout [String]) async throws
        -> (rounds: [Round], identical: Bool, rows: Int, shards: Int, peaks: [Int?], fileBytes: Int) {
        let corpus = try DescriptorMatrix.open(path: path)
        let local = LocalBackend(corpus: corpus, shardRows: Self.shardRows, threads: sizes.threads)
        let processes = try BenchCluster(workers: cluster.workers, binary: binary, logDirectory: sizes.workDirectory, tag: tag)
        defer { processes.shutdown() }
        let reference = try Self.reference(path)
        let remote = ClusterBackend(coordinator: processes.coordinator, job: Self.jobBase + UInt64(initial.k),
                                    corpus: reference, shardRows: Self.shardRows)
        let secureProcesses = try keys.map {
            try BenchCluster(workers: cluster.workers, binary: binary, logDirectory: sizes.workDirectory, tag: tag + "-curve", keys: $0)
        }
        defer { secureProcesses?.shutdown() }
        let secureRemote = secureProcesses.map {
            ClusterBackend(coordinator: $0.coordinator, job: Self.jobBase + UInt64(initial.k), corpus: reference, shardRows: Self.shardRows)
        }
        noteLoadBeforeTiming("timing K=\(initial.k) on \(corpus.rows) rows")
        var a = initial, b = initial, c = initial
        var results: [Round] = []
        var firstDifference: Int?
        for round in 0...rounds {
            var entry = Round()
            (a, entry.localSeconds) = try await Stopwatch.time { try await Self.iterate(local, from: a).codebook }
            let (result, elapsed) = try await Stopwatch.time { try await Self.iterate(remote, from: b) }
            b = result.codebook
            entry.clusterSeconds = elapsed
            entry.report = result.iterations.first
            entry.timing = remote.timings.passes.last
            if let secureRemote {
                (c, entry.secureSeconds) = try await Stopwatch.time { try await Self.iterate(secureRemote, from: c).codebook }
            }
            if firstDifference == nil && (!bitIdentical(a.centres, b.centres) || (secureRemote != nil && !bitIdentical(a.centres, c.centres))) {
                firstDifference = round + 1
            }
            if round > 0 { results.append(entry) }
        }
        let peaks = processes.shutdown()
        secureProcesses?.shutdown()
        if let firstDifference {
            failures.append("K=\(initial.k) N=\(corpus.rows): centres of the embedded engine and the cluster"
                            + (keys == nil ? "" : "s (with and without CURVE)") + " differ after iteration \(firstDifference)")
        }
        return (results, firstDifference == nil, corpus.rows, ShardPlan(totalRows: corpus.rows, shardRows: Self.shardRows).count,
                peaks, reference.fileSize)
    }

    static func iterate(_ backend: some StatisticsBackend, from codebook: Codebook) async throws -> KMeansResult {
        var parameters = KMeansParameters(k: codebook.k)
        parameters.iterations = 1
        parameters.tolerance = 0
        parameters.initialization = .given(codebook)
        return try await KMeans.train(on: backend, parameters: parameters)
    }

    /// The corpus as the coordinator describes it to workers (absolute path, shape, bytes).
    static func reference(_ path: String) throws -> CorpusReference {
        let absolute = URL(fileURLWithPath: path).standardizedFileURL.path
        let matrix = try DescriptorMatrix.open(path: absolute)
        return CorpusReference(path: absolute, rows: matrix.rows, dimension: matrix.dimension, fileSize: matrix.file?.size ?? 0)
    }

    /// K evenly spaced rows of the corpus.
    static func spacedCentres(path: String, k: Int) throws -> Codebook {
        let matrix = try DescriptorMatrix.open(path: path)
        var values: [Float] = []
        values.reserveCapacity(k * matrix.dimension)
        for c in 0..<k { values += try matrix.row(c * (matrix.rows / k)) }
        return try Codebook(k: k, dimension: matrix.dimension, centres: values)
    }

    /// Section 5.2: time per iteration on the cluster and the workers' peak RSS, for a
    /// corpus and one 4× larger (fresh worker processes for each, so each VmHWM is its own).
    private func scaling(binary: String, workload: Workload, failures: inout [String]) async throws {
        let small = cluster.scalingRows, large = 4 * cluster.scalingRows
        let rowBytes = 4 + 4 * sizes.dimension
        var table = MarkdownTable("Cluster scaling: k-means iteration (K=\(sizes.k)) on \(cluster.workers) worker processes × 1 thread, "
                                  + "fvecs corpora of \(small) and \(large) rows",
                                  columns: ["corpus", "file", "pages released (file > \(RowScan.residentBudget >> 20) MiB)",
                                            "time / iteration (median)", "ratio to \(small)", "target", "workers' peak RSS (VmHWM)"])
        var smallTime: Double?
        var peaksBySize: [(rows: Int, peaks: [Int?])] = []
        for rows in [small, large] {
            let name = "corpus-\(rows)x\(sizes.dimension)-c\(sizes.corpusClusters)-s\(BenchSizes.seed).fvecs"
            let bytes = rows * rowBytes
            if rows == large && !FileManager.default.fileExists(atPath: sizes.path(name)) {
                let free = Machine.freeBytes(at: sizes.workDirectory)
                if free < Self.requiredFreeBytes {
                    table.add("\(rows) × \(sizes.dimension)", format(Double(bytes) / 1e9, "%.2f GB"), "", "skipped", "", "", "")
                    table.note("**\(rows)-row corpus skipped**: \(format(Double(free) / 1e9, "%.1f")) GB free in \(sizes.workDirectory), "
                               + "need \(format(Double(Self.requiredFreeBytes) / 1e9, "%.0f")) GB.")
                    continue
                }
            }
            let path = try workload.corpus(rows: rows, ext: "fvecs")
            let reference = try Self.reference(path)
            let (_, initial) = try workload.initialCentres(corpus: path)
            let processes = try BenchCluster(workers: cluster.workers, binary: binary, logDirectory: sizes.workDirectory,
                                               tag: "scale\(rows)")
            defer { processes.shutdown() }
            let backend = ClusterBackend(coordinator: processes.coordinator, job: Self.jobBase + 0x1_0000 + UInt64(rows),
                                         corpus: reference, shardRows: Self.shardRows)
            noteLoadBeforeTiming("timing the \(rows)-row cluster iterations")
            var codebook = initial
            var times: [Double] = []
            for round in 0...max(3, sizes.repeats) {
                let (result, elapsed) = try await Stopwatch.time { try await Self.iterate(backend, from: codebook) }
                codebook = result.codebook
                if round > 0 { times.append(elapsed) }
                guard result.iterations.first?.objective.isFinite == true else {
                    failures.append("scaling \(rows) rows: objective not finite"); break
                }
            }
            let peaks = processes.shutdown()
            peaksBySize.append((rows, peaks))
            let time = Stopwatch.median(times)
            let released = reference.fileSize > RowScan.residentBudget
            var ratioCell = "baseline", targetCell = ""
            if rows == small { smallTime = time } else if let smallTime {
                let r = time / smallTime
                ratioCell = "**" + ratio(r) + "**"
                targetCell = verdict(abs(r - Self.scalingTarget) <= Self.scalingTolerance,
                                     "\(Int(Self.scalingTarget)) ± \(Self.scalingTolerance)")
            }
            table.add("\(rows) × \(sizes.dimension)", format(Double(reference.fileSize) / 1e9, "%.2f GB"), released ? "yes" : "no",
                      seconds(time), ratioCell, targetCell, peaks.map(mebibytes).joined(separator: ", "))
        }
        if peaksBySize.count == 2 {
            let before = peaksBySize[0].peaks.compactMap { $0 }.max() ?? 0, after = peaksBySize[1].peaks.compactMap { $0 }.max() ?? 0
            table.note("Peak RSS, largest worker: \(mebibytes(before)) → \(mebibytes(after)) "
                       + (after <= before ? "(does not grow with the corpus: target met)"
                          : "(**grows** ×\(format(Double(after) / Double(max(before, 1)), "%.2f")) with 4× the corpus; target: does not grow)")
                       + ". VmHWM counts resident pages of the mapped corpus; RowScan releases them (MADV_DONTNEED) only for files over "
                       + "RowScan.residentBudget = \(RowScan.residentBudget >> 20) MiB, so a smaller corpus stays mapped-resident in each worker.")
        }
        table.note("Medians of \(max(3, sizes.repeats)) iterations after 1 warm-up; fresh worker processes per corpus, VmHWM read from "
                   + "/proc/PID/status just before stopping them. Shards of \(Self.shardRows) rows.")
        table.print()
    }
}
