import ArgumentParser
import Cluster
import Foundation
import Logging
import Storage
import Synchronization
import Telemetry
import ZeroMQ

/// Options of the cluster and store sections (kept apart from `BenchOptions`).
struct ClusterBenchOptions: ParsableArguments {
    @Option(help: "cluster/store: worker processes (`codebook worker --threads 1` each; the store's embedded cluster too).")
    var workers: Int = 2
    @Option(help: "cluster: rows of the smaller scaling corpus (fvecs); the larger has 4× as many.")
    var scalingRows: Int = 2_000_000
    @Option(help: "cluster: the larger K of the coordinator-work measurement.")
    var wideK: Int = 4096
    @Option(help: "cluster: rows of the (separate, smaller) corpus used with --wide-k.")
    var wideRows: Int = 250_000
    @Option(help: "store: images to encode (each --image-rows descriptors).")
    var storeImages: Int = 20_000
    @Option(help: "store: VLAD codebook size (K·D values per vector).")
    var storeK: Int = 64
    @Option(help: "store: concurrent clients for key lookups.")
    var lookupClients: Int = 8
    @Option(help: "store: seconds of key lookups.")
    var lookupSeconds: Double = 5
    @Option(help: "The codebook executable for worker processes (default: next to this binary).")
    var codebookBinary: String?

    func resolved(quick: Bool) throws -> ClusterSizes {
        guard workers >= 1, scalingRows >= 1, wideK >= 1, wideRows >= wideK, storeImages >= 1, storeK >= 1,
              lookupClients >= 1, lookupSeconds > 0 else {
            throw ValidationError("cluster/store options: need workers, scaling-rows, wide-k, store-images, store-k, "
                                  + "lookup-clients ≥ 1, wide-rows ≥ wide-k, lookup-seconds > 0")
        }
        var sizes = ClusterSizes(workers: workers, scalingRows: scalingRows, wideK: wideK, wideRows: wideRows,
                                 storeImages: storeImages, storeK: storeK, lookupClients: lookupClients,
                                 lookupSeconds: lookupSeconds, codebookBinary: codebookBinary)
        if quick {
            sizes.scalingRows = min(scalingRows, 100_000)
            sizes.wideK = min(wideK, 512)
            sizes.wideRows = min(wideRows, 50_000)
            sizes.storeImages = min(storeImages, 200)
            sizes.lookupSeconds = min(lookupSeconds, 1)
        }
        return sizes
    }
}

/// The resolved sizes of the cluster and store sections.
struct ClusterSizes: Sendable {
    var workers: Int
    var scalingRows: Int
    var wideK: Int
    var wideRows: Int
    var storeImages: Int
    var storeK: Int
    var lookupClients: Int
    var lookupSeconds: Double
    var codebookBinary: String?

    /// The `codebook` executable: `--codebook-binary`, else next to this binary (same build directory).
    func codebookExecutable() throws -> String {
        if let codebookBinary { return codebookBinary }
        let own = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath()
        let candidate = own.deletingLastPathComponent().appendingPathComponent("codebook").path
        guard FileManager.default.isExecutableFile(atPath: candidate) else {
            throw CheckFailure("no codebook executable at \(candidate): build it with "
                               + "`swift build -c release --product codebook` (same --scratch-path) or pass --codebook-binary")
        }
        return candidate
    }
}

/// A logger that drops everything (the bench prints tables, not logs).
let quietLogger = Logger(label: "codebook-bench", factory: { _ in SwiftLogNoOpLogHandler() })

/// `codebook worker` processes, started from a thread of their own that lives as long as
/// they do: each runs under `setpriv --pdeathsig KILL`, so the kernel kills it when that
/// thread (or this whole process, however it ends) goes away. `stop()` ends them normally.
final class WorkerProcesses: @unchecked Sendable {
    // @unchecked Sendable: `processes` is written once by the keeper thread before `init`
    // returns (ordered by the semaphore) and only read afterwards.
    private(set) var processes: [Process] = []
    private let release = DispatchSemaphore(value: 0)
    private let finished = DispatchSemaphore(value: 0)
    private var stopped = false

    /// - Parameter keys: extra arguments of each worker (its CURVE key options), if any.
    init(count: Int, binary: String, endpoint: String, threads: Int, logDirectory: String, tag: String,
         keys: [String] = []) throws {
        let spawned = DispatchSemaphore(value: 0)
        let failure = Mutex<(any Error)?>(nil)
        let setpriv = ["/usr/bin/setpriv", "/bin/setpriv"].first { FileManager.default.isExecutableFile(atPath: $0) }
        let thread = Thread { [self] in
            do {
                for index in 1...count {
                    let process = Process()
                    let arguments = [binary, "worker", "--connect", endpoint, "--threads", String(threads),
                                     "--name", "\(tag)-w\(index)"] + keys
                    if let setpriv {
                        process.executableURL = URL(fileURLWithPath: setpriv)
                        process.arguments = ["--pdeathsig", "KILL", "--"] + arguments
                    } else {
                        process.executableURL = URL(fileURLWithPath: binary)
                        process.arguments = Array(arguments.dropFirst())
                    }
                    let log = logDirectory + "/worker-\(tag)-w\(index).log"
                    _ = FileManager.default.createFile(atPath: log, contents: nil)
                    let handle = FileHandle(forWritingAtPath: log)
                    process.standardOutput = handle
                    process.standardError = handle
                    process.standardInput = FileHandle.nullDevice
                    try process.run()
                    processes.append(process)
                }
            } catch {
                failure.withLock { $0 = error }
            }
            spawned.signal()
            release.wait()
            finished.signal()
        }
        thread.name = "codebook-bench-worker-keeper"
        thread.start()
        spawned.wait()
        if let failure = failure.withLock({ $0 }) {
            stop()
            throw failure
        }
    }

    var pids: [Int32] { processes.map(\.processIdentifier) }

    /// Peak resident memory (VmHWM) of each worker, in bytes.
    func peakResidentBytes() -> [Int?] { pids.map { Machine.peakResidentBytes(of: String($0)) } }

    /// SIGTERM, up to 5 s to exit, then SIGKILL; waits for (reaps) every worker.
    func stop() {
        guard !stopped else { return }
        stopped = true
        for process in processes where process.isRunning { process.terminate() }
        let deadline = Stopwatch.now() + 5
        for process in processes {
            while process.isRunning && Stopwatch.now() < deadline { usleep(10_000) }
            if process.isRunning { kill(process.processIdentifier, SIGKILL) }
            process.waitUntilExit()
        }
        release.signal()
        finished.wait()
    }

    deinit { stop() }
}

/// CURVE for a bench cluster: key pairs made with `codebook keys generate` (coordinator,
/// workers, the bench as client) and the allow-lists that admit them.
struct BenchKeys {
    let coordinator: CoordinatorSecurity
    let client: ClientSecurity
    /// The worker processes' key options.
    let workerArguments: [String]

    /// Writes the keys into a fresh directory `tag-keys` under `directory`.
    init(binary: String, directory: String, tag: String) throws {
        let folder = directory + "/\(tag)-keys"
        try? FileManager.default.removeItem(atPath: folder)
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        for name in ["coordinator", "worker", "client"] {
            let process = Process()
            process.executableURL = URL(fileURLWithPath: binary)
            process.arguments = ["keys", "generate", "--out", folder + "/" + name]
            process.standardOutput = FileHandle.nullDevice
            try process.run()
            process.waitUntilExit()
            guard process.terminationStatus == 0 else {
                throw CheckFailure("`codebook keys generate --out \(folder)/\(name)` exited with \(process.terminationStatus)")
            }
        }
        let workerKey = try KeyFiles.readPublicKey(path: folder + "/worker.public")
        let clientKey = try KeyFiles.readPublicKey(path: folder + "/client.public")
        try (workerKey.z85 + "\n").write(toFile: folder + "/workers.keys", atomically: true, encoding: .utf8)
        try (clientKey.z85 + " write\n").write(toFile: folder + "/clients.keys", atomically: true, encoding: .utf8)
        coordinator = CoordinatorSecurity(keyPair: try KeyFiles.readKeyPair(path: folder + "/coordinator.secret"),
                                          workerKeysFile: folder + "/workers.keys", clientKeysFile: folder + "/clients.keys")
        client = ClientSecurity(keyPair: try KeyFiles.readKeyPair(path: folder + "/client.secret"),
                                coordinatorKey: coordinator.keyPair.publicKey)
        workerArguments = ["--secret-key", folder + "/worker.secret", "--coordinator-key", folder + "/coordinator.public"]
    }
}

/// An in-process coordinator on tcp loopback (ports chosen by the kernel) and `workers`
/// worker processes of one thread each connected to it; with `keys`, over CURVE.
final class BenchCluster {
    let context: ZeroMQContext
    let coordinator: Coordinator
    let endpoints: (workers: String, clients: String)
    let workers: WorkerProcesses
    private let clientSecurity: ClientSecurity?
    private var stopped = false

    init(workers count: Int, binary: String, logDirectory: String, tag: String, store: CodebookStore? = nil,
         keys: BenchKeys? = nil, metrics: CoordinatorMetrics? = nil) throws {
        context = try ZeroMQContext()
        var settings = CoordinatorSettings()
        settings.security = keys?.coordinator
        clientSecurity = keys?.client
        coordinator = Coordinator(context: context, workersEndpoint: "tcp://127.0.0.1:*",
                                  clientsEndpoint: "tcp://127.0.0.1:*", settings: settings, store: store, metrics: metrics,
                                  logger: quietLogger)
        endpoints = try coordinator.start()
        do {
            workers = try WorkerProcesses(count: count, binary: binary, endpoint: endpoints.workers, threads: 1,
                                          logDirectory: logDirectory, tag: tag, keys: keys?.workerArguments ?? [])
        } catch {
            coordinator.stop()
            throw error
        }
        do {
            try waitForWorkers(count, logDirectory: logDirectory)
        } catch {
            shutdown()
            throw error
        }
    }

    /// Waits (≤ 30 s) until the coordinator counts `count` live workers.
    private func waitForWorkers(_ count: Int, logDirectory: String) throws {
        let client = try ClusterClient(context: context, endpoint: endpoints.clients, timeout: .seconds(5), security: clientSecurity)
        let deadline = Stopwatch.now() + 30
        while true {
            let seen = try client.status().workers.count
            if seen >= count { return }
            if Stopwatch.now() > deadline {
                throw CheckFailure("only \(seen) of \(count) worker processes connected within 30 s (logs in \(logDirectory))")
            }
            usleep(20_000)
        }
    }

    /// Each worker's VmHWM read just before stopping it; then stops the workers and the coordinator.
    @discardableResult
    func shutdown() -> [Int?] {
        guard !stopped else { return [] }
        stopped = true
        let peaks = workers.peakResidentBytes()
        workers.stop()
        coordinator.stop()
        return peaks
    }

    deinit { shutdown() }
}

/// Cores used by other processes right now (sampled over `seconds`): the bench's own CPU
/// and that of its reaped children are subtracted, as in `ContentionMonitor`.
func otherProcessesCores(over seconds: Double = 1) -> Double {
    let busy = ContentionMonitor.machineBusySeconds(), own = ContentionMonitor.ownSeconds(), started = Stopwatch.now()
    usleep(UInt32(seconds * 1e6))
    let wall = Stopwatch.now() - started
    return max(0, (ContentionMonitor.machineBusySeconds() - busy) - (ContentionMonitor.ownSeconds() - own)) / wall
}

/// Prints the pre-timing load line; a loaded machine is flagged, not waited for.
func noteLoadBeforeTiming(_ what: String) {
    let cores = otherProcessesCores()
    print("(before \(what): other processes using \(format(cores, "%.2f")) cores"
          + (cores > 0.2 ? " — the machine is shared, timings will be noisy)" : ")"))
}

/// Bitwise equality of two float arrays.
func bitIdentical(_ a: [Float], _ b: [Float]) -> Bool {
    a.count == b.count && a.withUnsafeBytes { x in b.withUnsafeBytes { y in x.count == 0 || memcmp(x.baseAddress!, y.baseAddress!, x.count) == 0 } }
}

func mebibytes(_ bytes: Int?) -> String { bytes.map { format(Double($0) / Double(1 << 20), "%.0f MiB") } ?? "?" }
func milliseconds(_ value: Double) -> String { format(value * 1000, "%.2f ms") }
