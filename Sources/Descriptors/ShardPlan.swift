/// A fixed split of a corpus's rows into contiguous shards.
///
/// Shards, not workers, own the arithmetic: statistics are computed per shard and merged
/// in shard order, so a result depends on the plan but never on who computed what.
public struct ShardPlan: Sendable, Equatable, Codable {
    /// Default rows per shard: large enough that per-shard overhead vanishes, small enough
    /// that two threads (or workers) balance and a lost shard is cheap to redo.
    public static let defaultShardRows = 65_536

    public let totalRows: Int
    public let shardRows: Int

    public init(totalRows: Int, shardRows: Int = ShardPlan.defaultShardRows) {
        precondition(totalRows >= 0 && shardRows > 0)
        self.totalRows = totalRows
        self.shardRows = shardRows
    }

    public var count: Int { (totalRows + shardRows - 1) / shardRows }

    /// The row range of shard `index`.
    public func rows(of index: Int) -> Range<Int> {
        precondition(index >= 0 && index < count, "shard index out of range")
        let start = index * shardRows
        return start ..< min(totalRows, start + shardRows)
    }
}
