import Synchronization

/// The distance bounds of one shard's rows after a k-means assignment pass (see
/// `PrunedAssignment`): per row its centre, an upper bound on its distance to that centre,
/// and per group of centres a lower bound on its distance to the group's other centres, all
/// with respect to `centres`, the centres of that pass.
public struct ShardBounds: CachedShardState {
    /// The centres the bounds refer to, K×D.
    let centres: [Float]
    /// The centres' packed order the groups were made with (`CentreLayout.order`).
    let order: [Int32]
    let assignments: [Int32]
    let upper: [Float]
    /// rows × `PrunedAssignment.groups(k:)`.
    let lower: [Float]

    /// Memory held (the centres counted as if not shared).
    public var bytes: Int { 4 * (centres.count + order.count + assignments.count + upper.count + lower.count) }
    public var generation: [Float] { centres }
}

/// What a shard computation keeps about a shard's rows between passes (`ShardCache`).
public protocol CachedShardState: Sendable {
    associatedtype Generation: Equatable & Sendable
    /// Memory held.
    var bytes: Int { get }
    /// What the state was computed against (the centres, the candidates): a keep with
    /// another generation than the last keep's starts a new pass.
    var generation: Generation { get }
}

/// Shard bounds kept between k-means passes (see `ShardCache`).
public typealias BoundCache = ShardCache<ShardBounds>

/// Per-shard state kept between passes of a job, within a memory budget: the k-means
/// bounds (`BoundCache`), the k-means‖ distances (`DistanceCache`). An entry is taken out
/// while a pass uses it (so two passes never share one) and kept again after.
///
/// Eviction is least-recently-used among stale entries: the passes are numbered by their
/// generation (a keep with a generation unlike the last one starts a new pass), and an entry kept
/// two or more passes ago was not taken in the last one, so its shard went elsewhere. When
/// new bounds do not fit, the stale entries go, oldest first; if that is not enough, the
/// new bounds are not kept (their shard is computed in full next time) rather than
/// evicting bounds the coming pass will use: plain LRU would drop every entry before its
/// turn when a pass cycles through more shards than fit. Thread-safe.
public final class ShardCache<Entry: CachedShardState>: Sendable {
    /// Which rows an entry describes: a scope naming the corpus (and anything that changes its
    /// rows, such as a transform), and the rows of the shard within it.
    public struct Key: Hashable, Sendable {
        public var scope: String
        public var firstRow: Int
        public var rows: Int

        public init(scope: String, firstRow: Int, rows: Int) {
            self.scope = scope
            self.firstRow = firstRow
            self.rows = rows
        }
    }

    /// Bytes the entries may hold at most.
    public let budget: Int
    private let state = Mutex(State())

    private struct State {
        var entries: [Key: (entry: Entry, pass: Int, stored: UInt64)] = [:]
        var bytes = 0
        var clock: UInt64 = 0
        var pass = 0
        var passGeneration: Entry.Generation?
    }

    public init(budget: Int) {
        self.budget = max(0, budget)
    }

    /// Removes and returns the entry of `key`, if kept.
    func take(_ key: Key) -> Entry? {
        state.withLock { state in
            guard let kept = state.entries.removeValue(forKey: key) else { return nil }
            state.bytes -= kept.entry.bytes
            return kept.entry
        }
    }

    /// Keeps `entry` for `key`, dropping stale entries as the budget needs (see the type).
    func keep(_ entry: Entry, for key: Key) {
        let size = entry.bytes
        state.withLock { state in
            if let old = state.entries.removeValue(forKey: key) { state.bytes -= old.entry.bytes }
            if entry.generation != state.passGeneration {
                state.pass += 1
                state.passGeneration = entry.generation
            }
            let current = state.pass
            while state.bytes + size > budget,
                  let oldest = state.entries.filter({ $0.value.pass < current - 1 }).min(by: { $0.value.stored < $1.value.stored }) {
                state.entries.removeValue(forKey: oldest.key)
                state.bytes -= oldest.value.entry.bytes
            }
            guard state.bytes + size <= budget else { return }
            state.clock += 1
            state.entries[key] = (entry, current, state.clock)
            state.bytes += size
        }
    }

    /// Whether an entry for `key` is kept.
    public func holds(_ key: Key) -> Bool { state.withLock { $0.entries[key] != nil } }

    /// Bytes held by the kept entries.
    public var storedBytes: Int { state.withLock { $0.bytes } }

    /// Drops every entry.
    public func removeAll() {
        state.withLock { $0 = State() }
    }
}

extension ShardCache where Entry == ShardBounds {
    /// 1 GiB: bounds take 8 + 4·G bytes per row, G = `PrunedAssignment.groups(k:)` (24 at K = 256, 520 at K = 4096). Pruning is off
    /// unless a budget is given: on real SIFT at K = 256 its bounds do not yet pay for
    /// themselves (README, "Measured").
    public static var gibibyte: Int { 1 << 30 }
}
