import Cluster
import ClusterProtocol
import Descriptors
import Foundation
import TestSupport
import Testing
import ZeroMQ

/// Real `codebook` processes on loopback: a coordinator, workers that come and go, and the
/// train client. Every process's log is printed when a test fails; every process is killed
/// at the end.
@Suite(.serialized) struct MultiProcessTests {
    static let rows = 20_000, dimension = 16

    static func corpus() throws -> String { try Corpora.path(rows: rows, dimension: dimension) }

    static func kmeansArguments(_ corpus: String, iterations: Int, out: String) -> [String] {
        ["train", "kmeans", "--corpus", corpus, "--k", "8", "--iterations", "\(iterations)", "--tolerance", "0",
         "--seed", "5", "--shard-rows", "2000", "--out", out]
    }

    static func gmmArguments(_ corpus: String, out: String) -> [String] {
        ["train", "gmm", "--corpus", corpus, "--k", "8", "--iterations", "3", "--kmeans-iterations", "2", "--tolerance", "0",
         "--seed", "5", "--shard-rows", "2000", "--out", out]
    }

    static func bytes(_ path: String) -> Data? { FileManager.default.contents(atPath: path) }

    /// The embedded run's output (no --coordinator), computed once per argument list.
    static func reference(_ arguments: [String], outputs: [String]) async throws -> [Data] {
        let key = arguments.joined(separator: " ")
        if let cached = referenceLock.withLock({ references[key] }) { return cached }
        let process = Process()
        process.executableURL = codebookExecutable
        let temporary = try TemporaryDirectory()
        let directory = temporary.path
        process.arguments = arguments + ["--out", "\(directory)/model", "--local-workers", "2"]
        process.standardOutput = FileHandle.nullDevice
        FileManager.default.createFile(atPath: "\(directory)/stderr.log", contents: nil)
        process.standardError = try FileHandle(forWritingTo: URL(fileURLWithPath: "\(directory)/stderr.log"))
        process.currentDirectoryURL = URL(fileURLWithPath: directory)
        try process.run()
        guard await waitUntil(timeout: 20, { !process.isRunning }) else {
            process.terminate()
            throw ClusterTestError("the embedded reference run did not finish in 20 s")
        }
        process.waitUntilExit()
        guard process.terminationStatus == 0 else {
            let log = (try? String(contentsOfFile: "\(directory)/stderr.log", encoding: .utf8)) ?? ""
            throw ClusterTestError("the embedded reference run (codebook \(process.arguments!.joined(separator: " "))) "
                                   + "exited with \(process.terminationStatus):\n\(log.prefix(4000))")
        }
        let data = try outputs.map { suffix in
            guard let data = bytes("\(directory)/model\(suffix)") else { throw ClusterTestError("no reference \(suffix)") }
            return data
        }
        referenceLock.withLock { references[key] = data }
        return data
    }
    nonisolated(unsafe) static var references: [String: [Data]] = [:]
    static let referenceLock = NSLock()

    static let gmmSuffixes = ["_means.npy", "_variances.npy", "_priors.npy"]

    /// Arguments without "--out X" (the reference adds its own).
    static func withoutOut(_ arguments: [String]) -> [String] {
        guard let index = arguments.firstIndex(of: "--out") else { return arguments }
        var copy = arguments
        copy.removeSubrange(index...index + 1)
        return copy
    }

    /// The coordinator's view of `job` (the train client polls it every 100 ms, so the
    /// coordinator is asked directly).
    static func progress(_ cluster: ProcessCluster, job: UInt64 = 1) -> JobProgress? {
        guard let context = try? ZeroMQContext(),
              let client = try? ClusterClient(context: context, endpoint: cluster.clientsEndpoint, timeout: .seconds(5)) else { return nil }
        return try? client.progress(of: job, since: 0)
    }

    static func status(_ cluster: ProcessCluster) throws -> ClusterStatus {
        try ClusterClient(context: try ZeroMQContext(), endpoint: cluster.clientsEndpoint, timeout: .seconds(5)).status()
    }

    @Test func oneTwoAndThreeWorkersGiveTheEmbeddedModelBitForBit() async throws {
        try await ProcessCluster().run { cluster in
            let corpus = try Self.corpus()
            try await cluster.startCoordinator()
            let kmeansReference = try await Self.reference(Self.withoutOut(Self.kmeansArguments(corpus, iterations: 6, out: "")),
                                                     outputs: [""])
            let gmmReference = try await Self.reference(Self.withoutOut(Self.gmmArguments(corpus, out: "")), outputs: Self.gmmSuffixes)
            for workers in 1...3 {
                try cluster.startWorker("worker-\(workers)", threads: workers == 2 ? 2 : 1)
                let centres = cluster.scratch.file("centres-\(workers).npy")
                let run = try await cluster.run("train-kmeans-\(workers)", Self.kmeansArguments(corpus, iterations: 6, out: centres)
                                          + ["--coordinator", cluster.clientsEndpoint])
                try cluster.require(run.status == 0, "k-means with \(workers) worker(s) exited with \(run.status)")
                cluster.check(Self.bytes(centres) == kmeansReference[0], "k-means centres with \(workers) worker(s) differ")
                let prefix = cluster.scratch.file("gmm-\(workers)")
                let gmm = try await cluster.run("train-gmm-\(workers)", Self.gmmArguments(corpus, out: prefix)
                                          + ["--coordinator", cluster.clientsEndpoint])
                try cluster.require(gmm.status == 0, "GMM with \(workers) worker(s) exited with \(gmm.status)")
                for (suffix, expected) in zip(Self.gmmSuffixes, gmmReference) {
                    cluster.check(Self.bytes(prefix + suffix) == expected, "GMM\(suffix) with \(workers) worker(s) differs")
                }
            }
            // All three did some of the work, and the CLI's status shows them.
            let status = try Self.status(cluster)
            cluster.check(status.workers.count == 3, "\(status.workers.count) workers in status")
            cluster.check(status.workers.allSatisfy { $0.shardsDone > 0 }, "a worker did nothing: \(status.workers)")
            let shown = try await cluster.run("status", ["status", "--coordinator", cluster.clientsEndpoint])
            cluster.check(shown.status == 0 && shown.log.contains("workers: 3") && shown.log.contains("worker-3"),
                          "codebook status: \(shown.log)")
        }
    }

    @Test func aWorkerKilledMidJobIsReplacedAndTheModelIsUnchanged() async throws {
        try await ProcessCluster().run { cluster in
            let corpus = try Self.corpus()
            let arguments = Self.kmeansArguments(corpus, iterations: 30, out: "")
            // Without bounds: the workers below prune, and lose the victim's bounds mid-job.
            let reference = try await Self.reference(Self.withoutOut(arguments) + ["--bound-memory", "0"], outputs: [""])
            try await cluster.startCoordinator()
            let prune = ["--bound-memory", "\(1 << 30)"]
            let victim = try cluster.startWorker("victim", options: prune)
            let survivor = try cluster.startWorker("survivor", options: prune)
            let centres = cluster.scratch.file("centres.npy")
            let train = try cluster.start("train", Self.kmeansArguments(corpus, iterations: 30, out: centres)
                                          + ["--coordinator", cluster.clientsEndpoint])
            try cluster.require(await waitUntil(timeout: 20) { (Self.progress(cluster)?.iterations.count ?? 0) >= 1 || !train.isRunning },
                                "no first iteration within 20 s")
            // Both workers held still: the job cannot end before the kill.
            victim.kill(SIGSTOP)
            survivor.kill(SIGSTOP)
            try cluster.require(Self.progress(cluster)?.state == .running, "the job ended before the kill")
            victim.kill(SIGKILL)
            let newcomer = try cluster.startWorker("newcomer", options: prune)
            survivor.kill(SIGCONT)
            guard let status = await train.waitForExit(timeout: 60) else {
                try cluster.require(false, "the job did not finish within 60 s of the kill")
                return
            }
            try cluster.require(status == 0, "train exited with \(status)")
            cluster.check(Self.bytes(centres) == reference[0], "the centres differ from the embedded run's")
            let coordinatorLog = cluster.children[0].log
            cluster.check(coordinatorLog.contains("victim") && coordinatorLog.contains("dead"),
                          "the coordinator did not declare the victim dead")
            let workers = try Self.status(cluster).workers
            cluster.check(workers.map(\.name).sorted() == ["newcomer", "survivor"], "workers: \(workers)")
            cluster.check((workers.first { $0.name == "newcomer" }?.shardsDone ?? 0) > 0,
                          "the worker started mid-job got no work: \(workers)")
            let skipped = (Self.progress(cluster)?.iterations ?? []).map { $0.skippedRows ?? 0 }
            cluster.check(skipped.contains { $0 > 0 }, "no rows skipped: \(skipped)")
            _ = newcomer
        }
    }

    @Test func withNoWorkerAliveTheJobWaitsThenFinishesWhenOneComesBack() async throws {
        try await ProcessCluster().run { cluster in
            let corpus = try Self.corpus()
            let arguments = Self.kmeansArguments(corpus, iterations: 20, out: "")
            let reference = try await Self.reference(Self.withoutOut(arguments), outputs: [""])
            try await cluster.startCoordinator()
            let only = try cluster.startWorker("only")
            let centres = cluster.scratch.file("centres.npy")
            let train = try cluster.start("train", Self.kmeansArguments(corpus, iterations: 20, out: centres)
                                          + ["--coordinator", cluster.clientsEndpoint])
            try cluster.require(await waitUntil(timeout: 20) { (Self.progress(cluster)?.iterations.count ?? 0) >= 1 || !train.isRunning },
                                "no first iteration within 20 s")
            only.kill(SIGSTOP) // held still: the job cannot end before the kill
            try cluster.require(Self.progress(cluster)?.state == .running, "the job ended before the kill")
            only.kill(SIGKILL)
            try cluster.require(await waitUntil(timeout: 15) { Self.progress(cluster)?.message == "waiting: no workers alive" },
                                "the coordinator never reported that the job waits for workers")
            let progress = Self.progress(cluster)
            cluster.check(progress?.state == .running, "progress: \(String(describing: progress))")
            try cluster.require(await waitUntil(timeout: 15) { train.log.contains("  waiting: no workers alive") },
                                "the train client did not say it waited")
            try cluster.startWorker("phoenix", threads: 2)
            guard let status = await train.waitForExit(timeout: 60) else {
                try cluster.require(false, "the job did not finish within 60 s of the new worker")
                return
            }
            try cluster.require(status == 0, "train exited with \(status)")
            cluster.check(Self.bytes(centres) == reference[0], "the centres differ from the embedded run's")
        }
    }

    /// SIGTERM stops a coordinator with its running jobs kept for the next start: its log says
    /// so, rather than "job 1 failed", and the job is still running in the next one.
    @Test func aStoppedCoordinatorLogsThatItsJobResumesNotThatItFailed() async throws {
        try await ProcessCluster().run { cluster in
            let corpus = try Self.corpus()
            let store = cluster.scratch.file("store")
            let coordinator = try await cluster.startCoordinator(["--store", store])
            let client = try ClusterClient(context: try ZeroMQContext(), endpoint: cluster.clientsEndpoint, timeout: .seconds(5))
            // No worker: the job waits, running.
            let job = try client.submit(TrainingJob(kind: .kmeans, corpus: corpus, k: 4, iterations: 2, seed: 0, tolerance: 0,
                                                    shardRows: 500, initialization: .random))
            try cluster.require(await waitUntil(timeout: 15) { Self.progress(cluster, job: job)?.state == .running },
                                "the job is not running")
            coordinator.kill(SIGTERM)
            let status = await coordinator.waitForExit(timeout: 40)
            cluster.check(status == 0, "the coordinator exited with \(String(describing: status))")
            let log = coordinator.log
            cluster.check(log.contains("job \(job) stopped with the coordinator; it resumes when a coordinator starts on this store")
                          && !log.contains("job \(job) failed"), "coordinator log: \(log)")
            try await cluster.startCoordinator(["--store", store])
            cluster.check(Self.progress(cluster, job: job)?.state == .running, "the job did not resume")
        }
    }

    @Test func badJobsFailClearlyAndTheCoordinatorKeepsServing() async throws {
        try await ProcessCluster().run { cluster in
            let small = try Corpora.path(rows: 1_000, dimension: Self.dimension)
            try await cluster.startCoordinator()
            try cluster.startWorker("worker")
            let out = cluster.scratch.file("centres.npy")
            let via = ["--coordinator", cluster.clientsEndpoint]

            let missing = cluster.scratch.file("missing.npy")
            var run = try await cluster.run("missing-corpus", ["train", "kmeans", "--corpus", missing, "--k", "4", "--out", out] + via)
            cluster.check(run.status != 0 && run.log.contains("missing.npy"), "missing corpus: \(run.status) \(run.log)")

            run = try await cluster.run("k-too-large", ["train", "kmeans", "--corpus", small, "--k", "5000", "--out", out] + via)
            cluster.check(run.status != 0 && run.log.contains("k=5000") && run.log.contains("1000"),
                          "k larger than the corpus: \(run.status) \(run.log)")

            let wrong = cluster.scratch.file("init-8x5.npy")
            try NpyFile.write(path: wrong, rows: 8, columns: 5, values: [Float](repeating: 1, count: 40))
            run = try await cluster.run("wrong-init", ["train", "kmeans", "--corpus", small, "--k", "8", "--init", wrong,
                                                 "--out", out] + via)
            cluster.check(run.status != 0 && run.log.contains("dimension"), "init centres of the wrong dimension: \(run.status) \(run.log)")
            for name in ["missing-corpus", "k-too-large", "wrong-init"] {
                let log = cluster.children.first { $0.name == name }?.log ?? ""
                cluster.check(!log.contains("Fatal error") && !log.contains("Stack dump"), "\(name) crashed")
            }

            run = try await cluster.run("good", ["train", "kmeans", "--corpus", small, "--k", "8", "--iterations", "3",
                                           "--shard-rows", "250", "--out", out] + via)
            cluster.check(run.status == 0 && (try? NpyFile.readFloat32(path: out))?.rows == 8, "the good job: \(run.log)")
            cluster.check(cluster.children[0].isRunning, "the coordinator died")
        }
    }

    /// A client's text (a corpus path with a terminal escape and a newline in its name) is
    /// data: neither the coordinator's log nor `codebook status` carries it raw.
    @Test func aClientsTextReachesNeitherTheLogNorTheTerminalRaw() async throws {
        try await ProcessCluster().run { cluster in
            let corpus = cluster.scratch.file("corpus-\u{1B}[31mred\ninfo forged: job 9 finished.npy")
            try FileManager.default.copyItem(atPath: try Corpora.path(rows: 1_000, dimension: Self.dimension), toPath: corpus)
            try await cluster.startCoordinator()
            let client = try ClusterClient(context: try ZeroMQContext(), endpoint: cluster.clientsEndpoint, timeout: .seconds(5))
            _ = try client.submit(TrainingJob(kind: .kmeans, corpus: corpus, k: 4, iterations: 1, seed: 0, tolerance: 0,
                                              shardRows: 500, initialization: .random))
            let run = try await cluster.run("status", ["status", "--coordinator", cluster.clientsEndpoint])
            let coordinatorLog = cluster.children[0].log
            cluster.check(run.status == 0 && run.log.contains("corpus-\\u{1B}[31mred\\u{A}info forged"), "status: \(run.log)")
            for (name, text) in [("status", run.log), ("coordinator log", coordinatorLog)] {
                cluster.check(!text.contains("\u{1B}") && !text.contains("\ninfo forged"), "\(name) carries the raw text: \(text)")
            }
        }
    }

    /// The corpus a worker opens is not the one the coordinator planned for (replaced after
    /// the job was accepted): the worker refuses it, and the job fails naming the mismatch.
    @Test func aWorkerThatSeesADifferentCorpusFailsTheJobClearly() async throws {
        try await ProcessCluster().run { cluster in
            let corpus = cluster.scratch.file("corpus.npy")
            try FileManager.default.copyItem(atPath: try Corpora.path(rows: 1_000, dimension: 8), toPath: corpus)
            try await cluster.startCoordinator()
            // No worker yet: the job is accepted and waits.
            let train = try cluster.start("train", ["train", "kmeans", "--corpus", corpus, "--k", "4", "--iterations", "3",
                                                    "--shard-rows", "250", "--out", cluster.scratch.file("c.npy"),
                                                    "--coordinator", cluster.clientsEndpoint])
            try cluster.require(await waitUntil(timeout: 15) { Self.progress(cluster)?.message == "waiting: no workers alive" },
                                "the job did not wait for workers")
            let replacement = cluster.scratch.file("replacement.npy")
            try SyntheticCorpus(rows: 1_200, dimension: 8, clusters: 4, seed: 1).write(to: replacement)
            try cluster.require(rename(replacement, corpus) == 0, "cannot replace the corpus: errno \(errno)")
            try cluster.startWorker("worker")
            guard let status = await train.waitForExit(timeout: 60) else {
                try cluster.require(false, "the job did not end within 60 s")
                return
            }
            cluster.check(status != 0, "the job succeeded on a corpus it was not planned for")
            cluster.check(train.log.contains("1200×8") && train.log.contains("1000×8"), "unclear failure: \(train.log)")
            // Still serving: a good job on the (new) corpus succeeds.
            let run = try await cluster.run("good", ["train", "kmeans", "--corpus", corpus, "--k", "4", "--iterations", "2",
                                               "--shard-rows", "250", "--out", cluster.scratch.file("good.npy"),
                                               "--coordinator", cluster.clientsEndpoint])
            cluster.check(run.status == 0, "the good job after the failure: \(run.log)")
        }
    }
}
