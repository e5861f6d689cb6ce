import ArgumentParser
import Cluster
import ClusterProtocol
import Clustering
import Foundation
import Logging
import Storage
import ZeroMQ

/// Where a job runs: a running coordinator, or an embedded cluster in this process.
struct ClusterOptions: ParsableArguments {
    @Option(help: "A running coordinator's clients endpoint (e.g. tcp://HOST:5556). Without it, an embedded cluster runs in this process.")
    var coordinator: String?
    @Option(name: .customLong("local-workers"), help: "Workers of the embedded cluster (default: one per core).")
    var requestedLocalWorkers: Int?
    var localWorkers: Int { requestedLocalWorkers ?? ProcessInfo.processInfo.activeProcessorCount }
    @Option(help: "The embedded cluster's store: models, vectors and job checkpoints (a RocksDB directory).")
    var store: String = "codebook.db"
    @Option(help: "Bytes of k-means distance bounds each embedded worker keeps between iterations (0: off; e.g. 1073741824 for 1 GiB).")
    var boundMemory: Int = 0
    @OptionGroup var keys: ClientKeyOptions

    func validate() throws {
        guard localWorkers >= 1 else {
            throw ValidationError("--local-workers must be at least 1")
        }
        guard boundMemory >= 0 else {
            throw ValidationError("--bound-memory must be ≥ 0")
        }
    }

    /// A client of the coordinator, and the embedded cluster (of `threads` threads per
    /// worker) to shut down after, if one was started.
    func connect(threads: Int = 1) throws -> (ClusterClient, EmbeddedCluster?) {
        if let coordinator {
            return (try ClusterClient(context: try ZeroMQContext(), endpoint: coordinator, security: try keys.security()), nil)
        }
        var logger = Logger(label: "codebook")
        logger.logLevel = .warning
        let embedded = try EmbeddedCluster(workers: localWorkers, threadsPerWorker: threads, boundMemory: boundMemory,
                                           store: try CodebookStore(path: store), logger: logger)
        return (try embedded.client(), embedded)
    }

    /// Stops the embedded cluster `connect` started, if any, and closes its store before the
    /// command returns (see `closeBeforeExit`).
    func shutDown(_ embedded: inout EmbeddedCluster?) {
        var store: CodebookStore?
        if let cluster = embedded {
            cluster.shutdown()
            store = cluster.coordinator.store
        }
        embedded = nil
        closeBeforeExit(&store) { FileHandle.standardError.write(Data("warning: \($0)\n".utf8)) }
    }

    func summary(threads: Int = 1) -> String {
        coordinator.map { "via \($0)" } ?? "(embedded cluster: \(localWorkers) worker(s) × \(threads) thread(s), store \(store))"
    }
}

/// Refuses an endpoint `option` was given that is not of a ZeroMQ endpoint's form
/// (`checkEndpointForm`), naming the option.
func validateEndpoint(_ endpoint: String, option: String) throws {
    do {
        try checkEndpointForm(endpoint)
    } catch let error as ClusterError {
        throw ValidationError("\(option): \(error.message)")
    }
}
