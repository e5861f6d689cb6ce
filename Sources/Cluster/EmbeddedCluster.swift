import ClusterProtocol
import Clustering
import Foundation
import Logging
import Storage
import ZeroMQ

/// A coordinator and workers inside one process, talking over ZeroMQ inproc sockets: the
/// embedded default, which runs exactly the cluster's code without a cluster to set up.
public final class EmbeddedCluster {
    public let context: ZeroMQContext
    public let coordinator: Coordinator
    public let workers: [Worker]
    /// Where clients connect (inproc, so only from this process).
    public let clientsEndpoint: String

    /// Starts a coordinator (with `store`, if given) and `workers` workers of
    /// `threadsPerWorker` threads each, keeping `boundMemory` bytes of k-means bounds and
    /// `seedingMemory` bytes of k-means‖ distances each.
    public init(workers count: Int, threadsPerWorker: Int, boundMemory: Int = 0,
                seedingMemory: Int = DistanceCache.seedingDefault,
                store: CodebookStore? = nil, logger: Logger) throws {
        let context = try ZeroMQContext()
        self.context = context
        let tag = UUID().uuidString
        coordinator = Coordinator(context: context, workersEndpoint: "inproc://codebook-workers-\(tag)",
                                  clientsEndpoint: "inproc://codebook-clients-\(tag)", settings: Self.settings, store: store,
                                  logger: logger)
        let endpoints = try coordinator.start()
        clientsEndpoint = endpoints.clients
        workers = (0..<max(1, count)).map { index in
            var settings = WorkerSettings(name: "local-\(index)", threads: threadsPerWorker)
            settings.boundMemory = boundMemory
            settings.seedingMemory = seedingMemory
            return Worker(context: context, endpoint: endpoints.workers, settings: settings, logger: logger)
        }
        workers.forEach { $0.start() }
    }

    /// An embedded cluster does not resume the jobs of earlier embedded runs.
    private static var settings: CoordinatorSettings {
        var settings = CoordinatorSettings()
        settings.resumesStoredJobs = false
        return settings
    }

    /// A client of this cluster.
    public func client() throws -> ClusterClient { try ClusterClient(context: context, endpoint: clientsEndpoint) }

    /// Stops the workers, then the coordinator.
    public func shutdown() {
        workers.forEach { $0.stop() }
        coordinator.stop()
    }
}
