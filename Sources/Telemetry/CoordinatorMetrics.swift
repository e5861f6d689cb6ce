import CoreMetrics
import Prometheus

/// The coordinator's metrics. Counted by its shell (the I/O loop that performs the state
/// machine's directives, the request handlers, the sinks), never by the state machine.
public final class CoordinatorMetrics: Sendable {
    public let registry: MetricsRegistry
    /// Workers registered and alive.
    public let workersAlive: CoreMetrics.Gauge
    /// TASKs sent to workers (a shard sent again counts again).
    public let tasksDispatched: CoreMetrics.Counter
    /// Shard RESULTs taken.
    public let tasksCompleted: CoreMetrics.Counter
    /// Shards taken back from a worker (dead, departed, dropped, retry) into the queue.
    public let tasksRequeued: TotalCounter
    /// Final FAILUREs: the pass failed.
    public let tasksFailed: CoreMetrics.Counter
    /// RESULTs not taken (not out to that worker, late, duplicate) and rejected by the pass's check.
    public let resultsDropped: TotalCounter
    public let resultsRejected: TotalCounter
    /// Bytes of the RESULT messages received (all frames after the routing identity).
    public let resultBytes: CoreMetrics.Counter
    /// Bytes of the TASK messages sent (all frames after the routing identity).
    public let taskBytes: CoreMetrics.Counter
    /// Messages that could not be decoded, by endpoint.
    public let malformedWorkerMessages: CoreMetrics.Counter
    public let malformedClientMessages: CoreMetrics.Counter
    /// Client requests refused for their key's role (`forbidden`).
    public let refusedRequests: CoreMetrics.Counter
    /// CURVE handshakes the gatekeeper refused (key not listed).
    public let refusedHandshakes: TotalCounter
    /// Training iterations finished, all jobs.
    public let iterations: CoreMetrics.Counter
    /// Vectors stored by encoding jobs.
    public let vectorsWritten: CoreMetrics.Counter
    /// GET and LIST requests answered, and how long each took to answer.
    public let getRequests: CoreMetrics.Counter
    public let listRequests: CoreMetrics.Counter
    public let getDuration: CoreMetrics.Timer
    public let listDuration: CoreMetrics.Timer
    private let factory: PrometheusMetricsFactory

    public static let passDurationName = "codebook_pass_duration_seconds"
    public static let requestDurationName = "codebook_request_duration_seconds"

    public init(registry: MetricsRegistry) {
        self.registry = registry
        let factory = registry.factory(durationBuckets: [
            Self.passDurationName: [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900],
            Self.requestDurationName: [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1],
        ])
        func counter(_ name: String, _ dimensions: [(String, String)] = []) -> CoreMetrics.Counter {
            CoreMetrics.Counter(label: name, dimensions: dimensions, factory: factory)
        }
        self.factory = factory
        workersAlive = CoreMetrics.Gauge(label: "codebook_workers_alive", factory: factory)
        tasksDispatched = counter("codebook_tasks_dispatched_total")
        tasksCompleted = counter("codebook_tasks_completed_total")
        tasksRequeued = TotalCounter("codebook_tasks_requeued_total", factory: factory)
        tasksFailed = counter("codebook_tasks_failed_total")
        resultsDropped = TotalCounter("codebook_results_dropped_total", factory: factory)
        resultsRejected = TotalCounter("codebook_results_rejected_total", factory: factory)
        resultBytes = counter("codebook_result_bytes_total")
        taskBytes = counter("codebook_task_bytes_total")
        malformedWorkerMessages = counter("codebook_malformed_messages_total", [("endpoint", "workers")])
        malformedClientMessages = counter("codebook_malformed_messages_total", [("endpoint", "clients")])
        refusedRequests = counter("codebook_refused_requests_total")
        refusedHandshakes = TotalCounter("codebook_refused_handshakes_total", factory: factory)
        iterations = counter("codebook_iterations_total")
        vectorsWritten = counter("codebook_vectors_written_total")
        getRequests = counter("codebook_requests_total", [("type", "get")])
        listRequests = counter("codebook_requests_total", [("type", "list")])
        getDuration = CoreMetrics.Timer(label: Self.requestDurationName, dimensions: [("type", "get")], factory: factory)
        listDuration = CoreMetrics.Timer(label: Self.requestDurationName, dimensions: [("type", "list")], factory: factory)
    }

    /// The requests whose number and latency are measured.
    public enum TimedRequest: Sendable {
        case get, list
    }

    /// A GET or LIST was answered in `seconds`.
    public func requestAnswered(_ request: TimedRequest, seconds: Double) {
        let (count, duration) = request == .get ? (getRequests, getDuration) : (listRequests, listDuration)
        count.increment()
        duration.recordNanoseconds(Int64(seconds * 1e9))
    }

    /// A pass of `kind` (kmeans, gmm, moments, sample, encode…) ran for `seconds`.
    public func passFinished(kind: String, seconds: Double) {
        CoreMetrics.Timer(label: Self.passDurationName, dimensions: [("kind", kind)], factory: factory)
            .recordNanoseconds(Int64(seconds * 1e9))
    }

    /// Jobs in `state`, now.
    public func jobs(_ state: String, count: Int) {
        CoreMetrics.Gauge(label: "codebook_jobs", dimensions: [("state", state)], factory: factory).record(count)
    }

    /// The store's files on disk, now.
    public func storeSize(bytes: Int) {
        CoreMetrics.Gauge(label: "codebook_store_size_bytes", factory: factory).record(bytes)
    }
}
