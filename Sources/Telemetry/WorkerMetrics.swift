import CoreMetrics
import Prometheus

/// A worker's metrics, counted by its compute threads.
public final class WorkerMetrics: Sendable {
    public let registry: MetricsRegistry
    /// Shards computed (RESULT sent) and failed (FAILURE sent).
    public let shardsComputed: CoreMetrics.Counter
    public let shardsFailed: CoreMetrics.Counter
    /// Descriptor rows of the shards computed.
    public let rows: CoreMetrics.Counter
    /// Rows per second of the last shard computed (per compute thread).
    public let rowsPerSecond: CoreMetrics.Gauge
    public let shardDuration: CoreMetrics.Timer

    public static let shardDurationName = "codebook_worker_shard_duration_seconds"

    public init(registry: MetricsRegistry) {
        self.registry = registry
        let factory = registry.factory(durationBuckets: [
            Self.shardDurationName: [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60],
        ])
        shardsComputed = CoreMetrics.Counter(label: "codebook_worker_shards_computed_total", factory: factory)
        shardsFailed = CoreMetrics.Counter(label: "codebook_worker_shards_failed_total", factory: factory)
        rows = CoreMetrics.Counter(label: "codebook_worker_rows_total", factory: factory)
        rowsPerSecond = CoreMetrics.Gauge(label: "codebook_worker_rows_per_second", factory: factory)
        shardDuration = CoreMetrics.Timer(label: Self.shardDurationName, factory: factory)
    }

    /// A shard of `rows` rows computed in `seconds`.
    public func shardComputed(rows count: Int, seconds: Double) {
        shardsComputed.increment()
        rows.increment(by: count)
        if seconds > 0 { rowsPerSecond.record(Double(count) / seconds) }
        shardDuration.recordNanoseconds(Int64(seconds * 1e9))
    }
}
