import Descriptors

/// Statistics that shards produce and a driver merges. Merging must be associative, and
/// drivers merge in shard order, so the result does not depend on who computed what.
public protocol SufficientStatistics: Sendable {
    /// Adds `other`, the statistics of the shards that follow, into `self`.
    mutating func merge(_ other: Self)
}

/// One pass over a shard's rows that yields sufficient statistics. Runs on one thread,
/// rows in order, so the same shard always gives bit-identical statistics.
public protocol ShardComputation: Sendable {
    associatedtype Statistics: SufficientStatistics
    /// The statistics of `rows`, which are rows `shard.firstRow ..<` of the corpus and
    /// are shard number `index` of the plan.
    func statistics(of rows: DescriptorMatrix, shard index: Int, workspace: KernelWorkspace) throws -> Statistics
    /// Makes room in shard 0's statistics, which the other shards' are merged into, for
    /// all of them at once (rather than growth by doubling); by default nothing.
    func reserveMergeCapacity(in first: inout Statistics)
}

extension ShardComputation {
    public func reserveMergeCapacity(in first: inout Statistics) {}
}

/// Where shard computations run: local threads, or the workers of a cluster.
///
/// A backend runs a computation over every shard of its plan and returns the shard
/// statistics merged in shard order (see `OrderedMerger`).
public protocol StatisticsBackend: Sendable {
    var rows: Int { get }
    var dimension: Int { get }
    var plan: ShardPlan { get }
    func run<C: ShardComputation>(_ computation: C) async throws -> C.Statistics
    /// Where k-means iterations keep their shards' distance bounds in this process, if they
    /// do (a cluster keeps them on its workers).
    var assignmentBounds: BoundCache? { get }
    /// Where k-means‖ rounds keep their shards' distances in this process, if they do (a
    /// cluster keeps them on its workers).
    var seedingDistances: DistanceCache? { get }
}

extension StatisticsBackend {
    public var assignmentBounds: BoundCache? { nil }
    public var seedingDistances: DistanceCache? { nil }
}

/// Folds shard results that arrive in any order into one, in shard order, keeping only
/// the results that arrived ahead of their turn.
public struct OrderedMerger<S: SufficientStatistics> {
    private var pending: [Int: S] = [:]
    private var next = 0
    private var merged: S?
    public let shardCount: Int

    public init(shardCount: Int) { self.shardCount = shardCount }

    /// Adds shard `index`'s result. A second result for a shard already taken is ignored
    /// (it would be bit-identical anyway); returns whether it was taken.
    @discardableResult
    public mutating func add(_ statistics: consuming S, shard index: Int) -> Bool {
        guard index >= next, pending[index] == nil, index < shardCount else { return false }
        // Moved, not copied: merging into arrays still shared with the caller would copy them.
        pending[index] = consume statistics
        while let ready = pending.removeValue(forKey: next) {
            if merged == nil { merged = ready } else { merged!.merge(ready) }
            next += 1
        }
        return true
    }

    public var isComplete: Bool { next == shardCount }

    /// The merged statistics, once every shard has been added.
    public var result: S? { isComplete ? merged : nil }
}
