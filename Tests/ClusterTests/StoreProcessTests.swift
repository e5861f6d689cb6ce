import Cluster
import ClusterProtocol
import Descriptors
import Foundation
import Storage
import Testing
import ZeroMQ

/// A coordinator with a store, on loopback ports it keeps: killed and started again on the
/// same ports and the same store, as a supervisor (systemd, Kubernetes) restarts it.
final class StoreCoordinator: @unchecked Sendable {
    // @unchecked: used from the test's task only.
    let cluster: ProcessCluster
    let store: String
    private(set) var workersEndpoint = ""
    private(set) var clientsEndpoint = ""
    private(set) var process: ChildProcess?
    private var starts = 0

    init(_ cluster: ProcessCluster, store: String) {
        self.cluster = cluster
        self.store = store
    }

    /// Starts the coordinator: the first time on two free ports, later on the same ones
    /// (retrying for up to 10 s while the old process's ports are released); `options` go last.
    @discardableResult
    func start(_ options: [String] = []) async throws -> ChildProcess {
        let deadline = Date().addingTimeInterval(10)
        while true {
            if starts == 0 {
                let workers = try freeLoopbackPort(), clients = try freeLoopbackPort()
                guard workers != clients else { continue }
                workersEndpoint = "tcp://127.0.0.1:\(workers)"
                clientsEndpoint = "tcp://127.0.0.1:\(clients)"
            }
            starts += 1
            let child = try cluster.start("coordinator-\(starts)", ["coordinator", "--workers-endpoint", workersEndpoint,
                                                                     "--clients-endpoint", clientsEndpoint, "--store", store] + options)
            await waitUntil(timeout: 20) { child.log.contains("coordinator ready") || !child.isRunning }
            if child.isRunning && child.log.contains("coordinator ready") {
                process = child
                return child
            }
            child.kill()
            guard Date() < deadline else { throw ClusterTestError("the coordinator did not start on \(workersEndpoint), \(clientsEndpoint)") }
            try await Task.sleep(for: .milliseconds(200))
        }
    }

    /// Sends `signal` to the running coordinator and waits for it to exit; returns its status.
    func stop(_ signal: Int32) async throws -> Int32 {
        guard let process else { throw ClusterTestError("no coordinator to stop") }
        process.kill(signal)
        guard let status = await process.waitForExit(timeout: 40) else {
            throw ClusterTestError("the coordinator did not exit within 40 s of signal \(signal)")
        }
        self.process = nil
        return status
    }

    @discardableResult
    func startWorker(_ name: String, threads: Int = 1) throws -> ChildProcess {
        try cluster.start(name, ["worker", "--connect", workersEndpoint, "--threads", "\(threads)", "--name", name])
    }

    /// A client of the coordinator that answers quickly or not at all.
    func client() throws -> ClusterClient {
        try ClusterClient(context: try ZeroMQContext(), endpoint: clientsEndpoint, timeout: .seconds(3))
    }

    /// A store access option for the command line: the coordinator, or the store's files.
    var viaCoordinator: [String] { ["--coordinator", clientsEndpoint] }
    var viaStore: [String] { ["--store", store] }

    /// The log line saying a stored job resumed, if there is one.
    func resumedLine(job: UInt64) -> String? {
        cluster.children.flatMap { $0.log.split(separator: "\n") }.last { $0.hasSuffix(" job \(job) resumed") }.map(String.init)
    }
}

/// The coordinator's store across crashes and restarts, and the store commands, with real
/// `codebook` processes: a coordinator killed mid-job resumes its training jobs from their
/// checkpoints and its encoding jobs with the images not yet stored, and ends with exactly
/// what an uninterrupted run makes. Every process's log is printed when a test fails.
@Suite(.serialized) struct StoreProcessTests {
    static let dimension = 16

    static func corpus() throws -> String { try Corpora.path(rows: 20_000, dimension: dimension) }

    static func kmeansArguments(_ corpus: String, iterations: Int) -> [String] {
        ["train", "kmeans", "--corpus", corpus, "--k", "8", "--iterations", "\(iterations)", "--tolerance", "0",
         "--seed", "5", "--shard-rows", "2000"]
    }

    static func gmmArguments(_ corpus: String, kmeansIterations: Int, iterations: Int) -> [String] {
        ["train", "gmm", "--corpus", corpus, "--k", "8", "--iterations", "\(iterations)", "--kmeans-iterations", "\(kmeansIterations)",
         "--tolerance", "0", "--seed", "5", "--shard-rows", "2000"]
    }

    /// Every job record in the store, read from its files (a secondary instance, so it works
    /// whether or not a coordinator runs), with its metadata as the documented JSON.
    static func storedJobs(_ coordinator: StoreCoordinator) throws -> [UInt64: (metadata: [String: Any], values: Int)] {
        let reader = try CodebookStore(path: coordinator.store,
                                       mode: .secondary(secondaryPath: coordinator.cluster.scratch.file("reader-\(UUID().uuidString)")))
        try reader.catchUp()
        var jobs: [UInt64: (metadata: [String: Any], values: Int)] = [:]
        for (id, value) in try reader.allJobs() {
            let metadata = try JSONSerialization.jsonObject(with: Data(value.metadata)) as? [String: Any] ?? [:]
            jobs[id] = (metadata, value.values.count)
        }
        return jobs
    }

    /// The number in "iterations done=N" of a "job N resumed" log line.
    static func iterationsDone(in line: String?) -> Int? {
        guard let line, let range = line.range(of: "iterations done=") else { return nil }
        return Int(line[range.upperBound...].prefix { $0.isNumber })
    }

    /// Waits until every job in `jobs` has succeeded (throws at once if one fails).
    static func waitForSuccess(_ coordinator: StoreCoordinator, jobs: [UInt64], timeout: Double) async throws {
        let client = try coordinator.client()
        var states: [UInt64: JobProgress] = [:]
        let done = try await waitUntil(timeout: timeout) {
            for job in jobs { if let progress = try? client.progress(of: job, since: Int.max) { states[job] = progress } }
            if let failed = states.values.first(where: { $0.state == .failed }) {
                throw ClusterTestError("job \(failed.job) failed: \(failed.message ?? "")")
            }
            return jobs.allSatisfy { states[$0]?.state == .succeeded }
        }
        guard done else {
            throw ClusterTestError("the jobs did not succeed within \(timeout) s: \(states.values.map { "\($0.job) \($0.state)" })")
        }
    }

    /// The model record's iterations: per phase, numbered from 0 with none missing or repeated.
    static func checkIterations(_ record: ModelRecord, phases: [(String, Int)], _ cluster: ProcessCluster) {
        let training = record.training ?? []
        let expected = phases.flatMap { phase, count in (0..<count).map { "\(phase) \($0)" } }
        cluster.check(training.map { "\($0.phase) \($0.iteration)" } == expected,
                      "the stored model's iterations: \(training.map { "\($0.phase) \($0.iteration)" })")
    }

    /// The "values" array of `get --format json` output, each number read as a Float from its
    /// text (exact: the encoder writes each Float's shortest round-trip form).
    static func jsonValues(_ text: String) -> [Float]? {
        guard let start = text.range(of: "\"values\":["), let end = text[start.upperBound...].firstIndex(of: "]") else { return nil }
        let numbers = text[start.upperBound ..< end].split(separator: ",").map { Float(String($0)) }
        return numbers.contains(nil) ? nil : numbers.map { $0! }
    }

    // MARK: Training

    /// (a) A k-means and a GMM job run at once; the coordinator is SIGKILLed after each has
    /// reported iterations (the GMM in its EM phase), started again on the same store and
    /// ports, and the worker that kept running reconnects. Both jobs resume from their last
    /// checkpoint and store the models an uninterrupted embedded run makes, byte for byte.
    @Test func aCoordinatorKilledMidTrainingResumesItsJobsAndStoresTheUninterruptedModels() async throws {
        try await ProcessCluster().run { cluster in
            let corpus = try Self.corpus()
            // Many cheap iterations in both jobs, so that each is still running when the other
            // has got far enough (the GMM, whose passes go first, in its EM phase; the k-means
            // past 2 iterations), even on a loaded machine or with a faster E-step.
            let (gmmKMeansIterations, gmmIterations) = (3, 80)
            let gmm = Self.gmmArguments(corpus, kmeansIterations: gmmKMeansIterations, iterations: gmmIterations)
            let kmeansIterations = 80
            let kmeans = Self.kmeansArguments(corpus, iterations: kmeansIterations)
            let gmmReference = try await MultiProcessTests.reference(gmm, outputs: MultiProcessTests.gmmSuffixes)
            let kmeansReference = try await MultiProcessTests.reference(kmeans, outputs: [""])

            let coordinator = StoreCoordinator(cluster, store: cluster.scratch.file("store"))
            try await coordinator.start()
            let client = try coordinator.client()
            // Job 1 the GMM, job 2 the k-means (the coordinator serves the older job's passes
            // first, so the GMM goes first to be still running when the k-means has begun).
            // The worker starts once both are in. The train clients lose their coordinator
            // when it dies; the jobs are theirs no more.
            _ = try cluster.start("train-gmm", gmm + ["--name", "gm"] + coordinator.viaCoordinator)
            try cluster.require(await waitUntil(timeout: 20) { (try? client.progress(of: 1, since: 0)) != nil },
                                "job 1 was not submitted within 20 s")
            _ = try cluster.start("train-kmeans", kmeans + ["--name", "km"] + coordinator.viaCoordinator)
            try cluster.require(await waitUntil(timeout: 20) { (try? client.progress(of: 2, since: 0)) != nil },
                                "job 2 was not submitted within 20 s")
            let worker = try coordinator.startWorker("worker")
            var before: [UInt64: JobProgress] = [:]
            try cluster.require(await waitUntil(timeout: 30) {
                for job: UInt64 in [1, 2] { before[job] = try? client.progress(of: job, since: 0) }
                return (before[1]?.iterations.count ?? 0) >= 5 && (before[2]?.iterations.count ?? 0) >= 2
            }, "the jobs did not reach 5 and 2 iterations within 30 s: \(before.mapValues { "\($0.state) \($0.iterations.count)" })")
            worker.kill(SIGSTOP) // held still: no job can end before the kill
            for job: UInt64 in [1, 2] { before[job] = try? client.progress(of: job, since: 0) }
            try cluster.require(before.count == 2 && before.values.allSatisfy { $0.state == .running },
                                "a job ended before the kill: \(before.mapValues { "\($0.state) \($0.iterations.count)" })")

            _ = try await coordinator.stop(SIGKILL)
            // What the dead coordinator left: both jobs running, each with a checkpoint.
            let stored = try Self.storedJobs(coordinator)
            for (job, phase) in [(UInt64(1), "em"), (2, "kmeans")] {
                let record = stored[job]?.metadata ?? [:]
                let checkpoint = record["checkpoint"] as? [String: Any]
                cluster.check(record["state"] as? String == "running" && checkpoint?["phase"] as? String == phase
                              && ((record["iterations"] as? [Any])?.count ?? 0) >= 2,
                              "job \(job) as stored after the kill: \(record)")
            }

            try await coordinator.start()
            worker.kill(SIGCONT)
            try await Self.waitForSuccess(coordinator, jobs: [1, 2], timeout: 60)
            for (job, total) in [(UInt64(1), gmmKMeansIterations + gmmIterations), (2, kmeansIterations)] {
                let line = coordinator.resumedLine(job: job)
                let done = Self.iterationsDone(in: line) ?? -1
                cluster.check(done >= 2 && done < total, "job \(job) did not resume mid-way: \(line ?? "no \"resumed\" line")")
            }

            // The models, exported through the coordinator and through the store's files.
            let centres = cluster.scratch.file("km.npy")
            var run = try await cluster.run("export-km", ["export", "model", "km", "--out", centres] + coordinator.viaCoordinator)
            try cluster.require(run.status == 0, "export model km: \(run.log)")
            cluster.check(FileManager.default.contents(atPath: centres) == kmeansReference[0],
                          "the resumed k-means model differs from the uninterrupted run's")
            run = try await cluster.run("export-gm", ["export", "model", "gm", "--out", cluster.scratch.file("gm")] + coordinator.viaStore)
            try cluster.require(run.status == 0, "export model gm: \(run.log)")
            for (suffix, reference) in zip(MultiProcessTests.gmmSuffixes, gmmReference) {
                cluster.check(FileManager.default.contents(atPath: cluster.scratch.file("gm\(suffix)")) == reference,
                              "the resumed GMM's \(suffix) differs from the uninterrupted run's")
            }
            // Their records hold every iteration once, the ones before the crash included.
            let km = try client.describe(DescribeRequest(model: "km")).0.model
            let gm = try client.describe(DescribeRequest(model: "gm")).0.model
            try cluster.require(km != nil && gm != nil, "DESCRIBE lost a model")
            cluster.check(km!.source == "trained" && km!.kind == .kmeans && km!.k == 8 && km!.dimension == 16, "km: \(km!)")
            Self.checkIterations(km!, phases: [("kmeans", kmeansIterations)], cluster)
            Self.checkIterations(gm!, phases: [("kmeans", gmmKMeansIterations), ("em", gmmIterations)], cluster)
            let after = try Self.storedJobs(coordinator)
            cluster.check([1, 2].allSatisfy { after[$0]?.metadata["state"] as? String == "succeeded" },
                          "stored job states: \(after.mapValues { $0.metadata["state"] ?? "?" })")
        }
    }

    /// A graceful stop (SIGTERM: what systemd and Kubernetes send before a restart) in the
    /// middle of a job must not lose it: the job stays "running" in the store with its last
    /// checkpoint, and resumes when the coordinator starts again. Here a GMM is stopped in
    /// its k-means initialisation.
    @Test func aCoordinatorStoppedGracefullyMidTrainingResumesTheJobAtTheNextStart() async throws {
        try await ProcessCluster().run { cluster in
            let corpus = try Self.corpus()
            let gmm = Self.gmmArguments(corpus, kmeansIterations: 10, iterations: 4)
            let reference = try await MultiProcessTests.reference(gmm, outputs: MultiProcessTests.gmmSuffixes)

            let coordinator = StoreCoordinator(cluster, store: cluster.scratch.file("store"))
            try await coordinator.start()
            let worker = try coordinator.startWorker("worker")
            let client = try coordinator.client()
            _ = try cluster.start("train-gmm", gmm + ["--name", "gm"] + coordinator.viaCoordinator)
            var before: JobProgress?
            try cluster.require(await waitUntil(timeout: 20) {
                before = try? client.progress(of: 1, since: 0)
                return (before?.iterations.count ?? 0) >= 2
            }, "the job did not reach 2 iterations within 20 s: \(String(describing: before))")
            worker.kill(SIGSTOP) // held still: the job stays in its k-means phase until the stop
            before = try? client.progress(of: 1, since: 0)
            try cluster.require(before?.state == .running && (before?.iterations.count ?? 10) < 10,
                                "the job left its k-means phase before the stop: \(String(describing: before))")

            let status = try await coordinator.stop(SIGTERM)
            cluster.check(status == 0, "the coordinator exited with \(status) after SIGTERM")
            let record = try Self.storedJobs(coordinator)[1]?.metadata ?? [:]
            cluster.check(record["state"] as? String == "running",
                          "after a graceful stop the job is stored as \(record["state"] ?? "nothing") (\(record["message"] ?? "")), not running")
            cluster.check((record["checkpoint"] as? [String: Any])?["phase"] as? String == "kmeans",
                          "the stored checkpoint: \(record["checkpoint"] ?? "none")")

            try await coordinator.start()
            worker.kill(SIGCONT)
            try await Self.waitForSuccess(coordinator, jobs: [1], timeout: 60)
            let done = Self.iterationsDone(in: coordinator.resumedLine(job: 1)) ?? -1
            cluster.check(done >= 2 && done < 10, "the job did not resume in its k-means phase: \(done)")
            let run = try await cluster.run("export", ["export", "model", "gm", "--out", cluster.scratch.file("gm")] + coordinator.viaCoordinator)
            try cluster.require(run.status == 0, "export model gm: \(run.log)")
            for (suffix, data) in zip(MultiProcessTests.gmmSuffixes, reference) {
                cluster.check(FileManager.default.contents(atPath: cluster.scratch.file("gm\(suffix)")) == data,
                              "the resumed GMM's \(suffix) differs from the uninterrupted run's")
            }
        }
    }

    // MARK: Encoding

    /// An index of `images` images of `rows` rows each over the corpus, written in a seeded
    /// shuffled order (so index order is not key order). Returns the keys.
    static func writeIndex(_ path: String, images: Int, rows: Int, seed: UInt64) throws -> [String] {
        var generator = SeededGenerator(seed: seed)
        let lines = (0..<images).map { String(format: "img-%04d\t%d\t%d", $0, $0 * rows, rows) }.shuffled(using: &generator)
        try (lines.joined(separator: "\n") + "\n").write(toFile: path, atomically: true, encoding: .utf8)
        return lines.map { String($0.prefix { $0 != "\t" }) }
    }

    /// K centres: rows of the corpus spread over it (a valid codebook; training is not the point).
    static func writeCentres(_ path: String, corpus: String, k: Int) throws {
        let matrix = try NpyFile.readFloat32(path: corpus)
        let values = (0..<k).flatMap { centre in
            let row = centre * (matrix.rows / k)
            return matrix.values[row * matrix.columns ..< (row + 1) * matrix.columns]
        }
        try NpyFile.write(path: path, rows: k, columns: matrix.columns, values: Array(values))
    }

    /// The vectors of a file-mode run (`encode --centres --out`), by key.
    static func fileModeVectors(_ cluster: ProcessCluster, name: String, arguments: [String], keys: [String]) async throws -> [String: [UInt32]] {
        let out = cluster.scratch.file("\(name).npy")
        let run = try await cluster.run(name, arguments + ["--out", out])
        try cluster.require(run.status == 0, "\(name): \(run.log)")
        let matrix = try NpyFile.readFloat32(path: out)
        try cluster.require(matrix.rows == keys.count, "\(name): \(matrix.rows) rows for \(keys.count) images")
        var vectors: [String: [UInt32]] = [:]
        for (row, key) in keys.enumerated() {
            vectors[key] = matrix.values[row * matrix.columns ..< (row + 1) * matrix.columns].map(\.bitPattern)
        }
        return vectors
    }

    /// (b) The coordinator is SIGKILLed while an encoding job stores its vectors. What it
    /// left is whole shards; restarted, it encodes only the images not stored, and the set
    /// ends with every image exactly once and the vectors a file-mode run makes, bit for bit.
    /// (d) Meanwhile and after, a reader with `--store` (a secondary instance) sees them.
    @Test func aCoordinatorKilledMidEncodingResumesAndTheSetHoldsEveryImageOnce() async throws {
        try await ProcessCluster().run { cluster in
            let corpus = try Self.corpus()
            let index = cluster.scratch.file("images.tsv"), centres = cluster.scratch.file("centres.npy")
            let images = 8_000, perShard = 8
            let indexKeys = try Self.writeIndex(index, images: images, rows: 2, seed: 21)
            try Self.writeCentres(centres, corpus: corpus, k: 8)

            let coordinator = StoreCoordinator(cluster, store: cluster.scratch.file("store"))
            try await coordinator.start()
            var run = try await cluster.run("import", ["import", "model", "cb", "--centres", centres] + coordinator.viaCoordinator)
            try cluster.require(run.status == 0 && run.log.contains("stored kmeans model cb: K=8, D=16"), "import: \(run.log)")
            let worker = try coordinator.startWorker("worker")
            let client = try coordinator.client()
            _ = try cluster.start("encode", ["encode", "vlad", "--model", "cb", "--set", "S", "--descriptors", corpus, "--index", index,
                                         "--images-per-shard", "\(perShard)", "--square-root"] + coordinator.viaCoordinator)
            // Asked every 2 ms. Counts come with flushes, the first 0.1 s after the first
            // shard (here about 1,000 images in); then the worker is held still, so the
            // job cannot end before the kill.
            let killAfter = 200
            var before: JobProgress?
            let deadline = Date().addingTimeInterval(20)
            while (before?.imagesDone ?? 0) < killAfter && Date() < deadline {
                before = try? client.progress(of: 1, since: 0)
                if (before?.imagesDone ?? 0) < killAfter { try await Task.sleep(for: .milliseconds(2)) }
            }
            worker.kill(SIGSTOP) // held still: the job cannot end before the kill
            try await Task.sleep(for: .milliseconds(250)) // shards already stored are flushed and counted
            before = try? client.progress(of: 1, since: 0)
            _ = try await coordinator.stop(SIGKILL)
            try cluster.require((before?.imagesDone ?? 0) >= killAfter, "\(killAfter) images not stored within 20 s: \(String(describing: before))")
            try cluster.require(before?.state == .running, "the job ended before the kill: \(String(describing: before))")

            // What the killed coordinator left: whole shards of whole vectors.
            let reader = try CodebookStore(path: coordinator.store, mode: .secondary(secondaryPath: cluster.scratch.file("reader")))
            try reader.catchUp()
            let storedKeys = try reader.vectorKeys(prefix: "S/", limit: .max)
            let stored = storedKeys.count
            try cluster.require(stored >= (before?.imagesDone ?? 0) && stored < images,
                                "\(stored) vectors stored after the kill (\(before?.imagesDone ?? 0) reported before it)")
            cluster.check(stored % perShard == 0, "\(stored) vectors stored: a shard was stored in part")
            for key in storedKeys {
                let value = try reader.vector(set: "S", key: String(key.dropFirst(2)))
                cluster.check(value?.values.count == 8 * Self.dimension, "\(key): \(value?.values.count ?? 0) values")
            }
            let job = try Self.storedJobs(coordinator)[1]?.metadata ?? [:]
            cluster.check(job["state"] as? String == "running" && job["encoding"] != nil, "the stored encoding job: \(job)")

            try await coordinator.start()
            worker.kill(SIGCONT)
            let resumed = try? client.progress(of: 1, since: 0)
            cluster.check((resumed?.imagesDone ?? 0) >= stored && resumed?.imagesTotal == images,
                          "after the restart the job counts \(resumed?.imagesDone ?? -1) of \(resumed?.imagesTotal ?? -1) images stored; \(stored) were")
            // (d) A reader of the store's files, while the coordinator writes.
            run = try await cluster.run("list-during", ["list", "S/", "--limit", "100000"] + coordinator.viaStore)
            let listed = run.log.split(separator: "\n").filter { $0.hasPrefix("S/") }.count
            cluster.check(run.status == 0 && listed >= stored, "list --store during the job: \(listed) keys, \(stored) were stored")

            try await Self.waitForSuccess(coordinator, jobs: [1], timeout: 60)
            cluster.check(coordinator.resumedLine(job: 1) != nil, "the coordinator did not say the job resumed")

            let out = cluster.scratch.file("set.npy")
            run = try await cluster.run("export-set", ["export", "set", "S", "--out", out] + coordinator.viaStore)
            try cluster.require(run.status == 0, "export set S: \(run.log)")
            let keys = try String(contentsOfFile: cluster.scratch.file("set.keys.txt"), encoding: .utf8).split(separator: "\n").map(String.init)
            cluster.check(keys.count == images && Set(keys).count == images && Set(keys) == Set(indexKeys),
                          "the set holds \(keys.count) keys, \(Set(keys).count) distinct; the index has \(images)")
            cluster.check(keys == keys.sorted { Array($0.utf8).lexicographicallyPrecedes(Array($1.utf8)) }, "exported keys not in key order")
            let exported = try NpyFile.readFloat32(path: out)
            try cluster.require(exported.rows == keys.count && exported.columns == 8 * Self.dimension,
                                "exported \(exported.rows)×\(exported.columns)")
            let reference = try await Self.fileModeVectors(
                cluster, name: "file-mode", arguments: ["encode", "vlad", "--centres", centres, "--descriptors", corpus, "--index", index,
                                                        "--square-root"], keys: indexKeys)
            var differing: [String] = []
            for (row, key) in keys.enumerated()
            where exported.values[row * exported.columns ..< (row + 1) * exported.columns].map(\.bitPattern) != reference[key] {
                differing.append(key)
            }
            cluster.check(differing.isEmpty, "\(differing.count) stored vectors differ from the file-mode run's, e.g. \(differing.prefix(5))")
        }
    }

    // MARK: The store commands

    /// (c) get, list, import, and one encoding per set, through a coordinator and through
    /// the store's files while the coordinator runs (d).
    @Test func storeCommandsGetListImportAndASetKeepsOneEncoding() async throws {
        try await ProcessCluster().run { cluster in
            let corpus = try Self.corpus()
            let index = cluster.scratch.file("images.tsv"), centres = cluster.scratch.file("centres.npy")
            let small = cluster.scratch.file("centres4.npy")
            let indexKeys = try Self.writeIndex(index, images: 40, rows: 10, seed: 22)
            let sortedKeys = indexKeys.map { "S/\($0)" }.sorted { Array($0.utf8).lexicographicallyPrecedes(Array($1.utf8)) }
            try Self.writeCentres(centres, corpus: corpus, k: 8)
            try Self.writeCentres(small, corpus: corpus, k: 4)
            let coordinator = StoreCoordinator(cluster, store: cluster.scratch.file("store"))
            try await coordinator.start()
            try coordinator.startWorker("worker")
            let via = coordinator.viaCoordinator, files = coordinator.viaStore
            var count = 0
            func codebook(_ arguments: [String]) async throws -> (status: Int32, log: String) {
                count += 1
                return try await cluster.run("\(count)-\(arguments[0])", arguments)
            }

            // Import, then encode with the imported model.
            var run = try await codebook(["import", "model", "cb", "--centres", centres] + via)
            try cluster.require(run.status == 0, "import: \(run.log)")
            run = try await codebook(["import", "model", "cb", "--centres", small] + via)
            cluster.check(run.status != 0 && run.log.contains("a model named \"cb\" exists; pass --replace"), "second import: \(run.log)")
            run = try await codebook(["import", "model", "cb4", "--centres", small] + via)
            try cluster.require(run.status == 0, "import cb4: \(run.log)")
            let encode = ["encode", "vlad", "--set", "S", "--descriptors", corpus, "--index", index, "--images-per-shard", "16"]
            run = try await codebook(encode + ["--model", "cb"] + via)
            try cluster.require(run.status == 0 && run.log.contains("stored 40 images in set S"), "encode: \(run.log)")
            let reference = try await Self.fileModeVectors(
                cluster, name: "file-mode", arguments: ["encode", "vlad", "--centres", centres, "--descriptors", corpus, "--index", index],
                keys: indexKeys)

            // get: text, json, npy; through the coordinator and the files.
            let key = indexKeys[7]
            run = try await codebook(["get", "S/\(key)"] + via)
            let text = run.log.split(separator: "\n").compactMap { Float(String($0)) }
            cluster.check(run.status == 0 && text.map(\.bitPattern) == reference[key], "get (text): \(run.log.prefix(300))")
            run = try await codebook(["get", "S/\(key)", "--format", "json"] + files)
            let json = (try? JSONSerialization.jsonObject(with: Data(run.log.utf8))) as? [String: Any]
            let values = Self.jsonValues(run.log)?.map(\.bitPattern)
            cluster.check(run.status == 0 && json?["key"] as? String == "S/\(key)" && json?["encoding"] as? String == "vlad"
                          && json?["model"] as? String == "cb" && json?["flags"] as? Int == 0 && values == reference[key],
                          "get --format json: \(run.log.prefix(300))")
            let npy = cluster.scratch.file("one.npy")
            run = try await codebook(["get", "S/\(key)", "--format", "npy", "--out", npy] + via)
            let single = try? NpyFile.readFloat32(path: npy)
            cluster.check(run.status == 0 && single?.rows == 1 && single?.columns == 128 && single?.values.map(\.bitPattern) == reference[key],
                          "get --format npy: \(run.log)")
            for access in [via, files] {
                for missing in ["S/img-9999", "nosuchset/img-0001"] {
                    run = try await codebook(["get", missing] + access)
                    cluster.check(run.status == 1 && run.log.contains("not found") && run.log.contains(missing),
                                  "get \(missing) \(access[0]): \(run.status) \(run.log)")
                    cluster.check(!run.log.contains("Fatal error"), "get \(missing) crashed")
                }
            }

            // list: the first N in byte order, a prefix, everything; and LIST paging.
            run = try await codebook(["list", "S/", "--limit", "5"] + files)
            cluster.check(run.status == 0 && run.log.split(separator: "\n").map(String.init) == Array(sortedKeys.prefix(5)),
                          "list --limit 5: \(run.log)")
            run = try await codebook(["list", "S/img-001"] + via)
            cluster.check(run.log.split(separator: "\n").map(String.init) == sortedKeys.filter { $0.hasPrefix("S/img-001") },
                          "list S/img-001: \(run.log)")
            run = try await codebook(["list"] + via)
            cluster.check(run.log.split(separator: "\n").map(String.init) == sortedKeys, "list: \(run.log)")
            let reader = try CodebookStore(path: coordinator.store, mode: .secondary(secondaryPath: cluster.scratch.file("reader")))
            try reader.catchUp()
            for requester in [try coordinator.client(), StoreQueries(store: reader)] as [any Requester] {
                var pages: [ListReply] = [], after: String?
                repeat {
                    pages.append(try requester.list(prefix: "S/", after: after, limit: 7))
                    after = pages.last?.keys.last
                } while pages.last?.more == true && pages.count < 20
                cluster.check(pages.flatMap(\.keys) == sortedKeys && pages.map(\.keys.count) == [7, 7, 7, 7, 7, 5]
                              && pages.dropLast().allSatisfy(\.more), "LIST pages of 7 (\(type(of: requester))): \(pages)")
            }

            // search: the key's own vector and the same vector from a .npy give the float64 brute
            // force's neighbours, through the coordinator and the files, as tsv and json.
            let vectors = reference.mapValues { $0.map(Float.init(bitPattern:)) }
            let query = vectors[key]!
            let expected = vectors.map { name, values in
                (name, zip(query, values).reduce(0.0) { $0 + Double($1.0) * Double($1.1) })
            }.sorted { $0.1 > $1.1 || ($0.1 == $1.1 && Array($0.0.utf8).lexicographicallyPrecedes(Array($1.0.utf8))) }.prefix(4)
            for arguments in [["--key", key] + via, ["--vector", npy] + files] {
                run = try await codebook(["search", "S", "--top", "4", "--format", "tsv"] + arguments)
                let rows = run.log.split(separator: "\n").dropFirst().map { $0.split(separator: "\t").map(String.init) }
                cluster.check(run.status == 0 && rows.map { $0[2] } == expected.map(\.0) && rows.map { $0[1] } == ["1", "2", "3", "4"]
                              && zip(rows, expected).allSatisfy { abs(Double($0[3])! - $1.1) <= 1e-5 * max(1, abs($1.1)) },
                              "search \(arguments[0]): \(run.log)")
            }
            run = try await codebook(["search", "S", "--key", key, "--top", "2", "--format", "json"] + files)
            let hits = ((try? JSONSerialization.jsonObject(with: Data(run.log.utf8))) as? [[String: Any]])?.first
            cluster.check(hits?["query"] as? String == key
                          && (hits?["results"] as? [[String: Any]])?.compactMap { $0["key"] as? String } == expected.prefix(2).map(\.0),
                          "search --format json: \(run.log)")
            run = try await codebook(["search", "nosuchset", "--key", key] + via)
            cluster.check(run.status == 1 && run.log.contains("not found: no set named \"nosuchset\""), "search nosuchset: \(run.log)")

            // One encoding per set: another model, other flags or another encoding is refused…
            run = try await codebook(encode + ["--model", "cb4"] + via)
            cluster.check(run.status != 0 && run.log.contains("set \"S\" holds vlad vectors of model \"cb\"")
                          && run.log.contains("use another set, or replace it; pass --replace to overwrite it"), "another model into S: \(run.log)")
            run = try await codebook(encode + ["--model", "cb", "--square-root"] + via)
            cluster.check(run.status != 0 && run.log.contains("(flags 0, 128 values)") && run.log.contains("(flags 2, 128 values)"),
                          "other flags into S: \(run.log)")
            run = try await codebook(["encode", "fisher"] + encode.dropFirst(2) + ["--model", "cb"] + via)
            cluster.check(run.status != 0 && run.log.contains("model \"cb\" is a kmeans model; Fisher vectors need a GMM"),
                          "Fisher with a codebook: \(run.log)")
            run = try await codebook(["get", "S/\(key)", "--format", "json"] + via)
            cluster.check(run.log.contains("\"model\":\"cb\""), "a refused job changed the set: \(run.log.prefix(200))")
            // …unless --replace, which empties the set first.
            run = try await codebook(encode + ["--model", "cb4", "--replace"] + via)
            try cluster.require(run.status == 0, "encode --replace: \(run.log)")
            run = try await codebook(["get", "S/\(key)", "--format", "json"] + files)
            let replaced = (try? JSONSerialization.jsonObject(with: Data(run.log.utf8))) as? [String: Any]
            cluster.check(replaced?["model"] as? String == "cb4" && Self.jsonValues(run.log)?.count == 64,
                          "after --replace: \(run.log.prefix(200))")
            run = try await codebook(["list", "S/"] + files)
            cluster.check(run.log.split(separator: "\n").count == 40, "after --replace the set lists \(run.log)")
            run = try await codebook(["models"] + files)
            cluster.check(run.status == 0 && run.log.contains("models: 2") && run.log.contains("cb4  kmeans  K=4  D=16  imported")
                          && run.log.contains("S  vlad  model cb4  dimension 64"), "models: \(run.log)")

            // Writing through the files while the coordinator holds the store is refused, not a crash.
            run = try await codebook(["import", "model", "other", "--centres", small] + files)
            cluster.check(run.status != 0 && run.log.contains("LOCK") && !run.log.contains("Fatal error"),
                          "import --store while a coordinator runs: \(run.log)")
        }
    }
}

/// `codebook cancel` and `codebook status` against a coordinator process, and a coordinator
/// killed after the cancel: the job stays cancelled and is not resumed.
@Suite(.serialized) struct CancelCommandTests {
    @Test func codebookCancelStopsAJobThatAKilledCoordinatorDoesNotResume() async throws {
        try await ProcessCluster().run { cluster in
            let corpus = try StoreProcessTests.corpus()
            let coordinator = StoreCoordinator(cluster, store: cluster.scratch.file("store"))
            try await coordinator.start()
            // No worker: the job waits on its first pass, and would be resumed after a restart.
            let job = try coordinator.client().submit(
                TrainingJob(kind: .kmeans, corpus: corpus, k: 8, iterations: 5, seed: 5, tolerance: 0, shardRows: 2000,
                            initialization: .kmeansPlusPlus))
            var run = try await cluster.run("cancel", ["cancel", "\(job)"] + coordinator.viaCoordinator)
            cluster.check(run.status == 0 && run.log.contains("job \(job) cancelled"), "cancel: \(run.log)")
            run = try await cluster.run("status", ["status"] + coordinator.viaCoordinator)
            cluster.check(run.status == 0 && run.log.contains("  \(job)  kmeans  cancelled  "), "status: \(run.log)")
            run = try await cluster.run("cancel-again", ["cancel", "\(job)"] + coordinator.viaCoordinator)
            cluster.check(run.status != 0 && run.log.contains("job \(job) has already been cancelled"), "cancel again: \(run.log)")
            run = try await cluster.run("cancel-unknown", ["cancel", "12345"] + coordinator.viaCoordinator)
            cluster.check(run.status != 0 && run.log.contains("no job 12345"), "cancel unknown: \(run.log)")

            _ = try await coordinator.stop(SIGKILL)
            try await coordinator.start()
            try coordinator.startWorker("worker")
            try await Task.sleep(for: .seconds(1))
            let progress = try coordinator.client().progress(of: job, since: 0)
            cluster.check(progress.state == .cancelled, "after the restart: \(progress)")
            cluster.check(coordinator.resumedLine(job: job) == nil, "the cancelled job was resumed")
            let status = try coordinator.client().status()
            cluster.check(status.passes.isEmpty && status.workers.allSatisfy { $0.shardsDone == 0 }, "\(status)")
        }
    }
}
