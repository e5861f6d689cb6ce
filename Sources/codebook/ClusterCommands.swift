import ArgumentParser
#if canImport(Glibc)
import CMalloc
#endif
import Cluster
import Foundation
import Logging
import Storage
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

    func run() async throws {
        let logger = processLogger("codebook.coordinator")
        #if canImport(Glibc)
        // Buffers of 128 KiB and more (messages, replies) are mapped on their own and go back
        // to the system when freed. Left to itself, glibc raises this threshold after the
        // first such free and keeps later ones in its heaps: the replies queued for a client
        // that never read them stayed resident after it left.
        mallopt(M_MMAP_THRESHOLD, 128 * 1024)
        #endif
        let coordinator = Coordinator(context: try ZeroMQContext(), workersEndpoint: workersEndpoint,
                                      clientsEndpoint: clientsEndpoint, store: try CodebookStore(path: store), logger: logger)
        let bound = try coordinator.start()
        logger.info("coordinator ready", metadata: ["workers": "\(bound.workers)", "clients": "\(bound.clients)"])
        await Signals.waitForTermination()
        coordinator.stop(keepingJobs: true)
        logger.info("coordinator stopped")
    }
}

struct WorkerCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "worker", abstract: "Run a worker until SIGINT/SIGTERM; it reconnects when the coordinator goes away.")

    @Option(help: "The coordinator's workers endpoint.") var connect: String = "tcp://127.0.0.1:5555"
    @Option(help: "Compute threads (default: one per core).") var threads: Int = ProcessInfo.processInfo.activeProcessorCount
    @Option(help: "Name shown in status (default: host-pid).") var name: String?

    func run() async throws {
        guard threads >= 1 else { throw ValidationError("--threads must be at least 1") }
        let logger = processLogger("codebook.worker")
        let workerName = name ?? "\(ProcessInfo.processInfo.hostName)-\(getpid())"
        let worker = Worker(context: try ZeroMQContext(), endpoint: connect,
                            settings: WorkerSettings(name: workerName, threads: threads), logger: logger)
        worker.start()
        logger.info("worker \(workerName) started", metadata: ["coordinator": "\(connect)", "threads": "\(threads)"])
        await Signals.waitForTermination()
        worker.stop()
        logger.info("worker stopped")
    }
}

struct StatusCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "status", abstract: "Show a coordinator's workers and jobs.")

    @Option(help: "The coordinator's clients endpoint.") var coordinator: String = "tcp://127.0.0.1:5556"

    func run() throws {
        let client = try ClusterClient(context: try ZeroMQContext(), endpoint: coordinator, timeout: .seconds(5))
        let status = try client.status()
        print("workers: \(status.workers.count)")
        for worker in status.workers {
            print(String(format: "  %@  threads %d  last heard %.1f s ago  in flight %d  shards done %d",
                         worker.name, worker.threads, worker.secondsSinceHeard, worker.tasksInFlight, worker.shardsDone))
        }
        print("jobs: \(status.jobs.count)")
        for job in status.jobs {
            let last = job.lastValuePerRow.map { String(format: "  last %.6g/row", $0) } ?? ""
            print("  \(job.job)  \(job.kind)  \(job.state.rawValue)  \(job.iterations) iteration(s)\(last)  \(job.corpus)"
                  + (job.message.map { "  (\($0))" } ?? ""))
        }
        for pass in status.passes {
            print("  job \(pass.job) pass \(pass.pass) (\(pass.kind)): \(pass.done)/\(pass.shards) shards done, "
                  + "\(pass.inFlight) in flight, \(pass.queued) queued")
        }
        if status.droppedResults > 0 { print("late or duplicate results dropped: \(status.droppedResults)") }
    }
}
