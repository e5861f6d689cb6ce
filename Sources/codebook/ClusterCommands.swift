import ArgumentParser
#if canImport(Glibc)
import CMalloc
#endif
import Cluster
import ClusterProtocol
import Clustering
import Foundation
import Logging
import Storage
import Telemetry
import ZeroMQ

/// Blocks until SIGINT or SIGTERM.
enum Signals {
    static func waitForTermination() async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let queue = DispatchQueue(label: "codebook.signals")
            var sources: [DispatchSourceSignal] = []
            let resumed = NSLock()
            var done = false
            for signalNumber in [SIGINT, SIGTERM] {
                signal(signalNumber, SIG_IGN)
                let source = DispatchSource.makeSignalSource(signal: signalNumber, queue: queue)
                source.setEventHandler {
                    resumed.lock()
                    defer { resumed.unlock() }
                    guard !done else { return }
                    done = true
                    sources.forEach { $0.cancel() }
                    continuation.resume()
                }
                source.resume()
                sources.append(source)
            }
        }
    }
}

extension Signals {
    /// Calls `handler` on every SIGHUP until the returned source is cancelled.
    static func onHangup(_ handler: @escaping @Sendable () -> Void) -> any DispatchSourceSignal {
        signal(SIGHUP, SIG_IGN)
        let source = DispatchSource.makeSignalSource(signal: SIGHUP, queue: DispatchQueue(label: "codebook.sighup"))
        source.setEventHandler(handler: handler)
        source.resume()
        return source
    }
}

/// Closes `store` on this thread once every other thread has let go of it, so that its
/// database is closed before main returns and `exit` destroys RocksDB's static objects (a
/// database closed by another thread meanwhile aborts the process; see
/// `CodebookStore.close`). A store still in use 30 s later ends the process at once, with
/// `report` told why and the unlogged vectors flushed (the log keeps every other write).
func closeBeforeExit(_ store: inout CodebookStore?, report: (String) -> Void) {
    guard !CodebookStore.close(&store, waitingUpTo: .seconds(30)) else { return }
    report("the store is still in use 30 s after the stop; exiting without closing it (its log keeps every write)")
    try? store?.flushVectors()
    fflush(nil)
    _exit(EXIT_FAILURE)
}

func processLogger(_ label: String) -> Logger {
    var logger = Logger(label: label)
    logger.logLevel = .info
    return logger
}

struct CoordinatorCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "coordinator", abstract: "Run a coordinator until SIGINT/SIGTERM.")

    @Option(help: "Where workers connect (ZeroMQ endpoint). Binding beyond loopback is an explicit choice.")
    var workersEndpoint: String = "tcp://127.0.0.1:5555"
    @Option(help: "Where clients connect (ZeroMQ endpoint).") var clientsEndpoint: String = "tcp://127.0.0.1:5556"
    @Option(help: "The store (a RocksDB directory): models, vectors, job checkpoints. Jobs left running in it resume.")
    var store: String = "codebook.db"
    @OptionGroup var security: CoordinatorSecurityOptions
    @OptionGroup var limits: CoordinatorLimitOptions
    @OptionGroup var metricsOptions: MetricsOptions

    func validate() throws {
        try validateEndpoint(workersEndpoint, option: "--workers-endpoint")
        try validateEndpoint(clientsEndpoint, option: "--clients-endpoint")
    }

    func run() async throws {
        let logger = processLogger("codebook.coordinator")
        #if canImport(Glibc)
        // Buffers of 128 KiB and more (messages, replies) are mapped on their own and go back
        // to the system when freed. Left to itself, glibc raises this threshold after the
        // first such free and keeps later ones in its heaps: the replies queued for a client
        // that never read them stayed resident after it left.
        mallopt(M_MMAP_THRESHOLD, 128 * 1024)
        #endif
        var settings = limits.settings
        settings.security = try security.security(binding: [workersEndpoint, clientsEndpoint])
        settings.corpusRoots = try security.roots
        var opened: CodebookStore? = try CodebookStore(path: store)
        var failure: (any Error)?
        do { try await serve(opened!, settings: settings, logger: logger) } catch { failure = error }
        closeBeforeExit(&opened) { logger.error("\($0)") }
        if let failure { throw failure }
    }

    /// Runs a coordinator on `store` until SIGINT or SIGTERM, and stops it.
    private func serve(_ store: CodebookStore, settings: CoordinatorSettings, logger: Logger) async throws {
        let metrics = metricsOptions.metricsEndpoint.map { _ in CoordinatorMetrics(registry: MetricsRegistry()) }
        let coordinator = Coordinator(context: try ZeroMQContext(), workersEndpoint: workersEndpoint,
                                      clientsEndpoint: clientsEndpoint, settings: settings,
                                      store: store, metrics: metrics, logger: logger)
        let bound = try coordinator.start()
        let server: MetricsServer?
        do {
            server = try metricsOptions.serve(metrics?.registry, logger: logger)
        } catch {
            coordinator.stop(keepingJobs: true)
            throw error
        }
        if !isLoopbackEndpoint(workersEndpoint) || !isLoopbackEndpoint(clientsEndpoint) {
            if settings.security == nil { logger.warning("bound beyond loopback with no authentication and no encryption (--insecure)") }
            if settings.corpusRoots == nil { logger.warning("bound beyond loopback without --corpus-root: jobs may read any file the workers can") }
        }
        let hangup = settings.security.map { _ in Signals.onHangup { [weak coordinator] in coordinator.map { reload($0, logger: logger) } } }
        logger.info("coordinator ready", metadata: ["workers": "\(bound.workers)", "clients": "\(bound.clients)",
                                                    "curve": "\(settings.security == nil ? "off" : "on")"])
        await Signals.waitForTermination()
        hangup?.cancel()
        server?.stop()
        coordinator.stop(keepingJobs: true)
        logger.info("coordinator stopped")
    }

    private func reload(_ coordinator: Coordinator, logger: Logger) {
        do {
            try coordinator.reloadAccessLists()
        } catch {
            logger.error("access lists not reloaded; the previous ones stay in force", metadata: ["error": "\(error)"])
        }
    }
}

/// The coordinator's limits (`CoordinatorSettings`), each with its default.
struct CoordinatorLimitOptions: ParsableArguments {
    private static let defaults = CoordinatorSettings()

    @Option(help: "Largest K·D of a model (trained, imported or given). Also sets the largest message: 8·K·D bytes.")
    var maxModelValues = defaults.maximumModelValues
    @Option(help: "Largest D (values per descriptor) of a corpus or model.")
    var maxDimension = defaults.maximumDimension
    @Option(help: "Largest seeding sample a training job gathers on the coordinator, in bytes.")
    var maxSampleBytes = defaults.maximumSampleBytes
    @Option(help: "Most images in one encoding job.")
    var maxImages = defaults.maximumImagesPerJob
    @Option(help: "Most jobs running at once.")
    var maxRunningJobs = defaults.maximumActiveJobs
    @Option(help: "Most bytes of arrays in one client request (a given initial model, an import).")
    var maxRequestArrayBytes = defaults.maximumRequestArrayBytes
    @Option(help: "Most bytes of sets' vectors kept in memory between searches (0: read the set for every search).")
    var searchCacheBytes = defaults.searchCacheBytes
    @Option(help: "Finished jobs kept (the most recent), with their initial models.")
    var keepFinishedJobs = defaults.finishedJobsKept
    @Option(help: "Hours a finished job is kept.")
    var keepFinishedJobsHours = defaults.finishedJobLifetime / 3600

    func validate() throws {
        for (name, value) in [("--max-model-values", maxModelValues), ("--max-dimension", maxDimension),
                              ("--max-sample-bytes", maxSampleBytes), ("--max-images", maxImages),
                              ("--max-running-jobs", maxRunningJobs), ("--max-request-array-bytes", maxRequestArrayBytes)]
        where value < 1 {
            throw ValidationError("\(name) must be at least 1")
        }
        guard keepFinishedJobs >= 0, keepFinishedJobsHours >= 0, keepFinishedJobsHours.isFinite, searchCacheBytes >= 0 else {
            throw ValidationError("--keep-finished-jobs, --keep-finished-jobs-hours and --search-cache-bytes must be at least 0")
        }
    }

    var settings: CoordinatorSettings {
        var settings = CoordinatorSettings()
        settings.maximumModelValues = maxModelValues
        settings.maximumDimension = maxDimension
        settings.maximumSampleBytes = maxSampleBytes
        settings.maximumImagesPerJob = maxImages
        settings.maximumActiveJobs = maxRunningJobs
        settings.maximumRequestArrayBytes = maxRequestArrayBytes
        settings.searchCacheBytes = searchCacheBytes
        settings.finishedJobsKept = keepFinishedJobs
        settings.finishedJobLifetime = keepFinishedJobsHours * 3600
        return settings
    }
}

struct WorkerCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "worker", abstract: "Run a worker until SIGINT/SIGTERM; it reconnects when the coordinator goes away.")

    @Option(help: "The coordinator's workers endpoint.") var connect: String = "tcp://127.0.0.1:5555"
    @Option(name: .customLong("threads"), help: "Compute threads (default: one per core).") var requestedThreads: Int?
    var threads: Int { requestedThreads ?? ProcessInfo.processInfo.activeProcessorCount }
    @Option(help: "Name shown in status (default: host-pid).") var name: String?
    @OptionGroup var keys: ClientKeyOptions
    @Option(help: ArgumentHelp("Read corpora only inside this directory (repeatable; default: anywhere).", valueName: "dir"))
    var corpusRoot: [String] = []
    @OptionGroup var metricsOptions: MetricsOptions
    @Option(help: "Bytes of k-means distance bounds kept between iterations, so rows that cannot change centre are skipped (0: off; e.g. 1073741824 for 1 GiB).")
    var boundMemory: Int = 0
    @Option(help: "Bytes of stored sets' partitions kept between split searches, so a repeated search moves only its queries (0: none kept).")
    var partitionMemory: Int = WorkerSettings(name: "", threads: 1).partitionMemory
    @Option(help: "The coordinator's --max-model-values, if raised: bounds the frames this worker accepts (8 bytes per value).")
    var maxModelValues = CoordinatorSettings().maximumModelValues

    func validate() throws {
        try validateEndpoint(connect, option: "--connect")
    }

    func run() async throws {
        try validateThreads(threads)
        guard boundMemory >= 0 else { throw ValidationError("--bound-memory must be ≥ 0") }
        guard partitionMemory >= 0 else { throw ValidationError("--partition-memory must be ≥ 0") }
        guard maxModelValues >= 1 else { throw ValidationError("--max-model-values must be at least 1") }
        let logger = processLogger("codebook.worker")
        let workerName = name ?? "\(ProcessInfo.processInfo.hostName)-\(getpid())"
        var settings = WorkerSettings(name: workerName, threads: threads)
        settings.security = try keys.security()
        settings.corpusRoots = corpusRoot.isEmpty ? nil : try CorpusRoots(corpusRoot)
        settings.boundMemory = boundMemory
        settings.partitionMemory = partitionMemory
        settings.maximumModelValues = maxModelValues
        let metrics = metricsOptions.metricsEndpoint.map { _ in WorkerMetrics(registry: MetricsRegistry()) }
        let server = try metricsOptions.serve(metrics?.registry, logger: logger)
        let worker = Worker(context: try ZeroMQContext(), endpoint: connect, settings: settings, metrics: metrics, logger: logger)
        worker.start()
        logger.info("worker \(workerName) started", metadata: ["coordinator": "\(connect)", "threads": "\(threads)"])
        await Signals.waitForTermination()
        server?.stop()
        worker.stop()
        logger.info("worker stopped")
    }
}

/// `--metrics-endpoint` of the coordinator and the worker.
struct MetricsOptions: ParsableArguments {
    @Option(help: ArgumentHelp("Serve Prometheus metrics at http://HOST:PORT/metrics (a bare PORT: 127.0.0.1; default: off).",
                               valueName: "host:port"))
    var metricsEndpoint: String?
    @Flag(help: "Allow --metrics-endpoint beyond loopback: the metrics are served with no authentication and no encryption.")
    var insecureMetrics = false

    /// Refuses an endpoint beyond loopback unless `--insecure-metrics`, as the coordinator
    /// refuses its endpoints without keys unless `--insecure`.
    func validate() throws {
        guard let metricsEndpoint else { return }
        let (host, port) = try MetricsServer.parse(metricsEndpoint)
        guard insecureMetrics || Self.isLoopback(host, port) else {
            throw ValidationError("refusing to serve metrics at \(metricsEndpoint) beyond loopback without authentication: "
                                  + "bind a loopback address, or give --insecure-metrics to serve them unprotected")
        }
    }

    private static func isLoopback(_ host: String, _ port: Int) -> Bool {
        isLoopbackEndpoint("tcp://\(host.contains(":") ? "[\(host)]" : host):\(port)")
    }

    /// Starts the metrics server for `registry`, if `--metrics-endpoint` was given.
    func serve(_ registry: MetricsRegistry?, logger: Logger) throws -> MetricsServer? {
        guard let metricsEndpoint, let registry else { return nil }
        let (host, port) = try MetricsServer.parse(metricsEndpoint)
        let server = try MetricsServer(host: host, port: port, registry: registry)
        if !Self.isLoopback(host, port) { logger.warning("metrics served beyond loopback with no authentication and no encryption (--insecure-metrics)") }
        logger.info("metrics served", metadata: ["endpoint": "http://\(server.boundAddress)/metrics"])
        return server
    }
}

struct StatusCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "status", abstract: "Show a coordinator's workers and jobs.")

    @Option(help: "The coordinator's clients endpoint.") var coordinator: String = "tcp://127.0.0.1:5556"
    @OptionGroup var keys: ClientKeyOptions
    @Option(help: "Finished jobs to list after the running ones (newest first; at most \(StatusRequest.maximumLimit)).")
    var finished = StatusRequest.defaultLimit
    @Option(help: "List only finished jobs with smaller ids (the next page).") var before: UInt64?
    @Flag(help: "Refresh every second until SIGINT (redrawn on a terminal; otherwise snapshots separated by a blank line).")
    var watch = false

    func run() throws {
        let client = try ClusterClient(context: try ZeroMQContext(), endpoint: coordinator, timeout: .seconds(5),
                                       security: try keys.security())
        guard watch else { return print(Self.render(try client.status(finishedJobs: finished, before: before)), terminator: "") }
        let terminal = isatty(STDOUT_FILENO) == 1
        signal(SIGINT, SIG_IGN)
        let interrupt = DispatchSource.makeSignalSource(signal: SIGINT, queue: DispatchQueue(label: "codebook.status.sigint"))
        interrupt.setEventHandler {
            fflush(nil)
            Foundation.exit(0)
        }
        interrupt.resume()
        var first = true
        while true {
            let text = Self.render(try client.status(finishedJobs: finished, before: before))
            // Home and clear the screen on a terminal; elsewhere, a blank line between snapshots.
            print(terminal ? "\u{1B}[H\u{1B}[2J" + text : (first ? "" : "\n") + text, terminator: "")
            fflush(nil)
            first = false
            Thread.sleep(forTimeInterval: 1)
        }
    }

    /// The cluster view: workers, jobs, passes and counts, one item a line.
    static func render(_ status: ClusterStatus) -> String {
        var lines = ["workers: \(status.workers.count)"]
        for worker in status.workers {
            lines.append(String(format: "  %@  threads %d  last heard %.1f s ago  in flight %d  shards done %d",
                                PeerText.escaped(worker.name), worker.threads, worker.secondsSinceHeard, worker.tasksInFlight, worker.shardsDone))
        }
        lines.append("jobs: \(status.jobs.count)")
        for job in status.jobs {
            let last = job.lastValuePerRow.map { String(format: "  last %.6g/row", $0) } ?? ""
            // Encoding and extraction jobs have no iterations to count.
            let iterations = TrainingJob.Kind(rawValue: job.kind) == nil ? "" : "  \(job.iterations) iteration(s)"
            let done = ProgressText.done(kind: job.kind, imagesDone: job.imagesDone, imagesTotal: job.imagesTotal).map { "  \($0)" } ?? ""
            // Paths and messages are other clients' and workers' text: never terminal codes.
            lines.append("  \(job.job)  \(PeerText.escaped(job.kind))  \(job.state.rawValue)\(iterations)\(done)\(last)  \(PeerText.escaped(job.corpus))"
                         + (job.message.map { "  (\(PeerText.escaped($0)))" } ?? ""))
        }
        for pass in status.passes {
            lines.append("  job \(pass.job) pass \(pass.pass) (\(pass.kind)): \(pass.done)/\(pass.shards) shards done, "
                         + "\(pass.inFlight) in flight, \(pass.queued) queued")
        }
        if status.droppedResults > 0 { lines.append("results dropped (late, duplicate or not sent by the shard's worker): \(status.droppedResults)") }
        if status.rejectedResults > 0 { lines.append("results rejected by the checks: \(status.rejectedResults)") }
        if let next = status.jobsBefore { lines.append("more finished jobs: codebook status --before \(next)") }
        return lines.map { $0 + "\n" }.joined()
    }
}

struct CancelCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "cancel", abstract: "Cancel a running job: its queued work is dropped and it is not resumed.")

    @Argument(help: "The job's id.") var job: UInt64
    @Option(help: "The coordinator's clients endpoint.") var coordinator: String = "tcp://127.0.0.1:5556"
    @OptionGroup var keys: ClientKeyOptions

    func run() throws {
        let client = try ClusterClient(context: try ZeroMQContext(), endpoint: coordinator, timeout: .seconds(5),
                                       security: try keys.security())
        let progress = try client.cancel(job)
        let images = progress.imagesDone.map { done in "; \(done) of \(progress.imagesTotal ?? done) images stored" } ?? ""
        print("job \(job) \(progress.state.rawValue)\(images)")
    }
}
