import Clustering
import Descriptors
import Synchronization

/// A `StatisticsBackend` whose shards run on the workers of a `Coordinator`.
///
/// Each `run` is one pass: the coordinator hands the shards out, and the results are merged
/// here in shard order as they arrive, so the statistics, and every model computed from
/// them, are bit-identical to a `LocalBackend` run with the same shard plan.
public struct ClusterBackend: StatisticsBackend {
    public let coordinator: Coordinator
    public let job: UInt64
    public let corpus: CorpusReference
    public let plan: ShardPlan
    private let passes = PassCounter()

    public init(coordinator: Coordinator, job: UInt64, corpus: CorpusReference, shardRows: Int) {
        self.coordinator = coordinator
        self.job = job
        self.corpus = corpus
        plan = ShardPlan(totalRows: corpus.rows, shardRows: shardRows)
    }

    public var rows: Int { corpus.rows }
    public var dimension: Int { corpus.dimension }

    public func run<C: ShardComputation>(_ computation: C) async throws -> C.Statistics {
        guard let wire = computation as? any WireComputation,
              let statisticsType = C.Statistics.self as? any WireStatistics.Type else {
            throw DescriptorError(.invalidArgument, "\(C.self) cannot run on a cluster: it has no wire encoding")
        }
        var description = wire.description
        if description.kind == .sample { description.dimension = corpus.dimension }
        let spec = RoundSpec(key: RoundKey(job: job, round: passes.next()), corpus: corpus, plan: plan,
                             computation: description, model: wire.modelArrays)
        return try await withCheckedThrowingContinuation { continuation in
            let collector = RoundCollector<C.Statistics>(shardCount: plan.count, continuation: continuation) { message in
                let shape = try message.decode(StatisticsShape.self)
                return try statisticsType.init(shape: shape, message: message) as! C.Statistics
            }
            coordinator.submit(spec, to: collector)
        }
    }
}

/// Numbers the passes of one job: 1, 2, 3, …
final class PassCounter: Sendable {
    private let value = Mutex<UInt32>(0)

    func next() -> UInt32 {
        value.withLock {
            $0 += 1
            return $0
        }
    }
}

/// Where the coordinator's I/O thread hands a pass's shard results.
protocol RoundSink: AnyObject, Sendable {
    func deliver(shard: Int, message: WireMessage)
    func fail(_ message: String)
}

/// Decodes and merges one pass's shard results in shard order, then resumes the waiting
/// `run` exactly once. Called only from the coordinator's I/O thread.
final class RoundCollector<S: SufficientStatistics>: RoundSink, @unchecked Sendable {
    // @unchecked Sendable: created by `run`, then touched only by the coordinator's I/O thread.
    private var merger: OrderedMerger<S>
    private var continuation: CheckedContinuation<S, any Error>?
    private let decode: (WireMessage) throws -> S

    init(shardCount: Int, continuation: CheckedContinuation<S, any Error>, decode: @escaping (WireMessage) throws -> S) {
        merger = OrderedMerger(shardCount: shardCount)
        self.continuation = continuation
        self.decode = decode
    }

    func deliver(shard: Int, message: WireMessage) {
        guard continuation != nil else { return }
        do {
            merger.add(try decode(message), shard: shard)
        } catch {
            fail("shard \(shard): \(error)")
            return
        }
        if let result = merger.result {
            continuation?.resume(returning: result)
            continuation = nil
        }
    }

    func fail(_ message: String) {
        continuation?.resume(throwing: DescriptorError(.ioFailure, message))
        continuation = nil
    }
}
