import CoreMetrics
import Prometheus
import Synchronization

/// One process's metrics: a Prometheus collector registry, the swift-metrics factory that
/// fills it, and the refreshers that sample gauges (jobs by state, store size) just before
/// each scrape. Each coordinator or worker has its own, so several can share a process.
public final class MetricsRegistry: Sendable {
    let prometheus = PrometheusCollectorRegistry()
    private let refreshers = Mutex<[@Sendable () -> Void]>([])

    public init() {}

    /// A swift-metrics factory over this registry; `durationBuckets` by metric name, in
    /// seconds, for the timers whose latencies sit outside the default 5 ms – 10 s buckets.
    func factory(durationBuckets: [String: [Double]] = [:]) -> PrometheusMetricsFactory {
        var factory = PrometheusMetricsFactory(registry: prometheus)
        factory.durationHistogramBuckets = durationBuckets.mapValues { $0.map { Duration.nanoseconds(Int64($0 * 1e9)) } }
        return factory
    }

    /// Calls `refresh` before every scrape, to set gauges sampled from elsewhere.
    public func onScrape(_ refresh: @escaping @Sendable () -> Void) {
        refreshers.withLock { $0.append(refresh) }
    }

    /// The metrics in the Prometheus text exposition format (version 0.0.4).
    public func exposition() -> [UInt8] {
        for refresh in refreshers.withLock({ $0 }) { refresh() }
        return prometheus.emitToBuffer()
    }
}

/// A counter that follows a running total kept elsewhere (a state machine's count of
/// dropped results, a gatekeeper's count of refused handshakes): `sync` adds what the
/// total has grown by since the last call.
public final class TotalCounter: Sendable {
    private let counter: CoreMetrics.Counter
    private let last = Mutex(0)

    init(_ label: String, factory: any MetricsFactory) {
        counter = CoreMetrics.Counter(label: label, factory: factory)
    }

    /// Brings the counter up to `total` (a total that went down is taken as a new start).
    public func sync(to total: Int) {
        let grown = last.withLock { last -> Int in
            defer { last = total }
            return total >= last ? total - last : total
        }
        if grown > 0 { counter.increment(by: grown) }
    }
}
