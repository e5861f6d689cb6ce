import ClusterProtocol
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
    /// What the plan's shards stand for.
    let layout: any ShardLayout
    /// Where each pass's time went, in pass order.
    public let timings = PassTimingLog()
    private let passes: PassCounter
    /// What is written before the next pass's first task goes out (see `keepBeforeNextPass`).
    private let pendingWrite = HeldWrite()
    /// The latest pass's model, which the next k-means‖ round's extends.
    private let latestModel = LatestModel()

    /// - Parameter passesBefore: passes this job ran before (in an earlier coordinator); the
    ///   new ones are numbered after them, so a late result of an old pass is never taken
    ///   for a new one.
    public init(coordinator: Coordinator, job: UInt64, corpus: CorpusReference, shardRows: Int, passesBefore: UInt32 = 0) {
        self.init(coordinator: coordinator, job: job, corpus: corpus, shardRows: shardRows, passesBefore: passesBefore, layout: RowShards())
    }

    /// A backend whose shards stand for what `layout` says.
    init(coordinator: Coordinator, job: UInt64, corpus: CorpusReference, shardRows: Int, passesBefore: UInt32, layout: any ShardLayout) {
        self.layout = layout
        passes = PassCounter(start: passesBefore)
        self.coordinator = coordinator
        self.job = job
        self.corpus = corpus
        plan = ShardPlan(totalRows: corpus.rows, shardRows: shardRows)
    }

    /// The number of the last pass started.
    public var lastPass: UInt32 { passes.current }

    /// Holds `write` (a checkpoint of the job) until the next pass: the coordinator's state
    /// machine has it persisted before that pass's first task goes out. Replaces a write
    /// still held.
    func keepBeforeNextPass(_ write: @escaping @Sendable () throws -> Void) {
        pendingWrite.hold(write)
    }

    /// Carries out the write still held, if any (after the last pass: there is no next one).
    func writeHeld() throws {
        try pendingWrite.take()?()
    }

    public var rows: Int { corpus.rows }
    public var dimension: Int { corpus.dimension }

    public func run<C: ShardComputation>(_ computation: C) async throws -> C.Statistics {
        try await run(computation, as: nextPass())
    }

    /// The key of a new pass of this job, for `run(_:as:)`: numbered after every pass before.
    func nextPass() -> RoundKey { RoundKey(job: job, round: passes.next()) }

    /// Runs `computation` as pass `key`, which `nextPass()` gave (so its owner knows the
    /// pass before it starts, e.g. to cancel it alone).
    func run<C: ShardComputation>(_ computation: C, as key: RoundKey) async throws -> C.Statistics {
        guard let wire = computation as? any WireComputation,
              let statisticsType = C.Statistics.self as? any CheckedStatistics.Type else {
            throw ClusterError(.invalidRequest, "\(C.self) cannot run on a cluster: it has no wire encoding")
        }
        var description = wire.description
        // A sample's rows are the corpus's, or the projection's when projected (which says so).
        if description.kind == .sample && description.projection == nil { description.dimension = corpus.dimension }
        var spec = RoundSpec(key: key, corpus: corpus, plan: plan,
                             computation: description, model: wire.modelArrays, layout: layout)
        spec.modelExtension = latestModel.record(round: spec.key.round, computation: description, model: spec.model)
        let write = pendingWrite.take()
        spec.persistsFirst = write != nil
        return try await withCheckedThrowingContinuation { continuation in
            let collector = RoundCollector<C.Statistics>(shardCount: plan.count, continuation: continuation, log: timings,
                                                         persist: write,
                                                         prepareFirst: { computation.reserveMergeCapacity(in: &$0) }) { [plan] shard, message in
                let (statistics, seconds) = try statisticsType.decode(message, pass: description, rows: plan.rows(of: shard))
                return (statistics as! C.Statistics, seconds)
            }
            coordinator.submit(spec, to: collector)
        }
    }
}

/// Numbers the passes of one job: 1, 2, 3, …
final class PassCounter: Sendable {
    private let value: Mutex<UInt32>

    init(start: UInt32) { value = Mutex(start) }

    var current: UInt32 { value.withLock { $0 } }

    func next() -> UInt32 {
        value.withLock {
            $0 += 1
            return $0
        }
    }
}

/// A write held for later (see `ClusterBackend.keepBeforeNextPass`).
final class HeldWrite: Sendable {
    private let write = Mutex<(@Sendable () throws -> Void)?>(nil)

    func hold(_ write: @escaping @Sendable () throws -> Void) { self.write.withLock { $0 = write } }

    /// The write held, if any, which is no longer held.
    func take() -> (@Sendable () throws -> Void)? {
        write.withLock { held in defer { held = nil }; return held }
    }
}

/// A backend's latest k-means‖ round's model (none after another kind of pass).
final class LatestModel: Sendable {
    private let latest = Mutex<(round: UInt32, computation: PassDescription, model: [[UInt8]])?>(nil)

    /// Keeps pass `round`'s model, and returns it as an extension of the model kept before,
    /// if it is one (`ModelExtension`).
    func record(round: UInt32, computation: PassDescription, model: [[UInt8]]) -> ModelExtension? {
        latest.withLock { latest in
            let previous = latest
            latest = computation.kind == .kmeansParallelRound ? (round, computation, model) : nil
            return previous.flatMap { ModelExtension(round: round, computation: computation, model: model, extending: $0) }
        }
    }
}

/// Where one pass's time went.
public struct PassTiming: Sendable, Equatable {
    /// From submitting the pass to merging its last shard.
    public var wallSeconds: Double
    /// Coordinator: building and sending the TASK messages.
    public var dispatchSeconds: Double
    /// Coordinator: decoding and merging the shard results.
    public var mergeSeconds: Double
    /// Workers: computing the shards, summed over shards.
    public var workerComputeSeconds: Double
}

/// The timings of a backend's passes, appended as passes finish.
public final class PassTimingLog: Sendable {
    private let entries = Mutex<[PassTiming]>([])

    func append(_ timing: PassTiming) { entries.withLock { $0.append(timing) } }

    public var passes: [PassTiming] { entries.withLock { $0 } }
}

/// Where the coordinator hands a pass's shard results. Called only on the coordinator's
/// merge thread (but `persist`), one call at a time.
protocol RoundSink: AnyObject, Sendable {
    /// Throws unless `message` is a right RESULT for `shard` of this pass: what its task
    /// asked for, and numbers that can be right. Keeps what it decoded for `deliver`, by
    /// shard (other shards' checks may come first). The coordinator calls it only for a
    /// RESULT the state machine would take, and delivers the shard once it is taken.
    func check(shard: Int, _ message: WireMessage) throws
    /// Takes `shard`'s RESULT, which `check` has just accepted.
    func deliver(shard: Int, message: WireMessage)
    func fail(_ message: String)
    /// Time the I/O thread spent sending one of this pass's tasks.
    func addDispatchTime(_ duration: Duration)
    /// Writes what the pass's owner keeps before the pass (`RoundSpec.persistsFirst`);
    /// called once, off the I/O thread.
    func persist() throws
}

extension RoundSink {
    func persist() throws {}
}

/// Decodes and merges one pass's shard results in shard order, then resumes the waiting
/// `run` exactly once. Called only from the coordinator's merge thread.
final class RoundCollector<S: SufficientStatistics>: RoundSink, @unchecked Sendable {
    // @unchecked Sendable: created by `run`, then touched only by the coordinator's merge thread.
    private var merger: OrderedMerger<S>
    private var continuation: CheckedContinuation<S, any Error>?
    private let decode: (_ shard: Int, WireMessage) throws -> (S, computeSeconds: Double)
    /// By shard, the statistics `check` accepted, until `deliver` merges them (each RESULT is decoded once).
    private var checked: [Int: (statistics: S, computeSeconds: Double)] = [:]
    /// Applied to shard 0's statistics, which the others are merged into.
    private let prepareFirst: (inout S) -> Void
    /// What is written before the pass (see `RoundSink.persist`).
    private let write: (@Sendable () throws -> Void)?
    private let log: PassTimingLog
    private let started = ContinuousClock.now
    private var timing = PassTiming(wallSeconds: 0, dispatchSeconds: 0, mergeSeconds: 0, workerComputeSeconds: 0)

    /// - Parameter decode: decodes and checks a shard's RESULT (throws if it is not right).
    init(shardCount: Int, continuation: CheckedContinuation<S, any Error>, log: PassTimingLog,
         persist write: (@Sendable () throws -> Void)? = nil, prepareFirst: @escaping (inout S) -> Void = { _ in },
         decode: @escaping (_ shard: Int, WireMessage) throws -> (S, computeSeconds: Double)) {
        merger = OrderedMerger(shardCount: shardCount)
        self.continuation = continuation
        self.log = log
        self.prepareFirst = prepareFirst
        self.write = write
        self.decode = decode
    }

    func persist() throws { try write?() }

    func check(shard: Int, _ message: WireMessage) throws {
        let decodeStarted = ContinuousClock.now
        checked[shard] = nil
        checked[shard] = try decode(shard, message)
        timing.mergeSeconds += (ContinuousClock.now - decodeStarted).seconds
    }

    func deliver(shard: Int, message: WireMessage) {
        guard continuation != nil else { return }
        // Taken out before merging, so that the merge does not copy arrays it shares.
        guard case (var statistics, let computeSeconds)? = checked.removeValue(forKey: shard) else {
            preconditionFailure("shard \(shard) delivered without a check that passed")
        }
        let mergeStarted = ContinuousClock.now
        if shard == 0 { prepareFirst(&statistics) }
        merger.add(consume statistics, shard: shard)
        timing.workerComputeSeconds += computeSeconds
        timing.mergeSeconds += (ContinuousClock.now - mergeStarted).seconds
        if let result = merger.result {
            timing.wallSeconds = (ContinuousClock.now - started).seconds
            log.append(timing)
            continuation?.resume(returning: result)
            continuation = nil
        }
    }

    func addDispatchTime(_ duration: Duration) { timing.dispatchSeconds += duration.seconds }

    func fail(_ message: String) {
        continuation?.resume(throwing: ClusterError(.jobFailed, message))
        continuation = nil
    }
}

/// When a job's checkpoints are written, and the pass count they are written with.
struct CheckpointTiming: Sendable {
    /// The number of the last pass started.
    let passes: @Sendable () -> UInt32
    /// Takes a checkpoint's write: carries it out now, or holds it for later.
    let hold: @Sendable (@escaping @Sendable () throws -> Void) throws -> Void
    /// Carries out the write still held, if any (after the last pass).
    let release: @Sendable () throws -> Void

    /// Each write at once (a job whose passes do not go through the state machine).
    static func immediate(passes: @escaping @Sendable () -> UInt32) -> CheckpointTiming {
        CheckpointTiming(passes: passes, hold: { try $0() }, release: {})
    }

    /// Each write held until `backend`'s next pass, whose first task the state machine
    /// sends only after it is persisted.
    static func beforeNextPass(of backend: ClusterBackend) -> CheckpointTiming {
        CheckpointTiming(passes: { backend.lastPass }, hold: { backend.keepBeforeNextPass($0) },
                         release: { try backend.writeHeld() })
    }
}
